"""Entry point of a raylet process.

The GCS address comes from ``--gcs-address``, or, when it is ``-``, as the
first line on stdin: ``jray.init`` starts the GCS and the raylet at the same
time and hands the raylet the GCS port once it is known, so the two
interpreter start-ups overlap.

The worker zygote is forked from this process before any thread or gRPC
object exists (``zygote.fork_here``): this process imports its own modules
(``_RAYLET_MODULES``, and ``_GCS_MODULES`` when it serves the GCS), forks,
and the zygote imports the workers' other modules itself (``warm``, ~30 ms)
while this process goes on starting. The zygote, its workers and the
raylet share the pages of what was imported before the fork (idle PSS of a
local cluster 97 -> 90 MB when this began), and nothing is imported twice
(``init`` ~0.175 -> ~0.156 s here with the zygote's imports after the
fork). With ``JRAY_ZYGOTE_FORK=0``, or where the fork fails, the zygote is
started as a process of its own, as early, so its imports overlap ours.

A head without a supervisor (``jray.init``, ``jray.testing.Cluster``)
serves its GCS from this process (``--gcs-in-process``, ``_start_gcs_here``):
the GCS's server, tables and health loop run on this raylet's loop, its
records still go to ``gcs.log``, and its port (and this pid) come with the
raylet's ready line. One Python process fewer: idle PSS of a local cluster
63 -> 53-55 MB here. The cost: the GCS's work shares this process's GIL and
loop, and the GCS dies with its head raylet (it can be neither killed nor
restarted alone; a supervised head, ``jray start --head``, keeps a GCS
process that its supervisor restarts). ``JRAY_GCS_IN_PROCESS=0``: the GCS
forked from here instead (``--fork-gcs``, ``_fork_gcs_early``), after the
zygote, sharing the imports' pages; ``JRAY_GCS_FORK=0``: the GCS as a
process of its own, started beside the raylet.
"""

# ruff: noqa: E402  (the zygote is spawned before the heavy imports)
from __future__ import annotations

import os as _os
import subprocess as _subprocess
import sys as _sys
from typing import Any as _Any

# What this process imports below (the most of it; what is missed is only not
# shared with the zygote), imported before the zygote is forked.
_RAYLET_MODULES = ("jray._private.raylet.server", "jray._private.raylet.worker_pool", "jray._private.raylet.bulk",
                   "jray._private.runtime_env.agent", "jray._private.metrics")
_GCS_MODULES = ("jray._private.gcs.__main__", "jray._private.gcs.server")


def _spawn_zygote_early() -> _subprocess.Popen[bytes] | _Any | None:
    """Start the zygote at once when run as ``python -m`` (None when imported):
    forked from this process before it starts anything (``zygote.fork_here``),
    else (``JRAY_ZYGOTE_FORK=0``, or the fork failed) as a process of its own."""
    if __name__ != "__main__" or "--session-dir" not in _sys.argv:
        return None
    try:
        session_dir = _sys.argv[_sys.argv.index("--session-dir") + 1]
        logs = _os.path.join(session_dir, "logs")
        _os.makedirs(logs, exist_ok=True)
        if _os.environ.get("JRAY_ZYGOTE_FORK", "1") != "0":
            try:
                import importlib

                from jray._private.worker import zygote

                # This process's own modules (and the GCS's, when it serves
                # the GCS) first: the zygote and its workers share their pages.
                # The workers' other modules (~30 ms) the zygote imports after
                # the fork, while this process starts (off the path of init).
                for name in _RAYLET_MODULES + (_GCS_MODULES if "--gcs-in-process" in _sys.argv else ()):
                    importlib.import_module(name)
                return zygote.fork_here(_os.path.join(logs, "zygote.log"), {
                    "JRAY_SESSION_DIR": session_dir, "JRAY_RAYLET_PID": str(_os.getpid())}, warm_in_child=True)
            except Exception:  # noqa: BLE001 - a zygote of its own below
                pass
        fd = _os.open(_os.path.join(logs, "zygote.log"), _os.O_WRONLY | _os.O_CREAT | _os.O_APPEND, 0o600)
        try:
            return _subprocess.Popen(
                [_sys.executable, "-m", "jray._private.worker.zygote"],
                env=dict(_os.environ, JRAY_SESSION_DIR=session_dir, JRAY_RAYLET_PID=str(_os.getpid())),
                stdin=_subprocess.PIPE, stdout=_subprocess.PIPE, stderr=fd)
        finally:
            _os.close(fd)
    except (OSError, IndexError):
        return None  # started the usual way in main()


_EARLY_ZYGOTE = _spawn_zygote_early()


def _fork_gcs_early() -> tuple[int, int, list[str]] | None:
    """With ``--fork-gcs ARGV`` (a JSON list: the GCS's arguments; a head
    that ``jray.init`` or ``jray.testing.Cluster`` starts, without a
    supervisor): fork the GCS from this process, after the zygote and before
    the raylet's own modules, so the GCS shares what both import (the
    interpreter's heap of grpc, protobuf and jray: ~12 MB it held alone) and
    nothing is imported twice. Returns (its pid, the read end of the pipe it
    announces its port on, its arguments); None when not asked for or when
    the fork failed (the raylet then reports the error at start-up)."""
    if __name__ != "__main__" or "--fork-gcs" not in _sys.argv:
        return None
    import gc
    import importlib
    import json as _json

    gcs_argv = [str(a) for a in _json.loads(_sys.argv[_sys.argv.index("--fork-gcs") + 1])]
    gcs_main = importlib.import_module("jray._private.gcs.__main__")
    from jray._private.worker import zygote

    gc.collect()
    gc.freeze()
    r, w = _os.pipe()
    pid = _os.fork()
    if pid == 0:
        code = 1
        try:
            _os.setsid()  # as start_new_session: a Ctrl-C in the driver's terminal spares it
            for f in (getattr(_EARLY_ZYGOTE, "stdin", None), getattr(_EARLY_ZYGOTE, "stdout", None)):
                if f is not None:  # the zygote exits when the raylet's end of its stdin closes
                    f.close()
            _os.close(r)
            _os.dup2(w, 1)  # the announce line, to the raylet
            _os.close(w)
            devnull = _os.open(_os.devnull, _os.O_RDWR)
            _os.dup2(devnull, 0)
            _os.dup2(devnull, 2)
            _os.close(devnull)
            if "--log" in gcs_argv:  # a traceback at start-up lands in its log
                fd = _os.open(gcs_argv[gcs_argv.index("--log") + 1], _os.O_WRONLY | _os.O_CREAT | _os.O_APPEND, 0o600)
                _os.dup2(fd, 2)
                _os.close(fd)
            zygote.retitle([_sys.executable, "-m", "jray._private.gcs", *gcs_argv])
            _sys.argv = ["python -m jray._private.gcs", *gcs_argv]
            gcs_main.cli()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:  # noqa: BLE001 - into its log, as an interpreter of its own would
            import traceback

            traceback.print_exc()
            _sys.stderr.flush()
        finally:
            _os._exit(code)
    _os.close(w)
    return pid, r, gcs_argv


try:
    _EARLY_GCS = _fork_gcs_early()
except Exception:  # noqa: BLE001 - reported by main(): no GCS to hand the raylet
    _EARLY_GCS = None

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import tempfile
from typing import Any

from jray._private import config, daemon, direct, rpc, tls
from jray._private import metrics as _metrics
from jray._private.ids import random_id
from jray._private.protocol import gcs_pb2_grpc as ggrpc
from jray._private.protocol import raylet_pb2_grpc as rgrpc
from jray._private.raylet import bulk
from jray._private.raylet.server import Raylet, add_raw_methods
from jray._private.raylet.worker_pool import WorkerPool, adopt_zygote, spawn_zygote
from jray._private.runtime_env.agent import RuntimeEnvAgent

logger = logging.getLogger(__name__)


_created_store: dict[str, str] = {}


async def main(ns: argparse.Namespace) -> None:
    token = os.environ["JRAY_TOKEN"]
    logs = os.path.join(ns.session_dir, "logs")
    os.makedirs(logs, exist_ok=True)
    # First, so its imports overlap ours, the GCS's and registration.
    zygote = await adopt_zygote(_EARLY_ZYGOTE) if _EARLY_ZYGOTE is not None else await spawn_zygote(logs, ns.session_dir)
    gcs_address = ns.gcs_address
    gcs_info: dict[str, Any] = {}
    gcs_here = None
    if ns.gcs_in_process:
        gcs_here, gcs_info = await _start_gcs_here(ns)
        gcs_address = gcs_info["address"]
        # This raylet's calls to its GCS (and the GCS's to it, below) stay in the process.
        rpc.serve_locally(gcs_address, ggrpc.GcsServiceStub, gcs_here.gcs)
    elif ns.fork_gcs:
        gcs_info = await _gcs_ready(ns)
        gcs_address = gcs_info["address"]
    elif gcs_address == "-":
        gcs_address = (await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)).strip()
    node_id = bytes.fromhex(ns.node_id) if ns.node_id else random_id(16)
    resources = json.loads(ns.resources)
    store_path = f"/dev/shm/jray-{os.path.basename(ns.session_dir)}-{node_id.hex()[:12]}"
    spill_dir = ns.spill_dir or os.path.join(ns.session_dir, f"spill-{node_id.hex()[:12]}")
    try:
        from jray._private.object_store import Arena, LocalObjectStore
    except ImportError:  # transitional: values stay inline without a store
        arena = store = None
        store_path = ""
    else:
        arena = Arena.create(store_path, ns.object_store_memory)
        _created_store["path"] = store_path
        try:
            store = LocalObjectStore(arena, ns.object_store_memory, spill_dir=spill_dir)
        except OSError as e:  # the spill directory is not usable: say so to whoever starts us
            arena.close()
            arena.unlink()
            logger.error("cannot start: %s", e)
            daemon.announce({"error": f"{e.strerror or e}"}, ns.log)
            sys.exit(1)
    raylet = Raylet(token=token, node_id=node_id, ip=ns.node_ip, resources=resources, gcs_address=gcs_address,
                    store=store, arena=arena, store_path=store_path, session_dir=ns.session_dir,
                    is_head=ns.head, labels=json.loads(ns.labels))
    server, port = rpc.make_server(token, ns.node_ip if ns.node_ip != "127.0.0.1" else "127.0.0.1", ns.port)
    rgrpc.add_RayletServiceServicer_to_server(raylet, server)
    add_raw_methods(raylet, server)
    await server.start()
    raylet.port = port
    if gcs_here is not None:
        rpc.serve_locally(f"{ns.node_ip}:{port}", rgrpc.RayletServiceStub, raylet)
    metrics_server = None
    try:  # ray.util.metrics: this node's processes' metrics for Prometheus
        metrics_server, raylet.metrics_export_port = await _metrics.serve(
            raylet.metrics, ns.node_ip, int(config.METRICS_EXPORT_PORT))
    except OSError as e:
        logger.warning("no metrics endpoint (port %s): %s", int(config.METRICS_EXPORT_PORT), e)
    direct_server = None
    if direct.enabled():  # workers' put/get store calls, without gRPC's per-call cost
        direct_server = direct.raylet_server(raylet, token)
        raylet.direct_port = await direct_server.start(ns.node_ip if ns.node_ip != "127.0.0.1" else "127.0.0.1")
    if tls.current() is None and os.environ.get("JRAY_BULK_TRANSFER", "1") not in ("0", "false", "no", "off"):
        # objects to other raylets over plain TCP (raylet/bulk.py); with TLS, gRPC carries them
        raylet.bulk = bulk.BulkServer(token, asyncio.get_running_loop(), raylet.objects.bulk_acquire)
        raylet.bulk.start(ns.node_ip if ns.node_ip != "127.0.0.1" else "127.0.0.1")
    env = dict(os.environ)
    env.update({
        "JRAY_RAYLET_ADDRESS": f"{ns.node_ip}:{port}", "JRAY_GCS_ADDRESS": gcs_address,
        "JRAY_NODE_ID": node_id.hex(), "JRAY_NODE_IP": ns.node_ip, "JRAY_SESSION_DIR": ns.session_dir,
        "JRAY_RAYLET_PID": str(os.getpid()),
    })
    if raylet.direct_port:  # a worker registers over it (a gRPC channel to the raylet only if it needs one)
        env["JRAY_RAYLET_DIRECT_PORT"] = str(raylet.direct_port)
    if resources.get("GPU", 0) > 0:
        env["JRAY_NODE_HAS_GPUS"] = "1"
    raylet.workers = WorkerPool(env, logs)
    raylet.envs = RuntimeEnvAgent(
        cache_dir=os.path.join(ns.session_dir, "runtime_resources", f"node-{node_id.hex()[:12]}"),
        machine_cache_dir=os.path.join(os.environ.get("JRAY_TMPDIR") or os.path.join(tempfile.gettempdir(), "jray"),
                                       "runtime_resources"),
        log_dir=logs, node_ip=ns.node_ip, download=raylet.download_package)
    cpus = int(resources.get("CPU", 0))
    n_prestart = min(cpus, ns.prestart if ns.prestart >= 0 else max(0, config.PRESTART_WORKERS))

    async def warm_pool() -> None:
        assert raylet.workers is not None
        await raylet.workers.start_zygote(zygote)
        raylet.workers.prestart(n_prestart)

    pool_task = asyncio.ensure_future(warm_pool())
    loop = asyncio.get_running_loop()
    daemon.install_signal_handlers(loop, raylet.stop_event.set)
    daemon.watch_parent(ns.parent_pid, lambda: loop.call_soon_threadsafe(raylet.stop_event.set))
    await raylet.register()
    hb = asyncio.ensure_future(raylet.heartbeat_loop())
    mon = asyncio.ensure_future(raylet.monitor_loop())
    ready: dict[str, Any] = {"port": port, "pid": os.getpid(), "node_id": node_id.hex(), "store_path": store_path}
    reaper = None
    if gcs_info:
        ready.update(gcs_port=gcs_info["port"], gcs_pid=gcs_info["pid"])
        if gcs_here is None:  # a forked GCS: its exit status is collected here
            reaper = asyncio.ensure_future(_reap_gcs(gcs_info["pid"]))
    daemon.announce(ready, ns.log)
    await raylet.stop_event.wait()
    if reaper is not None:
        reaper.cancel()
    hb.cancel()
    mon.cancel()
    pool_task.cancel()
    raylet.workers.shutdown()
    try:
        from jray._private.protocol import gcs_pb2 as gpb

        await asyncio.wait_for(raylet.gcs.UnregisterNode(gpb.UnregisterNodeRequest(node_id=node_id)), 1)
    except Exception:  # noqa: BLE001 - the GCS may be gone already
        pass
    if raylet.bulk is not None:
        raylet.bulk.close()
    if store is not None and arena is not None:
        store.close()
        arena.close()
        arena.unlink()
    if direct_server is not None:
        direct_server.close()
    if metrics_server is not None:
        metrics_server.close()
    if gcs_here is not None:  # after this node's goodbye to it
        await gcs_here.stop()
    await server.stop(grace=0.1)


async def _start_gcs_here(ns: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The GCS served from this process, on this loop (``--gcs-in-process``):
    one Python process fewer for a head without a supervisor (~9 MB of
    private memory and its share of the imports' pages)."""
    from jray._private.gcs import __main__ as gcs_main

    gcs_ns = gcs_main.parser().parse_args(json.loads(ns.gcs_in_process))
    gcs_main.log_to(gcs_ns.log)
    try:
        running = await gcs_main.start(gcs_ns)
    except Exception as e:  # noqa: BLE001 - announced as the forked GCS's failure would be
        logging.getLogger("jray._private.gcs").exception("the GCS did not start")
        daemon.announce({"error": f"the GCS did not start: {type(e).__name__}: {e}"}, ns.log)
        sys.exit(1)
    address = f"{gcs_ns.host}:{running.port}"
    return running, {"address": address, "port": running.port, "pid": os.getpid()}


async def _gcs_ready(ns: argparse.Namespace) -> dict[str, Any]:
    """The forked GCS's announce line (its port and pid), or exit with the error announced."""
    gcs_log = ""
    if _EARLY_GCS is not None:
        pid, fd, argv = _EARLY_GCS
        gcs_log = argv[argv.index("--log") + 1] if "--log" in argv else ""
        host = argv[argv.index("--host") + 1] if "--host" in argv else "127.0.0.1"
        with os.fdopen(fd, "rb") as f:
            line = await asyncio.get_running_loop().run_in_executor(None, f.readline)
        if line:
            info = json.loads(line)
            return {"address": f"{host}:{info['port']}", "port": info["port"], "pid": info["pid"]}
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    why = ""
    with contextlib.suppress(OSError):
        with open(gcs_log, errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
        why = f": {lines[-1]}" if lines else ""
    daemon.announce({"error": f"the GCS exited during start-up{why}" + (f" (see {gcs_log})" if gcs_log else "")},
                    ns.log)
    sys.exit(1)


async def _reap_gcs(pid: int) -> None:
    """Collect the forked GCS's exit status once it ends (no zombie while this raylet runs)."""
    while True:
        await asyncio.sleep(1.0)
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:
            return


def cli() -> None:
    p = argparse.ArgumentParser(prog="python -m jray._private.raylet")
    p.add_argument("--gcs-address", required=True)
    p.add_argument("--node-ip", default="127.0.0.1")
    p.add_argument("--node-id", default="")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--resources", default="{}")
    p.add_argument("--labels", default="{}")
    p.add_argument("--object-store-memory", type=int, required=True)
    p.add_argument("--session-dir", required=True)
    p.add_argument("--spill-dir", default="")
    p.add_argument("--head", action="store_true")
    p.add_argument("--prestart", type=int, default=-1)
    p.add_argument("--log", default=None)
    p.add_argument("--parent-pid", type=int, default=0)
    p.add_argument("--fork-gcs", default="", help="a JSON list: the arguments of a GCS to fork from this "
                   "process at start (a head without a supervisor); its port and pid are announced with ours")
    p.add_argument("--gcs-in-process", default="", help="a JSON list: the arguments of a GCS to serve from "
                   "this process, on its loop (a head without a supervisor); its port is announced with ours")
    ns = p.parse_args()
    daemon.setup_logging(ns.log)
    try:
        asyncio.run(main(ns))
    except BaseException:
        # Failed after creating its store (the normal exit unlinks it): do
        # not leave the file in /dev/shm.
        if "path" in _created_store:
            with contextlib.suppress(OSError):
                os.unlink(_created_store["path"])
        raise


if __name__ == "__main__":
    cli()
