"""jray: Ray's core API on a real gRPC cluster, built for Jupyter.

``import jray as ray`` runs Ray Core programs: tasks (``@jray.remote``
functions), actors (``@jray.remote`` classes), and immutable objects in a
shared-memory object store, referred to by ObjectRefs. See README.md for
how the processes fit together.
"""

import os as _os

# gRPC's fork handlers print "fork_posix.cc:71 Other threads are currently
# calling into gRPC, skipping fork() handlers" at every fork of a process with
# gRPC threads (a kernel's !cmd and %pip). jray uses no gRPC object across a
# fork (its zygote forks before making any channel), so they are off unless
# the user chose otherwise; set before anything imports grpc.
_os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

from jray import exceptions
from jray import jupyter as _jupyter  # registers its jray.init() hook; a cheap import (no IPython)
from jray._private.version import __version__
from jray.actor import ActorClass, ActorHandle, method
from jray.api import (
    available_resources,
    cancel,
    cluster_resources,
    get,
    get_actor,
    get_gpu_ids,
    get_runtime_context,
    init,
    is_initialized,
    kill,
    nodes,
    put,
    remote,
    shutdown,
    wait,
)
from jray.object_ref import DynamicObjectRefGenerator, ObjectRef, ObjectRefGenerator
from jray.remote_function import RemoteFunction

# Ray also exposes the generator type under this name.


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext jray``: the ``%%remote`` and ``%jray`` magics (see jray.jupyter)."""
    _jupyter.load_ipython_extension(ipython)


def progress(refs: object, desc: str = "") -> object:
    """A live progress bar over ObjectRefs completing (a widget in a notebook, text in a
    terminal); iterating it yields the refs as they complete."""
    return _jupyter.progress(refs, desc=desc)


def __getattr__(name: str) -> object:
    """``jray.widgets`` and ``jray.views`` load on first use (ipywidgets, Bokeh);
    both live in ``jray.jupyter`` (``jray/widgets.py``, ``jray/views/`` are aliases).
    ``jray.util`` too (``ray.util`` after a bare ``import ray``, as in Ray)."""
    if name in ("widgets", "views"):
        import importlib

        return importlib.import_module(f"jray.jupyter.{name}")
    if name in ("util", "cloudpickle", "dag", "experimental", "job_submission"):
        import importlib

        return importlib.import_module(f"jray.{name}")
    raise AttributeError(f"module 'jray' has no attribute {name!r}")


__all__ = [
    "ActorClass",
    "ActorHandle",
    "DynamicObjectRefGenerator",
    "ObjectRef",
    "ObjectRefGenerator",
    "RemoteFunction",
    "__version__",
    "available_resources",
    "cancel",
    "cluster_resources",
    "exceptions",
    "get",
    "get_actor",
    "get_gpu_ids",
    "get_runtime_context",
    "init",
    "is_initialized",
    "kill",
    "method",
    "nodes",
    "progress",
    "put",
    "remote",
    "shutdown",
    "wait",
]
