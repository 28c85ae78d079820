"""Libraries on top of the Core API (Ray's ``ray.util``)."""

from jray._private.serialization import deregister_serializer, register_serializer
from jray.util import multiprocessing, queue
from jray.util.actor_pool import ActorPool
from jray.util.check_serialize import inspect_serializability
from jray.util.placement_group import (
    PlacementGroup,
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)

__all__ = ["ActorPool", "PlacementGroup", "deregister_serializer", "get_current_placement_group",
           "get_placement_group", "multiprocessing", "placement_group", "placement_group_table", "queue",
           "register_serializer", "remove_placement_group", "inspect_serializability"]


def __getattr__(name: str) -> object:
    # Loaded on first use: they import pdb, which a cluster that never
    # debugs need not pay for.
    if name in ("rpdb", "pdb"):
        import importlib

        return importlib.import_module(f"jray.util.{name}")
    raise AttributeError(f"module 'jray.util' has no attribute {name!r}")
