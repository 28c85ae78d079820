"""The autoscaler's bin-packing (``resource_demand_scheduler.py``): which node
types, how many, for a list of demand shapes. Pure function, no processes."""

from __future__ import annotations

from typing import Any

from jray.autoscaler._private.config import NodeType, validate
from jray.autoscaler._private.resource_demand_scheduler import (
    Node,
    PlacementGroupDemand,
    bin_pack_residual,
    expand,
    get_nodes_to_launch,
    utilization_score,
)

TYPES = validate({
    "cluster_name": "t", "max_workers": 10, "provider": {"type": "local"}, "head_node_type": "head",
    "available_node_types": {
        "head": {"resources": {"CPU": 1}},
        "cpu2": {"resources": {"CPU": 2}, "max_workers": 4},
        "cpu8": {"resources": {"CPU": 8}, "max_workers": 2},
        "gpu": {"resources": {"CPU": 4, "GPU": 1}, "max_workers": 2},
        "foo": {"resources": {"CPU": 1, "foo": 1}, "max_workers": 1},
    }}).node_types
BUSY_HEAD = Node(None, {"CPU": 1}, {"CPU": 0}, worker=False)


def plan(demands: list[dict[str, float]], nodes: list[Node] | None = None, **kw: Any) -> Any:
    kw.setdefault("max_workers", 10)
    types = kw.pop("types", TYPES)
    return get_nodes_to_launch(types, kw.pop("max_workers"), [BUSY_HEAD] if nodes is None else nodes, demands,
                               head_node_type="head", **kw)


def test_nothing_to_do() -> None:
    p = plan([])
    assert p.to_launch == {} and p.infeasible == [] and p.unfulfilled == []


def test_demand_that_fits_what_is_available_launches_nothing() -> None:
    idle = Node("cpu8", {"CPU": 8}, {"CPU": 8})
    assert plan([{"CPU": 1}] * 8, [BUSY_HEAD, idle]).to_launch == {}


def test_launching_nodes_count_as_capacity() -> None:
    launching = Node("cpu2", {"CPU": 2}, {"CPU": 2})
    assert plan([{"CPU": 1}] * 2, [BUSY_HEAD, launching]).to_launch == {}
    assert plan([{"CPU": 1}] * 3, [BUSY_HEAD, launching]).to_launch == {"cpu2": 1}


def test_best_fitting_type_is_chosen() -> None:
    assert plan([{"CPU": 2}]).to_launch == {"cpu2": 1}
    assert plan([{"CPU": 8}]).to_launch == {"cpu8": 1}
    # Sixteen one-CPU tasks fill two cpu8 nodes best.
    assert plan([{"CPU": 1}] * 16).to_launch == {"cpu8": 2}
    # A shape only one type has.
    assert plan([{"CPU": 1, "foo": 1}]).to_launch == {"foo": 1}


def test_no_gpu_node_for_work_that_needs_no_gpu() -> None:
    assert "gpu" not in plan([{"CPU": 4}]).to_launch
    assert plan([{"GPU": 1}]).to_launch == {"gpu": 1}
    score_gpu = utilization_score({"CPU": 4, "GPU": 1}, [{"CPU": 4}])
    score_cpu = utilization_score({"CPU": 8}, [{"CPU": 4}])
    assert score_gpu is not None and score_cpu is not None and score_cpu > score_gpu


def test_infeasible_shapes_are_reported_not_launched() -> None:
    p = plan([{"CPU": 64}, {"bar": 1}, {"CPU": 1}])
    assert p.to_launch == {"cpu2": 1}
    assert sorted(map(str, p.infeasible)) == sorted(map(str, [{"CPU": 64}, {"bar": 1}]))


def test_type_max_workers_and_global_max_workers() -> None:
    p = plan([{"CPU": 8}] * 5)
    assert p.to_launch == {"cpu8": 2}
    # Left because of the limits: unfulfilled, not infeasible.
    assert len(p.unfulfilled) == 3 and p.infeasible == []
    p = plan([{"CPU": 2}] * 6, max_workers=3)
    assert sum(p.to_launch.values()) == 3
    # Existing workers count against the limits.
    full = [Node("cpu8", {"CPU": 8}, {"CPU": 0}), Node("cpu8", {"CPU": 8}, {"CPU": 0})]
    assert "cpu8" not in plan([{"CPU": 8}], [BUSY_HEAD, *full]).to_launch


def test_min_workers_first() -> None:
    types = validate({"cluster_name": "t", "max_workers": 5, "provider": {"type": "local"},
                      "head_node_type": "head", "available_node_types": {
                          "head": {}, "cpu2": {"resources": {"CPU": 2}, "min_workers": 2, "max_workers": 4}}}).node_types
    p = plan([], types=types)
    assert p.to_launch == {"cpu2": 2} and p.reasons["cpu2"] == ["min_workers"]
    one = Node("cpu2", {"CPU": 2}, {"CPU": 2})
    assert plan([], [one], types=types).to_launch == {"cpu2": 1}
    # The min_workers nodes take demand too.
    assert plan([{"CPU": 1}] * 4, [], types=types).to_launch == {"cpu2": 2}


def test_upscaling_speed_holds_back_demand_launches() -> None:
    p = plan([{"CPU": 2}] * 10, upscaling_speed=1.0)
    assert p.to_launch == {"cpu8": 2, "cpu2": 2}  # the best type first, within its max_workers
    # At most max(5, speed * nodes of the type) launching at once per type.
    many = validate({"cluster_name": "t", "max_workers": 100, "provider": {"type": "local"},
                     "head_node_type": "head", "available_node_types": {
                         "head": {}, "c": {"resources": {"CPU": 1}, "max_workers": 100}}}).node_types
    assert plan([{"CPU": 1}] * 50, types=many, max_workers=100).to_launch == {"c": 5}
    running = [Node("c", {"CPU": 1}, {"CPU": 0}) for _ in range(10)]
    assert plan([{"CPU": 1}] * 50, running, types=many, max_workers=100, upscaling_speed=2.0).to_launch == {"c": 20}
    assert plan([{"CPU": 1}] * 50, running, types=many, max_workers=100, upscaling_speed=2.0,
                launching={"c": 15}).to_launch == {"c": 5}


def test_request_resources_is_a_floor_on_total_capacity() -> None:
    # 4 CPUs wanted; the head's one CPU counts (busy or not): 3 more needed.
    assert plan([], resource_request=[{"CPU": 1}] * 5).to_launch == {"cpu2": 2}
    idle8 = Node("cpu8", {"CPU": 8}, {"CPU": 0})  # busy, but its total counts
    assert plan([], [BUSY_HEAD, idle8], resource_request=[{"CPU": 1}] * 9).to_launch == {}
    # Not held back by upscaling_speed.
    many = validate({"cluster_name": "t", "max_workers": 100, "provider": {"type": "local"},
                     "head_node_type": "head", "available_node_types": {
                         "head": {}, "c": {"resources": {"CPU": 1}, "max_workers": 100}}}).node_types
    assert plan([], [], types=many, max_workers=100, resource_request=[{"CPU": 1}] * 30).to_launch == {"c": 30}
    # Bundles: a GPU one picks the GPU type.
    assert plan([], resource_request=[{"GPU": 1}, {"GPU": 1}]).to_launch == {"gpu": 2}
    # The nodes launched for it take the pending demand too (capacity, not extra work).
    p = plan([{"CPU": 1}] * 4, [BUSY_HEAD], resource_request=[{"CPU": 8}])
    assert p.to_launch == {"cpu8": 1}


def test_placement_groups() -> None:
    # STRICT_SPREAD: one node per bundle, even when one node could hold them all.
    p = plan([], placement_groups=[PlacementGroupDemand("STRICT_SPREAD", [{"CPU": 1}] * 3)])
    assert sum(p.to_launch.values()) == 3
    # ...using existing nodes with room first, at most one bundle each.
    idle2 = Node("cpu2", {"CPU": 2}, {"CPU": 2})
    p = plan([], [BUSY_HEAD, idle2], placement_groups=[PlacementGroupDemand("STRICT_SPREAD", [{"CPU": 1}] * 3)])
    assert sum(p.to_launch.values()) == 2
    # STRICT_PACK: all bundles on one node (their sum).
    p = plan([], placement_groups=[PlacementGroupDemand("STRICT_PACK", [{"CPU": 4}, {"CPU": 4}])])
    assert p.to_launch == {"cpu8": 1}
    p = plan([], placement_groups=[PlacementGroupDemand("STRICT_PACK", [{"CPU": 8}, {"CPU": 8}])])
    assert p.to_launch == {} and p.infeasible == [{"CPU": 16.0}]
    # PACK / SPREAD: bundles as separate demands.
    p = plan([], placement_groups=[PlacementGroupDemand("PACK", [{"CPU": 2}] * 4)])
    assert p.to_launch == {"cpu8": 1}
    p = plan([], placement_groups=[PlacementGroupDemand("SPREAD", [{"CPU": 1, "foo": 1}, {"GPU": 1}])])
    assert p.to_launch == {"foo": 1, "gpu": 1}


def test_reasons_say_why() -> None:
    p = plan([{"CPU": 2}] * 2)
    assert p.reasons["cpu2"] == ["pending demand: 1x {CPU: 2}"]
    p = plan([], placement_groups=[PlacementGroupDemand("STRICT_SPREAD", [{"GPU": 1}])])
    assert p.reasons["gpu"][0].startswith("placement group (STRICT_SPREAD)")


def test_bin_pack_residual_and_expand() -> None:
    nodes = [{"CPU": 2.0}, {"CPU": 4.0}]
    left = bin_pack_residual(nodes, [{"CPU": 1}] * 3 + [{"CPU": 3}, {"GPU": 1}])
    assert left == [{"GPU": 1}]
    assert nodes == [{"CPU": 0.0}, {"CPU": 0.0}]
    assert bin_pack_residual([{"CPU": 4.0}], [{"CPU": 1}] * 2, strict_spread=True) == [{"CPU": 1}]
    assert expand([({"CPU": 1}, 3), ({"GPU": 1}, 2)], limit=4) == [{"CPU": 1}] * 3 + [{"GPU": 1}]
    assert isinstance(TYPES["cpu2"], NodeType)
