"""The GCS task table (events merged per task, bounded) and state filters."""

from __future__ import annotations

import os
from typing import Any

import pytest

from jray._private.gcs.task_table import TaskTable
from jray._private.protocol import gcs_pb2 as gpb
from jray.util.state._filters import check, matches


def ev(tid: bytes, state: str, t: float, **kw) -> gpb.TaskEvent:
    return gpb.TaskEvent(task_id=tid, state=state, time=t, **kw)


def test_events_out_of_order_merge_into_one_record():
    table = TaskTable()
    # The owner's FINISHED arrives before the executor's RUNNING (two flushers).
    table.add([ev(b"t1", "SUBMITTED", 1.0, name="f", job_id=b"j"), ev(b"t1", "FINISHED", 3.0)])
    table.add([ev(b"t1", "RUNNING", 2.0, worker_id=b"w", node_id=b"n", pid=7, resources={"CPU": 1})])
    (rec,) = table.query()
    assert rec.state == "FINISHED"
    assert dict(rec.state_times) == {"SUBMITTED": 1.0, "RUNNING": 2.0, "FINISHED": 3.0}
    assert (rec.name, rec.job_id, rec.worker_id, rec.pid) == ("f", b"j", b"w", 7)
    assert dict(rec.resources) == {"CPU": 1}


def test_error_text_survives_a_later_event_without_one():
    table = TaskTable()
    table.add([ev(b"t", "FAILED", 2.0, error="ValueError: boom"), ev(b"t", "FAILED", 2.1)])
    assert table.query()[0].error == "ValueError: boom"


def test_a_retry_moves_the_record_back_to_running():
    table = TaskTable()
    table.add([ev(b"t", "RUNNING", 1.0), ev(b"t", "FAILED", 2.0)])
    table.add([ev(b"t", "RUNNING", 3.0, attempt=1)])
    rec = table.query()[0]
    assert (rec.state, rec.attempt) == ("RUNNING", 1)


def test_bounded_drops_oldest_finished_first():
    table = TaskTable(max_tasks=3)
    table.add([ev(b"a", "RUNNING", 1), ev(b"b", "FINISHED", 1), ev(b"c", "FINISHED", 1)])
    table.add([ev(b"d", "SUBMITTED", 2), ev(b"e", "SUBMITTED", 2)])
    assert [r.task_id for r in table.query()] == [b"a", b"d", b"e"]
    assert table.dropped == 2
    assert [r.task_id for r in table.query(limit=1)] == [b"e"]


def test_filters():
    fs = check([("state", "=", "failed"), ("name", "!=", "g")], ["state", "name"])
    assert matches({"state": "FAILED", "name": "f"}, fs)
    assert not matches({"state": "FINISHED", "name": "f"}, fs)
    assert not matches({"state": "FAILED", "name": "g"}, fs)
    with pytest.raises(ValueError, match="nope"):
        check([("nope", "=", 1)], ["state"])
    with pytest.raises(ValueError, match="'>'"):
        check([("state", ">", 1)], ["state"])


def test_worker_buffer_builds_protos_at_flush_and_counts_drops(monkeypatch):
    from types import SimpleNamespace

    from jray._private.protocol import common_pb2 as cpb
    from jray._private.worker import task_events

    monkeypatch.setattr(task_events, "MAX_BUFFERED", 3)
    buf = task_events.TaskEventBuffer(SimpleNamespace(worker_id=b"w", node_id=b"n"))
    spec = cpb.TaskSpec(task_id=b"t", job_id=b"j", type=cpb.ACTOR_TASK, name="A.m", actor_id=b"a",
                        resources={"CPU": 1})
    for state in ("SUBMITTED", "PENDING_ARGS", "RUNNING", "FINISHED"):
        buf.record(spec, state)
    assert buf.dropped == 1
    (event,) = buf.take()  # one proto per task, its states' times inside
    assert event.state == "FINISHED"
    assert set(event.state_times) == {"PENDING_ARGS", "RUNNING", "FINISHED"}
    assert (event.name, event.func_name, event.type, event.actor_id) == ("A.m", "A.m", "ACTOR_TASK", b"a")
    assert (event.worker_id, event.node_id, dict(event.resources)) == (b"w", b"n", {"CPU": 1})
    assert not buf.events
    # The GCS folds a merged event like the separate ones.
    table = TaskTable()
    table.add([ev(b"t", "SUBMITTED", 0.5, name="A.m")])
    table.add([event])
    (rec,) = table.query()
    assert rec.state == "FINISHED" and rec.worker_id == b"w"
    assert set(rec.state_times) == {"SUBMITTED", "PENDING_ARGS", "RUNNING", "FINISHED"}


def test_worker_buffer_merges_a_retry_and_keeps_the_error():
    from types import SimpleNamespace

    from jray._private.protocol import common_pb2 as cpb
    from jray._private.worker import task_events

    buf = task_events.TaskEventBuffer(SimpleNamespace(worker_id=b"w", node_id=b"n"))
    spec = cpb.TaskSpec(task_id=b"t", job_id=b"j", name="f")
    buf.record(spec, "RUNNING")
    buf.record(spec, "FAILED", "ValueError: boom")
    spec.attempt = 1
    buf.record(spec, "RUNNING")
    (event,) = buf.take()
    assert (event.state, event.attempt, event.error) == ("RUNNING", 1, "ValueError: boom")
    assert set(event.state_times) == {"RUNNING", "FAILED"}


def test_raylet_states_rank_between_args_and_push_and_keep_the_earliest_time():
    table = TaskTable()
    # The owner pushed at 2.0; a raylet's late lease grant (3.0) arrives first.
    table.add([ev(b"t", "PENDING_NODE_ASSIGNMENT", 1.5, node_id=b"n"), ev(b"t", "SCHEDULED", 3.0, node_id=b"n")])
    assert table.query()[0].state == "SCHEDULED"
    table.add([ev(b"t", "SUBMITTED", 1.0, name="f"), ev(b"t", "SCHEDULED", 2.0)])
    rec = table.query()[0]
    assert rec.state == "SCHEDULED" and rec.name == "f" and rec.node_id == b"n"
    assert dict(rec.state_times) == {"SUBMITTED": 1.0, "PENDING_NODE_ASSIGNMENT": 1.5, "SCHEDULED": 2.0}
    table.add([ev(b"t", "RUNNING", 2.5)])
    assert table.query()[0].state == "RUNNING"


def test_changes_since_a_seq_and_counts_by_state():
    table = TaskTable(max_tasks=3)
    table.add([ev(b"a", "SUBMITTED", 1.0), ev(b"b", "SUBMITTED", 1.0)])
    seq = table.seq
    assert table.changed_since(seq) == [] and table.counts() == {"SUBMITTED": 2}
    table.add([ev(b"a", "RUNNING", 2.0), ev(b"c", "SUBMITTED", 2.0)])
    assert [r.task_id for r in table.changed_since(seq)] == [b"a", b"c"]
    assert table.counts() == {"SUBMITTED": 2, "RUNNING": 1}
    table.add([ev(b"b", "FINISHED", 3.0)])
    assert [r.task_id for r in table.changed_since(seq)] == [b"a", b"b", b"c"]  # oldest first
    assert [r.task_id for r in table.changed_since(0)] == [b"a", b"b", b"c"]
    table.add([ev(b"d", "SUBMITTED", 4.0)])  # past max_tasks: the finished b goes
    assert table.dropped == 1 and b"b" not in {r.task_id for r in table.changed_since(0)}
    assert table.counts() == {"SUBMITTED": 2, "RUNNING": 1}


def test_where_it_ran_comes_from_the_worker_whatever_the_order():
    """The head's raylet noted the lease request (then spilled it to node b);
    the owner's FINISHED came before the worker's RUNNING: the record names
    node b and b's worker, not the head."""
    t = TaskTable()
    tid = b"\x07" * 16
    t.add([gpb.TaskEvent(task_id=tid, state="PENDING_NODE_ASSIGNMENT", time=1.0, node_id=b"head")])
    t.add([gpb.TaskEvent(task_id=tid, state="FINISHED", time=3.0)])
    t.add([gpb.TaskEvent(task_id=tid, state="RUNNING", time=2.0, node_id=b"nodeb", worker_id=b"wb", pid=42)])
    rec = t.records[tid]
    assert (rec.state, rec.node_id, rec.worker_id, rec.pid) == ("FINISHED", b"nodeb", b"wb", 42)
    # A raylet's late note after that does not move it back.
    t.add([gpb.TaskEvent(task_id=tid, state="SCHEDULED", time=1.5, node_id=b"head")])
    assert t.records[tid].node_id == b"nodeb"


def test_running_is_reported_by_a_flush_or_left_to_the_owner():
    """A worker reports RUNNING only for a task still running at a flush;
    one that ended before hands its start, worker, node and pid to its
    owner (through the reply), whose end event carries them: one event per
    task instead of two, and the GCS's record reads the same."""
    from types import SimpleNamespace

    from jray._private.protocol import common_pb2 as cpb
    from jray._private.worker import task_events

    worker = task_events.TaskEventBuffer(SimpleNamespace(worker_id=b"w", node_id=b"n"))
    quick = cpb.TaskSpec(task_id=b"q", job_id=b"j", name="f", resources={"CPU": 1})
    slow = cpb.TaskSpec(task_id=b"s", job_id=b"j", name="f", resources={"CPU": 1})
    assert worker.start_running(quick) and worker.start_running(slow)
    started = worker.end_running(b"q")  # ended before any flush
    assert started is not None
    (event,) = worker.take()  # the flush reports the one still running, once
    assert (event.task_id, event.state, event.worker_id, event.node_id) == (b"s", "RUNNING", b"w", b"n")
    assert event.pid > 0 and dict(event.resources) == {"CPU": 1}
    assert worker.take() == [] and worker.end_running(b"s") is None  # reported: nothing for the owner

    owner = task_events.TaskEventBuffer(SimpleNamespace(worker_id=b"o", node_id=b"n0"))
    owner.record(quick, "SUBMITTED")
    owner.record(quick, "FINISHED", where=(b"w", b"n", 4242, started))
    (event,) = owner.take()
    assert (event.state, event.worker_id, event.node_id, event.pid) == ("FINISHED", b"w", b"n", 4242)
    assert event.state_times["RUNNING"] == started and dict(event.resources) == {"CPU": 1}
    table = TaskTable()
    table.add([event])
    (rec,) = table.query()
    assert (rec.state, rec.worker_id, rec.pid) == ("FINISHED", b"w", 4242)
    assert set(rec.state_times) == {"SUBMITTED", "RUNNING", "FINISHED"}


def test_a_rebuild_merged_with_its_first_run_is_marked_as_one():
    """Both attempts of a task rebuilt within one flush period: the event
    says what the latest attempt is (a reconstruction)."""
    from types import SimpleNamespace

    from jray._private.protocol import common_pb2 as cpb
    from jray._private.worker import task_events

    buf = task_events.TaskEventBuffer(SimpleNamespace(worker_id=b"o", node_id=b"n"))
    first = cpb.TaskSpec(task_id=b"t", job_id=b"j", name="make")
    buf.record(first, "SUBMITTED")
    buf.record(first, "FINISHED")
    again = cpb.TaskSpec(task_id=b"t", job_id=b"j", name="make", attempt=1, reconstruction=True)
    buf.record(again, "SUBMITTED")
    buf.record(again, "FINISHED")
    (event,) = buf.take()
    assert (event.state, event.attempt, event.reconstruction) == ("FINISHED", 1, True)


def test_hand_encoded_events_read_back_as_the_protos_they_stand_for():
    """The buffer encodes TaskEvents by hand (a proto per task cost the
    driver ~15 µs a task): what the GCS parses is field for field what the
    protobuf library would have built, for every kind of field."""
    from types import SimpleNamespace

    from jray._private.protocol import common_pb2 as cpb
    from jray._private.worker import task_events

    me = SimpleNamespace(worker_id=b"w" * 16, node_id=b"n" * 28)
    buf = task_events.TaskEventBuffer(me)
    actor_call = cpb.TaskSpec(task_id=b"a" * 24, job_id=b"\x01\x00\x00\x00", type=cpb.ACTOR_TASK, name="C.m",
                              actor_id=b"x" * 16, parent_task_id=b"p" * 24, attempt=300,
                              resources={"CPU": 0.5, "GPU": 2.0, "memory": 1e9})
    rebuilt = cpb.TaskSpec(task_id=b"r" * 24, job_id=b"\x01\x00\x00\x00", reconstruction=True, attempt=1)
    rebuilt.function.qualname = "make"
    plain = cpb.TaskSpec(task_id=b"f" * 24, job_id=b"\x01\x00\x00\x00")
    plain.function.qualname = "f" * 200  # a name longer than one length byte
    buf.record(actor_call, "SUBMITTED")
    buf.record(actor_call, "RUNNING")
    buf.record(actor_call, "FAILED", "ValueError: " + "é" * 3000)  # cut to 4000 characters, not bytes
    buf.record(rebuilt, "FINISHED", where=(b"v" * 16, b"m" * 28, 70000, 12.5))
    buf.record(plain, "PENDING_ARGS")
    got = {ev.task_id: ev for ev in buf.take()}
    pid = os.getpid()
    want = {
        b"a" * 24: gpb.TaskEvent(task_id=b"a" * 24, job_id=b"\x01\x00\x00\x00", name="C.m", func_name="C.m",
                                 type="ACTOR_TASK", actor_id=b"x" * 16, parent_task_id=b"p" * 24, attempt=300,
                                 state="FAILED", time=got[b"a" * 24].time, error=("ValueError: " + "é" * 3000)[:4000],
                                 worker_id=me.worker_id, node_id=me.node_id, pid=pid,
                                 resources={"CPU": 0.5, "GPU": 2.0, "memory": 1e9},
                                 state_times=dict(got[b"a" * 24].state_times)),
        b"r" * 24: gpb.TaskEvent(task_id=b"r" * 24, job_id=b"\x01\x00\x00\x00", name="make", func_name="make",
                                 type="NORMAL_TASK", attempt=1, state="FINISHED", time=got[b"r" * 24].time,
                                 worker_id=b"v" * 16, node_id=b"m" * 28, pid=70000, reconstruction=True,
                                 state_times={"FINISHED": got[b"r" * 24].time, "RUNNING": 12.5}),
        b"f" * 24: gpb.TaskEvent(task_id=b"f" * 24, job_id=b"\x01\x00\x00\x00", name="f" * 200,
                                 func_name="f" * 200, type="NORMAL_TASK", state="PENDING_ARGS",
                                 time=got[b"f" * 24].time, state_times={"PENDING_ARGS": got[b"f" * 24].time}),
    }
    assert got == want
    assert set(got[b"a" * 24].state_times) == {"SUBMITTED", "RUNNING", "FAILED"}


def test_submitted_waits_with_the_call_and_rides_on_its_end_or_the_next_flush():
    """An owner's SUBMITTED and SCHEDULED are held with the call: a call that
    ends before the flush is one event carrying them, RUNNING (from its
    worker's reply) and its end; a call still pending is reported at the
    flush, once, in its latest state with the earlier times, and its end
    comes later on its own. All read in the GCS's table as the separate
    events would."""
    from types import SimpleNamespace

    from jray._private.protocol import common_pb2 as cpb
    from jray._private.worker import task_events
    from jray._private.worker.submission import PendingCall

    buf = task_events.TaskEventBuffer(SimpleNamespace(worker_id=b"o", node_id=b"n"))

    def call(tid: bytes, **kw: Any) -> PendingCall:
        spec = cpb.TaskSpec(task_id=tid, job_id=b"j", name="f", resources={"CPU": 1}, **kw)
        c = PendingCall(spec, (tid + b"r",), (), 0)
        c.desc = buf.describe(spec)
        buf.submitted(c, spec)
        return c

    quick, slow, pushed = call(b"q"), call(b"s"), call(b"p")
    buf.scheduled(quick, quick.spec)
    buf.scheduled(pushed, pushed.spec)
    early = buf.ended(quick)
    assert early is not None and early[0] > 0 and early[1] >= early[0]
    assert buf.ended(quick) is None  # once
    buf.record(quick.spec, "FINISHED", "", (b"w", b"n2", 77, early[1] + 0.001), quick.desc, early)
    got = {ev.task_id: ev for ev in buf.take()}
    assert set(got) == {b"q", b"s", b"p"}
    assert got[b"q"].state == "FINISHED"
    assert set(got[b"q"].state_times) == {"SUBMITTED", "SCHEDULED", "RUNNING", "FINISHED"}
    assert got[b"q"].state_times["SUBMITTED"] == early[0] and (got[b"q"].worker_id, got[b"q"].pid) == (b"w", 77)
    assert dict(got[b"q"].resources) == {"CPU": 1}
    assert got[b"s"].state == "SUBMITTED" and list(got[b"s"].state_times) == ["SUBMITTED"]
    assert got[b"s"].name == "f" and not got[b"s"].worker_id
    assert got[b"p"].state == "SCHEDULED" and set(got[b"p"].state_times) == {"SUBMITTED", "SCHEDULED"}

    assert buf.ended(slow) is None  # reported at the flush: its end carries nothing earlier
    buf.scheduled(slow, slow.spec)  # reported already: an event of its own
    buf.record(slow.spec, "FAILED", "ValueError: x", None, slow.desc, None)
    (end,) = buf.take()
    assert (end.state, end.error, set(end.state_times)) == ("FAILED", "ValueError: x", {"SCHEDULED", "FAILED"})
    table = TaskTable()
    table.add(list(got.values()))
    table.add([end])
    recs = {r.task_id: r for r in table.query()}
    assert recs[b"s"].state == "FAILED" and set(recs[b"s"].state_times) == {"SUBMITTED", "SCHEDULED", "FAILED"}
    assert recs[b"q"].state == "FINISHED" and recs[b"p"].state == "SCHEDULED"

    # A retry is recorded as it happens (its SUBMITTED merges with its end in the flush).
    again = call(b"r", attempt=1)
    assert buf.ended(again) is None
    buf.record(again.spec, "FINISHED", "", None, again.desc)
    (ev1,) = buf.take()
    assert ev1.attempt == 1 and set(ev1.state_times) == {"SUBMITTED", "FINISHED"}
    buf.ended(pushed)
    assert buf.take() == [] and not buf._unreported


def test_events_go_to_the_gcs_as_encoded(monkeypatch):
    """``flush`` sends the hand-encoded request bytes as they are; a failed
    send counts the batch's events as dropped."""
    import asyncio
    from types import SimpleNamespace

    from jray._private.protocol import common_pb2 as cpb
    from jray._private.worker import task_events

    sent: list[bytes] = []

    async def send(raw: bytes) -> None:
        if sent:
            raise ConnectionError("gone")
        sent.append(raw)

    buf = task_events.TaskEventBuffer(SimpleNamespace(worker_id=b"o", node_id=b"n"), send)
    for tid in (b"a", b"b"):
        buf.record(cpb.TaskSpec(task_id=tid, job_id=b"j", name="f"), "SUBMITTED")
    asyncio.run(buf.flush())
    (raw,) = sent
    assert [e.task_id for e in gpb.AddTaskEventsRequest.FromString(raw).events] == [b"a", b"b"]
    buf.record(cpb.TaskSpec(task_id=b"c", job_id=b"j", name="f"), "SUBMITTED")
    asyncio.run(buf.flush())
    assert buf.dropped == 1 and not buf.events


def test_held_states_are_not_lost_to_the_bounded_buffer(monkeypatch):
    """Calls still pending at a flush are reported whole however many there
    are: the bound (the oldest dropped, and counted) is for events waiting
    in the buffer, not for states held with their calls."""
    from types import SimpleNamespace

    from jray._private.protocol import common_pb2 as cpb
    from jray._private.worker import task_events
    from jray._private.worker.submission import PendingCall

    monkeypatch.setattr(task_events, "MAX_BUFFERED", 3)
    buf = task_events.TaskEventBuffer(SimpleNamespace(worker_id=b"o", node_id=b"n"))
    for i in range(6):
        spec = cpb.TaskSpec(task_id=bytes([i]), job_id=b"j", name="f")
        c = PendingCall(spec, (bytes([i, 1]),), (), 0)
        buf.submitted(c, spec)
    assert len(buf.take()) == 6 and buf.dropped == 0
