"""Scheduling strategies as the engine reads them, and their wire form.

The user-facing classes live in ``jray.util.scheduling_strategies`` and
``jray.util.placement_group``; they subclass the small engine types here
(:class:`NodeAffinity`, :class:`InPlacementGroup`, and
``pg_client.PlacementGroupBase``), so the engine recognises them without
importing the public layer. This module turns a task's options into the
``SchedulingStrategy`` message of its spec (:func:`for_task`).
"""

from __future__ import annotations

from typing import Any

from jray._private.pg_client import PlacementGroupBase
from jray._private.protocol import common_pb2 as cpb
from jray._private.resources import fits
from jray._private.worker import global_state


class NodeAffinity:
    """Run on the node ``node_id`` (hex); with ``soft`` elsewhere if it is gone.

    The engine's view of ``NodeAffinitySchedulingStrategy`` (its public subclass)."""

    node_id: str
    soft: bool


class InPlacementGroup:
    """Run in a bundle of a placement group (index -1: any of its bundles).

    The engine's view of ``PlacementGroupSchedulingStrategy`` (its public
    subclass); also what Ray's older ``placement_group=`` options become."""

    def __init__(self, placement_group: Any, placement_group_bundle_index: int = -1,
                 placement_group_capture_child_tasks: bool | None = None) -> None:
        self.placement_group = placement_group
        self.placement_group_bundle_index = placement_group_bundle_index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks


def is_strategy(value: Any) -> bool:
    """Whether ``value`` is a valid ``scheduling_strategy`` option."""
    return value is None or value in ("DEFAULT", "SPREAD") or isinstance(value, (NodeAffinity, InPlacementGroup))


def to_proto(strategy: Any) -> cpb.SchedulingStrategy:
    S = cpb.SchedulingStrategy
    if strategy is None or strategy == "DEFAULT":
        return S()
    if strategy == "SPREAD":
        return S(kind=S.SPREAD)
    if isinstance(strategy, NodeAffinity):
        return S(kind=S.NODE_AFFINITY, node_id=bytes.fromhex(strategy.node_id), soft=strategy.soft)
    if isinstance(strategy, InPlacementGroup):
        pg = strategy.placement_group
        if pg is None or getattr(pg, "is_empty", False):
            return S()
        return S(kind=S.PLACEMENT_GROUP, placement_group_id=pg.id.binary(),
                 bundle_index=strategy.placement_group_bundle_index,
                 capture_child_tasks=bool(strategy.placement_group_capture_child_tasks))
    raise ValueError(f"unknown scheduling strategy {strategy!r}")


def for_task(opts: dict[str, Any], resources: dict[str, float], parent: Any) -> cpb.SchedulingStrategy:
    """The strategy of a new task or actor: its ``scheduling_strategy``, or
    Ray's older ``placement_group=`` / ``placement_group_bundle_index=``
    options, or the placement group of a ``parent`` that captures its
    children. Placement in a group is checked here, where a ValueError
    reaches the caller: the bundle index exists and the demand fits."""
    strategy = opts.get("scheduling_strategy")
    legacy = opts.get("placement_group", "default")
    if legacy != "default" and strategy is not None:
        if legacy is not None:
            raise ValueError("Give either 'scheduling_strategy' or the older 'placement_group' option, not both.")
    elif legacy != "default":
        strategy = InPlacementGroup(
            legacy, opts.get("placement_group_bundle_index", -1), opts.get("placement_group_capture_child_tasks"))
    elif strategy is None and parent is not None:
        s = _captured_by(parent)
        if s is not None:
            return cpb.SchedulingStrategy(kind=s.kind, placement_group_id=s.placement_group_id, bundle_index=-1,
                                          capture_child_tasks=True)
    if isinstance(strategy, InPlacementGroup) and strategy.placement_group is not None:
        _check_placement(strategy, resources)
    return to_proto(strategy)


def _captured_by(parent: Any) -> Any:
    """The parent's group strategy when it captures child tasks, else None."""
    S = cpb.SchedulingStrategy
    s = parent.scheduling
    if parent.type == cpb.ACTOR_TASK:
        w = global_state.worker
        spec = getattr(w.executor, "actor_spec", None) if w is not None else None
        s = spec.scheduling if spec is not None else S()
    return s if s.kind == S.PLACEMENT_GROUP and s.capture_child_tasks else None


def _check_placement(strategy: InPlacementGroup, resources: dict[str, float]) -> None:
    pg = strategy.placement_group
    if not isinstance(pg, PlacementGroupBase):
        raise ValueError(f"placement_group must be a PlacementGroup (or None), got {type(pg).__name__}.")
    if pg.is_empty:
        return
    index = strategy.placement_group_bundle_index
    specs = pg.bundle_specs
    if isinstance(index, bool) or not isinstance(index, int) or not -1 <= index < len(specs):
        raise ValueError(f"placement_group_bundle_index must be -1 (any bundle) or between 0 and "
                         f"{len(specs) - 1} for this group of {len(specs)} bundles, got {index!r}.")
    chosen = specs if index < 0 else [specs[index]]
    if not any(fits(resources, b) for b in chosen):
        where = "any bundle" if index < 0 else f"bundle {index}"
        raise ValueError(f"The demand {resources} cannot fit in {where} of placement group {pg.id.hex()} "
                         f"(bundles: {chosen}); ask for less or reserve bigger bundles.")
