"""Entry point of a worker process (started by its raylet)."""

from __future__ import annotations

import logging
import os
import sys


def main() -> None:
    import faulthandler
    import signal

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 <pid>` dumps stacks to the log
    from jray._private import daemon
    from jray._private.worker.core_worker import CoreWorker
    from jray._private.worker.executor import Executor

    logging.basicConfig(level=logging.WARNING, stream=sys.__stderr__,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    w = CoreWorker(
        is_driver=False,
        gcs_address=os.environ["JRAY_GCS_ADDRESS"],
        raylet_address=os.environ["JRAY_RAYLET_ADDRESS"],
        token=os.environ["JRAY_TOKEN"],
        node_id=bytes.fromhex(os.environ.get("JRAY_NODE_ID", "")),
        ip=os.environ.get("JRAY_NODE_IP", "127.0.0.1"),
    )
    w.executor = Executor(w)
    w.connect()
    w.executor.logs.install()
    signal.signal(signal.SIGTERM, lambda _sig, _frame: _leave(w))
    daemon.watch_parent(int(os.environ.get("JRAY_RAYLET_PID", "0")), lambda: os._exit(1))
    try:
        w.executor.run_forever()
    except KeyboardInterrupt:
        os._exit(0)


def _leave(w: object) -> None:
    """SIGTERM (the raylet ends this worker: its owner died, or the node
    stops): send the task events and output buffered so far, for at most
    half a second, then exit (the raylet sends SIGKILL after a grace)."""
    import asyncio

    async def flush() -> None:
        await asyncio.gather(w.task_events.flush(), w.executor.logs._flush_async(),  # type: ignore[attr-defined]
                             return_exceptions=True)

    try:
        w.run_sync(asyncio.wait_for(flush(), 0.5), timeout=1.0)  # type: ignore[attr-defined]
    except BaseException:  # noqa: BLE001 - leaving anyway
        pass
    os._exit(0)


if __name__ == "__main__":
    main()
