"""The raylet's lease decision, a pure function of a request and a view.

A lease request asks this node for a worker holding some resources. The
servicer (``server.py``) takes a :class:`LeaseView` (this node's resources
and wait queue, the cluster as the last heartbeat reply described it, the
SPREAD counter), calls :func:`decide_lease` and does what it answers:

- :class:`Grant`: take the resources here and lease a worker;
- :class:`Spill`: reply "ask that node instead" (spillback);
- :class:`Wait`: wait for what ``reason`` names, then decide again with the
  request's ``resumed`` set to that reason: the decision picks up where it
  left off (a request queued for resources is not sent back through the
  node-affinity and locality steps);
- :class:`Error`: reply with that error.

The rules, in order (Ray's defaults):

1. Node affinity to another node: spill there while it is alive (asking the
   GCS once when the heartbeat view does not know it yet); a dead or
   unknown node is an error unless the affinity is soft.
2. A demand this node can never provide goes to a node that can (the
   emptiest); with none, it waits a heartbeat and looks again. Hard
   affinity to this node makes it an error instead.
3. Locality (``preferred_node_id``, default strategy only): spill to the
   node holding the task's arguments when that node could ever run it.
4. SPREAD: round-robin over the live nodes that could run it, by node id.
5. Default strategy, Ray's hybrid policy: once this node is busier than
   the spread threshold (half of what the task asks for, e.g. its CPUs),
   a less loaded node with room now takes it.
6. Fits here now and nobody waits ahead: grant. Otherwise spill to a node
   with room now (not when affinity pins it here, hard or soft), or queue
   here: a bounded wait, then this spill check again (the queue, not a new
   decision, hands out this node's resources).

A request spilled here (``grant_or_reject``) skips the locality, SPREAD
and room-elsewhere spills: it is granted here or waits here (only steps 1
and 2, which concern nodes that cannot run it at all, may still send it on),
until it has waited in the queue here once: then a node with room now takes
it (one that joined meanwhile, such as a node the autoscaler launched for
this very work, must not sit idle while the work queues elsewhere).

Placement-group leases draw from the group's bundles instead:
:func:`decide_bundle_lease` decides from whether a bundle here could take
the demand and, when needed, from the GCS's answer of where the group's
bundles are (:func:`bundle_lookup` reads that answer).

No gRPC, no asyncio, no I/O: ``tests/unit/test_decide_lease.py`` pins the
rules in a table.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from jray._private import config
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import gcs_pb2 as gpb
from jray._private.raylet.scheduler import NodeResources, pick_remote
from jray._private.resources import fits

if TYPE_CHECKING:
    from jray._private.protocol import raylet_pb2 as rpb

SP = cpb.SchedulingStrategy

# What a Wait waits for; the decision resumes after it (``LeaseRequest.resumed``).
WaitReason = Literal[
    "view",       # ask the GCS for the node table (the heartbeat view lags a beat)
    "feasible",   # a heartbeat: no node can run the demand at all yet
    "resources",  # this node's resources: queue for them (a bounded wait)
    "lookup",     # ask the GCS where the placement group's bundles are
    "bundle",     # the group's bundle here is busy: wait until a lease in it ends
    "placement",  # a heartbeat: the group is placed but our view or commit lags
    "pending",    # nothing: the lookup itself waited for the pending group
]


class PeerNode(Protocol):
    """A node as a heartbeat reply describes it (``gpb.NodeInfo`` is one)."""

    @property
    def node_id(self) -> bytes: ...
    @property
    def ip(self) -> str: ...
    @property
    def raylet_port(self) -> int: ...
    @property
    def alive(self) -> bool: ...
    @property
    def resources_total(self) -> Mapping[str, float]: ...
    @property
    def resources_available(self) -> Mapping[str, float]: ...
    @property
    def pending_leases(self) -> int: ...


@dataclass(slots=True)
class LeaseRequest:
    """What the decision reads of a ``WorkerLeaseRequest``."""

    demand: dict[str, float]               # positive amounts only
    kind: int = SP.DEFAULT                  # cpb.SchedulingStrategy.Kind
    node_id: bytes = b""                    # NODE_AFFINITY: the node
    soft: bool = False                      # NODE_AFFINITY: may run elsewhere
    preferred_node_id: bytes = b""          # locality: where the arguments are
    grant_or_reject: bool = False           # spilled here: do not spill again
    placement_group_id: bytes = b""
    bundle_index: int = -1                  # -1: any bundle of the group
    resumed: WaitReason | Literal[""] = ""  # the Wait this request is back from

    @classmethod
    def from_proto(cls, request: rpb.WorkerLeaseRequest) -> LeaseRequest:
        s = request.scheduling
        return cls(demand={k: v for k, v in request.resources.items() if v > 0}, kind=s.kind,
                   node_id=s.node_id, soft=s.soft, preferred_node_id=request.preferred_node_id,
                   grant_or_reject=request.grant_or_reject, placement_group_id=s.placement_group_id,
                   bundle_index=s.bundle_index)


@dataclass(slots=True)
class LeaseView:
    """What the decision reads of the raylet, borrowed (not copied): it is
    taken and used in one synchronous step."""

    node_id: bytes
    resources: NodeResources                      # this node's own (read only here)
    queue_empty: bool = True                      # no request waits for resources here
    nodes: Sequence[PeerNode] = field(default=())  # the last heartbeat's, this node included
    spread_rr: int = 0                            # the SPREAD round-robin counter


@dataclass(slots=True)
class Grant:
    """Take the demand from this node's resources and lease a worker."""

    spread_rr: int | None = None  # the SPREAD counter's new value, when a turn was taken


@dataclass(slots=True)
class Spill:
    """Reply with a spillback to ``node``."""

    node: PeerNode
    spread_rr: int | None = None


@dataclass(slots=True)
class Wait:
    """Wait for ``reason``, then decide again resumed from it."""

    reason: WaitReason
    spread_rr: int | None = None


@dataclass(slots=True)
class Error:
    """Reply with this error: the request can never be served as asked."""

    message: str


Decision = Grant | Spill | Wait | Error


def _alive(nodes: Sequence[PeerNode], node_id: bytes) -> PeerNode | None:
    return next((n for n in nodes if n.node_id == node_id and n.alive), None)


def decide_lease(req: LeaseRequest, view: LeaseView) -> Decision:
    """Where a lease request (not a placement-group one) goes; see the
    module docstring for the rules."""
    demand, here, resumed = req.demand, view.node_id, req.resumed
    if resumed in ("", "view") and req.kind == SP.NODE_AFFINITY and req.node_id and req.node_id != here:
        target = _alive(view.nodes, req.node_id)
        if target is not None:
            return Spill(target)
        if not resumed:
            # The heartbeat view lags the GCS by up to a beat: a node that
            # just joined is not in it yet. Ask the GCS before giving up.
            return Wait("view")
        if not req.soft:
            return Error(f"NodeAffinitySchedulingStrategy: node {req.node_id.hex()} is not alive and soft=False")
    pinned = req.kind == SP.NODE_AFFINITY and req.node_id == here
    if resumed == "resources":
        return _spill_or_queue(req, view, pinned, None)
    # Never runnable here: send it where it can run, or wait for such a node.
    if not view.resources.fits_total(demand):
        if pinned and not req.soft:
            return Error(f"node {here.hex()} can never provide {demand}")
        other = pick_remote(demand, view.nodes, here, now=False)
        return Spill(other) if other is not None else Wait("feasible")
    if (req.preferred_node_id and req.preferred_node_id != here
            and not req.grant_or_reject and req.kind == SP.DEFAULT):
        # Locality: run where the task's large arguments already are.
        target = next((n for n in view.nodes if n.node_id == req.preferred_node_id and n.alive
                       and fits(demand, n.resources_total)), None)
        if target is not None:
            return Spill(target)
    rr = None
    if req.kind == SP.SPREAD and not req.grant_or_reject:
        nodes = [n for n in view.nodes if n.alive and fits(demand, n.resources_total)]
        if len(nodes) > 1:
            rr = view.spread_rr + 1
            target = sorted(nodes, key=lambda n: n.node_id)[rr % len(nodes)]
            if target.node_id != here:
                return Spill(target, rr)
    if (req.kind == SP.DEFAULT and not req.grant_or_reject and not req.soft
            and view.queue_empty and view.resources.fits_now(demand)):
        # Ray's hybrid policy: fill this node up to the spread threshold,
        # then prefer a less loaded node with room now.
        mine = _utilization(demand, view.resources.available, view.resources.total)
        if mine >= config.SCHEDULER_SPREAD_THRESHOLD:
            best = min((n for n in view.nodes if n.alive and n.node_id != here
                        and fits(demand, n.resources_available)),
                       key=lambda n: _utilization(demand, n.resources_available, n.resources_total), default=None)
            if best is not None and _utilization(demand, best.resources_available, best.resources_total) < mine:
                return Spill(best)
    if view.queue_empty and view.resources.fits_now(demand):  # no overtaking the queue
        return Grant(rr)
    return _spill_or_queue(req, view, pinned, rr)


def _utilization(demand: Mapping[str, float], available: Mapping[str, float], total: Mapping[str, float]) -> float:
    """How busy a node is in the resources ``demand`` asks for (the busiest
    of them, 0..1), as Ray's hybrid policy scores nodes."""
    u = 0.0
    for k, v in demand.items():
        t = total.get(k, 0.0)
        if v > 0 and t > 0:
            u = max(u, 1.0 - available.get(k, 0.0) / t)
    return u


def _spill_or_queue(req: LeaseRequest, view: LeaseView, pinned: bool, rr: int | None) -> Decision:
    """No room here now: a node with room now takes it, else it queues here."""
    if not pinned and (not req.grant_or_reject or req.resumed == "resources"):
        other = pick_remote(req.demand, view.nodes, view.node_id, now=True)
        if other is not None:
            return Spill(other, rr)
    return Wait("resources", rr)


def reserve_spilled(node: PeerNode, demand: Mapping[str, float]) -> None:
    """Count a request spilled to ``node`` against its room in this raylet's
    view (a heartbeat reply's ``gpb.NodeInfo``, whose map is writable) until
    the next heartbeat replaces the view, as Ray's cluster resource scheduler
    subtracts what it sent to a remote node. Without it every request spilled
    between two heartbeats goes to the one node the view shows emptiest: a
    burst of tasks then reaches one new node per heartbeat instead of all of
    them (scale_nodes: 9 of 16 nodes used by 800 tasks of 10 ms)."""
    avail: MutableMapping[str, float] = node.resources_available  # type: ignore[assignment]
    for key, amount in demand.items():
        if key in avail:
            avail[key] = max(0.0, avail[key] - amount)


# -- placement groups ------------------------------------------------------------


@dataclass(slots=True)
class BundleLookup:
    """The GCS's answer, read: an error, or the nodes holding a bundle of
    the group that can take the demand (none while the group is pending)."""

    error: str = ""
    nodes: list[bytes] = field(default_factory=list)


def bundle_lookup(found: bool, group: gpb.PlacementGroupInfo, pg_id: bytes, index: int,
                  demand: Mapping[str, float]) -> BundleLookup:
    """Read a ``GetPlacementGroup`` reply (``found``, ``group``) for a lease
    of ``demand`` in bundle ``index`` (-1: any) of group ``pg_id``."""
    name = f"placement group {pg_id.hex()}"
    if not found:
        return BundleLookup(f"{name} does not exist")
    if group.state == gpb.PG_REMOVED:
        return BundleLookup(f"{name} was removed")
    if index >= len(group.bundles):
        return BundleLookup(f"placement_group_bundle_index {index} is out of range: {name} has "
                            f"{len(group.bundles)} bundles")
    chosen = [b for b in group.bundles if index < 0 or b.index == index]
    if not any(fits(demand, b.resources) for b in chosen):
        where = "any bundle" if index < 0 else f"bundle {index}"
        return BundleLookup(f"the request {demand} does not fit in {where} of {name} "
                            f"(bundles: {[dict(b.resources) for b in chosen]})")
    nodes = [b.node_id for b in chosen if b.node_id and fits(demand, b.resources)]
    return BundleLookup("", list(dict.fromkeys(nodes)))


def decide_bundle_lease(req: LeaseRequest, here: bool, lookup: BundleLookup | None,
                        view: LeaseView) -> Spill | Wait | Error:
    """Where a placement-group lease goes once this node's bundles could not
    take it right now (the servicer tries them first).

    ``here``: a committed bundle of the group on this node could take the
    demand were it free. Without ``lookup`` the answer is to wait for that
    bundle (a named bundle, or a request spilled here) or to ask the GCS
    (``Wait("lookup")``); with the GCS's answer: an error, a spill to another
    node holding a fitting bundle (round-robin), or a wait.
    """
    if lookup is None:
        if here and (req.bundle_index >= 0 or req.grant_or_reject):
            return Wait("bundle")  # our bundle is busy: wait for it to free up
        return Wait("lookup")
    if lookup.error:
        return Error(lookup.error)
    rr = None
    others = [n for n in lookup.nodes if n != view.node_id]
    if others:
        rr = view.spread_rr + 1
        target = _alive(view.nodes, others[rr % len(others)])
        if target is not None:
            return Spill(target, rr)
    if here:
        return Wait("bundle", rr)
    if lookup.nodes:  # placed, but our view or our commit lags: look again shortly
        return Wait("placement", rr)
    return Wait("pending", rr)
