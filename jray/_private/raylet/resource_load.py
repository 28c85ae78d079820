"""What waits for resources at one raylet, and how long the node has been
idle: the two things the autoscaler reads of a node (plain state, no gRPC).

- Lease requests in flight: ``RequestWorkerLease`` calls for tasks that this
  raylet holds while they wait (for resources here, or for a node that can
  ever fit them: *infeasible*). A request spilled to another node is
  counted there instead. Actors' and placement-group leases are not counted:
  the GCS knows pending actors and groups itself.
- Owners' backlogs: an owner asks for a bounded number of leases per shape
  (``MAX_PENDING_LEASE_REQUESTS``) and keeps the rest of its tasks queued;
  it reports how many with ``ReportWorkerBacklog`` every second or so. A
  report replaces that owner's previous one and lapses after
  ``BACKLOG_TTL_SECONDS`` without a new one (an owner that died).
- Idleness: the node is idle while every resource is available, no lease is
  granted and nothing waits; ``idle_ms`` says for how long.

``ResourceLoad.demands()`` turns it into ``ResourceDemand`` messages for the
heartbeat (``NodeInfo.resource_load``); the GCS sums them over nodes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from jray._private.protocol import common_pb2 as cpb

BACKLOG_TTL_SECONDS = 5.0

Shape = tuple[tuple[str, float], ...]


def shape_key(demand: Mapping[str, float]) -> Shape:
    """A hashable key for a resource shape (zero amounts dropped)."""
    return tuple(sorted((k, float(v)) for k, v in demand.items() if v > 0))


class PendingLease:
    """One lease request this raylet holds; ``infeasible`` while no live
    node could ever fit it."""

    __slots__ = ("shape", "infeasible")

    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        self.infeasible = False


class ResourceLoad:
    def __init__(self) -> None:
        self.pending: set[PendingLease] = set()
        self._backlogs: dict[bytes, tuple[float, dict[Shape, int]]] = {}  # owner -> (when, shape -> count)
        self._idle_since: float | None = None

    # -- lease requests ---------------------------------------------------
    def begin(self, demand: Mapping[str, float]) -> PendingLease:
        entry = PendingLease(shape_key(demand))
        self.pending.add(entry)
        return entry

    def end(self, entry: PendingLease) -> None:
        self.pending.discard(entry)

    # -- owners' backlogs -------------------------------------------------------
    def report_backlog(self, owner: bytes, backlog: Iterable[tuple[Mapping[str, float], int]],
                       now: float | None = None) -> None:
        """Replace ``owner``'s backlog (an empty one clears it)."""
        counts: dict[Shape, int] = {}
        for demand, n in backlog:
            if n > 0:
                key = shape_key(demand)
                counts[key] = counts.get(key, 0) + int(n)
        if counts:
            self._backlogs[owner] = (time.monotonic() if now is None else now, counts)
        else:
            self._backlogs.pop(owner, None)

    def forget_owner(self, owner: bytes) -> None:
        self._backlogs.pop(owner, None)

    # -- the report -------------------------------------------------------------
    def demands(self, now: float | None = None) -> list[cpb.ResourceDemand]:
        """The load by shape, for the heartbeat."""
        now = time.monotonic() if now is None else now
        ready: dict[Shape, int] = {}
        infeasible: dict[Shape, int] = {}
        backlog: dict[Shape, int] = {}
        for p in self.pending:
            d = infeasible if p.infeasible else ready
            d[p.shape] = d.get(p.shape, 0) + 1
        for owner, (when, counts) in list(self._backlogs.items()):
            if now - when > BACKLOG_TTL_SECONDS:
                del self._backlogs[owner]
                continue
            for key, n in counts.items():
                backlog[key] = backlog.get(key, 0) + n
        out = []
        for key in sorted(set(ready) | set(infeasible) | set(backlog)):
            if not key:
                continue  # a zero-resource task waits for nothing an autoscaler can add
            out.append(cpb.ResourceDemand(shape=dict(key), num_ready_requests_queued=ready.get(key, 0),
                                          num_infeasible_requests_queued=infeasible.get(key, 0),
                                          backlog_size=backlog.get(key, 0)))
        return out

    def idle_ms(self, busy: bool, now: float | None = None) -> int:
        """How long the node has been idle (0 while ``busy`` or while a
        lease request waits here)."""
        now = time.monotonic() if now is None else now
        if busy or self.pending:
            self._idle_since = None
            return 0
        if self._idle_since is None:
            self._idle_since = now
        return int((now - self._idle_since) * 1000)
