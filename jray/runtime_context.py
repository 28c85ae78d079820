"""``get_runtime_context()``: ids and resources of the running job, task,
actor and node (Ray's accessors). What runs now is read through
``jray._private.task_context``."""

from __future__ import annotations

from typing import Any

from jray._private import driver, pg_client, task_context
from jray._private.ids import JobID, NodeID
from jray.actor import ActorHandle


class RuntimeContext:
    """Ray's ``RuntimeContext``: made by ``jray.get_runtime_context()``."""

    def _spec(self) -> Any:
        return task_context.current_spec()

    def get_job_id(self) -> str:
        spec = self._spec()
        return (spec.job_id if spec is not None else task_context.process_info()["job_id"]).hex()  # type: ignore[no-any-return]

    @property
    def job_id(self) -> Any:
        return JobID(bytes.fromhex(self.get_job_id()))

    def get_task_id(self) -> str | None:
        spec = self._spec()
        return spec.task_id.hex() if spec is not None else None

    def get_task_name(self) -> str | None:
        spec = self._spec()
        return spec.name if spec is not None else None

    def get_actor_id(self) -> str | None:
        actor = task_context.actor_spec()
        if actor is not None:
            return str(actor.actor_creation.actor_id.hex())
        return None

    def get_actor_name(self) -> str | None:
        actor = task_context.actor_spec()
        if actor is not None:
            return actor.actor_creation.name or None
        return None

    @property
    def current_actor(self) -> Any:
        actor = task_context.actor_spec()
        if actor is None:
            raise RuntimeError("This method is only available in an actor.")
        ac = actor.actor_creation
        return ActorHandle(ac.actor_id, ac.class_name, task_context.actor_method_meta(), ac.max_task_retries,
                           ac.is_async)

    @property
    def was_current_actor_reconstructed(self) -> bool:
        return False

    def get_node_id(self) -> str:
        return task_context.process_info()["node_id"].hex()  # type: ignore[no-any-return]

    @property
    def node_id(self) -> Any:
        return NodeID(task_context.process_info()["node_id"])

    def get_placement_group_id(self) -> str | None:
        """Hex id of the placement group the current task or actor runs in."""
        pg_id = pg_client.current_group_id()
        return pg_id.hex() if pg_id is not None else None

    def is_canceled(self) -> bool:
        """True once ``jray.cancel`` was called on the running task or actor call
        (a sync or threaded actor's call is not interrupted: it checks this)."""
        return task_context.is_cancelled()

    def get_worker_id(self) -> str:
        return task_context.process_info()["worker_id"].hex()  # type: ignore[no-any-return]

    @property
    def namespace(self) -> str:
        spec = self._spec()
        return (spec.namespace if spec is not None and spec.namespace  # type: ignore[no-any-return]
                else task_context.process_info()["namespace"])

    def get_assigned_resources(self) -> dict[str, float]:
        spec = task_context.resources_spec()
        return dict(spec.resources) if spec is not None else {}

    def get_accelerator_ids(self) -> dict[str, list[str]]:
        return {"GPU": [str(g) for g in driver.gpu_ids()]}

    @property
    def runtime_env(self) -> Any:
        """The runtime_env in effect (a ``jray.runtime_env.RuntimeEnv``):
        the running task's or actor's (its own merged over its parent's, as
        Ray merges), or the job's at a driver. Local ``working_dir`` and
        ``py_modules`` paths show as the package URIs they were uploaded as."""
        from jray.runtime_env import RuntimeEnv

        return RuntimeEnv._from_json(self.get_runtime_env_string())

    def get_runtime_env_string(self) -> str:
        """The effective runtime_env as a JSON string (``"{}"`` when none)."""
        return task_context.runtime_env_json()

    @property
    def gcs_address(self) -> str:
        return task_context.process_info()["gcs_address"]  # type: ignore[no-any-return]

    def get(self) -> dict[str, Any]:
        return {"job_id": self.get_job_id(), "node_id": self.get_node_id(), "task_id": self.get_task_id(),
                "actor_id": self.get_actor_id(), "namespace": self.namespace}
