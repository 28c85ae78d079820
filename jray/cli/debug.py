"""``jray debug``: list the tasks paused at ``breakpoint()`` anywhere in the
cluster and attach pdb to one (Ray's ``ray debug``). Reads commands from
this terminal; works from any machine with the cluster's address and
token (``JRAY_ADDRESS``/``JRAY_TOKEN``, ``--address``, or the address file
on a cluster machine)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from jray.cli.command import CliError
from jray.cli.connect import configure_address, target


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("index", nargs="?", type=int, default=None,
                   help="attach to the paused task with this index in the list (without: list, then ask)")
    p.add_argument("--list", action="store_true", help="list the paused tasks and exit")
    p.add_argument("--wait", type=float, default=0.0, metavar="S",
                   help="wait up to S seconds for a task to pause when none is paused yet")
    configure_address(p)


def _rows(address: str, token: str) -> list[dict[str, Any]]:
    import grpc

    from jray.util.rpdb import list_breakpoints

    try:
        return list_breakpoints(address=address, token=token)
    except grpc.RpcError as e:
        code = e.code() if hasattr(e, "code") else None
        if code == grpc.StatusCode.UNAUTHENTICATED:
            raise CliError(f"The cluster at {address} refused the token (JRAY_TOKEN is not its token).") from None
        raise CliError(f"No jray cluster is running at {address} ({code.name if code else e}).") from None


def _table(rows: list[dict[str, Any]]) -> str:
    now = time.time()
    lines = [f"{'#':>3}  {'function':<24} {'where':<40} {'pid':>7}  {'node':<15} paused"]
    for i, r in enumerate(rows):
        where = str(r.get("where", ""))
        if len(where) > 40:
            where = "..." + where[-37:]
        lines.append(f"{i:>3}  {str(r.get('function') or '?')[:24]:<24} {where:<40} {r.get('pid', ''):>7}  "
                     f"{str(r.get('node_ip', ''))[:15]:<15} {max(0, now - float(r.get('time', now))):.0f} s ago")
    return "\n".join(lines)


def run(ns: argparse.Namespace) -> int:
    from jray._private import debugger

    address, token = target(ns.address)
    deadline = time.monotonic() + max(0.0, ns.wait)
    rows = _rows(address, token)
    while not rows and time.monotonic() < deadline:
        time.sleep(0.2)
        rows = _rows(address, token)
    if not rows:
        print("No task is paused at a breakpoint. (A task pauses at breakpoint() or jray.util.pdb.set_trace(); "
              "a failed task's frames are debugged from the driver that caught its error: "
              "jray.util.rpdb.post_mortem(err) or %jray debug.)")
        return 0 if ns.list else 1
    print(_table(rows))
    if ns.list:
        return 0
    index = ns.index
    if index is None:
        try:
            answer = input("Enter the index of the task to debug (Enter: 0): ").strip()
        except EOFError:
            answer = ""
        try:
            index = int(answer or "0")
        except ValueError:
            raise CliError(f"not an index: {answer!r}") from None
    if not 0 <= index < len(rows):
        raise CliError(f"no paused task with index {index} (0 to {len(rows) - 1})")
    if not debugger.open_session(rows[index], token):
        debugger.forget_session(lambda f: _gcs(address, token, f), str(rows[index].get("session", "")))
        return 1
    return 0


def _gcs(address: str, token: str, factory: Any) -> Any:
    from jray._private.state.client import StateClient

    return StateClient(address, token).run(lambda gcs, _raylet: factory(gcs))
