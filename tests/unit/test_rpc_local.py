"""In-process calls (``rpc.serve_locally``, ``rpc.LocalStub``): the GCS served
by its head raylet answers the raylet's calls, and the raylet the GCS's,
without a loopback gRPC call. A caller must not tell the difference: the
messages are copies, and errors and deadlines arrive as gRPC's."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from grpc import aio

from jray._private import rpc
from jray._private.gcs.server import GcsServer
from jray._private.protocol import gcs_pb2 as gpb
from jray._private.protocol import gcs_pb2_grpc as ggrpc
from jray._private.protocol import raylet_pb2_grpc as rgrpc

ADDRESS = "127.0.0.1:1"  # never dialled: the calls stay in the process


@pytest.fixture
def local(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> GcsServer:
    monkeypatch.setattr(rpc, "_LOCAL", {})
    gcs = GcsServer("token", packages_dir=str(tmp_path))
    rpc.serve_locally(ADDRESS, ggrpc.GcsServiceStub, gcs)
    return gcs


def test_the_pool_hands_out_a_local_stub_only_for_the_registered_service(local: GcsServer) -> None:
    async def main() -> None:
        pool = rpc.ChannelPool("token")
        try:
            assert isinstance(pool.stub(ADDRESS, ggrpc.GcsServiceStub), rpc.LocalStub)
            # another service at that address, and the same service elsewhere: gRPC
            assert not isinstance(pool.stub(ADDRESS, rgrpc.RayletServiceStub), rpc.LocalStub)
            assert not isinstance(pool.stub("127.0.0.1:2", ggrpc.GcsServiceStub), rpc.LocalStub)
        finally:
            await pool.close()

    asyncio.run(main())


def test_requests_and_replies_are_copies(local: GcsServer) -> None:
    async def main() -> None:
        pool = rpc.ChannelPool("token")
        stub = pool.stub(ADDRESS, ggrpc.GcsServiceStub)
        req = gpb.KVPutRequest(ns="n", key=b"k", value=b"first")
        assert (await stub.KVPut(req)).added
        req.value = b"changed after the call"  # the GCS keeps what was sent
        assert (await stub.KVGet(gpb.KVGetRequest(ns="n", key=b"k"))).value == b"first"

        node = gpb.NodeInfo(node_id=b"n" * 16, ip="10.0.0.9", raylet_port=7, alive=True)
        await stub.RegisterNode(gpb.RegisterNodeRequest(node=node))
        reply = await stub.GetAllNodeInfo(gpb.GetAllNodeInfoRequest())
        reply.nodes[0].ip = "mutated by the caller"  # the GCS's table is not the caller's
        again = await stub.GetAllNodeInfo(gpb.GetAllNodeInfoRequest())
        assert [n.ip for n in again.nodes] == ["10.0.0.9"]
        await pool.close()

    asyncio.run(main())


class _Failing(ggrpc.GcsServiceServicer):
    async def KVGet(self, request: gpb.KVGetRequest, context: Any) -> gpb.KVGetReply:
        if request.key == b"abort":
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such key")
        if request.key == b"slow":
            await asyncio.sleep(5)
        raise ValueError("the handler broke")


def test_errors_and_deadlines_arrive_as_grpc_would_send_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rpc, "_LOCAL", {})
    rpc.serve_locally(ADDRESS, ggrpc.GcsServiceStub, _Failing())

    async def main() -> None:
        pool = rpc.ChannelPool("token")
        stub = pool.stub(ADDRESS, ggrpc.GcsServiceStub)
        with pytest.raises(aio.AioRpcError) as e:
            await stub.KVGet(gpb.KVGetRequest(key=b"abort"))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND and e.value.details() == "no such key"
        with pytest.raises(grpc.RpcError) as e2:  # as a gRPC server answers an exception
            await stub.KVGet(gpb.KVGetRequest(key=b"boom"))
        assert e2.value.code() == grpc.StatusCode.UNKNOWN and "the handler broke" in e2.value.details()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(aio.AioRpcError) as e3:
            await stub.KVGet(gpb.KVGetRequest(key=b"slow"), timeout=0.05)
        assert e3.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED and loop.time() - t0 < 2
        # a call starts at once, as a gRPC call does, and can be cancelled
        call = stub.KVGet(gpb.KVGetRequest(key=b"slow"))
        await asyncio.sleep(0)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await pool.close()

    asyncio.run(main())


def test_streaming_methods_keep_their_grpc_call(local: GcsServer) -> None:
    made: list[str] = []

    class Remote:
        WatchNodes = "the gRPC stub's method"
        SyncNode = "another"

    stub = rpc.LocalStub(ggrpc.GcsServiceStub, local, lambda: made.append("grpc") or Remote())
    assert callable(stub.KVGet) and not made  # unary: local, no channel opened
    assert stub.WatchNodes == "the gRPC stub's method" and made == ["grpc"]
    assert stub.SyncNode == "another" and made == ["grpc"]  # made once
