"""The way in to a client: connections to a client, relayed by its home raylet.

A client (a driver on a machine with no node: a laptop, a pod) may be
unreachable from the cluster: behind NAT or a firewall, or its machine
accepts no connections. Yet the cluster calls its drivers (borrowers tell
the owner about refs, workers report streamed items, raylets send output
lines). So a client never listens on the network: its CoreWorker's server
binds to loopback, and the client opens one gRPC stream to its home raylet
(``RayletService.Tunnel``), which listens on a port of its own node for that
client and relays every connection made to it over the stream, byte for
byte, as Ray Client's server proxies everything over the client's one
outbound connection. The client announces ``raylet_ip:that_port`` as its
address, so the rest of the cluster needs no idea of tunnels; TLS and the
token, being inside the relayed bytes, are end to end.

Frames (``TunnelFrame``): the client says ``HELLO`` (its worker id) and gets
``READY`` (the port); then ``OPEN`` (raylet → client: a connection came,
``conn_id``), ``DATA`` (bytes of ``conn_id``, either way), ``CLOSE`` (it
ended, either way; ``CLOSE`` with ``conn_id`` 0 from the client: goodbye).

A stream that breaks without goodbye (a network blip) keeps the port for
``grace`` seconds (the driver timeout, 30 s): a client that comes back with
the same worker id gets the same port, so the address the cluster knows it
by stays valid; connections open across the break are dropped (their
callers retry or fail as for any lost connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from jray._private.protocol import raylet_pb2 as rpb

logger = logging.getLogger(__name__)

F = rpb.TunnelFrame
READ_BYTES = 256 * 1024


class _Tunnel:
    """Raylet side: the port of one client and the connections made to it."""

    def __init__(self, client_id: bytes) -> None:
        self.client_id = client_id
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self.out: asyncio.Queue[F | None] | None = None  # the client's stream, while attached
        self.conns: dict[int, asyncio.StreamWriter] = {}
        self.ids = itertools.count(1)
        self.expiry: asyncio.TimerHandle | None = None

    async def listen(self, host: str) -> None:
        self.server = await asyncio.start_server(self._accept, host, 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        out = self.out
        if out is None:  # the client is away (within its grace): refuse, the caller retries
            writer.close()
            return
        cid = next(self.ids)
        self.conns[cid] = writer
        out.put_nowait(F(kind=F.OPEN, conn_id=cid))
        try:
            while data := await reader.read(READ_BYTES):
                if self.out is not out:
                    break
                out.put_nowait(F(kind=F.DATA, conn_id=cid, data=data))
        except (ConnectionError, OSError):
            pass
        finally:
            if self.conns.pop(cid, None) is not None and self.out is out:
                out.put_nowait(F(kind=F.CLOSE, conn_id=cid))
            writer.close()

    def from_client(self, frame: F) -> None:
        w = self.conns.get(frame.conn_id)
        if w is None:
            return
        if frame.kind == F.DATA:
            w.write(frame.data)
        elif frame.kind == F.CLOSE:
            self.conns.pop(frame.conn_id, None)
            w.close()

    def detach(self) -> None:
        """The client's stream ended: drop the connections it carried."""
        self.out = None
        for w in self.conns.values():
            w.close()
        self.conns.clear()

    def close(self) -> None:
        self.detach()
        if self.expiry is not None:
            self.expiry.cancel()
        if self.server is not None:
            self.server.close()


class TunnelHost:
    """The tunnels of one raylet (``RayletService.Tunnel``)."""

    def __init__(self, host: str, grace: float) -> None:
        self.host = host
        self.grace = grace
        self.tunnels: dict[bytes, _Tunnel] = {}

    async def serve(self, request_iterator: Any, context: Any) -> AsyncIterator[F]:
        try:
            hello = await request_iterator.__anext__()
        except StopAsyncIteration:
            return
        if hello.kind != F.HELLO or not hello.client_id:
            raise ValueError("a tunnel starts with HELLO and the client's worker id")
        t = self.tunnels.get(hello.client_id)
        if t is None:
            t = _Tunnel(hello.client_id)
            await t.listen(self.host)
            self.tunnels[hello.client_id] = t
            logger.info("tunnel for client %s on port %d", hello.client_id.hex()[:12], t.port)
        else:  # the client is back within its grace: same port
            if t.expiry is not None:
                t.expiry.cancel()
                t.expiry = None
            if t.out is not None:  # a stream still attached (the old one not noticed broken yet)
                t.out.put_nowait(None)
            t.detach()
            logger.info("tunnel for client %s re-attached (port %d)", hello.client_id.hex()[:12], t.port)
        out: asyncio.Queue[F | None] = asyncio.Queue()
        t.out = out
        goodbye = False

        async def pump_in() -> None:
            nonlocal goodbye
            try:
                async for frame in request_iterator:
                    if frame.kind == F.CLOSE and frame.conn_id == 0:
                        goodbye = True
                        break
                    if t.out is out:
                        t.from_client(frame)
            except Exception:  # noqa: BLE001 - the stream broke: handled below
                pass
            out.put_nowait(None)

        reader = asyncio.get_running_loop().create_task(pump_in())
        try:
            yield F(kind=F.READY, port=t.port)
            while (frame := await out.get()) is not None:
                yield frame
        finally:
            reader.cancel()
            if t.out is out:
                t.detach()
                if goodbye:
                    self._drop(t)
                else:
                    t.expiry = asyncio.get_running_loop().call_later(self.grace, self._drop, t)

    def _drop(self, t: _Tunnel) -> None:
        if self.tunnels.get(t.client_id) is t and t.out is None:
            del self.tunnels[t.client_id]
            t.close()
            logger.info("tunnel for client %s closed", t.client_id.hex()[:12])

    def close(self) -> None:
        for t in self.tunnels.values():
            t.close()
        self.tunnels.clear()


class TunnelClient:
    """Client side: keeps the stream to the home raylet open (reopening it
    after a break) and connects each relayed connection to ``local_port``."""

    def __init__(self, open_stream: Callable[[Any], Any], client_id: bytes, local_port: int,
                 grace: float) -> None:
        self.open_stream = open_stream  # (request iterator) -> a stream-stream call
        self.client_id = client_id
        self.local_port = local_port
        self.grace = grace
        self.port = 0
        self.closed = False
        self._out: asyncio.Queue[F | None] = asyncio.Queue()
        self._conns: dict[int, asyncio.Queue[bytes | None]] = {}
        self._call: Any = None
        self._task: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self, timeout: float) -> int:
        """Open the tunnel; the port the raylet listens on for this client."""
        ready = asyncio.get_running_loop().create_future()
        self._task = asyncio.get_running_loop().create_task(self._run(ready))
        return await asyncio.wait_for(ready, timeout)  # type: ignore[no-any-return]

    async def _frames(self, out: asyncio.Queue[F | None]) -> AsyncIterator[F]:
        yield F(kind=F.HELLO, client_id=self.client_id)
        while (frame := await out.get()) is not None:
            yield frame

    async def _run(self, ready: asyncio.Future) -> None:
        broken_at: float | None = None
        loop = asyncio.get_running_loop()
        while not self.closed:
            out: asyncio.Queue[F | None] = asyncio.Queue()
            self._out = out
            try:
                call = self._call = self.open_stream(self._frames(out))
                async for frame in call:
                    if frame.kind == F.READY:
                        if self.port and frame.port != self.port:
                            logger.warning("the cluster lost this client's address (its tunnel came back on "
                                           "port %d, not %d): calls from the cluster to it fail", frame.port,
                                           self.port)
                        self.port = frame.port
                        broken_at = None
                        if not ready.done():
                            ready.set_result(frame.port)
                    elif frame.kind == F.OPEN:
                        self._open(frame.conn_id, out)
                    elif frame.kind == F.DATA:
                        q = self._conns.get(frame.conn_id)
                        if q is not None:
                            q.put_nowait(frame.data)
                    elif frame.kind == F.CLOSE:
                        q = self._conns.pop(frame.conn_id, None)
                        if q is not None:
                            q.put_nowait(None)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if self.closed or (task is not None and getattr(task, "cancelling", lambda: 0)()):
                    raise
                if self._call is None or not self._call.cancelled():
                    raise
                # the call itself was cancelled (its channel closed, ...): a broken stream
            except Exception as e:  # noqa: BLE001 - the stream broke
                if not ready.done():
                    ready.set_exception(e)
                    return
                logger.debug("tunnel stream broke: %s", e)
            for q in self._conns.values():
                q.put_nowait(None)
            self._conns.clear()
            if self.closed:
                return
            now = loop.time()
            broken_at = broken_at or now
            if now - broken_at > self.grace:
                logger.warning("the tunnel to the cluster stayed broken for %.0f s; giving up", self.grace)
                return
            await asyncio.sleep(0.5)

    def _open(self, cid: int, out: asyncio.Queue[F | None]) -> None:
        q: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._conns[cid] = q
        t = asyncio.get_running_loop().create_task(self._relay(cid, q, out))
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _relay(self, cid: int, q: asyncio.Queue[bytes | None], out: asyncio.Queue[F | None]) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.local_port)
        except OSError:
            out.put_nowait(F(kind=F.CLOSE, conn_id=cid))
            return

        async def down() -> None:  # raylet -> local server
            while (data := await q.get()) is not None:
                writer.write(data)
                await writer.drain()
            writer.close()

        t = asyncio.get_running_loop().create_task(down())
        try:
            while data := await reader.read(READ_BYTES):
                out.put_nowait(F(kind=F.DATA, conn_id=cid, data=data))
        except (ConnectionError, OSError):
            pass
        finally:
            if self._conns.pop(cid, None) is not None:
                out.put_nowait(F(kind=F.CLOSE, conn_id=cid))
            t.cancel()
            writer.close()

    async def close(self) -> None:
        """Say goodbye (the raylet frees the port at once) and stop."""
        self.closed = True
        self._out.put_nowait(F(kind=F.CLOSE, conn_id=0))
        self._out.put_nowait(None)
        if self._task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self._task), 2.0)
            self._task.cancel()
        for t in list(self._tasks):
            t.cancel()
