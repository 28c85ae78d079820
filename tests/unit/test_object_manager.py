"""The raylet's object manager without a raylet: two nodes' stores, the
``ReadObject`` stream of one fed straight into the other's pull (a fake
stub in place of gRPC), in small chunks.

Each store is a real arena in /dev/shm (``jray-test-<random>``, unlinked
after the test).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from jray._private import config
from jray._private.ids import TASK_ID_SIZE, object_id_for
from jray._private.object_store import Arena, LocalObjectStore
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import raylet_pb2 as rpb
from jray._private.raylet.object_manager import ObjectManager, encode_chunk, split_chunk

KiB = 1 << 10
SRC, DST = b"\x01" * 16, b"\x02" * 16
SRC_ADDRESS = "10.0.0.1:7000"
OID = b"\x07" * 28


class Cluster:
    """Two object managers; ``dst`` reaches ``src`` at SRC_ADDRESS."""

    def __init__(self, tmp_path: str, dst_capacity: int, raw: bool = False) -> None:
        self.arenas: list[Arena] = []
        self.chunks_sent = 0
        self.fail_after: int | None = None  # chunks, then the stream breaks
        self.raw = raw  # pulls over ReadObjectRaw (serialized chunks), as raylets do
        self.src = self._manager(SRC, 256 * KiB, None)
        self.dst = self._manager(DST, dst_capacity, os.path.join(tmp_path, "spill"))

    def _manager(self, node_id: bytes, capacity: int, spill_dir: str | None) -> ObjectManager:
        arena = Arena.create(f"/dev/shm/jray-test-{uuid.uuid4().hex[:12]}", 1024 * KiB)
        self.arenas.append(arena)
        store = LocalObjectStore(arena, capacity, spill_dir=spill_dir)
        return ObjectManager(store=store, arena=arena, node_id=node_id, raylet_stub=self._stub,
                             read_object=self._read_raw if self.raw else None)

    def _read_raw(self, address: str) -> Any:
        assert address == SRC_ADDRESS

        async def call(request: rpb.ReadObjectRequest) -> AsyncIterator[bytes]:
            async for raw in self.src.read_raw(request):
                assert isinstance(raw, bytes)
                if self.fail_after is not None and self.chunks_sent >= self.fail_after:
                    raise ConnectionError("the source went away")
                self.chunks_sent += 1
                yield raw

        return call

    def _stub(self, address: str) -> Any:
        assert address == SRC_ADDRESS
        cluster = self

        class Stub:
            async def ReadObject(self, request: rpb.ReadObjectRequest) -> AsyncIterator[rpb.ObjectChunk]:
                assert not cluster.raw, "a pull with read_object must not use the parsed stream"
                async for chunk in cluster.src.read(request):
                    if cluster.fail_after is not None and cluster.chunks_sent >= cluster.fail_after:
                        raise ConnectionError("the source went away")
                    cluster.chunks_sent += 1
                    yield chunk

        return Stub()

    def put(self, data: bytes, *, seal: bool = True) -> None:
        """A local put on the source node."""
        reply = self.src.create(rpb.CreateObjectRequest(object_id=OID, size=len(data), primary=True))
        assert reply.ok
        self.src.arena.write_view(reply.offset, len(data))[:] = data
        if seal:
            self.src.seal(OID)

    def get_request(self) -> rpb.GetObjectRequest:
        ip, port = SRC_ADDRESS.split(":")
        return rpb.GetObjectRequest(object_id=OID, client_id=b"reader", from_ip=ip, from_port=int(port),
                                    from_node_id=SRC)

    def close(self) -> None:
        for m in (self.src, self.dst):
            m.store.close()
        for a in self.arenas:
            a.close()
            a.unlink()


@pytest.fixture(params=[False, True], ids=["parsed", "raw"])
def cluster(tmp_path: object, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    monkeypatch.setattr(config, "OBJECT_CHUNK_BYTES", 4 * KiB)
    c = Cluster(str(tmp_path), 256 * KiB, raw=request.param)
    yield c
    c.close()


DATA = bytes(range(256)) * 40  # 10 KiB: three chunks of 4 KiB


def test_a_get_pulls_the_object_from_its_node_in_chunks(cluster: Cluster) -> None:
    cluster.put(DATA)
    reply = asyncio.run(cluster.dst.get(cluster.get_request()))
    assert reply.found and reply.size == len(DATA)
    assert bytes(cluster.dst.arena.write_view(reply.offset, reply.size)) == DATA
    assert cluster.chunks_sent == 3 and cluster.dst.num_pulls == 1
    assert cluster.dst.store.list_objects()[0]["primary"] is False  # a copy: evictable


def test_concurrent_gets_share_one_pull(cluster: Cluster) -> None:
    cluster.put(DATA)

    async def two() -> list[rpb.GetObjectReply]:
        return list(await asyncio.gather(cluster.dst.get(cluster.get_request()),
                                         cluster.dst.get(cluster.get_request())))

    assert all(r.found for r in asyncio.run(two()))
    assert cluster.dst.num_pulls == 1 and cluster.chunks_sent == 3


def test_the_source_waits_for_a_seal_still_on_its_way(cluster: Cluster) -> None:
    cluster.put(DATA, seal=False)

    async def get_then_seal() -> rpb.GetObjectReply:
        pending = asyncio.ensure_future(cluster.dst.get(cluster.get_request()))
        await asyncio.sleep(0.05)
        assert not pending.done()
        cluster.src.seal(OID)
        return await pending

    assert asyncio.run(get_then_seal()).found


def test_an_object_too_big_for_memory_is_pulled_into_a_spill_file(tmp_path: object,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "OBJECT_CHUNK_BYTES", 4 * KiB)
    c = Cluster(str(tmp_path), 8 * KiB)
    try:
        c.put(DATA)
        reply = asyncio.run(c.dst.get(c.get_request()))
        assert reply.found and reply.spill_path and reply.size == len(DATA)
        with open(reply.spill_path, "rb") as f:
            assert f.read() == DATA
    finally:
        c.close()


def test_a_broken_transfer_leaves_nothing_behind(cluster: Cluster) -> None:
    cluster.put(DATA)
    cluster.fail_after = 1
    reply = asyncio.run(cluster.dst.get(cluster.get_request()))
    assert not reply.found
    assert reply.error == f"transfer from {SRC_ADDRESS} failed: the source went away"
    assert not cluster.dst.store.contains(OID) and cluster.dst.store.list_objects() == []


def test_a_dead_worker_s_puts_are_freed_its_task_returns_kept(cluster: Cluster) -> None:
    task = b"\x03" * TASK_ID_SIZE
    put, ret = object_id_for(task, 0), object_id_for(task, 1)
    for oid in (put, ret):
        reply = cluster.src.create(rpb.CreateObjectRequest(object_id=oid, size=10, primary=True,
                                                           owner=cpb.Address(worker_id=b"w1")))
        assert reply.ok
        cluster.src.seal(oid)
    cluster.src.forget_client(b"w1")
    assert not cluster.src.store.contains(put) and cluster.src.store.contains(ret)


@pytest.mark.parametrize("found,total,offset,data", [
    (True, 10, 0, b"abc"), (False, 0, 0, b""), (True, 1 << 40, 1 << 35, b"x" * 300), (True, 5, 3, b""),
    (True, 2 * KiB, 0, bytes(range(256)) * 8)])
def test_chunks_serialized_by_hand_are_protobuf_s(found: bool, total: int, offset: int, data: bytes) -> None:
    """ReadObjectRaw's replies are ObjectChunk messages byte for byte, and
    the puller's parse reads protobuf's own serialization, the data a view
    into the reply (copied once, into the store)."""
    msg = rpb.ObjectChunk(found=found, total_size=total, offset=offset, data=data)
    assert encode_chunk(found, total, offset, memoryview(data)) == msg.SerializeToString()
    raw = msg.SerializeToString()
    f, t, o, d = split_chunk(raw)
    assert (f, t, o, bytes(d)) == (found, total, offset, data)
    assert d.obj is raw  # no copy


def test_a_malformed_chunk_is_an_error_not_garbage() -> None:
    raw = rpb.ObjectChunk(found=True, total_size=10, data=b"0123456789").SerializeToString()
    with pytest.raises(ValueError):
        split_chunk(raw[:-3])
    # a field this parser does not know is skipped, as protobuf does
    f, t, _, d = split_chunk(raw + b"\x28\x05" + b"\x35" + b"\0" * 4)
    assert f and t == 10 and bytes(d) == b"0123456789"
