"""The leases of one raylet: those granted (a worker and the resources it
holds), the requests waiting for resources, and the workers blocked in
``get``/``wait`` (plain state, no gRPC).

A granted lease draws from the node's own resources or from a bundle's pool
(a placement group's); ending it gives them back to that pool. Waiting
requests are served by :meth:`LeaseQueue.hand_out` whenever resources come
back, in this order: requests from workers blocked in ``get``/``wait`` first
(in arrival order), then the rest in arrival order. Finishing the work a
blocked task waits for frees its CPU, while granting new top-level tasks
first would start ever more tasks that block in turn (nested tasks on a
small node starved behind their parents).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Container
from dataclasses import dataclass

from jray._private.raylet.scheduler import Allocation, NodeResources
from jray._private.raylet.worker_pool import WorkerProc


@dataclass(eq=False)
class LeaseRecord:
    lease_id: bytes
    worker: WorkerProc
    alloc: Allocation
    actor_id: bytes = b""
    owner_id: bytes = b""
    pool: NodeResources | None = None  # a bundle's pool, None for the node's own


class LeaseTable:
    """Granted leases, by lease id and by worker id."""

    def __init__(self, node: NodeResources) -> None:
        self.node = node
        self.by_id: dict[bytes, LeaseRecord] = {}
        self.by_worker: dict[bytes, LeaseRecord] = {}

    def add(self, lease: LeaseRecord) -> None:
        self.by_id[lease.lease_id] = lease
        self.by_worker[lease.worker.worker_id] = lease

    def pool(self, lease: LeaseRecord) -> NodeResources:
        """The resources the lease draws from."""
        return lease.pool if lease.pool is not None else self.node

    def end(self, lease: LeaseRecord) -> None:
        """Forget the lease and give its resources back to its pool."""
        self.by_id.pop(lease.lease_id, None)
        self.by_worker.pop(lease.worker.worker_id, None)
        self.pool(lease).release(lease.alloc)

    def owned_by(self, owner_id: bytes) -> list[LeaseRecord]:
        """The task leases (not actors') that ``owner_id`` holds."""
        return [x for x in self.by_id.values() if x.owner_id == owner_id and not x.actor_id]

    def in_pools(self, pools: Collection[NodeResources]) -> list[LeaseRecord]:
        """The leases drawing from any of these bundle pools."""
        ids = {id(p) for p in pools}
        return [x for x in self.by_id.values() if x.pool is not None and id(x.pool) in ids]


class Waiter:
    """A lease request waiting for resources; ``fut`` gets its Allocation."""

    __slots__ = ("seq", "owner", "demand", "fut", "shape")

    def __init__(self, seq: int, owner: bytes, demand: dict[str, float], fut: asyncio.Future[Allocation]) -> None:
        self.seq, self.owner, self.demand, self.fut = seq, owner, demand, fut
        self.shape = frozenset(demand.items())  # requests of one shape fit or not alike


class LeaseQueue:
    """Lease requests waiting on this node: for its resources (in order, see
    the module docstring), or for a bundle of theirs to free up (woken on
    every hand-out, to look again)."""

    def __init__(self) -> None:
        self.waiting: list[Waiter] = []
        self._seq = 0
        self._bundle_waiters: list[asyncio.Future[None]] = []

    def __len__(self) -> int:
        return len(self.waiting)

    def add(self, owner: bytes, demand: dict[str, float]) -> Waiter:
        self._seq += 1
        entry = Waiter(self._seq, owner, demand, asyncio.get_running_loop().create_future())
        self.waiting.append(entry)
        return entry

    def remove(self, entry: Waiter) -> None:
        if entry in self.waiting:
            self.waiting.remove(entry)

    def hand_out(self, node: NodeResources, blocked: Container[bytes]) -> None:
        """Resources came back: grant what fits to waiting requests, and wake
        the requests waiting for a bundle. With no request waiting for
        resources it does nothing (bundle waiters then wake at their
        timeout), as the raylet always did."""
        if not self.waiting:
            return
        # Resources only shrink during the pass: once a shape does not fit,
        # the later requests of that shape (most are {"CPU": 1}) are skipped
        # unchecked, instead of each costing a fit test per hand-out.
        misfits: set[frozenset] = set()
        for entry in sorted(self.waiting, key=lambda e: (e.owner not in blocked, e.seq)):
            if entry.fut.done() or entry.shape in misfits:
                continue
            alloc = node.acquire(entry.demand)
            if alloc is not None:
                entry.fut.set_result(alloc)
            else:
                misfits.add(entry.shape)
        waiters, self._bundle_waiters = self._bundle_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait_bundle(self, timeout: float) -> None:
        """Wait (at most ``timeout``) for the next hand-out."""
        fut = asyncio.get_running_loop().create_future()
        self._bundle_waiters.append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            pass


class BlockedWorkers:
    """Workers blocked in ``get``/``wait`` (their CPU lent back meanwhile),
    as their ``WorkerBlocked`` messages say. The messages of one worker can
    arrive out of order: one older (lower ``seq``) than the last seen is
    ignored; ``seq`` 0 is always applied."""

    def __init__(self) -> None:
        self.ids: set[bytes] = set()
        self._seq: dict[bytes, int] = {}

    def __contains__(self, worker_id: object) -> bool:
        return worker_id in self.ids

    def update(self, worker_id: bytes, blocked: bool, seq: int) -> bool:
        """Apply a message; False when a newer one overtook it."""
        if seq:
            if seq <= self._seq.get(worker_id, 0):
                return False
            self._seq[worker_id] = seq
        if blocked:
            self.ids.add(worker_id)
        else:
            self.ids.discard(worker_id)
        return True

    def forget(self, worker_id: bytes) -> None:
        """The worker died."""
        self._seq.pop(worker_id, None)
        self.ids.discard(worker_id)
