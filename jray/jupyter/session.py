"""The driver as a citizen of an IPython shell (a Jupyter kernel or a terminal).

``jray.init()`` runs the connect hook this package registers, which calls
:func:`attach` when IPython is running. From then on, before every cell:

- the cell gets a token that the tasks it submits carry, so their output
  lands in that cell (``routing.py``);
- functions pickled by value are pickled again on their next call, so a
  helper redefined in a later cell reaches the workers.

And a Ctrl-C (kernel interrupt) while ``jray.get``/``jray.wait`` blocks
cancels the tasks waited on (``jray.cancel``); a second one while waiting on
the same tasks kills their workers (``force=True``). Actor calls are
cancelled, never forced (an actor's state must survive). The driver is
reached only through ``jray._private.frontend``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from jray import api
from jray._private import frontend
from jray.jupyter.routing import OutputRouter

logger = logging.getLogger(__name__)

_session: NotebookSession | None = None
_hooked_shells: set[int] = set()


class NotebookSession:
    """What jray keeps per IPython shell while a driver is connected."""

    def __init__(self, shell: Any, connection: object) -> None:
        self.shell = shell
        self.connection = connection  # the driver this session belongs to (frontend.connection())
        self.router = OutputRouter(shell)
        self.cancelled: set[bytes] = set()
        # task id of a call into a remote namespace (%%remote --actor) -> actor id
        self.actor_calls: dict[bytes, bytes] = {}

    def cell_started(self) -> None:
        token = b"cell" + os.urandom(12)
        self.router.cell_started(token)
        frontend.set_origin(token)

    # -- Ctrl-C ------------------------------------------------------------------
    def on_interrupt(self, refs: Sequence[Any]) -> None:
        if len(self.cancelled) > 100_000:
            self.cancelled.clear()
        n_tasks = n_forced = 0
        for ref in refs:
            tid = ref.task_id().binary()
            force = tid in self.cancelled
            if tid in self.actor_calls:  # a remote namespace's cell: interrupted, its state survives
                self.cancelled.add(tid)
                _cancel(ref, force=False)
                n_tasks += 1
                continue
            kind = frontend.pending_kind(ref)
            if kind == "actor_call":  # an ordinary actor call (Ray's cancel semantics)
                _cancel(ref, force=False)
                n_tasks += 1
                continue
            if kind is None:  # done, a put object, or not submitted here
                continue
            self.cancelled.add(tid)
            _cancel(ref, force=force)
            n_tasks += 1
            n_forced += force
        if n_tasks:
            how = (f"killed the workers of {n_forced}" if n_forced else
                   f"cancelled {n_tasks} task(s) being waited on (a task that ignores it is killed if you "
                   "interrupt a wait on it again)")
            sys.stderr.write(f"[jray] interrupted: {how}.\n")
            sys.stderr.flush()


def _cancel(ref: Any, *, force: bool) -> None:
    try:
        api.cancel(ref, force=force, recursive=True)
    except Exception as e:  # noqa: BLE001 - an interrupt handler must not raise over the interrupt
        logger.debug("cancelling %r failed: %s", ref, e)


def current() -> NotebookSession | None:
    """The session of the connected driver, or None."""
    global _session
    if _session is not None and _session.connection is not frontend.connection():
        _session = None
    return _session


def attach() -> NotebookSession | None:
    """Called after ``jray.init()``: hook the driver into the running IPython shell."""
    global _session
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    if shell is None:
        return None
    _session = NotebookSession(shell, frontend.connection())
    frontend.set_output_sink(_session.router)
    frontend.set_interrupt_handler(_session.on_interrupt)
    if id(shell) not in _hooked_shells:
        shell.events.register("pre_run_cell", _pre_run_cell)
        _hooked_shells.add(id(shell))
    _session.cell_started()  # the cell calling init() is running now
    return _session


def _pre_run_cell(*_: Any) -> None:
    frontend.new_code_generation()
    s = current()
    if s is not None:
        s.cell_started()
