"""The push seam: how an owner hands tasks and actor calls to the worker
that runs them, behind one small interface.

An owner (``worker/task_submitter.py``, ``worker/actor_submitter.py``) sees
only :class:`PushClient`: ``push`` one task, ``push_batch`` several (replies
come back one by one, in completion order), ``cancel`` one, ``close``.
Every answer arrives by callback on the owner's event loop; every failure is
a :class:`TransportError` (jray's own type, never a ``grpc.RpcError``), whose
``unavailable`` flag says the peer is gone (retry elsewhere, or fail).

Three implementations, chosen in one place (:class:`PushClients`):

- :class:`DirectPushClient`: the lean framed protocol of ``direct.py`` (the
  default: a Python gRPC call costs 5-9x more CPU than the work it carries);
- :class:`GrpcPushClient`: the CoreWorker gRPC service (workers that
  advertise no direct port, ``JRAY_DIRECT_TRANSPORT=0``);
- :class:`InProcessPushClient`: calls a :class:`PushHandler` in the same
  process, on the same loop (no sockets): unit tests of the submitters, and
  anything else that wants an owner without a network (httpx's
  ``MockTransport`` is the model).

The worker's side of the seam is :class:`PushHandler` (the ``Executor``):
``push_task(spec)`` answers one task, ``push_batch(specs)`` yields replies.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol

from jray._private.direct import DirectStub
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import core_worker_pb2 as wpb
from jray._private.transport_error import (
    CANCELLED,
    DEADLINE_EXCEEDED,
    INTERNAL,
    UNAVAILABLE,
    UNKNOWN,
    TransportError,
)

__all__ = ["CANCELLED", "DEADLINE_EXCEEDED", "INTERNAL", "UNAVAILABLE", "UNKNOWN", "TransportError",
           "PushHandler", "PushClient", "InProcessPushClient", "GrpcPushClient", "DirectPushClient", "PushClients"]

logger = logging.getLogger(__name__)

OnReply = Callable[[wpb.PushTaskReply | None, TransportError | None], None]
OnItem = Callable[[wpb.PushTaskReply], None]
OnDone = Callable[[TransportError | None], None]


class PushHandler(Protocol):
    """The worker's side: what runs pushed tasks (the ``Executor``)."""

    def push_task(self, spec: cpb.TaskSpec) -> Awaitable[wpb.PushTaskReply]: ...

    def push_batch(self, specs: Sequence[cpb.TaskSpec]) -> AsyncIterator[wpb.PushTaskReply]: ...

    def push_fast(self, spec: cpb.TaskSpec, respond: Callable[[wpb.PushTaskReply], None]) -> bool: ...

    def cancel(self, task_id: bytes, force: bool) -> bool: ...

    def requeue(self, task_id: bytes) -> bool: ...


class PushClient(Protocol):
    """The owner's side: one worker's push endpoint. Callbacks run on the
    owner's loop; exactly one of reply/error is given to ``on_reply``, and
    ``on_done`` runs once, after the last ``on_item``."""

    def push(self, spec: cpb.TaskSpec, on_reply: OnReply) -> None: ...

    def push_batch(self, specs: list[cpb.TaskSpec], on_item: OnItem, on_done: OnDone) -> None: ...

    async def cancel(self, task_id: bytes, *, force: bool = False, recursive: bool = False,
                     requeue: bool = False, timeout: float | None = None) -> bool: ...

    def close(self, grace: float) -> None: ...


def _spawn(coro: Awaitable[Any]) -> None:
    task = asyncio.ensure_future(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


_background: set[asyncio.Future] = set()


# ---------------------------------------------------------------------------
# In-process
# ---------------------------------------------------------------------------


class InProcessPushClient:
    """Pushes to a :class:`PushHandler` in this process, on this loop."""

    def __init__(self, handler: PushHandler, address: str = "inproc") -> None:
        self.handler = handler
        self.address = address
        self.closed = False

    def _gone(self) -> TransportError:
        return TransportError(UNAVAILABLE, f"the connection to {self.address} was dropped")

    def push(self, spec: cpb.TaskSpec, on_reply: OnReply) -> None:
        async def run() -> None:
            if self.closed:
                on_reply(None, self._gone())
                return
            try:
                reply = await self.handler.push_task(spec)
            except TransportError as e:
                on_reply(None, e)
                return
            except Exception as e:  # noqa: BLE001 - the caller gets why, as over a wire
                on_reply(None, TransportError(INTERNAL, f"{type(e).__name__}: {e}"))
                return
            on_reply(_copy(reply), None)

        _spawn(run())

    def push_batch(self, specs: list[cpb.TaskSpec], on_item: OnItem, on_done: OnDone) -> None:
        async def run() -> None:
            if self.closed:
                on_done(self._gone())
                return
            try:
                async for reply in self.handler.push_batch(specs):
                    on_item(_copy(reply))
            except TransportError as e:
                on_done(e)
                return
            except Exception as e:  # noqa: BLE001
                on_done(TransportError(INTERNAL, f"{type(e).__name__}: {e}"))
                return
            on_done(None)

        _spawn(run())

    async def cancel(self, task_id: bytes, *, force: bool = False, recursive: bool = False,
                     requeue: bool = False, timeout: float | None = None) -> bool:
        if self.closed:
            raise self._gone()
        if requeue:
            return self.handler.requeue(task_id)
        return self.handler.cancel(task_id, force)

    def close(self, grace: float) -> None:
        self.closed = True


def _copy(reply: wpb.PushTaskReply) -> wpb.PushTaskReply:
    """What a wire would do: the owner never shares the handler's message."""
    return wpb.PushTaskReply.FromString(reply.SerializeToString())


# ---------------------------------------------------------------------------
# gRPC (the CoreWorker service)
# ---------------------------------------------------------------------------


def from_grpc(e: Any) -> TransportError:
    """A ``grpc.RpcError`` as jray's own transport error."""
    code = e.code() if hasattr(e, "code") else None
    name = getattr(code, "name", None) or UNKNOWN
    details = e.details() if hasattr(e, "details") else str(e)
    if name == "INTERNAL" and "RST_STREAM" in str(e):  # a reset stream: the peer is gone
        name = UNAVAILABLE
    return TransportError(name, details or str(e))


class GrpcPushClient:
    """Pushes over a CoreWorker gRPC stub (``stub()`` returns it; the stub is
    looked up per call, so a dropped channel is replaced)."""

    def __init__(self, stub: Callable[[], Any], address: str) -> None:
        self._stub = stub
        self.address = address

    def push(self, spec: cpb.TaskSpec, on_reply: OnReply) -> None:
        import grpc

        stub = self._stub()

        async def run() -> None:
            try:
                reply = await stub.PushTask(wpb.PushTaskRequest(spec=spec))
            except grpc.RpcError as e:
                on_reply(None, from_grpc(e))
                return
            on_reply(reply, None)

        _spawn(run())

    def push_batch(self, specs: list[cpb.TaskSpec], on_item: OnItem, on_done: OnDone) -> None:
        import grpc

        stub = self._stub()

        async def run() -> None:
            try:
                async for reply in stub.PushTaskBatch(wpb.PushTaskBatchRequest(specs=specs)):
                    on_item(reply)
            except grpc.RpcError as e:
                on_done(from_grpc(e))
                return
            on_done(None)

        _spawn(run())

    async def cancel(self, task_id: bytes, *, force: bool = False, recursive: bool = False,
                     requeue: bool = False, timeout: float | None = None) -> bool:
        return await grpc_cancel(self._stub(), task_id, force, recursive, requeue, timeout)

    def close(self, grace: float) -> None:
        pass  # the channel is the pool's (PushClients.drop closes it)


async def grpc_cancel(stub: Any, task_id: bytes, force: bool, recursive: bool, requeue: bool,
                      timeout: float | None) -> bool:
    import grpc

    req = wpb.CancelTaskRequest(task_id=task_id, force=force, recursive=recursive, requeue=requeue)
    try:
        reply = await stub.CancelTask(req, timeout=timeout)
    except grpc.RpcError as e:
        raise from_grpc(e) from None
    return bool(reply.attempted)


# ---------------------------------------------------------------------------
# Direct (frames over TCP, direct.py)
# ---------------------------------------------------------------------------


class DirectPushClient:
    """Pushes over a ``direct.DirectStub``; cancel (rare) goes over gRPC."""

    def __init__(self, direct_stub: Any, grpc_stub: Callable[[], Any], address: str) -> None:
        self._direct = direct_stub
        self._grpc = grpc_stub
        self.address = address

    def push(self, spec: cpb.TaskSpec, on_reply: OnReply) -> None:
        # A lone call is answered from the protocol itself: no task, no future.
        def answer(payload: bytes | None, err: TransportError | None) -> None:
            if err is not None or payload is None:
                on_reply(None, err or TransportError(INTERNAL, "no reply"))
            else:
                on_reply(wpb.PushTaskReply.FromString(payload), None)

        self._direct.push_task_cb(wpb.PushTaskRequest(spec=spec), answer)

    def push_batch(self, specs: list[cpb.TaskSpec], on_item: OnItem, on_done: OnDone) -> None:
        self._direct.push_batch_cb(wpb.PushTaskBatchRequest(specs=specs), on_item, on_done)

    async def cancel(self, task_id: bytes, *, force: bool = False, recursive: bool = False,
                     requeue: bool = False, timeout: float | None = None) -> bool:
        return await grpc_cancel(self._grpc(), task_id, force, recursive, requeue, timeout)

    def close(self, grace: float) -> None:
        if grace < 0:  # the peer is dead: fail the calls on it now
            self._direct.abort()
        else:
            self._direct.close(grace)


# ---------------------------------------------------------------------------
# The one place a transport is chosen
# ---------------------------------------------------------------------------


class PushClients:
    """The push client for each worker address: direct when the worker
    advertises a direct port, else gRPC; or whatever ``factory`` makes
    (tests: in-process). Must be used on the owner's loop."""

    def __init__(self, pool: Any = None, token: str = "",
                 factory: Callable[[str, int], PushClient] | None = None) -> None:
        self._pool = pool
        self._token = token
        self._factory = factory
        self._clients: dict[tuple[str, int], PushClient] = {}

    def get(self, address: str, direct_port: int = 0) -> PushClient:
        key = (address, direct_port)
        c = self._clients.get(key)
        if c is None:
            c = self._clients[key] = self._make(address, direct_port)
        return c

    def _make(self, address: str, direct_port: int) -> PushClient:
        if self._factory is not None:
            return self._factory(address, direct_port)
        from jray._private.protocol import core_worker_pb2_grpc as wgrpc

        pool = self._pool

        def grpc_stub() -> Any:
            return pool.stub(address, wgrpc.CoreWorkerServiceStub)

        if not direct_port:
            return GrpcPushClient(grpc_stub, address)
        direct = DirectStub(f"{address.rpartition(':')[0]}:{direct_port}", self._token)
        return DirectPushClient(direct, grpc_stub, address)

    def transports(self) -> set[str]:
        """Which transports the clients in use speak ("direct", "grpc", "inproc")."""
        names = {DirectPushClient: "direct", GrpcPushClient: "grpc", InProcessPushClient: "inproc"}
        return {names.get(type(c), type(c).__name__) for c in self._clients.values()}

    def drop(self, address: str, grace: float) -> None:
        """The worker at ``address`` is gone: forget its clients (calls still
        on them get ``grace`` seconds, then fail; a negative grace: its node
        is dead, they fail now) and its gRPC channel."""
        for key in [k for k in self._clients if k[0] == address]:
            self._clients.pop(key).close(grace)
        if self._pool is not None:
            self._pool.drop(address, dead=grace < 0)

    def close(self) -> None:
        for c in self._clients.values():
            c.close(0.0)
        self._clients.clear()
