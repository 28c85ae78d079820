"""The object store under pressure, on a real cluster with a 64 MB store:
spilling and restoring, puts larger than the store, error cases, custom
serializers, and fetching between two nodes."""

from __future__ import annotations

import gc
import glob
import os
import time

import numpy as np
import pytest

import jray
import jray.util
from jray import exceptions
from tests.polling import settle as _settle

STORE = 64 * 1024 * 1024
MB = 1024 * 1024


@pytest.fixture(scope="module")
def small_store():
    if jray.is_initialized():
        jray.shutdown()
    ctx = jray.init(num_cpus=2, object_store_memory=STORE)
    yield ctx
    jray.shutdown()


def _stats():
    from jray._private.protocol import raylet_pb2 as rpb
    from jray._private.worker import global_state

    w = global_state.worker

    async def call():
        return await w.raylet.GetNodeStats(rpb.GetNodeStatsRequest(include_objects=True))

    return w.run_sync(call())


def _spill_files(ctx) -> list[str]:
    return [f for f in glob.glob(os.path.join(ctx["session_dir"], "spill-*", "*")) if not f.endswith(".tmp")]




def test_puts_beyond_capacity_spill_and_restore(small_store):
    assert _settle(lambda: _stats().store_used == 0)
    arrays = [np.full(24 * MB // 8, i, dtype=np.int64) for i in range(6)]  # 144 MB into 64 MB
    refs = [jray.put(a) for a in arrays]
    st = _stats()
    assert st.store_used <= STORE
    assert st.spilled_bytes > 0
    assert _spill_files(small_store)
    for i in (0, 5, 2, 1, 4, 3, 0):  # restores evict/spill others in turn
        got = jray.get(refs[i], timeout=30)
        assert got.shape == arrays[i].shape and got[0] == i and got[-1] == i
        del got
        assert _stats().store_used <= STORE
    del refs
    assert _settle(lambda: not _spill_files(small_store)), _spill_files(small_store)
    assert _settle(lambda: _stats().store_used == 0 and _stats().num_objects == 0)


def test_put_larger_than_store_goes_to_disk(small_store):
    big = np.arange(100 * MB // 8, dtype=np.int64)  # 100 MB > 64 MB store
    ref = jray.put(big)
    assert _stats().store_used <= STORE
    assert _spill_files(small_store)
    got = jray.get(ref, timeout=60)
    assert np.array_equal(got, big)

    @jray.remote
    def total(x):
        return int(x[-1])

    assert jray.get(total.remote(ref), timeout=60) == big[-1]
    del got, ref
    assert _settle(lambda: not _spill_files(small_store))
    # The cluster still works.
    assert jray.get(jray.put(np.ones(10 * MB, dtype=np.uint8)), timeout=30).sum() == 10 * MB


def test_get_of_freed_ref_is_object_lost(small_store):
    ref = jray.put(np.zeros(MB))
    oid = ref.binary()
    del ref
    gc.collect()
    with pytest.raises(exceptions.ObjectLostError):
        jray.get(jray.ObjectRef(oid, None), timeout=5)


def test_owner_died_error_names_the_owner(small_store):
    @jray.remote
    class Maker:
        def make(self):
            return [jray.put(np.ones(MB, dtype=np.uint8))]

    m = Maker.remote()
    [inner] = jray.get(m.make.remote(), timeout=30)
    jray.kill(m)
    time.sleep(1)
    with pytest.raises(exceptions.OwnerDiedError, match="owner"):
        jray.get(inner, timeout=30)


class _Boom:
    def __reduce__(self):
        raise RuntimeError("boom while pickling")


def test_serialization_failure_midway_leaves_nothing(small_store):
    assert _settle(lambda: _stats().store_used == 0)
    with pytest.raises(TypeError, match="_Boom|boom"):
        jray.put([np.ones(20 * MB, dtype=np.uint8), _Boom()])
    assert _stats().store_used == 0 and _stats().num_objects == 0


def test_register_serializer_round_trips_through_a_task(small_store):
    import threading

    class Locked:
        def __init__(self, n):
            self.n = n
            self.lock = threading.Lock()

    with pytest.raises(TypeError, match="Locked"):
        jray.put(Locked(1))

    jray.util.register_serializer(Locked, serializer=lambda o: o.n, deserializer=lambda n: Locked(n))
    try:
        @jray.remote
        def bump(x):
            assert hasattr(x, "lock")
            return Locked(x.n + 1)

        out = jray.get(bump.remote(Locked(41)), timeout=30)
        assert isinstance(out, Locked) and out.n == 42 and hasattr(out, "lock")
        assert jray.get(jray.put(Locked(7))).n == 7
    finally:
        jray.util.deregister_serializer(Locked)
    with pytest.raises(TypeError, match="Locked"):
        jray.put(Locked(1))


def test_get_when_restore_cannot_fit_reads_from_disk(small_store):
    refs = [jray.put(np.full(24 * MB, i, dtype=np.uint8)) for i in range(3)]
    held = [jray.get(refs[1]), jray.get(refs[2])]  # pinned: 48 MB of the 64 MB store
    got = jray.get(refs[0], timeout=30)  # spilled, and no room to restore it
    assert got[0] == 0 and got.shape == (24 * MB,)
    assert _stats().store_used <= STORE
    del held, got, refs
    assert _settle(lambda: not _spill_files(small_store) and _stats().store_used == 0)


def test_fetch_local_and_single_transfer_between_nodes():
    from jray.testing import Cluster

    jray.shutdown()
    with Cluster(head_node_args={"num_cpus": 2, "resources": {"head": 2}, "object_store_memory": 128 * MB}) as c:
        c.add_node(num_cpus=1, resources={"worker": 1}, object_store_memory=128 * MB)
        c.connect()

        @jray.remote(resources={"worker": 1})
        def produce(v):
            return np.full(8 * MB, v, dtype=np.uint8)

        @jray.remote(resources={"head": 1})
        def consume(arrs):
            return int(jray.get(arrs[0])[0])

        ref = produce.remote(3)
        ready, _ = jray.wait([ref], fetch_local=True, timeout=60)
        assert ready == [ref]
        objects = {o.object_id for o in _stats().objects}
        assert ref.binary() in objects

        before = _stats().num_pulls
        ref2 = produce.remote(5)
        jray.wait([ref2], fetch_local=False, timeout=60)
        # Two tasks on the head node get the same remote object at once.
        assert jray.get([consume.remote([ref2]), consume.remote([ref2])], timeout=60) == [5, 5]
        assert _stats().num_pulls == before + 1
    jray.shutdown()



def test_pull_larger_than_the_receiving_store_goes_to_its_disk():
    from jray.testing import Cluster

    jray.shutdown()
    with Cluster(head_node_args={"num_cpus": 1, "resources": {"head": 1}, "object_store_memory": 96 * MB}) as c:
        small = c.add_node(num_cpus=1, resources={"small": 1}, object_store_memory=32 * MB)
        c.connect()
        spill_dir = os.path.join(c.handle.session_dir, f"spill-{small.node_id[:12]}")

        @jray.remote(resources={"head": 1})
        def produce():
            return np.arange(48 * MB // 8, dtype=np.int64)  # 48 MB, in the head's store

        @jray.remote(resources={"small": 1})
        def last(x):  # pulled into a 32 MB store: written to that node's disk
            return int(x[-1]), len(os.listdir(spill_dir))

        ref = produce.remote()
        value, files_there = jray.get(last.remote(ref), timeout=120)
        assert value == 48 * MB // 8 - 1
        assert files_there == 1
        assert jray.get(last.remote(ref), timeout=120)[0] == value  # read again from that file
        del ref
        assert _settle(lambda: not os.listdir(spill_dir)), os.listdir(spill_dir)
    jray.shutdown()


def test_unwritable_spill_directory_is_a_clear_error_at_start(tmp_path):
    import json

    jray.shutdown()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    bad = str(blocker / "spill")
    conf = json.dumps({"type": "filesystem", "params": {"directory_path": bad}})
    with pytest.raises(RuntimeError, match="spill directory.*not writable") as info:
        jray.init(num_cpus=1, _system_config={"object_spilling_config": conf})
    assert bad in str(info.value)
    assert not jray.is_initialized()
    # A writable one is used.
    good = tmp_path / "spill"
    conf = json.dumps({"type": "filesystem", "params": {"directory_path": str(good)}})
    jray.init(num_cpus=1, object_store_memory=STORE, _system_config={"object_spilling_config": conf})
    try:
        refs = [jray.put(np.full(24 * MB, i, dtype=np.uint8)) for i in range(4)]  # 96 MB into 64 MB
        assert os.listdir(good)
        assert jray.get(refs[0], timeout=60)[0] == 0
        del refs
        assert _settle(lambda: not os.listdir(good))
    finally:
        jray.shutdown()
