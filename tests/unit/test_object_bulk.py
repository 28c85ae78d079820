"""The bulk path between raylets (``raylet/bulk.py``) without raylets: two
object managers over real arenas in /dev/shm, the source's ``BulkServer``
listening on 127.0.0.1, the destination pulling from it over a real TCP
connection; gRPC's ``ReadObjectRaw`` replaced by the source's own
``read_raw`` (the fallback), counted.

Covered: the bytes arrive intact and gRPC is not used; a wrong token is
refused (no byte of reply) and the pull falls back; a sender that stops
midway leaves nothing sealed (the object is aborted before the fallback)
and the fallback completes the pull, or the pull fails cleanly; a puller
that goes away midway leaves no pin on the sender; with TLS on, no bulk
connection is tried.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from jray._private import tls
from jray._private.object_store import Arena, LocalObjectStore
from jray._private.protocol import raylet_pb2 as rpb
from jray._private.raylet import bulk
from jray._private.raylet.object_manager import ObjectManager

MiB = 1 << 20
SRC, DST = b"\x01" * 16, b"\x02" * 16
SRC_ADDRESS = "10.0.0.1:7000"
OID = b"\x07" * 28
TOKEN = "t" * 48


class Pair:
    """``src`` serves over a BulkServer at ``bulk_port``; ``dst`` pulls."""

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int, dst_token: str = TOKEN) -> None:
        self.arenas: list[Arena] = []
        self.grpc_calls = 0
        self.grpc_fails = False
        self.on_grpc: Any = None  # called before the fallback streams
        self.src = self._manager(SRC, size, TOKEN)
        self.dst = self._manager(DST, size, dst_token)
        self.server = bulk.BulkServer(TOKEN, loop, self.src.bulk_acquire)
        self.bulk_port = self.server.start("127.0.0.1")
        self.peer: tuple[str, int] | None = ("127.0.0.1", self.bulk_port)

    def _manager(self, node_id: bytes, size: int, token: str) -> ObjectManager:
        arena = Arena.create(f"/dev/shm/jray-test-{uuid.uuid4().hex[:12]}", size + MiB)
        self.arenas.append(arena)
        store = LocalObjectStore(arena, size + MiB, spill_dir=None)
        return ObjectManager(store=store, arena=arena, node_id=node_id, raylet_stub=self._no_stub,
                             read_object=self._read_raw, bulk_peer=self._peer, token=token)

    def _peer(self, address: str) -> tuple[str, int] | None:
        assert address == SRC_ADDRESS
        return self.peer

    def _no_stub(self, address: str) -> Any:
        raise AssertionError("pulls use read_object")

    def _read_raw(self, address: str) -> Any:
        async def call(request: rpb.ReadObjectRequest) -> AsyncIterator[bytes]:
            self.grpc_calls += 1
            if self.on_grpc is not None:
                self.on_grpc()
            if self.grpc_fails:
                raise ConnectionError("the source went away")
            async for raw in self.src.read_raw(request):
                yield raw

        return call

    def put(self, data: bytes) -> None:
        reply = self.src.create(rpb.CreateObjectRequest(object_id=OID, size=len(data), primary=True))
        assert reply.ok
        self.src.arena.write_view(reply.offset, len(data))[:] = data
        self.src.seal(OID)

    def get_request(self) -> rpb.GetObjectRequest:
        ip, port = SRC_ADDRESS.split(":")
        return rpb.GetObjectRequest(object_id=OID, client_id=b"reader", from_ip=ip, from_port=int(port),
                                    from_node_id=SRC)

    def read_dst(self) -> bytes:
        loc = self.dst.store.get(OID, b"check")
        assert loc is not None
        data = bytes(self.dst.arena.write_view(loc[0], loc[1]))
        self.dst.store.release(OID, b"check")
        return data

    def pins(self, m: ObjectManager) -> int:
        return sum(o["pins"] for o in m.store.list_objects() if o["object_id"] == OID)

    def close(self) -> None:
        self.server.close()
        for m in (self.src, self.dst):
            m.store.close()
        for a in self.arenas:
            a.close()
            a.unlink()


DATA = os.urandom(24 * MiB)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


def _pair(loop: asyncio.AbstractEventLoop, **kw: Any) -> Pair:
    async def make() -> Pair:
        return Pair(loop, len(DATA), **kw)
    return loop.run_until_complete(make())


def test_an_object_moves_over_the_bulk_path_intact_without_grpc(loop: asyncio.AbstractEventLoop) -> None:
    p = _pair(loop)
    try:
        p.put(DATA)
        reply = loop.run_until_complete(p.dst.get(p.get_request()))
        assert reply.found, reply.error
        assert hashlib.sha256(p.read_dst()).digest() == hashlib.sha256(DATA).digest()
        assert p.grpc_calls == 0
        assert (p.dst.num_pulls, p.dst.num_bulk_pulls, p.dst.num_bulk_fallbacks) == (1, 1, 0)
        assert p.server.num_sent == 1
        loop.run_until_complete(asyncio.sleep(0.05))  # the unpin, handed to the loop
        assert p.pins(p.src) == 0
    finally:
        p.close()


@pytest.mark.parametrize("from_file", [True, False], ids=["sendfile", "sendall"])
def test_the_sender_sends_the_object_from_its_place_in_the_arena(loop: asyncio.AbstractEventLoop,
                                                                   from_file: bool) -> None:
    """The object starts past the arena's first bytes (another object before
    it): ``sendfile`` reads the file at the object's offset; a pin without a
    file (fd -1) is sent from the view. No descriptor is left open either way."""
    p = _pair(loop)
    try:
        other = p.src.create(rpb.CreateObjectRequest(object_id=b"\x09" * 28, size=3 * MiB + 123, primary=True))
        assert other.ok
        p.src.arena.write_view(other.offset, 3 * MiB + 123)[:] = b"\xee" * (3 * MiB + 123)
        p.src.seal(b"\x09" * 28)
        p.put(DATA[: 12 * MiB])
        loc = p.src.store.get(OID, b"where")
        assert loc is not None and loc[0] > 0
        p.src.store.release(OID, b"where")
        if not from_file:
            acquire = p.src.bulk_acquire

            async def without_file(oid: bytes) -> bulk.Pinned | None:
                got = await acquire(oid)
                if got is not None:
                    os.close(got.fd)
                    got = got._replace(fd=-1)
                return got

            p.server.acquire = without_file
        fds_before = len(os.listdir("/proc/self/fd"))
        reply = loop.run_until_complete(p.dst.get(p.get_request()))
        assert reply.found, reply.error
        assert p.read_dst() == DATA[: 12 * MiB]
        assert p.grpc_calls == 0 and p.server.num_sent == 1
        loop.run_until_complete(asyncio.sleep(0.05))
        assert p.pins(p.src) == 0
        assert len(os.listdir("/proc/self/fd")) <= fds_before
    finally:
        p.close()


def test_a_wrong_token_is_refused_and_the_pull_falls_back(loop: asyncio.AbstractEventLoop) -> None:
    p = _pair(loop, dst_token="x" * 48)
    try:
        p.put(DATA)
        # By hand: the server closes without a byte of reply.
        with socket.create_connection(("127.0.0.1", p.bulk_port), timeout=5) as s:
            s.settimeout(5)
            t = b"y" * 48
            s.sendall(bulk.MAGIC + bulk.REQUEST.pack(len(t), len(OID)) + t + OID)
            assert s.recv(64) == b""
        reply = loop.run_until_complete(p.dst.get(p.get_request()))
        assert reply.found, reply.error
        assert p.read_dst() == DATA
        assert p.server.num_refused == 2 and p.server.num_sent == 0
        assert (p.dst.num_bulk_pulls, p.dst.num_bulk_fallbacks, p.grpc_calls) == (0, 1, 1)
    finally:
        p.close()


class HalfSender:
    """A bulk server that announces ``size`` bytes, sends half, and dies."""

    def __init__(self, size: int) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.size = size
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(bulk.REPLY.pack(bulk.OK, self.size))
            conn.sendall(b"\xab" * (self.size // 2))
        self.sock.close()


@pytest.mark.parametrize("fallback_works", [True, False], ids=["fallback", "both-fail"])
def test_a_sender_that_dies_midway_leaves_nothing_sealed(loop: asyncio.AbstractEventLoop,
                                                          fallback_works: bool) -> None:
    p = _pair(loop)
    try:
        p.put(DATA)
        dead = HalfSender(len(DATA))
        p.peer = ("127.0.0.1", dead.port)
        seen: list[bool] = []
        # When the fallback starts, the half-written object is gone already.
        p.on_grpc = lambda: seen.append(OID in {o["object_id"] for o in p.dst.store.list_objects()})
        p.grpc_fails = not fallback_works
        reply = loop.run_until_complete(p.dst.get(p.get_request()))
        dead.thread.join(5)
        assert seen == [False]
        assert p.dst.num_bulk_pulls == 0 and p.dst.num_bulk_fallbacks == 1
        if fallback_works:
            assert reply.found, reply.error
            assert p.read_dst() == DATA
        else:
            assert not reply.found and "failed" in reply.error
            assert p.dst.store.list_objects() == []  # no partial object, sealed or not
            assert p.dst.store.stats()["used"] == 0
    finally:
        p.close()


def test_a_puller_gone_midway_leaves_no_pin_on_the_sender(loop: asyncio.AbstractEventLoop) -> None:
    p = _pair(loop)
    try:
        p.put(DATA)

        def pull_a_little() -> None:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
            s.settimeout(5)
            s.connect(("127.0.0.1", p.bulk_port))
            t = TOKEN.encode()
            s.sendall(bulk.MAGIC + bulk.REQUEST.pack(len(t), len(OID)) + t + OID)
            status, size = bulk.REPLY.unpack(s.recv(bulk.REPLY.size, socket.MSG_WAITALL))
            assert (status, size) == (bulk.OK, len(DATA))
            s.recv(1 << 20)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()  # a reset: the sender's sendall fails

        async def run() -> None:
            await asyncio.to_thread(pull_a_little)
            deadline = time.monotonic() + 10
            while p.server.num_failed == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.05)

        loop.run_until_complete(run())
        assert p.server.num_failed == 1 and p.server.num_sent == 0
        assert p.pins(p.src) == 0
        # and the object is still whole, and sendable
        reply = loop.run_until_complete(p.dst.get(p.get_request()))
        assert reply.found and p.read_dst() == DATA and p.dst.num_bulk_pulls == 1
    finally:
        p.close()


def test_with_tls_no_bulk_connection_is_tried(loop: asyncio.AbstractEventLoop,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tls, "current", lambda: object())
    p = _pair(loop)
    try:
        p.put(DATA)
        reply = loop.run_until_complete(p.dst.get(p.get_request()))
        assert reply.found and p.read_dst() == DATA
        assert p.grpc_calls == 1 and p.server.num_sent == 0 and p.dst.num_bulk_fallbacks == 0
    finally:
        p.close()
