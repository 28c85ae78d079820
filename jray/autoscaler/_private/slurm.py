"""The ``slurm`` node provider: each node is one SLURM job running
``jray start --address GCS --block`` on the machine SLURM picks.

::

    provider:
      type: slurm
      log_dir: ~/jray-logs        # the nodes' job output (default ~/.jray/slurm/<cluster>)
    available_node_types:
      cpu8:
        resources: {CPU: 8, memory: 32000000000}
        max_workers: 10
        node_config:
          partition: compute
          account: myproject
          time: "04:00:00"          # the job's time limit
          sbatch_args: ["--constraint=skylake", "--qos=normal"]   # extra #SBATCH lines
          setup: ["module load python/3.11", "source ~/venv/bin/activate"]
          object_store_memory: 8000000000
          python: /shared/venv/bin/python   # default: this interpreter

How the parts fit:

- :func:`batch_script` writes the job's script: ``#SBATCH`` lines asking for
  the node type's resources (``--cpus-per-task`` = CPU, ``--mem`` = memory,
  ``--gres=gpu:N`` = GPU) and the ``node_config`` keys, then ``setup``, then
  ``jray start --block`` offering the same resources, labelled
  ``jray.io/provider-node-id=$SLURM_JOB_ID``: a node's provider id is its
  job id, so the autoscaler pairs the raylet that joins with the job.
- :class:`SlurmNodeProvider` submits it with ``sbatch`` (the script on
  stdin), lists its jobs with ``squeue`` and cancels them with ``scancel``
  (SIGTERM: ``jray start --block`` stops its raylet and workers; its trap
  removes the node's session directory).
- Tags live in SLURM itself, as the job's ``--comment`` (JSON), and every
  job of a cluster is named ``jray-<cluster_name>``: an autoscaler that
  restarts (or ``jray down``) finds its nodes and their tags in ``squeue``.
  ``set_node_tags`` updates the comment (``scontrol update``).
- The cluster token never appears in ``squeue``/``scontrol show job`` (what
  other users can read): it is written into the batch script, which sbatch
  reads from stdin (no file) and SLURM keeps readable only by the job's
  owner and admins; ``JRAY_TOKEN`` is taken out of the environment sbatch
  exports to the job.
- A failed ``sbatch`` (bad partition, account, limits) raises
  :class:`NodeLaunchError` with sbatch's own message; the autoscaler retries
  with back-off.
"""

from __future__ import annotations

import getpass
import json
import logging
import math
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from jray.autoscaler._private.local import TAG_NODE_LABELS
from jray.autoscaler.node_provider import (
    PROVIDER_NODE_ID_LABEL,
    TAG_CLUSTER_NAME,
    NodeLaunchError,
    NodeProvider,
)

logger = logging.getLogger(__name__)

NODE_CONFIG_KEYS = {"partition", "account", "time", "qos", "sbatch_args", "setup", "object_store_memory",
                    "python", "env"}
PROVIDER_CONFIG_KEYS = {"type", "log_dir"}
AUTOSCALER_PROVIDER_KEYS = {"state_dir", "node_start_wait_s", "head_port", "head_ip"}
# squeue's states of a job that is starting or running; COMPLETING is a node on its way out.
_LIVE_STATES = {"PENDING", "CONFIGURING", "RUNNING", "SUSPENDED", "REQUEUED", "RESIZING", "REQUEUE_HOLD",
                "REQUEUE_FED", "RESV_DEL_HOLD", "SIGNALING", "STAGE_OUT"}
# Variables of this process that must not travel to the job (sbatch exports the rest).
_NOT_EXPORTED = ("JRAY_TOKEN", "JRAY_ADDRESS", "RAY_ADDRESS", "JRAY_TMPDIR", "JRAY_SESSION_DIR",
                 "JRAY_RAYLET_PID")
_COMMAND_TIMEOUT_S = 30.0


def job_name(cluster_name: str) -> str:
    return f"jray-{cluster_name}"


def default_log_dir(cluster_name: str) -> str:
    """Where the nodes' job output goes: the home directory, which a SLURM
    cluster shares between its login and compute nodes."""
    return os.path.join(os.path.expanduser("~"), ".jray", "slurm", cluster_name)


def sbatch_options(node_config: Mapping[str, Any], resources: Mapping[str, float]) -> list[str]:
    """The ``#SBATCH`` options of a node of this type (one node, one task)."""
    # --no-requeue: a node whose machine fails is replaced by the autoscaler, not started again by SLURM.
    opts = ["--nodes=1", "--ntasks=1", "--no-requeue"]
    if resources.get("CPU"):
        opts.append(f"--cpus-per-task={math.ceil(resources['CPU'])}")
    if resources.get("memory"):
        opts.append(f"--mem={math.ceil(resources['memory'] / 2**20)}M")
    if resources.get("GPU"):
        opts.append(f"--gres=gpu:{math.ceil(resources['GPU'])}")
    for key in ("partition", "account", "time", "qos"):
        if node_config.get(key):
            opts.append(f"--{key}={node_config[key]}")
    extra = node_config.get("sbatch_args") or []
    opts += [str(a) for a in ([extra] if isinstance(extra, str) else extra)]
    return opts


def start_args(resources: Mapping[str, float], node_config: Mapping[str, Any]) -> list[str]:
    """``jray start`` options offering the node type's resources (CPU, GPU,
    memory, custom); CPUs default to what SLURM gave the job."""
    args: list[str] = []
    custom = {}
    for k, v in resources.items():
        if k == "CPU":
            args += ["--num-cpus", str(math.floor(v))]
        elif k == "GPU":
            args += ["--num-gpus", str(math.floor(v))]
        elif k == "memory":
            args += ["--memory", str(int(v))]
        elif k != "object_store_memory":
            custom[k] = v
    if "GPU" not in resources:
        args += ["--num-gpus", "0"]  # the machine may have GPUs this job was not given
    if custom:
        args += ["--resources", json.dumps(custom)]
    store = node_config.get("object_store_memory") or resources.get("object_store_memory")
    if store:
        args += ["--object-store-memory", str(int(store))]
    return args


# The body of every node's job: the token (from the script itself, not the
# environment), a session directory per job, the address on the route to
# the GCS, then jray start --block in the background so SIGTERM (scancel,
# the time limit) reaches the trap at once and jray start stops its node.
_BODY = r"""
export JRAY_TOKEN={token}
export JRAY_TMPDIR="${{TMPDIR:-/tmp}}/jray-$SLURM_JOB_ID"
mkdir -p -m 700 "$JRAY_TMPDIR"
gcs_host={gcs_host}
ip=$(ip -o route get "$gcs_host" 2>/dev/null | sed -n 's/.* src \([0-9a-f.:]*\).*/\1/p')
ip=${{ip:-$(hostname -I | awk '{{print $1}}')}}
extra=()
if [ -z "{has_cpu}" ]; then extra+=(--num-cpus "${{SLURM_CPUS_ON_NODE:-1}}"); fi
trap 'kill -TERM "$child" 2>/dev/null' TERM INT
{python} -m jray.cli start --address {gcs_address} --node-ip-address "$ip" --block \
    --labels "{{\"{label}\": \"$SLURM_JOB_ID\"{labels}}}" {args} "${{extra[@]}}" &
child=$!
wait "$child"; rc=$?
while kill -0 "$child" 2>/dev/null; do wait "$child"; rc=$?; done
rm -rf "$JRAY_TMPDIR"
exit "$rc"
"""


def batch_script(node_config: Mapping[str, Any], resources: Mapping[str, float], *, gcs_address: str,
                 token: str, labels: Mapping[str, str] | None = None) -> str:
    """The batch script of one node (it holds the token: never write it
    where others can read it)."""
    lines = ["#!/bin/bash", "# A jray node (jray.autoscaler._private.slurm); the token is in this script."]
    lines += [f"#SBATCH {opt}" for opt in sbatch_options(node_config, resources)]
    env = node_config.get("env") or {}
    lines += [f"export {k}={shlex.quote(str(v))}" for k, v in env.items()]
    setup = node_config.get("setup") or []
    lines += [str(c) for c in ([setup] if isinstance(setup, str) else setup)]
    extra_labels = "".join(f", {json.dumps(str(k))}: {json.dumps(str(v))}" for k, v in (labels or {}).items()
                           if k != PROVIDER_NODE_ID_LABEL)
    gcs_host = gcs_address.rsplit(":", 1)[0].strip("[]")
    lines.append(_BODY.format(
        token=shlex.quote(token), gcs_host=shlex.quote(gcs_host), gcs_address=shlex.quote(gcs_address),
        python=shlex.quote(str(node_config.get("python") or sys.executable)), label=PROVIDER_NODE_ID_LABEL,
        labels=extra_labels.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("`", "\\`"),
        args=" ".join(shlex.quote(a) for a in start_args(resources, node_config)),
        has_cpu="1" if resources.get("CPU") else ""))
    return "\n".join(lines)


def check_node_config(node_config: Mapping[str, Any]) -> None:
    """Raise :class:`NodeLaunchError` naming the first bad key."""
    for key in node_config:
        if key not in NODE_CONFIG_KEYS:
            raise NodeLaunchError(f"node_config.{key} is not a key of the slurm provider "
                                  f"(known: {', '.join(sorted(NODE_CONFIG_KEYS))})")
    for key in ("sbatch_args", "setup"):
        v = node_config.get(key)
        if v is not None and not isinstance(v, (str, list, tuple)):
            raise NodeLaunchError(f"node_config.{key} must be a list of strings")
    if node_config.get("env") is not None and not isinstance(node_config["env"], Mapping):
        raise NodeLaunchError("node_config.env must be a mapping of environment variables")


class SlurmNodeProvider(NodeProvider):
    """Nodes as SLURM jobs, one node per job (see the module docstring)."""

    def __init__(self, provider_config: Mapping[str, Any], cluster_name: str) -> None:
        super().__init__(provider_config, cluster_name)
        # The autoscaler's own provider keys (node_start_wait_s, head_port, ...) share the section.
        unknown = sorted(set(self.provider_config) - PROVIDER_CONFIG_KEYS - AUTOSCALER_PROVIDER_KEYS)
        if unknown:
            logger.warning("provider.%s is not a key of the slurm provider (its keys: %s)", unknown[0],
                           ", ".join(sorted(PROVIDER_CONFIG_KEYS - {"type"})))
        self.log_dir = os.path.expanduser(str(self.provider_config.get("log_dir")
                                              or default_log_dir(cluster_name)))
        self.name = job_name(cluster_name)
        self._tags: dict[str, dict[str, str]] = {}    # job id -> tags (as the comment holds them)
        self._where: dict[str, tuple[str, str]] = {}  # job id -> (state, node list), from the last squeue

    # -- SLURM commands --------------------------------------------------------
    def _run(self, argv: Sequence[str], input: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in _NOT_EXPORTED}
        try:
            return subprocess.run(list(argv), input=input, capture_output=True, text=True, env=env,
                                  timeout=_COMMAND_TIMEOUT_S, stdin=None if input is not None else subprocess.DEVNULL)
        except FileNotFoundError:
            raise NodeLaunchError(f"{argv[0]} not found: is SLURM's client installed here (PATH)?") from None
        except subprocess.TimeoutExpired:
            raise NodeLaunchError(f"{argv[0]} did not answer within {_COMMAND_TIMEOUT_S:.0f} s "
                                  "(is slurmctld up?)") from None

    def _squeue(self) -> dict[str, tuple[str, str, dict[str, str]]]:
        """This cluster's live jobs: job id -> (state, node list, tags)."""
        res = self._run(["squeue", "-h", "-u", getpass.getuser(), "-n", self.name, "-o", "%i|%T|%N|%k"])
        if res.returncode != 0:
            raise NodeLaunchError(f"squeue failed: {res.stderr.strip()}")
        jobs = {}
        for line in res.stdout.splitlines():
            parts = line.split("|", 3)
            if len(parts) != 4 or parts[1] not in _LIVE_STATES:
                continue
            try:
                tags = json.loads(parts[3])
            except ValueError:
                continue  # a job of this name that this provider did not submit
            if not isinstance(tags, dict) or tags.get(TAG_CLUSTER_NAME) != self.cluster_name:
                continue
            jobs[parts[0]] = (parts[1], parts[2], {str(k): str(v) for k, v in tags.items()})
        return jobs

    # -- the interface -----------------------------------------------------------
    def non_terminated_nodes(self, tag_filters: Mapping[str, str]) -> list[str]:
        jobs = self._squeue()
        self._where = {j: (state, nodes) for j, (state, nodes, _) in jobs.items()}
        # squeue's comment can lag an scontrol update by a moment: tags set here win for live jobs.
        self._tags = {j: {**tags, **self._tags.get(j, {})} for j, (_, _, tags) in jobs.items()}
        return sorted((j for j, tags in self._tags.items() if all(tags.get(k) == v for k, v in tag_filters.items())),
                      key=int)

    def node_tags(self, node_id: str) -> dict[str, str]:
        if node_id not in self._tags:
            self.non_terminated_nodes({})
        return dict(self._tags.get(node_id, {}))

    def set_node_tags(self, node_id: str, tags: Mapping[str, str]) -> None:
        if node_id not in self._tags:
            self.non_terminated_nodes({})
            if node_id not in self._tags:
                return
        merged = {**self._tags[node_id], **tags}
        res = self._run(["scontrol", "update", f"JobId={node_id}", f"Comment={json.dumps(merged)}"])
        if res.returncode != 0:
            logger.warning("could not update the tags of SLURM job %s: %s", node_id, res.stderr.strip())
            return
        self._tags[node_id] = merged

    def create_node(self, node_config: Mapping[str, Any], tags: Mapping[str, str], count: int,
                    *, gcs_address: str, resources: Mapping[str, float]) -> list[str]:
        check_node_config(node_config)
        token = _token_for(gcs_address)
        labels: dict[str, str] = {}
        try:
            labels.update(json.loads(tags.get(TAG_NODE_LABELS, "{}")))
        except (ValueError, TypeError):
            pass
        script = batch_script(node_config, resources, gcs_address=gcs_address, token=token, labels=labels)
        all_tags = {**tags, TAG_CLUSTER_NAME: self.cluster_name}
        os.makedirs(self.log_dir, mode=0o700, exist_ok=True)
        argv = ["sbatch", "--parsable", f"--job-name={self.name}", f"--comment={json.dumps(all_tags)}",
                f"--output={os.path.join(self.log_dir, self.name + '-%j.out')}", f"--chdir={self.log_dir}"]
        ids = []
        for _ in range(count):
            res = self._run(argv, input=script)  # the script on stdin: no file holds the token
            if res.returncode != 0:
                msg = res.stderr.strip() or res.stdout.strip() or f"exit status {res.returncode}"
                raise NodeLaunchError(f"sbatch failed: {msg}")
            job = res.stdout.strip().split(";", 1)[0]
            if not job.isdigit():
                raise NodeLaunchError(f"sbatch printed no job id: {res.stdout.strip()!r} {res.stderr.strip()}")
            self._tags[job] = dict(all_tags)
            self._where[job] = ("PENDING", "")
            logger.info("submitted SLURM job %s for a %s node", job, tags.get("jray-user-node-type", "worker"))
            ids.append(job)
        return ids

    def terminate_node(self, node_id: str) -> None:
        self.terminate_nodes([node_id])

    def terminate_nodes(self, node_ids: list[str]) -> None:
        """``scancel`` (SIGTERM to the node's jray start, which stops its
        raylet and workers; SIGKILL after SLURM's KillWait). A job already
        gone is not an error."""
        ids = [n for n in node_ids if n.isdigit()]
        if not ids:
            return
        res = self._run(["scancel", *ids])
        err = res.stderr.strip()
        if res.returncode != 0 and "Invalid job id" not in err and "already completing" not in err:
            logger.warning("scancel %s: %s", " ".join(ids), err)
        for n in ids:
            self._tags.pop(n, None)
            self._where.pop(n, None)

    def describe_node(self, node_id: str) -> str:
        state, nodes = self._where.get(node_id, ("", ""))
        where = f" on {nodes}" if nodes else ""
        log = os.path.join(self.log_dir, f"{self.name}-{node_id}.out")
        return f"slurm job {node_id}{f' ({state}{where})' if state else ''}, log {log}"


def _token_for(gcs_address: str) -> str:
    """The cluster's token: ``JRAY_TOKEN``, else the address file of the
    head on this machine when it is that cluster's."""
    token = os.environ.get("JRAY_TOKEN")
    if token:
        return token
    from jray._private import node as _node

    info = _node.read_address_file()
    if info is not None and info.get("gcs_address") == gcs_address:
        return str(info["token"])
    raise NodeLaunchError(f"no token for the cluster at {gcs_address}: set JRAY_TOKEN for the autoscaler")
