"""Scheduling strategies (Ray's names): where a task or actor may run.

The engine reads them through their bases in ``jray._private.scheduling``,
which also turns them into the spec's wire form.
"""

from __future__ import annotations

from jray._private.scheduling import InPlacementGroup, NodeAffinity


class NodeAffinitySchedulingStrategy(NodeAffinity):
    """Run on the node ``node_id`` (hex); with ``soft=True`` elsewhere if it is gone."""

    def __init__(self, node_id: str, soft: bool, _spill_on_unavailable: bool = False,
                 _fail_on_unavailable: bool = False) -> None:
        if not isinstance(node_id, str):
            raise ValueError("node_id must be the node's hex id (a str)")
        self.node_id = node_id
        self.soft = soft

    def __repr__(self) -> str:
        return f"NodeAffinitySchedulingStrategy(node_id={self.node_id!r}, soft={self.soft})"


class PlacementGroupSchedulingStrategy(InPlacementGroup):
    """Run in a bundle of a placement group (index -1: any of its bundles).

    With ``placement_group_capture_child_tasks=True`` the tasks and actors
    this one submits run in the same group unless they say otherwise;
    ``placement_group=None`` opts out of a captured group."""


__all__ = ["NodeAffinitySchedulingStrategy", "PlacementGroupSchedulingStrategy"]
