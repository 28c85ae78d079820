"""Microbenchmark workloads that run unchanged on Ray and on jray.

Every workload receives the runtime module (``ray`` or ``jray``) and uses only
the public Ray Core API through it, so one run of Ray and one of jray measure
the same thing. The workloads follow Ray's own ``ray_perf`` (the script behind
``ray microbenchmark``) and the figures in shared/ANCHORS.md.

This module imports nothing from jray, and nothing but the standard library at
module level: ``runner.py`` beside it loads it by file path inside a virtualenv
that has Ray and numpy but no jray. numpy is imported inside the workloads that
need it. Cold start and idle memory are measured by ``coldstart.py`` beside
this file, run as a script in a fresh interpreter. The workloads that start a
cluster of their own with the runtime's CLI (``runtime_env``, ``client``) are
in ``clusters.py`` beside this file, and the scaling workloads (``scale_*``,
long, run only with ``--scale`` or when named) in ``scaling.py``, both loaded
here by file path (``_sibling``) under the same rules.

Remote functions and actor classes are defined inside factory functions, never
at module level: cloudpickle then ships them by value, so a Ray worker that
cannot import this module (it was loaded by path) still runs them.

``run_all`` runs every workload with a warm-up and several repetitions, reports
median, min and max per metric, and bounds each workload with a deadline: a
workload that fails or runs out of time is recorded with its error and the
suite goes on.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

MB = 1024 * 1024
GB = 1e9  # throughput is reported in decimal GB/s, like Ray's own benchmark


def _sibling(name: str) -> ModuleType:
    """The module ``<name>.py`` beside this file, loaded by path: inside Ray's
    virtualenv there is no jray package to import it from."""
    key = f"jray_bench_{name}"
    if key in sys.modules:
        return sys.modules[key]
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
    spec = importlib.util.spec_from_file_location(key, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


_clusters = _sibling("clusters")
_scaling = _sibling("scaling")


@dataclass(frozen=True)
class Metric:
    """One reported figure. ``better`` is "higher", "lower" or "true" (a yes/no check).

    ``table`` puts it in a table of the report's own instead of the main one:
    a scaling workload's (``row``: its size, ``column``: the figure), or
    "stdlib" for a standard-library reference figure (``ref``: the runtime's
    figure it is compared with, as jray/stdlib).
    """

    name: str
    title: str
    unit: str
    better: str
    table: str = ""
    row: str = ""
    column: str = ""
    ref: str = ""

    def head(self) -> dict[str, Any]:
        """What the JSON carries of it beside the figures."""
        out: dict[str, Any] = {"title": self.title, "unit": self.unit, "better": self.better}
        for key in ("table", "row", "column", "ref"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.table:
            out["order"] = METRIC_ORDER.get(self.name, 0)
        return out


METRICS: tuple[Metric, ...] = (
    Metric("import_s", "`import` (fresh process)", "s", "lower"),
    Metric("init_s", "`init(num_cpus=2)` (fresh process)", "s", "lower"),
    Metric("first_task_s", "first task after init", "s", "lower"),
    Metric("idle_rss_mb", "idle RSS of the runtime's processes", "MB", "lower"),
    Metric("idle_pss_mb", "idle PSS of the runtime's processes", "MB", "lower"),
    Metric("idle_processes", "runtime processes after init", "count", "lower"),
    Metric("task_rtt_ms", "task round trip (sync)", "ms", "lower"),
    Metric("tasks_async", "tasks async (5,000 submitted, then get)", "tasks/s", "higher"),
    Metric("tasks_nested", "nested tasks (50 × 10)", "tasks/s", "higher"),
    Metric("actor_sync", "actor calls sync", "calls/s", "higher"),
    Metric("actor_async", "actor calls async (many in flight)", "calls/s", "higher"),
    Metric("actor_nn", "actor calls n:n", "calls/s", "higher"),
    Metric("actor_create", "actor creation (until first answer)", "actors/s", "higher"),
    Metric("put_small", "put small object", "ops/s", "higher"),
    Metric("get_small", "get small object", "ops/s", "higher"),
    Metric("put_100mb", "put 100 MB numpy (warm pages)", "GB/s", "higher"),
    Metric("put_100mb_first", "put 100 MB numpy (first touch, 1 sample)", "GB/s", "higher"),
    Metric("put_1gb", "put 1 GB numpy (`--large`)", "GB/s", "higher"),
    Metric("put_1gb_first", "put 1 GB numpy into fresh pages (`--large`, 1 sample)", "GB/s", "higher"),
    Metric("shutdown_s", "`shutdown()` after the cold start", "s", "lower"),
    Metric("get_1gb_ms", "get 1 GB numpy (`--large`)", "ms", "lower"),
    Metric("get_100mb_ms", "get 100 MB numpy", "ms", "lower"),
    Metric(
        "get_100mb_zero_copy",
        "get 100 MB is zero-copy (read-only, shared memory)",
        "yes/no",
        "true",
    ),
    Metric("task_arg_100mb", "task with a 100 MB ref argument", "GB/s", "higher"),
    Metric("spill_gbps", "put 2× a 256 MB store (spills to disk)", "GB/s", "higher"),
    Metric("restore_gbps", "get spilled objects back (restore from disk)", "GB/s", "higher"),
    Metric("wait_1k_ms", "`wait` one at a time over 1,000 tasks", "ms", "lower"),
    Metric("pool_apply", "Pool: 5,000 `apply_async` (no-op), then get all", "calls/s", "higher"),
    Metric("pool_map_small", "Pool: `map` over 100,000 ints (chunksize 1,000)", "items/s",
           "higher"),
    Metric("pool_map_large", "Pool: `map` over 20 × 10 MB arrays", "GB/s", "higher"),
    Metric("pool_apply_stdlib", "stdlib Pool: 5,000 `apply_async` (no-op), then get all",
           "calls/s", "higher", table="stdlib", ref="pool_apply"),
    Metric("pool_map_small_stdlib", "stdlib Pool: `map` over 100,000 ints (chunksize 1,000)",
           "items/s", "higher", table="stdlib", ref="pool_map_small"),
    Metric("pool_map_large_stdlib", "stdlib Pool: `map` over 20 × 10 MB arrays", "GB/s",
           "higher", table="stdlib", ref="pool_map_large"),
) + tuple(Metric(*m) for m in _clusters.METRICS) + tuple(Metric(*m) for m in _scaling.METRICS)
METRIC_BY_NAME = {m.name: m for m in METRICS}
METRIC_ORDER = {m.name: i for i, m in enumerate(METRICS)}


def runtime_name(rt: Any) -> str:
    return str(getattr(rt, "__name__", "runtime")).split(".")[0]


def init_kwargs(name: str) -> dict[str, Any]:
    """Keyword arguments for ``init``: two CPUs, and for Ray no dashboard (as in ANCHORS.md)."""
    kwargs: dict[str, Any] = {"num_cpus": 2}
    if name == "ray":
        kwargs["include_dashboard"] = False
    return kwargs


# --------------------------------------------------------------------------
# The context a workload runs in
# --------------------------------------------------------------------------


@dataclass
class Ctx:
    """What a workload sees: the runtime, the size of the run and its deadline."""

    rt: Any
    quick: bool
    large: bool
    deadline: float
    notes: dict[str, Any] = field(default_factory=dict)
    singles: dict[str, float] = field(default_factory=dict)
    cleanups: list[Callable[[], Any]] = field(default_factory=list)
    # Metrics that failed on their own (a scaling size: "memory", ...), by name: reason.
    failed: dict[str, str] = field(default_factory=dict)
    # The metrics this run means to measure, when fewer than the workload's (a
    # quick scaling run): only these are marked failed if the workload fails.
    planned: set[str] | None = None
    say: Callable[[str], None] = lambda _msg: None  # progress within a workload

    def n(self, normal: int, quick: int) -> int:
        return quick if self.quick else normal

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("workload deadline passed")
        return left

    def get(self, refs: Any) -> Any:
        """``get`` bounded by the workload's deadline."""
        return self.rt.get(refs, timeout=self.remaining())

    def defer(self, fn: Callable[[], Any]) -> None:
        self.cleanups.append(fn)


Sample = dict[str, Any]
Body = Callable[[Ctx], Callable[[], Sample]]


@dataclass(frozen=True)
class Workload:
    """``setup(ctx)`` prepares and returns ``once()``, which measures one repetition."""

    name: str
    setup: Body
    metrics: tuple[str, ...]  # the metrics it reports, all marked failed if it fails
    in_process: bool = True  # False: spawns its own runtime in fresh interpreters
    large_only: bool = False
    timeout_s: float = 180.0  # its deadline (run_all's ``deadlines`` overrides it)
    init_extra: tuple[tuple[str, Any], ...] = ()  # more init kwargs: a session of its own
    # Starts a cluster of its own with the CLI (a head on the default port)
    # and needs a package index: run by bench/ (the runner), and by `jray
    # microbenchmark` only when named in --only.
    own_cluster: bool = False
    # Long (the scaling workloads): run only with ``scale=True`` or when named
    # in ``only``; one repetition per round (``reps``) and no warm-up, in a
    # session of their own (started before, shut down after).
    scale: bool = False
    reps: int | None = None  # fixed repetitions, whatever --reps says
    warmup: int | None = None  # fixed warm-ups
    fresh_session: bool = False


def _rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def _kill_all(ctx: Ctx, actors: list[Any]) -> None:
    for a in actors:
        with contextlib.suppress(Exception):
            ctx.rt.kill(a)


# --------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------


def _task_fns(rt: Any) -> tuple[Any, Any]:
    def small_value() -> bytes:
        return b"ok"

    small = rt.remote(small_value)

    def small_value_batch(n: int) -> int:
        rt.get([small.remote() for _ in range(n)])
        return 0

    return small, rt.remote(small_value_batch)


def task_rtt(ctx: Ctx) -> Callable[[], Sample]:
    small, _ = _task_fns(ctx.rt)
    calls = ctx.n(1000, 200)

    def once() -> Sample:
        t0 = time.perf_counter()
        for _ in range(calls):
            ctx.get(small.remote())
        return {"task_rtt_ms": (time.perf_counter() - t0) * 1e3 / calls}

    return once


def tasks_async(ctx: Ctx) -> Callable[[], Sample]:
    small, _ = _task_fns(ctx.rt)
    count = 5000

    def once() -> Sample:
        t0 = time.perf_counter()
        ctx.get([small.remote() for _ in range(count)])
        return {"tasks_async": _rate(count, time.perf_counter() - t0)}

    return once


def tasks_nested(ctx: Ctx) -> Callable[[], Sample]:
    """50 tasks that each submit 10 tasks and get them; counts the 500 inner tasks."""
    _, batch = _task_fns(ctx.rt)
    outer, inner = 50, 10

    def once() -> Sample:
        t0 = time.perf_counter()
        ctx.get([batch.remote(inner) for _ in range(outer)])
        return {"tasks_nested": _rate(outer * inner, time.perf_counter() - t0)}

    return once


def wait_1k(ctx: Ctx) -> Callable[[], Sample]:
    """ray_perf's "single client wait 1k refs": submit 1,000 tasks, wait for them one by one."""
    small, _ = _task_fns(ctx.rt)
    count = 1000

    def once() -> Sample:
        t0 = time.perf_counter()
        not_ready = [small.remote() for _ in range(count)]
        fetch_local = True  # as ray_perf: only the first wait asks for a local fetch
        for _ in range(count):
            ready, not_ready = ctx.rt.wait(
                not_ready, num_returns=1, timeout=ctx.remaining(), fetch_local=fetch_local
            )
            fetch_local = False
            if not ready:
                raise TimeoutError("wait returned nothing before the deadline")
        return {"wait_1k_ms": (time.perf_counter() - t0) * 1e3}

    return once


# --------------------------------------------------------------------------
# Actors
# --------------------------------------------------------------------------


def _actor_classes(rt: Any) -> Any:
    class Actor:
        def small_value(self) -> bytes:
            return b"ok"

    return rt.remote(num_cpus=0)(Actor)


def actor_sync(ctx: Ctx) -> Callable[[], Sample]:
    a = _actor_classes(ctx.rt).remote()
    ctx.defer(lambda: _kill_all(ctx, [a]))
    calls = ctx.n(1000, 200)

    def once() -> Sample:
        t0 = time.perf_counter()
        for _ in range(calls):
            ctx.get(a.small_value.remote())
        return {"actor_sync": _rate(calls, time.perf_counter() - t0)}

    return once


def actor_async(ctx: Ctx) -> Callable[[], Sample]:
    a = _actor_classes(ctx.rt).remote()
    ctx.defer(lambda: _kill_all(ctx, [a]))
    calls = ctx.n(5000, 2000)

    def once() -> Sample:
        t0 = time.perf_counter()
        ctx.get([a.small_value.remote() for _ in range(calls)])
        return {"actor_async": _rate(calls, time.perf_counter() - t0)}

    return once


def actor_nn(ctx: Ctx) -> Callable[[], Sample]:
    """ray_perf's "n:n actor calls async": 4 caller tasks, each spreading n calls over the actors.

    As in ray_perf, there are ``cpu_count() // 2`` actors (at least one).
    """
    rt = ctx.rt
    n_actors = max(1, (os.cpu_count() or 2) // 2)
    callers, calls = 4, ctx.n(2500, 500)
    actors = [_actor_classes(rt).remote() for _ in range(n_actors)]
    ctx.defer(lambda: _kill_all(ctx, actors))

    def work(handles: list[Any], n: int) -> int:
        rt.get([handles[i % len(handles)].small_value.remote() for i in range(n)])
        return 0

    work_task = rt.remote(work)
    ctx.notes.update(actors=n_actors, callers=callers, calls_per_caller=calls)

    def once() -> Sample:
        t0 = time.perf_counter()
        ctx.get([work_task.remote(actors, calls) for _ in range(callers)])
        return {"actor_nn": _rate(callers * calls, time.perf_counter() - t0)}

    return once


def actor_create(ctx: Ctx) -> Callable[[], Sample]:
    """Create k actors at once; the clock stops when every one has answered its first call."""
    cls = _actor_classes(ctx.rt)
    k = ctx.n(10, 4)
    ctx.notes["actors_per_repetition"] = k

    def once() -> Sample:
        t0 = time.perf_counter()
        actors = [cls.remote() for _ in range(k)]
        ctx.get([a.small_value.remote() for a in actors])
        elapsed = time.perf_counter() - t0
        _kill_all(ctx, actors)
        return {"actor_create": _rate(k, elapsed)}

    return once


# --------------------------------------------------------------------------
# Objects
# --------------------------------------------------------------------------


def put_get_small(ctx: Ctx) -> Callable[[], Sample]:
    count = ctx.n(2000, 500)
    value = ctx.rt.put(0)

    def once() -> Sample:
        t0 = time.perf_counter()
        for _ in range(count):
            ctx.rt.put(0)
        t1 = time.perf_counter()
        for _ in range(count):
            ctx.get(value)
        t2 = time.perf_counter()
        return {"put_small": _rate(count, t1 - t0), "get_small": _rate(count, t2 - t1)}

    return once


def _array(nbytes: int) -> Any:
    import numpy as np

    # Not np.zeros: its untouched pages would all map the zero page.
    return np.ones(nbytes, dtype=np.uint8)


def put_100mb(ctx: Ctx) -> Callable[[], Sample]:
    """Warm-page put throughput; the first put of the session is kept as the first-touch figure."""
    arr = _array(100 * MB)
    t0 = time.perf_counter()
    ref = ctx.rt.put(arr)
    ctx.singles["put_100mb_first"] = _rate(arr.nbytes / GB, time.perf_counter() - t0)
    del ref
    puts = 3

    def once() -> Sample:
        elapsed = 0.0
        for _ in range(puts):
            t0 = time.perf_counter()
            ref = ctx.rt.put(arr)
            elapsed += time.perf_counter() - t0
            del ref
            # Freeing is asynchronous: give the store time to take the pages back, so the
            # next put can reuse them (warm) rather than touch fresh ones.
            time.sleep(0.2)
        return {"put_100mb": _rate(puts * arr.nbytes / GB, elapsed)}

    return once


def put_1gb(ctx: Ctx) -> Callable[[], Sample]:
    """``put`` of a 1 GiB array, then ``get`` of it (3 gets, each array dropped).
    The session's first put of it is the fresh-pages figure (the store's
    pages never touched before), as ``put_100mb_first``."""
    arr = _array(1024 * MB)
    gets = 3
    t0 = time.perf_counter()
    ref = ctx.rt.put(arr)
    ctx.singles["put_1gb_first"] = _rate(arr.nbytes / GB, time.perf_counter() - t0)
    del ref
    time.sleep(0.5)

    def once() -> Sample:
        t0 = time.perf_counter()
        ref = ctx.rt.put(arr)
        elapsed = time.perf_counter() - t0
        got = 0.0
        for _ in range(gets):
            t0 = time.perf_counter()
            out = ctx.get(ref)
            got += time.perf_counter() - t0
            assert out.nbytes == arr.nbytes
            del out
        del ref
        time.sleep(0.5)  # as in put_100mb: let the store take the pages back
        return {"put_1gb": _rate(arr.nbytes / GB, elapsed), "get_1gb_ms": got * 1e3 / gets}

    return once


SPILL_STORE = 256 * MB


def spill_restore(ctx: Ctx) -> Callable[[], Sample]:
    """A session with a 256 MB store: ``put`` 64 MB arrays until twice its
    capacity (the runtime spills the older ones to disk as it goes), then
    ``get`` the oldest half back (each restored from disk, spilling others
    to make room). GB/s of the bytes put, and of the bytes got back."""
    arr = _array(64 * MB)
    count = ctx.n(2 * SPILL_STORE // arr.nbytes, 6)
    back = count // 2

    def once() -> Sample:
        t0 = time.perf_counter()
        refs = [ctx.rt.put(arr) for _ in range(count)]
        t1 = time.perf_counter()
        for ref in refs[:back]:
            out = ctx.get(ref)
            assert out.nbytes == arr.nbytes and out[-1] == 1
            del out
        t2 = time.perf_counter()
        del refs
        time.sleep(1.0)  # freeing (and deleting spill files) is asynchronous
        return {
            "spill_gbps": _rate(count * arr.nbytes / GB, t1 - t0),
            "restore_gbps": _rate(back * arr.nbytes / GB, t2 - t1),
        }

    return once


def shared_mapping(addr: int) -> str | None:
    """The /proc/self/maps line of the shared (``s``) mapping holding ``addr``, or None.

    A zero-copy ``get`` hands back an array that lies in the object store's
    shared memory (a file in /dev/shm, a memfd, ...); a copy lies in a private
    anonymous mapping of the process's heap.
    """
    with open("/proc/self/maps") as maps:
        for line in maps:
            parts = line.split(maxsplit=5)
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if lo <= addr < hi:
                return line.strip() if parts[1][3] == "s" else None
    return None


def zero_copy_check(arr: Any) -> tuple[bool, dict[str, Any]]:
    """Whether ``arr`` is read-only and lies in shared memory, with what was seen."""
    base = arr
    chain: list[str] = []
    while getattr(base, "base", None) is not None and len(chain) < 10:
        base = base.base
        chain.append(type(base).__name__)
    mapping = shared_mapping(arr.ctypes.data) if arr.nbytes else None
    readonly = not arr.flags.writeable
    seen = {"readonly": readonly, "owns_data": bool(arr.flags.owndata), "base_chain": chain}
    seen["mapping"] = mapping
    return readonly and not arr.flags.owndata and mapping is not None, seen


def get_100mb(ctx: Ctx) -> Callable[[], Sample]:
    ref = ctx.rt.put(_array(100 * MB))
    gets = 10

    def once() -> Sample:
        elapsed = 0.0
        for _ in range(gets):
            t0 = time.perf_counter()
            arr = ctx.get(ref)
            elapsed += time.perf_counter() - t0
        zero_copy, seen = zero_copy_check(arr)
        ctx.notes.update(seen)
        del arr
        return {"get_100mb_ms": elapsed * 1e3 / gets, "get_100mb_zero_copy": zero_copy}

    return once


def task_arg_100mb(ctx: Ctx) -> Callable[[], Sample]:
    """A task given a 100 MB ref; the worker reads one byte of every page of it.

    Reading every page makes sure the whole argument is really there (no lazy
    fetch escapes the clock) while keeping the task's own work small.
    """
    arr = _array(100 * MB)
    ref = ctx.rt.put(arr)

    def consume(x: Any) -> tuple[int, bool]:
        return int(x[::4096].sum()), not x.flags.writeable

    task = ctx.rt.remote(consume)
    calls = ctx.n(5, 3)

    def once() -> Sample:
        t0 = time.perf_counter()
        for _ in range(calls):
            _, readonly = ctx.get(task.remote(ref))
        elapsed = time.perf_counter() - t0
        ctx.notes["argument_readonly_in_task"] = readonly
        return {"task_arg_100mb": _rate(calls * arr.nbytes / GB, elapsed)}

    return once


# --------------------------------------------------------------------------
# multiprocessing.Pool: the runtime's against the standard library's
# --------------------------------------------------------------------------

POOL_PROCESSES = 2  # the machine's cores
# apply_async calls, map items, large arguments (10 MB each): normal, quick.
# Read when the workload runs (the tests shrink them).
POOL_COUNTS: dict[str, tuple[int, int]] = {
    "apply": (5000, 1000),
    "items": (100_000, 20_000),
    "large": (20, 6),
}
POOL_CHUNKSIZE = 1000
POOL_LARGE_BYTES = 10 * MB


# The standard library's Pool pickles functions by reference, and its forked
# workers find them in this module (already in sys.modules, under whatever
# name it was loaded); the runtime's Pool gets closures (``_pool_fns``),
# which cloudpickle ships by value to workers that cannot import this module.
def _stdlib_noop() -> None:
    return None


def _stdlib_double(x: int) -> int:
    return 2 * x


def _stdlib_touch(a: Any) -> int:
    return int(a[::4096].sum())


def _pool_fns() -> tuple[Callable[[], None], Callable[[int], int], Callable[[Any], int]]:
    def noop() -> None:
        return None

    def double(x: int) -> int:
        return 2 * x

    def touch(a: Any) -> int:
        return int(a[::4096].sum())  # one byte of every page: the whole argument is there

    return noop, double, touch


def pool(ctx: Ctx) -> Callable[[], Sample]:
    """The standard library's Pool idioms on ``<runtime>.util.multiprocessing.Pool``
    and on ``multiprocessing.Pool`` (fork, the Linux default), both of 2
    processes, in this process, one after the other in each repetition:

    - 5,000 ``apply_async`` of a no-op, then ``get`` of each result (calls/s);
    - ``map`` of ``2 * x`` over 100,000 ints with ``chunksize=1000`` (items/s);
    - ``map`` over 20 arrays of 10 MB (default chunksize; each call reads one
      byte per page and returns an int): GB/s of arguments.
    """
    name = runtime_name(ctx.rt)
    mp = importlib.import_module(f"{name}.util.multiprocessing")
    # Forked before the runtime's Pool starts its actors (the runtime's own
    # threads run already: init came first, as in a notebook).
    stdlib = multiprocessing.get_context("fork").Pool(POOL_PROCESSES)
    ctx.defer(stdlib.join)
    ctx.defer(stdlib.terminate)
    t0 = time.perf_counter()
    runtime = mp.Pool(processes=POOL_PROCESSES)
    ctx.notes["runtime_pool_start_s"] = round(time.perf_counter() - t0, 3)
    ctx.defer(runtime.terminate)
    n_apply, n_items, n_large = (ctx.n(*POOL_COUNTS[k]) for k in ("apply", "items", "large"))
    chunksize, large = POOL_CHUNKSIZE, POOL_LARGE_BYTES
    items = list(range(n_items))
    arrays = [_array(large) for _ in range(n_large)]
    ctx.notes.update(processes=POOL_PROCESSES, apply_async=n_apply, map_items=n_items,
                     chunksize=chunksize, map_large=f"{n_large} x {large // MB} MB")
    noop, double, touch = _pool_fns()

    def apply(p: Any, fn: Any) -> float:
        t0 = time.perf_counter()
        results = [p.apply_async(fn) for _ in range(n_apply)]
        for r in results:
            r.get(timeout=ctx.remaining())
        return _rate(n_apply, time.perf_counter() - t0)

    def map_small(p: Any, fn: Any) -> float:
        t0 = time.perf_counter()
        out = p.map(fn, items, chunksize=chunksize)
        elapsed = time.perf_counter() - t0
        assert len(out) == n_items and out[-1] == 2 * items[-1]
        return _rate(n_items, elapsed)

    def map_large(p: Any, fn: Any) -> float:
        t0 = time.perf_counter()
        out = p.map(fn, arrays)
        elapsed = time.perf_counter() - t0
        assert len(out) == n_large
        return _rate(n_large * large / GB, elapsed)

    def once() -> Sample:
        return {
            "pool_apply": apply(runtime, noop),
            "pool_apply_stdlib": apply(stdlib, _stdlib_noop),
            "pool_map_small": map_small(runtime, double),
            "pool_map_small_stdlib": map_small(stdlib, _stdlib_double),
            "pool_map_large": map_large(runtime, touch),
            "pool_map_large_stdlib": map_large(stdlib, _stdlib_touch),
        }

    return once


# --------------------------------------------------------------------------
# Cold start and idle memory, each in a fresh interpreter (coldstart.py)
# --------------------------------------------------------------------------

COLDSTART = os.path.join(os.path.dirname(os.path.abspath(__file__)), "coldstart.py")


def _run_child(
    cmd: list[str], env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in its own process group; on timeout the whole group is killed."""
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        out, err = proc.communicate()
        raise TimeoutError(f"cold start ran past {timeout:.0f} s; stderr: {err[-2000:]}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def cold_start(ctx: Ctx) -> Callable[[], Sample]:
    name = runtime_name(ctx.rt)
    env = dict(os.environ)
    # The child must import the same runtime this interpreter has.
    root = os.path.dirname(os.path.dirname(os.path.abspath(ctx.rt.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)

    def once() -> Sample:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "coldstart.json")
            cmd = [sys.executable, COLDSTART, name, json.dumps(init_kwargs(name)), out]
            proc = _run_child(cmd, env, timeout=min(90.0, ctx.remaining()))
            if not os.path.exists(out):
                err = proc.stderr[-2000:]
                raise RuntimeError(f"cold start exited {proc.returncode} without a result: {err}")
            with open(out) as f:
                return dict(json.load(f))

    return once


# --------------------------------------------------------------------------
# The suite
# --------------------------------------------------------------------------

WORKLOADS: tuple[Workload, ...] = (
    Workload(
        "cold_start",
        cold_start,
        ("import_s", "init_s", "first_task_s", "idle_rss_mb", "idle_pss_mb", "idle_processes", "shutdown_s"),
        in_process=False,
        timeout_s=600.0,
    ),
    Workload("task_rtt", task_rtt, ("task_rtt_ms",)),
    Workload("tasks_async", tasks_async, ("tasks_async",)),
    Workload("tasks_nested", tasks_nested, ("tasks_nested",)),
    Workload("actor_sync", actor_sync, ("actor_sync",)),
    Workload("actor_async", actor_async, ("actor_async",)),
    Workload("actor_nn", actor_nn, ("actor_nn",)),
    Workload("actor_create", actor_create, ("actor_create",)),
    Workload("put_get_small", put_get_small, ("put_small", "get_small")),
    Workload("put_100mb", put_100mb, ("put_100mb", "put_100mb_first")),
    Workload("put_1gb", put_1gb, ("put_1gb", "put_1gb_first", "get_1gb_ms"), large_only=True),
    Workload("get_100mb", get_100mb, ("get_100mb_ms", "get_100mb_zero_copy")),
    Workload("task_arg_100mb", task_arg_100mb, ("task_arg_100mb",)),
    Workload("wait_1k", wait_1k, ("wait_1k_ms",)),
    Workload(
        "pool",
        pool,
        ("pool_apply", "pool_map_small", "pool_map_large", "pool_apply_stdlib",
         "pool_map_small_stdlib", "pool_map_large_stdlib"),
        timeout_s=600.0,
    ),
    Workload(
        "spill_restore",
        spill_restore,
        ("spill_gbps", "restore_gbps"),
        init_extra=(("object_store_memory", SPILL_STORE),),
    ),
)
# Long, and only with --scale or when named: each in a session of its own.
WORKLOADS += tuple(
    Workload(name, setup, metrics, timeout_s=timeout, scale=True, reps=1, warmup=0,
             fresh_session=True, in_process=name not in _scaling.OWN_CLUSTER)
    for name, setup, metrics, timeout in _scaling.WORKLOADS
)
# Last: they end the suite's session and run a cluster of their own.
WORKLOADS += tuple(
    Workload(name, setup, metrics, in_process=False, timeout_s=timeout, own_cluster=True)
    for name, setup, metrics, timeout in _clusters.WORKLOADS
)


def summarize(samples: list[Any], metric: Metric) -> dict[str, Any]:
    """Value (median, or for yes/no checks: all yes), min, max and the samples."""
    out = metric.head()
    out["ok"], out["samples"] = True, samples
    if metric.better == "true":
        out["value"] = all(bool(s) for s in samples)
    else:
        out["value"] = statistics.median(samples)
        out["min"], out["max"] = min(samples), max(samples)
    return out


def _in_thread(fn: Callable[[], Any], timeout: float) -> Any:
    """``fn()`` on a daemon thread, given up on after ``timeout`` seconds (it is left behind)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # reported to the caller
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise TimeoutError(f"no answer within {timeout:.0f} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _error_text(e: BaseException) -> str:
    tb = traceback.format_exception(type(e), e, e.__traceback__)
    return (f"{type(e).__name__}: {e}".strip() + "\n" + "".join(tb[-3:]))[:4000]


def _measure(w: Workload, ctx: Ctx, warmup: int, reps: int) -> dict[str, list[Any]]:
    samples: dict[str, list[Any]] = {}
    try:
        once = w.setup(ctx)
        for _ in range(warmup):
            once()
        for _ in range(reps):
            for k, v in once().items():
                samples.setdefault(k, []).append(v)
    finally:
        for fn in reversed(ctx.cleanups):
            with contextlib.suppress(Exception):
                fn()
    return samples


def _versions(rt: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "runtime": runtime_name(rt),
        "runtime_version": getattr(rt, "__version__", None),
        "python": platform.python_version(),
        "python_executable": sys.executable,
    }
    with contextlib.suppress(ImportError):
        import numpy

        out["numpy"] = numpy.__version__
    return out


def selected(
    only: list[str] | None = None,
    *,
    large: bool = False,
    scale: bool = False,
    own_cluster: bool = True,
) -> list[Workload]:
    """The workloads a run includes, in order: those named in ``only`` (all
    if None), less ``put_1gb`` without ``large``; the scaling workloads only
    with ``scale`` or when named, and with ``own_cluster=False`` those
    starting a cluster of their own only when named."""
    out = []
    for w in WORKLOADS:
        named = bool(only) and w.name in (only or ())
        if (w.large_only and not large) or (only and not named):
            continue
        if (w.own_cluster and not own_cluster and not named) or (w.scale and not scale and not named):
            continue
        out.append(w)
    return out


def run_all(
    runtime_module: Any,
    *,
    quick: bool = False,
    large: bool = False,
    reps: int | None = None,
    progress: Callable[[str], None] | None = None,
    only: list[str] | None = None,
    warmup: int = 1,
    own_cluster: bool = True,
    scale: bool = False,
    deadlines: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Run every workload against ``runtime_module`` (``ray`` or ``jray``) and return the results.

    ``reps`` defaults to 5 (2 with ``quick``). ``large`` adds the 1 GB put,
    ``scale`` the scaling workloads (also run when named in ``only``).
    ``only`` restricts the run to the named workloads; ``own_cluster=False``
    leaves out those that start a cluster of their own unless named.
    ``deadlines`` maps workload names to their deadline in seconds, in place
    of the workload's own (``Workload.timeout_s``). The result is plain
    JSON-able data: versions, ``metrics`` (per metric: value, min, max,
    samples, or ok=False and the error) and ``workloads`` (per workload: ok,
    error, seconds, notes).
    """
    rt, say = runtime_module, progress or (lambda _msg: None)
    name = runtime_name(rt)
    reps = reps if reps is not None else (2 if quick else 5)
    result: dict[str, Any] = _versions(rt)
    result.update(quick=quick, large=large, reps=reps, warmup=warmup)
    result["started"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    metrics: dict[str, dict[str, Any]] = {}
    workloads: dict[str, dict[str, Any]] = {}
    result["metrics"], result["workloads"] = metrics, workloads
    started, initialized, init_error = time.monotonic(), False, None
    session_extra: tuple[tuple[str, Any], ...] = ()

    def ensure_init(extra: tuple[tuple[str, Any], ...] = ()) -> None:
        nonlocal initialized, init_error, session_extra
        if extra != session_extra:  # a workload that needs a session of its own
            if initialized:
                reset()
            init_error, session_extra = None, extra
        if initialized or init_error:
            return
        kwargs = {**init_kwargs(name), **dict(extra)}
        say(f"[{name}] init({kwargs})")
        try:
            # On the calling thread, not a helper: Ray ties its daemons to the thread that
            # started them (PR_SET_PDEATHSIG), so they would die with a short-lived thread.
            t0 = time.perf_counter()
            rt.init(**kwargs)
            initialized = True
            result.setdefault("session_init_s", []).append(time.perf_counter() - t0)
        except BaseException as e:
            init_error = f"init failed: {_error_text(e)}"

    def reset() -> None:
        nonlocal initialized
        with contextlib.suppress(Exception):
            rt.shutdown()
        initialized = False

    for w in selected(only=only, large=large, scale=scale, own_cluster=own_cluster):
        if w.fresh_session and initialized:
            reset()
        if w.in_process:
            ensure_init(w.init_extra)
        limit = float((deadlines or {}).get(w.name, w.timeout_s))
        ctx = Ctx(rt, quick, large, deadline=time.monotonic() + limit)
        ctx.say = functools.partial(_say_in, say, f"[{name}] {w.name}: ")
        t0, error = time.monotonic(), None
        say(f"[{name}] {w.name} ...")
        try:
            if w.in_process and init_error:
                raise RuntimeError(init_error)
            w_reps = w.reps if w.reps is not None else reps
            w_warmup = w.warmup if w.warmup is not None else warmup
            measure = functools.partial(_measure, w, ctx, w_warmup, w_reps)
            samples = _in_thread(measure, limit + 30)
        except BaseException as e:
            error, samples = _error_text(e), {}
            if isinstance(e, TimeoutError) and w.in_process:
                reset()  # a call may still hang in the abandoned thread: start afresh
        if w.fresh_session and initialized:
            reset()
        samples.update({k: [v] for k, v in dict(ctx.singles).items()})
        workloads[w.name] = {
            "ok": error is None,
            "error": error,
            "seconds": round(time.monotonic() - t0, 3),
            "notes": ctx.notes,
        }
        for k, vals in samples.items():
            metrics[k] = summarize(vals, METRIC_BY_NAME[k])
        say(
            f"[{name}] {w.name}: "
            + (_brief(samples) if error is None else f"FAILED {error.splitlines()[0]}")
        )
        # Metrics that failed on their own (a scaling size), then, if the
        # workload failed, those it meant to measure and did not.
        for k, reason in dict(ctx.failed).items():
            if k not in metrics:
                metrics[k] = dict(METRIC_BY_NAME[k].head(), ok=False, reason=reason)
                metrics[k]["error"] = f"failed: {reason}"
        planned = ctx.planned if ctx.planned is not None else set(w.metrics)
        for k in w.metrics if error is not None else ():
            if k not in metrics and k in planned:
                metrics[k] = dict(METRIC_BY_NAME[k].head(), ok=False, error=error)
                timed_out = (error or "").startswith("TimeoutError")
                metrics[k]["reason"] = "time" if timed_out else "error"
    if initialized:
        reset()
    result["seconds"] = round(time.monotonic() - started, 3)
    return result


def _say_in(say: Callable[[str], None], prefix: str, msg: str) -> None:
    say(prefix + msg)


def _brief(samples: dict[str, list[Any]]) -> str:
    parts = []
    for k, vals in samples.items():
        m = METRIC_BY_NAME[k]
        if m.better == "true":
            parts.append(f"{k}={all(vals)}")
        else:
            parts.append(
                f"{k}={statistics.median(vals):.4g} {m.unit} ({min(vals):.4g}–{max(vals):.4g})"
            )
    return ", ".join(parts)
