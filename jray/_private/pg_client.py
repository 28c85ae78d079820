"""The driver's side of placement groups: GCS calls and the ``ready()`` ref.

``jray.util.placement_group`` (Ray's API) calls these plain functions; the
GCS side is ``jray._private.gcs.placement_groups``. :class:`PlacementGroupBase`
is the engine's view of a group handle (its id and bundles), which the public
``PlacementGroup`` subclasses: the scheduling code checks a task's demand
against its bundles without importing the public layer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from jray import exceptions
from jray._private import gcs_client, hooks, serialization
from jray._private.gcs.placement_groups import STATE_NAMES, validate_bundles
from jray._private.ids import PlacementGroupID, random_id
from jray._private.object_ref import ObjectRef
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import gcs_pb2 as gpb
from jray._private.worker import global_state
from jray._private.worker.core_worker import current_task

# How long one GCS long poll of ready() lasts before it is renewed.
_POLL_SECONDS = 10.0


class PlacementGroupBase:
    """A placement group's id and (once known) its bundles, in index order."""

    def __init__(self, id: PlacementGroupID, bundle_cache: list[dict[str, float]] | None = None) -> None:
        self.id = id
        self.bundle_cache = bundle_cache

    @property
    def is_empty(self) -> bool:
        return self.id.is_nil()

    @property
    def bundle_specs(self) -> list[dict[str, float]]:
        """The bundles, in index order (fetched from the GCS once when unknown)."""
        if self.bundle_cache is None:
            info = get_info(self.id.binary())
            if info is None:
                raise ValueError(f"Placement group {self.id.hex()} does not exist.")
            self.bundle_cache = info["bundles"]
        return [dict(b) for b in self.bundle_cache]

    @property
    def bundle_count(self) -> int:
        return len(self.bundle_specs)


def _call(method: str, request: Any) -> Any:
    return gcs_client.call(method, request, worker=hooks.ensure_worker())


def _namespace() -> str:
    spec = current_task.get()
    return spec.namespace if spec is not None and spec.namespace else hooks.ensure_worker().namespace


def _entry(info: gpb.PlacementGroupInfo) -> dict[str, Any]:
    """Ray's ``placement_group_table`` entry of a group, plus its bundles as a list."""
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


def get_info(pg_id: bytes) -> dict[str, Any] | None:
    """The group's table entry (``bundles`` as a list in index order), or None."""
    reply = _call("GetPlacementGroup", gpb.GetPlacementGroupRequest(placement_group_id=pg_id))
    if not reply.found:
        return None
    return _with_bundle_list(reply.group)


def _with_bundle_list(info: gpb.PlacementGroupInfo) -> dict[str, Any]:
    entry = _entry(info)
    entry["bundles"] = [dict(b.resources) for b in info.bundles]
    return entry


def table(pg_id: bytes | None) -> dict[str, Any]:
    """``placement_group_table()``: one group's entry ({} when unknown), or all groups by id hex."""
    if pg_id is not None:
        reply = _call("GetPlacementGroup", gpb.GetPlacementGroupRequest(placement_group_id=pg_id))
        return _entry(reply.group) if reply.found else {}
    groups = _call("ListPlacementGroups", gpb.ListPlacementGroupsRequest()).groups
    return {g.placement_group_id.hex(): _entry(g) for g in groups}


def create(bundles: list[dict[str, float]], strategy: str, name: str, detached: bool) -> bytes:
    """Ask the GCS for a new group of (validated) ``bundles``; its id. A refusal raises ValueError."""
    w = hooks.ensure_worker()
    spec = current_task.get()
    pg_id = random_id(PlacementGroupID.size)
    info = gpb.PlacementGroupInfo(
        placement_group_id=pg_id, name=name, namespace=_namespace(), strategy=strategy,
        creator_job_id=spec.job_id if spec is not None else w.job_id, detached=detached,
        bundles=[cpb.Bundle(placement_group_id=pg_id, index=i, resources=b) for i, b in enumerate(bundles)])
    reply = _call("CreatePlacementGroup", gpb.CreatePlacementGroupRequest(group=info))
    if not reply.ok:
        raise ValueError(reply.error)
    return pg_id


def remove(pg_id: bytes) -> None:
    _call("RemovePlacementGroup", gpb.RemovePlacementGroupRequest(placement_group_id=pg_id))


def find_named(name: str) -> tuple[str, dict[str, Any] | None]:
    """(the current namespace, the entry of its live group named ``name`` or None)."""
    ns = _namespace()
    reply = _call("GetPlacementGroup", gpb.GetPlacementGroupRequest(name=name, namespace=ns))
    return ns, (_with_bundle_list(reply.group) if reply.found else None)


def wait_created(pg_id: bytes, timeout_seconds: float) -> bool:
    """Block until the group is created (True) or ``timeout_seconds`` pass (False)."""
    req = gpb.GetPlacementGroupRequest(placement_group_id=pg_id, wait_ready=True, timeout=float(timeout_seconds))
    reply = _call("GetPlacementGroup", req)
    return bool(reply.found and reply.group.state == gpb.PG_CREATED)


def ready_ref(pg: PlacementGroupBase) -> ObjectRef:
    """An ObjectRef owned by this process that resolves to ``pg`` once every
    bundle is reserved (or to TaskPlacementGroupRemoved)."""
    w = hooks.ensure_worker()
    oid = w.new_put_id()
    w.add_pending(oid)
    ref = ObjectRef(oid, w.owner_key)
    asyncio.run_coroutine_threadsafe(_resolve_when_ready(w, pg, oid), w.loop)
    return ref


async def _resolve_when_ready(w: Any, pg: PlacementGroupBase, oid: bytes) -> None:
    """Loop thread: long-poll the GCS, then make ``oid`` ready with the group
    (or with the error that it was removed)."""
    import grpc

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


def current_group_id() -> bytes | None:
    """The id of the group the current task or actor runs in; None in a
    driver, without a connection, or outside any group."""
    w = global_state.worker
    if w is None:
        return None
    spec = current_task.get()
    if spec is not None and spec.type == cpb.ACTOR_TASK and w.executor is not None:
        spec = w.executor.actor_spec
    if spec is None or spec.scheduling.kind != cpb.SchedulingStrategy.PLACEMENT_GROUP:
        return None
    return spec.scheduling.placement_group_id  # type: ignore[no-any-return]


__all__ = ["PlacementGroupBase", "create", "current_group_id", "find_named", "get_info", "ready_ref", "remove",
           "table", "validate_bundles", "wait_created"]
