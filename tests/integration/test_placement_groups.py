"""Placement groups on real clusters: reservation, tasks and actors in
bundles on the right nodes, the four strategies, pending groups that wait
for a node, rescheduling after a node dies, removal."""

from __future__ import annotations

import time

import pytest

import jray
from jray import exceptions
from jray.testing import Cluster
from jray.util import (
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)
from jray.util.scheduling_strategies import PlacementGroupSchedulingStrategy as InGroup


def _until(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.05)


def _cpus():
    return jray.available_resources().get("CPU", 0.0)


@jray.remote
def where():
    pg = get_current_placement_group()
    return jray.get_runtime_context().get_node_id(), (pg.id.hex() if pg else None)


@jray.remote
class Probe:
    def where(self):
        ctx = jray.get_runtime_context()
        return ctx.get_node_id(), ctx.get_placement_group_id()


@pytest.fixture
def one_node():
    if jray.is_initialized():
        jray.shutdown()
    jray.init(num_cpus=2, object_store_memory=64 * 1024 * 1024)
    yield
    jray.shutdown()


def test_bad_input_is_a_value_error_naming_the_problem():
    with pytest.raises(ValueError, match="empty"):
        placement_group([])
    with pytest.raises(ValueError, match="Bundle 1 .* reserves nothing"):
        placement_group([{"CPU": 1}, {"CPU": 0, "GPU": 0}])
    with pytest.raises(ValueError, match="Bundle 0 .* reserves nothing"):
        placement_group([{}])
    with pytest.raises(ValueError, match="strategy 'TIGHT'"):
        placement_group([{"CPU": 1}], strategy="TIGHT")
    with pytest.raises(ValueError, match="non-negative"):
        placement_group([{"CPU": -1}])
    with pytest.raises(ValueError, match="list of dicts"):
        placement_group({"CPU": 1})
    with pytest.raises(ValueError, match="lifetime"):
        placement_group([{"CPU": 1}], lifetime="forever")


def test_pack_reserves_runs_in_bundles_and_removal_frees(one_node):
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="PACK", name="trainers")
    assert jray.get(pg.ready(), timeout=10) == pg
    assert pg.wait(5) and pg.bundle_count == 2 and pg.bundle_specs == [{"CPU": 1.0}, {"CPU": 1.0}]
    _until(lambda: _cpus() == 0, what="both CPUs reserved")
    table = placement_group_table(pg)
    assert table["state"] == "CREATED" and table["strategy"] == "PACK"
    assert table["bundles"] == {0: {"CPU": 1.0}, 1: {"CPU": 1.0}}
    assert len(set(table["bundles_to_node_id"].values())) == 1
    assert pg.id.hex() in placement_group_table()
    assert get_placement_group("trainers") == pg

    # Tasks and actors run in the bundles (new and older option styles); the
    # task that asks for a plain CPU waits: the node's CPUs are all reserved.
    node, in_pg = jray.get(where.options(scheduling_strategy=InGroup(pg, 0)).remote(), timeout=10)
    assert in_pg == pg.id.hex() and node == table["bundles_to_node_id"][0]
    assert jray.get(where.options(placement_group=pg, placement_group_bundle_index=1).remote(),
                    timeout=10)[1] == pg.id.hex()
    actor = Probe.options(num_cpus=1, scheduling_strategy=InGroup(pg, 1)).remote()
    assert jray.get(actor.where.remote(), timeout=10)[1] == pg.id.hex()
    outside = where.remote()
    ready, _ = jray.wait([outside], timeout=0.5)
    assert ready == [] and jray.get(where.options(num_cpus=0).remote(), timeout=10)[1] is None

    # Demands that can never fit the bundle fail at submission.
    with pytest.raises(ValueError, match="cannot fit in bundle 0"):
        where.options(num_cpus=2, scheduling_strategy=InGroup(pg, 0)).remote()
    with pytest.raises(ValueError, match="placement_group_bundle_index"):
        where.options(scheduling_strategy=InGroup(pg, 2)).remote()

    remove_placement_group(pg)
    with pytest.raises(exceptions.ActorDiedError, match="placement group .* was removed"):
        jray.get(actor.where.remote(), timeout=10)
    assert jray.get(outside, timeout=10)[1] is None
    _until(lambda: _cpus() == 2, what="CPUs returned")
    assert placement_group_table(pg)["state"] == "REMOVED"
    with pytest.raises(exceptions.TaskPlacementGroupRemoved):
        jray.get(pg.ready(), timeout=10)
    with pytest.raises(ValueError, match="trainers"):
        get_placement_group("trainers")


def test_strict_pack_waits_capture_child_tasks(one_node):
    too_big = placement_group([{"CPU": 2}, {"CPU": 1}], strategy="STRICT_PACK")
    assert not too_big.wait(0.5)
    assert placement_group_table(too_big)["state"] == "PENDING"
    remove_placement_group(too_big)

    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_PACK")

    @jray.remote
    def parent(child_cpus):
        return jray.get(where.options(num_cpus=child_cpus).remote(), timeout=10)[1]

    # A captured child runs in the group (here in the bundle its blocked parent lends);
    # without capture it runs outside (with 0 CPUs: the group holds them all).
    strategy = InGroup(pg, placement_group_capture_child_tasks=True)
    assert jray.get(parent.options(scheduling_strategy=strategy).remote(1), timeout=20) == pg.id.hex()
    assert jray.get(parent.options(scheduling_strategy=InGroup(pg)).remote(0), timeout=20) is None
    remove_placement_group(pg)


def test_spread_pack_and_strict_spread_across_nodes():
    with Cluster(head_node_args={"num_cpus": 1}) as cluster:
        cluster.add_node(num_cpus=1)
        cluster.connect()

        # SPREAD: one bundle per node; tasks and actors land on their bundle's node.
        pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="SPREAD")
        jray.get(pg.ready(), timeout=10)
        homes = placement_group_table(pg)["bundles_to_node_id"]
        assert len(set(homes.values())) == 2
        for i in (0, 1):
            assert jray.get(where.options(scheduling_strategy=InGroup(pg, i)).remote(), timeout=10)[0] == homes[i]
        actor = Probe.options(num_cpus=1, scheduling_strategy=InGroup(pg, 1)).remote()
        assert jray.get(actor.where.remote(), timeout=10)[0] == homes[1]
        any_two = [where.options(num_cpus=1, scheduling_strategy=InGroup(pg)).remote() for _ in range(2)]
        assert {n for n, _ in jray.get(any_two, timeout=10)} <= set(homes.values())
        _until(lambda: _cpus() == 0, what="both nodes' CPUs reserved")
        remove_placement_group(pg)
        _until(lambda: _cpus() == 2, what="CPUs returned")

        # PACK spills over to a second node when one is not enough; STRICT_PACK waits.
        strict = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_PACK")
        assert not strict.wait(0.5)
        remove_placement_group(strict)
        packed = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="PACK")
        assert packed.wait(10)
        assert len(set(placement_group_table(packed)["bundles_to_node_id"].values())) == 2
        remove_placement_group(packed)
        _until(lambda: _cpus() == 2, what="CPUs returned")

        # STRICT_SPREAD with more bundles than nodes stays pending until a node joins.
        spread = placement_group([{"CPU": 1}] * 3, strategy="STRICT_SPREAD")
        ready_ref = spread.ready()
        assert jray.wait([ready_ref], timeout=1.0)[0] == []
        assert placement_group_table(spread)["state"] == "PENDING"
        third = cluster.add_node(num_cpus=1)
        assert jray.get(ready_ref, timeout=20) == spread
        homes = placement_group_table(spread)["bundles_to_node_id"]
        assert len(set(homes.values())) == 3 and third.node_id in homes.values()
        lost = next(i for i, n in homes.items() if n == third.node_id)

        # The node holding a bundle dies: the bundle is placed again on a new node.
        cluster.remove_node(third)
        _until(lambda: placement_group_table(spread)["state"] == "RESCHEDULING", what="rescheduling")
        fourth = cluster.add_node(num_cpus=1)
        _until(lambda: placement_group_table(spread)["state"] == "CREATED", timeout=20, what="re-created")
        assert placement_group_table(spread)["bundles_to_node_id"][lost] == fourth.node_id
        assert jray.get(where.options(scheduling_strategy=InGroup(spread, lost)).remote(),
                        timeout=10)[0] == fourth.node_id
        remove_placement_group(spread)
