"""The way in to a client (jray/_private/tunnel.py) over a real gRPC server:
connections made to the raylet's port for a client reach the client's local
server byte for byte (many at once, megabytes each way); a broken stream
comes back on the same port; a goodbye frees the port at once; a client
gone without one keeps its port for the grace period, then loses it. The
whole client path over the tunnel is in test_client.py (a client on its own
"machine" listens on no network address)."""

from __future__ import annotations

import asyncio
import os

import pytest

from jray._private import rpc
from jray._private.protocol import raylet_pb2_grpc as rgrpc
from jray._private.tunnel import TunnelClient, TunnelHost

pytestmark = pytest.mark.timeout(60)
TOKEN = "t" * 48


class _Raylet(rgrpc.RayletServiceServicer):
    def __init__(self, host: TunnelHost) -> None:
        self.host = host

    async def Tunnel(self, request_iterator, context):  # noqa: N802 - gRPC's name
        async for frame in self.host.serve(request_iterator, context):
            yield frame


async def _echo_server():
    async def echo(reader, writer):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _roundtrip(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    got = await asyncio.wait_for(reader.readexactly(len(payload)), 20)
    writer.close()
    return got


async def _refused(port: int) -> bool:
    """True when nothing takes a connection on ``port``, or it is closed
    at once without a byte."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    writer.write(b"x")
    try:
        return await asyncio.wait_for(reader.read(1), 5) == b""
    except ConnectionError:  # reset: closed on us
        return True
    except asyncio.TimeoutError:  # held open: someone is behind it
        return False
    finally:
        writer.close()


@pytest.fixture
def run():
    loop = asyncio.new_event_loop()
    yield loop.run_until_complete
    loop.close()


async def _setup(grace: float):
    host = TunnelHost("127.0.0.1", grace)
    server, port = rpc.make_server(TOKEN)
    rgrpc.add_RayletServiceServicer_to_server(_Raylet(host), server)
    await server.start()
    pool = rpc.ChannelPool(TOKEN)
    stub = pool.stub(f"127.0.0.1:{port}", rgrpc.RayletServiceStub)
    echo, echo_port = await _echo_server()
    return host, server, pool, stub, echo, echo_port


def test_connections_reach_the_client_byte_for_byte(run):
    async def main():
        host, server, pool, stub, echo, echo_port = await _setup(grace=5)
        client = TunnelClient(lambda frames: stub.Tunnel(frames), os.urandom(16), echo_port, 5)
        try:
            port = await client.start(10)
            big = os.urandom(5 * 1024 * 1024)
            got = await asyncio.gather(*[_roundtrip(port, bytes([i]) * 1000) for i in range(20)],
                                       _roundtrip(port, big))
            assert got[:20] == [bytes([i]) * 1000 for i in range(20)]
            assert got[20] == big
        finally:
            await client.close()
            await server.stop(0)
            await pool.close()
            echo.close()

    run(main())


def test_a_broken_stream_comes_back_on_the_same_port_and_goodbye_frees_it(run):
    async def main():
        host, server, pool, stub, echo, echo_port = await _setup(grace=5)
        client = TunnelClient(lambda frames: stub.Tunnel(frames), os.urandom(16), echo_port, 5)
        try:
            port = await client.start(10)
            assert await _roundtrip(port, b"before") == b"before"
            client._call.cancel()  # the stream breaks (as in a network blip)
            for _ in range(100):
                await asyncio.sleep(0.1)
                if client._call is not None and not client._call.done():
                    try:
                        if await _roundtrip(port, b"after") == b"after":
                            break
                    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
                        pass
            else:
                raise AssertionError("the tunnel did not come back on its port")
            assert client.port == port and len(host.tunnels) == 1
            await client.close()  # goodbye: the port goes at once
            for _ in range(50):
                if not host.tunnels:
                    break
                await asyncio.sleep(0.1)
            assert not host.tunnels and await _refused(port)
        finally:
            await client.close()
            await server.stop(0)
            await pool.close()
            echo.close()

    run(main())


def test_a_vanished_client_keeps_its_port_for_the_grace_period_only(run):
    async def main():
        host, server, pool, stub, echo, echo_port = await _setup(grace=1.5)
        client = TunnelClient(lambda frames: stub.Tunnel(frames), os.urandom(16), echo_port, 5)
        try:
            port = await client.start(10)
            assert client._task is not None
            client._task.cancel()  # gone without a word
            client._call.cancel()
            await asyncio.sleep(0.5)
            assert len(host.tunnels) == 1  # still held: it may come back
            assert await _refused(port)  # but nobody is behind it now
            await asyncio.sleep(2.0)
            assert not host.tunnels  # past the grace period
        finally:
            await server.stop(0)
            await pool.close()
            echo.close()

    run(main())
