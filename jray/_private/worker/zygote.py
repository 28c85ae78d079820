"""A fork server for worker processes.

The raylet forks one zygote per node from itself at its start
(``fork_here``; or starts it as a process, ``python -m``, where it cannot). It imports the worker's modules
(grpc, protobuf, cloudpickle, the CoreWorker) once, creates no thread and
no gRPC object, then forks a new worker on each request: a worker starts in
milliseconds instead of a fresh interpreter's few hundred, and the forked
workers share the zygote's pages (lower PSS). This is what makes actor
creation fast.

Protocol on stdin/stdout, one line each way: the raylet writes a log file
path and, after a tab, a JSON object of environment variables for the
worker (the raylet starts the zygote before it knows its own port); the
zygote answers with the new worker's pid. The zygote reaps its
children; it exits when its stdin closes (the raylet is gone), and its
workers die with it (``PR_SET_PDEATHSIG``, set in each after the fork).
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
from typing import Any, BinaryIO


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
    "faulthandler",
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


def warm() -> Any:
    """Import every module a worker needs (nothing here starts a thread),
    then move what was imported out of the collector's reach, so the
    forked workers' collections do not touch (and copy) the shared pages.
    Returns the worker's entry module."""
    import importlib

    for name in WARM_MODULES:
        importlib.import_module(name)
    package = importlib.import_module("jray")  # (first of WARM_MODULES: the public API, for workers)
    if getattr(package, "_LEAN", False):  # imported lean (by a raylet): workers use the whole API
        package._load_api()
    import jray._private.worker.__main__ as worker_main

    # A worker's first connection by host name (its raylet, the GCS) encodes the name with the
    # 'idna' codec: found and imported here (encodings.idna, stringprep, unicodedata and their
    # regexes: ~2 ms of each new worker's start, an actor's included), not in every worker.
    "localhost".encode("idna")
    gc.collect()
    gc.freeze()
    return worker_main


def _die_with_parent(zygote_pid: int, libc: Any) -> bool:
    """Have the kernel SIGKILL this process (a worker just forked) when the
    zygote exits: True when that is set and the zygote is still its parent."""
    if libc is None:
        return False
    try:
        if libc.prctl(1, signal.SIGKILL, 0, 0, 0) != 0:  # PR_SET_PDEATHSIG
            return False
    except (OSError, AttributeError):
        return False
    return os.getppid() == zygote_pid  # else it exited before the prctl: watch the raylet instead


def _libc() -> Any:
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def serve(worker_main: Any, inp: BinaryIO, out: BinaryIO) -> None:
    """Fork a worker for each request line on ``inp``; answer its pid on ``out``.

    The zygote lives as long as its raylet: the request pipe's end (the
    raylet exited, however it did) ends the loop and the process. Its
    workers die with it (``PR_SET_PDEATHSIG``), so a forked worker needs
    no thread of its own to watch for its raylet's end."""
    signal.signal(signal.SIGCHLD, _reap)
    # The workers' logging, set once here: each forked worker inherits it
    # (its stderr is its log file by then) instead of building it (~0.3 ms).
    worker_main.configure_logging()
    libc, me = _libc(), os.getpid()
    out.write(b"ready\n")
    out.flush()
    for line in inp:
        log, _, env = line.decode().strip().partition("\t")
        if not log:
            continue
        pid = os.fork()
        if pid == 0:
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                worker_main.PARENT_WATCHED = _die_with_parent(me, libc)
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


def main() -> None:
    serve(warm(), sys.stdin.buffer, sys.stdout.buffer)


class Forked:
    """A zygote forked by this process (``fork_here``): what the raylet's
    worker pool uses of a ``subprocess.Popen`` (pid, pipes, poll, kill)."""

    def __init__(self, pid: int, stdin: BinaryIO, stdout: BinaryIO) -> None:
        self.pid, self.stdin, self.stdout = pid, stdin, stdout
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -1
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def fork_here(log: str, env: dict[str, str], warm_in_child: bool = False) -> Forked:
    """Make this process the zygote's parent: warm it (``warm``), then fork
    the zygote from it. Only in a process with one thread and no gRPC
    object yet (the raylet, before its own start-up): the zygote, and every
    worker it forks, shares the pages of what was imported here with this
    process too, instead of importing it all again in an interpreter of its
    own (~0.1 s of CPU on the path of ``init``, and ~15 MB more memory).

    The zygote names itself ``python -m jray._private.worker.zygote`` (as
    the zygote started as a process does: ``jray stop`` and the tools find
    it, and its workers, by that); ``env`` is added to its environment.
    ``warm_in_child``: what this process has imported so far is shared; the
    zygote imports the rest itself after the fork (in parallel with this
    process's start-up) and says it is ready when done."""
    if warm_in_child:
        gc.collect()
        gc.freeze()  # this process's heap, shared with the zygote: its collections leave it alone
        worker_main = None
    else:
        worker_main = warm()
    r_in, w_in = os.pipe()  # this process -> the zygote
    r_out, w_out = os.pipe()  # the zygote -> this process
    pid = os.fork()
    if pid == 0:
        try:
            os.close(w_in)
            os.close(r_out)
            os.dup2(r_in, 0)
            os.dup2(w_out, 1)
            os.close(r_in)
            os.close(w_out)
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(fd, 2)
            os.close(fd)
            os.environ.update(env)
            retitle([sys.executable, "-m", "jray._private.worker.zygote"])
            serve(worker_main or warm(), os.fdopen(0, "rb"), os.fdopen(1, "wb"))
        finally:
            os._exit(0)
    os.close(r_in)
    os.close(w_out)
    return Forked(pid, os.fdopen(w_in, "wb"), os.fdopen(r_out, "rb"))


def retitle(argv: list[str]) -> bool:
    """Show ``argv`` as this process's command line (``/proc/<pid>/cmdline``,
    ``ps``) by writing it over the original arguments' memory, as
    setproctitle does: space-separated, ended by a NUL, and the area's last
    byte not a NUL (so the kernel reads the title up to its first NUL).
    False where the new line does not fit or the memory cannot be written."""
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
        fields = stat[stat.rindex(b")") + 2:].split()
        start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end (fields 48 and 49)
        title = " ".join(argv).encode() + b"\0"
        if len(title) + 1 > end - start:
            return False
        with open("/proc/self/mem", "r+b", buffering=0) as mem:
            mem.seek(start)
            mem.write(title + b"\0" * (end - start - len(title) - 1) + b" ")
        return True
    except (OSError, ValueError, IndexError):
        return False


if __name__ == "__main__":
    main()
