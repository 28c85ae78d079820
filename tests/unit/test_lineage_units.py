"""The owner's lineage (jray/_private/worker/lineage.py) over a real object
table: what is kept (bounded, oldest evicted), what a rebuild does to the
table and what it submits, and the error when an object cannot be rebuilt
(made by put, no retries left, evicted); stale news of a loss is ignored."""

from __future__ import annotations

import pytest

from jray import exceptions
from jray._private import serialization
from jray._private.ids import object_id_for, random_id
from jray._private.protocol import common_pb2 as cpb
from jray._private.worker.event_loop import LoopThread
from jray._private.worker.identity import Identity
from jray._private.worker.lineage import Lineage
from jray._private.worker.object_table import Deps, ObjectTable
from jray._private.worker.reference_counter import ReferenceCounter

NODE_A, NODE_B = b"a" * 16, b"b" * 16


@pytest.fixture
def table():
    lt = LoopThread("test-lineage")
    refs = ReferenceCounter(lambda oid: None, lambda oid, owner, add: None)
    me = Identity(random_id(16), "127.0.0.1", NODE_A)
    me.port = 1
    t = ObjectTable(lt, refs, me, Deps(ask_owner=None, read_store=None, free_in_store=lambda r: None,  # type: ignore[arg-type]
                                       release_hand_off=lambda r: None, notify_blocked=lambda b: False,
                                       on_interrupt=lambda refs: None))
    yield t
    lt.stop()


def _task(tid: bytes, retries: int = 2, args: list[cpb.TaskArg] | None = None) -> cpb.TaskSpec:
    spec = cpb.TaskSpec(task_id=tid, name="make", max_retries=retries, num_returns=1)
    spec.args.extend(args or [])
    return spec


def _stored(table: ObjectTable, oid: bytes, node: bytes = NODE_B) -> None:
    table.add_owned(oid, cpb.ReturnObject(object_id=oid, in_store=True, node_id=node, size=100))
    table.refs.incr(oid)


def _error_of(table: ObjectTable, oid: bytes) -> BaseException:
    ret = table.objects[oid]
    assert ret.is_error
    return serialization.deserialize(ret.data)


def test_a_lost_output_becomes_pending_and_its_task_runs_again(table):
    submitted = []
    lin = Lineage(table, lambda spec, rids, left: submitted.append((spec, rids, left)))
    tid = random_id(16)
    oid = object_id_for(tid, 1)
    _stored(table, oid)
    spec = _task(tid)
    lin.record(spec, [oid], retries_left=2)
    lin.reconstruct(oid, NODE_A)  # news of another node's copy: stale, nothing happens
    assert oid in table.objects and not submitted
    lin.reconstruct(oid, NODE_B)
    assert oid not in table.objects and oid in table.pending_owned
    (spec2, rids, left), = submitted
    assert list(rids) == [oid] and left == 1 and spec2.attempt == 1 and spec2.task_id == tid
    lin.reconstruct(oid, NODE_B)  # already being rebuilt: not twice
    assert len(submitted) == 1


def test_a_put_is_not_rebuilt(table):
    lin = Lineage(table, lambda *a: pytest.fail("a put has no task to run"))
    oid = random_id(20)
    _stored(table, oid)
    lin.reconstruct(oid, NODE_B)
    err = _error_of(table, oid)
    assert type(err) is exceptions.ObjectLostError and "made by put" in str(err)


def test_no_retries_left(table):
    lin = Lineage(table, lambda *a: pytest.fail("no retries left"))
    tid = random_id(16)
    oid = object_id_for(tid, 1)
    _stored(table, oid)
    lin.record(_task(tid, retries=0), [oid], retries_left=0)
    lin.reconstruct(oid, NODE_B)
    assert isinstance(_error_of(table, oid), exceptions.ObjectReconstructionFailedMaxAttemptsExceededError)


def test_lineage_is_bounded_oldest_evicted_first(table):
    lin = Lineage(table, lambda *a: None, max_bytes=1000)
    oids = []
    for _ in range(20):
        tid = random_id(16)
        oid = object_id_for(tid, 1)
        _stored(table, oid)
        lin.record(_task(tid), [oid], retries_left=2)
        oids.append(oid)
    assert lin.bytes <= 1000 and lin.entries
    assert lin.can_rebuild(oids[-1]) and not lin.can_rebuild(oids[0])
    lin.reconstruct(oids[0], NODE_B)
    err = _error_of(table, oids[0])
    assert isinstance(err, exceptions.ObjectReconstructionFailedLineageEvictedError)
    assert "JRAY_LINEAGE_MAX_BYTES" in str(err)
