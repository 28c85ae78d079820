"""A fork server for worker processes.

The raylet starts one zygote per node. It imports the worker's modules
(grpc, protobuf, cloudpickle, the CoreWorker) once, creates no thread and
no gRPC object, then forks a new worker on each request: a worker starts in
milliseconds instead of a fresh interpreter's few hundred, and the forked
workers share the zygote's pages (lower PSS). This is what makes actor
creation fast.

Protocol on stdin/stdout, one line each way: the raylet writes a log file
path and, after a tab, a JSON object of environment variables for the
worker (the raylet starts the zygote before it knows its own port); the
zygote answers with the new worker's pid. The zygote reaps its
children; it exits when its stdin closes (the raylet is gone).
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys


def _reap(signum: int, frame: object) -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# Every module a worker or an actor imports on its way to running its first
# task (the CoreWorker imports some lazily). Imported here once, they cost a
# forked worker nothing; imported after the fork, each worker pays for them
# (and compiles them again where bytecode is not cached): that was most of
# an actor's start-up CPU.
WARM_MODULES = (
    "ctypes",
    "cloudpickle",
    "grpc",
    "jray",
    "jray._private.daemon",
    "jray._private.object_store",
    "jray._private.serialization",
    "jray._private.worker.__main__",
    "jray._private.worker.actor_submitter",
    "jray._private.worker.core_worker",
    "jray._private.worker.executor",
    "jray._private.worker.log_stream",
    "jray._private.worker.reference_counter",
    "jray._private.worker.sampler",
    "jray._private.worker.servicer",
    "jray._private.worker.task_events",
    "jray._private.worker.task_submitter",
    "jray.runtime_context",
    "jray._private.metrics",
    "jray._private.runtime_env.builtin",
)


def main() -> None:
    # Warm every module a worker needs; nothing here starts a thread.
    import importlib

    for name in WARM_MODULES:
        importlib.import_module(name)
    import jray._private.worker.__main__ as worker_main

    # Move everything imported so far out of the collector's reach, so the
    # forked workers' collections do not touch (and copy) these shared pages.
    gc.collect()
    gc.freeze()
    signal.signal(signal.SIGCHLD, _reap)
    out = sys.stdout.buffer
    out.write(b"ready\n")
    out.flush()
    for line in sys.stdin.buffer:
        log, _, env = line.decode().strip().partition("\t")
        if not log:
            continue
        pid = os.fork()
        if pid == 0:
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                if env:  # the raylet's address and node id: known only after the zygote started
                    os.environ.update(json.loads(env))
                fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                os.close(fd)
                devnull = os.open(os.devnull, os.O_RDONLY)
                os.dup2(devnull, 0)
                os.close(devnull)
                worker_main.main()
            finally:
                os._exit(0)
        out.write(f"{pid}\n".encode())
        out.flush()


if __name__ == "__main__":
    main()
