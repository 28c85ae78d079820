"""``jray list``, ``jray summary tasks`` and ``jray memory``: the state API
(``jray.util.state``) from the command line, against the cluster that
``jray status`` would talk to (``--address``, ``JRAY_ADDRESS``, the address file).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from jray.cli.command import CliError
from jray.cli.connect import configure_address, target
from jray.cli.tables import fmt_bytes, format_table

RESOURCES = ("tasks", "actors", "objects", "nodes", "workers", "jobs", "runtime-envs")


def _call(fn: Callable[..., Any], ns: argparse.Namespace, **kw: Any) -> Any:
    import grpc

    address, token = target(ns.address)
    try:
        return fn(address=address, token=token, **kw)
    except grpc.RpcError as e:
        code = e.code() if hasattr(e, "code") else None
        if code == grpc.StatusCode.UNAUTHENTICATED:
            raise CliError(f"The cluster at {address} refused the token (JRAY_TOKEN is not its token).") from None
        raise CliError(f"No jray cluster is running at {address} ({code.name if code else e}).") from None
    except ValueError as e:
        raise CliError(str(e)) from None


def _parse_filter(text: str) -> tuple[str, str, str]:
    if "!=" in text:
        key, value = text.split("!=", 1)
        return key.strip(), "!=", value.strip()
    if "=" in text:
        key, value = text.split("=", 1)
        return key.strip(), "=", value.strip()
    raise argparse.ArgumentTypeError(f"expected KEY=VALUE or KEY!=VALUE, got {text!r}")


def configure_list(p: argparse.ArgumentParser) -> None:
    p.add_argument("resource", choices=RESOURCES)
    p.add_argument("--filter", action="append", type=_parse_filter, default=[], metavar="KEY=VALUE",
                   help="keep rows where KEY=VALUE (or KEY!=VALUE); repeatable")
    p.add_argument("--limit", type=int, default=100, help="at most this many rows (default 100)")
    p.add_argument("--detail", action="store_true", help="every field")
    p.add_argument("--format", choices=("table", "json"), default="table")
    configure_address(p)


def list_(ns: argparse.Namespace) -> int:
    from jray.util import state

    fn = getattr(state, f"list_{ns.resource.replace('-', '_')}")
    rows = _call(fn, ns, filters=ns.filter, limit=ns.limit, detail=ns.detail)
    print(json.dumps(rows, indent=1) if ns.format == "json" else format_table(rows))
    return 0


def configure_summary(p: argparse.ArgumentParser) -> None:
    p.add_argument("resource", choices=("tasks",))
    p.add_argument("--format", choices=("table", "json"), default="table")
    configure_address(p)


def summary(ns: argparse.Namespace) -> int:
    from jray.util.state import summarize_tasks

    summary = _call(summarize_tasks, ns)
    if ns.format == "json":
        print(json.dumps(summary, indent=1))
        return 0
    rows = [{"func_or_class_name": s["func_or_class_name"], "type": s["type"],
             "state_counts": ", ".join(f"{k}: {v}" for k, v in sorted(s["state_counts"].items()))}
            for s in summary["cluster"]["summary"].values()]
    print(format_table(rows))
    c = summary["cluster"]
    print(f"\n{c['total_tasks']} tasks, {c['total_actor_tasks']} actor tasks, "
          f"{c['total_actor_scheduled']} actors scheduled")
    return 0


def configure_memory(p: argparse.ArgumentParser) -> None:
    p.add_argument("--limit", type=int, default=100, help="at most this many objects, largest first")
    p.add_argument("--format", choices=("table", "json"), default="table")
    configure_address(p)


def memory(ns: argparse.Namespace) -> int:
    from jray.util.state import memory_summary

    summary = _call(memory_summary, ns)
    objects = sorted(summary["objects"], key=lambda o: -o["object_size"])[: max(ns.limit, 0)]
    if ns.format == "json":
        print(json.dumps({"objects": objects, "nodes": summary["nodes"],
                          "reconstructing": summary["reconstructing"]}, indent=1))
        return 0
    print(format_table([{
        "object_id": o["object_id"], "size": fmt_bytes(o["object_size"]), "owner": o["owner_address"] or "",
        "owner_pid": o["pid"] or "", "where": o["where"], "node": o["node_id"][:12],
        "primary": o["primary"], "pins": o["pins"],
    } for o in objects]))
    print()
    print(format_table([{
        "node_id": n["node_id"], "ip": n["node_ip"], "objects": n["num_objects"],
        "used": fmt_bytes(n["store_used"]), "capacity": fmt_bytes(n["store_capacity"]),
        "spilled": fmt_bytes(n["spilled_bytes"]),
    } for n in summary["nodes"]]))
    if summary["reconstructing"]:
        print("\nBeing rebuilt (lost with a node; their tasks run again):")
        print(format_table([{
            "task_id": t["task_id"], "name": t["name"], "attempt": t["attempt_number"], "state": t["state"],
        } for t in summary["reconstructing"]]))
    return 0


def configure_metrics(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("table", "json", "prometheus"), default="table",
                   help="prometheus: the text every node serves on its metrics port, gathered here")
    configure_address(p)


def metrics(ns: argparse.Namespace) -> int:
    from jray.util.state import list_metrics, metrics_prometheus

    if ns.format == "prometheus":
        print(_call(metrics_prometheus, ns), end="")
        return 0
    rows = _call(list_metrics, ns)
    if ns.format == "json":
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print("No metrics recorded (ray.util.metrics: Counter, Gauge, Histogram).")
        return 0
    print(format_table([{
        "name": r["name"], "kind": r["kind"], "tags": ",".join(f"{k}={v}" for k, v in sorted(r["tags"].items())),
        "value": (f"count={r['count']} sum={r['sum']:g}" if r["kind"] == "histogram" else f"{r['value']:g}"),
        "node": r["node_ip"],
    } for r in sorted(rows, key=lambda r: (r["name"], r["node_ip"]))]))
    return 0



def configure_stack(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for each worker's dump")
    configure_address(p)


def stack(ns: argparse.Namespace) -> int:
    """``jray stack``: the stacks of this machine's workers (Ray's ``ray stack``)."""
    from jray.util.stacks import dump_stacks, format_stacks

    entries = _call(dump_stacks, ns, timeout=ns.timeout)
    print(json.dumps(entries, indent=1) if ns.format == "json" else format_stacks(entries))
    return 0


def configure_profile(p: argparse.ArgumentParser) -> None:
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--actor-id", help="profile the worker of this live actor")
    who.add_argument("--task-id", help="profile the worker running this task")
    who.add_argument("--pid", type=int, help="profile this worker process")
    p.add_argument("--duration", type=float, default=5.0, help="seconds to sample (default 5)")
    p.add_argument("--output", "-o", default=None, help="write the flame graph here (SVG)")
    configure_address(p)


def profile(ns: argparse.Namespace) -> int:
    """``jray profile``: a CPU profile of a task or actor's worker (this machine)."""
    from jray.util.profiling import profile as run

    prof = _call(run, ns, task_id=ns.task_id, actor_id=ns.actor_id, pid=ns.pid, duration=ns.duration)
    print(prof.top(20))
    if ns.output:
        with open(ns.output, "w") as f:
            f.write(prof.to_svg())
        print(f"flame graph: {ns.output}")
    return 0
