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

# The cluster's daemons (GCS, raylet) import ``jray`` only for its
# subpackages: started with _JRAY_LEAN_IMPORT=1 (popped here, so their
# workers import it whole) they skip the driver API below (a fifth of a
# second of CPU each, on the path to the first task), which loads on first
# use of any of its names.
_LEAN = _os.environ.pop("_JRAY_LEAN_IMPORT", "") == "1"
_API_NAMES = ("_jupyter", "__version__", "ActorClass", "ActorHandle", "method", "available_resources",
              "cancel", "cluster_resources", "get", "get_actor", "get_gpu_ids", "get_runtime_context", "init",
              "is_initialized", "kill", "nodes", "put", "remote", "shutdown", "wait", "DynamicObjectRefGenerator",
              "ObjectRef", "ObjectRefGenerator", "RemoteFunction")

if not _LEAN:
    from jray import exceptions
    from jray import (
        jupyter as _jupyter,  # registers its jray.init() hook; a cheap import (no IPython)
    )
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


def _load_api() -> None:
    """The driver API's names (a lean import skipped them)."""
    from jray import api as _api
    from jray import exceptions as _exc
    from jray import jupyter as _jup
    from jray import object_ref as _oref
    from jray._private import version as _version
    from jray.actor import ActorClass as _AC
    from jray.actor import ActorHandle as _AH
    from jray.actor import method as _method
    from jray.remote_function import RemoteFunction as _RF

    g = globals()
    g.update(exceptions=_exc, _jupyter=_jup, __version__=_version.__version__, ActorClass=_AC, ActorHandle=_AH,
             method=_method, RemoteFunction=_RF, DynamicObjectRefGenerator=_oref.DynamicObjectRefGenerator,
             ObjectRef=_oref.ObjectRef, ObjectRefGenerator=_oref.ObjectRefGenerator)
    for n in ("available_resources", "cancel", "cluster_resources", "get", "get_actor", "get_gpu_ids",
              "get_runtime_context", "init", "is_initialized", "kill", "nodes", "put", "remote", "shutdown", "wait"):
        g[n] = getattr(_api, n)


def __getattr__(name: str) -> object:
    """``jray.widgets`` and ``jray.views`` load on first use (ipywidgets, Bokeh);
    both live in ``jray.jupyter`` (``jray/widgets.py``, ``jray/views/`` are aliases).
    ``jray.util`` too (``ray.util`` after a bare ``import ray``, as in Ray)."""
    if name in ("widgets", "views"):
        import importlib

        return importlib.import_module(f"jray.jupyter.{name}")
    if name in _API_NAMES:
        _load_api()
        return globals()[name]
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
