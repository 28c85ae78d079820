"""The two ways the engine calls back up into the layers above it.

The engine (``jray._private``) never imports the public API or the notebook
layer; where it must reach them, they register a callable here instead:

- **auto-init** (one callable, set by ``jray.api`` when it is imported): Ray
  starts a local cluster on the first ``f.remote()`` / ``A.remote()`` /
  ``placement_group()`` without ``init()``. Engine code that needs a driver
  calls :func:`ensure_worker`, which runs the hook when none is connected.
- **connect hooks** (any number): run by ``jray.init()`` once the driver is
  connected. The notebook layer (``jray.jupyter``) registers one when it is
  imported, which ``import jray`` does (``jray/__init__.py`` imports the
  light ``jray.jupyter`` package, not IPython), so a bare ``jray.init()`` in
  a Jupyter kernel attaches the kernel while ``jray.api`` knows nothing of
  Jupyter: the dependency points from the notebook layer to the core.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from jray._private.worker import global_state

if TYPE_CHECKING:
    from jray._private.worker.core_worker import CoreWorker

logger = logging.getLogger(__name__)

_auto_init: Callable[[], object] | None = None
_connect_hooks: list[Callable[[], object]] = []


def set_auto_init(fn: Callable[[], object]) -> None:
    """Register what starts (or attaches) a driver on first use: ``jray.init``."""
    global _auto_init
    _auto_init = fn


def ensure_worker() -> CoreWorker:
    """The connected CoreWorker; without one, auto-init first (as Ray does)."""
    w = global_state.worker
    if w is None:
        if _auto_init is not None:
            logger.info("jray.init() was not called: starting or attaching to a cluster on first use")
            _auto_init()
        w = global_state.require_worker()
    return w


def on_connect(fn: Callable[[], object]) -> None:
    """Run ``fn()`` each time ``jray.init()`` connects a driver (once per ``fn``)."""
    if fn not in _connect_hooks:
        _connect_hooks.append(fn)


def run_connect_hooks() -> None:
    """Called by ``jray.init()`` after the driver connected."""
    for fn in list(_connect_hooks):
        fn()
