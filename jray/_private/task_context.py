"""What runs in this process right now: the current task and actor, as
``get_runtime_context()``, ``exit_actor()`` and the notebook layer's remote
side read them.

The current task is a context variable the executor sets around each task
and actor call (None in a driver's own code); the current actor is the
executor's, in an actor's worker process.
"""

from __future__ import annotations

from typing import Any

from jray._private.protocol import common_pb2 as cpb
from jray._private.worker import global_state
from jray._private.worker.core_worker import current_task


def current_spec() -> Any:
    """The ``TaskSpec`` of the task or actor call running in this context, or None."""
    return current_task.get()


def _executor() -> Any:
    w = global_state.worker
    return getattr(w, "executor", None) if w is not None else None


def in_worker() -> bool:
    """Whether this process is a worker (it runs tasks), not a driver."""
    return _executor() is not None


def actor_spec() -> Any:
    """The creation ``TaskSpec`` of the actor this process hosts, or None."""
    ex = _executor()
    return ex.actor_spec if ex is not None else None


def actor_method_meta() -> dict[str, dict[str, Any]]:
    """The hosted actor's method options (what its handles carry)."""
    return getattr(_executor(), "method_meta", {})


def is_actor_task(spec: Any) -> bool:
    return spec is not None and spec.type == cpb.ACTOR_TASK  # type: ignore[no-any-return]


def resources_spec() -> Any:
    """The spec whose resources the running code holds: an actor call's are its actor's."""
    spec = current_task.get()
    actor = actor_spec()
    if is_actor_task(spec) and actor is not None:
        return actor
    return spec


def in_actor_call() -> bool:
    """Whether an actor method runs in this context (``exit_actor`` may be called)."""
    ex = _executor()
    return ex is not None and ex.actor is not None and current_task.get() is not None


def exit_actor() -> None:
    """End the current actor after this call (raises what the executor catches)."""
    # Imported here: only actor workers load the executor, drivers never do.
    from jray._private.worker.executor import ActorExit

    raise ActorExit()


def is_cancelled() -> bool:
    """``get_runtime_context().is_canceled()`` for the running task or actor call."""
    spec = current_task.get()
    ex = _executor()
    if spec is None or ex is None:
        raise RuntimeError("is_canceled() is only available inside a task or an actor call.")
    if ex.is_async and spec.type == cpb.ACTOR_TASK:
        raise RuntimeError("is_canceled() is not supported in async actors: their calls are cancelled "
                           "as asyncio tasks (asyncio.CancelledError).")
    return ex.is_cancelled(spec.task_id)  # type: ignore[no-any-return]


def process_info() -> dict[str, Any]:
    """This process's worker: ``job_id``, ``node_id``, ``worker_id`` (bytes),
    ``namespace``, ``gcs_address`` (needs a connected driver or worker)."""
    w = global_state.require_worker()
    return {"job_id": w.job_id, "node_id": w.node_id, "worker_id": w.worker_id, "namespace": w.namespace,
            "gcs_address": w.gcs_address}


def node_id_hex() -> str:
    """This process's node id (hex), or "" when not connected."""
    w = global_state.worker
    return w.node_id.hex() if w is not None else ""


def runtime_env_json() -> str:
    """The runtime_env in effect here as JSON (``"{}"`` when none): the
    running task's own (merged over its parent's), else this process's (a
    worker's env, which an actor's calls run in; a driver's job env)."""
    from jray._private.protocol import common_pb2 as cpb

    spec = current_task.get()
    if spec is not None and spec.runtime_env and spec.type != cpb.ACTOR_TASK:
        return spec.runtime_env  # type: ignore[no-any-return]
    w = global_state.require_worker()
    return getattr(w, "default_runtime_env_json", "") or "{}"


def set_default_actor_lifetime(lifetime: str | None) -> None:
    """``JobConfig(default_actor_lifetime=...)``: actors this driver creates
    without a ``lifetime`` option get this one."""
    global_state.require_worker().default_actor_lifetime = lifetime
