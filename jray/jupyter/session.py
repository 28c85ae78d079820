"""The driver as a citizen of an IPython shell (a Jupyter kernel or a terminal).

``jray.init()`` calls :func:`attach` when IPython is running. From then on,
before every cell:

- the cell gets a token that the tasks it submits carry, so their output
  lands in that cell (``routing.py``);
- functions pickled by value are pickled again on their next call, so a
  helper redefined in a later cell reaches the workers (``task_builder``).

And a Ctrl-C (kernel interrupt) while ``jray.get``/``jray.wait`` blocks
cancels the tasks waited on; a second one while waiting on the same tasks
kills their workers.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from jray._private import task_builder
from jray._private.worker import global_state
from jray.jupyter.routing import OutputRouter

logger = logging.getLogger(__name__)

_session: NotebookSession | None = None
_hooked_shells: set[int] = set()


class NotebookSession:
    """What jray keeps per IPython shell while a driver is connected."""

    def __init__(self, shell: Any, worker: Any) -> None:
        self.shell = shell
        self.worker = worker
        self.router = OutputRouter(shell)
        self.cancelled: set[bytes] = set()
        # task id of a call into a remote namespace (%%remote --actor) -> actor id
        self.actor_calls: dict[bytes, bytes] = {}

    def cell_started(self) -> None:
        token = b"cell" + os.urandom(12)
        self.router.cell_started(token)
        self.worker.root_task_override = token

    # -- Ctrl-C ------------------------------------------------------------------
    def on_interrupt(self, refs: Sequence[Any]) -> None:
        from jray._private.ids import task_id_of

        if len(self.cancelled) > 100_000:
            self.cancelled.clear()
        w = self.worker
        tasks = w.task_submitter.tasks
        n_tasks = n_forced = 0
        for ref in refs:
            tid = task_id_of(ref.binary())
            force = tid in self.cancelled
            actor_id = self.actor_calls.get(tid)
            if actor_id is not None:
                self.cancelled.add(tid)
                w.call_soon(lambda a=actor_id, t=tid: w.spawn(_cancel_actor_call(w, a, t)))
                n_tasks += 1
                continue
            if tid in w.actor_submitter.calls:  # an ordinary actor call (Ray's cancel semantics)
                w.post(w.actor_submitter.cancel, tid)
                n_tasks += 1
                continue
            task = tasks.get(tid)
            if task is None or getattr(task, "done", False):
                continue
            self.cancelled.add(tid)
            w.call_soon(w.task_submitter.cancel, tid, force, True)
            n_tasks += 1
            n_forced += force
        if n_tasks:
            how = (f"killed the workers of {n_forced}" if n_forced else
                   f"cancelled {n_tasks} task(s) being waited on; interrupt again to kill their workers")
            sys.stderr.write(f"[jray] interrupted: {how}.\n")
            sys.stderr.flush()


async def _cancel_actor_call(w: Any, actor_id: bytes, task_id: bytes) -> None:
    """Interrupt a call running in a remote namespace actor (its state survives)."""
    from jray._private.protocol import core_worker_pb2 as wpb
    from jray._private.protocol import core_worker_pb2_grpc as wgrpc
    from jray._private.protocol import gcs_pb2 as gpb

    try:
        info = (await w.gcs.GetActorInfo(gpb.GetActorInfoRequest(actor_id=actor_id))).actor
        if not info.address.port:
            return
        stub = w.pool.stub(f"{info.address.ip}:{info.address.port}", wgrpc.CoreWorkerServiceStub)
        await stub.CancelTask(wpb.CancelTaskRequest(task_id=task_id, force=False), timeout=10)
    except Exception as e:  # noqa: BLE001 - the actor may be gone already
        logger.debug("cancelling an actor call failed: %s", e)


def current() -> NotebookSession | None:
    """The session of the connected driver, or None."""
    global _session
    if _session is not None and _session.worker is not global_state.worker:
        _session = None
    return _session


def attach(worker: Any) -> NotebookSession | None:
    """Called by ``jray.init()``: hook the driver into the running IPython shell."""
    global _session
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    if shell is None:
        return None
    _session = NotebookSession(shell, worker)
    worker.log_sink = _session.router
    worker.on_interrupt = _session.on_interrupt
    if id(shell) not in _hooked_shells:
        shell.events.register("pre_run_cell", _pre_run_cell)
        _hooked_shells.add(id(shell))
    _session.cell_started()  # the cell calling init() is running now
    return _session


def _pre_run_cell(*_: Any) -> None:
    task_builder.generation += 1
    s = current()
    if s is not None:
        s.cell_started()
