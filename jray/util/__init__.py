"""Libraries on top of the Core API (Ray's ``ray.util``)."""

from jray.util import multiprocessing, queue
from jray.util.actor_pool import ActorPool

__all__ = ["ActorPool", "multiprocessing", "queue"]
