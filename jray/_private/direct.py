"""The direct transport: task and actor-call pushes between CoreWorkers over
length-prefixed protobuf frames on a plain asyncio TCP connection.

Why not gRPC for this one path: a Python gRPC unary call costs 0.5–0.9 ms of
CPU on the 2-core machines jray targets (measured: an aio echo of a
``PushTaskRequest`` at 550–900 us per call, sync gRPC at about 430 us), while
the same request and reply over an asyncio protocol cost about 95 us. Pushing
tasks is the hot path of every task and actor call (Ray does it in C++), so
it gets a lean wire. Everything else (the GCS, raylets, leases, objects,
borrowers, cancel, logs) stays on gRPC, and a worker without a direct port
(``JRAY_DIRECT_TRANSPORT=0``) is pushed to over gRPC as before.

Wire format. Every frame is a 9-byte header, ``<IIB`` (payload length,
request id, kind), then the payload. A connection starts with an ``AUTH``
frame carrying the cluster token; the server closes a connection whose first
frame is anything else or a wrong token, before it parses a single request
(the same rule as the gRPC servers' token check). Until that frame has come,
a connection costs the server little (an unauthenticated peer must not make
it buffer a body of hundreds of MiB): a length prefix over
``config.DIRECT_PREAUTH_MAX_FRAME`` (8 KiB; the token is 48 bytes) closes it
before a byte of the body is read, a connection that has not authenticated
within ``config.DIRECT_HANDSHAKE_SECONDS`` (5 s) is closed, and a server keeps
at most ``config.DIRECT_MAX_UNAUTHENTICATED`` (64) of them open: past that it
closes the oldest (a peer holding 64 idle connections cannot lock the
cluster's own clients out, whose token follows their connect at once).
Authenticated peers may send frames up to ``MAX_FRAME``. Then:

- ``PUSH`` (a ``PushTaskRequest``) is answered by one ``REPLY`` (a
  ``PushTaskReply``) with the same request id;
- ``PUSH_BATCH`` (a ``PushTaskBatchRequest``) is answered by one ``ITEM``
  (a ``PushTaskReply`` with its ``task_id``) per task, as each finishes;
- ``ERROR`` (UTF-8 text) ends a request the server could not serve.

Client side, :class:`DirectStub` answers by callback from the protocol
(``push_task_cb``, ``push_batch_cb``: no asyncio task per call); owners
reach it only through ``transport.DirectPushClient``. Failures are
:class:`DirectError`, a ``transport.TransportError``: a lost connection is
``UNAVAILABLE`` and the call is retried or failed as for gRPC.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from jray._private import config, tls
from jray._private.protocol import core_worker_pb2 as wpb
from jray._private.protocol import raylet_pb2 as rpb
from jray._private.relay import HTTP2_PREFACE, Relay
from jray._private.transport_error import INTERNAL, UNAVAILABLE, TransportError

if TYPE_CHECKING:
    from jray._private.transport import PushHandler

logger = logging.getLogger(__name__)

HEADER = struct.Struct("<IIB")
AUTH, PUSH, PUSH_BATCH, REPLY, ITEM, ERROR = range(6)
MAX_FRAME = config.GRPC_MAX_MESSAGE
CONNECT_TIMEOUT = 10.0


def enabled() -> bool:
    """Workers listen for direct pushes unless ``JRAY_DIRECT_TRANSPORT=0``."""
    return os.environ.get("JRAY_DIRECT_TRANSPORT", "1") not in ("0", "false", "no", "off")


class DirectError(TransportError):
    """A direct call that failed in transit."""


def _keepalive(sock: Any) -> None:
    """TCP keepalive (as the gRPC channels' 30 s): a call in flight to a host
    that vanished without a reset fails within about a minute, not never."""
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
    except OSError:  # pragma: no cover - not a TCP socket
        pass


class _Framed(asyncio.Protocol):
    """Splits the byte stream into frames and hands each to ``on_frame``."""

    transport: asyncio.Transport | None = None

    def __init__(self) -> None:
        self._buf = bytearray()
        self.max_frame = MAX_FRAME  # a longer length prefix closes the connection, unread

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        _keepalive(transport.get_extra_info("socket"))

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        if not buf and len(data) >= 9:  # the common case: whole frames, no copy into the buffer
            n, rid, kind = HEADER.unpack_from(data)
            if len(data) == 9 + n:
                if n > self.max_frame:
                    self._bad(f"a frame of {n} bytes is over the limit")
                    return
                self.on_frame(kind, rid, data[9:])
                return
        buf += data
        pos = 0
        while len(buf) - pos >= 9:
            n, rid, kind = HEADER.unpack_from(buf, pos)
            if n > self.max_frame:  # checked on the header alone: the body is never read
                self._bad(f"a frame of {n} bytes is over the limit")
                return
            end = pos + 9 + n
            if len(buf) < end:
                break
            self.on_frame(kind, rid, bytes(buf[pos + 9:end]))
            if self.transport is None or self.transport.is_closing():
                return
            pos = end
        if pos:
            del buf[:pos]

    def send(self, kind: int, rid: int, payload: bytes) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            if len(payload) < 4096:
                t.write(HEADER.pack(len(payload), rid, kind) + payload)
            else:
                t.writelines((HEADER.pack(len(payload), rid, kind), payload))

    def _bad(self, why: str) -> None:
        logger.warning("direct transport: %s; closing the connection", why)
        if self.transport is not None:
            self.transport.close()

    def on_frame(self, kind: int, rid: int, payload: bytes) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


# ---------------------------------------------------------------------------
# Server (in every worker process)
# ---------------------------------------------------------------------------


Handler = Callable[[Any], Awaitable[Any]]
# (request, respond) -> True when it took the request and will call
# ``respond(reply)`` once, on the loop; False leaves it to the unary handler.
FastHandler = Callable[[Any, Callable[[Any], None]], bool]


class DirectServer:
    """Listens for direct calls: ``unary`` maps a frame kind to (request
    class, coroutine function answering one request); ``batch`` answers a
    ``PUSH_BATCH`` with an async iterator of replies. ``fast`` may take a
    unary request first and answer it by callback, with no asyncio task or
    future per call (a worker's synchronous task or actor call: the loop
    runs twice per call instead of five times)."""

    def __init__(self, token: str, unary: dict[int, tuple[type, Handler]],
                 batch: Callable[[Any], AsyncIterator[Any]] | None = None,
                 fast: dict[int, FastHandler] | None = None,
                 http2: Callable[[], Awaitable[int]] | None = None) -> None:
        self.token = token.encode()
        self.unary = unary
        self.batch = batch
        self.fast = fast or {}
        # A gRPC client on this port (HTTP/2's preface instead of a token):
        # relayed to the loopback port of the gRPC server ``http2()`` starts
        # on first use (``relay.Relay``).
        self.http2 = http2
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self.conns: set[_ServerConn] = set()
        # Connections that have not shown the token yet, oldest first.
        self.unauthed: dict[_ServerConn, None] = {}
        self.preauth_max_frame = max(config.DIRECT_PREAUTH_MAX_FRAME, len(self.token))
        self.handshake_seconds = config.DIRECT_HANDSHAKE_SECONDS
        self.max_unauthed = max(1, config.DIRECT_MAX_UNAUTHENTICATED)
        self._warned_at = -1e9
        self._unwarned = 0

    async def start(self, host: str) -> int:
        loop = asyncio.get_running_loop()
        cfg = tls.current()
        if cfg is None:
            self.server = await loop.create_server(lambda: _ServerConn(self), host, 0)
        else:  # mutual TLS; the handshake has the same deadline as the token
            self.server = await loop.create_server(lambda: _ServerConn(self), host, 0,
                                                   ssl=tls.server_context(cfg),
                                                   ssl_handshake_timeout=self.handshake_seconds)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for c in list(self.conns):
            c.cancel_handshake()
            if c.transport is not None:
                c.transport.close()

    def warn(self, why: str) -> None:
        """Log a rejected peer, at most once per 10 s per server (a flood of
        bad connections must not flood the log)."""
        now = time.monotonic()
        if now - self._warned_at < 10.0:
            self._unwarned += 1
            return
        more = f" (and {self._unwarned} more since the last warning)" if self._unwarned else ""
        logger.warning("direct transport: %s; closing the connection%s", why, more)
        self._warned_at, self._unwarned = now, 0


def push_server(handler: Callable[[], PushHandler | None], token: str,
                http2: Callable[[], Awaitable[int]] | None = None) -> DirectServer:
    """A worker's: tasks and actor calls pushed by their owners, answered by
    ``handler()`` (None in a process that runs no tasks: a driver); gRPC
    clients relayed to ``http2()``'s port where given."""

    def executor() -> PushHandler:
        h = handler()
        if h is None:
            raise RuntimeError("this process does not execute tasks (a driver)")
        return h

    async def push(request: wpb.PushTaskRequest) -> wpb.PushTaskReply:
        return await executor().push_task(request.spec)

    def push_batch(request: wpb.PushTaskBatchRequest) -> AsyncIterator[wpb.PushTaskReply]:
        return executor().push_batch(request.specs)

    def push_fast(request: wpb.PushTaskRequest, respond: Callable[[wpb.PushTaskReply], None]) -> bool:
        h = handler()
        return h is not None and h.push_fast(request.spec, respond)

    return DirectServer(token, {PUSH: (wpb.PushTaskRequest, push)}, push_batch, {PUSH: push_fast}, http2)


# The raylet's object-store calls that a worker makes from its own threads
# (put, get): method name -> (frame kind, request class, reply class). The
# store's client protocol is a socket, not gRPC, in Ray too (plasma).
RAYLET_STORE_CALLS: dict[str, tuple[int, type, type]] = {
    "CreateObject": (16, rpb.CreateObjectRequest, rpb.CreateObjectReply),
    "AbortObject": (17, rpb.AbortObjectRequest, rpb.AbortObjectReply),
    "GetObject": (18, rpb.GetObjectRequest, rpb.GetObjectReply),
    "SealObject": (19, rpb.SealObjectRequest, rpb.SealObjectReply),
    # A new worker's first call (the raylet passes its direct port in the
    # worker's environment): no gRPC channel opened for it.
    "RegisterWorker": (20, rpb.RegisterWorkerRequest, rpb.RegisterWorkerReply),
    # A task blocked in get/wait, and unblocked (posted from the task's
    # thread: two per get in a nested task, which over gRPC cost the raylet
    # more CPU than the leases of the tasks it waited for).
    "WorkerBlocked": (21, rpb.WorkerBlockedRequest, rpb.WorkerBlockedReply),
}
# The request id of calls a BlockingClient posts without waiting (``post``):
# their replies are read, checked and dropped by the thread's next call.
POST_RID = 0xFFFFFFFF
MAX_POSTED = 1024  # replies of posted calls left unread before a post reads them first


def raylet_server(raylet: Any, token: str) -> DirectServer:
    """A raylet's: the store calls of its workers and drivers."""
    unary: dict[int, tuple[type, Handler]] = {}
    for method, (kind, req_cls, _reply_cls) in RAYLET_STORE_CALLS.items():
        unary[kind] = (req_cls, functools.partial(_servicer_call, getattr(raylet, method)))
    return DirectServer(token, unary)


async def _servicer_call(method: Callable[[Any, Any], Awaitable[Any]], request: Any) -> Any:
    return await method(request, None)


class _ServerConn(_Framed):
    def __init__(self, server: DirectServer) -> None:
        super().__init__()
        self.srv = server
        self.authed = False
        self.max_frame = server.preauth_max_frame
        self.tasks: set[asyncio.Task] = set()
        self._out: list[bytes] = []
        self._handshake: asyncio.TimerHandle | None = None
        self._relay: Relay | None = None  # a gRPC client's connection, relayed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        srv = self.srv
        srv.conns.add(self)
        pending = srv.unauthed
        while len(pending) >= srv.max_unauthed:  # the oldest goes: a new peer gets its chance
            oldest = next(iter(pending))
            oldest._drop(f"over {srv.max_unauthed} unauthenticated connections")
        pending[self] = None
        self._handshake = asyncio.get_running_loop().call_later(srv.handshake_seconds, self._handshake_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        self.srv.conns.discard(self)
        self.cancel_handshake()
        self.transport = None  # replies of calls still running go nowhere, as with a gone gRPC client
        if self._relay is not None:
            self._relay.close()

    def data_received(self, data: bytes) -> None:
        if self._relay is not None:
            self._relay.send(data)
            return
        if not self.authed and self.srv.http2 is not None and (self._buf or data)[:1] == b"P":
            # No frame starts so (its length would be ~1.3 GB, over the
            # pre-auth limit): a gRPC client, whose first bytes are HTTP/2's preface.
            self._buf += data
            got = bytes(self._buf[:len(HTTP2_PREFACE)])
            if not HTTP2_PREFACE.startswith(got):
                self._drop("neither a token nor HTTP/2's preface")
            elif len(got) == len(HTTP2_PREFACE):  # gRPC checks its token itself
                self.cancel_handshake()
                self._relay = Relay(self, bytes(self._buf))
                self._buf.clear()
            return
        super().data_received(data)

    def pause_writing(self) -> None:
        if self._relay is not None:
            self._relay.pause_reading()

    def resume_writing(self) -> None:
        if self._relay is not None:
            self._relay.resume_reading()

    def cancel_handshake(self) -> None:
        self.srv.unauthed.pop(self, None)
        if self._handshake is not None:
            self._handshake.cancel()
            self._handshake = None

    def _handshake_expired(self) -> None:
        self._handshake = None
        if not self.authed:
            self._drop(f"no token within {self.srv.handshake_seconds:g} s")

    def _drop(self, why: str) -> None:
        """Close a connection that has not authenticated (it is forgotten at
        once, not when its close completes)."""
        self.cancel_handshake()
        t = self.transport
        if t is not None:
            self.srv.warn(f"{why} from {t.get_extra_info('peername')}")
            t.close()

    def _bad(self, why: str) -> None:
        if self.authed:
            super()._bad(why)
        else:
            self._drop(why)

    def on_frame(self, kind: int, rid: int, payload: bytes) -> None:
        if not self.authed:
            if kind == AUTH and hmac.compare_digest(bytes(payload), self.srv.token):
                self.authed = True
                self.max_frame = MAX_FRAME
                self.cancel_handshake()
                return
            self._drop("rejected an unauthenticated connection")
            return
        entry = self.srv.unary.get(kind)
        if entry is not None:
            try:
                request = entry[0].FromString(payload)  # type: ignore[attr-defined]
                fast = self.srv.fast.get(kind)
                if fast is not None and fast(request, functools.partial(self._respond, rid)):
                    return
            except Exception as e:  # noqa: BLE001 - the caller gets the reason, the process goes on
                self._fail(rid, e)
                return
            coro: Any = self._unary(rid, entry[1], request)
        elif kind == PUSH_BATCH and self.srv.batch is not None:
            coro = self._batch(rid, payload)
        else:
            self.send(ERROR, rid, f"unknown frame kind {kind}".encode())
            return
        t = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def _unary(self, rid: int, handler: Handler, request: Any) -> None:
        try:
            reply = await handler(request)
        except Exception as e:  # noqa: BLE001 - the caller gets the reason, the process goes on
            self._fail(rid, e)
            return
        self.send(REPLY, rid, reply.SerializeToString())

    def _respond(self, rid: int, reply: Any) -> None:
        """A fast handler's answer (loop thread); a lost connection drops it."""
        self.send(REPLY, rid, reply.SerializeToString())

    async def _batch(self, rid: int, payload: bytes) -> None:
        assert self.srv.batch is not None
        try:
            async for reply in self.srv.batch(wpb.PushTaskBatchRequest.FromString(payload)):
                self._send_later(ITEM, rid, reply.SerializeToString())
        except Exception as e:  # noqa: BLE001
            self._flush()
            self._fail(rid, e)

    def _send_later(self, kind: int, rid: int, payload: bytes) -> None:
        """Replies finished in one loop iteration leave in one write."""
        out = self._out
        if not out:
            asyncio.get_running_loop().call_soon(self._flush)
        out.append(HEADER.pack(len(payload), rid, kind))
        out.append(payload)

    def _flush(self) -> None:
        out, self._out = self._out, []
        t = self.transport
        if out and t is not None and not t.is_closing():
            t.write(b"".join(out))

    def _fail(self, rid: int, e: BaseException) -> None:
        logger.exception("direct call failed", exc_info=e)
        self.send(ERROR, rid, f"{type(e).__name__}: {e}".encode())


# ---------------------------------------------------------------------------
# Client
# ---------------------------------------------------------------------------


class _Batch:
    """Replies of one PUSH_BATCH: ``on_item`` for each as it comes (from the
    protocol, no task), then ``on_done(None)``, or ``on_done(error)`` when
    the batch fails before every reply came."""

    __slots__ = ("on_item", "on_done", "left")

    def __init__(self, n: int, on_item: Callable[[wpb.PushTaskReply], None],
                 on_done: Callable[[DirectError | None], None]) -> None:
        self.on_item = on_item
        self.on_done = on_done
        self.left = n

    def item(self, payload: bytes) -> bool:
        """One reply; True when it was the last."""
        self.left -= 1
        try:
            self.on_item(wpb.PushTaskReply.FromString(payload))
        except Exception:  # noqa: BLE001 - a caller's bug must not break the connection
            logger.exception("direct batch callback failed")
        if self.left <= 0:
            self.done(None)
            return True
        return False

    def done(self, err: DirectError | None) -> None:
        try:
            self.on_done(err)
        except Exception:  # noqa: BLE001
            logger.exception("direct batch callback failed")


class _Callback:
    """A unary call answered by calling ``fn(payload, None)`` or
    ``fn(None, error)`` from the protocol (no task, no future)."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[bytes | None, DirectError | None], None]) -> None:
        self.fn = fn

    def __call__(self, payload: bytes | None, err: DirectError | None) -> None:
        try:
            self.fn(payload, err)
        except Exception:  # noqa: BLE001 - a caller's bug must not break the connection
            logger.exception("direct call callback failed")


class _ClientConn(_Framed):
    def __init__(self, address: str) -> None:
        super().__init__()
        self.address = address
        self.pending: dict[int, _Batch | _Callback] = {}
        self.next_rid = 1
        self.lost: DirectError | None = None

    def start(self, entry: _Batch | _Callback) -> int:
        if self.lost is not None:
            raise self.lost
        rid = self.next_rid
        self.next_rid = rid + 1 if rid < 0xFFFFFFFF else 1
        self.pending[rid] = entry
        return rid

    def on_frame(self, kind: int, rid: int, payload: bytes) -> None:
        entry = self.pending.get(rid)
        if entry is None:
            return
        if isinstance(entry, _Callback):
            del self.pending[rid]
            if kind == REPLY:
                entry(payload, None)
            else:
                entry(None, DirectError(INTERNAL, bytes(payload).decode(errors="replace")))
            return
        if kind == ITEM:
            if entry.item(payload):
                self.pending.pop(rid, None)
            return
        del self.pending[rid]
        entry.done(DirectError(INTERNAL, bytes(payload).decode(errors="replace")))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.lost = DirectError(UNAVAILABLE,
                                f"the connection to {self.address} was lost" + (f": {exc}" if exc else ""))
        pending, self.pending = self.pending, {}
        for entry in pending.values():
            if isinstance(entry, _Callback):
                entry(None, self.lost)
            else:
                entry.done(self.lost)


_background: set[asyncio.Task] = set()


class DirectStub:
    """Pushes to one worker over one direct connection, answered by callback."""

    def __init__(self, address: str, token: str) -> None:
        self.address = address
        self._token = token.encode()
        self._conn: _ClientConn | None = None
        self._connecting: asyncio.Future | None = None
        self.closed = False

    async def _connected(self) -> _ClientConn:
        conn = self._conn
        if conn is not None and conn.lost is None:
            return conn
        if self.closed:
            raise DirectError(UNAVAILABLE, f"the connection to {self.address} was dropped")
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        try:
            return await asyncio.shield(self._connecting)  # type: ignore[no-any-return]
        finally:
            if self._connecting is not None and self._connecting.done():
                self._connecting = None

    async def _connect(self) -> _ClientConn:
        host, _, port = self.address.rpartition(":")
        loop = asyncio.get_running_loop()
        try:
            cfg = tls.current()
            extra: dict[str, Any] = {} if cfg is None else {
                "ssl": tls.client_context(cfg), "server_hostname": tls.server_hostname(cfg, host),
                "ssl_handshake_timeout": CONNECT_TIMEOUT}
            _t, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _ClientConn(self.address), host, int(port), **extra),
                CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as e:
            raise DirectError(UNAVAILABLE, f"cannot connect to {self.address}: {e}") from None
        conn.send(AUTH, 0, self._token)
        self._conn = conn
        return conn

    def push_task_cb(self, request: wpb.PushTaskRequest,
                     fn: Callable[[bytes | None, DirectError | None], None]) -> None:
        """``PushTask`` without a task or future: ``fn(reply bytes, None)`` or
        ``fn(None, error)`` runs on the loop when the answer comes (a sync
        call's path: two loop iterations fewer than awaiting)."""
        conn = self._conn
        if conn is not None and conn.lost is None:
            conn.send(PUSH, conn.start(_Callback(fn)), request.SerializeToString())
            return

        async def connect_then_push() -> None:
            try:
                c = await self._connected()
                c.send(PUSH, c.start(_Callback(fn)), request.SerializeToString())
            except DirectError as e:
                _Callback(fn)(None, e)

        t = asyncio.get_running_loop().create_task(connect_then_push())
        _background.add(t)
        t.add_done_callback(_background.discard)

    def push_batch_cb(self, request: wpb.PushTaskBatchRequest, on_item: Callable[[wpb.PushTaskReply], None],
                      on_done: Callable[[DirectError | None], None]) -> None:
        """``PushTaskBatch`` answered by callbacks from the protocol: each
        reply as it comes, then ``on_done``."""
        entry = _Batch(len(request.specs), on_item, on_done)
        conn = self._conn
        if conn is not None and conn.lost is None:
            conn.send(PUSH_BATCH, conn.start(entry), request.SerializeToString())
            return

        async def connect_then_push() -> None:
            try:
                c = await self._connected()
                c.send(PUSH_BATCH, c.start(entry), request.SerializeToString())
            except DirectError as e:
                entry.done(e)

        t = asyncio.get_running_loop().create_task(connect_then_push())
        _background.add(t)
        t.add_done_callback(_background.discard)

    def abort(self) -> None:
        """The peer is dead (its node was declared so): drop the connection
        now, unflushed; the calls on it fail with UNAVAILABLE at once."""
        self.closed = True
        conn = self._conn
        if conn is not None and conn.transport is not None:
            conn.transport.abort()

    def close(self, grace: float) -> None:
        """Drop the connection: no new calls; the calls still on it have
        ``grace`` seconds to finish (as a gRPC channel closed with grace),
        then they fail with UNAVAILABLE (at once if the peer is gone)."""
        self.closed = True
        conn = self._conn
        if conn is None or conn.transport is None:
            return
        if not conn.pending:
            conn.transport.close()
        else:
            try:
                asyncio.get_running_loop().call_later(grace, conn.transport.close)
            except RuntimeError:  # no running loop (shutdown)
                conn.transport.close()


class BlockingClient:
    """Direct calls from plain threads (a user thread's put or get): one
    blocking socket per thread, no event loop in between (Ray's plasma
    client talks to its store the same way)."""

    def __init__(self, address: str, token: str, timeout: float = 300.0) -> None:
        self.address = address
        self._token = token.encode()
        self._timeout = timeout
        self._local = threading.local()

    def _socket(self) -> socket.socket:
        s: socket.socket | None = getattr(self._local, "sock", None)
        if s is None:
            host, _, port = self.address.rpartition(":")
            try:
                s = socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                _keepalive(s)
                cfg = tls.current()
                if cfg is not None:
                    s = tls.client_context(cfg).wrap_socket(s, server_hostname=tls.server_hostname(cfg, host))
                s.settimeout(self._timeout)
                s.sendall(HEADER.pack(len(self._token), 0, AUTH) + self._token)
            except OSError as e:
                raise DirectError(UNAVAILABLE, f"cannot connect to {self.address}: {e}") from None
            self._local.sock = s
        return s

    def close(self) -> None:
        """Close the calling thread's connection (the next call opens another)."""
        s = getattr(self._local, "sock", None)
        self._local.sock, self._local.posted = None, 0
        if s is not None:
            s.close()

    def post(self, method: str, request: Any) -> None:
        """Send a call without waiting for its reply (a seal: nothing the
        caller does next depends on it). Its reply is read, and an error in
        it logged, by this thread's next call (or post, past MAX_POSTED)."""
        kind, _req_cls, _reply_cls = RAYLET_STORE_CALLS[method]
        s = self._socket()
        payload = request.SerializeToString()
        try:
            if getattr(self._local, "posted", 0) >= MAX_POSTED:
                while self._local.posted:
                    self._read_frame(s)
            s.sendall(HEADER.pack(len(payload), POST_RID, kind) + payload)
        except BaseException as e:
            self._local.sock, self._local.posted = None, 0
            s.close()
            if isinstance(e, OSError):
                raise DirectError(UNAVAILABLE, f"{method} on {self.address}: {e}") from None
            raise
        self._local.posted = getattr(self._local, "posted", 0) + 1

    def _read_frame(self, s: socket.socket) -> tuple[int, int, bytes]:
        """The next frame that answers a call of ours: (request id, kind,
        body); replies to posted calls on the way are checked and dropped."""
        while True:
            n, rid, rkind = HEADER.unpack(_recv_exactly(s, HEADER.size))
            if n > MAX_FRAME:
                raise ConnectionError(f"a reply of {n} bytes is over the limit")
            body = _recv_exactly(s, n)
            if rid != POST_RID:
                return rid, rkind, body
            self._local.posted = max(0, getattr(self._local, "posted", 0) - 1)
            if rkind != REPLY:
                logger.warning("a call to %s sent without waiting failed: %s", self.address,
                               body.decode(errors="replace"))
            if not self._local.posted:
                return rid, -1, b""  # nothing more owed: a caller draining posts stops here

    def call(self, method: str, request: Any) -> Any:
        kind, _req_cls, reply_cls = RAYLET_STORE_CALLS[method]
        s = self._socket()
        payload = request.SerializeToString()
        try:
            s.sendall(HEADER.pack(len(payload), 1, kind) + payload)
            while True:
                _rid, rkind, body = self._read_frame(s)
                if _rid != POST_RID:
                    break
        except BaseException as e:  # a broken or interrupted call leaves the socket unusable
            self._local.sock, self._local.posted = None, 0
            s.close()
            if isinstance(e, OSError):
                raise DirectError(UNAVAILABLE, f"{method} on {self.address}: {e}") from None
            raise
        if rkind != REPLY:
            raise DirectError(INTERNAL, body.decode(errors="replace"))
        return reply_cls.FromString(body)  # type: ignore[attr-defined]


    def call_many(self, method: str, requests: list[Any], window: int = 256) -> list[Any]:
        """The same call for many requests, pipelined: up to ``window``
        requests leave in one write, then their replies (in any order,
        matched by request id) are read; one round trip per window instead
        of one per request (a ``get`` of many stored objects)."""
        kind, _req_cls, reply_cls = RAYLET_STORE_CALLS[method]
        s = self._socket()
        out: list[Any] = [None] * len(requests)
        try:
            for start in range(0, len(requests), window):
                chunk = requests[start:start + window]
                frames = []
                for i, request in enumerate(chunk):
                    payload = request.SerializeToString()
                    frames.append(HEADER.pack(len(payload), start + i + 1, kind))
                    frames.append(payload)
                s.sendall(b"".join(frames))
                for _ in chunk:
                    rid, rkind, body = self._read_frame(s)
                    while rid == POST_RID:
                        rid, rkind, body = self._read_frame(s)
                    if rkind != REPLY or not start < rid <= start + len(chunk):
                        raise DirectError(INTERNAL, body.decode(errors="replace") if rkind != REPLY
                                          else f"a reply to unknown request {rid}")
                    out[rid - 1] = reply_cls.FromString(body)  # type: ignore[attr-defined]
        except BaseException as e:  # replies may be left unread: the socket is done
            self._local.sock, self._local.posted = None, 0
            s.close()
            if isinstance(e, OSError):
                raise DirectError(UNAVAILABLE, f"{method} on {self.address}: {e}") from None
            raise
        return out


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    buf = bytearray(n)
    view = memoryview(buf)
    pos = 0
    while pos < n:
        got = s.recv_into(view[pos:])
        if not got:
            raise ConnectionResetError("the connection was closed")
        pos += got
    return bytes(buf)
