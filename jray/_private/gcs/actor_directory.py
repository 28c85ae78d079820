"""The GCS's actor table: states, names per namespace, versions for
long-polling callers. Plain state; the servicer does the I/O."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import gcs_pb2 as gpb


@dataclass(eq=False)
class ActorRecord:
    info: gpb.ActorInfo
    spec: cpb.TaskSpec
    worker_id: bytes = b""
    raylet_address: str = ""
    no_restart: bool = False
    waiters: list[asyncio.Future] = field(default_factory=list)
    placing: bool = False  # waiting for a node to grant it a worker (pending demand, for the autoscaler)


class ActorDirectory:
    def __init__(self) -> None:
        self.actors: dict[bytes, ActorRecord] = {}
        self.names: dict[tuple[str, str], bytes] = {}
        self.by_worker: dict[bytes, bytes] = {}
        # Written through to the GCS's store: (record, first time) on every change.
        self.on_change: Callable[[ActorRecord, bool], None] | None = None

    def restore(self, rec: ActorRecord) -> None:
        """Put back an actor read from the store (names of live ones, workers of ALIVE ones)."""
        self.actors[rec.info.actor_id] = rec
        if rec.info.name and rec.info.state != gpb.DEAD:
            self.names[(rec.info.namespace, rec.info.name)] = rec.info.actor_id
        if rec.worker_id and rec.info.state == gpb.ALIVE:
            self.by_worker[rec.worker_id] = rec.info.actor_id

    def register(self, spec: cpb.TaskSpec, resources: dict[str, float]) -> ActorRecord:
        ac = spec.actor_creation
        info = gpb.ActorInfo(
            actor_id=ac.actor_id, job_id=spec.job_id, state=gpb.PENDING_CREATION, name=ac.name,
            namespace=ac.namespace, class_name=ac.class_name, max_restarts=ac.max_restarts,
            detached=ac.detached, max_task_retries=ac.max_task_retries, is_async=ac.is_async,
            method_meta=ac.method_meta, resources=resources, version=1,
        )
        rec = ActorRecord(info, spec)
        self.actors[ac.actor_id] = rec
        if ac.name:
            self.names[(ac.namespace, ac.name)] = ac.actor_id
        if self.on_change is not None:
            self.on_change(rec, True)
        return rec

    def lookup_name(self, namespace: str, name: str) -> ActorRecord | None:
        aid = self.names.get((namespace, name))
        if aid is None:
            return None
        rec = self.actors.get(aid)
        if rec is None or rec.info.state == gpb.DEAD:
            return None
        return rec

    def update(self, rec: ActorRecord, **fields: object) -> None:
        for k, v in fields.items():
            if k == "address":
                rec.info.address.CopyFrom(v)  # type: ignore[arg-type]
            else:
                setattr(rec.info, k, v)
        rec.info.version += 1
        if rec.info.state == gpb.DEAD and rec.info.name:
            key = (rec.info.namespace, rec.info.name)
            if self.names.get(key) == rec.info.actor_id:
                del self.names[key]
        if self.on_change is not None:
            self.on_change(rec, False)
        for fut in rec.waiters:
            if not fut.done():
                fut.set_result(None)
        rec.waiters.clear()

    async def wait_change(self, rec: ActorRecord, after_version: int, timeout: float) -> None:
        if rec.info.version > after_version:
            return
        fut = asyncio.get_running_loop().create_future()
        rec.waiters.append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            pass
