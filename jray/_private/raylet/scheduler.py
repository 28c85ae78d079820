"""Resource accounting of one raylet (plain logic).

``NodeResources`` is what a node (or a placement-group bundle on it) has in
all and free now, with the GPU ids each lease takes; ``pick_remote`` picks
another node for a demand from the cluster view the GCS returns on each
heartbeat. Where a lease goes is decided in ``lease_policy.py``, with both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from jray._private.resources import EPS, fits


@dataclass
class Allocation:
    demand: dict[str, float]
    gpu_ids: list[int] = field(default_factory=list)
    gpu_shares: dict[int, float] = field(default_factory=dict)
    cpu_released: bool = False  # the worker is blocked in get(): CPU lent back


class NodeResources:
    def __init__(self, total: dict[str, float]) -> None:
        self.total = {k: float(v) for k, v in total.items() if v > 0 or k == "CPU"}
        self.available = dict(self.total)
        n_gpus = int(self.total.get("GPU", 0))
        self.gpu_free = {i: 1.0 for i in range(n_gpus)}

    def fits_total(self, demand: dict[str, float]) -> bool:
        return fits(demand, self.total)

    def fits_now(self, demand: dict[str, float]) -> bool:
        if not fits(demand, self.available):
            return False
        return self._pick_gpus(demand.get("GPU", 0.0)) is not None

    def _pick_gpus(self, g: float) -> dict[int, float] | None:
        """GPU ids (and the share of each) for ``g`` GPUs: whole free devices
        for one or more, the lowest device with room for a fraction."""
        if g <= EPS:
            return {}
        if g >= 1 - EPS:
            whole = [i for i, free in sorted(self.gpu_free.items()) if free >= 1 - EPS]
            need = int(round(g))
            return {i: 1.0 for i in whole[:need]} if len(whole) >= need else None
        for i, free in sorted(self.gpu_free.items()):
            if free + EPS >= g:
                return {i: g}
        return None

    def acquire(self, demand: dict[str, float]) -> Allocation | None:
        if not fits(demand, self.available):
            return None
        shares = self._pick_gpus(demand.get("GPU", 0.0))
        if shares is None:
            return None
        for k, v in demand.items():
            self.available[k] = self.available.get(k, 0.0) - v
        for i, s in shares.items():
            self.gpu_free[i] -= s
        return Allocation(dict(demand), sorted(shares), shares)

    def release(self, alloc: Allocation) -> None:
        for k, v in alloc.demand.items():
            if k == "CPU" and alloc.cpu_released:
                continue
            self.available[k] = self.available.get(k, 0.0) + v
        for i, s in alloc.gpu_shares.items():
            self.gpu_free[i] = min(1.0, self.gpu_free[i] + s)
        alloc.demand = {}
        alloc.gpu_shares = {}

    def lend_cpu(self, alloc: Allocation) -> None:
        """The worker blocked in get(): give its CPU back for nested work."""
        cpu = alloc.demand.get("CPU", 0.0)
        if cpu and not alloc.cpu_released:
            alloc.cpu_released = True
            self.available["CPU"] = self.available.get("CPU", 0.0) + cpu

    def reclaim_cpu(self, alloc: Allocation) -> None:
        cpu = alloc.demand.get("CPU", 0.0)
        if alloc.cpu_released:
            alloc.cpu_released = False
            self.available["CPU"] = self.available.get("CPU", 0.0) - cpu  # may go below 0 for a while


def pick_remote(demand: dict[str, float], nodes: Iterable[Any], local_id: bytes, *, now: bool) -> Any | None:
    """A remote node that fits ``demand`` (now, or at all), the emptiest first."""
    best = None
    best_score = -1.0
    for n in nodes:
        if n.node_id == local_id or not n.alive:
            continue
        have = n.resources_available if now else n.resources_total
        if not fits(demand, have):
            continue
        score = n.resources_available.get("CPU", 0.0) - 0.01 * n.pending_leases
        if score > best_score:
            best, best_score = n, score
    return best
