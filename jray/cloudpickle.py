"""``jray.cloudpickle``: the cloudpickle jray serializes functions and
values with (Ray's ``ray.cloudpickle``), for programs that import it."""

from __future__ import annotations

from cloudpickle import *  # noqa: F403 - the module's whole surface, as Ray re-exports it
from cloudpickle import CloudPickler, dump, dumps, load, loads  # noqa: F401 - named for readers and mypy

Pickler = CloudPickler
