"""Where the per-call floor is: CPU and system calls per call, per process.

Issue 19 asks, for every per-call target out of reach in pure Python, for
the profile that says where the floor is and how far jray stands from it.
This measures, for one runtime at a time (jray or Ray, whichever Python runs
it), four per-call workloads on a fresh ``init(num_cpus=2)``:

- ``tasks_async``: 5,000 no-op tasks submitted, then gathered;
- ``actor_sync``: 2,000 calls on one actor, each waited for;
- ``actor_async``: 5,000 calls on one actor in flight, then gathered;
- ``actor_create``: 30 actors created until each answered, then killed.

For each, the CPU time (the threads' run time from
``/proc/<pid>/task/*/schedstat``, to the nanosecond) every process of the
runtime spent, per call, by role (the driver; the GCS; the raylet; the
workers; anything else the runtime runs), and in a second pass
under ``strace -c -f`` the system calls per call by role. Next to them, the
floor: two plain Python processes doing the same number of round trips over
a Unix socket with the same payload size (a pickled no-op call and its
reply), blocking (``sync``) and pipelined in windows (``async``): what any
Python runtime that crosses one process boundary per call pays at least.

    python -m jray.bench.floor [--out FILE.json] [--no-strace]
    .venv-ray/bin/python jray/bench/floor.py --runtime ray    (Ray 2.60)

No jray import at module level (the Ray venv runs this file by path).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    """CPU seconds of ``pid`` (0 if gone): the sum of its threads' run time
    in nanoseconds (``/proc/<pid>/task/*/schedstat``; a thread that ends
    takes its share along, which the daemons' long-lived threads do not),
    else the user + system clock ticks of ``/proc/<pid>/stat``. Ticks
    (10 ms) alone read 0 for a role in a short run, sometimes for all."""
    ns, seen = 0, False
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    ns += int(f.read().split()[0])
                seen = True
            except (OSError, ValueError, IndexError):
                continue  # the thread ended meanwhile
    except OSError:
        pass
    if seen:
        return ns / 1e9
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(parts[11]) + int(parts[12])) / TICK


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def role(cmd: str) -> str:
    """Which part of a runtime a process is, from its command line."""
    if "gcs_server" in cmd or "jray._private.gcs" in cmd:
        return "gcs"
    if "raylet" in cmd and "zygote" not in cmd:
        return "raylet"
    if "zygote" in cmd or "default_worker" in cmd or "jray._private.worker" in cmd or cmd.startswith("ray::"):
        return "workers"
    return "other"


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            kids = []
        out.extend(kids)
        todo.extend(kids)
    return out


def runtime_pids(rt: Any) -> dict[int, str]:
    """The runtime's processes other than this driver, with their roles. For
    Ray, also every process naming this session (its daemons re-parent)."""
    pids = set(_descendants(os.getpid()))
    if rt.__name__ == "ray":
        with contextlib.suppress(Exception):
            session = os.path.basename(rt._private.worker._global_node.get_session_dir_path())
            for name in os.listdir("/proc"):
                if name.isdigit() and session in _cmdline(int(name)):
                    pids.add(int(name))
    pids.discard(os.getpid())
    return {p: role(_cmdline(p)) for p in sorted(pids)}


class Meter:
    """CPU per role between ``start`` and ``stop`` (processes that appear
    meanwhile, e.g. new actors, are counted from their start; those that
    ended are counted up to their last reading)."""

    def __init__(self, rt: Any) -> None:
        self.rt = rt

    def start(self) -> None:
        self.base = {p: _cpu(p) for p in runtime_pids(self.rt)}
        self.me = _cpu_self()

    def sample_ended(self) -> dict[int, float]:
        return {p: _cpu(p) for p in runtime_pids(self.rt)}

    def stop(self, last: dict[int, float] | None = None) -> dict[str, float]:
        now = runtime_pids(self.rt)
        out = {"driver": _cpu_self() - self.me, "gcs": 0.0, "raylet": 0.0, "workers": 0.0, "other": 0.0}
        seen = dict(last or {})
        for p in now:
            seen[p] = _cpu(p)
        for p, cpu in seen.items():
            r = now.get(p) or role(_cmdline(p)) or "workers"
            out[r if r in out else "other"] += max(0.0, cpu - self.base.get(p, 0.0))
        return out


def _cpu_self() -> float:
    return time.process_time()  # every thread of this process, to the microsecond (os.times: clock ticks)


# --------------------------------------------------------------------------
# The workloads: each returns (calls, run) where run() does them once
# --------------------------------------------------------------------------


def workloads(rt: Any, scale: float = 1.0) -> dict[str, tuple[int, Callable[[], None], Callable[[], None]]]:
    """name: (calls, run, after): ``after`` runs outside the measured span.
    ``scale`` shrinks the counts (the tests)."""
    n_tasks, n_sync, n_actors = (max(2, int(n * scale)) for n in (5000, 2000, 30))
    @rt.remote
    def noop() -> None:
        return None

    @rt.remote(num_cpus=0)
    class A:
        def f(self) -> None:
            return None

    actor = A.remote()  # type: ignore[attr-defined]
    rt.get(actor.f.remote())
    made: list[Any] = []

    def tasks_async() -> None:
        rt.get([noop.remote() for _ in range(n_tasks)])

    def actor_sync() -> None:
        for _ in range(n_sync):
            rt.get(actor.f.remote())

    def actor_async() -> None:
        rt.get([actor.f.remote() for _ in range(n_tasks)])

    def actor_create() -> None:
        made.extend(A.remote() for _ in range(n_actors))  # type: ignore[attr-defined]
        rt.get([a.f.remote() for a in made])

    def kill_made() -> None:
        for a in made:
            rt.kill(a)
        made.clear()
        time.sleep(1.5)  # their processes exit

    def nothing() -> None:
        return None

    return {"tasks_async": (n_tasks, tasks_async, nothing), "actor_sync": (n_sync, actor_sync, nothing),
            "actor_async": (n_tasks, actor_async, nothing), "actor_create": (n_actors, actor_create, kill_made)}


def _strace_counts(pids: list[int], run: Callable[[], None]) -> dict[int, dict[str, int]]:
    """System calls per traced process (threads and children followed) while ``run`` runs."""
    outs: dict[int, tuple[subprocess.Popen[bytes], str]] = {}
    tmp = tempfile.mkdtemp(prefix="jray-floor-")
    try:
        for p in pids:
            path = os.path.join(tmp, f"{p}.txt")
            proc = subprocess.Popen(["strace", "-c", "-f", "-o", path, "-p", str(p)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            outs[p] = (proc, path)
        time.sleep(1.0)  # attached
        run()
        counts: dict[int, dict[str, int]] = {}
        for p, (proc, path) in outs.items():
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            counts[p] = _strace_summary(path)
        return counts
    finally:
        for proc, _ in outs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        shutil.rmtree(tmp, ignore_errors=True)


def _strace_summary(path: str) -> dict[str, int]:
    """Calls per system call from an ``strace -c`` summary (its rows:
    % time, seconds, usecs/call, calls, [errors], syscall)."""
    out: dict[str, int] = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) < 5 or not parts[0][0].isdigit() or parts[-1] == "total":
                    continue
                out[parts[-1]] = int(parts[3])
    except (OSError, ValueError):
        pass
    return out


def measure_runtime(rt: Any, use_strace: bool, scale: float = 1.0, repeats: int = 3) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"num_cpus": 2}
    if rt.__name__ == "ray":
        kwargs["include_dashboard"] = False
    rt.init(**kwargs)
    try:
        loads = workloads(rt, scale)
        meter = Meter(rt)
        out: dict[str, Any] = {}
        for name, (calls, run, after) in loads.items():
            run()  # warm-up
            after()
            best: dict[str, float] | None = None
            for _ in range(repeats):
                meter.start()
                t0 = time.perf_counter()
                run()
                wall = time.perf_counter() - t0
                cpu = meter.stop()
                after()
                total = sum(cpu.values())
                if best is None or total < best["total"]:
                    best = {**cpu, "total": total, "wall": wall}
            assert best is not None
            row: dict[str, Any] = {k: v * 1e6 / calls for k, v in best.items()}
            row["calls_per_s"] = calls / best["wall"]
            if use_strace and shutil.which("strace"):
                pids = runtime_pids(rt)
                top = [p for p in pids if role(_cmdline(p)) in ("gcs", "raylet")]
                zyg = [p for p in pids if "zygote" in _cmdline(p) and not _is_child_of_any(p, pids)]
                others = [p for p in pids if role(_cmdline(p)) == "workers" and p not in zyg
                          and not _is_child_of_any(p, set(zyg))]
                # the driver last: strace -f follows the traced process's new
                # children, and the other strace processes are the driver's
                traced = [*top, *(zyg or others), os.getpid()]
                counts = _strace_counts(traced, run)
                after()
                by_role: dict[str, dict[str, int]] = {r: {} for r in ("driver", "gcs", "raylet", "workers", "other")}
                for p, summary in counts.items():
                    r = "driver" if p == os.getpid() else role(_cmdline(p))
                    mine = by_role[r if r in by_role else "other"]
                    for sc, n in summary.items():
                        mine[sc] = mine.get(sc, 0) + n
                row["syscalls"] = {k: sum(v.values()) / calls for k, v in by_role.items()}
                row["syscalls_total"] = sum(row["syscalls"].values())
                # the most frequent per role, per call
                row["syscalls_top"] = {k: {sc: round(n / calls, 2) for sc, n in
                                           sorted(v.items(), key=lambda kv: -kv[1])[:5]}
                                       for k, v in by_role.items() if v}
            out[name] = row
        return out
    finally:
        rt.shutdown()


def _is_child_of_any(pid: int, parents: Any) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return False
    return ppid in parents


# --------------------------------------------------------------------------
# The floor: plain Python, one process boundary per call
# --------------------------------------------------------------------------

_CALL = pickle.dumps(("f", (), {}, b"\0" * 28))  # a call: name, args, kwargs, an id
_REPLY = pickle.dumps((b"\0" * 28, None))


def _serve(sock: socket.socket) -> None:
    """Answer each framed call; every call that arrived in one read is
    answered in one write (as a good server batches)."""
    buf = bytearray()
    while True:
        data = sock.recv(1 << 16)
        if not data:
            return
        buf += data
        out = []
        while len(buf) >= 4:
            n = int.from_bytes(buf[:4], "little")
            if len(buf) < 4 + n:
                break
            pickle.loads(bytes(buf[4:4 + n]))
            del buf[:4 + n]
            out.append(len(_REPLY).to_bytes(4, "little") + _REPLY)
        if out:
            sock.sendall(b"".join(out))


def floor(calls: int = 20_000, window: int = 256) -> dict[str, dict[str, float]]:
    """Round trips between two plain Python processes over a Unix socket:
    ``sync`` one at a time, ``async`` ``window`` in flight. CPU per call of
    both processes, calls/s, and system calls per call (counted, not traced:
    each sync round trip is one write and one read each side)."""
    out: dict[str, dict[str, float]] = {}
    for mode in ("sync", "async"):
        a, b = socket.socketpair()
        pid = os.fork()
        if pid == 0:  # the "worker"
            a.close()
            try:
                _serve(b)
            finally:
                os._exit(0)
        b.close()
        f = a.makefile("rwb", buffering=1 << 16)
        msg = len(_CALL).to_bytes(4, "little") + _CALL
        # CPU read to the microsecond (not in 10 ms clock ticks: a short run
        # would read 0): this process's own clock, and the child's rusage
        # from wait4 (the child was forked just now: its CPU before is ~0).
        w0, t0 = time.process_time(), time.perf_counter()
        if mode == "sync":
            for _ in range(calls):
                f.write(msg)
                f.flush()
                n = int.from_bytes(f.read(4), "little")
                pickle.loads(f.read(n))
        else:
            for start in range(0, calls, window):
                k = min(window, calls - start)
                f.write(msg * k)
                f.flush()
                for _ in range(k):
                    n = int.from_bytes(f.read(4), "little")
                    pickle.loads(f.read(n))
        wall = time.perf_counter() - t0
        mine = time.process_time() - w0
        f.close()
        a.close()
        _, _, usage = os.wait4(pid, 0)
        theirs = usage.ru_utime + usage.ru_stime
        out[mode] = {"driver": mine * 1e6 / calls, "workers": theirs * 1e6 / calls,
                     "total": (mine + theirs) * 1e6 / calls, "calls_per_s": calls / wall}
    return out


# The image a floor zygote holds: what a Python actor runtime's worker needs
# at least (an event loop, logging, threads, a pickler for classes sent by
# value), and gRPC where it is installed (both runtimes' workers map it).
_ZYGOTE_MODULES = ("asyncio", "logging", "threading", "pickle", "cloudpickle", "grpc")


class _FloorActor:
    """The actor class of the creation floor (sent by value where cloudpickle is)."""

    def __init__(self) -> None:
        self.n = 0

    def f(self) -> int:
        self.n += 1
        return self.n


def _zygote_loop(ctl: socket.socket, host: str, port: int) -> None:
    """The floor's fork server: one child per byte read on ``ctl`` (its pid
    answered as 4 bytes). A child connects to ``host:port``, reads one framed
    message (a pickled class and a method name), makes the instance, answers
    the call, and waits to be killed: the least a process-per-actor runtime
    does for each actor."""
    import gc
    import importlib

    for name in _ZYGOTE_MODULES:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    gc.collect()
    gc.freeze()  # as a runtime's zygote does: the children's collections leave its pages shared
    signal.signal(signal.SIGCHLD, lambda *_: _reap_all())
    while True:
        try:
            b = ctl.recv(1)
        except InterruptedError:
            continue
        if not b:
            return
        pid = os.fork()
        if pid == 0:
            try:
                ctl.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                c = socket.create_connection((host, port))
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                f = c.makefile("rwb")
                n = int.from_bytes(f.read(4), "little")
                cls, method = pickle.loads(f.read(n))
                reply = pickle.dumps(getattr(cls(), method)())
                f.write(len(reply).to_bytes(4, "little") + reply)
                f.flush()
                f.read(1)  # until killed (or the driver closes)
            finally:
                os._exit(0)
        ctl.sendall(pid.to_bytes(4, "little"))


def _reap_all() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def floor_create(actors: int = 30, batch: int = 10, repeats: int = 3) -> dict[str, float]:
    """The floor of actor creation: a zygote (forked from this process, its
    image ``_ZYGOTE_MODULES``, collector frozen) forks one process per actor;
    each connects back over loopback TCP, gets its class and a call, makes
    the instance and answers. ``batch`` actors are asked for at once (as the
    ``actor_create`` workload does), then killed outside the measured span.
    CPU per actor of this process (the "driver"), the zygote and the actors'
    processes (read before they are killed; their exit is not counted, as in
    the runtimes' figure), and actors/s; the best of ``repeats``."""
    try:
        import cloudpickle  # type: ignore[import-not-found]

        by_value: Callable[[Any], bytes] = cloudpickle.dumps
    except ImportError:  # the class by reference: the children have this module
        by_value = pickle.dumps
    listener = socket.create_server(("127.0.0.1", 0), backlog=max(128, batch))
    port = listener.getsockname()[1]
    ctl_parent, ctl_child = socket.socketpair()
    zpid = os.fork()
    if zpid == 0:
        try:
            listener.close()
            ctl_parent.close()
            _zygote_loop(ctl_child, "127.0.0.1", port)
        finally:
            os._exit(0)
    ctl_child.close()
    try:
        ctl_parent.recv(0)
        # a class defined in the driver (cloudpickle sends it by value, as both runtimes do)
        ns: dict[str, Any] = {}
        exec("class Counter:\n    def __init__(self):\n        self.n = 0\n"
             "    def f(self):\n        self.n += 1\n        return self.n\n", ns)
        cls = ns["Counter"] if by_value is not pickle.dumps else _FloorActor
        msg = by_value((cls, "f"))  # once: a runtime exports a class once, not per actor
        msg = len(msg).to_bytes(4, "little") + msg
        best: dict[str, float] | None = None
        for rep in range(repeats + 1):  # the first round warms the zygote up
            d0, z0, t0 = _cpu_self(), _cpu(zpid), time.perf_counter()
            pids, kids = [], []
            for start in range(0, actors, batch):
                k = min(batch, actors - start)
                ctl_parent.sendall(b"x" * k)
                for _ in range(k):
                    pids.append(int.from_bytes(_recv_exactly_sock(ctl_parent, 4), "little"))
                for _ in range(k):
                    c, _addr = listener.accept()
                    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    c.sendall(msg)
                    kids.append(c)
                for c in kids[start:]:
                    n = int.from_bytes(_recv_exactly_sock(c, 4), "little")
                    pickle.loads(_recv_exactly_sock(c, n))
            wall = time.perf_counter() - t0
            drv, zyg = _cpu_self() - d0, _cpu(zpid) - z0
            act = sum(_cpu(p) for p in pids)
            for p in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
            for c in kids:
                c.close()
            if rep == 0:
                continue
            row = {"driver": drv * 1e3 / actors, "zygote": zyg * 1e3 / actors, "actors": act * 1e3 / actors,
                   "total": (drv + zyg + act) * 1e3 / actors, "actors_per_s": actors / wall}
            if best is None or row["total"] < best["total"]:
                best = row
        assert best is not None
        return best
    finally:
        ctl_parent.close()
        listener.close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(zpid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(zpid, 0)


def _recv_exactly_sock(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("the peer closed the connection")
        buf += chunk
    return buf


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runtime", default="jray", choices=("jray", "ray"))
    p.add_argument("--out", help="write the figures as JSON here")
    p.add_argument("--no-strace", action="store_true", help="skip the system-call pass")
    p.add_argument("--scale", type=float, default=1.0, help="shrink the call counts (e.g. 0.1)")
    ns = p.parse_args(argv)
    import importlib

    rt = importlib.import_module(ns.runtime)
    result = {"runtime": ns.runtime, "version": getattr(rt, "__version__", "?"),
              "workloads": measure_runtime(rt, not ns.no_strace, ns.scale),
              "floor": floor(max(200, int(20_000 * ns.scale))),
              "floor_create": floor_create(max(4, int(30 * ns.scale)), batch=10)}
    text = json.dumps(result, indent=1)
    if ns.out:
        with open(ns.out, "w") as f:
            f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
