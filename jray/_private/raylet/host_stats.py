"""The machine's CPU and memory, and each worker's, as a raylet reports them.

Sampled with psutil at most once every ``MIN_INTERVAL`` seconds and cached:
the node's reports to the GCS (looked at four times a second) and
``GetNodeStats`` calls (each view's poll) read the last sample. CPU
percentages are over the time since the previous sample (psutil keeps the
counters), so the first one reads 0.

- machine: ``cpu_percent`` (0-100, every core together), ``memory_used``
  (total - available, as Ray counts it) and ``memory_total``, in bytes;
- per process (the node's workers): resident memory (``rss``) and CPU
  percent of one core. ``psutil.Process`` objects are kept per pid for their
  CPU counters and dropped when the pid leaves the node's pool.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import psutil

MIN_INTERVAL = 1.0
PER_PROCESS_INTERVAL = 0.01  # seconds of sampling interval per process sampled


@dataclass(frozen=True)
class ProcStats:
    rss: int = 0
    cpu_percent: float = 0.0


@dataclass
class HostSample:
    time: float = 0.0
    cpu_percent: float = 0.0
    memory_used: int = 0
    memory_total: int = 0
    procs: dict[int, ProcStats] = field(default_factory=dict)


class HostStats:
    """The cached sample (``sample(pids)``: fresh when the last is older than ``min_interval``)."""

    def __init__(self, min_interval: float = MIN_INTERVAL) -> None:
        self.min_interval = min_interval
        self.last = HostSample()
        self._procs: dict[int, psutil.Process] = {}
        with contextlib.suppress(Exception):
            psutil.cpu_percent(interval=None)  # start the machine's counter

    def sample(self, pids: Iterable[int] = ()) -> HostSample:
        """The last sample, or a new one of the machine and ``pids`` when it is
        older than ``min_interval`` (a pid new since shows at the next)."""
        now = time.monotonic()
        wanted = frozenset(p for p in pids if p > 0)
        # Each process costs a few /proc reads: with hundreds of workers,
        # sample less often (10 ms of interval per worker: 1,000 -> every 10 s).
        interval = max(self.min_interval, PER_PROCESS_INTERVAL * len(wanted))
        if self.last.time and now - self.last.time < interval:
            return self.last
        try:
            mem = psutil.virtual_memory()
            used, total = int(mem.total - mem.available), int(mem.total)
            cpu = float(psutil.cpu_percent(interval=None))
        except Exception:  # noqa: BLE001 - no /proc (a locked-down container): report nothing
            used = total = 0
            cpu = 0.0
        for pid in [p for p in self._procs if p not in wanted]:
            del self._procs[pid]
        procs: dict[int, ProcStats] = {}
        for pid in wanted:
            p = self._procs.get(pid)
            try:
                if p is None:
                    p = self._procs[pid] = psutil.Process(pid)
                    p.cpu_percent(interval=None)  # its counter starts here
                with p.oneshot():
                    procs[pid] = ProcStats(int(p.memory_info().rss), float(p.cpu_percent(interval=None)))
            except (psutil.Error, OSError):
                self._procs.pop(pid, None)
        self.last = HostSample(now, cpu, used, total, procs)
        return self.last
