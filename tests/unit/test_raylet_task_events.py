"""The raylet's task-event buffer (no processes)."""

from __future__ import annotations

from jray._private.protocol import raylet_pb2 as rpb
from jray._private.raylet.task_events import RayletTaskEvents


def test_lease_requests_become_events_for_their_task():
    buf = RayletTaskEvents(b"node")
    buf.record(rpb.WorkerLeaseRequest(resources={"CPU": 1}), "PENDING_NODE_ASSIGNMENT")  # names no task
    req = rpb.WorkerLeaseRequest(task_id=b"t1", job_id=b"j", attempt=2, name="f")
    buf.record(req, "PENDING_NODE_ASSIGNMENT")
    buf.record(req, "SCHEDULED")
    batch = buf.take()
    assert [(e.task_id, e.state) for e in batch] == [(b"t1", "PENDING_NODE_ASSIGNMENT"), (b"t1", "SCHEDULED")]
    assert all(e.node_id == b"node" and e.job_id == b"j" and e.attempt == 2 and e.name == "f" for e in batch)
    assert batch[0].time <= batch[1].time and buf.take() == []


def test_the_buffer_is_bounded_and_counts_what_it_drops():
    buf = RayletTaskEvents(b"n", max_buffered=3)
    for i in range(5):
        buf.record(rpb.WorkerLeaseRequest(task_id=bytes([i])), "SCHEDULED")
    assert [e.task_id for e in buf.take()] == [b"\x02", b"\x03", b"\x04"] and buf.dropped == 2
