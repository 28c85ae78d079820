"""Placement-group logic without sockets: bundles carved out of a node's
resources, bundle placement for the four strategies, input validation."""

import pytest

from jray._private.gcs.placement_groups import place, validate_bundles
from jray._private.raylet.bundles import BundleTable
from jray._private.raylet.scheduler import NodeResources

PG, OTHER = b"p" * 16, b"q" * 16


def test_prepare_carves_out_and_cancel_gives_back():
    node = NodeResources({"CPU": 4, "GPU": 2})
    t = BundleTable(node)
    assert t.prepare([(PG, 0, {"CPU": 2, "GPU": 1}), (PG, 1, {"CPU": 1})])
    assert node.available == {"CPU": 1, "GPU": 1}
    assert node.acquire({"CPU": 2}) is None          # normal leases cannot touch bundles
    assert t.local(PG, -1) == []                      # prepared is not yet usable
    assert t.commit(PG, [0, 1]) and not t.commit(PG, [7])
    assert [b.index for b in t.local(PG, -1)] == [0, 1]
    assert t.prepare([(PG, 0, {"CPU": 2})])           # idempotent: kept as it was
    assert node.available == {"CPU": 1, "GPU": 1}
    assert len(t.cancel(PG)) == 2
    assert node.available == {"CPU": 4, "GPU": 2} and node.gpu_free == {0: 1.0, 1: 1.0}


def test_prepare_is_all_or_nothing():
    node = NodeResources({"CPU": 2})
    t = BundleTable(node)
    assert not t.prepare([(PG, 0, {"CPU": 1}), (PG, 1, {"CPU": 1}), (PG, 2, {"CPU": 1})])
    assert node.available == {"CPU": 2} and t.bundles == {}


def test_leases_draw_from_their_bundle_with_its_gpu_ids():
    node = NodeResources({"CPU": 4, "GPU": 2})
    t = BundleTable(node)
    node.acquire({"GPU": 1})                          # GPU 0 busy: the bundle gets GPU 1
    assert t.prepare([(PG, 0, {"CPU": 2, "GPU": 1}), (OTHER, 0, {"CPU": 1})])
    t.commit(PG, [0])
    t.commit(OTHER, [0])
    got = t.acquire(PG, 0, {"CPU": 1, "GPU": 1})
    assert got is not None and got[1].gpu_ids == [1]
    assert t.acquire(PG, 0, {"GPU": 1}) is None       # the bundle's GPU is taken
    second = t.acquire(PG, -1, {"CPU": 1})
    assert second is not None and second[0].index == 0
    assert t.acquire(PG, -1, {"CPU": 1}) is None      # other groups' bundles are not ours
    bundle, alloc = got
    bundle.pool.release(alloc)
    assert t.acquire(PG, 0, {"GPU": 1}) is not None
    assert t.acquire(PG, 0, {"CPU": 3}) is None and not bundle.fits_total({"CPU": 3})


def test_blocked_worker_lends_cpu_inside_its_bundle():
    node = NodeResources({"CPU": 2})
    t = BundleTable(node)
    t.prepare([(PG, 0, {"CPU": 1})])
    t.commit(PG, [0])
    bundle, parent = t.acquire(PG, 0, {"CPU": 1})
    bundle.pool.lend_cpu(parent)
    assert t.acquire(PG, 0, {"CPU": 1}) is not None   # the nested task runs in the same bundle
    assert node.available == {"CPU": 1}


NODES = {b"a": {"CPU": 2}, b"b": {"CPU": 2}, b"c": {"CPU": 1}}


def test_strict_pack_and_pack():
    two = [{"CPU": 1}, {"CPU": 1}]
    plan = place(two, "STRICT_PACK", NODES)
    assert plan is not None and len(set(plan.values())) == 1
    assert place([{"CPU": 2}, {"CPU": 1}], "STRICT_PACK", NODES) is None
    plan = place([{"CPU": 2}, {"CPU": 1}], "PACK", NODES)
    assert plan is not None and len(set(plan.values())) == 2
    plan = place(two, "PACK", NODES)
    assert len(set(plan.values())) == 1
    assert place([{"CPU": 3}], "PACK", NODES) is None


def test_spread_and_strict_spread():
    three = [{"CPU": 1}] * 3
    assert len(set(place(three, "STRICT_SPREAD", NODES).values())) == 3
    assert place([{"CPU": 1}] * 4, "STRICT_SPREAD", NODES) is None
    plan = place([{"CPU": 1}] * 4, "SPREAD", NODES)   # best effort: shares nodes when it must
    assert plan is not None and len(set(plan.values())) == 3
    assert place([{"GPU": 1}], "SPREAD", NODES) is None


def test_rescheduling_keeps_the_survivors_and_the_strategy():
    bundles = [{"CPU": 1}] * 3
    # Bundle 1 was on a dead node: STRICT_SPREAD must avoid the nodes still holding 0 and 2.
    plan = place(bundles, "STRICT_SPREAD", {b"a": {"CPU": 1}, b"b": {"CPU": 1}, b"d": {"CPU": 1}},
                 fixed={0: b"a", 2: b"b"})
    assert plan == {1: b"d"}
    assert place(bundles, "STRICT_PACK", {b"a": {"CPU": 0}, b"d": {"CPU": 3}}, fixed={0: b"a", 2: b"a"}) is None
    assert place(bundles, "STRICT_PACK", {b"a": {"CPU": 1}, b"d": {"CPU": 3}},
                 fixed={0: b"a", 2: b"a"}) == {1: b"a"}


@pytest.mark.parametrize("bundles, strategy, message", [
    ([], "PACK", "empty"),
    ([{"CPU": 0}], "PACK", "Bundle 0 .* reserves nothing"),
    ([{"CPU": 1}, {}], "PACK", "Bundle 1 .* reserves nothing"),
    ([{"CPU": 1}], "DENSE", "strategy 'DENSE'"),
    ([{"CPU": "1"}], "PACK", "non-negative numbers"),
    ([{1: 1}], "PACK", "resource name"),
    ([["CPU", 1]], "PACK", "Bundle 0 .* dict"),
])
def test_validation_names_the_problem(bundles, strategy, message):
    with pytest.raises(ValueError, match=message):
        validate_bundles(bundles, strategy)


def test_validation_drops_zero_entries():
    assert validate_bundles([{"CPU": 1, "GPU": 0}], "SPREAD") == [{"CPU": 1.0}]


def test_table_names_node_death_and_bounded_history():
    from jray._private.gcs import placement_groups as pgs
    from jray._private.protocol import common_pb2 as cpb
    from jray._private.protocol import gcs_pb2 as gpb

    t = pgs.PlacementGroupTable()
    info = gpb.PlacementGroupInfo(placement_group_id=PG, name="x", namespace="ns", strategy="SPREAD",
                                  bundles=[cpb.Bundle(index=0, node_id=b"a"), cpb.Bundle(index=1, node_id=b"b")])
    rec = t.add(info)
    t.set_state(rec, gpb.PG_CREATED)
    assert t.lookup_name("ns", "x") is rec and t.lookup_name("other", "x") is None
    assert t.on_node_dead(b"a") == [rec]
    assert rec.info.state == gpb.PG_RESCHEDULING and rec.fixed() == {1: b"b"} and t.unplaced() == [rec]
    t.set_state(rec, gpb.PG_REMOVED)
    assert t.lookup_name("ns", "x") is None and t.unplaced() == []
    for i in range(pgs.MAX_REMOVED_KEPT):
        r = t.add(gpb.PlacementGroupInfo(placement_group_id=i.to_bytes(16, "little")))
        t.set_state(r, gpb.PG_REMOVED)
    assert PG not in t.groups and len(t.groups) == pgs.MAX_REMOVED_KEPT
