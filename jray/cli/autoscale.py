"""``jray up`` and ``jray down``: autoscaling clusters from a cluster config
(Ray's ``ray up/down``), and the autoscaler's part of ``jray status``.

::

    jray up -y cluster.yaml      # head on this machine + autoscaler; min_workers nodes come up
    jray status                  # nodes, resources, and the autoscaler's demand and decisions
    jray down -y cluster.yaml    # autoscaler stopped, every node released, head stopped

The work is done by ``jray.autoscaler._private.commands``; this module
parses, confirms and prints. :func:`format_autoscaler_status` renders the
status the monitor publishes (Ray's "Pending:", "Recent failures:",
"Demands:" sections).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from typing import Any

from jray.cli.command import CliError
from jray.cli.tables import fmt_num


def configure_up(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", metavar="CONFIG", help="the cluster config (YAML, Ray's format)")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--wait", action="store_true", help="return once the min_workers nodes have joined")
    p.add_argument("--timeout", type=float, default=300.0, help="how long --wait waits (seconds, default 300)")


def configure_down(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", metavar="CONFIG", help="the cluster config (YAML, Ray's format)")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--workers-only", action="store_true",
                   help="terminate the worker nodes only; the head and the autoscaler keep running")
    p.add_argument("--keep-min-workers", action="store_true",
                   help="spare min_workers nodes of each node type")


def _confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise CliError(f"{question} Not a terminal: pass -y to confirm.")
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise CliError("cancelled.")


def _load(path: str) -> Any:
    from jray.autoscaler._private.config import ConfigError, load

    try:
        return load(path)
    except ConfigError as e:
        raise CliError(f"invalid cluster config {path}: {e}") from None


def up(ns: argparse.Namespace) -> int:
    from jray.autoscaler._private import commands

    cfg = _load(ns.config)
    running = commands.read_record(cfg.cluster_name) is not None
    _confirm(f"{'Update' if running else 'Start'} cluster {cfg.cluster_name} (provider {cfg.provider['type']}, "
             f"max_workers {cfg.max_workers})?", ns.yes)
    try:
        info = commands.create_or_update_cluster(ns.config)
    except commands.ClusterCommandError as e:
        raise CliError(str(e)) from None
    what = "Started the head node" if info.started_head else "The head node was running"
    print(f"{what} of cluster {cfg.cluster_name}: GCS at {info.gcs_address} (session {info.session_dir}).")
    print(f"Autoscaler running (pid {info.monitor_pid}, log {info.session_dir}/logs/monitor.log).")
    want = sum(t.min_workers for t in cfg.worker_types.values())
    if want and ns.wait:
        n = commands.wait_for_workers(info, want, ns.timeout)
        print(f"{n} of {want} min_workers node{'s' if want != 1 else ''} joined.")
        if n < want:
            return 1
    elif want:
        print(f"{want} min_workers node{'s' if want != 1 else ''} coming up; watch with 'jray status'.")
    print('Connect from Python on this machine:\n    import jray\n    jray.init(address="auto")')
    print(f"Stop everything with 'jray down -y {ns.config}'.")
    return 0


def down(ns: argparse.Namespace) -> int:
    from jray.autoscaler._private import commands

    cfg = _load(ns.config)
    what = ("its worker nodes" if ns.workers_only else "its autoscaler, every node and the head") + \
        (" (min_workers nodes spared)" if ns.keep_min_workers else "")
    _confirm(f"Stop cluster {cfg.cluster_name}: {what}?", ns.yes)
    report = commands.teardown_cluster(ns.config, workers_only=ns.workers_only,
                                       keep_min_workers=ns.keep_min_workers)
    nodes = report["nodes"]
    print(f"Terminated {len(nodes)} node{'s' if len(nodes) != 1 else ''} of cluster {cfg.cluster_name}.")
    head = report.get("head")
    if ns.workers_only:
        print("The head and its autoscaler keep running.")
    elif head is not None:
        pids = head["pids"]
        print(f"Stopped the head: {sum(len(v) for v in pids.values())} process(es).")
    else:
        print("No head of this cluster was running here.")
    return 0


# -- jray status ------------------------------------------------------------------


def _shape(shape: Mapping[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {fmt_num(v)}" for k, v in sorted(shape.items())) + "}"


def _by_type(counts: Mapping[str, int]) -> list[str]:
    return [f" {n} {t}" for t, n in sorted(counts.items())]


def format_autoscaler_status(status: Mapping[str, Any], now: float | None = None) -> str:
    """The autoscaler's sections of ``jray status``."""
    now = time.time() if now is None else now
    age = now - float(status.get("time", now))
    state = "running" if status.get("running", True) else "stopped"
    lines = [f"======== Autoscaler ({state}, cluster {status.get('cluster_name')}, provider "
             f"{status.get('provider')}, updated {age:.0f} s ago) ========", "Node status",
             "-" * 60]
    nodes = status.get("nodes", {})
    lines += ["Active:"] + (_by_type(nodes.get("running", {})) or [" (no active worker nodes)"])
    idle = status.get("node_list", [])
    idle_rows = [n for n in idle if n.get("status") == "idle"]
    lines += ["Idle:"] + ([f" {n['node_type']} {n['provider_id']}: idle {n['idle_s']:.0f} s of "
                           f"{n['idle_limit_s']:.0f} s before scale-down" for n in idle_rows] or [" (no idle nodes)"])
    pending = [f" {t}, {n} launching" for t, n in sorted(nodes.get("launching", {}).items())]
    for t, s in sorted(status.get("backoff", {}).items()):
        pending.append(f" {t}: next launch in {s:.0f} s (backing off after failures)")
    lines += ["Pending:"] + (pending or [" (no pending nodes)"])
    pins = status.get("scale_targets") or {}
    if pins:
        types = status.get("node_types") or {}
        lines += ["Scaled by hand (scale_to; demand does not move these):"]
        lines += [f" {t}: {n} wanted, {types.get(t, {}).get('count', '?')} now" for t, n in sorted(pins.items())]
    failures = status.get("failures", [])
    lines += ["Recent failures:"] + ([f" {f['node_type']}: {f['message']} ({now - f['time']:.0f} s ago; "
                                      f"{f.get('failures_in_a_row', 1)} in a row, retry after {f['retry_in_s']:.0f} s)"
                                      for f in failures[-5:]] or [" (no failures)"])
    lines += ["", "Demands:"]
    demand = []
    for d in status.get("demand", []):
        if d.get("kind") == "placement_group":
            demand.append(f" {[_shape(b) for b in d['shape']]} ({d.get('strategy')}): 1+ pending placement group")
        else:
            extra = f", {d['infeasible']} infeasible now" if d.get("infeasible") else ""
            demand.append(f" {_shape(d['shape'])}: {d['count']}+ pending {d.get('kind', 'task')}s{extra}")
    req = status.get("resource_request") or []
    if req:
        demand.append(f" request_resources: {', '.join(_shape(b) for b in req[:8])}"
                      + (f" and {len(req) - 8} more" if len(req) > 8 else ""))
    for d in status.get("infeasible", []):
        demand.append(f" {_shape(d)}: no node type can hold it (infeasible)")
    lines += demand or [" (no resource demands)"]
    decisions = status.get("decisions", [])
    if decisions:
        lines += ["", "Recent decisions:"]
        lines += [f" {now - d['time']:.0f} s ago: {d['action']} {d['count']} {d['node_type']}: {d['reason']}"
                  for d in decisions[-6:]]
    return "\n".join(lines)


def autoscaler_section(address: str, token: str) -> str:
    """The section for ``jray status``, or "" when no autoscaler ran."""
    from jray._private import autoscaler_state

    try:
        status = autoscaler_state.read_status_at(address, token)
    except Exception:  # noqa: BLE001 - the node table was read; this part is extra
        return ""
    return format_autoscaler_status(status) if status else ""
