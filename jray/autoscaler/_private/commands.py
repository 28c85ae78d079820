"""``jray up`` and ``jray down`` (the SDK's ``create_or_update_cluster`` and
``teardown_cluster``): an autoscaling cluster from a config.

``up``: starts a head on this machine with ``jray start --head`` (the head
node type's resources) unless this cluster's head already runs, then
(re)starts the monitor (``monitor.py``) with the config, which launches the
``min_workers`` nodes and then follows the demand. What it started is
recorded in ``<jray temp dir>/autoscaler/<cluster_name>/cluster.json``
(session directory, GCS address, the monitor's pid); the local provider
keeps its nodes' pids in the head's session directory.

``down``: stops the monitor (SIGTERM, then SIGKILL), terminates every node
the provider lists for the cluster, then stops the head (GCS, raylets,
workers, jobs agent; the store files go with them) and forgets the record.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psutil

from jray._private import node as _node
from jray.autoscaler._private.autoscaler import TAG_LAUNCH_TIME
from jray.autoscaler._private.config import ClusterConfig, load
from jray.autoscaler._private.providers import make_provider
from jray.autoscaler.node_provider import NODE_KIND_WORKER, TAG_NODE_KIND, TAG_USER_NODE_TYPE

MONITOR_MODULE = "jray.autoscaler._private.monitor"
# Monitors started by this process, kept so they are reaped (and not
# reported as still running when the Popen object goes away).
_CHILDREN: dict[int, subprocess.Popen] = {}


class ClusterCommandError(RuntimeError):
    """``up``/``down`` could not do what was asked; the message says why."""


@dataclass
class ClusterInfo:
    """What ``up`` started: where to connect, and what ``down`` stops."""

    cluster_name: str
    gcs_address: str
    token: str
    session_dir: str
    monitor_pid: int
    started_head: bool

    @property
    def address(self) -> str:
        return self.gcs_address


def record_path(cluster_name: str) -> str:
    return os.path.join(_node.jray_tmp_root(), "autoscaler", cluster_name, "cluster.json")


def read_record(cluster_name: str) -> dict[str, Any] | None:
    try:
        with open(record_path(cluster_name)) as f:
            return dict(json.load(f))
    except (OSError, ValueError):
        return None


def _write_record(cluster_name: str, record: Mapping[str, Any]) -> None:
    path = record_path(cluster_name)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        json.dump(dict(record), f)
    os.replace(tmp, path)


def _head_running(session_dir: str) -> dict[str, Any] | None:
    """The recorded head of ``session_dir`` when its GCS runs, else None."""
    try:
        with open(os.path.join(session_dir, "cluster.json")) as f:
            info = dict(json.load(f))
    except (OSError, ValueError):
        return None
    roles = {role for role, _ in _node.session_processes(info)}
    return info if roles & {"gcs", "gcs_supervisor"} else None


def _start_head(cfg: ClusterConfig, port: int) -> dict[str, Any]:
    current = _node.read_address_file()
    if current is not None and _head_running(current["session_dir"]):
        raise ClusterCommandError(
            f"Another jray cluster runs on this machine (GCS at {current['gcs_address']}, session "
            f"{current['session_dir']}); stop it with 'jray stop' before 'jray up' of cluster {cfg.cluster_name}.")
    head = cfg.node_types[cfg.head_node_type]
    cmd = [sys.executable, "-m", "jray.cli", "start", "--head", "--port", str(port)]
    if cfg.provider.get("head_ip"):  # where other machines' nodes reach the GCS (SLURM)
        cmd += ["--node-ip-address", str(cfg.provider["head_ip"])]
    from jray.autoscaler._private.local import _resource_args

    cmd += _resource_args(head.resources)
    if head.node_config.get("object_store_memory"):
        cmd += ["--object-store-memory", str(int(head.node_config["object_store_memory"]))]
    labels = {**head.labels, "jray.io/node-type": cfg.head_node_type}
    cmd += ["--labels", json.dumps(labels)]
    try:
        out = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise ClusterCommandError("'jray start --head' did not finish within 120 s") from None
    if out.returncode != 0:
        raise ClusterCommandError(f"'jray start --head' failed: {(out.stderr or out.stdout).strip()}")
    info = _node.read_address_file()
    if info is None:
        raise ClusterCommandError("'jray start --head' wrote no address file")
    return info


def _pid_alive(pid: int, create_time: float) -> psutil.Process | None:
    try:
        p = psutil.Process(pid)
        if abs(p.create_time() - create_time) > 0.5 or p.status() == psutil.STATUS_ZOMBIE:
            return None
        return p
    except psutil.Error:
        return None


def _stop_monitor(record: Mapping[str, Any], grace: float = 10.0) -> None:
    p = _pid_alive(int(record.get("monitor_pid", 0)), float(record.get("monitor_create_time", 0.0)))
    if p is None:
        return
    with contextlib.suppress(psutil.Error):
        p.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs([p], timeout=grace)
    for q in alive:
        with contextlib.suppress(psutil.Error):
            q.kill()
    psutil.wait_procs(alive, timeout=5)
    child = _CHILDREN.pop(p.pid, None)
    if child is not None:
        child.wait(5)


def _head_pid_arg(info: Mapping[str, Any]) -> list[str]:
    """``--head-pid PID:START`` of the head's lasting process (the GCS's
    supervisor, else the GCS), when it runs on this machine."""
    for key in ("gcs_supervisor_pid", "gcs_pid"):
        pid = int(info.get(key) or 0)
        if pid:
            try:
                return ["--head-pid", f"{pid}:{psutil.Process(pid).create_time()!r}"]
            except psutil.Error:
                continue
    return []


def _start_monitor(cfg: ClusterConfig, raw: dict[str, Any], info: Mapping[str, Any]) -> tuple[int, float]:
    session_dir = info["session_dir"]
    cfg_path = os.path.join(session_dir, f"autoscaler-{cfg.cluster_name}.json")
    with open(os.open(cfg_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        json.dump(raw, f)
    log = os.path.join(session_dir, "logs", "monitor.log")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    env = dict(os.environ, JRAY_TOKEN=info["token"])
    with open(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a") as out:
        proc = subprocess.Popen([sys.executable, "-m", MONITOR_MODULE, "--config", cfg_path,
                                 "--address", info["gcs_address"], *_head_pid_arg(info)], env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    _CHILDREN[proc.pid] = proc
    return proc.pid, psutil.Process(proc.pid).create_time()


def create_or_update_cluster(config: str | os.PathLike[str] | Mapping[str, Any], *,
                             head_port: int | None = None) -> ClusterInfo:
    """``jray up``: the cluster's head (started unless it runs) and its
    autoscaler (restarted with this config)."""
    cfg = load(config)
    record = read_record(cfg.cluster_name)
    info = _head_running(record["session_dir"]) if record else None
    started = info is None
    if info is None:
        port = head_port if head_port is not None else int(cfg.provider.get("head_port", 6379))
        info = _start_head(cfg, port)
    elif record:
        _stop_monitor(record)
    raw = dict(cfg.raw)
    raw["provider"] = {**cfg.provider, "state_dir": cfg.provider.get("state_dir") or info["session_dir"]}
    cfg = load(raw)
    pid, ctime = _start_monitor(cfg, cfg.raw, info)
    _write_record(cfg.cluster_name, {"cluster_name": cfg.cluster_name, "session_dir": info["session_dir"],
                                     "gcs_address": info["gcs_address"], "monitor_pid": pid,
                                     "monitor_create_time": ctime, "config": cfg.raw,
                                     "started_head": started or bool(record and record.get("started_head"))})
    return ClusterInfo(cfg.cluster_name, info["gcs_address"], info["token"], info["session_dir"], pid, started)


def teardown_cluster(config: str | os.PathLike[str] | Mapping[str, Any], *, grace: float = 10.0,
                     workers_only: bool = False, keep_min_workers: bool = False) -> dict[str, Any]:
    """``jray down``: stop the autoscaler, terminate every node of the
    cluster, stop its head. Returns what was stopped.

    As Ray's: ``workers_only`` terminates the worker nodes and leaves the
    head and its autoscaler running (which launches again what demand and
    ``min_workers`` ask for); ``keep_min_workers`` spares ``min_workers``
    nodes of each type (those that joined first)."""
    cfg = load(config)
    record = read_record(cfg.cluster_name)
    provider_cfg = dict(cfg.provider)
    if record:
        if not workers_only:
            _stop_monitor(record, grace)
        provider_cfg["state_dir"] = provider_cfg.get("state_dir") or record["session_dir"]
    provider = make_provider(provider_cfg, cfg.cluster_name)
    try:
        nodes = provider.non_terminated_nodes({TAG_NODE_KIND: NODE_KIND_WORKER} if workers_only else {})
        if keep_min_workers:
            nodes = _beyond_min_workers(cfg, provider, nodes)
        provider.terminate_nodes(nodes)
    finally:
        provider.close()
    report: dict[str, Any] = {"nodes": nodes, "head": None}
    if record and not workers_only:
        info = _head_running(record["session_dir"])
        if info is None:  # the GCS is gone; stop whatever else of it is left
            with contextlib.suppress(OSError, ValueError):
                with open(os.path.join(record["session_dir"], "cluster.json")) as f:
                    info = dict(json.load(f))
        if info is not None:
            from jray._private.jobs import process

            process.stop_agent(info["session_dir"], grace=grace)
            report["head"] = _node.stop_session(info, grace=grace)
        with contextlib.suppress(OSError):
            os.unlink(record_path(cfg.cluster_name))
    return report


def _beyond_min_workers(cfg: ClusterConfig, provider: Any, nodes: list[str]) -> list[str]:
    """``nodes`` less ``min_workers`` of each worker type (the oldest kept)."""
    def launched(pid: str) -> float:
        try:
            return float(provider.node_tags(pid).get(TAG_LAUNCH_TIME, "inf"))
        except ValueError:
            return float("inf")
    kept: dict[str, int] = {}
    out = []
    for pid in sorted(nodes, key=launched):
        tags = provider.node_tags(pid)
        t = tags.get(TAG_USER_NODE_TYPE, "")
        nt = cfg.node_types.get(t)
        if tags.get(TAG_NODE_KIND) == NODE_KIND_WORKER and nt is not None and kept.get(t, 0) < nt.min_workers:
            kept[t] = kept.get(t, 0) + 1
            continue
        out.append(pid)
    return out


def wait_for_workers(info: ClusterInfo, count: int, timeout: float = 120.0) -> int:
    """Wait (at most ``timeout``) until ``count`` worker nodes have joined; how many did."""
    from jray._private import gcs_client

    deadline = time.monotonic() + timeout
    n = 0
    while True:
        nodes = gcs_client.alive_nodes_at(info.gcs_address, info.token, timeout=5)
        n = sum(1 for x in nodes if "jray.io/provider-node-id" in x.labels)
        if n >= count or time.monotonic() >= deadline:
            return n
        time.sleep(0.25)
