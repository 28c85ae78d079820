"""Plain synchronous calls to the GCS, for the public API and its helpers.

Each function builds the request, runs it on the connected driver's loop
(``CoreWorker.run_sync`` over its GCS stub) and returns the reply's useful
part, so no module outside ``jray._private`` builds protocol messages. The
replies are protobuf messages read by attribute (``info.actor_id``,
``node.alive``); enum values come back as names (``"ALIVE"``, ``"DEAD"``).

The ``*_at`` functions need no driver: they open a channel of their own to
a cluster's GCS (attaching with ``init(address=...)``, ``jray.testing``,
the CLI).
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

import grpc

from jray._private import config, rpc
from jray._private.protocol import gcs_pb2 as gpb
from jray._private.protocol import gcs_pb2_grpc as ggrpc
from jray._private.worker import global_state

if TYPE_CHECKING:
    from jray._private.worker.core_worker import CoreWorker


# A GCS call that finds the GCS gone (restarting: a few seconds under its
# supervisor) is tried again with back-off for this long, then fails
# (GcsUnavailableError from the public API). Ray's
# gcs_rpc_server_reconnect_timeout_s (60 s).
GCS_RECONNECT_SECONDS = config._env("GCS_RECONNECT_SECONDS", 60.0)
# Streams (their callers re-open them), and calls whose callers have loops of their own.
_NOT_RETRIED = frozenset({"WatchNodes", "WatchDriver", "SyncNode", "UploadPackage", "DownloadPackage", "Heartbeat",
                          "AddTaskEvents"})


class RetryingGcsStub:
    """A ``GcsServiceStub`` whose unary calls ride over a GCS restart: a
    call refused because the GCS is not there (UNAVAILABLE) is tried again
    with back-off (0.05 s doubling to 1 s) until its own ``timeout`` or
    ``GCS_RECONNECT_SECONDS`` has passed, then its last error is raised.
    The GCS makes the calls that change state safe to repeat (AddJob by the
    driver's id, RegisterActor by the actor's, CreatePlacementGroup by the
    group's; KV puts of exported functions do not overwrite)."""

    def __init__(self, stub: Any, reconnect_seconds: float | None = None) -> None:
        self._stub = stub
        self._window = GCS_RECONNECT_SECONDS if reconnect_seconds is None else reconnect_seconds

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._stub, name)
        if name.startswith("_") or name in _NOT_RETRIED or not callable(method):
            return method

        async def retrying(request: Any, *, timeout: float | None = None, **kw: Any) -> Any:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + (timeout if timeout is not None else self._window)
            delay = 0.05
            while True:
                left = deadline - loop.time()
                try:
                    return await method(request, timeout=left if timeout is not None else None, **kw)
                except grpc.RpcError as e:
                    code = e.code() if hasattr(e, "code") else None
                    if code != grpc.StatusCode.UNAVAILABLE or deadline - loop.time() <= delay:
                        raise
                await asyncio.sleep(delay)
                delay = min(1.0, delay * 2)

        setattr(self, name, retrying)  # looked up once per method
        return retrying


def call(method: str, request: Any, *, worker: CoreWorker | None = None, timeout: float | None = None) -> Any:
    """``GcsService.<method>(request)`` on the driver's loop; the reply."""
    w = worker if worker is not None else global_state.require_worker()

    async def run() -> Any:
        return await getattr(w.gcs, method)(request)

    try:
        return w.run_sync(run(), timeout=timeout)
    except grpc.RpcError as e:
        raise rpc.gcs_unavailable(e, w.gcs_address) from None


# -- actors -----------------------------------------------------------------------------
def actor_state_name(state: int) -> str:
    return gpb.ActorState.Name(state)  # type: ignore[arg-type]


def get_named_actor(name: str, namespace: str) -> Any:
    """The ``ActorInfo`` of the live actor ``name`` in ``namespace``, or None."""
    reply = call("GetNamedActor", gpb.GetNamedActorRequest(name=name, namespace=namespace))
    return reply.actor if reply.found else None


def get_actor_info(actor_id: bytes, *, timeout: float | None = None) -> Any:
    """The ``ActorInfo`` of ``actor_id`` as the GCS knows it, or None."""
    reply = call("GetActorInfo", gpb.GetActorInfoRequest(actor_id=actor_id), timeout=timeout)
    return reply.actor if reply.found else None


def list_named_actors(namespace: str, *, timeout: float | None = None) -> list[Any]:
    """The ``ActorInfo`` of every named actor in ``namespace`` (dead ones too)."""
    reply = call("ListActors", gpb.ListActorsRequest(namespace=namespace, named_only=True), timeout=timeout)
    return list(reply.actors)


def kill_actor(actor_id: bytes, *, no_restart: bool) -> None:
    call("KillActor", gpb.KillActorRequest(actor_id=actor_id, force=True, no_restart=no_restart))


# -- nodes ------------------------------------------------------------------------------
def node_infos() -> list[Any]:
    """The ``NodeInfo`` of every node the GCS knows (dead ones too)."""
    return list(call("GetAllNodeInfo", gpb.GetAllNodeInfoRequest()).nodes)


def _call_at(gcs_address: str, token: str, method: str, request: Any, timeout: float) -> Any:
    """One ``GcsService`` call over a channel of its own (no driver needed); in
    a thread of its own when the caller is inside a running event loop. A
    failed call raises its ``grpc.RpcError``."""

    async def run() -> Any:
        ch = rpc.make_channel(gcs_address, token)
        try:
            return await getattr(ggrpc.GcsServiceStub(ch), method)(request, timeout=timeout)
        finally:
            await ch.close()

    return _run_in_thread(run) if _in_running_loop() else asyncio.run(run())


def nodes_at(gcs_address: str, token: str, *, timeout: float = 10) -> list[Any]:
    """The ``NodeInfo`` of every node (dead ones too) of the cluster at ``gcs_address``."""
    return list(_call_at(gcs_address, token, "GetAllNodeInfo", gpb.GetAllNodeInfoRequest(), timeout).nodes)


def alive_nodes_at(gcs_address: str, token: str, *, timeout: float = 10) -> list[Any]:
    """The live nodes' ``NodeInfo`` of the cluster at ``gcs_address`` (attaching
    with ``init(address=...)``, ``jray.testing``)."""
    return [n for n in nodes_at(gcs_address, token, timeout=timeout) if n.alive]


def check_cluster(gcs_address: str, token: str, *, timeout: float = 10) -> Any:
    """The head's ``CheckAliveReply``, with an error a user can act on: an
    address that does not answer within ``timeout`` s (``ConnectionError``
    naming it), a token it refuses (``AuthenticationError`` saying where the
    token comes from), a cluster of another jray version (naming both)."""
    from jray import exceptions
    from jray._private.version import __version__

    try:
        reply = _call_at(gcs_address, token, "CheckAlive", gpb.CheckAliveRequest(), timeout)
    except grpc.RpcError as e:
        code = e.code() if hasattr(e, "code") else None
        if code == grpc.StatusCode.UNAUTHENTICATED:
            raise exceptions.AuthenticationError(
                f"The jray cluster at {gcs_address} refused this token. Use the one `jray start --head` "
                "printed (JRAY_TOKEN=...), or on the head machine the token in the address file "
                "(/tmp/jray/jray_current_cluster names the session; its cluster.json holds the token).") from None
        why = "did not answer" if code == grpc.StatusCode.DEADLINE_EXCEEDED else "could not be reached"
        detail = e.details() if hasattr(e, "details") else str(e)
        mismatch = tls_mismatch(gcs_address, detail)
        if mismatch:
            raise ConnectionError(mismatch) from None
        raise ConnectionError(f"The jray cluster at {gcs_address} {why} within {timeout:.0f} s ({detail}). "
                              "Check the address, that `jray start --head` runs there and that this machine "
                              "can reach that port.") from None
    if reply.version and reply.version != __version__:
        raise RuntimeError(f"Version mismatch: this process runs jray {__version__}, the cluster at "
                           f"{gcs_address} runs jray {reply.version}. Install the same version on both.")
    return reply


def tls_mismatch(gcs_address: str, detail: str) -> str | None:
    """What to tell the user when a failed connect is a TLS mismatch (a
    cluster with TLS and a process without, or the other way round, or
    certificates of another CA); None when it is not."""
    from jray._private import tls

    try:
        cfg = tls.current()
    except tls.TLSConfigError as e:
        return str(e)
    speaks = tls.speaks_tls(gcs_address)
    if cfg is None and speaks:
        return (
            f"The jray cluster at {gcs_address} uses TLS and this process does not: set JRAY_TLS_DIR to a copy of "
            "the cluster's TLS directory (`jray start --head --tls` prints where it is), or JRAY_USE_TLS=1 with "
            "JRAY_TLS_CA_CERT, JRAY_TLS_SERVER_CERT and JRAY_TLS_SERVER_KEY.")
    if cfg is not None and not speaks:
        import socket

        host, port = gcs_address.rsplit(":", 1)
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=2.0).close()
        except OSError:
            return None  # nothing listens: the caller's "could not be reached"
        return (
            f"The jray cluster at {gcs_address} does not use TLS and this process does (JRAY_TLS_DIR or "
            "JRAY_USE_TLS is set): unset them, or restart the cluster with `jray start --head --tls`.")
    if cfg is not None and speaks and any(w in detail.lower() for w in ("ssl", "handshake", "certificate", "tls")):
        return (
            f"The TLS handshake with the jray cluster at {gcs_address} failed ({detail}): this process's "
            f"certificate ({cfg.cert}) and the cluster's must be signed by the same CA ({cfg.ca_cert}); "
            "copy the head's TLS directory and point JRAY_TLS_DIR at it.")
    return None


def check_alive_at(gcs_address: str, token: str, *, timeout: float = 5) -> None:
    """Return once the GCS at ``gcs_address`` answers and accepts ``token``."""
    _call_at(gcs_address, token, "CheckAlive", gpb.CheckAliveRequest(), timeout)


def _in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False


def _run_in_thread(fn: Any) -> Any:
    """``asyncio.run(fn())`` in a fresh thread (the caller may be inside a loop)."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["v"] = asyncio.run(fn())
        except BaseException as e:  # noqa: BLE001
            out["e"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "e" in out:
        raise out["e"]
    return out["v"]
