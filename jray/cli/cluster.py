"""``jray start``, ``jray stop``, ``jray status``: a cluster whose daemons
outlive the shell that started them (Ray's ``ray start/stop/status``).

::

    jray start --head --num-cpus 8        # GCS + head raylet, detached
    jray start --address HEAD:PORT        # another node joins
    jray status                           # nodes, resources, object stores
    jray stop                             # everything the address file records

``jray start --head`` writes the address file (``jray._private.node``) that
``stop``, ``status``, the state commands and ``jray.init(address="auto")``
read.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Any

from jray._private import node as _node
from jray._private import tls
from jray.cli import argtypes
from jray.cli.command import CliError, err
from jray.cli.connect import check_gcs, configure_address, rpc, target
from jray.cli.tables import fmt_bytes, fmt_num, table

DEFAULT_PORT = 6379  # Ray's default GCS port


def _running(info: dict[str, Any] | None) -> bool:
    """Whether a daemon recorded in ``info`` (the address file) is alive here."""
    return info is not None and any(role != "worker" for role, _ in _node.session_processes(info))


# -- jray start ---------------------------------------------------------------


def configure_start(p: argparse.ArgumentParser) -> None:
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--head", action="store_true", help="start the head node (GCS + raylet)")
    mode.add_argument(
        "--address",
        type=argtypes.host_port,
        metavar="HOST:PORT",
        help="join the cluster whose GCS listens at HOST:PORT (token: JRAY_TOKEN or the address file)",
    )
    p.add_argument(
        "--port",
        type=argtypes.port,
        default=None,
        help=f"GCS port of the head (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    p.add_argument(
        "--num-cpus", type=argtypes.non_negative_int, help="CPUs this node offers (default: all)"
    )
    p.add_argument(
        "--num-gpus", type=argtypes.non_negative_int, help="GPUs this node offers (default: detected)"
    )
    p.add_argument(
        "--resources",
        type=argtypes.resources,
        metavar="JSON",
        help="custom resources, e.g. '{\"gpu_box\": 1}'",
    )
    p.add_argument(
        "--labels",
        type=argtypes.labels,
        metavar="JSON",
        help="labels of this node, e.g. '{\"zone\": \"a\"}' (state API, label scheduling, autoscaler)",
    )
    p.add_argument(
        "--object-store-memory",
        type=argtypes.positive_int,
        metavar="BYTES",
        help="size of this node's shared-memory object store (default: 30%% of RAM)",
    )
    p.add_argument(
        "--memory", type=argtypes.positive_int, metavar="BYTES", help="the node's 'memory' resource"
    )
    p.add_argument(
        "--node-ip-address",
        type=argtypes.ip,
        default="127.0.0.1",
        metavar="IP",
        help="address the daemons listen on and announce (default 127.0.0.1: this machine only)",
    )
    p.add_argument(
        "--tls",
        action="store_true",
        help="(head) mutual TLS between all of the cluster's processes, with a CA and certificate made for it "
        "(kept in --tls-dir; other machines need a copy: JRAY_TLS_DIR=DIR)",
    )
    p.add_argument(
        "--tls-dir",
        metavar="DIR",
        help="where --tls keeps the cluster's certificates (default: <jray temp dir>/tls; reused if there)",
    )
    p.add_argument(
        "--restore",
        action="store_true",
        help="(head) start the GCS of the cluster the address file names again, from the tables its session "
        "kept (same port and token; its nodes, jobs and actors carry on)",
    )
    p.add_argument(
        "--dashboard-port",
        type=int,
        default=None,
        help="(head) port of the jobs HTTP API (default 8265, or a free port when that one is taken)",
    )
    p.add_argument(
        "--dashboard",
        action="store_true",
        help="(head) serve the dashboard (nodes, jobs with their logs, the live views) on the jobs API's port, "
        "behind the cluster token; on by default when the head listens on loopback only",
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
        "labels": ns.labels,
    }


def start(ns: argparse.Namespace) -> int:
    if ns.port is not None and not ns.head:
        raise CliError("--port sets the head's GCS port; a joining node takes --address HOST:PORT.")
    if ns.restore:
        if not ns.head:
            raise CliError("--restore restarts a head's GCS: use it with --head.")
        return _restore_head()
    return _start_head(ns) if ns.head else _start_node(ns)


def _start_head(ns: argparse.Namespace) -> int:
    current = _node.read_address_file()
    if _running(current) and not (current or {}).get("driver_pid"):  # a driver's own cluster may be replaced
        assert current is not None
        raise CliError(
            f"A jray cluster is already running at {current['gcs_address']} (session "
            f"{current['session_dir']}); stop it first with 'jray stop'."
        )
    port = DEFAULT_PORT if ns.port is None else ns.port
    if ns.tls or ns.tls_dir:
        tls_dir = os.path.abspath(ns.tls_dir or os.path.join(_node.jray_tmp_root(), "tls"))
        try:
            tls.generate(tls_dir, hosts=[ns.node_ip_address])
        except (tls.TLSConfigError, OSError) as e:
            raise CliError(f"could not set up TLS in {tls_dir}: {e}") from None
        os.environ.update(tls.env_of(tls_dir))  # the daemons inherit it
    try:
        cfg = tls.current()
        if cfg is not None:
            cfg.read()  # unreadable files: say so now, not in a daemon's log
    except tls.TLSConfigError as e:
        raise CliError(str(e)) from None
    try:
        handle = _node.start_head(port=port, detached=True, supervise=True, **_node_args(ns))
    except (RuntimeError, OSError, ValueError) as e:
        hint = f" (is port {port} in use? --port 0 picks a free one)" if port else ""
        raise CliError(f"could not start the head node{hint}: {e}") from None
    _node.write_address_file(handle)
    addr, head = handle.gcs_address, handle.head
    jobs_api = _start_job_agent(handle, ns.dashboard_port, ns.dashboard or None)
    res = _node.node_resources(
        ns.num_cpus, ns.num_gpus, ns.resources, ns.memory, ns.node_ip_address, True
    )
    print(
        f"Started the jray head node: GCS at {addr}, node {head.node_id}, {fmt_num(res['CPU'])} CPU, "
        f"{fmt_num(res.get('GPU', 0))} GPU."
    )
    print(f"Session {handle.session_dir} (logs in its logs/ folder).\n")
    print('Connect from Python on this machine:\n    import jray\n    jray.init(address="auto")\n')
    tls_env = _tls_env()
    if cfg is not None:
        where = os.environ.get("JRAY_TLS_DIR")
        print(
            "TLS is on (mutual): only processes holding the cluster's certificate can connect. "
            + (f"Copy {where} to each machine that connects (keep it private: node.key is the cluster's key).\n"
               if where else "Give each machine that connects the same JRAY_TLS_* files.\n")
        )
    print(
        "Connect from another machine (the token is a secret: it grants control of the cluster):\n"
        f"    {tls_env}JRAY_ADDRESS={addr} JRAY_TOKEN={handle.token} python your_script.py   # jray.init()\n"
    )
    print(f"Add a node:\n    {tls_env}JRAY_TOKEN={handle.token} jray start --address {addr}\n")
    if jobs_api:
        print(f"Jobs API at http://{jobs_api} (submit with 'jray job submit -- CMD', token required).")
        host = jobs_api.rsplit(":", 1)[0]
        if ns.dashboard or host.startswith("127.") or host in ("localhost", "[::1]"):
            print(f"Dashboard at http://{jobs_api}/ (log in with the token).")
        print()
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


def _start_job_agent(handle: Any, port: int | None, dashboard: bool | None = None) -> str:
    """The jobs agent (HTTP API on the head); its "host:port", "" if it did not start."""
    from jray._private.jobs import process

    try:
        info = process.start_agent(session_dir=handle.session_dir, gcs_address=handle.gcs_address,
                                   token=handle.token, host=handle.gcs_address.rsplit(":", 1)[0].strip("[]"),
                                   port=port, watch_pid=handle.supervisor_pid, dashboard=dashboard)
    except (RuntimeError, OSError) as e:
        err(f"the jobs API did not start: {e}")
        return ""
    return str(info["http_address"])


def _restore_head() -> int:
    """``jray start --head --restore``: the GCS of the recorded cluster, again."""
    current = _node.read_address_file()
    if current is None:
        raise CliError("--restore: no cluster is recorded on this machine (the address file is missing).")
    if any(role in ("gcs", "gcs_supervisor") for role, _ in _node.session_processes(current)):
        raise CliError(f"The GCS of the cluster at {current['gcs_address']} is running; nothing to restore.")
    tls.adopt(current)
    try:
        handle = _node.restore_head(current)
    except (RuntimeError, OSError, ValueError) as e:
        raise CliError(f"could not restore the GCS at {current['gcs_address']}: {e}") from None
    print(f"Restored the GCS at {handle.gcs_address} (pid {handle.gcs_pid}) from the tables of session "
          f"{handle.session_dir}; its nodes, jobs and actors reconnect.")
    from jray._private.jobs import process

    if process.agent_process(handle.session_dir) is None:  # it ended with the supervisor it watched
        jobs_api = _start_job_agent(handle, None)
        if jobs_api:
            print(f"Jobs API at http://{jobs_api}.")
    return 0


def _tls_env() -> str:
    """The TLS part of the connect instructions (empty with TLS off)."""
    if tls.current() is None:
        return ""
    if os.environ.get("JRAY_TLS_DIR") and not os.environ.get("JRAY_TLS_CA_CERT"):
        return f"JRAY_TLS_DIR={os.environ['JRAY_TLS_DIR']} "
    return "JRAY_USE_TLS=1 JRAY_TLS_CA_CERT=... JRAY_TLS_SERVER_CERT=... JRAY_TLS_SERVER_KEY=... "


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
    if ns.tls or ns.tls_dir:
        raise CliError("--tls/--tls-dir make a head's certificates; a joining node uses the head's: copy its TLS "
                       "directory here and set JRAY_TLS_DIR=DIR.")
    if same:
        tls.adopt(current)
    check_gcs(address, token)
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

        def stop_node() -> None:
            _node.stop_node(node)
            print(f"Stopped node {node.node_id}.", flush=True)

        return _block(
            lambda: {
                "session_dir": handle.session_dir,
                "gcs_pid": 0,
                "nodes": [{"raylet_pid": node.raylet_pid}],
            },
            "the node",
            stop_node,
        )
    return 0


def _block(watched: Callable[[], dict[str, Any]], what: str, stop: Callable[[], None]) -> int:
    """Wait for SIGINT/SIGTERM (then ``stop()``, exit 0) or for a daemon of
    ``watched()`` to exit (then ``stop()`` the rest, exit 1)."""
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    info = watched()

    def daemons() -> set[tuple[str, int]]:
        procs = _node.session_processes(info)
        # A supervised GCS is the supervisor's to restart (its pid changes).
        skip = {"worker", "gcs"} if any(role == "gcs_supervisor" for role, _ in procs) else {"worker"}
        return {(role, p.pid) for role, p in procs if role not in skip}

    want = daemons()
    print(f"Blocking; Ctrl-C stops {what}.", flush=True)
    while not done.wait(0.5):
        now = daemons()
        if want - now:
            gone = ", ".join(f"{role} (pid {pid})" for role, pid in sorted(want - now))
            err(f"{gone} exited; stopping {what}.")
            stop()
            return 1
    stop()
    return 0


# -- jray stop ----------------------------------------------------------------


def configure_stop(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true", help="SIGKILL at once instead of SIGTERM first")
    p.add_argument(
        "--grace-period",
        type=argtypes.non_negative_int,
        default=10,
        metavar="SECONDS",
        help="how long to wait after SIGTERM before SIGKILL (default 10)",
    )


def _stop_and_report(info: dict[str, Any], grace: float, force: bool) -> None:
    from jray._private.jobs import process

    process.stop_agent(info["session_dir"], grace=0.0 if force else grace)  # first: it stops its jobs
    report = _node.stop_session(info, grace=grace, force=force)
    pids = dict(report["pids"])
    pids["gcs"] = [p for p in pids["gcs"] if p not in pids["raylet"]]  # (a head raylet serving the GCS: one process)
    if not any(pids.values()):
        print(f"The jray cluster at {info['gcs_address']} had no process left running here.")
    else:
        parts = [
            f"{len(pids[r])} {name}{'s' if len(pids[r]) > 1 else ''} (pid{'s' if len(pids[r]) > 1 else ''} "
            f"{', '.join(map(str, pids[r]))})"
            for r, name in (("gcs_supervisor", "GCS supervisor"), ("gcs", "GCS"), ("raylet", "raylet"),
                            ("worker", "worker"))
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


def stop(ns: argparse.Namespace) -> int:
    info = _node.read_address_file()
    if info is None:
        if os.path.exists(_node.address_file()):  # left by a cluster whose session is gone
            os.unlink(_node.address_file())
        print("No jray cluster is running.")
        return 0
    if info.get("driver_pid") and _running(info):
        print(f"The jray cluster at {info['gcs_address']} was started by process {info['driver_pid']} "
              "(jray.init() in a script or notebook, or a Jupyter server), which stops it: jray.shutdown() there, "
              "the Stop of the server's jray sidebar, or end that process.")
        return 0
    _stop_and_report(info, float(ns.grace_period), ns.force)
    return 0


# -- jray status --------------------------------------------------------------


def configure_status(p: argparse.ArgumentParser) -> None:
    configure_address(p)


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
        cpu = f"{fmt_num(tot.get('CPU', 0) - avail.get('CPU', 0))}/{fmt_num(tot.get('CPU', 0))}"
        gpu = f"{fmt_num(tot.get('GPU', 0) - avail.get('GPU', 0))}/{fmt_num(tot.get('GPU', 0))}"
        store = (
            f"{fmt_bytes(n.store_used)} / {fmt_bytes(n.object_store_memory)}"
            f" ({100 * n.store_used / n.object_store_memory:.0f}%)"
            if n.object_store_memory
            else "-"
        )
        # The machine the node runs on (psutil, sampled by its raylet): not the logical `memory` resource.
        memory = (
            f"{fmt_bytes(n.memory_used)} / {fmt_bytes(n.memory_total)}"
            f" ({100 * n.memory_used / n.memory_total:.0f}%)"
            if n.alive and n.memory_total
            else "-"
        )
        host_cpu = f"{n.cpu_percent:.0f}%" if n.alive and n.memory_total else "-"
        rows.append(
            [
                n.node_id.hex(),
                f"{n.ip}:{n.raylet_port}",
                "ALIVE" if n.alive else "DEAD",
                "yes" if n.is_head else "",
                cpu,
                gpu,
                store,
                memory,
                host_cpu,
                str(n.num_workers) if n.alive else "-",
            ]
        )
    lines.append(
        table(
            [
                "NODE ID",
                "RAYLET",
                "STATE",
                "HEAD",
                "CPU used",
                "GPU used",
                "OBJECT STORE used",
                "MEMORY used",
                "HOST CPU",
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
        fmt = fmt_bytes if k == "memory" else fmt_num
        res_rows.append([k, fmt(total[k] - avail_sum[k]), fmt(avail_sum[k]), fmt(total[k])])
    cap = sum(n.object_store_memory for n in alive)
    used = sum(n.store_used for n in alive)
    res_rows.append(["object_store_memory", fmt_bytes(used), fmt_bytes(cap - used), fmt_bytes(cap)])
    lines += [
        "",
        "Resources (live nodes)",
        table(["RESOURCE", "USED", "AVAILABLE", "TOTAL"], res_rows),
    ]
    pending = sum(n.pending_leases for n in alive)
    spilled = sum(n.spilled_bytes for n in alive)
    extra = []
    if pending:
        extra.append(f"{pending} lease request{'s' if pending != 1 else ''} waiting for resources")
    if spilled:
        extra.append(f"{fmt_bytes(spilled)} spilled to disk")
    if extra:
        lines += ["", "; ".join(extra).capitalize() + "."]
    return "\n".join(lines)


def status(ns: argparse.Namespace) -> int:
    from jray._private import gcs_client

    address, token = target(ns.address)
    nodes = rpc(address, lambda: gcs_client.nodes_at(address, token, timeout=5.0))
    print(format_status(address, nodes))
    from jray.cli.autoscale import autoscaler_section

    section = autoscaler_section(address, token)
    if section:
        print("\n" + section)
    return 0
