"""Libraries on top of the Core API (Ray's ``ray.util``)."""

from jray.util import multiprocessing, queue
from jray.util.actor_pool import ActorPool
from jray.util.placement_group import (
    PlacementGroup,
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)

__all__ = ["ActorPool", "PlacementGroup", "get_current_placement_group", "get_placement_group", "multiprocessing",
           "placement_group", "placement_group_table", "queue", "remove_placement_group"]
