"""A gRPC client's connection relayed by a direct server (``direct.py``).

A worker without TLS has one port, its direct server's. A connection whose
first bytes are HTTP/2's preface instead of a token frame (no frame starts
so: its length would be over the pre-auth limit) is a gRPC client's: the
server hands it to a :class:`Relay`, which connects to the loopback port of
the gRPC server the worker starts on the first such client
(``CoreWorker._grpc_port``) and copies bytes both ways. Most workers never
get one, and starting a gRPC server cost each new worker ~3 ms of CPU and
gRPC's threads.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

logger = logging.getLogger(__name__)


class _Client(Protocol):
    """What the relay uses of the direct server's connection."""

    srv: Any  # its DirectServer (``http2``: the coroutine giving the gRPC server's port)
    transport: asyncio.Transport | None
    tasks: set[asyncio.Task]


HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
RELAY_HOLD_BYTES = 1 << 20


class Relay(asyncio.Protocol):
    """A gRPC client's connection to a process that serves gRPC only when
    asked (a worker: ``CoreWorker._grpc_port``), relayed byte for byte to
    that server's loopback port. Each side's write buffer pauses the
    other's reading. Either side closing closes both."""

    def __init__(self, client: _Client, first: bytes) -> None:
        self.client = client
        self.up: asyncio.Transport | None = None
        self._pending = [first]  # the client's bytes until the server's connection is up
        self._held = len(first)
        self._paused = False  # the client reads slowly: the server's side is not read
        self._client_paused = False  # too much held: the client's side is not read
        t = asyncio.get_running_loop().create_task(self._open())
        client.tasks.add(t)
        t.add_done_callback(client.tasks.discard)

    async def _open(self) -> None:
        assert self.client.srv.http2 is not None
        try:
            port = await self.client.srv.http2()
            await asyncio.get_running_loop().create_connection(lambda: self, "127.0.0.1", port)
        except Exception as e:  # noqa: BLE001 - the client sees its connection close
            logger.warning("could not relay a gRPC connection: %s", e)
            self.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.up = transport  # type: ignore[assignment]
        if self.client.transport is None:  # the client left meanwhile
            transport.close()
            return
        transport.writelines(self._pending)  # type: ignore[attr-defined]
        self._pending, self._held = [], 0
        if self._paused:
            transport.pause_reading()  # type: ignore[attr-defined]
        if self._client_paused:
            self._client_paused = False
            self.client.transport.resume_reading()

    def send(self, data: bytes) -> None:
        if self.up is None:  # held until the server's connection is up, at most ~1 MiB
            self._pending.append(data)
            self._held += len(data)
            t = self.client.transport
            if self._held > RELAY_HOLD_BYTES and t is not None and not self._client_paused:
                self._client_paused = True
                t.pause_reading()
        elif not self.up.is_closing():
            self.up.write(data)

    def data_received(self, data: bytes) -> None:
        t = self.client.transport
        if t is not None and not t.is_closing():
            t.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        t = self.client.transport
        if t is not None:
            t.close()

    def pause_writing(self) -> None:  # the server is slow to read: stop reading the client
        t = self.client.transport
        if t is not None:
            t.pause_reading()

    def resume_writing(self) -> None:
        t = self.client.transport
        if t is not None and not t.is_closing():
            t.resume_reading()

    def pause_reading(self) -> None:  # the client is slow to read: stop reading the server
        self._paused = True
        if self.up is not None:
            self.up.pause_reading()

    def resume_reading(self) -> None:
        self._paused = False
        if self.up is not None and not self.up.is_closing():
            self.up.resume_reading()

    def close(self) -> None:
        if self.up is not None:
            self.up.close()
        t = self.client.transport
        if t is not None:
            t.close()


