"""This process's driver: connect and disconnect it, and its object calls.

``jray.api`` keeps Ray's signatures, argument checks and error messages;
the CoreWorker behind them is started, stopped and called here. The object
calls, ``require`` and ``node_infos`` start (or attach to) a cluster on
first use, as Ray does; the others need a connected driver.
"""

from __future__ import annotations

import json
import time
from typing import Any

from jray._private import gcs_client, hooks
from jray._private.object_ref import ObjectRef
from jray._private.runtime_env.resolve import prepare_runtime_env, resolve_for
from jray._private.worker import global_state
from jray._private.worker.core_worker import CoreWorker, current_task


def is_connected() -> bool:
    return global_state.worker is not None


def require() -> None:
    """Make sure a driver (or worker) is connected: without one, start or
    attach to a cluster first (``jray.init()``), as Ray does on the first
    use of any API call."""
    hooks.ensure_worker()


def connect(*, gcs_address: str, raylet_address: str, token: str, node_id: bytes, namespace: str,
            log_to_driver: bool, runtime_env: dict[str, Any] | None, client_ip: str | None = None,
            submission_id: str | None = None) -> None:
    """Start this process's driver CoreWorker and connect it to the cluster.
    On a failure to connect the worker is torn down and the error raised.
    ``client_ip`` set: this machine runs no node; the driver is a client
    that announces that address (the one its route to the cluster leaves
    from) and keeps its objects in the store of the node at ``raylet_address``."""
    # The driver announces (as owner) the address of its raylet's host, which other nodes reach.
    ip = client_ip or raylet_address.rsplit(":", 1)[0]
    w = CoreWorker(is_driver=True, gcs_address=gcs_address, raylet_address=raylet_address, token=token,
                   node_id=node_id, ip=ip, namespace=namespace, log_to_driver=log_to_driver,
                   client=client_ip is not None)
    try:
        w.connect()
        global_state.lost = None
        if submission_id:
            _record_submission(w, submission_id)
        if runtime_env:
            # Job-level: local code is packed and uploaded once, now (Ray does it at init too).
            resolved = resolve_for(w, runtime_env)
            w.default_runtime_env = resolved
            w.default_runtime_env_json = json.dumps(resolved, sort_keys=True) if resolved else ""
            if resolved and (resolved.get("config") or {}).get("eager_install", True):
                prepare_runtime_env(w, w.default_runtime_env_json)
    except BaseException:
        w.disconnect()
        raise


def wait_worker_ready(timeout: float) -> bool:
    """Wait (at most ``timeout`` s) until a worker of this driver's node has
    registered. ``init()`` that started the cluster calls it: the node's
    workers start while ``init`` connects, and waiting for the first one
    here makes the first task as quick as the next (Ray's slower ``init``
    hides the same wait). False when none came in time (the task then
    waits for it instead)."""
    from jray._private.protocol import raylet_pb2 as rpb

    w = global_state.worker
    if w is None:
        return False

    async def run() -> bool:
        reply = await w.raylet.WaitWorkerReady(rpb.WaitWorkerReadyRequest(timeout_s=timeout), timeout=timeout + 5)
        return bool(reply.ready)

    try:
        return w.run_sync(run(), timeout=timeout + 10)
    except Exception:  # noqa: BLE001 - an older raylet, or a slow one: the first task waits instead
        return False


def _record_submission(w: CoreWorker, submission_id: str) -> None:
    """A submitted job's driver: which GCS job runs which submission, in the
    KV for the jobs API and the state API (``driver/<job id>/<submission id>``)."""
    from jray._private.jobs import common as C
    from jray._private.protocol import gcs_pb2 as gpb

    key = f"{C.DRIVER_PREFIX}{w.job_id.hex()}/{submission_id}".encode()

    async def run() -> None:
        await w.gcs.KVPut(gpb.KVPutRequest(ns=C.KV_NS, key=key, value=b"", overwrite=True), timeout=10)

    try:
        w.run_sync(run(), timeout=15)
    except Exception:  # noqa: BLE001 - a nicety: the job runs without it
        pass


def drain(timeout: float) -> None:
    """Wait (at most ``timeout`` s) for the tasks and actor calls this driver
    submitted to settle; their output arrives before their replies."""
    w = global_state.worker
    if w is None or timeout <= 0:
        return
    deadline = time.monotonic() + timeout
    # Return ids are pending from submission on (the loop registers the task itself a moment later).
    while w.table.pending_owned and time.monotonic() < deadline:
        time.sleep(0.01)


def disconnect() -> None:
    """Disconnect the driver, if connected."""
    w = global_state.worker
    if w is not None:
        w.disconnect()
        global_state.worker = None


def get(refs: list[ObjectRef], timeout: float | None) -> list[Any]:
    return global_state.require_worker().get(refs, timeout)


def put(value: Any) -> ObjectRef:
    return hooks.ensure_worker().put(value)  # type: ignore[no-any-return]


def wait(refs: list[ObjectRef], num_returns: int, timeout: float | None,
         fetch_local: bool) -> tuple[list[ObjectRef], list[ObjectRef]]:
    return global_state.require_worker().wait(refs, num_returns, timeout, fetch_local)  # type: ignore[no-any-return]


def current_namespace() -> str:
    return global_state.require_worker().current_namespace()


def gpu_ids() -> list[int]:
    """GPU ids assigned to the current task or actor."""
    w = global_state.require_worker()
    spec = current_task.get()
    if spec is not None and spec.gpu_ids:
        return list(spec.gpu_ids)
    if w.executor is not None and w.executor.actor_spec is not None:
        return list(w.executor.actor_spec.gpu_ids)
    return []


def node_infos() -> list[Any]:
    """The ``NodeInfo`` of every node the GCS knows (``jray.nodes()`` and friends)."""
    return gcs_client.node_infos()


__all__ = ["connect", "current_namespace", "disconnect", "get", "gpu_ids", "is_connected", "node_infos",
           "put", "require", "wait"]
