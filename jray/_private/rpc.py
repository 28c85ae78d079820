"""gRPC wiring shared by every daemon: token checks, servers, channels.

Every call carries the cluster token in the ``jray-token`` metadata entry;
servers reject calls without it (UNAUTHENTICATED) before any handler runs,
so a stray or hostile client cannot drive the cluster (Ray's CVE-2023-48022),
and before the request's body is read (a huge message costs them nothing).
"""

from __future__ import annotations

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
            s = self._stubs[key] = _with_metadata(stub_cls(self._channel(address)), self._md)
        return s

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
