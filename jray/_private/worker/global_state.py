"""The process's CoreWorker (driver or worker), if connected."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jray._private.worker.core_worker import CoreWorker

worker: CoreWorker | None = None
# Why the last driver went: its cluster was lost (a ClusterLostError), until
# the next connect. Calls on what it left (its refs) raise it.
lost: BaseException | None = None


def require_worker() -> CoreWorker:
    if worker is None:
        if lost is not None:
            raise lost
        raise RuntimeError("jray is not initialized: call jray.init() first.")
    return worker
