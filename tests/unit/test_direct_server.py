"""The direct transport's server side (jray._private.direct.DirectServer) on a
real socket, without a cluster: requests a fast handler takes are answered
by its callback (no coroutine per call: a worker's synchronous task and
actor-call path), the others by the unary coroutine, and a failing handler
answers with an ERROR frame while the connection goes on."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from jray._private import direct
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import core_worker_pb2 as wpb

TOKEN = "t" * 48
HEADER = struct.Struct("<IIB")


class Served:
    """A DirectServer on a loop thread; ``fast`` decides per request."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.fast_calls: list[bytes] = []
        self.slow_calls: list[bytes] = []
        self.decide: Callable[[wpb.PushTaskRequest], str] = lambda req: "fast"

        async def unary(req: wpb.PushTaskRequest) -> wpb.PushTaskReply:
            self.slow_calls.append(req.spec.task_id)
            await asyncio.sleep(0)
            return wpb.PushTaskReply(task_id=req.spec.task_id, run_seconds=2.0)

        def fast(req: wpb.PushTaskRequest, respond: Callable[[wpb.PushTaskReply], None]) -> bool:
            how = self.decide(req)
            if how == "raise":
                raise RuntimeError("the handler broke")
            if how != "fast":
                return False
            self.fast_calls.append(req.spec.task_id)
            # answered later, from the loop, as the worker's main thread does through post()
            self.loop.call_later(0.01, respond, wpb.PushTaskReply(task_id=req.spec.task_id, run_seconds=1.0))
            return True

        self.server = direct.DirectServer(TOKEN, {direct.PUSH: (wpb.PushTaskRequest, unary)}, None,
                                          {direct.PUSH: fast})
        self.port = asyncio.run_coroutine_threadsafe(self.server.start("127.0.0.1"), self.loop).result(10)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def served() -> Iterator[Served]:
    s = Served()
    yield s
    s.close()


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(HEADER.pack(len(TOKEN), 0, direct.AUTH) + TOKEN.encode())
    return sock


def _push(sock: socket.socket, rid: int, task_id: bytes) -> None:
    body = wpb.PushTaskRequest(spec=cpb.TaskSpec(task_id=task_id)).SerializeToString()
    sock.sendall(HEADER.pack(len(body), rid, direct.PUSH) + body)


def _read_frame(sock: socket.socket) -> tuple[int, int, bytes]:
    def exactly(n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            assert chunk, "the server closed the connection"
            buf += chunk
        return buf

    n, rid, kind = HEADER.unpack(exactly(9))
    return kind, rid, exactly(n)


def test_a_fast_handler_answers_by_callback_and_the_rest_go_to_the_coroutine(served: Served) -> None:
    served.decide = lambda req: "fast" if req.spec.task_id.startswith(b"f") else "slow"
    sock = _connect(served.port)
    try:
        _push(sock, 7, b"f1")
        _push(sock, 8, b"s1")
        _push(sock, 9, b"f2")
        replies: dict[int, Any] = {}
        for _ in range(3):
            kind, rid, payload = _read_frame(sock)
            assert kind == direct.REPLY
            replies[rid] = wpb.PushTaskReply.FromString(payload)
        # each answer carries its own request id, whichever path answered it
        assert {rid: (r.task_id, r.run_seconds) for rid, r in replies.items()} == {
            7: (b"f1", 1.0), 8: (b"s1", 2.0), 9: (b"f2", 1.0)}
        assert served.fast_calls == [b"f1", b"f2"] and served.slow_calls == [b"s1"]
    finally:
        sock.close()


def test_a_failing_handler_or_a_bad_request_answers_an_error_and_the_connection_goes_on(served: Served) -> None:
    served.decide = lambda req: "raise" if req.spec.task_id == b"bad" else "fast"
    sock = _connect(served.port)
    try:
        _push(sock, 1, b"bad")
        kind, rid, payload = _read_frame(sock)
        assert (kind, rid) == (direct.ERROR, 1) and b"the handler broke" in payload
        sock.sendall(HEADER.pack(3, 2, direct.PUSH) + b"\xff\xff\xff")  # not a PushTaskRequest
        kind, rid, payload = _read_frame(sock)
        assert (kind, rid) == (direct.ERROR, 2) and payload
        _push(sock, 3, b"ok")
        kind, rid, payload = _read_frame(sock)
        assert (kind, rid) == (direct.REPLY, 3) and wpb.PushTaskReply.FromString(payload).task_id == b"ok"
    finally:
        sock.close()


def test_a_worker_registers_with_its_raylet_over_the_direct_port_and_closes_that_connection() -> None:
    """``raylet_server`` answers RegisterWorker (a new worker's first call,
    made with a BlockingClient); ``close()`` ends the thread's connection
    and the next call opens another."""
    from jray._private.protocol import raylet_pb2 as rpb

    class Raylet:
        def __init__(self) -> None:
            self.registered: list[tuple[int, int]] = []

        async def RegisterWorker(self, request: rpb.RegisterWorkerRequest, context: Any) -> rpb.RegisterWorkerReply:
            assert context is None
            self.registered.append((request.pid, request.direct_port))
            return rpb.RegisterWorkerReply(node_id=b"n" * 28, store_path="/jray-test", direct_port=4321)

        def __getattr__(self, name: str) -> Any:  # the store calls: not made here
            async def unused(request: Any, context: Any) -> Any:
                raise AssertionError(name)

            return unused

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    raylet = Raylet()
    server = direct.raylet_server(raylet, TOKEN)
    port = asyncio.run_coroutine_threadsafe(server.start("127.0.0.1"), loop).result(10)
    try:
        client = direct.BlockingClient(f"127.0.0.1:{port}", TOKEN, timeout=10)
        reply = client.call("RegisterWorker", rpb.RegisterWorkerRequest(worker_id=b"w" * 28, pid=77, direct_port=9))
        assert (reply.node_id, reply.store_path, reply.direct_port) == (b"n" * 28, "/jray-test", 4321)
        first = client._local.sock
        client.close()
        assert client._local.sock is None and first.fileno() == -1
        client.call("RegisterWorker", rpb.RegisterWorkerRequest(pid=78))
        assert raylet.registered == [(77, 9), (78, 0)]
        client.close()
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def test_a_grpc_client_on_the_direct_port_is_relayed_to_a_grpc_server_started_on_first_use() -> None:
    """A worker serves gRPC only when a gRPC client comes (``http2=``): its
    one port takes both the direct transport and gRPC, whose connections go
    to the server ``http2()`` starts once; a first frame that is neither a
    token nor HTTP/2's preface closes the connection."""
    import grpc

    from jray._private import config, rpc
    from jray._private.protocol import core_worker_pb2_grpc as wgrpc

    class Owner(wgrpc.CoreWorkerServiceServicer):
        async def GetObjectStatus(self, request: Any, context: Any) -> Any:
            return wpb.GetObjectStatusReply(status=wpb.GetObjectStatusReply.FREED)

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    starts: list[int] = []
    grpc_server: list[Any] = []

    async def http2() -> int:
        if not grpc_server:
            server, port = rpc.make_server(TOKEN, "127.0.0.1")
            wgrpc.add_CoreWorkerServiceServicer_to_server(Owner(), server)
            await server.start()
            grpc_server.append(server)
            starts.append(port)
        return starts[0]

    async def unary(req: wpb.PushTaskRequest) -> wpb.PushTaskReply:
        return wpb.PushTaskReply(task_id=req.spec.task_id)

    server = direct.DirectServer(TOKEN, {direct.PUSH: (wpb.PushTaskRequest, unary)}, http2=http2)
    port = asyncio.run_coroutine_threadsafe(server.start("127.0.0.1"), loop).result(10)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub = wgrpc.CoreWorkerServiceStub(channel)
        md = ((config.TOKEN_METADATA_KEY, TOKEN),)
        for _ in range(2):  # the second on the same relayed connection
            reply = stub.GetObjectStatus(wpb.GetObjectStatusRequest(object_id=b"x"), metadata=md, timeout=10)
            assert reply.status == wpb.GetObjectStatusReply.FREED
        assert len(starts) == 1
        with pytest.raises(grpc.RpcError) as e:  # the gRPC server checks the token itself
            stub.GetObjectStatus(wpb.GetObjectStatusRequest(), timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        sock = _connect(port)  # the direct transport on the same port
        try:
            _push(sock, 5, b"t1")
            kind, rid, payload = _read_frame(sock)
            assert (kind, rid) == (direct.REPLY, 5) and wpb.PushTaskReply.FromString(payload).task_id == b"t1"
        finally:
            sock.close()
        bad = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            bad.sendall(b"PUT / HTTP/1.1\r\n\r\n")
            assert bad.recv(100) == b""  # closed, unanswered
        finally:
            bad.close()
    finally:
        channel.close()
        loop.call_soon_threadsafe(server.close)
        for s in grpc_server:
            asyncio.run_coroutine_threadsafe(s.stop(None), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
