"""What a front end over the driver (the notebook layer, ``jray.jupyter``) may
set on it and ask of it, beyond the public API.

The notebook layer never touches the CoreWorker: it routes worker output,
handles Ctrl-C and tags work with the running cell through these functions.

Driver side (a kernel):

- :func:`connection`: an opaque token of the connected driver (compare with ``is``);
- :func:`set_output_sink` / :func:`set_interrupt_handler`: where forwarded worker
  output goes; what a Ctrl-C during ``get``/``wait`` does with the refs waited on;
- :func:`set_origin`: the token the tasks submitted from now on carry (a cell's),
  so their output can be routed back to it;
- :func:`new_code_generation`: functions pickled by value are pickled again on
  their next call (a later cell may have redefined what they call);
- :func:`pending_kind`: whether a ref's task or actor call is still pending here;
- :func:`watch_ready`: a callback per ref as it becomes ready (no value fetched).

Worker side (code running in a task):

- :func:`emit_line`: a line on the task's output stream, in order with its prints;
- :func:`current_task_context` / :func:`node_id_hex`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from jray._private import submit, task_builder, task_context
from jray._private.object_ref import ObjectRef
from jray._private.worker import global_state

# -- driver side --------------------------------------------------------------------------


def connection() -> object | None:
    """The connected driver as an opaque token (None when not connected): a
    front end compares it with ``is`` to notice a shutdown and a new init."""
    return global_state.worker


def set_output_sink(sink: Callable[[Any], None] | None) -> None:
    """``sink(batch)`` gets each batch of output lines workers forward to this
    driver (a ``LogBatch``: ``lines``, each with ``text``, ``is_err``,
    ``root_task_id`` and the worker's ``pid``/``ip``); None: print them."""
    global_state.require_worker().log_sink = sink


def set_interrupt_handler(handler: Callable[[Sequence[ObjectRef]], None]) -> None:
    """``handler(refs)`` runs (in the interrupted thread) when a KeyboardInterrupt
    ends a ``get``/``wait`` on ``refs``; the interrupt is raised after it."""
    # An instance attribute shadowing CoreWorker's no-op ``on_interrupt`` method.
    global_state.require_worker().on_interrupt = handler  # type: ignore[method-assign, assignment]


def set_origin(token: bytes) -> None:
    """Tag what this driver submits from now on with ``token`` (as the root task
    id of top-level tasks): workers carry it on every line of output they forward."""
    global_state.require_worker().root_task_override = token


def new_code_generation() -> None:
    """Pickle functions by value again on their next call (a new notebook cell runs)."""
    task_builder.generation += 1


def pending_kind(ref: ObjectRef) -> str | None:
    """``"task"`` or ``"actor_call"`` while what produces ``ref`` is pending on
    this driver; None once done, for a put object, or another process's task."""
    return submit.pending_kind(ref)


def watch_ready(refs: Sequence[ObjectRef], on_ready: Callable[[ObjectRef, bool], None]) -> None:
    """Call ``on_ready(ref, failed)`` on the driver's loop as each ref becomes
    ready (``failed``: its value is an error, or it was lost). Values are not
    fetched or deserialized; one coroutine per ref, no thread, no polling."""
    w = global_state.require_worker()

    async def one(ref: ObjectRef) -> None:
        try:
            await w._ensure_ready(ref)
            ret = w.objects.get(ref.binary())
            failed = ret is not None and ret.is_error
        except Exception:  # noqa: BLE001 - a lost object counts as failed
            failed = True
        on_ready(ref, failed)

    async def all_refs() -> None:
        await asyncio.gather(*(one(r) for r in refs), return_exceptions=True)

    asyncio.run_coroutine_threadsafe(all_refs(), w.loop)


# -- worker side --------------------------------------------------------------------------


def current_task_context() -> Any:
    """The running task's context (None outside a task): pass it to
    :func:`emit_line` from threads the task starts, which have none of their own."""
    return task_context.current_spec()


def emit_line(text: str, task: Any = None) -> bool:
    """Send ``text`` on the output stream of the running task (or of ``task``,
    from :func:`current_task_context`), in order with its prints. False when
    not in a worker's task: nothing was sent."""
    w = global_state.worker
    spec = task_context.current_spec() or task
    executor = getattr(w, "executor", None)
    if executor is None or spec is None:
        return False
    executor.logs.add(spec, text, False)
    return True


def in_worker() -> bool:
    """Whether this process is a worker running tasks (not a driver)."""
    return task_context.in_worker()


def node_id_hex() -> str:
    """This process's node id (hex); "" when not connected."""
    return task_context.node_id_hex()


def bare_output(on: bool) -> None:
    """In a worker: lines this thread prints from now on show without the
    ``(name pid=N)`` prefix (a ``%%remote`` cell's own output). Set before
    the output is made, so it does not depend on the driver labelling the
    task in time (the task may print before ``.remote()`` returns there)."""
    from jray._private.worker import log_stream

    log_stream.set_bare(on)
