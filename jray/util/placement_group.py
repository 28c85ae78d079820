"""Placement groups (Ray's ``ray.util.placement_group``): reserve bundles of
resources across nodes at once (gang scheduling), then run tasks and actors
inside them with ``PlacementGroupSchedulingStrategy``.

::

    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="SPREAD")
    jray.get(pg.ready())
    f.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote()
    remove_placement_group(pg)

The GCS places the bundles (two-phase reserve/commit on the raylets) and
keeps the table; ``ready()`` is an ObjectRef owned by the caller that a
long poll on the GCS resolves once every bundle is reserved.
"""

from __future__ import annotations

import asyncio
from typing import Any

from jray import exceptions
from jray._private.gcs.placement_groups import STATE_NAMES, validate_bundles
from jray._private.ids import PlacementGroupID, random_id
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import gcs_pb2 as gpb
from jray._private.worker import global_state

# How long one GCS long poll of ready() lasts before it is renewed.
_POLL_SECONDS = 10.0


def _worker() -> Any:
    w = global_state.worker
    if w is None:
        from jray import api

        api.init()  # like remote(): the first use starts a local cluster
        w = global_state.require_worker()
    return w


def _call(w: Any, method: str, request: Any) -> Any:
    async def call() -> Any:
        return await getattr(w.gcs, method)(request)

    return w.run_sync(call())


def _namespace(w: Any) -> str:
    from jray._private.worker.core_worker import current_task

    spec = current_task.get()
    return spec.namespace if spec is not None and spec.namespace else w.namespace  # type: ignore[no-any-return]


class PlacementGroup:
    """A handle to a placement group: pass it to tasks and actors freely."""

    def __init__(self, id: PlacementGroupID, bundle_cache: list[dict[str, float]] | None = None) -> None:
        self.id = id
        self.bundle_cache = bundle_cache

    @staticmethod
    def empty() -> PlacementGroup:
        return PlacementGroup(PlacementGroupID(b"\xff" * PlacementGroupID.size))

    @property
    def is_empty(self) -> bool:
        return self.id.is_nil()

    @property
    def bundle_specs(self) -> list[dict[str, float]]:
        """The bundles, in index order (fetched from the GCS once when unknown)."""
        if self.bundle_cache is None:
            info = _get_info(_worker(), self.id.binary())
            if info is None:
                raise ValueError(f"Placement group {self.id.hex()} does not exist.")
            self.bundle_cache = [dict(b.resources) for b in info.bundles]
        return [dict(b) for b in self.bundle_cache]

    @property
    def bundle_count(self) -> int:
        return len(self.bundle_specs)

    def ready(self) -> Any:
        """An ObjectRef that becomes ready (its value: this group) once every
        bundle is reserved; getting it raises TaskPlacementGroupRemoved when
        the group is removed first."""
        from jray.object_ref import ObjectRef

        w = _worker()
        oid = w.new_put_id()
        w.add_pending(oid)
        ref = ObjectRef(oid, w.owner_key)
        asyncio.run_coroutine_threadsafe(_resolve_when_ready(w, self, oid), w.loop)
        return ref

    def wait(self, timeout_seconds: float = 30) -> bool:
        """Block until the group is ready (True) or ``timeout_seconds`` pass (False)."""
        if isinstance(timeout_seconds, bool) or not isinstance(timeout_seconds, (int, float)) or timeout_seconds < 0:
            raise ValueError(f"timeout_seconds must be a non-negative number, got {timeout_seconds!r}")
        w = _worker()
        req = gpb.GetPlacementGroupRequest(placement_group_id=self.id.binary(), wait_ready=True,
                                           timeout=float(timeout_seconds))
        reply = _call(w, "GetPlacementGroup", req)
        return bool(reply.found and reply.group.state == gpb.PG_CREATED)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroup) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"PlacementGroup(id={self.id.hex()}, bundles={self.bundle_cache})"

    def __reduce__(self) -> Any:
        return (PlacementGroup, (self.id, self.bundle_cache))


async def _resolve_when_ready(w: Any, pg: PlacementGroup, oid: bytes) -> None:
    """Loop thread: long-poll the GCS, then make ``oid`` ready with the group
    (or with the error that it was removed)."""
    import grpc

    from jray._private import serialization

    req = gpb.GetPlacementGroupRequest(placement_group_id=pg.id.binary(), wait_ready=True, timeout=_POLL_SECONDS)
    while oid in w.refs and not w.shutting_down:
        try:
            reply = await w.gcs.GetPlacementGroup(req, timeout=_POLL_SECONDS + 10)
        except grpc.RpcError:
            await asyncio.sleep(0.5)
            continue
        err: BaseException | None = None
        if not reply.found:
            err = exceptions.TaskPlacementGroupRemoved(f"Placement group {pg.id.hex()} does not exist.")
        elif reply.group.state == gpb.PG_REMOVED:
            err = exceptions.TaskPlacementGroupRemoved(
                f"Placement group {pg.id.hex()} was removed before all its bundles were reserved.")
        elif reply.group.state != gpb.PG_CREATED:
            continue
        if err is not None:
            data = serialization.serialize(err, error=True).to_bytes()
            w.set_ready(cpb.ReturnObject(object_id=oid, data=data, size=len(data), is_error=True))
        else:
            ser = serialization.serialize(pg)
            w.set_ready(cpb.ReturnObject(object_id=oid, data=ser.to_bytes(), size=ser.total_size))
        return


def _get_info(w: Any, pg_id: bytes) -> gpb.PlacementGroupInfo | None:
    reply = _call(w, "GetPlacementGroup", gpb.GetPlacementGroupRequest(placement_group_id=pg_id))
    return reply.group if reply.found else None


def placement_group(bundles: list[dict[str, float]], strategy: str = "PACK", name: str = "",
                    lifetime: str | None = None, _soft_target_node_id: str | None = None,
                    bundle_label_selector: Any = None) -> PlacementGroup:
    """Reserve ``bundles`` (a list of resource dicts) with ``strategy``
    (``PACK``, ``SPREAD``, ``STRICT_PACK`` or ``STRICT_SPREAD``); returns at
    once: the group is pending until ``ready()`` resolves."""
    clean = validate_bundles(bundles, strategy)
    if lifetime not in (None, "detached"):
        raise ValueError(f"The placement group lifetime must be None or 'detached', got {lifetime!r}.")
    if not isinstance(name, str):
        raise ValueError(f"The placement group name must be a string, got {type(name).__name__}.")
    w = _worker()
    from jray._private.worker.core_worker import current_task

    spec = current_task.get()
    pg_id = random_id(PlacementGroupID.size)
    info = gpb.PlacementGroupInfo(
        placement_group_id=pg_id, name=name, namespace=_namespace(w), strategy=strategy,
        creator_job_id=spec.job_id if spec is not None else w.job_id, detached=lifetime == "detached",
        bundles=[cpb.Bundle(placement_group_id=pg_id, index=i, resources=b) for i, b in enumerate(clean)])
    reply = _call(w, "CreatePlacementGroup", gpb.CreatePlacementGroupRequest(group=info))
    if not reply.ok:
        raise ValueError(reply.error)
    return PlacementGroup(PlacementGroupID(pg_id), clean)


def remove_placement_group(placement_group: PlacementGroup) -> None:
    """Remove the group: its resources come back, and the actors and tasks
    running in it are killed (actors fail with ActorDiedError)."""
    if not isinstance(placement_group, PlacementGroup):
        raise TypeError(f"remove_placement_group() expects a PlacementGroup, got {type(placement_group).__name__}.")
    _call(_worker(), "RemovePlacementGroup",
          gpb.RemovePlacementGroupRequest(placement_group_id=placement_group.id.binary()))


def _table_entry(info: gpb.PlacementGroupInfo) -> dict[str, Any]:
    return {
        "placement_group_id": info.placement_group_id.hex(),
        "name": info.name,
        "bundles": {b.index: dict(b.resources) for b in info.bundles},
        "bundles_to_node_id": {b.index: b.node_id.hex() for b in info.bundles if b.node_id},
        "strategy": info.strategy,
        "state": STATE_NAMES.get(info.state, "PENDING"),
        "is_detached": info.detached,
        "namespace": info.namespace,
        "creator_job_id": info.creator_job_id.hex(),
    }


def placement_group_table(placement_group: PlacementGroup | None = None) -> dict[str, Any]:
    """The state of one group, or of every group (keyed by id hex)."""
    w = _worker()
    if placement_group is not None:
        info = _get_info(w, placement_group.id.binary())
        return _table_entry(info) if info is not None else {}
    groups = _call(w, "ListPlacementGroups", gpb.ListPlacementGroupsRequest()).groups
    return {g.placement_group_id.hex(): _table_entry(g) for g in groups}


def get_placement_group(placement_group_name: str) -> PlacementGroup:
    """The live group named ``placement_group_name`` in the current namespace."""
    if not isinstance(placement_group_name, str) or not placement_group_name:
        raise ValueError("Please give the placement group's name (a non-empty string).")
    w = _worker()
    ns = _namespace(w)
    reply = _call(w, "GetPlacementGroup", gpb.GetPlacementGroupRequest(name=placement_group_name, namespace=ns))
    if not reply.found:
        raise ValueError(f"Failed to look up placement group named {placement_group_name!r} in namespace "
                         f"{ns!r}: it does not exist or was removed.")
    g = reply.group
    return PlacementGroup(PlacementGroupID(g.placement_group_id), [dict(b.resources) for b in g.bundles])


def get_current_placement_group() -> PlacementGroup | None:
    """The group the current task or actor runs in; None in a driver or
    outside any group."""
    from jray._private.worker.core_worker import current_task

    w = global_state.worker
    if w is None:
        return None
    spec = current_task.get()
    if spec is not None and spec.type == cpb.ACTOR_TASK and w.executor is not None:
        spec = w.executor.actor_spec
    if spec is None or spec.scheduling.kind != cpb.SchedulingStrategy.PLACEMENT_GROUP:
        return None
    return PlacementGroup(PlacementGroupID(spec.scheduling.placement_group_id))


__all__ = ["PlacementGroup", "get_current_placement_group", "get_placement_group", "placement_group",
           "placement_group_table", "remove_placement_group"]
