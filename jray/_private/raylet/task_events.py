"""Task events the raylet sees, reported to the GCS task table in batches.

An owner asks for a worker lease on behalf of the task at the head of its
queue (``WorkerLeaseRequest.task_id``). The raylet notes that task
PENDING_NODE_ASSIGNMENT when the request arrives (it waits here for
resources, a bundle or a better node) and SCHEDULED on this node when the
lease is granted. The owner reports SUBMITTED/PENDING_ARGS/SCHEDULED and the
executor RUNNING/FINISHED, so the GCS merges these into the same records
(``gcs/task_table.py``, first time seen per state wins).

Bounded like the CoreWorker's buffer: when the GCS is slow the oldest events
go, and ``dropped`` counts them.
"""

from __future__ import annotations

import collections
import time
from typing import Any

from jray._private.protocol import gcs_pb2 as gpb

MAX_BUFFERED = 20_000
FLUSH_SECONDS = 0.5


class RayletTaskEvents:
    def __init__(self, node_id: bytes, max_buffered: int = MAX_BUFFERED) -> None:
        self.node_id = node_id
        self.events: collections.deque[gpb.TaskEvent] = collections.deque(maxlen=max_buffered)
        self.dropped = 0

    def record(self, request: Any, state: str) -> None:
        """Note ``state`` for the task a ``WorkerLeaseRequest`` was made for (if it names one)."""
        if not request.task_id:
            return
        if len(self.events) == self.events.maxlen:
            self.dropped += 1
        self.events.append(gpb.TaskEvent(
            task_id=request.task_id, job_id=request.job_id, attempt=request.attempt, name=request.name,
            state=state, time=time.time(), node_id=self.node_id))

    def take(self) -> list[gpb.TaskEvent]:
        out = list(self.events)
        self.events.clear()
        return out
