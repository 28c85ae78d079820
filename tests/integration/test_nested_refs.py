"""Refs nested in task return values: the executing worker hands them off to
the caller, which borrows them as long as the outer object lives; then they
are freed (store usage back to its baseline)."""

from __future__ import annotations

import gc
import time

import numpy as np
import pytest

import jray
from tests.polling import settle as _settle

MB = 1024 * 1024


@pytest.fixture(scope="module")
def cluster():
    if jray.is_initialized():
        jray.shutdown()
    ctx = jray.init(num_cpus=2, object_store_memory=128 * MB)
    yield ctx
    jray.shutdown()


def _used() -> int:
    from jray._private.protocol import raylet_pb2 as rpb
    from jray._private.worker import global_state

    w = global_state.worker

    async def call():
        return await w.raylet.GetNodeStats(rpb.GetNodeStatsRequest())

    return w.run_sync(call()).store_used




@jray.remote
def _filled(v):
    return np.full(8 * MB, v, dtype=np.uint8)


@jray.remote
def _make():
    # One object this worker puts, one a task it submits returns: both owned
    # by this worker, whose own refs die when the task ends.
    return [jray.put(np.full(8 * MB, 1, dtype=np.uint8)), _filled.remote(2)]


def test_refs_put_or_submitted_in_a_task_live_with_the_returned_value(cluster):
    assert _settle(lambda: _used() == 0)
    outer = _make.remote()
    refs = jray.get(outer, timeout=60)
    assert len(refs) == 2
    del refs
    time.sleep(1.0)  # the task's worker goes idle, its lease returned
    gc.collect()
    a, b = jray.get(jray.get(outer, timeout=60), timeout=60)
    assert a[0] == 1 and b[-1] == 2
    del a, b
    assert _used() >= 16 * MB  # still held for the outer object
    del outer
    assert _settle(lambda: _used() == 0), _used()


def test_refs_deserialized_from_the_value_outlive_the_outer_ref(cluster):
    assert _settle(lambda: _used() == 0)
    outer = _make.remote()
    inner = jray.get(outer, timeout=60)
    del outer
    gc.collect()
    time.sleep(1.0)
    assert jray.get(inner[1], timeout=60)[0] == 2
    assert jray.get(inner[0], timeout=60)[0] == 1
    del inner
    assert _settle(lambda: _used() == 0), _used()


def test_return_value_dropped_before_the_reply_frees_its_refs(cluster):
    assert _settle(lambda: _used() == 0)
    done = [_make.remote() for _ in range(2)]
    jray.wait(done, num_returns=2, timeout=60)
    del done
    assert _settle(lambda: _used() == 0), _used()


def test_refs_in_streamed_items_are_handed_off(cluster):
    assert _settle(lambda: _used() == 0)

    @jray.remote(num_returns="streaming")
    def stream(n):
        for i in range(n):
            yield [jray.put(np.full(4 * MB, i, dtype=np.uint8))]

    items = list(stream.remote(3))
    time.sleep(1.0)
    gc.collect()
    assert [int(jray.get(jray.get(r, timeout=60)[0], timeout=60)[0]) for r in items] == [0, 1, 2]
    assert _used() >= 12 * MB
    del items
    assert _settle(lambda: _used() == 0), _used()


def test_ref_owned_by_a_third_process_is_handed_on(cluster):
    # An actor owns x; a task borrows it and returns it nested: the task's
    # worker registers the driver with the actor before it drops its own ref.
    assert _settle(lambda: _used() == 0)

    @jray.remote
    class Keeper:
        def make(self):
            return [jray.put(np.full(8 * MB, 7, dtype=np.uint8))]

    @jray.remote
    def relay(k):
        return jray.get(k.make.remote())

    k = Keeper.remote()
    outer = relay.remote(k)
    jray.wait([outer], timeout=60)
    time.sleep(1.0)
    gc.collect()
    [x] = jray.get(outer, timeout=60)
    assert jray.get(x, timeout=60)[0] == 7
    del x
    assert _used() >= 8 * MB
    del outer
    assert _settle(lambda: _used() == 0), _used()
    jray.kill(k)


def test_a_borrower_that_dies_lets_the_object_go(cluster):
    # A borrower never unregisters when it dies: its owner notices (probes).
    assert _settle(lambda: _used() == 0)

    @jray.remote
    class Holder:
        def keep(self, refs):
            self.refs = refs
            return True

    h = Holder.remote()
    x = jray.put(np.ones(8 * MB, dtype=np.uint8))
    assert jray.get(h.keep.remote([x]), timeout=60)
    del x
    time.sleep(0.5)
    gc.collect()
    assert _used() >= 8 * MB  # the actor borrows it
    jray.kill(h)
    assert _settle(lambda: _used() == 0, timeout=30), _used()


def test_idle_worker_that_owns_objects_in_use_is_not_reaped(monkeypatch):
    # Idle workers beyond the CPU count are asked to exit; as in Ray, one
    # that owns objects someone still uses refuses (they would be lost).
    jray.shutdown()
    monkeypatch.setenv("JRAY_IDLE_WORKER_KILL_SECONDS", "0.2")
    jray.init(num_cpus=0)  # keep no idle worker at all
    try:
        @jray.remote(num_cpus=0)
        def make():
            return [jray.put(np.full(MB, 5, dtype=np.uint8))]

        @jray.remote(num_cpus=0)
        def nothing():
            return 1

        [x] = jray.get(make.remote(), timeout=60)
        time.sleep(2.0)  # asked (and refusing) several times by now
        assert jray.get(x, timeout=30)[0] == 5
        del x
        assert jray.get(nothing.remote(), timeout=60) == 1
        assert _settle(lambda: _num_workers() == 0), _num_workers()  # owning nothing, they go
    finally:
        jray.shutdown()


def _num_workers() -> int:
    from jray._private.protocol import raylet_pb2 as rpb
    from jray._private.worker import global_state

    w = global_state.worker

    async def call():
        return await w.raylet.GetNodeStats(rpb.GetNodeStatsRequest())

    return w.run_sync(call()).num_workers
