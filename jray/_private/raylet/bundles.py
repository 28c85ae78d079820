"""Placement-group bundles reserved on one node (plain logic, no I/O).

A bundle is carved out of the node's resources when the GCS *prepares* it:
from then on normal leases cannot use those resources. Once *committed*, a
bundle is a small resource pool of its own (with the GPU ids it took), and
leases that name its placement group draw from it. *Cancelling* gives the
carved resources back to the node; leases still holding parts of the bundle
are the caller's to kill (their later release goes to the dead pool and is
ignored).
"""

from __future__ import annotations

from dataclasses import dataclass

from jray._private.raylet.scheduler import Allocation, NodeResources
from jray._private.resources import fits


@dataclass(eq=False)
class Bundle:
    pg_id: bytes
    index: int
    demand: dict[str, float]
    carve: Allocation            # what the bundle took from the node
    pool: NodeResources          # what leases in the bundle draw from
    committed: bool = False

    def fits_total(self, demand: dict[str, float]) -> bool:
        return fits(demand, self.demand)


class BundleTable:
    def __init__(self, node: NodeResources) -> None:
        self.node = node
        self.bundles: dict[tuple[bytes, int], Bundle] = {}

    def prepare(self, specs: list[tuple[bytes, int, dict[str, float]]]) -> bool:
        """Reserve every bundle in ``specs`` (pg id, index, resources), all or
        nothing. Bundles already held are kept as they are (idempotent)."""
        taken: list[Bundle] = []
        for pg_id, index, demand in specs:
            if (pg_id, index) in self.bundles:
                continue
            clean = {k: float(v) for k, v in demand.items() if v > 0}
            carve = self.node.acquire(clean)
            if carve is None:
                for b in taken:
                    self.node.release(b.carve)
                    del self.bundles[(b.pg_id, b.index)]
                return False
            pool = NodeResources(clean)
            pool.gpu_free = dict(carve.gpu_shares)  # the node's own GPU ids, whole or shared
            b = Bundle(pg_id, index, clean, carve, pool)
            self.bundles[(pg_id, index)] = b
            taken.append(b)
        return True

    def commit(self, pg_id: bytes, indexes: list[int]) -> bool:
        """Make prepared bundles usable; False if one of them is unknown here."""
        found = [self.bundles.get((pg_id, i)) for i in indexes]
        for b in found:
            if b is not None:
                b.committed = True
        return all(b is not None for b in found)

    def cancel(self, pg_id: bytes, indexes: list[int] | None = None) -> list[Bundle]:
        """Give bundles (all of the group's when ``indexes`` is None) back to the node."""
        out = []
        for key in list(self.bundles):
            if key[0] == pg_id and (indexes is None or not indexes or key[1] in indexes):
                b = self.bundles.pop(key)
                self.node.release(b.carve)
                out.append(b)
        return out

    def cancel_all(self) -> list[Bundle]:
        out = []
        for pg_id in {k[0] for k in self.bundles}:
            out.extend(self.cancel(pg_id))
        return out

    def local(self, pg_id: bytes, index: int) -> list[Bundle]:
        """Committed bundles of the group on this node (-1: any index)."""
        return [b for (p, i), b in sorted(self.bundles.items(), key=lambda kv: kv[0][1])
                if p == pg_id and b.committed and (index < 0 or i == index)]

    def acquire(self, pg_id: bytes, index: int, demand: dict[str, float]) -> tuple[Bundle, Allocation] | None:
        """Take ``demand`` from a committed bundle of the group on this node."""
        for b in self.local(pg_id, index):
            alloc = b.pool.acquire(demand)
            if alloc is not None:
                return b, alloc
        return None

    def reserved(self) -> dict[str, float]:
        """Resources held by bundles on this node (for stats)."""
        out: dict[str, float] = {}
        for b in self.bundles.values():
            for k, v in b.demand.items():
                out[k] = out.get(k, 0.0) + v
        return out
