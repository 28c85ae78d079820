"""``jray logs``: the log files of a cluster's nodes (Ray's ``ray logs``),
read through each node's raylet, so another machine's logs too.

::

    jray logs                              # the head node's log files, by group
    jray logs 'worker-*' --node-id ID      # those matching a glob on a node (a single match: printed)
    jray logs cluster raylet-123.log       # one file (``cluster`` as in Ray; optional)
    jray logs worker --pid 4242            # a worker's log, on whichever node started it
    jray logs worker --task-id ID          # the log of the worker that ran a task
    jray logs worker --actor-id ID         # the log of an actor's worker
    jray logs task --id ID | actor --id ID # Ray's spellings of the two above
    ... --tail 100 --follow                # the last 100 lines, then new ones as they come (Ctrl-C stops)

A file is printed from its last ``--tail`` lines (1000 by default, as Ray;
-1: all). Bad names (absolute, ``..``) and unknown files, workers, tasks or
actors end with one line saying so, exit code 1.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from jray.cli.command import CliError
from jray.cli.connect import configure_address, target
from jray.cli.tables import fmt_bytes

ENTITIES = ("cluster", "worker", "task", "actor")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", nargs="?", default=None, metavar="cluster|worker|task|actor|GLOB",
                   help="what to show: a file name or glob (lists matches; one match is printed), "
                        "'cluster [GLOB]' (the same), 'worker' (with --pid, --task-id or --actor-id), "
                        "'task --id ID', 'actor --id ID'")
    p.add_argument("glob", nargs="?", default=None, help="after 'cluster': a file name or glob")
    p.add_argument("--node-id", default=None, help="the node (an id or a prefix of one; default: the head)")
    p.add_argument("--node-ip", default=None, help="the node by its IP")
    p.add_argument("--pid", type=int, default=None, help="a worker's log by its pid")
    p.add_argument("--task-id", default=None, help="the log of the worker that ran this task")
    p.add_argument("--actor-id", default=None, help="the log of this actor's worker")
    p.add_argument("--id", dest="entity_id", default=None, help="with 'task' or 'actor': its id")
    p.add_argument("--attempt-number", type=int, default=0, help="with a task: which attempt (default 0)")
    p.add_argument("--tail", "-t", type=int, default=1000,
                   help="print the last N lines (default 1000; -1: the whole file)")
    p.add_argument("--follow", "-f", action="store_true", help="then print new lines as they are written")
    p.add_argument("--interval", type=float, default=None, help="seconds between reads when following")
    configure_address(p)


def run(ns: argparse.Namespace) -> int:
    import grpc

    address, token = target(ns.address)
    try:
        return _run(ns, address, token)
    except grpc.RpcError as e:
        code = e.code() if hasattr(e, "code") else None
        if code == grpc.StatusCode.UNAUTHENTICATED:
            raise CliError(f"The cluster at {address} refused the token (JRAY_TOKEN is not its token).") from None
        raise CliError(f"The cluster at {address} did not answer ({code.name if code else e}).") from None
    except (ValueError, FileNotFoundError) as e:
        raise CliError(str(e)) from None


def _run(ns: argparse.Namespace, address: str, token: str) -> int:
    what, glob = ns.what, ns.glob
    pid, task_id, actor_id = ns.pid, ns.task_id, ns.actor_id
    if what in ("task", "actor"):
        if not ns.entity_id:
            raise CliError(f"'jray logs {what}' needs --id ID")
        task_id, actor_id = (ns.entity_id, actor_id) if what == "task" else (task_id, ns.entity_id)
    elif what == "worker":
        if sum(x is not None for x in (pid, task_id, actor_id)) != 1:
            raise CliError("'jray logs worker' needs one of --pid N, --task-id ID or --actor-id ID")
    elif ns.entity_id:
        raise CliError("--id goes with 'jray logs task' or 'jray logs actor'")
    elif what not in (None, "cluster"):
        if glob is not None:
            raise CliError(f"one file name or glob at a time (got {what!r} and {glob!r})")
        glob = what
    if what in ("worker", "task", "actor") or pid is not None or task_id or actor_id:
        if glob is not None:
            raise CliError(f"a file name ({glob!r}) and a worker, task or actor: give one of them")
        return _print(address, token, ns, pid=pid, task_id=task_id, actor_id=actor_id)
    files = _list(address, token, ns.node_id, ns.node_ip, glob)
    if glob and len(files) == 1:  # one match: its lines (as Ray)
        return _print(address, token, ns, node_id=files[0]["node_id"], filename=files[0]["filename"])
    if not files:
        print(f"No log file matches {glob!r} on that node." if glob else "No log files on that node.")
        return 1 if glob else 0
    _show_list(files)
    return 0


def _list(address: str, token: str, node_id: str | None, node_ip: str | None,
          glob: str | None) -> list[dict[str, Any]]:
    from jray._private.state import logs as _logs
    from jray._private.state.client import StateClient

    client = StateClient(address, token)
    node = _logs.pick_node(client, node_id, node_ip)
    print(f"node {node.node_id.hex()} at {node.ip}{' (head)' if node.is_head else ''}")
    return [{"group": _logs.group_of(f.filename), "filename": f.filename, "size": f.size, "pid": f.pid,
             "alive": f.worker_alive, "node_id": node.node_id.hex()}
            for f in _logs.list_files(client, node, glob)]


def _show_list(files: list[dict[str, Any]]) -> None:
    group = None
    for f in sorted(files, key=lambda f: (f["group"], f["filename"])):
        if f["group"] != group:
            group = f["group"]
            print(f"\n=== {group} ===")
        worker = f"  worker pid {f['pid']}{'' if f['alive'] else ' (exited)'}" if f["pid"] else ""
        print(f"{f['filename']}  {fmt_bytes(f['size'])}{worker}")


def _print(address: str, token: str, ns: argparse.Namespace, **what: Any) -> int:
    from jray.util.state import get_log

    what.setdefault("node_id", ns.node_id)
    lines = get_log(address, node_ip=ns.node_ip, tail=ns.tail, follow=ns.follow,
                    attempt_number=ns.attempt_number, _interval=ns.interval, errors="replace", token=token,
                    **what)
    for line in lines:
        sys.stdout.write(line + "\n")
        if ns.follow:
            sys.stdout.flush()
    return 0
