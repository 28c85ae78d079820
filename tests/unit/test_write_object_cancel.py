"""A client's put streamed into a raylet (``ObjectManager.write``, behind
``WriteObject``) that ends half-way leaves nothing allocated: a stream that
breaks, and a handler that gRPC cancels (the client cancelled its call:
Ctrl-C in a notebook's ``jray.put``), which is a CancelledError, not an
Exception."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import raylet_pb2 as rpb
from tests.unit.test_object_manager import OID, Cluster, cluster  # noqa: F401 (the fixture)

KiB = 1 << 10
SIZE = 64 * KiB


def _first_chunk() -> rpb.WriteObjectChunk:
    return rpb.WriteObjectChunk(object_id=OID, owner=cpb.Address(worker_id=b"client"), total_size=SIZE, offset=0,
                                data=b"x" * (16 * KiB))


def test_a_cancelled_write_drops_the_half_written_object(cluster: Cluster) -> None:  # noqa: F811
    store = cluster.src.store

    async def main() -> None:
        arrived = asyncio.Event()

        async def chunks() -> AsyncIterator[rpb.WriteObjectChunk]:
            yield _first_chunk()
            arrived.set()
            await asyncio.sleep(3600)  # the rest never comes
            yield rpb.WriteObjectChunk()

        handler = asyncio.ensure_future(cluster.src.write(chunks()))
        await asyncio.wait_for(arrived.wait(), 5)
        await asyncio.sleep(0)
        assert store.contains(OID) or store.list_objects()  # allocated, not sealed
        handler.cancel()  # what grpc.aio does to the handler of a cancelled call
        with pytest.raises(asyncio.CancelledError):
            await handler

    asyncio.run(main())
    assert store.list_objects() == [] and store.stats()["used"] == 0


def test_a_broken_write_drops_the_half_written_object(cluster: Cluster) -> None:  # noqa: F811
    store = cluster.src.store

    async def chunks() -> AsyncIterator[rpb.WriteObjectChunk]:
        yield _first_chunk()
        raise ConnectionError("the client went away")

    reply = asyncio.run(cluster.src.write(chunks()))
    assert not reply.ok and "the client went away" in reply.error
    assert store.list_objects() == [] and store.stats()["used"] == 0
