"""Placement groups (Ray's ``ray.util.placement_group``): reserve bundles of
resources across nodes at once (gang scheduling), then run tasks and actors
inside them with ``PlacementGroupSchedulingStrategy``.

::

    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="SPREAD")
    jray.get(pg.ready())
    f.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote()
    remove_placement_group(pg)

The GCS places the bundles (two-phase reserve/commit on the raylets) and
keeps the table; ``ready()`` is an ObjectRef owned by the caller that a
long poll on the GCS resolves once every bundle is reserved. The calls to
the GCS are ``jray._private.pg_client``'s.
"""

from __future__ import annotations

from typing import Any

from jray._private import pg_client
from jray._private.ids import PlacementGroupID


class PlacementGroup(pg_client.PlacementGroupBase):
    """A handle to a placement group: pass it to tasks and actors freely.

    ``id``, ``bundle_specs``, ``bundle_count`` and ``is_empty`` come from
    the engine's ``PlacementGroupBase``."""

    @staticmethod
    def empty() -> PlacementGroup:
        return PlacementGroup(PlacementGroupID(b"\xff" * PlacementGroupID.size))

    def ready(self) -> Any:
        """An ObjectRef that becomes ready (its value: this group) once every
        bundle is reserved; getting it raises TaskPlacementGroupRemoved when
        the group is removed first."""
        return pg_client.ready_ref(self)

    def wait(self, timeout_seconds: float = 30) -> bool:
        """Block until the group is ready (True) or ``timeout_seconds`` pass (False)."""
        if isinstance(timeout_seconds, bool) or not isinstance(timeout_seconds, (int, float)) or timeout_seconds < 0:
            raise ValueError(f"timeout_seconds must be a non-negative number, got {timeout_seconds!r}")
        return pg_client.wait_created(self.id.binary(), timeout_seconds)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroup) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"PlacementGroup(id={self.id.hex()}, bundles={self.bundle_cache})"

    def __reduce__(self) -> Any:
        return (PlacementGroup, (self.id, self.bundle_cache))


def placement_group(bundles: list[dict[str, float]], strategy: str = "PACK", name: str = "",
                    lifetime: str | None = None, _soft_target_node_id: str | None = None,
                    bundle_label_selector: Any = None) -> PlacementGroup:
    """Reserve ``bundles`` (a list of resource dicts) with ``strategy``
    (``PACK``, ``SPREAD``, ``STRICT_PACK`` or ``STRICT_SPREAD``); returns at
    once: the group is pending until ``ready()`` resolves."""
    clean = pg_client.validate_bundles(bundles, strategy)
    if lifetime not in (None, "detached"):
        raise ValueError(f"The placement group lifetime must be None or 'detached', got {lifetime!r}.")
    if not isinstance(name, str):
        raise ValueError(f"The placement group name must be a string, got {type(name).__name__}.")
    pg_id = pg_client.create(clean, strategy, name, detached=lifetime == "detached")
    return PlacementGroup(PlacementGroupID(pg_id), clean)


def remove_placement_group(placement_group: PlacementGroup) -> None:
    """Remove the group: its resources come back, and the actors and tasks
    running in it are killed (actors fail with ActorDiedError)."""
    if not isinstance(placement_group, PlacementGroup):
        raise TypeError(f"remove_placement_group() expects a PlacementGroup, got {type(placement_group).__name__}.")
    pg_client.remove(placement_group.id.binary())


def placement_group_table(placement_group: PlacementGroup | None = None) -> dict[str, Any]:
    """The state of one group, or of every group (keyed by id hex)."""
    return pg_client.table(placement_group.id.binary() if placement_group is not None else None)


def get_placement_group(placement_group_name: str) -> PlacementGroup:
    """The live group named ``placement_group_name`` in the current namespace."""
    if not isinstance(placement_group_name, str) or not placement_group_name:
        raise ValueError("Please give the placement group's name (a non-empty string).")
    ns, info = pg_client.find_named(placement_group_name)
    if info is None:
        raise ValueError(f"Failed to look up placement group named {placement_group_name!r} in namespace "
                         f"{ns!r}: it does not exist or was removed.")
    return PlacementGroup(PlacementGroupID(bytes.fromhex(info["placement_group_id"])), info["bundles"])


def get_current_placement_group() -> PlacementGroup | None:
    """The group the current task or actor runs in; None in a driver or
    outside any group."""
    pg_id = pg_client.current_group_id()
    return PlacementGroup(PlacementGroupID(pg_id)) if pg_id is not None else None


__all__ = ["PlacementGroup", "get_current_placement_group", "get_placement_group", "placement_group",
           "placement_group_table", "remove_placement_group"]
