"""Entry point of the GCS process."""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile

from jray._private import daemon, rpc
from jray._private.gcs.server import GcsServer
from jray._private.protocol import gcs_pb2_grpc as ggrpc


async def main(ns: argparse.Namespace) -> None:
    token = os.environ["JRAY_TOKEN"]
    packages = ns.packages_dir or (os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(ns.log))), "packages")
                                   if ns.log else tempfile.mkdtemp(prefix="jray-packages-"))
    gcs = GcsServer(token, packages_dir=packages)
    server, port = rpc.make_server(token, ns.host, ns.port)
    ggrpc.add_GcsServiceServicer_to_server(gcs, server)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    daemon.install_signal_handlers(loop, stop.set)
    daemon.watch_parent(ns.parent_pid, lambda: loop.call_soon_threadsafe(stop.set))
    health = asyncio.ensure_future(gcs.health_loop())
    daemon.announce({"port": port, "pid": os.getpid()}, ns.log)
    await stop.wait()
    health.cancel()
    await server.stop(grace=0.2)


def cli() -> None:
    p = argparse.ArgumentParser(prog="python -m jray._private.gcs")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--log", default=None)
    p.add_argument("--parent-pid", type=int, default=0)
    p.add_argument("--packages-dir", default=None, help="where runtime_env packages are kept "
                   "(default: <session>/packages, beside the log directory)")
    ns = p.parse_args()
    daemon.setup_logging(ns.log)
    asyncio.run(main(ns))


if __name__ == "__main__":
    cli()
