"""The ``jray`` command line (Ray's ``ray start/stop/status``): a cluster whose
daemons outlive the shell that started them.

::

    jray start --head --num-cpus 8        # GCS + head raylet, detached
    jray start --address HEAD:PORT        # another node joins
    jray status                           # nodes, resources, object stores
    jray stop                             # everything the address file records

Each subcommand is a ``Command`` in ``COMMANDS``. Other modules add theirs
with ``register``; the ones named in ``_EXTENSION_MODULES`` are imported
when the parser is built (the home of ``memory``, ``list`` and
``microbenchmark``). Exit codes: 0 success, 1 failure (no cluster, a daemon
that did not start), 2 bad usage, as argparse does.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import ipaddress
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from jray._private import node as _node

DEFAULT_PORT = 6379  # Ray's default GCS port


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {}
# Modules that call ``register`` at import; others append their own here.
_EXTENSION_MODULES: list[str] = ["jray._private.perf.cli", "jray._private.state_cli"]


def register(
    name: str, help: str, configure: Callable[[argparse.ArgumentParser], None]
) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Decorator: ``run(ns) -> exit code`` becomes ``jray <name>``."""

    def deco(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = Command(name, help, configure, run)
        return run

    return deco


class CliError(Exception):
    """A failure to report in one line and exit 1 (not a usage error)."""


# -- argument types: argparse turns their errors into exit 2 naming the flag --


def _non_negative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {v}")
    return v


def _positive_int(text: str) -> int:
    v = _non_negative_int(text)
    if v == 0:
        raise argparse.ArgumentTypeError("must be positive, got 0")
    return v


def _port(text: str) -> int:
    v = _non_negative_int(text)
    if v > 65535:
        raise argparse.ArgumentTypeError(
            f"must be a port number (0-65535; 0 picks a free one), got {v}"
        )
    return v


def _resources(text: str) -> dict[str, float]:
    try:
        value = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"expected a JSON object such as '{{\"gpu_box\": 1}}', got {text!r}"
        )
    out: dict[str, float] = {}
    for k, v in value.items():
        if k in ("CPU", "GPU"):
            raise argparse.ArgumentTypeError(
                f"use --num-{k.lower()}s instead of {k!r} in --resources"
            )
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise argparse.ArgumentTypeError(
                f"the quantity of {k!r} must be a non-negative number, got {v!r}"
            )
        out[k] = float(v)
    return out


def _ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address: {text!r}") from None


def _host_port(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return text


# -- output helpers -----------------------------------------------------------


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _num(v: float) -> str:
    return f"{v:g}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    )


def _err(msg: str) -> None:
    print(f"jray: {msg}", file=sys.stderr)


# -- cluster look-up ----------------------------------------------------------


def _target(address: str | None) -> tuple[str, str]:
    """(gcs address, token) of the cluster a command talks to: ``--address``,
    else ``JRAY_ADDRESS``, else the address file of ``jray start --head``."""
    info = _node.read_address_file()
    address = address or os.environ.get("JRAY_ADDRESS")
    if not address or address == "auto":
        if info is None:
            raise CliError(
                "No jray cluster is running (no address file at "
                f"{_node.address_file()}); start one with 'jray start --head'."
            )
        return info["gcs_address"], info["token"]
    address = address.removeprefix("jray://")
    token = os.environ.get("JRAY_TOKEN")
    if token is None and info is not None and info.get("gcs_address") == address:
        token = info["token"]
    if token is None:
        raise CliError(
            f"No token for the cluster at {address}: set JRAY_TOKEN (printed by "
            "'jray start --head' on the head machine)."
        )
    return address, token


def _rpc(address: str, token: str, method: str, request: Any, timeout: float = 5.0) -> Any:
    """One GCS call; a clear CliError when the cluster is down or refuses the token."""
    import grpc

    from jray._private import rpc
    from jray._private.protocol import gcs_pb2_grpc as ggrpc

    async def call() -> Any:
        ch = rpc.make_channel(address, token)
        try:
            return await getattr(ggrpc.GcsServiceStub(ch), method)(request, timeout=timeout)
        finally:
            await ch.close()

    try:
        return asyncio.run(call())
    except grpc.RpcError as e:
        code = e.code() if hasattr(e, "code") else None
        if code == grpc.StatusCode.UNAUTHENTICATED:
            raise CliError(
                f"The cluster at {address} refused the token (JRAY_TOKEN is not its token)."
            ) from None
        raise CliError(
            f"No jray cluster is running at {address} (it does not answer: "
            f"{code.name if code else e})."
        ) from None


def _check_gcs(address: str, token: str) -> None:
    from jray._private.protocol import gcs_pb2 as gpb

    _rpc(address, token, "CheckAlive", gpb.CheckAliveRequest())


def _running(info: dict[str, Any] | None) -> bool:
    """Whether a daemon recorded in ``info`` (the address file) is alive here."""
    return info is not None and any(role != "worker" for role, _ in _node.session_processes(info))


# -- jray start ---------------------------------------------------------------


def _configure_start(p: argparse.ArgumentParser) -> None:
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--head", action="store_true", help="start the head node (GCS + raylet)")
    mode.add_argument(
        "--address",
        type=_host_port,
        metavar="HOST:PORT",
        help="join the cluster whose GCS listens at HOST:PORT (token: JRAY_TOKEN or the address file)",
    )
    p.add_argument(
        "--port",
        type=_port,
        default=None,
        help=f"GCS port of the head (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    p.add_argument(
        "--num-cpus", type=_non_negative_int, help="CPUs this node offers (default: all)"
    )
    p.add_argument(
        "--num-gpus", type=_non_negative_int, help="GPUs this node offers (default: detected)"
    )
    p.add_argument(
        "--resources",
        type=_resources,
        metavar="JSON",
        help="custom resources, e.g. '{\"gpu_box\": 1}'",
    )
    p.add_argument(
        "--object-store-memory",
        type=_positive_int,
        metavar="BYTES",
        help="size of this node's shared-memory object store (default: 30%% of RAM)",
    )
    p.add_argument(
        "--memory", type=_positive_int, metavar="BYTES", help="the node's 'memory' resource"
    )
    p.add_argument(
        "--node-ip-address",
        type=_ip,
        default="127.0.0.1",
        metavar="IP",
        help="address the daemons listen on and announce (default 127.0.0.1: this machine only)",
    )
    p.add_argument(
        "--block",
        action="store_true",
        help="stay in the foreground; Ctrl-C stops what this command started",
    )


def _node_args(ns: argparse.Namespace) -> dict[str, Any]:
    return {
        "num_cpus": ns.num_cpus,
        "num_gpus": ns.num_gpus,
        "resources": ns.resources,
        "object_store_memory": ns.object_store_memory,
        "memory": ns.memory,
        "ip": ns.node_ip_address,
    }


@register("start", "start a head node, or a node that joins a cluster", _configure_start)
def _start(ns: argparse.Namespace) -> int:
    if ns.port is not None and not ns.head:
        raise CliError("--port sets the head's GCS port; a joining node takes --address HOST:PORT.")
    return _start_head(ns) if ns.head else _start_node(ns)


def _start_head(ns: argparse.Namespace) -> int:
    current = _node.read_address_file()
    if _running(current):
        assert current is not None
        raise CliError(
            f"A jray cluster is already running at {current['gcs_address']} (session "
            f"{current['session_dir']}); stop it first with 'jray stop'."
        )
    port = DEFAULT_PORT if ns.port is None else ns.port
    try:
        handle = _node.start_head(port=port, detached=True, **_node_args(ns))
    except (RuntimeError, OSError, ValueError) as e:
        hint = f" (is port {port} in use? --port 0 picks a free one)" if port else ""
        raise CliError(f"could not start the head node{hint}: {e}") from None
    _node.write_address_file(handle)
    addr, head = handle.gcs_address, handle.head
    res = _node.node_resources(
        ns.num_cpus, ns.num_gpus, ns.resources, ns.memory, ns.node_ip_address, True
    )
    print(
        f"Started the jray head node: GCS at {addr}, node {head.node_id}, {_num(res['CPU'])} CPU, "
        f"{_num(res.get('GPU', 0))} GPU."
    )
    print(f"Session {handle.session_dir} (logs in its logs/ folder).\n")
    print('Connect from Python on this machine:\n    import jray\n    jray.init(address="auto")\n')
    print(
        "Connect from another machine (the token is a secret: it grants control of the cluster):\n"
        f"    JRAY_ADDRESS={addr} JRAY_TOKEN={handle.token} python your_script.py   # jray.init()\n"
    )
    print(f"Add a node:\n    JRAY_TOKEN={handle.token} jray start --address {addr}\n")
    if ns.node_ip_address == "127.0.0.1":
        print(
            "The daemons listen on 127.0.0.1 only; restart with --node-ip-address IP to accept other machines."
        )
    print("Stop the cluster with 'jray stop'.")
    if ns.block:
        info = _node.read_address_file()
        assert info is not None
        # Read again at the end: nodes may have joined in the meantime.
        return _block(
            lambda: info,
            "the cluster",
            lambda: _stop_and_report(_node.read_address_file() or info, 10.0, False),
        )
    return 0


def _start_node(ns: argparse.Namespace) -> int:
    address: str = ns.address
    current = _node.read_address_file()
    env_token = os.environ.get("JRAY_TOKEN")
    same = current is not None and (
        current.get("gcs_address") == address or current.get("token") == env_token
    )
    token = env_token or (current["token"] if same and current else None)
    if not token:
        raise CliError(
            f"No token for the cluster at {address}: set JRAY_TOKEN to the token printed by "
            "'jray start --head' (or run this on the head machine, where the address file has it)."
        )
    if not same and _running(current):
        assert current is not None
        raise CliError(
            f"This machine already runs a node of the jray cluster at {current['gcs_address']}; "
            "stop it first with 'jray stop'."
        )
    _check_gcs(address, token)
    try:
        handle, node = _node.join_cluster(
            address, token, current["session_dir"] if same and current else None, **_node_args(ns)
        )
    except (RuntimeError, OSError, ValueError) as e:
        raise CliError(f"could not start a node joining {address}: {e}") from None
    if not same:
        _node.write_address_file(handle)  # so 'jray stop' and jray.init("auto") find it here
    print(
        f"Started a jray node {node.node_id} (raylet {node.raylet_address}) in the cluster at {address}."
    )
    print("See the cluster with 'jray status'; stop this machine's nodes with 'jray stop'.")
    if ns.block:

        def stop() -> None:
            _node.stop_node(node)
            print(f"Stopped node {node.node_id}.")

        return _block(
            lambda: {
                "session_dir": handle.session_dir,
                "gcs_pid": 0,
                "nodes": [{"raylet_pid": node.raylet_pid}],
            },
            "the node",
            stop,
        )
    return 0


def _block(watched: Callable[[], dict[str, Any]], what: str, stop: Callable[[], None]) -> int:
    """Wait for SIGINT/SIGTERM (then ``stop()``, exit 0) or for a daemon of
    ``watched()`` to exit (then ``stop()`` the rest, exit 1)."""
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    info = watched()
    want = {(role, p.pid) for role, p in _node.session_processes(info) if role != "worker"}
    print(f"Blocking; Ctrl-C stops {what}.", flush=True)
    while not done.wait(0.5):
        now = {(role, p.pid) for role, p in _node.session_processes(info) if role != "worker"}
        if want - now:
            gone = ", ".join(f"{role} (pid {pid})" for role, pid in sorted(want - now))
            _err(f"{gone} exited; stopping {what}.")
            stop()
            return 1
    stop()
    return 0


# -- jray stop ----------------------------------------------------------------


def _configure_stop(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true", help="SIGKILL at once instead of SIGTERM first")
    p.add_argument(
        "--grace-period",
        type=_non_negative_int,
        default=10,
        metavar="SECONDS",
        help="how long to wait after SIGTERM before SIGKILL (default 10)",
    )


def _stop_and_report(info: dict[str, Any], grace: float, force: bool) -> None:
    report = _node.stop_session(info, grace=grace, force=force)
    pids = report["pids"]
    if not any(pids.values()):
        print(f"The jray cluster at {info['gcs_address']} had no process left running here.")
    else:
        parts = [
            f"{len(pids[r])} {name}{'s' if len(pids[r]) > 1 else ''} (pid{'s' if len(pids[r]) > 1 else ''} "
            f"{', '.join(map(str, pids[r]))})"
            for r, name in (("gcs", "GCS"), ("raylet", "raylet"), ("worker", "worker"))
            if pids[r]
        ]
        print(f"Stopped the jray cluster at {info['gcs_address']}: " + "; ".join(parts) + ".")
    if report["killed"]:
        print(
            f"SIGKILLed (did not exit on SIGTERM{' in time' if not force else ''}): "
            f"{', '.join(map(str, report['killed']))}."
        )
    if report["store_files"]:
        print(f"Removed store files: {', '.join(report['store_files'])}.")


@register("stop", "stop the cluster recorded in the address file", _configure_stop)
def _stop(ns: argparse.Namespace) -> int:
    info = _node.read_address_file()
    if info is None:
        if os.path.exists(_node.address_file()):  # left by a cluster whose session is gone
            os.unlink(_node.address_file())
        print("No jray cluster is running.")
        return 0
    _stop_and_report(info, float(ns.grace_period), ns.force)
    return 0


# -- jray status --------------------------------------------------------------


def _configure_status(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--address",
        type=_host_port,
        metavar="HOST:PORT",
        help="GCS address (default: JRAY_ADDRESS, else the address file)",
    )


def format_status(address: str, nodes: Sequence[Any]) -> str:
    """The ``jray status`` report for ``NodeInfo`` messages."""
    alive = [n for n in nodes if n.alive]
    lines = [
        f"jray cluster at {address}: {len(alive)} node{'s' if len(alive) != 1 else ''} alive"
        + (f", {len(nodes) - len(alive)} dead" if len(nodes) > len(alive) else ""),
        "",
    ]
    rows = []
    for n in sorted(nodes, key=lambda n: (not n.is_head, not n.alive, n.ip, n.node_id)):
        tot, avail = n.resources_total, n.resources_available
        cpu = f"{_num(tot.get('CPU', 0) - avail.get('CPU', 0))}/{_num(tot.get('CPU', 0))}"
        gpu = f"{_num(tot.get('GPU', 0) - avail.get('GPU', 0))}/{_num(tot.get('GPU', 0))}"
        store = (
            f"{_bytes(n.store_used)} / {_bytes(n.object_store_memory)}"
            f" ({100 * n.store_used / n.object_store_memory:.0f}%)"
            if n.object_store_memory
            else "-"
        )
        rows.append(
            [
                n.node_id.hex(),
                f"{n.ip}:{n.raylet_port}",
                "ALIVE" if n.alive else "DEAD",
                "yes" if n.is_head else "",
                cpu,
                gpu,
                store,
                str(n.num_workers) if n.alive else "-",
            ]
        )
    lines.append(
        _table(
            [
                "NODE ID",
                "RAYLET",
                "STATE",
                "HEAD",
                "CPU used",
                "GPU used",
                "OBJECT STORE used",
                "WORKERS",
            ],
            rows,
        )
    )
    total: dict[str, float] = {}
    avail_sum: dict[str, float] = {}
    for n in alive:
        for k, v in n.resources_total.items():
            total[k] = total.get(k, 0.0) + v
            avail_sum[k] = avail_sum.get(k, 0.0) + n.resources_available.get(k, 0.0)
    names = sorted(
        (k for k in total if not k.startswith("node:")), key=lambda k: (k not in ("CPU", "GPU"), k)
    )
    res_rows = []
    for k in names:
        fmt = _bytes if k == "memory" else _num
        res_rows.append([k, fmt(total[k] - avail_sum[k]), fmt(avail_sum[k]), fmt(total[k])])
    cap = sum(n.object_store_memory for n in alive)
    used = sum(n.store_used for n in alive)
    res_rows.append(["object_store_memory", _bytes(used), _bytes(cap - used), _bytes(cap)])
    lines += [
        "",
        "Resources (live nodes)",
        _table(["RESOURCE", "USED", "AVAILABLE", "TOTAL"], res_rows),
    ]
    pending = sum(n.pending_leases for n in alive)
    spilled = sum(n.spilled_bytes for n in alive)
    extra = []
    if pending:
        extra.append(f"{pending} lease request{'s' if pending != 1 else ''} waiting for resources")
    if spilled:
        extra.append(f"{_bytes(spilled)} spilled to disk")
    if extra:
        lines += ["", "; ".join(extra).capitalize() + "."]
    return "\n".join(lines)


@register("status", "show the nodes, resources and object stores of a cluster", _configure_status)
def _status(ns: argparse.Namespace) -> int:
    from jray._private.protocol import gcs_pb2 as gpb

    address, token = _target(ns.address)
    reply = _rpc(address, token, "GetAllNodeInfo", gpb.GetAllNodeInfoRequest())
    print(format_status(address, list(reply.nodes)))
    return 0


# -- entry point --------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    for mod in _EXTENSION_MODULES:
        importlib.import_module(mod)
    # Run as ``python -m jray.scripts`` this module is ``__main__``, and the
    # extensions registered into the importable ``jray.scripts``: merge.
    canonical = importlib.import_module("jray.scripts")
    if canonical is not sys.modules[__name__]:
        for name, cmd in canonical.COMMANDS.items():
            COMMANDS.setdefault(name, cmd)
    from jray import __version__

    parser = argparse.ArgumentParser(
        prog="jray", description="Start, inspect and stop jray clusters."
    )
    parser.add_argument("--version", action="version", version=f"jray {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.configure(p)
        p.set_defaults(_run=cmd.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    try:
        return int(ns._run(ns))
    except CliError as e:
        _err(str(e))
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
