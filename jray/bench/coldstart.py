"""Cold start and idle memory of a runtime, measured in a fresh interpreter.

    python coldstart.py RUNTIME INIT_KWARGS_JSON OUT_JSON

times ``import RUNTIME``, ``RUNTIME.init(**INIT_KWARGS)`` and the first task,
waits for the runtime's processes to settle, sums their RSS and PSS, shuts
the runtime down and writes the figures to OUT_JSON. The ``cold_start``
workload in ``workloads.py`` runs this file once per repetition.

Like ``workloads.py`` it imports only the standard library at module level
(psutil when measuring), so the import it times is the runtime's alone.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import time
from typing import Any

MB = 1024 * 1024


def smaps_rollup(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of a process in bytes, from /proc/<pid>/smaps_rollup."""
    rss = pss = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Rss:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("Pss:"):
                pss = int(line.split()[1]) * 1024
    return rss, pss


def _ray_session_name(rt: Any) -> str | None:
    """Ray's session directory name (session_<date>_<pid>), which its processes name on their command line."""
    with contextlib.suppress(Exception):
        node = rt._private.worker._global_node  # no public API names the session
        return os.path.basename(node.get_session_dir_path())
    with contextlib.suppress(OSError):
        return os.path.basename(os.path.realpath("/tmp/ray/session_latest"))
    return None


def runtime_pids(rt: Any) -> list[int]:
    """The runtime's processes, not counting this driver.

    The driver's descendants; for Ray also every process whose command line
    names this session (Ray's daemons re-parent some of theirs).
    """
    import psutil

    me = psutil.Process()
    pids = {c.pid for c in me.children(recursive=True)}
    session = _ray_session_name(rt) if rt.__name__ == "ray" else None
    if session:
        for p in psutil.process_iter(["pid", "cmdline"]):
            with contextlib.suppress(psutil.Error, TypeError):
                if session in " ".join(p.info["cmdline"] or ()):
                    pids.add(p.pid)
    pids.discard(me.pid)
    return sorted(pids)


def idle_memory(rt: Any, settle_s: float = 20.0) -> dict[str, float]:
    """RSS and PSS summed over the runtime's processes once they have settled.

    Settled: the same processes and a total RSS within 2% for four polls
    half a second apart, or ``settle_s`` at most.
    """
    deadline, last, stable = time.monotonic() + settle_s, None, 0
    while True:
        pids, rss, pss = runtime_pids(rt), 0, 0
        for pid in list(pids):
            try:
                r, p = smaps_rollup(pid)
            except OSError:  # gone meanwhile
                pids.remove(pid)
                continue
            rss, pss = rss + r, pss + p
        if last and last[0] == pids and abs(rss - last[1]) <= 0.02 * max(rss, 1):
            stable += 1
        else:
            stable = 0
        if stable >= 3 or time.monotonic() > deadline:
            return {"idle_rss_mb": rss / MB, "idle_pss_mb": pss / MB, "idle_processes": len(pids)}
        last = (pids, rss)
        time.sleep(0.5)


def cold_start(name: str, init_kwargs: dict[str, Any]) -> dict[str, float]:
    """Time the import, ``init`` and the first task; then measure idle memory; then shut down."""
    t0 = time.perf_counter()
    rt = importlib.import_module(name)
    t1 = time.perf_counter()
    rt.init(**init_kwargs)
    t2 = time.perf_counter()
    try:

        def one() -> int:
            return 1

        task = rt.remote(one)
        t3 = time.perf_counter()
        rt.get(task.remote(), timeout=60)
        t4 = time.perf_counter()
        out = {"import_s": t1 - t0, "init_s": t2 - t1, "first_task_s": t4 - t3}
        out.update(idle_memory(rt))
    except BaseException:
        rt.shutdown()
        raise
    # Shutdown: until every process the runtime started is gone (both
    # runtimes stop theirs before shutdown() returns).
    t5 = time.perf_counter()
    rt.shutdown()
    out["shutdown_s"] = time.perf_counter() - t5
    return out


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: coldstart.py RUNTIME INIT_KWARGS_JSON OUT_JSON")
    result = cold_start(sys.argv[1], json.loads(sys.argv[2]))
    with open(sys.argv[3], "w") as f:
        json.dump(result, f)
