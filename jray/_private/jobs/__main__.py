"""The job agent process: ``python -m jray._private.jobs`` (see the package
docstring); ``python -m jray.dashboard.agent`` runs it with the entrypoint
runners and the dashboard pages of the layer above.

Started by ``jray start --head`` (``process.start_agent``) with the cluster
token in ``JRAY_TOKEN``; announces ``{"port", "pid"}`` on stdout, records
itself in ``<session>/job_agent.json`` and its HTTP address in the GCS KV,
and runs until SIGTERM (``jray stop``: running jobs are stopped first) or
until the process it watches (the GCS supervisor) is gone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import tempfile
from typing import Any

from jray._private import daemon, rpc
from jray._private.gcs_client import RetryingGcsStub
from jray._private.jobs import common as C
from jray._private.jobs.http_api import JobsHttpServer
from jray._private.jobs.manager import JobManager
from jray._private.protocol import gcs_pb2 as gpb
from jray._private.protocol import gcs_pb2_grpc as ggrpc

logger = logging.getLogger("jray.jobs.agent")


def agent_file(session_dir: str) -> str:
    return os.path.join(session_dir, "job_agent.json")


async def main(ns: argparse.Namespace, *, runners: Any = None, dashboard_factory: Any = None) -> None:
    from jray._private.runtime_env.agent import RuntimeEnvAgent
    from jray._private.version import __version__

    token = os.environ.get("JRAY_TOKEN", "")
    channel = rpc.make_channel(ns.gcs_address, token)
    gcs = RetryingGcsStub(ggrpc.GcsServiceStub(channel))

    async def download(uri: str, dest: str) -> None:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            async for chunk in gcs.DownloadPackage(gpb.DownloadPackageRequest(uri=uri), timeout=600):
                f.write(chunk.data)

    envs = RuntimeEnvAgent(
        cache_dir=os.path.join(ns.session_dir, "runtime_resources", "jobs"),
        machine_cache_dir=os.path.join(os.environ.get("JRAY_TMPDIR") or os.path.join(tempfile.gettempdir(), "jray"),
                                       "runtime_resources"),
        log_dir=os.path.join(ns.session_dir, "logs"), node_ip=ns.host, download=download)
    manager = JobManager(gcs=gcs, gcs_address=ns.gcs_address, token=token, session_dir=ns.session_dir,
                         node_ip=ns.host, env_agent=envs, runners=runners)
    await manager.load()
    server = JobsHttpServer(manager, token, {"version": __version__, "ray_version": __version__,
                                             "gcs_address": ns.gcs_address, "session_dir": ns.session_dir},
                            dashboard=dashboard_factory(manager, token, ns.gcs_address) if dashboard_factory
                            else None)
    try:
        port = await server.start(ns.host, ns.port)
    except OSError as e:
        if not ns.port_fallback:
            daemon.announce({"error": f"could not listen on {ns.host}:{ns.port}: {e}"}, ns.log)
            return
        logger.warning("port %d is taken (%s); listening on a free port", ns.port, e)
        port = await server.start(ns.host, 0)
    address = f"{ns.host}:{port}"
    await gcs.KVPut(gpb.KVPutRequest(ns=C.KV_NS, key=C.AGENT_ADDRESS_KEY.encode(), value=address.encode(),
                                     overwrite=True), timeout=30)
    path = agent_file(ns.session_dir)
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"pid": os.getpid(), "port": port, "http_address": address}, f)
    os.replace(tmp, path)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    daemon.install_signal_handlers(loop, stop.set)
    daemon.watch_parent(ns.parent_pid, lambda: loop.call_soon_threadsafe(stop.set))
    daemon.announce({"port": port, "pid": os.getpid(), "http_address": address}, ns.log)
    logger.info("jobs API at http://%s", address)
    await stop.wait()
    logger.info("stopping: ending running jobs")
    await server.close()
    try:
        await asyncio.wait_for(manager.shutdown(), C.STOP_GRACE_SECONDS + 8)
    except asyncio.TimeoutError:
        logger.warning("some jobs did not stop in time")
    await channel.close()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m jray._private.jobs")
    p.add_argument("--session-dir", required=True)
    p.add_argument("--gcs-address", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=C.DEFAULT_HTTP_PORT)
    p.add_argument("--port-fallback", action="store_true", help="a free port when --port is taken")
    p.add_argument("--parent-pid", type=int, default=0, help="exit when this process is gone")
    p.add_argument("--log", default=None)
    p.add_argument("--dashboard", action="store_true", help="serve the head's dashboard pages too")
    return p.parse_args(argv)


if __name__ == "__main__":
    args = parse()
    daemon.setup_logging(args.log)
    asyncio.run(main(args))
