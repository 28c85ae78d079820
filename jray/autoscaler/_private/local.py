"""The ``local`` node provider: each node is a ``jray start --address GCS
--block`` process on this machine (for tests, laptops, a big single host).

A node is one process group: ``jray start`` leads it and starts the raylet
(which starts the workers). Its pid, the process's start time (so a reused
pid is never signalled), its tags and its log live in a state file,
``<state_dir>/local-nodes-<cluster>.json`` (``state_dir`` from the
provider config, which ``jray up`` sets to the head's session directory),
so an autoscaler that restarts, and ``jray down``, find the nodes again.
Terminating a node sends SIGTERM to its ``jray start`` (which stops its
raylet and workers), then SIGKILL to whatever of it is left after a grace
period: by pid, never by name.

``node_config`` keys: ``object_store_memory`` (bytes), ``env`` (extra
environment variables), ``python`` (the interpreter; default this one).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

import psutil

from jray.autoscaler.node_provider import (
    PROVIDER_NODE_ID_LABEL,
    TAG_CLUSTER_NAME,
    NodeLaunchError,
    NodeProvider,
)

NODE_CONFIG_KEYS = {"object_store_memory", "env", "python"}
TERMINATE_GRACE_SECONDS = 10.0
# A JSON object of extra labels for the node's raylet, as tags carry them.
TAG_NODE_LABELS = "jray-node-labels"


def default_state_dir(cluster_name: str) -> str:
    from jray._private.node import jray_tmp_root

    return os.path.join(jray_tmp_root(), "autoscaler", cluster_name)


class LocalNodeProvider(NodeProvider):
    def __init__(self, provider_config: Mapping[str, Any], cluster_name: str) -> None:
        super().__init__(provider_config, cluster_name)
        self.state_dir = str(self.provider_config.get("state_dir") or default_state_dir(cluster_name))
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        self.state_path = os.path.join(self.state_dir, f"local-nodes-{cluster_name}.json")
        self._children: dict[int, subprocess.Popen] = {}  # nodes this process started (reaped here)

    # -- the state file ------------------------------------------------------
    @contextlib.contextmanager
    def _state(self) -> Iterator[dict[str, dict[str, Any]]]:
        """The node records, locked against other processes, written back."""
        fd = os.open(self.state_path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                with open(self.state_path) as f:
                    nodes = dict(json.load(f))
            except (OSError, ValueError):
                nodes = {}
            before = json.dumps(nodes, sort_keys=True)
            yield nodes
            if json.dumps(nodes, sort_keys=True) != before:
                tmp = f"{self.state_path}.tmp-{os.getpid()}"
                with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                    json.dump(nodes, f)
                os.replace(tmp, self.state_path)
        finally:
            os.close(fd)

    def _process(self, rec: Mapping[str, Any]) -> psutil.Process | None:
        """The node's live ``jray start`` process (None once it exited)."""
        pid = int(rec["pid"])
        child = self._children.get(pid)
        if child is not None and child.poll() is not None:
            del self._children[pid]  # reaped
            return None
        try:
            p = psutil.Process(pid)
            if abs(p.create_time() - float(rec["create_time"])) > 0.5 or p.status() == psutil.STATUS_ZOMBIE:
                return None
            return p
        except psutil.Error:
            return None

    # -- the interface -----------------------------------------------------
    def non_terminated_nodes(self, tag_filters: Mapping[str, str]) -> list[str]:
        out = []
        with self._state() as nodes:
            for node_id, rec in list(nodes.items()):
                if self._process(rec) is None:
                    del nodes[node_id]  # exited (stopped, or it failed: its log says why)
                    continue
                tags = rec["tags"]
                if all(tags.get(k) == v for k, v in tag_filters.items()):
                    out.append(node_id)
        return sorted(out)

    def node_tags(self, node_id: str) -> dict[str, str]:
        with self._state() as nodes:
            rec = nodes.get(node_id)
            return dict(rec["tags"]) if rec else {}

    def set_node_tags(self, node_id: str, tags: Mapping[str, str]) -> None:
        with self._state() as nodes:
            if node_id in nodes:
                nodes[node_id]["tags"].update(tags)

    def describe_node(self, node_id: str) -> str:
        with self._state() as nodes:
            rec = nodes.get(node_id)
        return f"local process {rec['pid']} (log {rec['log']})" if rec else node_id

    def create_node(self, node_config: Mapping[str, Any], tags: Mapping[str, str], count: int,
                    *, gcs_address: str, resources: Mapping[str, float]) -> list[str]:
        unknown = sorted(set(node_config) - NODE_CONFIG_KEYS)
        if unknown:
            raise NodeLaunchError(f"node_config.{unknown[0]} is not a key of the local provider "
                                  f"(known: {', '.join(sorted(NODE_CONFIG_KEYS))})")
        env = dict(os.environ)
        extra_env = node_config.get("env") or {}
        if not isinstance(extra_env, Mapping):
            raise NodeLaunchError("node_config.env must be a mapping of environment variables")
        env.update({str(k): str(v) for k, v in extra_env.items()})
        ids = []
        for _ in range(count):
            node_id = f"local-{secrets.token_hex(4)}"
            labels = {PROVIDER_NODE_ID_LABEL: node_id}
            with contextlib.suppress(ValueError, TypeError):
                labels.update(json.loads(tags.get(TAG_NODE_LABELS, "{}")))
            cmd = [str(node_config.get("python") or sys.executable), "-m", "jray.cli", "start",
                   "--address", gcs_address, "--block", "--labels", json.dumps(labels)]
            cmd += _resource_args(resources)
            if node_config.get("object_store_memory"):
                cmd += ["--object-store-memory", str(int(node_config["object_store_memory"]))]
            log = os.path.join(self.state_dir, f"{node_id}.log")
            try:
                with open(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
                    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
                create_time = psutil.Process(proc.pid).create_time()
            except (OSError, psutil.Error) as e:
                raise NodeLaunchError(f"could not start `{' '.join(cmd[:4])} ...`: {e}") from None
            self._children[proc.pid] = proc
            with self._state() as nodes:
                nodes[node_id] = {"pid": proc.pid, "create_time": create_time, "log": log,
                                  "tags": {**tags, TAG_CLUSTER_NAME: self.cluster_name},
                                  "resources": dict(resources), "launched_at": time.time()}
            ids.append(node_id)
        return ids

    def terminate_node(self, node_id: str) -> None:
        self.terminate_nodes([node_id])

    def terminate_nodes(self, node_ids: list[str]) -> None:
        """SIGTERM every node's ``jray start`` (it stops its raylet), wait,
        then SIGKILL what is left of each (its process tree, by pid)."""
        procs: list[psutil.Process] = []
        with self._state() as nodes:
            for node_id in node_ids:
                rec = nodes.pop(node_id, None)
                p = self._process(rec) if rec else None
                if p is None:
                    continue
                with contextlib.suppress(psutil.Error):
                    procs.extend([p, *p.children(recursive=True)])
                with contextlib.suppress(psutil.Error):
                    p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + TERMINATE_GRACE_SECONDS
        while procs and time.monotonic() < deadline:
            self._reap()
            procs = [p for p in procs if _alive(p)]
            if procs:
                time.sleep(0.1)
        for p in procs:
            with contextlib.suppress(psutil.Error):
                p.kill()
        if procs:
            psutil.wait_procs(procs, timeout=5)
        self._reap()

    def _reap(self) -> None:
        for pid, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[pid]


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _resource_args(resources: Mapping[str, float]) -> list[str]:
    """``jray start`` options offering ``resources``."""
    args = []
    custom = {}
    for k, v in resources.items():
        if k == "CPU":
            args += ["--num-cpus", str(int(v))]
        elif k == "GPU":
            args += ["--num-gpus", str(int(v))]
        elif k == "memory":
            args += ["--memory", str(int(v))]
        elif k == "object_store_memory":
            args += ["--object-store-memory", str(int(v))]
        else:
            custom[k] = v
    if custom:
        args += ["--resources", json.dumps(custom)]
    return args
