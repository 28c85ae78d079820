"""The raylet's lease decision, as a table: request + view -> decision.

No raylet, no sockets: ``decide_lease`` is a pure function of a
``LeaseRequest`` and a ``LeaseView``. The cluster is three nodes: ``HERE``
(the raylet deciding), ``B`` and ``C``, plus ``DEAD`` (in the view, not
alive) and ``UNKNOWN`` (not in the view at all).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import gcs_pb2 as gpb
from jray._private.protocol import raylet_pb2 as rpb
from jray._private.raylet.lease_policy import (
    BundleLookup,
    Error,
    Grant,
    LeaseRequest,
    LeaseView,
    Spill,
    Wait,
    bundle_lookup,
    decide_bundle_lease,
    decide_lease,
    reserve_spilled,
)
from jray._private.raylet.scheduler import NodeResources

SP = cpb.SchedulingStrategy


@dataclass(frozen=True)
class Node:
    """A node as a heartbeat reply describes it."""

    node_id: bytes
    resources_total: dict[str, float]
    resources_available: dict[str, float]
    alive: bool = True
    ip: str = "10.0.0.1"
    raylet_port: int = 7000
    pending_leases: int = 0
    labels: dict[str, str] = field(default_factory=dict)


HERE_ID, B_ID, C_ID, DEAD_ID, UNKNOWN_ID = b"\x0a" * 4, b"\x0b" * 4, b"\x0c" * 4, b"\x0d" * 4, b"\x0e" * 4
HERE = Node(HERE_ID, {"CPU": 2}, {"CPU": 2})
B = Node(B_ID, {"CPU": 4, "GPU": 1}, {"CPU": 4, "GPU": 1}, ip="10.0.0.2")
C = Node(C_ID, {"CPU": 8}, {"CPU": 1}, ip="10.0.0.3")
DEAD = Node(DEAD_ID, {"CPU": 64}, {"CPU": 64}, alive=False)
B_BUSY = Node(B_ID, {"CPU": 4, "GPU": 1}, {"CPU": 0, "GPU": 1}, ip="10.0.0.2")
C_BUSY = Node(C_ID, {"CPU": 8}, {"CPU": 0}, ip="10.0.0.3")
SMALL_ID = b"\x05" * 4
SMALL = Node(SMALL_ID, {"CPU": 1}, {"CPU": 1}, ip="10.0.0.5")
CLUSTER = (HERE, B, C, DEAD)


def view(*, used: float = 0, nodes: tuple[Node, ...] = CLUSTER, queue_empty: bool = True,
         spread_rr: int = 0) -> LeaseView:
    """This node has 2 CPUs, ``used`` of them leased."""
    res = NodeResources({"CPU": 2})
    if used:
        assert res.acquire({"CPU": used}) is not None
    return LeaseView(HERE_ID, res, queue_empty, nodes, spread_rr)


def req(demand: dict[str, float] | None = None, **kw: object) -> LeaseRequest:
    return LeaseRequest(demand={"CPU": 1} if demand is None else demand, **kw)  # type: ignore[arg-type]


NA, SPREAD = SP.NODE_AFFINITY, SP.SPREAD

CASES = [
    # -- the default strategy ---------------------------------------------------
    ("fits here now: granted here", req(), view(), Grant()),
    ("fractional CPUs add up with float slack", req({"CPU": 0.1}), view(used=1.9, nodes=(HERE, B_BUSY, C_BUSY)),
     Grant()),
    # Ray's hybrid policy: this node past half busy sends work to a less loaded one with room
    ("under half busy here: granted here though B is idle", req({"CPU": 0.5}), view(used=0.5), Grant()),
    ("half busy here, B idle: hybrid sends it to B", req(), view(used=1), Spill(B)),
    ("half busy here, the others busier: granted here", req(), view(used=1, nodes=(HERE, C)), Grant()),
    ("half busy here, pinned softly here: granted here", req(kind=NA, node_id=HERE_ID, soft=True), view(used=1),
     Grant()),
    ("half busy here, spilled here: granted here", req(grant_or_reject=True), view(used=1), Grant()),
    ("zero-CPU demand: never spread by load", req({}), view(used=2), Grant()),
    ("busy here, room on C and B: the emptiest (B) takes it", req(), view(used=2), Spill(B)),
    ("busy here, no room elsewhere: queue here", req(), view(used=2, nodes=(HERE, B_BUSY, C_BUSY)),
     Wait("resources")),
    ("spilled here (grant_or_reject): queue, never spill again", req(grant_or_reject=True), view(used=2),
     Wait("resources")),
    ("spilled here, queued here a while, room on B now (a new node): B takes it",
     req(grant_or_reject=True, resumed="resources"), view(used=2), Spill(B)),
    ("spilled here, queued here a while, no room elsewhere: queue on", req(grant_or_reject=True, resumed="resources"),
     view(used=2, nodes=(HERE, B_BUSY, C_BUSY)), Wait("resources")),
    ("others queue here already: no overtaking them, room elsewhere wins", req(), view(queue_empty=False),
     Spill(B)),
    ("others queue here, no room elsewhere: queue behind them", req(),
     view(queue_empty=False, nodes=(HERE, B_BUSY, C_BUSY)), Wait("resources")),
    ("a dead node's room does not count", req({"CPU": 32}), view(nodes=(HERE, DEAD)), Wait("feasible")),
    # -- infeasible here -------------------------------------------------------------
    ("more than this node has: to the node that could ever run it", req({"GPU": 1}), view(), Spill(B)),
    ("... even when that node is busy now", req({"CPU": 3}), view(nodes=(HERE, B_BUSY)), Spill(B_BUSY)),
    ("... several could: the one with most CPU free now", req({"CPU": 3}), view(), Spill(B)),
    ("... even a request spilled here moves on", req({"GPU": 1}, grant_or_reject=True), view(), Spill(B)),
    ("no node could ever run it: wait a heartbeat and look again", req({"TPU": 1}), view(), Wait("feasible")),
    ("back from that wait, still nothing: wait again", req({"TPU": 1}, resumed="feasible"), view(),
     Wait("feasible")),
    ("back from that wait, a node joined: spill to it",
     req({"TPU": 1}, resumed="feasible"), view(nodes=(HERE, Node(b"\x0f" * 4, {"TPU": 1}, {"TPU": 1}))),
     Spill(Node(b"\x0f" * 4, {"TPU": 1}, {"TPU": 1}))),
    # -- node affinity -----------------------------------------------------------------
    ("hard affinity to this node: granted here", req(kind=NA, node_id=HERE_ID), view(), Grant()),
    ("hard affinity to this node, busy: queue here although B has room",
     req(kind=NA, node_id=HERE_ID), view(used=2), Wait("resources")),
    ("soft affinity to this node, busy: queue here too", req(kind=NA, node_id=HERE_ID, soft=True),
     view(used=2), Wait("resources")),
    ("hard affinity to this node, which can never run it: error",
     req({"CPU": 3}, kind=NA, node_id=HERE_ID), view(),
     Error("node 0a0a0a0a can never provide {'CPU': 3}")),
    ("soft affinity to this node, which can never run it: to a node that can",
     req({"CPU": 3}, kind=NA, node_id=HERE_ID, soft=True), view(), Spill(B)),
    ("hard affinity to another live node: spill there", req(kind=NA, node_id=C_ID), view(), Spill(C)),
    ("... even if this node has room and C has none", req(kind=NA, node_id=C_ID), view(nodes=(HERE, C_BUSY)),
     Spill(C_BUSY)),
    ("... and even when spilled here", req(kind=NA, node_id=C_ID, grant_or_reject=True), view(), Spill(C)),
    ("soft affinity to another live node: spill there", req(kind=NA, node_id=C_ID, soft=True), view(), Spill(C)),
    ("affinity to a dead node: first ask the GCS for a fresh view", req(kind=NA, node_id=DEAD_ID), view(),
     Wait("view")),
    ("affinity to an unknown node: first ask the GCS too", req(kind=NA, node_id=UNKNOWN_ID), view(),
     Wait("view")),
    ("hard affinity to a dead node after the fresh view: error", req(kind=NA, node_id=DEAD_ID, resumed="view"),
     view(), Error(f"NodeAffinitySchedulingStrategy: node {DEAD_ID.hex()} is not alive and soft=False")),
    ("hard affinity to an unknown node after the fresh view: error",
     req(kind=NA, node_id=UNKNOWN_ID, resumed="view"), view(),
     Error(f"NodeAffinitySchedulingStrategy: node {UNKNOWN_ID.hex()} is not alive and soft=False")),
    ("the fresh view knows the node (it just joined): spill there",
     req(kind=NA, node_id=UNKNOWN_ID, resumed="view"), view(nodes=(HERE, Node(UNKNOWN_ID, {"CPU": 1}, {}))),
     Spill(Node(UNKNOWN_ID, {"CPU": 1}, {}))),
    ("soft affinity to a dead node: runs like a default request (here)",
     req(kind=NA, node_id=DEAD_ID, soft=True, resumed="view"), view(), Grant()),
    ("soft affinity to a dead node, busy here: spills like a default request",
     req(kind=NA, node_id=DEAD_ID, soft=True, resumed="view"), view(used=2), Spill(B)),
    # -- SPREAD ------------------------------------------------------------------------
    ("SPREAD: the next live node that could run it, by node id (turn 1: B)", req(kind=SPREAD),
     view(spread_rr=0), Spill(B, spread_rr=1)),
    ("SPREAD turn 2: C", req(kind=SPREAD), view(spread_rr=1), Spill(C, spread_rr=2)),
    ("SPREAD goes by node id, not by the view's order", req(kind=SPREAD), view(nodes=(C, B, HERE), spread_rr=1),
     Spill(C, spread_rr=2)),
    ("SPREAD turn 3: this node, granted here", req(kind=SPREAD), view(spread_rr=2), Grant(spread_rr=3)),
    ("SPREAD turn 3, busy here: room elsewhere still wins", req(kind=SPREAD), view(spread_rr=2, used=2),
     Spill(B, spread_rr=3)),
    ("SPREAD counts only live nodes that could run it (here, B): turn 1 is B",
     req({"CPU": 2}, kind=SPREAD), view(nodes=(SMALL, HERE, DEAD, B)), Spill(B, spread_rr=1)),
    ("... and turn 2 this node", req({"CPU": 2}, kind=SPREAD), view(nodes=(SMALL, HERE, DEAD, B), spread_rr=1),
     Grant(spread_rr=2)),
    ("SPREAD, this node could never run it: to the emptiest node that could, no turn taken",
     req({"CPU": 3}, kind=SPREAD), view(), Spill(B)),
    ("SPREAD with one node able to run it: no turn is taken", req({"CPU": 2}, kind=SPREAD),
     view(nodes=(HERE, Node(B_ID, {"CPU": 1}, {"CPU": 1}))), Grant()),
    ("SPREAD spilled here: granted here, no turn taken", req(kind=SPREAD, grant_or_reject=True), view(),
     Grant()),
    # -- locality ------------------------------------------------------------------------
    ("arguments on C, which could run it: spill there although this node has room",
     req(preferred_node_id=C_ID), view(), Spill(C)),
    ("... even when C is busy now (it is a preference for the node)", req(preferred_node_id=C_ID),
     view(nodes=(HERE, C_BUSY)), Spill(C_BUSY)),
    ("arguments on a node too small to ever run it: stay here", req({"CPU": 2}, preferred_node_id=SMALL_ID),
     view(nodes=(HERE, SMALL)), Grant()),
    ("arguments here: stay", req(preferred_node_id=HERE_ID), view(), Grant()),
    ("arguments on a dead node: stay", req(preferred_node_id=DEAD_ID), view(), Grant()),
    ("arguments on C, but spilled here: granted here", req(preferred_node_id=C_ID, grant_or_reject=True),
     view(), Grant()),
    ("arguments on C, SPREAD request: SPREAD rules, not locality", req(kind=SPREAD, preferred_node_id=C_ID),
     view(spread_rr=2), Grant(spread_rr=3)),
    ("arguments on C, affinity to this node: stay", req(kind=NA, node_id=HERE_ID, preferred_node_id=C_ID),
     view(), Grant()),
    # -- zero resources --------------------------------------------------------------------
    ("a zero-resource request runs here even with every CPU leased", req({}), view(used=2), Grant()),
    ("a zero-resource request spilled here is granted", req({}, grant_or_reject=True), view(used=2), Grant()),
    ("a zero-resource request still follows locality", req({}, preferred_node_id=C_ID), view(), Spill(C)),
    # -- back from a wait in the queue ------------------------------------------------------
    ("back from the queue: a node with room now takes it", req(resumed="resources"), view(used=2), Spill(B)),
    ("back from the queue, no room anywhere: queue again", req(resumed="resources"),
     view(used=2, nodes=(HERE, B_BUSY, C_BUSY)), Wait("resources")),
    ("back from the queue: resources here are the queue's to hand out, not a grant",
     req(resumed="resources"), view(nodes=(HERE, B_BUSY, C_BUSY)), Wait("resources")),
    ("back from the queue: locality is not looked at again", req(preferred_node_id=C_ID, resumed="resources"),
     view(nodes=(HERE, B_BUSY, C_BUSY)), Wait("resources")),
    ("back from the queue, pinned here: queue again", req(kind=NA, node_id=HERE_ID, resumed="resources"),
     view(used=2), Wait("resources")),
]


@pytest.mark.parametrize("request_, view_, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decide_lease(request_: LeaseRequest, view_: LeaseView, expected: object) -> None:
    assert decide_lease(request_, view_) == expected


def test_the_view_is_only_read() -> None:
    v = view(used=1)
    before = (dict(v.resources.available), dict(v.resources.gpu_free), v.spread_rr)
    decide_lease(req(kind=SPREAD), v)
    assert (dict(v.resources.available), dict(v.resources.gpu_free), v.spread_rr) == before


def test_a_fraction_of_a_gpu_needs_one_device_with_room() -> None:
    """0.6 GPU leased on each of two GPUs: 0.8 GPU is free in all, but no
    device has 0.7 free, so 0.7 does not fit now (0.4 does)."""
    res = NodeResources({"CPU": 4, "GPU": 2})
    assert res.acquire({"GPU": 0.6}) is not None and res.acquire({"GPU": 0.6}) is not None
    v = LeaseView(HERE_ID, res, True, (HERE,), 0)
    assert decide_lease(req({"GPU": 0.7}), v) == Wait("resources")
    assert decide_lease(req({"GPU": 0.4}), v) == Grant()


def test_from_proto_drops_zero_amounts_and_reads_the_strategy() -> None:
    r = rpb.WorkerLeaseRequest(resources={"CPU": 0, "GPU": 1}, grant_or_reject=True, preferred_node_id=C_ID,
                               scheduling=cpb.SchedulingStrategy(kind=NA, node_id=B_ID, soft=True))
    assert LeaseRequest.from_proto(r) == LeaseRequest(
        demand={"GPU": 1}, kind=NA, node_id=B_ID, soft=True, preferred_node_id=C_ID, grant_or_reject=True,
        bundle_index=0)


def test_the_spillback_reply_names_the_node() -> None:
    from jray._private.raylet.server import _spill

    d = decide_lease(req(kind=NA, node_id=B_ID), view())
    assert isinstance(d, Spill)
    reply = _spill(d.node)
    assert (reply.spillback, reply.retry_at_ip, reply.retry_at_port, reply.retry_at_node_id) == (
        True, "10.0.0.2", 7000, B_ID)


# -- placement-group leases ----------------------------------------------------------

PG = b"\x01" * 16


def pg_req(index: int = -1, demand: dict[str, float] | None = None, **kw: object) -> LeaseRequest:
    return LeaseRequest(demand={"CPU": 1} if demand is None else demand, kind=SP.PLACEMENT_GROUP,
                        placement_group_id=PG, bundle_index=index, **kw)  # type: ignore[arg-type]


BUNDLE_CASES = [
    ("our named bundle is busy: wait for it", pg_req(0), True, None, view(), Wait("bundle")),
    ("any bundle, ours busy: ask the GCS where the others are", pg_req(-1), True, None, view(), Wait("lookup")),
    ("any bundle, spilled here, ours busy: wait for ours", pg_req(-1, grant_or_reject=True), True, None, view(),
     Wait("bundle")),
    ("no fitting bundle here: ask the GCS", pg_req(0), False, None, view(), Wait("lookup")),
    ("the GCS says no: that error", pg_req(0), False, BundleLookup("placement group 01 was removed"), view(),
     Error("placement group 01 was removed")),
    ("the bundle is on B: spill there", pg_req(0), False, BundleLookup("", [B_ID]), view(), Spill(B, spread_rr=1)),
    ("bundles on B and C: round-robin over them", pg_req(-1), False, BundleLookup("", [B_ID, C_ID]),
     view(spread_rr=0), Spill(C, spread_rr=1)),
    ("bundles here and on B, ours busy: to B", pg_req(-1), True, BundleLookup("", [HERE_ID, B_ID]), view(),
     Spill(B, spread_rr=1)),
    ("only here, ours busy: wait for ours", pg_req(-1), True, BundleLookup("", [HERE_ID]), view(),
     Wait("bundle")),
    ("placed here by the GCS but not committed here yet: look again after a beat", pg_req(0), False,
     BundleLookup("", [HERE_ID]), view(), Wait("placement")),
    ("placed on a node our view does not know yet: look again after a beat", pg_req(0), False,
     BundleLookup("", [UNKNOWN_ID]), view(), Wait("placement", spread_rr=1)),
    ("placed on a node our view has dead: look again after a beat", pg_req(0), False,
     BundleLookup("", [DEAD_ID]), view(), Wait("placement", spread_rr=1)),
    ("the group is pending (the lookup waited): look again at once", pg_req(0), False, BundleLookup(), view(),
     Wait("pending")),
]


@pytest.mark.parametrize("request_, here, lookup, view_, expected", [c[1:] for c in BUNDLE_CASES],
                         ids=[c[0] for c in BUNDLE_CASES])
def test_decide_bundle_lease(request_: LeaseRequest, here: bool, lookup: BundleLookup | None, view_: LeaseView,
                             expected: object) -> None:
    assert decide_bundle_lease(request_, here, lookup, view_) == expected


def _group(state: int = gpb.PG_CREATED, nodes: tuple[bytes, ...] = (B_ID, C_ID, B_ID),
           cpus: tuple[float, ...] = (1, 2, 2)) -> gpb.PlacementGroupInfo:
    return gpb.PlacementGroupInfo(placement_group_id=PG, state=state, bundles=[  # type: ignore[arg-type]
        cpb.Bundle(placement_group_id=PG, index=i, node_id=n, resources={"CPU": c})
        for i, (n, c) in enumerate(zip(nodes, cpus, strict=True))])


NAME = f"placement group {PG.hex()}"
LOOKUP_CASES = [
    ("unknown group", False, _group(), 0, {"CPU": 1}, BundleLookup(f"{NAME} does not exist")),
    ("removed group", True, _group(gpb.PG_REMOVED), 0, {"CPU": 1}, BundleLookup(f"{NAME} was removed")),
    ("index out of range", True, _group(), 3, {"CPU": 1},
     BundleLookup(f"placement_group_bundle_index 3 is out of range: {NAME} has 3 bundles")),
    ("too big for the named bundle", True, _group(), 0, {"CPU": 2},
     BundleLookup(f"the request {{'CPU': 2}} does not fit in bundle 0 of {NAME} (bundles: [{{'CPU': 1.0}}])")),
    ("too big for any bundle", True, _group(), -1, {"CPU": 3},
     BundleLookup(f"the request {{'CPU': 3}} does not fit in any bundle of {NAME} "
                  "(bundles: [{'CPU': 1.0}, {'CPU': 2.0}, {'CPU': 2.0}])")),
    ("the named bundle's node", True, _group(), 1, {"CPU": 1}, BundleLookup("", [C_ID])),
    ("any bundle: the nodes of those it fits, once each, in bundle order", True, _group(), -1, {"CPU": 2},
     BundleLookup("", [C_ID, B_ID])),
    ("pending: fits, but no node yet", True, _group(gpb.PG_PENDING, nodes=(b"", b"", b"")), -1, {"CPU": 1},
     BundleLookup("", [])),
]


@pytest.mark.parametrize("found, group, index, demand, expected", [c[1:] for c in LOOKUP_CASES],
                         ids=[c[0] for c in LOOKUP_CASES])
def test_bundle_lookup(found: bool, group: gpb.PlacementGroupInfo, index: int, demand: dict[str, float],
                       expected: BundleLookup) -> None:
    assert bundle_lookup(found, group, PG, index, demand) == expected


def test_requests_spilled_between_heartbeats_go_to_different_nodes() -> None:
    # This node full, three idle 1-CPU nodes in the view: each spill counts
    # against its target until the next heartbeat, so a burst spreads over
    # all three, then queues here (it used to send all of them to the first).
    def idle(i: int) -> gpb.NodeInfo:
        return gpb.NodeInfo(node_id=bytes([i]) * 4, alive=True, ip=f"10.0.1.{i}", raylet_port=7000,
                            resources_total={"CPU": 1}, resources_available={"CPU": 1})

    nodes = (gpb.NodeInfo(node_id=HERE_ID, alive=True, resources_total={"CPU": 2},
                          resources_available={"CPU": 0}), idle(1), idle(2), idle(3))
    v = view(used=2, nodes=nodes)  # type: ignore[arg-type]
    targets = []
    for _ in range(3):
        d = decide_lease(req(), v)
        assert isinstance(d, Spill)
        reserve_spilled(d.node, {"CPU": 1, "memory": 5})  # a resource the view lacks is left alone
        targets.append(d.node.node_id)
    assert sorted(targets) == [bytes([i]) * 4 for i in (1, 2, 3)]
    assert decide_lease(req(), v) == Wait("resources")
    assert dict(nodes[1].resources_available) == {"CPU": 0.0}
