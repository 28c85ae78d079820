"""``get_runtime_context()``: ids and resources of the running job, task,
actor and node (Ray's accessors)."""

from __future__ import annotations

from typing import Any

from jray._private.protocol.common_pb2 import ACTOR_TASK as ACTOR
from jray._private.worker.core_worker import CoreWorker, current_task


class RuntimeContext:
    def __init__(self, worker: CoreWorker) -> None:
        self._w = worker

    def _spec(self) -> Any:
        return current_task.get()

    def get_job_id(self) -> str:
        spec = self._spec()
        return (spec.job_id if spec is not None else self._w.job_id).hex()

    @property
    def job_id(self) -> Any:
        from jray._private.ids import JobID

        return JobID(bytes.fromhex(self.get_job_id()))

    def get_task_id(self) -> str | None:
        spec = self._spec()
        return spec.task_id.hex() if spec is not None else None

    def get_task_name(self) -> str | None:
        spec = self._spec()
        return spec.name if spec is not None else None

    def get_actor_id(self) -> str | None:
        ex = self._w.executor
        if ex is not None and ex.actor_spec is not None:
            return str(ex.actor_spec.actor_creation.actor_id.hex())
        return None

    def get_actor_name(self) -> str | None:
        ex = self._w.executor
        if ex is not None and ex.actor_spec is not None:
            return ex.actor_spec.actor_creation.name or None
        return None

    @property
    def current_actor(self) -> Any:
        from jray.actor import ActorHandle

        ex = self._w.executor
        if ex is None or ex.actor_spec is None:
            raise RuntimeError("This method is only available in an actor.")
        ac = ex.actor_spec.actor_creation
        return ActorHandle(ac.actor_id, ac.class_name, getattr(ex, "method_meta", {}), ac.max_task_retries, ac.is_async)

    @property
    def was_current_actor_reconstructed(self) -> bool:
        return False

    def get_node_id(self) -> str:
        return self._w.node_id.hex()

    @property
    def node_id(self) -> Any:
        from jray._private.ids import NodeID

        return NodeID(self._w.node_id)

    def get_placement_group_id(self) -> str | None:
        """Hex id of the placement group the current task or actor runs in."""
        from jray.util.placement_group import get_current_placement_group

        pg = get_current_placement_group()
        return pg.id.hex() if pg is not None else None

    def is_canceled(self) -> bool:
        """True once ``jray.cancel`` was called on the running task or actor call
        (a sync or threaded actor's call is not interrupted: it checks this)."""
        spec = self._spec()
        ex = self._w.executor
        if spec is None or ex is None:
            raise RuntimeError("is_canceled() is only available inside a task or an actor call.")
        if ex.is_async and spec.type == ACTOR:
            raise RuntimeError("is_canceled() is not supported in async actors: their calls are cancelled "
                               "as asyncio tasks (asyncio.CancelledError).")
        return ex.is_cancelled(spec.task_id)

    def get_worker_id(self) -> str:
        return self._w.worker_id.hex()

    @property
    def namespace(self) -> str:
        spec = self._spec()
        return (spec.namespace if spec is not None and spec.namespace else self._w.namespace)

    def get_assigned_resources(self) -> dict[str, float]:
        spec = self._spec()
        ex = self._w.executor
        if spec is not None and spec.type == 2 and ex is not None and ex.actor_spec is not None:
            spec = ex.actor_spec
        return dict(spec.resources) if spec is not None else {}

    def get_accelerator_ids(self) -> dict[str, list[str]]:
        from jray.api import get_gpu_ids

        return {"GPU": [str(g) for g in get_gpu_ids()]}

    @property
    def gcs_address(self) -> str:
        return self._w.gcs_address

    def get(self) -> dict[str, Any]:
        return {"job_id": self.get_job_id(), "node_id": self.get_node_id(), "task_id": self.get_task_id(),
                "actor_id": self.get_actor_id(), "namespace": self.namespace}
