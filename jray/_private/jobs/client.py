"""The jobs SDK's calls to the cluster itself (``jray.job_submission`` calls
these, as the public layer calls plain ``_private`` functions): where the
head's job agent listens (the GCS KV names it), and uploading a job's
working_dir packages to the head's package store."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from jray._private import gcs_client, rpc
from jray._private.jobs import common as C
from jray._private.protocol import gcs_pb2 as gpb
from jray._private.protocol import gcs_pb2_grpc as ggrpc
from jray._private.runtime_env.resolve import _chunks


def agent_address(gcs_address: str, token: str) -> str:
    try:
        r = gcs_client._call_at(gcs_address, token, "KVGet",
                                gpb.KVGetRequest(ns=C.KV_NS, key=C.AGENT_ADDRESS_KEY.encode()), 10)
    except grpc.RpcError as e:
        code = e.code() if hasattr(e, "code") else None
        if code == grpc.StatusCode.UNAUTHENTICATED:
            raise ConnectionError(f"The cluster at {gcs_address} refused the token.") from None
        raise ConnectionError(f"Could not reach the jray cluster at {gcs_address}: "
                              f"{code.name if code else e}") from None
    if not r.found:
        raise ConnectionError(f"The jray cluster at {gcs_address} runs no jobs API (its head was not started "
                              "with 'jray start --head').")
    return str(r.value.decode())




def upload_packages(gcs_address: str, token: str, pkgs: list[Any]) -> None:
    async def run() -> None:
        pool = rpc.ChannelPool(token)  # its channels carry the token on streams too
        try:
            stub = pool.stub(gcs_address, ggrpc.GcsServiceStub)
            for pkg in pkgs:
                if (await stub.PackageExists(gpb.PackageExistsRequest(uri=pkg.uri), timeout=30)).exists:
                    continue
                reply = await stub.UploadPackage(_chunks(pkg), timeout=max(60.0, pkg.size / 2**20))
                if not reply.ok:
                    raise RuntimeError(f"uploading {pkg.uri} failed: {reply.error}")
        finally:
            await pool.close()

    if gcs_client._in_running_loop():
        gcs_client._run_in_thread(run)
    else:
        asyncio.run(run())
