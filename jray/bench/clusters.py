"""Workloads that start a cluster of their own with the runtime's CLI.

``runtime_env`` (drivers connecting with an env to a cluster started by
``ray start --head`` / ``jray start --head``) and ``client`` (a driver
connected as a client: Ray Client, ``ray://``, against jray's client mode).
Both end the suite's in-process session and run last; ``jray
microbenchmark`` runs them only when named in ``--only`` (they would start a
head beside the user's cluster).

Loaded by ``workloads.py`` by file path, like it imports nothing from jray
and nothing but the standard library at module level (the Ray side runs it
in a virtualenv with Ray, numpy and psutil but no jray), and imports nothing
from ``workloads.py`` either: a workload here is a ``setup(ctx)`` taking the
suite's context (``workloads.Ctx``: ``rt``, ``n``, ``remaining``, ``get``,
``defer``, ``notes``), and ``METRICS`` / ``WORKLOADS`` below are plain
tuples that ``workloads.py`` turns into its ``Metric`` and ``Workload``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

MB = 1024 * 1024
GB = 1e9

Sample = dict[str, Any]

# (name, title, unit, better): see workloads.Metric
METRICS: tuple[tuple[str, str, str, str], ...] = (
    ("renv_base_s", "runtime_env: connect + first task, no env (baseline)", "s", "lower"),
    ("renv_wd_first_s", "runtime_env: connect + first task, new 2 MB working_dir", "s", "lower"),
    ("renv_wd_warm_s", "runtime_env: connect + first task, same working_dir (cached)", "s", "lower"),
    ("renv_pip_first_s", "runtime_env: connect + first task, new pip env (pyjokes)", "s", "lower"),
    ("renv_pip_warm_s", "runtime_env: connect + first task, same pip env (cached)", "s", "lower"),
    ("client_task_rtt_ms", "client: task round trip (sync)", "ms", "lower"),
    ("client_tasks", "client: tasks (1,000 submitted, then get)", "tasks/s", "higher"),
    ("client_put_100mb", "client: put 100 MB numpy", "GB/s", "higher"),
    ("client_get_100mb", "client: get 100 MB numpy (a task's result)", "GB/s", "higher"),
    ("client_put_get_100mb_ms", "client: put then get 100 MB numpy", "ms", "lower"),
)


def _name(rt: Any) -> str:
    return str(getattr(rt, "__name__", "runtime")).split(".")[0]


def _rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def _cli(name: str) -> list[str]:
    if name == "ray":
        return [os.path.join(os.path.dirname(sys.executable), "ray")]
    return [sys.executable, "-m", "jray.scripts"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_head(ctx: Any, name: str, extra: list[str], env: dict[str, str]) -> str:
    """``<cli> start --head`` with 2 CPUs (stopped when the workload ends); its stdout."""
    rt = ctx.rt
    with contextlib.suppress(Exception):
        rt.shutdown()  # these workloads run their own cluster (the suite's session is not used)
    start = [*_cli(name), "start", "--head", "--num-cpus", "2", *extra]
    if name == "ray":
        start += ["--include-dashboard=false", "--disable-usage-stats"]
    proc = subprocess.run(start, env=env, capture_output=True, text=True, timeout=180)
    stop = [*_cli(name), "stop", *(["--force"] if name == "ray" else [])]
    ctx.defer(lambda: subprocess.run(stop, env=env, capture_output=True, timeout=180))
    if proc.returncode != 0:
        raise RuntimeError(f"{name} start --head failed: {proc.stderr[-2000:]}")
    return proc.stdout


def _ray_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    return env


# --------------------------------------------------------------------------
# runtime_env set-up: a cluster started by the CLI, drivers connecting to it
# --------------------------------------------------------------------------

RENV_PIP_PKG = "pyjokes"  # small, pure Python, in neither runtime's environment


def _project_dir(root: str, marker: str) -> str:
    """A 2 MB project: 40 modules and data files, one module naming ``marker``."""
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "renv_marker.py"), "w") as f:
        f.write(f"MARKER = {marker!r}\n")
    for i in range(40):
        with open(os.path.join(root, f"mod_{i}.py"), "w") as f:
            f.write(f"# module {i} {marker}\n" + "X = 1\n" * 200)
        with open(os.path.join(root, f"data_{i}.bin"), "wb") as f:
            f.write(os.urandom(50_000))
    return root


def runtime_env_setup(ctx: Any) -> Callable[[], Sample]:
    """Ray takes a local ``working_dir`` only at job level, so each figure is
    a driver connecting with the env (``init(address=..., runtime_env=...)``,
    which packs and uploads) plus its first task (the node fetches, unpacks or
    builds the env and starts a worker in it), against a cluster started once
    by the runtime's CLI. "first" uses content never seen (a new directory, a
    pip requirement spelled anew so no cache holds it); "warm" repeats the
    same env from a new driver."""
    rt, name = ctx.rt, _name(ctx.rt)
    _start_head(ctx, name, [], _ray_env() if name == "ray" else dict(os.environ))
    tmp = tempfile.mkdtemp(prefix="renv-bench-")
    ctx.defer(lambda: shutil.rmtree(tmp, ignore_errors=True))
    counter = [0]

    def first_task(runtime_env: dict[str, Any] | None, check: Callable[[Any], bool]) -> float:
        t0 = time.perf_counter()
        rt.init(address="auto", runtime_env=runtime_env, log_to_driver=False)
        try:
            @rt.remote
            def probe() -> Any:
                import importlib

                out: dict[str, Any] = {"cwd": os.getcwd()}
                with contextlib.suppress(ImportError):
                    out["marker"] = importlib.import_module("renv_marker").MARKER
                with contextlib.suppress(ImportError):
                    out["pip"] = importlib.import_module(RENV_PIP_PKG).__file__
                return out

            value = rt.get(probe.remote(), timeout=ctx.remaining())
            elapsed = time.perf_counter() - t0
        finally:
            rt.shutdown()
        if not check(value):
            raise RuntimeError(f"the env did not reach the task: {value!r}")
        return elapsed

    def once() -> Sample:
        counter[0] += 1
        marker = f"{os.getpid()}-{time.time_ns()}"
        wd = _project_dir(os.path.join(tmp, f"proj{counter[0]}"), marker)
        # A requirement spelled anew each time: a new env for both runtimes (the
        # same package, satisfied by any release; no cache of an earlier run holds it).
        req = f"{RENV_PIP_PKG}>=0.0.{time.time_ns() % 10**9}"
        out = {"renv_base_s": first_task(None, lambda v: "marker" not in v)}
        out["renv_wd_first_s"] = first_task({"working_dir": wd}, lambda v: v.get("marker") == marker)
        out["renv_wd_warm_s"] = first_task({"working_dir": wd}, lambda v: v.get("marker") == marker)
        out["renv_pip_first_s"] = first_task({"pip": [req]}, lambda v: bool(v.get("pip")))
        out["renv_pip_warm_s"] = first_task({"pip": [req]}, lambda v: bool(v.get("pip")))
        return out

    return once


# --------------------------------------------------------------------------
# A driver connected as a client: Ray Client (ray://) against jray's client mode
# --------------------------------------------------------------------------


def _connect_client(ctx: Any, name: str) -> dict[str, Any]:
    """Start a head with the CLI and connect this process to it as a client;
    what was seen that shows it is one (it raises if it is not)."""
    rt = ctx.rt
    if name == "ray":
        # Ray 2.60 turns token auth on in `ray start` when ~/.ray/auth_token
        # exists, and in a driver's local ray.init() (then the rest of the suite
        # runs with it); a Ray Client driver sends the token only when its
        # process is in token mode. Set it outright so the head and the client
        # agree whatever ran before (jray's client sends a token too), and have
        # Ray re-read its config as its own ray.init() does when it turns it on.
        env = dict(_ray_env(), RAY_AUTH_MODE=os.environ.get("RAY_AUTH_MODE", "token"))
        os.environ["RAY_AUTH_MODE"] = env["RAY_AUTH_MODE"]
        importlib.import_module("ray._raylet").Config.initialize("")
        port = _free_port()
        _start_head(ctx, name, [f"--port={_free_port()}", f"--ray-client-server-port={port}"], env)
        # The proxy forks a server for each client, and that child sometimes
        # dies at once (ray-project/ray#63202, a gRPC poller race in the fork:
        # "Initialization failure from server"); a new connection forks anew.
        tries = 0
        while True:
            tries += 1
            try:
                rt.init(f"ray://127.0.0.1:{port}")
                break
            except ConnectionAbortedError:
                with contextlib.suppress(Exception):
                    rt.shutdown()
                if tries == 5 or ctx.remaining() < 60:
                    raise
        ctx.defer(rt.shutdown)  # runs before the head's stop (cleanups run last first)
        connected = bool(rt.util.client.ray.is_connected())
        if not connected:
            raise RuntimeError("ray.init('ray://...') did not connect through Ray Client")
        return {"ray_client_connected": connected, "address": f"ray://127.0.0.1:{port}",
                "connect_tries": tries}
    # A temp dir of its own for the head (JRAY_TMPDIR: session, address file),
    # so that `jray stop` stops this head and no other on the machine.
    tmp = tempfile.mkdtemp(prefix="jray-bench-client-")
    ctx.defer(lambda: shutil.rmtree(tmp, ignore_errors=True))  # after the stop
    out = _start_head(ctx, name, ["--port", "0"], dict(os.environ, JRAY_TMPDIR=tmp))
    found = re.search(r"JRAY_ADDRESS=(\S+) JRAY_TOKEN=(\S+)", out)
    if not found:
        raise RuntimeError(f"no address and token in `jray start --head`'s output: {out[-2000:]}")
    address, token = found.groups()
    # JRAY_CLIENT_MODE=1: a client even on a machine with a node. jray read the
    # variable when it was imported (config.CLIENT_MODE), before this workload.
    config: Any = importlib.import_module("jray._private.config")
    saved = (os.environ.get("JRAY_CLIENT_MODE"), config.CLIENT_MODE)

    def restore() -> None:
        if saved[0] is None:
            os.environ.pop("JRAY_CLIENT_MODE", None)
        else:
            os.environ["JRAY_CLIENT_MODE"] = saved[0]
        config.CLIENT_MODE = saved[1]

    os.environ["JRAY_CLIENT_MODE"], config.CLIENT_MODE = "1", True
    try:
        rt.init(f"jray://{address}", _token=token, log_to_driver=False)
    finally:
        restore()  # init has read it
    ctx.defer(rt.shutdown)
    worker = importlib.import_module("jray._private.worker.global_state").worker
    remote = worker.store.remote  # (ip, port) of the raylet that a client streams objects to
    seen = {"client": bool(worker.client), "store_mapped": worker.store.arena is not None,
            "streams_to": f"{remote[0]}:{remote[1]}" if remote else None}
    if not seen["client"] or seen["store_mapped"] or not seen["streams_to"]:
        raise RuntimeError(f"the jray driver is not a client: {seen}")
    return dict(seen, address=f"jray://{address}")


def client(ctx: Any) -> Callable[[], Sample]:
    """A driver connected as a client to a head started by the CLI on this
    machine: Ray Client (``ray start --head --ray-client-server-port``, then
    ``init("ray://127.0.0.1:PORT")``) against jray's client mode (``jray start
    --head``, then ``init("jray://H:P", _token=...)`` with JRAY_CLIENT_MODE=1:
    no store mapped, objects streamed over gRPC). Task round trip; 1,000 tasks
    submitted, then got; put of a 100 MB array; get of one a task returned
    (the task done before the clock starts); put then get."""
    rt, name = ctx.rt, _name(ctx.rt)
    ctx.notes.update(_connect_client(ctx, name))
    import numpy as np

    def small_value() -> bytes:
        return b"ok"

    def big_value(nbytes: int) -> Any:
        import numpy

        return numpy.ones(nbytes, dtype=numpy.uint8)

    small, big = rt.remote(small_value), rt.remote(big_value)
    arr = np.ones(100 * MB, dtype=np.uint8)  # not zeros: untouched pages would map the zero page
    calls, batch, puts, gets = ctx.n(500, 100), 1000, ctx.n(3, 1), ctx.n(2, 1)
    ctx.notes.update(calls=calls, batch=batch, puts_per_repetition=puts, gets_per_repetition=gets)

    def once() -> Sample:
        t0 = time.perf_counter()
        for _ in range(calls):
            ctx.get(small.remote())
        out = {"client_task_rtt_ms": (time.perf_counter() - t0) * 1e3 / calls}
        t0 = time.perf_counter()
        ctx.get([small.remote() for _ in range(batch)])
        out["client_tasks"] = _rate(batch, time.perf_counter() - t0)
        elapsed = 0.0
        for _ in range(puts):
            t0 = time.perf_counter()
            ref = rt.put(arr)
            elapsed += time.perf_counter() - t0
            del ref
            time.sleep(0.2)  # freeing is asynchronous (as put_100mb)
        out["client_put_100mb"] = _rate(puts * arr.nbytes / GB, elapsed)
        elapsed = 0.0
        for _ in range(gets):
            ref = big.remote(arr.nbytes)
            ready, _ = rt.wait([ref], timeout=ctx.remaining(), fetch_local=False)
            if not ready:
                raise TimeoutError("the 100 MB task did not finish before the deadline")
            t0 = time.perf_counter()
            got = ctx.get(ref)
            elapsed += time.perf_counter() - t0
            assert got.nbytes == arr.nbytes and got[-1] == 1
            del got, ref
        out["client_get_100mb"] = _rate(gets * arr.nbytes / GB, elapsed)
        elapsed = 0.0
        for _ in range(gets):
            t0 = time.perf_counter()
            got = ctx.get(rt.put(arr))
            elapsed += time.perf_counter() - t0
            assert got.nbytes == arr.nbytes
            del got
            time.sleep(0.2)
        out["client_put_get_100mb_ms"] = elapsed * 1e3 / gets
        return out

    return once


# (name, setup, metrics, timeout in seconds): see workloads.Workload (own_cluster=True)
WORKLOADS: tuple[tuple[str, Callable[[Any], Callable[[], Sample]], tuple[str, ...], float], ...] = (
    ("runtime_env", runtime_env_setup,
     ("renv_base_s", "renv_wd_first_s", "renv_wd_warm_s", "renv_pip_first_s", "renv_pip_warm_s"),
     900.0),
    ("client", client,
     ("client_task_rtt_ms", "client_tasks", "client_put_100mb", "client_get_100mb",
      "client_put_get_100mb_ms"),
     600.0),
)
