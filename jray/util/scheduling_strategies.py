"""Scheduling strategies (Ray's names): where a task or actor may run.

The engine reads them through their bases in ``jray._private.scheduling``,
which also turns them into the spec's wire form.
"""

from __future__ import annotations

from typing import Any

from jray._private.scheduling import InPlacementGroup, NodeAffinity


class NodeAffinitySchedulingStrategy(NodeAffinity):
    """Run on the node ``node_id``; with ``soft=True`` elsewhere if it is gone.

    ``node_id`` is any form Ray hands out: a hex string
    (``get_runtime_context().get_node_id()``, ``nodes()[i]["NodeID"]``, the
    state API's rows), a ``NodeID`` (``get_runtime_context().node_id``), or
    the id's bytes."""

    def __init__(self, node_id: Any, soft: bool, _spill_on_unavailable: bool = False,
                 _fail_on_unavailable: bool = False) -> None:
        self.node_id = _node_hex(node_id)
        self.soft = soft

    def __repr__(self) -> str:
        return f"NodeAffinitySchedulingStrategy(node_id={self.node_id!r}, soft={self.soft})"


class PlacementGroupSchedulingStrategy(InPlacementGroup):
    """Run in a bundle of a placement group (index -1: any of its bundles).

    With ``placement_group_capture_child_tasks=True`` the tasks and actors
    this one submits run in the same group unless they say otherwise;
    ``placement_group=None`` opts out of a captured group."""


def _node_hex(node_id: Any) -> str:
    if isinstance(node_id, str):
        try:
            bytes.fromhex(node_id)
        except ValueError:
            raise ValueError(f"node_id {node_id!r} is not a node's hex id") from None
        return node_id
    if isinstance(node_id, (bytes, bytearray)):
        return bytes(node_id).hex()
    if callable(getattr(node_id, "binary", None)) and callable(getattr(node_id, "hex", None)):  # a NodeID
        return str(node_id.hex())
    raise ValueError(f"node_id must be a node id (a hex str or a NodeID), got {type(node_id).__name__}")


__all__ = ["NodeAffinitySchedulingStrategy", "PlacementGroupSchedulingStrategy"]
