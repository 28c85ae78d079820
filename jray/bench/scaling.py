"""Scaling workloads: how a runtime holds up as the counts grow.

- ``scale_tasks``: 10k, 100k and 1M no-op tasks submitted at once, then
  gathered (quick: 10k, 100k);
- ``scale_actors``: 100, 300 and 1,000 actors (``num_cpus=0``) alive at
  once, then killed (quick: 100, 300);
- ``scale_objects``: 10k and 100k small live objects from ``put``, then
  1,000 objects of 1 MB (quick: 10k, and the 1 MB objects);
- ``scale_nodes``: 1, 4, 16 and 32 raylets (1 CPU each) under one GCS, by
  the runtime's multi-node test helper: registration, idle CPU of the GCS
  per node, tasks spread across the nodes (quick: 1, 4); it runs without
  the suite's session (``OWN_CLUSTER``);
- ``scale_drivers``: 1, 4 and 16 driver processes attached to the suite's
  session at once, each running tasks_async's workload (quick: 1, 4).

They are long, so they never run by default: ``--scale`` or naming them in
``--only``. Each runs once per round (no warm-up: the smaller sizes come
first), in a session of its own (started before, shut down after), under a
deadline of its own (``--deadline NAME=S``). Each size's figures are kept as
soon as it is measured, so a later size that fails or runs out of time
leaves the earlier ones reported. While a size runs, a watcher thread
samples memory every 0.2 s: the driver's RSS, the summed RSS of the
runtime's other processes and the machine's available memory; when that
drops below 3 GiB the size stops, its figures (and the larger sizes') are
reported as ``failed: memory``, and what it created is dropped.

The runtime's other processes are the driver's descendants and, for Ray,
every process whose command line names the session (``coldstart.py``'s
``runtime_pids``, loaded by path).

Loaded by ``workloads.py`` by file path; like it this module imports
nothing from jray, nothing but the standard library at module level (psutil
and numpy inside the workloads) and nothing from ``workloads.py``: a
workload here is a ``setup(ctx)`` taking the suite's context
(``workloads.Ctx``), and ``METRICS`` / ``WORKLOADS`` are plain tuples.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import importlib.util
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

MB = 1024 * 1024
GIB = 1024 * MB
KB = 1024
MEMORY_FLOOR = 3 * GIB  # stop a size when the machine's available memory drops below this
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

Sample = dict[str, Any]

# The sizes, by the label in the metrics' names (scale_tasks_100k_us, ...),
# and those of a quick run. The counts are read when a workload runs: the
# tests shrink them (the labels and the report's rows stay).
TASKS: dict[str, int] = {"10k": 10_000, "100k": 100_000, "1M": 1_000_000}
TASKS_QUICK = ("10k", "100k")
ACTORS: dict[str, int] = {"100": 100, "300": 300, "1000": 1000}
ACTORS_QUICK = ("100", "300")
OBJECTS: dict[str, int] = {"10k": 10_000, "100k": 100_000}
OBJECTS_QUICK = ("10k",)
BIG_OBJECTS: dict[str, int] = {"count": 1000, "bytes": MB}  # the 1 MB objects (row "1mb")
NODES: dict[str, int] = {"1": 1, "4": 4, "16": 16, "32": 32}
NODES_QUICK = ("1", "4")
# scale_nodes: the idle window (s), the no-op tasks per size, the 10 ms tasks
# per node, and each node's object store (Ray's floor is 75 MiB).
NODE_RUN: dict[str, float] = {"idle_s": 10.0, "noop": 2000, "spread": 50, "store": 100 * MB}
DRIVERS: dict[str, int] = {"1": 1, "4": 4, "16": 16}
DRIVERS_QUICK = ("1", "4")
DRIVER_TASKS: dict[str, int] = {"tasks": 5000}  # per driver, as tasks_async


def _row(n: int) -> str:
    return f"{n:,}"


# (name, title, unit, better, table, row, column): see workloads.Metric. The
# report puts each table's metrics in a table of their own, one row per size.
_TASK_COLS = (
    ("us", "time per task", "µs"),
    ("driver_kb", "driver: peak RSS growth per queued task", "KB"),
    ("runtime_kb", "other processes: peak RSS growth per queued task", "KB"),
)
_ACTOR_COLS = (
    ("ms", "creation per actor (until it answered)", "ms"),
    ("pss_mb", "PSS per actor (runtime's processes)", "MB"),
    ("kill_ms", "kill per actor (until its process is gone)", "ms"),
)
_OBJECT_COLS = (
    ("put_us", "put per object", "µs"),
    ("get_us", "get per object (one get of all)", "µs"),
    ("wait_us", "wait per object (one wait for all)", "µs"),
    ("free_us", "free per object (dropping the refs)", "µs"),
    ("owner_kb", "owner: private RSS growth per live object", "KB"),
)
_BIG_ROW = f"{BIG_OBJECTS['count']:,} × 1 MB"


# Rates (tasks/s): higher is better; the report marks those columns.
_NODE_COLS = (
    ("reg_ms", "registration per node (start until the GCS sees all alive)", "ms"),
    ("gcs_cpu_ms", "GCS CPU while idle, per node", "ms/s"),
    ("others_cpu_ms", "other processes' CPU while idle, per node", "ms/s"),
    ("noop_tps", "no-op tasks (num_cpus=1) from the driver", "tasks/s"),
    ("spread_tps", "10 ms tasks (num_cpus=1), ideal 100/s × nodes", "tasks/s"),
    ("spread_nodes", "nodes that ran a 10 ms task", "nodes"),
)
_DRIVER_COLS = (
    ("agg_tps", "aggregate (common start to last finish)", "tasks/s"),
    ("per_tps", "per driver (mean of each driver's own rate)", "tasks/s"),
    ("ready_s", "all connected and warm (until the barrier)", "s"),
)
_HIGHER = {"noop_tps", "spread_tps", "spread_nodes", "agg_tps", "per_tps"}


def _metrics() -> tuple[tuple[str, str, str, str, str, str, str], ...]:
    out: list[tuple[str, str, str, str, str, str, str]] = []
    for table, what, sizes, cols in (
        ("scale_tasks", "tasks", TASKS, _TASK_COLS),
        ("scale_actors", "actors", ACTORS, _ACTOR_COLS),
        ("scale_objects", "objects", {**OBJECTS, "1mb": 0}, _OBJECT_COLS),
        ("scale_nodes", "nodes", NODES, _NODE_COLS),
        ("scale_drivers", "drivers", DRIVERS, _DRIVER_COLS),
    ):
        for size, n in sizes.items():
            row = _row(n) if n else _BIG_ROW
            for key, col, unit in cols:
                name = f"{table}_{size}_{key}"
                better = "higher" if key in _HIGHER else "lower"
                out.append((name, f"{row} {what}: {col}", unit, better, table, row, col))
    return tuple(out)


METRICS = _metrics()

# Headings of the report's tables, by table.
TABLES: dict[str, str] = {
    "scale_tasks": "no-op tasks submitted at once, then gathered",
    "scale_actors": "actors (num_cpus=0) alive at once, then killed",
    "scale_objects": "live objects from put (small, then 1 MB)",
    "scale_nodes": "raylets (1 CPU each) under one GCS",
    "scale_drivers": "concurrent drivers on one cluster (num_cpus=2), each running tasks async",
}


def _task_names(size: str) -> list[str]:
    return [f"scale_tasks_{size}_{key}" for key, _, _ in _TASK_COLS]


def _actor_names(size: str) -> list[str]:
    return [f"scale_actors_{size}_{key}" for key, _, _ in _ACTOR_COLS]


def _object_names(size: str) -> list[str]:
    return [f"scale_objects_{size}_{key}" for key, _, _ in _OBJECT_COLS]


# --------------------------------------------------------------------------
# Memory: /proc, and a watcher thread
# --------------------------------------------------------------------------


class OutOfMemory(Exception):
    """The machine's available memory dropped below ``MEMORY_FLOOR`` during a size."""


def _coldstart() -> ModuleType:
    key = "jray_bench_coldstart"
    if key in sys.modules:
        return sys.modules[key]
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "coldstart.py")
    spec = importlib.util.spec_from_file_location(key, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


def runtime_pids(rt: Any) -> list[int]:
    """The runtime's processes other than this driver (see ``coldstart.runtime_pids``)."""
    return list(_coldstart().runtime_pids(rt))


def rss(pid: int | str = "self") -> int:
    """Resident set size in bytes (0 if the process is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def status_bytes(key: str, pid: int | str = "self") -> int:
    """A ``kB`` field of /proc/<pid>/status (RssAnon, VmHWM, ...) in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * KB
    return 0


def pss(pid: int) -> int:
    """Proportional set size in bytes (0 if the process is gone)."""
    try:
        return int(_coldstart().smaps_rollup(pid)[1])
    except (OSError, ValueError):
        return 0


def available_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * KB
    return 1 << 62


class Watch:
    """Samples memory in a thread while a size runs: peak RSS of the driver,
    peak summed RSS of the runtime's other processes (their set rescanned
    every 2 s), the lowest available memory, and whether it went under the
    floor (``check`` then raises ``OutOfMemory``)."""

    def __init__(self, rt: Any, period: float = 0.2, rescan: float = 2.0) -> None:
        self.rt, self.period, self.rescan = rt, period, rescan
        self.pids = runtime_pids(rt)
        self.base_driver = rss()
        self.base_others = self.others()
        self.peak_driver, self.peak_others = self.base_driver, self.base_others
        self.min_available = available_memory()
        self.low: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="bench-memory-watch")

    def others(self) -> int:
        return sum(rss(p) for p in self.pids)

    def sample(self) -> None:
        self.peak_driver = max(self.peak_driver, rss())
        self.peak_others = max(self.peak_others, self.others())
        avail = available_memory()
        self.min_available = min(self.min_available, avail)
        if avail < MEMORY_FLOOR and self.low is None:
            self.low = avail

    def _loop(self) -> None:
        last_scan = time.monotonic()
        while not self._stop.wait(self.period):
            if time.monotonic() - last_scan > self.rescan:
                with contextlib.suppress(Exception):
                    self.pids = runtime_pids(self.rt)
                last_scan = time.monotonic()
            self.sample()

    def check(self) -> None:
        if self.low is not None:
            raise OutOfMemory(
                f"available memory fell to {self.low / GIB:.1f} GiB (floor {MEMORY_FLOOR / GIB:.0f})"
            )

    def __enter__(self) -> Watch:
        self.sample()  # a size does not start when memory is low already
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(5)
        with contextlib.suppress(Exception):
            self.sample()

    def notes(self) -> dict[str, float]:
        return {
            "driver_peak_rss_mb": round(self.peak_driver / MB, 1),
            "others_peak_rss_mb": round(self.peak_others / MB, 1),
            "min_available_gib": round(self.min_available / GIB, 2),
            "processes": len(self.pids),
        }


def gather(ctx: Any, refs: list[Any], watch: Watch, chunk: int = 10_000, poll: float = 5.0) -> None:
    """``get`` of every ref, ``chunk`` at a time, each call bounded by ``poll``
    seconds so the memory watch is checked while the runtime works."""
    for i in range(0, len(refs), chunk):
        part = refs[i : i + chunk]
        while True:
            watch.check()
            left = ctx.remaining()  # raises TimeoutError once the deadline has passed
            try:
                ctx.rt.get(part, timeout=min(poll, left))
                break
            except TimeoutError:  # GetTimeoutError is one, in both runtimes
                continue


def _fail(ctx: Any, names: Iterable[str], reason: str) -> None:
    for n in names:
        ctx.failed.setdefault(n, reason)


def _settle() -> None:
    gc.collect()
    time.sleep(0.5)


# --------------------------------------------------------------------------
# scale_tasks
# --------------------------------------------------------------------------


def scale_tasks(ctx: Any) -> Callable[[], Sample]:
    """N no-op tasks submitted at once (``[f.remote() for _ in range(N)]``),
    then gathered; time per task over the whole; peak RSS growth of the
    driver and of the runtime's other processes per queued task."""
    rt = ctx.rt

    def noop() -> None:
        return None

    f = rt.remote(noop)
    sizes = ctx.n(tuple(TASKS), TASKS_QUICK)
    ctx.planned = {n for s in sizes for n in _task_names(s)}
    ctx.get([f.remote() for _ in range(10)])  # workers started before the clock

    def once() -> Sample:
        for i, size in enumerate(sizes):
            n, names = TASKS[size], _task_names(size)
            _settle()
            refs: list[Any] = []
            try:
                with Watch(rt) as w:
                    t0 = time.perf_counter()
                    step = 10_000
                    for j in range(0, n, step):
                        refs.extend([f.remote() for _ in range(min(step, n - j))])
                        w.check()
                    submitted = time.perf_counter() - t0
                    gather(ctx, refs, w)
                    elapsed = time.perf_counter() - t0
            except OutOfMemory as e:
                ctx.notes[f"{size}_failed"] = str(e)
                ctx.say(f"{size}: stopped: {ctx.notes[f'{size}_failed']}")
                _fail(ctx, names, "memory")
                for other in sizes[i + 1 :]:
                    _fail(ctx, _task_names(other), "skipped: memory")
                return {}
            finally:
                del refs
            us, driver_kb, runtime_kb = names
            ctx.singles[us] = elapsed * 1e6 / n
            ctx.singles[driver_kb] = max(0, w.peak_driver - w.base_driver) / KB / n
            ctx.singles[runtime_kb] = max(0, w.peak_others - w.base_others) / KB / n
            ctx.notes[size] = dict(w.notes(), tasks=n, submit_s=round(submitted, 3),
                                       total_s=round(elapsed, 3))
            ctx.say(f"{size}: {ctx.singles[us]:.1f} µs per task, {ctx.notes[size]}")
        return {}

    return once


# --------------------------------------------------------------------------
# scale_actors
# --------------------------------------------------------------------------


def _wait_processes(rt: Any, at_most: int, timeout: float) -> bool:
    """Until the runtime has at most ``at_most`` processes; False if it took too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(runtime_pids(rt)) <= at_most:
            return True
        time.sleep(0.2)
    return False


def scale_actors(ctx: Any) -> Callable[[], Sample]:
    """N actors created at once; the clock stops when every one has answered
    a call. Memory per actor: the PSS summed over the runtime's processes,
    less what it was before, per actor. Then each is killed; the kill figure
    runs until the runtime is back to as many processes as before."""
    rt = ctx.rt

    class Idle:
        def ping(self) -> int:
            return os.getpid()

    cls = rt.remote(num_cpus=0)(Idle)
    sizes = ctx.n(tuple(ACTORS), ACTORS_QUICK)
    ctx.planned = {n for s in sizes for n in _actor_names(s)}

    def kill_all(actors: list[Any]) -> None:
        for a in actors:
            with contextlib.suppress(Exception):
                rt.kill(a)

    def once() -> Sample:
        for i, size in enumerate(sizes):
            n, names = ACTORS[size], _actor_names(size)
            _settle()
            base_pids = runtime_pids(rt)
            base_pss = sum(pss(p) for p in base_pids)
            actors: list[Any] = []
            try:
                with Watch(rt) as w:
                    t0 = time.perf_counter()
                    for j in range(n):
                        actors.append(cls.remote())
                        if j % 25 == 0:
                            w.check()
                    gather(ctx, [a.ping.remote() for a in actors], w, chunk=50)
                    created = time.perf_counter() - t0
                pids = runtime_pids(rt)
                ctx.singles[names[0]] = created * 1e3 / n
                ctx.singles[names[1]] = max(0, sum(pss(p) for p in pids) - base_pss) / MB / n
                ctx.notes[size] = dict(w.notes(), actors=n, processes=len(pids),
                                           base_processes=len(base_pids))
                ctx.say(f"{size}: {ctx.singles[names[0]]:.1f} ms per actor, {ctx.notes[size]}")
            except OutOfMemory as e:
                ctx.notes[f"{size}_failed"] = f"{e} with {len(actors)} actors created"
                ctx.say(f"{size}: stopped: {ctx.notes[f'{size}_failed']}")
                _fail(ctx, names, "memory")
                for other in sizes[i + 1 :]:
                    _fail(ctx, _actor_names(other), "skipped: memory")
                kill_all(actors)
                del actors
                _wait_processes(rt, len(base_pids), 120)
                return {}
            except BaseException:
                kill_all(actors)
                raise
            t1 = time.perf_counter()
            kill_all(actors)
            del actors
            if _wait_processes(rt, len(base_pids), min(180.0, ctx.remaining())):
                ctx.singles[names[2]] = (time.perf_counter() - t1) * 1e3 / n
            else:
                _fail(ctx, names[2:], "time")
        return {}

    return once


# --------------------------------------------------------------------------
# scale_objects
# --------------------------------------------------------------------------


def scale_objects(ctx: Any) -> Callable[[], Sample]:
    """N small objects from ``put`` (kept alive), then one ``get`` of all,
    one ``wait`` for all, and dropping the refs; per object each. The
    owner's growth is its private RSS (``RssAnon``: the driver's own
    bookkeeping, not the store's shared pages it maps) while the objects
    live, per object. Then the same with 1,000 objects of 1 MB."""
    rt = ctx.rt
    sizes = ctx.n(tuple(OBJECTS), OBJECTS_QUICK)
    rows: list[tuple[str, int, int | None]] = [(s, OBJECTS[s], None) for s in sizes]
    rows.append(("1mb", BIG_OBJECTS["count"], BIG_OBJECTS["bytes"]))
    ctx.planned = {n for size, _, _ in rows for n in _object_names(size)}

    def value(i: int, nbytes: int | None) -> Any:
        if nbytes is None:
            return i
        import numpy as np

        return np.full(nbytes, i % 251, dtype=np.uint8)

    def once() -> Sample:
        for index, (size, n, nbytes) in enumerate(rows):
            names = _object_names(size)
            big = None if nbytes is None else value(1, nbytes)
            _settle()
            refs: list[Any] = []
            try:
                with Watch(rt) as w:
                    base_anon, base_rss = status_bytes("RssAnon"), rss()
                    t0 = time.perf_counter()
                    for j in range(n):
                        refs.append(rt.put(j if big is None else big))
                        if j % 1000 == 0:
                            w.check()
                    t1 = time.perf_counter()
                    anon, total = status_bytes("RssAnon"), rss()
                    values = ctx.get(refs)
                    t2 = time.perf_counter()
                    assert len(values) == n
                    del values
                    ready, _ = rt.wait(refs, num_returns=n, timeout=ctx.remaining())
                    t3 = time.perf_counter()
                    assert len(ready) == n
                    del ready
                    t4 = time.perf_counter()
                    refs.clear()
                    t5 = time.perf_counter()
            except OutOfMemory as e:
                ctx.notes[f"{size}_failed"] = str(e)
                ctx.say(f"{size}: stopped: {ctx.notes[f'{size}_failed']}")
                _fail(ctx, names, "memory")
                for other, _, _ in rows[index + 1 :]:
                    _fail(ctx, _object_names(other), "skipped: memory")
                return {}
            finally:
                del refs
            put_us, get_us, wait_us, free_us, owner_kb = names
            ctx.singles[put_us] = (t1 - t0) * 1e6 / n
            ctx.singles[get_us] = (t2 - t1) * 1e6 / n
            ctx.singles[wait_us] = (t3 - t2) * 1e6 / n
            ctx.singles[free_us] = (t5 - t4) * 1e6 / n
            ctx.singles[owner_kb] = max(0, anon - base_anon) / KB / n
            ctx.say(f"{size}: put {ctx.singles[put_us]:.1f} µs per object")
            ctx.notes[size] = dict(w.notes(), objects=n, owner_rss_growth_mb=round((total - base_rss) / MB, 1),
                                   owner_anon_growth_mb=round((anon - base_anon) / MB, 1))
            time.sleep(1.0)  # freeing is asynchronous in both runtimes
        return {}

    return once


# --------------------------------------------------------------------------
# scale_nodes
# --------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # after the command name: field 3 on
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def _name(rt: Any) -> str:
    return str(getattr(rt, "__name__", "runtime")).split(".")[0]


def _names(table: str, size: str, cols: tuple[tuple[str, str, str], ...]) -> list[str]:
    return [f"{table}_{size}_{key}" for key, _, _ in cols]


def _cluster_class(name: str) -> Any:
    """The runtime's multi-node test helper (imported before the clock starts)."""
    module = "ray.cluster_utils" if name == "ray" else "jray.testing"
    return importlib.import_module(module).Cluster


def _start_nodes(name: str, n: int, w: Watch, ctx: Any, holder: list[Any],
                 started: list[int]) -> int:
    """A cluster of ``n`` raylets with 1 CPU each (the head's first) by the
    runtime's test helper (``ray.cluster_utils.Cluster``, ``jray.testing.Cluster``),
    put in ``holder`` as soon as it exists (``started[0]``: the raylets
    started so far); returns once the GCS sees every
    node alive, with the GCS's pid."""
    args: dict[str, Any] = {"num_cpus": 1, "object_store_memory": int(NODE_RUN["store"])}
    w.check()
    if name == "ray":
        # shutdown_at_exit=False: Ray's hooks set signal handlers, which only the
        # main thread may (a workload runs on a thread of its own); stopped by
        # _stop_nodes, and by the runner's kill of the process group at worst.
        cluster = _cluster_class(name)(initialize_head=True, shutdown_at_exit=False,
                                       head_node_args=dict(args, include_dashboard=False))
    else:
        cluster = _cluster_class(name)(head_node_args=args)
    holder.append(cluster)
    started[0] = 1
    for _ in range(n - 1):
        w.check()
        ctx.remaining()
        cluster.add_node(wait=False, **args)
        started[0] += 1
    w.check()
    cluster.wait_for_nodes(timeout=min(600.0, ctx.remaining()))
    if name == "ray":
        return int(cluster.head_node.all_processes["gcs_server"][0].process.pid)
    return int(cluster.handle.gcs_pid)


def _stop_nodes(rt: Any, holder: list[Any]) -> None:
    with contextlib.suppress(Exception):
        rt.shutdown()
    for cluster in holder:
        with contextlib.suppress(Exception):
            cluster.shutdown()
    holder.clear()


def _idle_cpu(rt: Any, gcs_pid: int, seconds: float, w: Watch) -> tuple[float, float]:
    """CPU seconds of the GCS and of the runtime's other processes over an
    idle window of ``seconds``. (jray's head raylet serves the GCS from its
    own process by default: there ``gcs_pid`` is that raylet's, and the GCS's
    figure holds the head raylet's idle CPU too.)"""
    others = [p for p in runtime_pids(rt) if p != gcs_pid]
    before = {p: cpu_seconds(p) for p in others}
    gcs0 = cpu_seconds(gcs_pid)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(min(0.5, max(0.0, end - time.monotonic())))
        w.check()
    gcs = cpu_seconds(gcs_pid) - gcs0
    rest = sum(max(0.0, cpu_seconds(p) - c0) for p, c0 in before.items())
    return gcs, rest


def scale_nodes(ctx: Any) -> Callable[[], Sample]:
    """For each size, a cluster of N raylets (1 CPU each) under one GCS on
    this machine, by the runtime's test helper, without the suite's session.
    Registration: from the start of the head until the GCS sees all N alive,
    per node (processes started one after the other, as the helpers do).
    Idle CPU: after 2 s to settle, the CPU seconds over an idle window of
    the GCS and of the other processes (raylets; Ray's agents), per node per
    second (no driver connected). Then a driver connects to the head: tasks
    (``num_cpus=1``) returning the node they ran on, after a warm-up of 2N
    tasks of 0.3 s (a worker on each node); no-op tasks, then 10 ms tasks,
    50 per node, which one CPU per node forces to spread: the head's raylet
    spills back (ideal: 100 tasks/s per node). The cluster is shut down
    after each size."""
    rt, name = ctx.rt, _name(ctx.rt)
    with contextlib.suppress(Exception):
        rt.shutdown()  # a cluster of its own: not the suite's session
    sizes = ctx.n(tuple(NODES), NODES_QUICK)
    ctx.planned = {m for s in sizes for m in _names("scale_nodes", s, _NODE_COLS)}
    holder: list[Any] = []
    started = [0]
    ctx.defer(lambda: _stop_nodes(rt, holder))
    _cluster_class(name)

    def where(delay: float) -> str:
        if delay:
            time.sleep(delay)
        return str(rt.get_runtime_context().get_node_id())

    def measure(n: int, w: Watch) -> dict[str, Any]:
        t0 = time.perf_counter()
        gcs_pid = _start_nodes(name, n, w, ctx, holder, started)
        registered = time.perf_counter() - t0
        time.sleep(2.0)  # Ray's agents are still starting
        idle_s = float(NODE_RUN["idle_s"])
        gcs_cpu, others_cpu = _idle_cpu(rt, gcs_pid, idle_s, w)
        holder[0].connect()
        f = rt.remote(num_cpus=1)(where)
        ctx.get([f.remote(0.3) for _ in range(2 * n)])  # a worker on each node before the clock
        w.check()
        count = int(NODE_RUN["noop"])
        t1 = time.perf_counter()
        ctx.get([f.remote(0.0) for _ in range(count)])
        noop_s = time.perf_counter() - t1
        w.check()
        spread = int(NODE_RUN["spread"]) * n
        t2 = time.perf_counter()
        ran_on = ctx.get([f.remote(0.01) for _ in range(spread)])
        spread_s = time.perf_counter() - t2
        return {"reg_ms": registered * 1e3 / n, "gcs_cpu_ms": gcs_cpu * 1e3 / n / idle_s,
                "others_cpu_ms": others_cpu * 1e3 / n / idle_s, "noop_tps": count / noop_s,
                "spread_tps": spread / spread_s, "spread_nodes": float(len(set(ran_on))),
                "notes": {"register_s": round(registered, 3), "gcs_pid": gcs_pid,
                          "gcs_cpu_s": round(gcs_cpu, 3), "others_cpu_s": round(others_cpu, 3),
                          "idle_s": idle_s, "noop_tasks": count, "spread_tasks": spread}}

    def once() -> Sample:
        for i, size in enumerate(sizes):
            n, names = NODES[size], _names("scale_nodes", size, _NODE_COLS)
            _settle()
            try:
                with Watch(rt) as w:
                    got = measure(n, w)
                    peak_others = w.others()
            except OutOfMemory as e:
                ctx.notes[f"{size}_failed"] = f"{e} with {started[0]} of {n} raylets started"
                ctx.say(f"{size}: stopped: {ctx.notes[f'{size}_failed']}")
                _fail(ctx, names, "memory")
                for other in sizes[i + 1 :]:
                    _fail(ctx, _names("scale_nodes", other, _NODE_COLS), "skipped: memory")
                return {}
            finally:
                _stop_nodes(rt, holder)
            notes = got.pop("notes")
            for key, value in got.items():
                ctx.singles[f"scale_nodes_{size}_{key}"] = value
            ctx.notes[size] = dict(w.notes(), nodes=n, **notes,
                                   rss_per_node_mb=round(peak_others / MB / n, 1))
            ctx.say(f"{size}: {got}")
        return {}

    return once


# --------------------------------------------------------------------------
# scale_drivers
# --------------------------------------------------------------------------

# A driver: connects, warms up, says "BENCH ready", waits for "go" on its
# stdin, runs tasks_async's workload (N no-op tasks submitted, then one get)
# and prints its own start and end (wall clock, comparable across processes).
DRIVER = """
import importlib, json, sys, time
name, address, n, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
rt = importlib.import_module(name)
rt.init(address=address, log_to_driver=False)
def small_value():
    return b"ok"
small = rt.remote(small_value)
rt.get([small.remote() for _ in range(20)], timeout=limit)
print("BENCH ready", flush=True)
if sys.stdin.readline().strip() != "go":
    sys.exit(3)
t0 = time.time()
rt.get([small.remote() for _ in range(n)], timeout=limit)
t1 = time.time()
print("BENCH " + json.dumps({"start": t0, "end": t1}), flush=True)
rt.shutdown()
"""


def _driver_env(rt: Any, name: str) -> tuple[str, dict[str, str]]:
    """The address drivers connect to (this session's cluster) and their environment."""
    address = str(rt.get_runtime_context().gcs_address)
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1")
    # The drivers import the same runtime this interpreter has.
    root = os.path.dirname(os.path.dirname(os.path.abspath(rt.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    if name == "jray":  # no public API gives the token: the driver's own
        worker: Any = importlib.import_module("jray._private.worker.global_state").worker
        env["JRAY_TOKEN"] = str(worker.token)
    return address, env


def _read_bench_lines(procs: list[Any], logs: list[str], ctx: Any, w: Watch) -> list[str]:
    """The next ``BENCH ...`` line of each driver (other output skipped), the
    memory watch and the deadline checked meanwhile."""
    bufs = {p.stdout.fileno(): b"" for p in procs}
    which = {p.stdout.fileno(): i for i, p in enumerate(procs)}
    got: dict[int, str] = {}
    while len(got) < len(procs):
        w.check()
        ctx.remaining()
        ready, _, _ = select.select([fd for fd in bufs if fd not in got], [], [], 0.5)
        for fd in ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                i = which[fd]
                procs[i].wait(10)
                with open(logs[i], errors="replace") as f:
                    tail = f.read()[-2000:]
                raise RuntimeError(f"driver {i} exited ({procs[i].returncode}) early: {tail}")
            bufs[fd] += chunk
            while fd not in got and b"\n" in bufs[fd]:
                line, bufs[fd] = bufs[fd].split(b"\n", 1)
                if line.startswith(b"BENCH "):
                    got[fd] = line[6:].decode()
    return [got[p.stdout.fileno()] for p in procs]


def _reap(procs: list[Any]) -> None:
    for p in procs:
        with contextlib.suppress(Exception):
            p.wait(30 if p.stdin.closed else 0.1)
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            p.wait()
        for stream in (p.stdin, p.stdout):
            with contextlib.suppress(Exception):
                stream.close()
    procs.clear()


def scale_drivers(ctx: Any) -> Callable[[], Sample]:
    """For each size, N driver processes (this interpreter, ``init(address=...)``)
    attached to the suite's session (``num_cpus=2``). Each connects and runs
    20 tasks, then waits at a barrier; once all are there, all are told to
    go at once and each runs tasks_async's workload (5,000 no-op tasks
    submitted, then one get). Aggregate: N × 5,000 tasks over the time from
    the go to the last driver's end; per driver: the mean of each driver's
    own rate; and the time until all drivers were connected and warm."""
    rt, name = ctx.rt, _name(ctx.rt)
    sizes = ctx.n(tuple(DRIVERS), DRIVERS_QUICK)
    ctx.planned = {m for s in sizes for m in _names("scale_drivers", s, _DRIVER_COLS)}
    address, env = _driver_env(rt, name)
    tmp = tempfile.mkdtemp(prefix="bench-drivers-")  # the drivers' cwd and logs
    ctx.defer(lambda: shutil.rmtree(tmp, ignore_errors=True))
    procs: list[Any] = []
    ctx.defer(lambda: _reap(procs))  # also when the workload fails midway (runs first)
    tasks = DRIVER_TASKS["tasks"]

    def noop() -> None:
        return None

    ctx.get([rt.remote(noop).remote() for _ in range(10)])  # the session's workers up

    def measure(n: int, w: Watch) -> dict[str, Any]:
        logs = [os.path.join(tmp, f"driver-{n}-{i}.log") for i in range(n)]
        t0 = time.perf_counter()
        for log in logs:
            with open(log, "wb") as err:
                cmd = [sys.executable, "-c", DRIVER, name, address, str(tasks),
                       str(ctx.remaining())]
                procs.append(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                              stderr=err, env=env, cwd=tmp))
        _read_bench_lines(procs, logs, ctx, w)
        ready_s = time.perf_counter() - t0
        go = time.time()
        for p in procs:
            p.stdin.write(b"go\n")
            p.stdin.flush()
        ends = [json.loads(line) for line in _read_bench_lines(procs, logs, ctx, w)]
        for p in procs:
            p.stdin.close()
        last = max(e["end"] for e in ends)
        own = [tasks / max(1e-9, e["end"] - e["start"]) for e in ends]
        return {"agg_tps": n * tasks / max(1e-9, last - go), "per_tps": sum(own) / n,
                "ready_s": ready_s,
                "notes": {"drivers": n, "tasks_per_driver": tasks, "last_end_s": round(last - go, 3),
                          "driver_tps_min": round(min(own)), "driver_tps_max": round(max(own))}}

    def once() -> Sample:
        for i, size in enumerate(sizes):
            n, names = DRIVERS[size], _names("scale_drivers", size, _DRIVER_COLS)
            _settle()
            try:
                with Watch(rt) as w:
                    got = measure(n, w)
            except OutOfMemory as e:
                ctx.notes[f"{size}_failed"] = f"{e} with {len(procs)} drivers started"
                ctx.say(f"{size}: stopped: {ctx.notes[f'{size}_failed']}")
                _fail(ctx, names, "memory")
                for other in sizes[i + 1 :]:
                    _fail(ctx, _names("scale_drivers", other, _DRIVER_COLS), "skipped: memory")
                return {}
            finally:
                _reap(procs)
            notes = got.pop("notes")
            for key, value in got.items():
                ctx.singles[f"scale_drivers_{size}_{key}"] = value
            ctx.notes[size] = dict(w.notes(), **notes)
            ctx.say(f"{size}: {got}")
        return {}

    return once


# Workloads that start (scale_nodes) or attach processes to a cluster other
# than through the suite's session: scale_nodes runs without it.
OWN_CLUSTER = frozenset({"scale_nodes"})

# (name, setup, metrics, deadline in seconds): see workloads.Workload (scale=True)
WORKLOADS: tuple[tuple[str, Callable[[Any], Callable[[], Sample]], tuple[str, ...], float], ...] = (
    ("scale_tasks", scale_tasks, tuple(m[0] for m in METRICS if m[4] == "scale_tasks"), 2400.0),
    ("scale_actors", scale_actors, tuple(m[0] for m in METRICS if m[4] == "scale_actors"), 1800.0),
    ("scale_objects", scale_objects, tuple(m[0] for m in METRICS if m[4] == "scale_objects"),
     900.0),
    ("scale_nodes", scale_nodes, tuple(m[0] for m in METRICS if m[4] == "scale_nodes"), 1800.0),
    ("scale_drivers", scale_drivers, tuple(m[0] for m in METRICS if m[4] == "scale_drivers"),
     1200.0),
)
