"""gRPC wiring shared by every daemon: token checks, servers, channels.

Every call carries the cluster token in the ``jray-token`` metadata entry;
servers reject calls without it (UNAUTHENTICATED) before any handler runs,
so a stray or hostile client cannot drive the cluster (Ray's CVE-2023-48022),
and before the request's body is read (a huge message costs them nothing).

A service that lives in the calling process (the GCS served by its head
raylet, ``raylet/__main__._start_gcs_here``) is registered with
``serve_locally``: a ``ChannelPool`` stub for its address then calls its
unary methods on the servicer itself (:class:`LocalStub`), with the request
and reply copied and gRPC's errors and deadlines, instead of a loopback gRPC
call that cost the process ~0.5–1 ms of CPU for each side (three per actor
created and killed: the lease, the kill, the worker's failure report).
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
from collections.abc import Callable
from typing import Any

import grpc
from grpc import aio

from jray._private import config, tls

logger = logging.getLogger(__name__)

CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", config.GRPC_MAX_MESSAGE),
    ("grpc.max_receive_message_length", config.GRPC_MAX_MESSAGE),
    ("grpc.so_reuseport", 0),
    ("grpc.enable_retries", 0),
    ("grpc.keepalive_time_ms", 30000),
    # A peer that went away and came back (a GCS restarted by its supervisor)
    # is reconnected to within a second, not after gRPC's back-off of up to 120 s.
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def _reject(message: str) -> grpc.RpcMethodHandler:
    """The handler of a call without the token. A stream-request handler,
    whatever the method: it aborts without reading the request, so gRPC never
    receives the body (a unary handler is given the whole message first: an
    unauthenticated 200 MiB request cost the server 400 MiB of RSS)."""

    async def handler(request_iterator: Any, context: aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return grpc.stream_unary_rpc_method_handler(handler)


class TokenInterceptor(aio.ServerInterceptor):  # type: ignore[misc]
    """Rejects every call whose ``jray-token`` metadata is not the cluster's."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Any], details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler:
        for key, value in details.invocation_metadata or ():
            if key == config.TOKEN_METADATA_KEY:
                v = value.encode() if isinstance(value, str) else value
                if hmac.compare_digest(v, self._token):
                    return await continuation(details)
                break
        logger.warning("rejected unauthenticated call to %s", details.method)
        return _reject("missing or wrong cluster token")


class _TokenUnary(aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, md: tuple[tuple[str, str], ...]) -> None:
        self._md = md

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        details = details._replace(metadata=self._md) if details.metadata is None else details._replace(
            metadata=tuple(details.metadata) + self._md
        )
        return await continuation(details, request)


class _TokenStream(aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    def __init__(self, md: tuple[tuple[str, str], ...]) -> None:
        self._md = md

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        details = details._replace(metadata=self._md) if details.metadata is None else details._replace(
            metadata=tuple(details.metadata) + self._md
        )
        return await continuation(details, request)


# A connection must finish its handshake (TLS, then HTTP/2's preface) within
# this long or the server drops it: a peer that opens connections and sends
# nothing holds none for long (gRPC's own default is 120 s).
SERVER_OPTIONS = [*CHANNEL_OPTIONS, ("grpc.server_handshake_timeout_ms", int(config.GRPC_HANDSHAKE_SECONDS * 1000))]


def make_server(token: str, host: str = "127.0.0.1", port: int = 0) -> tuple[aio.Server, int]:
    """An aio server bound to ``host:port`` (0 picks a free port); TLS
    (mutual) when the process's ``tls.current()`` says so."""
    server = aio.server(interceptors=[TokenInterceptor(token)], options=SERVER_OPTIONS)
    cfg = tls.current()
    if cfg is None:
        bound = server.add_insecure_port(f"{host}:{port}")
    else:
        bound = server.add_secure_port(f"{host}:{port}", tls.server_credentials(cfg))
    if bound == 0:
        raise OSError(f"could not bind a gRPC server to {host}:{port}")
    return server, bound


def open_channel(address: str, interceptors: Any = None) -> aio.Channel:
    """An aio channel to ``address``: TLS when the process's settings say so."""
    cfg = tls.current()
    if cfg is None:
        return aio.insecure_channel(address, options=CHANNEL_OPTIONS, interceptors=interceptors)
    return aio.secure_channel(address, tls.channel_credentials(cfg), options=CHANNEL_OPTIONS + tls.channel_options(cfg),
                              interceptors=interceptors)


def make_channel(address: str, token: str) -> aio.Channel:
    md = ((config.TOKEN_METADATA_KEY, token),)
    return open_channel(address, interceptors=[_TokenUnary(md), _TokenStream(md)])


DROP_GRACE_SECONDS = 30.0


def _with_metadata(stub: Any, md: tuple[tuple[str, str], ...]) -> Any:
    """``stub`` with each RPC method bound to send ``md`` (the cluster token)."""
    for name, method in list(vars(stub).items()):
        if callable(method):
            setattr(stub, name, functools.partial(method, metadata=md))
    return stub


class LazyStub:
    """A stub made by ``make()`` on its first method lookup, which must be on
    the event loop (as every call on it): a process that never calls the
    service opens no channel (a short-lived actor's worker spent ~0.4–0.8 ms
    of CPU opening each of its channels to the GCS and the raylet)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._stub: Any = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if self._stub is None:
            self._stub = self._make()
        return getattr(self._stub, name)


# (address, stub class) -> the servicer in this process that answers it.
_LOCAL: dict[tuple[str, type], Any] = {}


def serve_locally(address: str, stub_cls: type, servicer: Any) -> None:
    """Calls through any ``ChannelPool`` stub of ``stub_cls`` for ``address``
    made from now on go to ``servicer`` in this process (unary methods; the
    streaming ones keep their gRPC call)."""
    _LOCAL[(address, stub_cls)] = servicer


class _KindOf:
    """A stand-in channel: the generated stub's constructor tells it each
    method's kind and reply class."""

    @staticmethod
    def unary_unary(path: str, request_serializer: Any = None, response_deserializer: Any = None,
                    **_: Any) -> tuple[str, Any]:
        return ("unary", response_deserializer)

    @staticmethod
    def unary_stream(*_: Any, **__: Any) -> tuple[str, Any]:
        return ("stream", None)

    stream_unary = stream_stream = unary_stream


class _LocalContext:
    """What a servicer reads of its context, for an in-process call."""

    def __init__(self, metadata: Any) -> None:
        self._md = tuple(metadata or ())

    async def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        raise aio.AioRpcError(code, aio.Metadata(), aio.Metadata(), details=details)

    def invocation_metadata(self) -> tuple[Any, ...]:
        return self._md

    def peer(self) -> str:
        return "local"

    def done(self) -> bool:
        return False


class LocalStub:
    """A stub whose unary methods run ``servicer``'s handler in this process
    (as a task: the call starts at once, as a gRPC call does). The request
    and the reply are copied (neither side may hold the other's message),
    ``timeout`` is a deadline (DEADLINE_EXCEEDED), and a handler's exception
    reaches the caller as gRPC would send it (UNKNOWN, its text), logged
    here as a gRPC server logs it. Streaming methods use ``grpc_stub()``."""

    def __init__(self, stub_cls: type, servicer: Any, grpc_stub: Callable[[], Any]) -> None:
        kinds = vars(stub_cls(_KindOf()))
        self._grpc_stub = grpc_stub
        self._remote: Any = None
        for name, (kind, reply_parser) in kinds.items():
            if kind == "unary":
                setattr(self, name, functools.partial(self._call, getattr(servicer, name), reply_parser))

    def __getattr__(self, name: str) -> Any:  # a streaming method: over gRPC
        if name.startswith("__"):
            raise AttributeError(name)
        if self._remote is None:
            self._remote = self._grpc_stub()
        return getattr(self._remote, name)

    def _call(self, handler: Callable[[Any, Any], Any], reply_parser: Any, request: Any,
              timeout: float | None = None, metadata: Any = None, **_: Any) -> asyncio.Task:
        mine = type(request)()
        mine.CopyFrom(request)
        return asyncio.ensure_future(self._run(handler, reply_parser, mine, timeout, metadata))

    @staticmethod
    async def _run(handler: Callable[[Any, Any], Any], reply_parser: Any, request: Any,
                   timeout: float | None, metadata: Any) -> Any:
        try:
            if timeout is None:
                reply = await handler(request, _LocalContext(metadata))
            else:
                reply = await asyncio.wait_for(handler(request, _LocalContext(metadata)), timeout)
        except (aio.AioRpcError, asyncio.CancelledError):
            raise
        except asyncio.TimeoutError:
            raise aio.AioRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, aio.Metadata(), aio.Metadata(),
                                  details="Deadline Exceeded") from None
        except Exception as e:  # noqa: BLE001 - as a gRPC server answers a handler's error
            logger.exception("in-process call to %s failed", getattr(handler, "__name__", handler))
            raise aio.AioRpcError(grpc.StatusCode.UNKNOWN, aio.Metadata(), aio.Metadata(),
                                  details=f"Unexpected {type(e)}: {e}") from None
        out = type(reply)() if reply_parser is None else reply_parser.__self__()
        out.CopyFrom(reply)
        return out


class ChannelPool:
    """One channel (and stub) per address, reused for the process's life."""

    def __init__(self, token: str) -> None:
        self._token = token
        self._md = ((config.TOKEN_METADATA_KEY, token),)
        self._channels: dict[str, aio.Channel] = {}
        self._stubs: dict[tuple[str, type], Any] = {}
        self._raw: dict[tuple[str, str], Any] = {}

    def stub(self, address: str, stub_cls: type) -> Any:
        """Must be called on the event loop the channels belong to."""
        key = (address, stub_cls)
        s = self._stubs.get(key)
        if s is None:
            servicer = _LOCAL.get(key)
            if servicer is not None:
                s = self._stubs[key] = LocalStub(stub_cls, servicer, functools.partial(self._grpc_stub, address,
                                                                                        stub_cls))
            else:
                s = self._stubs[key] = self._grpc_stub(address, stub_cls)
        return s

    def _grpc_stub(self, address: str, stub_cls: type) -> Any:
        return _with_metadata(stub_cls(self._channel(address)), self._md)

    def _channel(self, address: str) -> aio.Channel:
        ch = self._channels.get(address)
        if ch is None:
            import asyncio

            asyncio.get_running_loop()  # raises outside the loop: aio channels are loop-bound
            # No client interceptor: an intercepted aio call runs the
            # interceptor in a task of its own (a loop iteration and
            # ~40 us per call). The stub's methods carry the token.
            ch = self._channels[address] = open_channel(address)
        return ch

    def raw_unary_stream(self, address: str, method: str, request_serializer: Callable[[Any], bytes]) -> Any:
        """``method`` (``/package.Service/Method``) on the channel to
        ``address``, token bound, its replies left as the raw bytes of each
        message (the caller parses what it needs: a bulk stream's data is
        then copied once, not three times). On the event loop, as :meth:`stub`."""
        key = (address, method)
        call = self._raw.get(key)
        if call is None:
            multi = self._channel(address).unary_stream(method, request_serializer=request_serializer,
                                                         response_deserializer=None)
            call = self._raw[key] = functools.partial(multi, metadata=self._md)
        return call

    def drop(self, address: str, dead: bool = False) -> None:
        """Forget the channel to ``address``; ``dead``: its node was declared
        dead, so the calls on it are cancelled now rather than after a grace
        period (a silent peer would leave them waiting for TCP to give up)."""
        ch = self._channels.pop(address, None)
        for key in [k for k in self._stubs if k[0] == address]:
            del self._stubs[key]
        for rkey in [k for k in self._raw if k[0] == address]:
            del self._raw[rkey]
        if ch is not None:  # the peer is gone: close the channel in the background
            import asyncio

            # With a grace period: calls still on the channel end on their
            # own (they fail, the peer being gone) and their callers settle
            # them; closing without one cancels them, and a caller awaiting
            # one would see CancelledError instead of an RpcError.
            try:
                asyncio.get_running_loop().create_task(ch.close(grace=0.0 if dead else DROP_GRACE_SECONDS))
            except RuntimeError:  # no running loop (shutdown)
                pass

    async def close(self) -> None:
        for ch in self._channels.values():
            try:
                await ch.close(grace=None)
            except Exception:  # pragma: no cover - best effort at shutdown
                pass
        self._channels.clear()
        self._stubs.clear()
        self._raw.clear()


def is_connection_error(e: BaseException) -> bool:
    """True when the peer is gone (process died, connection refused/reset)."""
    if isinstance(e, grpc.RpcError):
        code = e.code() if hasattr(e, "code") else None
        return code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN) or (
            code == grpc.StatusCode.INTERNAL and "RST_STREAM" in str(e)
        )
    return False


def gcs_unavailable(e: BaseException, address: str) -> BaseException:
    """``e`` from a GCS call, as the user should see it: a GcsUnavailableError
    when the GCS is gone (connection refused, reset, deadline), else ``e``."""
    if isinstance(e, grpc.RpcError):
        code = e.code() if hasattr(e, "code") else None
        if is_connection_error(e) or code == grpc.StatusCode.DEADLINE_EXCEEDED:
            from jray.exceptions import GcsUnavailableError

            detail = e.details() if hasattr(e, "details") else str(e)
            return GcsUnavailableError(address, f"{getattr(code, 'name', code)}: {detail}")
    return e
