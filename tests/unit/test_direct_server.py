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
