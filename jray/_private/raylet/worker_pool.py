"""The raylet's worker processes: start, register, idle list, death.

Workers are forked by the node's zygote (``jray._private.worker.zygote``,
a process that has imported everything a worker needs), or started with
``python -m jray._private.worker`` until the zygote is up. Either way they
register back over gRPC. One worker is prestarted (``config.PRESTART_WORKERS``,
at most the node's CPUs) so the first task does not wait for a start; the
others are forked when leases ask for them, and stay (up to the node's CPUs,
``kill_idle_beyond``) once started.

Each worker writes its stdout and stderr to its own ``worker-<ns>.log`` in
the node's logs directory; ``logs`` (``raylet/logs.WorkerLogs``) keeps
which file is which worker's, by pid and worker id, for ``jray logs`` and
the logs page.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jray._private.raylet.logs import WorkerLogs
from jray._private.runtime_env.plugin import RuntimeEnvContext

logger = logging.getLogger(__name__)


def _pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped) is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@dataclass(eq=False)
class WorkerProc:
    proc: subprocess.Popen | None
    pid: int
    worker_id: bytes = b""
    port: int = 0
    direct_port: int = 0  # jray._private.direct; 0: pushed to over gRPC
    registered: asyncio.Future | None = None
    lease_id: bytes = b""
    actor_id: bytes = b""
    idle_since: float = field(default_factory=time.monotonic)
    is_driver: bool = False
    dead: bool = False
    promised: bool = False
    env_key: str = ""  # the runtime_env it was started for ("": none); it serves only that env
    log_file: str = ""  # its log, relative to the pool's log_dir
    started_at: float = field(default_factory=time.time)


@dataclass
class WorkerEnv:
    """A runtime_env as the pool needs it: its key and how its workers start."""

    key: str
    env_json: str
    context: RuntimeEnvContext

    @property
    def forkable(self) -> bool:
        return self.context.forkable

    def variables(self) -> dict[str, str]:
        """What the worker's environment adds: the env's variables, and
        what the worker applies itself at start (cwd, sys.path; see
        ``jray._private.worker.__main__``)."""
        setup = {"cwd": self.context.cwd, "sys_path": self.context.sys_path}
        return {**self.context.env_vars, "JRAY_RUNTIME_ENV_SETUP": json.dumps(setup),
                "JRAY_RUNTIME_ENV": self.env_json, "JRAY_RUNTIME_ENV_KEY": self.key}


async def spawn_zygote(log_dir: str, session_dir: str) -> asyncio.subprocess.Process:
    """Start the worker zygote (``jray._private.worker.zygote``) with this
    process's environment plus what marks the session's processes (``jray
    stop`` finds the workers by their initial environment). The raylet does
    this first thing, so the zygote's imports overlap the raylet's own
    start-up; it exits when its stdin (this process) closes."""
    log = os.path.join(log_dir, "zygote.log")
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "jray._private.worker.zygote",
            env=dict(os.environ, JRAY_SESSION_DIR=session_dir, JRAY_RAYLET_PID=str(os.getpid())),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=fd)
    finally:
        os.close(fd)


class PipeProcess:
    """A ``subprocess.Popen`` with asyncio streams on its pipes: what the
    pool needs of an ``asyncio.subprocess.Process`` (the zygote the raylet
    spawned before its event loop existed)."""

    def __init__(self, popen: subprocess.Popen[bytes], stdin: asyncio.StreamWriter,
                 stdout: asyncio.StreamReader) -> None:
        self.popen, self.stdin, self.stdout = popen, stdin, stdout
        self.pid = popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.popen.kill()


async def adopt_zygote(popen: subprocess.Popen[bytes]) -> Any:
    """Asyncio streams on the pipes of a zygote started with ``Popen``."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), popen.stdout)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, popen.stdin)
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    return PipeProcess(popen, writer, reader)


class WorkerPool:
    def __init__(self, env: dict[str, str], log_dir: str, max_starting: int = 4) -> None:
        self.env = env
        self.log_dir = log_dir
        self.by_pid: dict[int, WorkerProc] = {}
        # Deaths come from pidfds on the loop (readable when the process
        # exits), not from reading /proc for every worker every 50 ms: with
        # hundreds of actors that polling took half the raylet's time and
        # its heartbeats went late. A full sweep every SWEEP_SECONDS stays
        # as a safety net; without pidfds (old kernels) every check sweeps.
        self._pidfds: dict[int, int] = {}
        self._exited: set[int] = set()
        self._no_pidfd = not hasattr(os, "pidfd_open")
        self._sweep_at = 0.0
        self.by_id: dict[bytes, WorkerProc] = {}
        self.logs = WorkerLogs()  # which log file is which worker's (those that exited too)
        self.idle: list[WorkerProc] = []
        self.starting: list[WorkerProc] = []
        # Set when the first worker (not a driver) registers: ``init()`` waits
        # for it (WaitWorkerReady) so the first task finds a warm worker.
        self.first_registered = asyncio.Event()
        self._start_sem = asyncio.Semaphore(max_starting)
        self.zygote: asyncio.subprocess.Process | PipeProcess | None = None
        self._zygote_lock = asyncio.Lock()
        # Done once the zygote is up (or failed to start). Workers asked for
        # while it starts wait for it rather than start a whole interpreter:
        # as fast for the first task, and a forked worker shares the zygote's
        # pages (less memory for as long as it lives).
        self._zygote_started: asyncio.Future | None = None
        self._early: dict[int, tuple[bytes, int, bool, int]] = {}  # registered before the fork reply
        # The zygote starts (early) with the raylet's environment; each fork
        # gets what the workers' environment adds to it (addresses, node id).
        self._fork_env = json.dumps({k: v for k, v in env.items() if os.environ.get(k) != v}).encode()

    async def start_zygote(self, spawned: asyncio.subprocess.Process | PipeProcess | None = None) -> None:
        """Wait for the fork server (``spawned`` early by the raylet, else
        started now) to be ready; until then workers wait for it."""
        self._zygote_started = asyncio.get_running_loop().create_future()
        try:
            await self._start_zygote(spawned or await spawn_zygote(self.log_dir, self.env["JRAY_SESSION_DIR"]))
        finally:
            self._zygote_started.set_result(None)

    async def _start_zygote(self, z: asyncio.subprocess.Process | PipeProcess) -> None:
        log = os.path.join(self.log_dir, "zygote.log")
        assert z.stdout is not None
        try:
            line = await asyncio.wait_for(z.stdout.readline(), 30)
        except asyncio.TimeoutError:
            line = b""
        if line.strip() != b"ready":
            logger.warning("the worker zygote did not start (see %s); starting workers as processes", log)
            z.kill()
            return
        self.zygote = z

    def start_worker(self, env: WorkerEnv | None = None) -> WorkerProc:
        """Start a worker (for ``env``: a runtime_env's key and how its
        workers start). Forked by the zygote unless the env needs another
        Python or a command around it."""
        zygote_starting = self._zygote_started is not None and not self._zygote_started.done()
        forkable = env is None or env.forkable
        if forkable and (zygote_starting or (self.zygote is not None and self.zygote.returncode is None)):
            w = WorkerProc(None, 0, registered=asyncio.get_running_loop().create_future(),
                           env_key=env.key if env else "")
            self.starting.append(w)
            asyncio.ensure_future(self._fork(w, env))
            return w
        return self._popen_worker(None, env)

    async def _fork(self, w: WorkerProc, env: WorkerEnv | None = None) -> None:
        if self._zygote_started is not None and not self._zygote_started.done():
            await asyncio.shield(self._zygote_started)
        log = os.path.join(self.log_dir, f"worker-{time.time_ns()}.log")
        z = self.zygote
        if z is None or z.returncode is not None:
            self._popen_worker(w, env)
            return
        assert z.stdin is not None and z.stdout is not None
        fork_env = self._fork_env
        if env is not None:
            fork_env = json.dumps({**json.loads(fork_env), **env.variables()}).encode()
        try:
            async with self._zygote_lock:
                z.stdin.write(log.encode() + b"\t" + fork_env + b"\n")
                await z.stdin.drain()
                pid = int((await asyncio.wait_for(z.stdout.readline(), 10)).strip())
        except (OSError, ValueError, asyncio.TimeoutError) as e:
            logger.warning("fork through the zygote failed (%s): starting a process instead", e)
            self.zygote = None
            self._popen_worker(w, env)
            return
        w.pid = pid
        w.log_file = os.path.basename(log)
        self.logs.started(log, pid)
        self.by_pid[pid] = w
        self._watch(pid)
        early = self._early.pop(pid, None)
        if early is not None:
            self.on_register(pid, *early)

    def _popen_worker(self, w: WorkerProc | None = None, env: WorkerEnv | None = None) -> WorkerProc:
        log = os.path.join(self.log_dir, f"worker-{time.time_ns()}.log")
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        argv = [sys.executable, "-m", "jray._private.worker"]
        proc_env = self.env
        if env is not None:
            argv = [*env.context.command_prefix, env.context.py_executable or sys.executable, *argv[1:]]
            proc_env = {**self.env, **env.variables()}
        try:
            proc = subprocess.Popen(
                argv, env=proc_env, stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, close_fds=True,
                cwd=env.context.cwd if env is not None and env.context.cwd else None,
            )
        finally:
            os.close(fd)
        if w is None:
            w = WorkerProc(proc, proc.pid, registered=asyncio.get_running_loop().create_future(),
                           env_key=env.key if env else "")
            self.starting.append(w)
        w.proc, w.pid = proc, proc.pid
        w.log_file = os.path.basename(log)
        self.logs.started(log, proc.pid)
        self.by_pid[proc.pid] = w
        self._watch(proc.pid)
        return w

    def on_register(self, pid: int, worker_id: bytes, port: int, is_driver: bool,
                    direct_port: int = 0) -> WorkerProc | None:
        w = self.by_pid.get(pid)
        if w is None and not is_driver and any(s.proc is None and s.pid == 0 for s in self.starting):
            # Forked, but the zygote's answer with its pid is not read yet.
            self._early[pid] = (worker_id, port, is_driver, direct_port)
            return None
        if w is None or is_driver:
            w = WorkerProc(None, pid, is_driver=is_driver)
            if not is_driver:
                self.by_pid[pid] = w
                self._watch(pid)
        w.worker_id, w.port, w.direct_port = worker_id, port, direct_port
        self.by_id[worker_id] = w
        if not is_driver:
            self.logs.registered(pid, worker_id)
            self.first_registered.set()
        if w in self.starting:
            self.starting.remove(w)
        if w.registered is not None and not w.registered.done():
            w.registered.set_result(w)
        elif not is_driver:
            self.idle.append(w)
        return w

    async def pop_worker(self, timeout: float, env: WorkerEnv | None = None) -> WorkerProc:
        """An idle registered worker of ``env`` (None: the default env),
        starting one if none is idle."""
        key = env.key if env is not None else ""
        for i in range(len(self.idle) - 1, -1, -1):
            w = self.idle[i]
            if w.env_key == key:
                del self.idle[i]
                if not w.dead:
                    return w
        # Take a worker that is already starting and not promised to anyone.
        spare = [s for s in self.starting if not s.promised and s.registered is not None and s.env_key == key]
        w = spare[0] if spare else self.start_worker(env)
        w.promised = True
        assert w.registered is not None
        try:
            await asyncio.wait_for(asyncio.shield(w.registered), timeout)
        except asyncio.TimeoutError:
            self.kill(w, force=True)
            raise RuntimeError(f"a worker did not register within {timeout} s (see {self.log_dir})") from None
        w.registered = None
        return w

    def push_idle(self, w: WorkerProc) -> None:
        if w.dead or w.actor_id:
            return
        w.lease_id = b""
        w.idle_since = time.monotonic()
        self.idle.append(w)

    def prestart(self, n: int) -> None:
        """Have ``n`` workers warm: start those missing (leases that arrived
        before the zygote was up have started some already)."""
        for _ in range(n - len(self.starting) - len(self.idle)):
            w = self.start_worker()
            assert w.registered is not None
            w.registered.add_done_callback(functools.partial(self._prestarted_cb, w))

    def _prestarted_cb(self, w: WorkerProc, _f: asyncio.Future) -> None:
        self._prestarted(w)

    def _prestarted(self, w: WorkerProc) -> None:
        if w.promised:
            return
        w.registered = None
        if not w.dead:
            self.push_idle(w)

    # -- deaths ----------------------------------------------------------------------------
    SWEEP_SECONDS = 2.0

    def _watch(self, pid: int) -> None:
        """Be told on the loop when ``pid`` exits (a pidfd reader)."""
        if self._no_pidfd or pid in self._pidfds:
            return
        try:
            loop = asyncio.get_running_loop()
            fd = os.pidfd_open(pid)
        except ProcessLookupError:  # gone already
            self._exited.add(pid)
            return
        except (OSError, RuntimeError):  # no pidfds here, or no loop yet: the sweep finds it
            return
        self._pidfds[pid] = fd
        loop.add_reader(fd, self._on_exit, pid)

    def _on_exit(self, pid: int) -> None:
        self._unwatch(pid)
        self._exited.add(pid)

    def _unwatch(self, pid: int) -> None:
        fd = self._pidfds.pop(pid, None)
        if fd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(fd)
            with contextlib.suppress(OSError):
                os.close(fd)

    def reap_dead(self) -> list[WorkerProc]:
        """Workers that exited since the last call: those whose pidfd said
        so, and, every SWEEP_SECONDS (or always without pidfds), any other."""
        now = time.monotonic()
        if self._no_pidfd or now >= self._sweep_at:
            self._sweep_at = now + self.SWEEP_SECONDS
            candidates = list(self.by_pid.values())
        else:
            candidates = [self.by_pid[p] for p in self._exited if p in self.by_pid]
        self._exited.clear()
        dead = []
        for w in candidates:
            gone = w.proc.poll() is not None if w.proc is not None else not _pid_alive(w.pid)
            if gone:
                dead.append(self.remove(w))
        return dead

    def dead_drivers(self) -> list[WorkerProc]:
        """Drivers (registered without a process handle) whose pid is gone."""
        out = []
        for wid, w in list(self.by_id.items()):
            if w.is_driver and not _pid_alive(w.pid):
                del self.by_id[wid]
                out.append(w)
        return out

    def remove(self, w: WorkerProc) -> WorkerProc:
        w.dead = True
        self._unwatch(w.pid)
        if not w.is_driver:
            self.logs.exited(w.pid)
        self.by_pid.pop(w.pid, None)
        self.by_id.pop(w.worker_id, None)
        if w in self.idle:
            self.idle.remove(w)
        if w in self.starting:
            self.starting.remove(w)
        if w.registered is not None and not w.registered.done():
            w.registered.set_exception(RuntimeError(f"worker pid {w.pid} died before registering"))
            w.registered.exception()  # mark retrieved
        return w

    def kill(self, w: WorkerProc, force: bool = True) -> None:
        if w.proc is None:
            if w.pid > 0 and not w.is_driver:
                try:
                    os.kill(w.pid, signal.SIGKILL if force else signal.SIGTERM)
                except OSError:
                    pass
            return
        if w.proc.poll() is not None:
            return
        try:
            w.proc.kill() if force else w.proc.terminate()
        except OSError:
            pass

    def kill_idle_beyond(self, keep: int, idle_seconds: float,
                         ask: Callable[[WorkerProc], None] | None = None,
                         other_env_seconds: float | None = None) -> None:
        """End the default env's workers idle for ``idle_seconds`` beyond the
        first ``keep``, oldest first, and the idle workers of other
        runtime_envs after ``other_env_seconds``. ``ask``: ask a registered
        worker instead of killing it (it may refuse, as one that owns
        objects in use does; the caller then puts it back with ``push_idle``)."""
        now = time.monotonic()
        if other_env_seconds is not None:
            for w in [w for w in self.idle if w.env_key and now - w.idle_since >= other_env_seconds]:
                self._end_idle(w, ask)
        while True:
            default = [w for w in self.idle if not w.env_key]
            if len(default) <= keep:
                break
            w = min(default, key=lambda x: x.idle_since)
            if now - w.idle_since < idle_seconds:
                break
            self._end_idle(w, ask)

    def _end_idle(self, w: WorkerProc, ask: Callable[[WorkerProc], None] | None) -> None:
        self.idle.remove(w)
        if ask is not None and w.port:
            ask(w)
        else:
            self.kill(w, force=False)

    def workers_by_env(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for w in self.by_pid.values():
            if w.env_key and not w.dead:
                out[w.env_key] = out.get(w.env_key, 0) + 1
        return out

    def shutdown(self) -> None:
        procs = [w.proc for w in self.by_pid.values() if w.proc is not None]
        forked = [w.pid for w in self.by_pid.values() if w.proc is None and w.pid > 0 and not w.is_driver]
        for p in procs:
            try:
                p.kill()
            except OSError:
                pass
        for pid in forked:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if self.zygote is not None:
            try:
                self.zygote.kill()
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        for p in procs:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for pid in forked:  # the zygote reaps them; wait until they are gone
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.01)

    def pids(self) -> list[int]:
        return [w.pid for w in self.by_pid.values()]

    def state_of(self, w: WorkerProc) -> str:
        """STARTING (not registered yet), IDLE, LEASED (running an owner's tasks) or ACTOR."""
        if w.actor_id:
            return "ACTOR"
        if w.lease_id:
            return "LEASED"
        if not w.worker_id or w in self.starting:
            return "STARTING"
        return "IDLE"

    @staticmethod
    def describe(w: Any) -> str:
        return f"worker pid={w.pid} id={w.worker_id.hex()[:8]}"
