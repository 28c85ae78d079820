"""A worker's CPU sampler, started on demand (``jray profile``).

The worker installs :func:`install` at start-up: SIGUSR2 makes it read
``<session>/logs/profile-<pid>.req`` (JSON: ``duration``, ``interval``)
and start a daemon thread that samples every other thread's stack
(``sys._current_frames``) every ``interval`` seconds for ``duration``
seconds, each weighted by the CPU time the thread used since its last
sample (``/proc/self/task/<tid>/stat``, in clock ticks): a thread blocked in
C (a sleep, a socket, a lock) counts nothing, whatever its Python frames
say. Frames of the standard library and of jray's internals are marked
with a leading ``~`` (the flame graph shows them; the text summary skips
them, so user code comes first). The result goes to
``<session>/logs/profile-<pid>.json``: ``{"folded": {"thread;file:func:line;...": n},
"samples": ticks, "idle": n, "duration": s, "tick_s": s}`` (the folded format of Brendan
Gregg's flame graphs), written atomically; ``jray.util.profiling`` reads it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from typing import Any

_STDLIB = os.path.dirname(os.__file__)
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_ticks(native_id: int | None) -> int | None:
    if native_id is None:
        return None
    try:
        with open(f"/proc/self/task/{native_id}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15)
    except (OSError, IndexError, ValueError):
        return None


def paths(pid: int | None = None) -> tuple[str, str]:
    logs = os.path.join(os.environ.get("JRAY_SESSION_DIR", "/tmp"), "logs")
    pid = os.getpid() if pid is None else pid
    return os.path.join(logs, f"profile-{pid}.req"), os.path.join(logs, f"profile-{pid}.json")


def _frames(frame: Any) -> list[str]:
    out = []
    while frame is not None:
        code = frame.f_code
        internal = code.co_filename.startswith((_STDLIB, "<frozen")) or f"{os.sep}jray{os.sep}_private{os.sep}" in code.co_filename
        out.append(f"{'~' if internal else ''}{os.path.basename(code.co_filename)}:{code.co_name}:{frame.f_lineno}")
        frame = frame.f_back
    out.reverse()
    return out


def sample(duration: float, interval: float) -> dict[str, Any]:
    me = threading.get_ident()
    threads = {t.ident: t for t in threading.enumerate()}
    last: dict[int, int | None] = {}
    folded: dict[str, int] = {}
    samples = idle = 0
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        for ident, frame in sys._current_frames().items():
            if ident == me:
                continue
            t = threads.get(ident)
            if t is None:
                threads = {t.ident: t for t in threading.enumerate()}
                t = threads.get(ident)
            # A forked worker's main thread keeps the zygote's native id: its tid is our pid.
            ticks = _cpu_ticks(os.getpid() if t is threading.main_thread() else getattr(t, "native_id", None))
            before = last.get(ident)
            last[ident] = ticks
            if ticks is None or before is None:
                continue
            used = ticks - before
            if used <= 0:
                idle += 1
                continue
            key = ";".join([t.name if t is not None else f"thread-{ident}", *_frames(frame)])
            folded[key] = folded.get(key, 0) + used
            samples += used
        time.sleep(interval)
    return {"folded": folded, "samples": samples, "idle": idle, "duration": duration, "interval": interval,
            "tick_s": 1.0 / _TICKS}


def _start(_signum: int, _frame: Any) -> None:
    req, out = paths()
    try:
        with open(req) as f:
            spec = json.load(f)
        duration = min(max(float(spec.get("duration", 5.0)), 0.1), 600.0)
        interval = min(max(float(spec.get("interval", 0.01)), 0.001), 1.0)
    except (OSError, ValueError, TypeError):
        return

    def run() -> None:
        result = sample(duration, interval)
        tmp = out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(result, f)
        os.replace(tmp, out)

    threading.Thread(target=run, name="jray-profiler", daemon=True).start()


def install() -> None:
    signal.signal(signal.SIGUSR2, _start)
