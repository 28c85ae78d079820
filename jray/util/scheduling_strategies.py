"""Scheduling strategies (Ray's names): where a task or actor may run."""

from __future__ import annotations

from typing import Any

from jray._private.protocol import common_pb2 as cpb


class NodeAffinitySchedulingStrategy:
    """Run on the node ``node_id`` (hex); with ``soft=True`` elsewhere if it is gone."""

    def __init__(self, node_id: str, soft: bool, _spill_on_unavailable: bool = False,
                 _fail_on_unavailable: bool = False) -> None:
        if not isinstance(node_id, str):
            raise ValueError("node_id must be the node's hex id (a str)")
        self.node_id = node_id
        self.soft = soft

    def __repr__(self) -> str:
        return f"NodeAffinitySchedulingStrategy(node_id={self.node_id!r}, soft={self.soft})"


class PlacementGroupSchedulingStrategy:
    """Run in a bundle of a placement group."""

    def __init__(self, placement_group: Any, placement_group_bundle_index: int = -1,
                 placement_group_capture_child_tasks: bool | None = None) -> None:
        self.placement_group = placement_group
        self.placement_group_bundle_index = placement_group_bundle_index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks


def to_proto(strategy: Any) -> cpb.SchedulingStrategy:
    S = cpb.SchedulingStrategy
    if strategy is None or strategy == "DEFAULT":
        return S()
    if strategy == "SPREAD":
        return S(kind=S.SPREAD)
    if isinstance(strategy, NodeAffinitySchedulingStrategy):
        return S(kind=S.NODE_AFFINITY, node_id=bytes.fromhex(strategy.node_id), soft=strategy.soft)
    if isinstance(strategy, PlacementGroupSchedulingStrategy):
        pg = strategy.placement_group
        return S(kind=S.PLACEMENT_GROUP, placement_group_id=pg.id.binary(),
                 bundle_index=strategy.placement_group_bundle_index)
    raise ValueError(f"unknown scheduling strategy {strategy!r}")


__all__ = ["NodeAffinitySchedulingStrategy", "PlacementGroupSchedulingStrategy"]
