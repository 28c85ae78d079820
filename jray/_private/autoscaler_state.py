"""The engine's side of the autoscaler: what it reads of and writes to the
GCS, as plain data (the autoscaler in ``jray/autoscaler/`` never touches the
protocol stubs, see ``tests/unit/test_layering.py``).

- :func:`read_state` / :class:`GcsLink.resource_state`: the cluster's nodes
  (resources, labels, idle time) and its pending demand
  (``GetClusterResourceState``) as a :class:`ClusterResourceState`;
- the KV keys the autoscaler shares with the rest of jray (namespace
  ``autoscaler``): ``resource_request`` (the standing
  ``request_resources`` bundles, JSON) and ``status`` (the monitor's
  published state, JSON, read by ``jray status`` and the notebook layer)
  and ``scale_targets`` (``{node_type: count}``, JSON: node types a user
  pinned to a count with ``sdk.scale_to`` or the sidebar's "scale to N").

:class:`GcsLink` is a long-lived connection for the monitor process (its own
asyncio loop); the ``*_at`` functions open a channel per call (the CLI, the
SDK without a driver); :func:`put_resource_request` goes through the
connected driver when there is one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jray._private import gcs_client, rpc
from jray._private.protocol import gcs_pb2 as gpb
from jray._private.protocol import gcs_pb2_grpc as ggrpc
from jray._private.worker import global_state

KV_NS = "autoscaler"
RESOURCE_REQUEST_KEY = b"resource_request"
STATUS_KEY = b"status"
SCALE_TARGETS_KEY = b"scale_targets"


@dataclass
class Demand:
    """Tasks or actors of one resource shape waiting for resources."""

    shape: dict[str, float]
    ready: int = 0        # lease requests waiting where some node could fit them
    infeasible: int = 0   # lease requests no live node can ever fit
    backlog: int = 0      # tasks queued at their owners beyond those requests

    @property
    def count(self) -> int:
        return self.ready + self.infeasible + self.backlog


@dataclass
class PendingGroup:
    """A placement group (some of) whose bundles have no node yet."""

    pg_id: str
    name: str
    strategy: str
    bundles: list[dict[str, float]]


@dataclass
class NodeState:
    node_id: str
    ip: str
    alive: bool
    is_head: bool
    total: dict[str, float]
    available: dict[str, float]
    labels: dict[str, str]
    idle_s: float             # how long it has been idle; 0 while busy


@dataclass
class ClusterResourceState:
    nodes: list[NodeState] = field(default_factory=list)
    demands: list[Demand] = field(default_factory=list)          # tasks (raylets' load)
    pending_actors: list[Demand] = field(default_factory=list)
    pending_groups: list[PendingGroup] = field(default_factory=list)
    resource_request: list[dict[str, float]] = field(default_factory=list)  # request_resources()
    time: float = 0.0
    scale_targets: dict[str, int] = field(default_factory=dict)  # scale_to(): node type -> pinned count


def _demand(d: Any) -> Demand:
    return Demand(dict(d.shape), d.num_ready_requests_queued, d.num_infeasible_requests_queued, d.backlog_size)


def state_from_reply(reply: gpb.GetClusterResourceStateReply, request_json: bytes | None,
                     targets_json: bytes | None = None) -> ClusterResourceState:
    nodes = [NodeState(n.node_id.hex(), n.ip, n.alive, n.is_head, dict(n.resources_total),
                       dict(n.resources_available), dict(n.labels), n.idle_duration_ms / 1000.0)
             for n in reply.nodes]
    groups = [PendingGroup(g.placement_group_id.hex(), g.name, g.strategy, [dict(b.values) for b in g.bundles])
              for g in reply.pending_placement_groups]
    return ClusterResourceState(nodes, [_demand(d) for d in reply.resource_load],
                                [_demand(d) for d in reply.pending_actors], groups,
                                parse_resource_request(request_json), time.time(),
                                parse_scale_targets(targets_json))


def parse_resource_request(data: bytes | None) -> list[dict[str, float]]:
    if not data:
        return []
    try:
        bundles = json.loads(data).get("bundles", [])
        return [{str(k): float(v) for k, v in b.items()} for b in bundles]
    except (ValueError, AttributeError, TypeError):
        return []


def parse_scale_targets(data: bytes | None) -> dict[str, int]:
    if not data:
        return {}
    try:
        raw = json.loads(data)
        return {str(k): int(v) for k, v in raw.items() if isinstance(v, int) and not isinstance(v, bool) and v >= 0}
    except (ValueError, AttributeError, TypeError):
        return {}


class GcsLink:
    """The monitor's connection to the GCS (call from one asyncio loop)."""

    def __init__(self, gcs_address: str, token: str) -> None:
        self.gcs_address = gcs_address
        self._channel = rpc.make_channel(gcs_address, token)
        self._stub = ggrpc.GcsServiceStub(self._channel)

    async def resource_state(self, timeout: float = 10.0) -> ClusterResourceState:
        reply = await self._stub.GetClusterResourceState(gpb.GetClusterResourceStateRequest(), timeout=timeout)
        req = await self.kv_get(RESOURCE_REQUEST_KEY, timeout=timeout)
        targets = await self.kv_get(SCALE_TARGETS_KEY, timeout=timeout)
        return state_from_reply(reply, req, targets)

    async def kv_get(self, key: bytes, timeout: float = 10.0) -> bytes | None:
        r = await self._stub.KVGet(gpb.KVGetRequest(ns=KV_NS, key=key), timeout=timeout)
        return bytes(r.value) if r.found else None

    async def kv_put(self, key: bytes, value: bytes, timeout: float = 10.0) -> None:
        await self._stub.KVPut(gpb.KVPutRequest(ns=KV_NS, key=key, value=value, overwrite=True), timeout=timeout)

    async def close(self) -> None:
        await self._channel.close()


def read_state(gcs_address: str, token: str, timeout: float = 10.0) -> ClusterResourceState:
    """One ``GetClusterResourceState`` (and the standing resource request)."""
    reply = gcs_client._call_at(gcs_address, token, "GetClusterResourceState",
                                gpb.GetClusterResourceStateRequest(), timeout)
    return state_from_reply(reply, kv_get_at(gcs_address, token, RESOURCE_REQUEST_KEY, timeout),
                            kv_get_at(gcs_address, token, SCALE_TARGETS_KEY, timeout))


def kv_get_at(gcs_address: str, token: str, key: bytes, timeout: float = 5.0) -> bytes | None:
    r = gcs_client._call_at(gcs_address, token, "KVGet", gpb.KVGetRequest(ns=KV_NS, key=key), timeout)
    return bytes(r.value) if r.found else None


def kv_put_at(gcs_address: str, token: str, key: bytes, value: bytes, timeout: float = 5.0) -> None:
    gcs_client._call_at(gcs_address, token, "KVPut",
                        gpb.KVPutRequest(ns=KV_NS, key=key, value=value, overwrite=True), timeout)


def read_status_at(gcs_address: str, token: str, timeout: float = 5.0) -> dict[str, Any] | None:
    """The autoscaler's published status, or None when none runs (or ran)."""
    data = kv_get_at(gcs_address, token, STATUS_KEY, timeout)
    if not data:
        return None
    try:
        return dict(json.loads(data))
    except ValueError:
        return None


def read_status() -> dict[str, Any] | None:
    """The published status, through the connected driver."""
    r = gcs_client.call("KVGet", gpb.KVGetRequest(ns=KV_NS, key=STATUS_KEY))
    if not r.found:
        return None
    try:
        return dict(json.loads(r.value))
    except ValueError:
        return None


def driver_connected() -> bool:
    """Whether this process is a connected driver (calls go through it)."""
    return global_state.worker is not None


def put_resource_request(bundles: Sequence[Mapping[str, float]], *, gcs_address: str | None = None,
                         token: str | None = None) -> None:
    """Replace the standing ``request_resources`` request (an empty list
    clears it): through the connected driver, else the cluster given."""
    value = json.dumps({"bundles": [dict(b) for b in bundles], "time": time.time()}).encode()
    if global_state.worker is not None and gcs_address is None:
        gcs_client.call("KVPut", gpb.KVPutRequest(ns=KV_NS, key=RESOURCE_REQUEST_KEY, value=value, overwrite=True))
        return
    if gcs_address is None or token is None:
        raise RuntimeError("request_resources needs a cluster: call jray.init() first")
    kv_put_at(gcs_address, token, RESOURCE_REQUEST_KEY, value)


def _kv(key: bytes, value: bytes | None, gcs_address: str | None, token: str | None) -> bytes | None:
    """Get (``value`` None) or put one key: through the connected driver
    unless a cluster is given."""
    if global_state.worker is not None and gcs_address is None:
        if value is None:
            r = gcs_client.call("KVGet", gpb.KVGetRequest(ns=KV_NS, key=key))
            return bytes(r.value) if r.found else None
        gcs_client.call("KVPut", gpb.KVPutRequest(ns=KV_NS, key=key, value=value, overwrite=True))
        return None
    if gcs_address is None or token is None:
        raise RuntimeError("the autoscaler's settings need a cluster: call jray.init() first")
    if value is None:
        return kv_get_at(gcs_address, token, key)
    kv_put_at(gcs_address, token, key, value)
    return None


def read_scale_targets(*, gcs_address: str | None = None, token: str | None = None) -> dict[str, int]:
    return parse_scale_targets(_kv(SCALE_TARGETS_KEY, None, gcs_address, token))


def put_scale_target(node_type: str, count: int | None, *, gcs_address: str | None = None,
                     token: str | None = None) -> dict[str, int]:
    """Pin ``node_type`` to ``count`` nodes (None: back to demand-driven);
    returns every pinned type."""
    targets = read_scale_targets(gcs_address=gcs_address, token=token)
    if count is None:
        targets.pop(node_type, None)
    else:
        targets[node_type] = count
    _kv(SCALE_TARGETS_KEY, json.dumps(targets).encode(), gcs_address, token)
    return targets
