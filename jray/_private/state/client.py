"""Calls the state API (``jray.util.state``) makes: to the GCS and to every live raylet.

Inside a connected driver the calls go through its CoreWorker's loop and
channels; otherwise (the CLI) through a fresh loop and channels to the
cluster at ``address`` with ``token``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from jray._private import rpc
from jray._private.protocol import gcs_pb2_grpc as ggrpc
from jray._private.protocol import raylet_pb2_grpc as rgrpc
from jray._private.worker import global_state

TIMEOUT = 10.0


class StateClient:
    def __init__(self, address: str | None = None, token: str | None = None) -> None:
        self.worker = global_state.worker if address is None else None
        if self.worker is None:
            if address is None or token is None:
                raise RuntimeError("jray is not initialized: call jray.init() or pass address= and token=")
        self.address, self.token = address, token

    def run(self, fn: Callable[[Any, Callable[[str], Any]], Coroutine[Any, Any, Any]]) -> Any:
        """``fn(gcs_stub, raylet_stub_for(address))`` on the right loop."""
        w = self.worker
        if w is not None:
            pool = w.pool
            return w.run_sync(fn(w.gcs, lambda a: pool.stub(a, rgrpc.RayletServiceStub)), timeout=TIMEOUT * 2)

        async def standalone() -> Any:
            pool = rpc.ChannelPool(self.token or "")
            try:
                gcs = pool.stub(self.address or "", ggrpc.GcsServiceStub)
                return await fn(gcs, lambda a: pool.stub(a, rgrpc.RayletServiceStub))
            finally:
                await pool.close()

        return asyncio.run(standalone())
