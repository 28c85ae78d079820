"""Entry point of a worker process (started by its raylet)."""

from __future__ import annotations

import logging
import os
import sys

# Set by the zygote in a worker it forked: the kernel kills this process when
# the zygote exits, and the zygote exits when its raylet does.
PARENT_WATCHED = False


def configure_logging() -> None:
    """A worker's logging: warnings and errors to its stderr (its log file)."""
    logging.basicConfig(level=logging.WARNING, stream=sys.__stderr__,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main() -> None:
    import faulthandler
    import signal

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 <pid>` dumps stacks to the log
    from jray._private.worker import sampler

    sampler.install()  # SIGUSR2: a CPU profile on demand (`jray profile`)
    # Cancel interrupts a task with SIGINT: a worker must take it even when
    # its raylet was started with SIGINT ignored (a server run with nohup or
    # as a service: Python keeps an inherited SIG_IGN).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _apply_runtime_env()
    from jray._private import daemon
    from jray._private.worker.core_worker import CoreWorker
    from jray._private.worker.executor import Executor

    configure_logging()  # (a no-op in a forked worker: the zygote did it)
    w = CoreWorker(
        is_driver=False,
        gcs_address=os.environ["JRAY_GCS_ADDRESS"],
        raylet_address=os.environ["JRAY_RAYLET_ADDRESS"],
        token=os.environ["JRAY_TOKEN"],
        node_id=bytes.fromhex(os.environ.get("JRAY_NODE_ID", "")),
        ip=os.environ.get("JRAY_NODE_IP", "127.0.0.1"),
    )
    w.executor = Executor(w)
    # What this worker was started for is what its tasks' children inherit
    # (an actor's calls carry no env of their own).
    w.default_runtime_env_json = os.environ.get("JRAY_RUNTIME_ENV", "")
    w.connect()
    w.executor.logs.install()
    from jray._private.runtime_env.builtin import run_setup_hook

    w.executor.setup_error = run_setup_hook(w.load_function)  # before any task, its output in the worker's log
    signal.signal(signal.SIGTERM, lambda _sig, _frame: _leave(w))
    if not PARENT_WATCHED:  # a worker started as a process watches its raylet itself
        daemon.watch_parent(int(os.environ.get("JRAY_RAYLET_PID", "0")), lambda: os._exit(1))
    try:
        w.executor.run_forever()
    except KeyboardInterrupt:
        os._exit(0)


def _apply_runtime_env() -> None:
    """A worker started for a runtime_env (``raylet/worker_pool.WorkerEnv``):
    its working directory and the package paths first on ``sys.path``
    (forked workers cannot take them from PYTHONPATH: the interpreter
    started before)."""
    import json

    raw = os.environ.get("JRAY_RUNTIME_ENV_SETUP")
    if not raw:
        return
    setup = json.loads(raw)
    if setup.get("cwd"):
        os.chdir(setup["cwd"])
    for p in reversed(setup.get("sys_path") or []):
        if p not in sys.path:
            sys.path.insert(0, p)
    import importlib

    importlib.invalidate_caches()


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
