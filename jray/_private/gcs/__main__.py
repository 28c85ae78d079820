"""Entry point of the GCS process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
import time
from typing import Any

from jray._private import daemon, rpc
from jray._private.gcs.server import GcsServer
from jray._private.gcs.store import GcsStore
from jray._private.protocol import gcs_pb2_grpc as ggrpc

logger = logging.getLogger("jray._private.gcs")


class Running:
    """A started GCS: its server, port and the tasks to stop with it."""

    def __init__(self, gcs: GcsServer, server: Any, port: int, store: GcsStore | None) -> None:
        self.gcs, self.server, self.port, self.store = gcs, server, port, store
        self.health = asyncio.ensure_future(gcs.health_loop())

    async def stop(self) -> None:
        self.health.cancel()
        await self.server.stop(grace=0.2)
        if self.store is not None:
            self.store.close()


async def start(ns: argparse.Namespace) -> Running:
    """Open the tables (restoring them with ``--restore``), then serve: in a
    process of its own (``main``) or on the head raylet's loop (``--gcs-in-process``)."""
    t0 = time.monotonic()
    token = os.environ["JRAY_TOKEN"]
    session = ns.session_dir or (os.path.dirname(os.path.dirname(os.path.abspath(ns.log))) if ns.log else None)
    packages = ns.packages_dir or (os.path.join(session, "packages") if session
                                   else tempfile.mkdtemp(prefix="jray-packages-"))
    store = None
    if session and os.environ.get("JRAY_GCS_PERSIST", "1") != "0":
        path = os.path.join(session, "gcs.db")
        restore = ns.restore and os.path.exists(path)
        if ns.restore and not restore:
            logger.warning("--restore: no tables at %s; starting empty", path)
        store = GcsStore(path, fresh=not restore)
    gcs = GcsServer(token, packages_dir=packages, store=store)
    if store is not None and ns.restore:
        counts = gcs.restore()
        logger.info("restored from %s in %.3f s: %s", store.path, time.monotonic() - t0, counts)
    server, port = rpc.make_server(token, ns.host, ns.port)
    ggrpc.add_GcsServiceServicer_to_server(gcs, server)
    await server.start()
    return Running(gcs, server, port, store)


async def main(ns: argparse.Namespace) -> None:
    running = await start(ns)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    daemon.install_signal_handlers(loop, stop.set)
    daemon.watch_parent(ns.parent_pid, lambda: loop.call_soon_threadsafe(stop.set))
    daemon.announce({"port": running.port, "pid": os.getpid()}, ns.log)
    await stop.wait()
    await running.stop()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jray._private.gcs")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--log", default=None)
    p.add_argument("--parent-pid", type=int, default=0)
    p.add_argument("--session-dir", default=None, help="the session (its gcs.db holds the tables; default: "
                   "the log directory's parent)")
    p.add_argument("--restore", action="store_true", help="start from the tables a previous GCS of this "
                   "session left in <session>/gcs.db (same cluster id, nodes, jobs, actors, groups, KV)")
    p.add_argument("--packages-dir", default=None, help="where runtime_env packages are kept "
                   "(default: <session>/packages, beside the log directory)")
    return p


def cli() -> None:
    ns = parser().parse_args()
    daemon.setup_logging(ns.log)
    asyncio.run(main(ns))


def log_to(path: str | None) -> None:
    """In a raylet's process: the GCS's own records go to its log file
    (``gcs.log``, where ``jray logs`` and the logs page find them), not the raylet's."""
    if not path:
        return
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    gcs_logger = logging.getLogger("jray._private.gcs")
    gcs_logger.addHandler(handler)
    gcs_logger.propagate = False


if __name__ == "__main__":
    cli()
