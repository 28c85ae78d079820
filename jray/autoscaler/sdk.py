"""The autoscaler's Python API (Ray's ``ray.autoscaler.sdk``).

::

    from jray.autoscaler.sdk import create_or_update_cluster, request_resources, teardown_cluster

    cluster = create_or_update_cluster({
        "cluster_name": "nb", "max_workers": 4, "idle_timeout_minutes": 2,
        "provider": {"type": "slurm", "partition": "debug"},
        "head_node_type": "head",
        "available_node_types": {"head": {"resources": {"CPU": 0}},
                                 "cpu8": {"resources": {"CPU": 8}, "max_workers": 4}}})
    jray.init(address=cluster.address)
    request_resources(num_cpus=16)     # grow now, ahead of the work
    scale_to("cpu8", 2)                # or pin a type to a count (dask's scale(n))
    ...
    teardown_cluster("nb.yaml")        # or the same dict
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from jray._private import autoscaler_state
from jray._private import node as _node
from jray.autoscaler._private.commands import ClusterInfo, wait_for_workers
from jray.autoscaler._private.commands import create_or_update_cluster as _up
from jray.autoscaler._private.commands import teardown_cluster as _down
from jray.autoscaler._private.config import load

__all__ = ["create_or_update_cluster", "get_status", "request_resources", "scale_to", "teardown_cluster"]


def request_resources(num_cpus: int | None = None, bundles: Sequence[Mapping[str, float]] | None = None) -> None:
    """Ask the autoscaler to scale the cluster to hold ``num_cpus`` CPUs
    and/or ``bundles`` (resource dicts, e.g. ``[{"GPU": 1}] * 4``) at once,
    bypassing ``upscaling_speed``. The request stands (nodes it needs are not
    scaled down) until the next call replaces it; ``request_resources()``
    with neither clears it. As Ray's, it asks for capacity in total, not on
    top of what runs."""
    if num_cpus is not None and (isinstance(num_cpus, bool) or not isinstance(num_cpus, int) or num_cpus < 0):
        raise TypeError(f"num_cpus must be a non-negative integer, got {num_cpus!r}")
    if bundles is not None and (isinstance(bundles, Mapping) or not isinstance(bundles, Sequence)):
        raise TypeError(f"bundles must be a list of resource dicts, got {type(bundles).__name__}")
    request: list[dict[str, float]] = [{"CPU": 1.0}] * (num_cpus or 0)
    for i, b in enumerate(bundles or []):
        if not isinstance(b, Mapping):
            raise TypeError(f"bundles[{i}] must be a dict of resource name to amount, got {type(b).__name__}")
        clean = {}
        for k, v in b.items():
            if (not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, (int, float))
                    or not math.isfinite(v) or v < 0):
                raise TypeError(f"bundles[{i}]: {k!r}: {v!r} is not a resource name with a non-negative amount")
            clean[k] = float(v)
        request.append(clean)
    if autoscaler_state.driver_connected():
        autoscaler_state.put_resource_request(request)
        return
    info = _node.read_address_file()
    address = os.environ.get("JRAY_ADDRESS") or (info or {}).get("gcs_address")
    token = os.environ.get("JRAY_TOKEN") or (info or {}).get("token")
    if not address or not token:
        raise RuntimeError("request_resources() needs a cluster: call jray.init() first")
    autoscaler_state.put_resource_request(request, gcs_address=address, token=token)


def _cluster(address: str | None, token: str | None) -> tuple[str | None, str | None]:
    """``(None, None)`` to go through the connected driver, else the cluster to call."""
    if address is None and autoscaler_state.driver_connected():
        return None, None
    info = _node.read_address_file() or {}
    address = address or os.environ.get("JRAY_ADDRESS") or info.get("gcs_address")
    token = token or os.environ.get("JRAY_TOKEN") or info.get("token")
    if not address or not token:
        raise RuntimeError("this needs a cluster: call jray.init() first, or give address and token")
    return address, token


def scale_to(node_type: str, count: int | None, *, address: str | None = None,
             token: str | None = None) -> dict[str, int]:
    """Pin a worker node type to ``count`` nodes, as dask's
    ``cluster.scale(n)`` (jray's own; Ray has no such call): the autoscaler
    launches up to ``count`` and holds the type there whatever the demand;
    below the current count it stops launching nodes and idle ones at once,
    busy ones once their work is done. ``count=None`` hands the type back
    to the demand (its ``min_workers``/``max_workers``). ``count`` must lie
    within the type's ``max_workers``. Returns every pinned type.

    Needs a running autoscaler (``jray up``, :func:`create_or_update_cluster`)."""
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise TypeError(f"count must be a non-negative integer or None, got {count!r}")
    gcs, tok = _cluster(address, token)
    status = autoscaler_state.read_status() if gcs is None else autoscaler_state.read_status_at(gcs, tok or "")
    if not status or not status.get("running", True):
        raise RuntimeError("no autoscaler runs on this cluster: start it with `jray up` or create_or_update_cluster()")
    types = status.get("node_types") or {}
    if node_type not in types:
        raise ValueError(f"unknown worker node type {node_type!r}; the cluster's are: {', '.join(sorted(types))}")
    limit = int(types[node_type].get("max_workers", 0))
    if count is not None and count > limit:
        raise ValueError(f"cannot scale {node_type!r} to {count}: its max_workers is {limit}")
    return autoscaler_state.put_scale_target(node_type, count, gcs_address=gcs, token=tok)


def create_or_update_cluster(cluster_config: str | os.PathLike[str] | Mapping[str, Any], *,
                             no_restart: bool = False, restart_only: bool = False, no_config_cache: bool = False,
                             wait_for_min_workers: bool = False, timeout: float = 300.0) -> ClusterInfo:
    """Start the cluster of ``cluster_config`` (a YAML path or a dict, Ray's
    format) with its autoscaler, or update a running one's autoscaler with
    the config (``jray up``). Returns where it is (``.address`` for
    ``jray.init``). With ``wait_for_min_workers`` it returns once the
    ``min_workers`` nodes joined (at most ``timeout`` seconds).
    ``no_restart``, ``restart_only`` and ``no_config_cache`` are accepted
    for Ray's signature (they steer Ray's SSH setup, which jray does not do)."""
    info = _up(cluster_config)
    if wait_for_min_workers:
        cfg = load(cluster_config)
        want = sum(t.min_workers for n, t in cfg.worker_types.items())
        wait_for_workers(info, want, timeout)
    return info


def teardown_cluster(cluster_config: str | os.PathLike[str] | Mapping[str, Any], yes: bool = False,
                     workers_only: bool = False, keep_min_workers: bool = False) -> None:
    """Stop the cluster's autoscaler, terminate its nodes and stop its head
    (``jray down``). ``workers_only``: terminate the worker nodes only (the
    head and the autoscaler keep running); ``keep_min_workers``: spare
    ``min_workers`` nodes of each type. ``yes`` is accepted for Ray's
    signature (nothing asks here)."""
    _down(cluster_config, workers_only=workers_only, keep_min_workers=keep_min_workers)


def get_status(address: str | None = None, token: str | None = None) -> dict[str, Any] | None:
    """The autoscaler's last published status (nodes by state, pending
    demand, decisions, failures), or None when no autoscaler ran."""
    gcs, tok = _cluster(address, token)
    if gcs is None:
        return autoscaler_state.read_status()
    return autoscaler_state.read_status_at(gcs, tok or "")
