"""Lineage reconstruction (issue 15): an output whose only copy went with a
node is rebuilt by running the task that made it again, recursively for its
lost or freed arguments, within the task's max_retries; when it cannot be,
the error says why. Three raylets on one machine (jray.testing.Cluster);
the node that held the copies is removed (its store goes with it)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import jray
from jray import exceptions
from jray._private import config
from jray.testing import Cluster
from jray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from jray.util.state import list_tasks, memory_summary

pytestmark = pytest.mark.timeout(120)
N = 1_000_000  # 1 MB: in a store, not inline


@pytest.fixture
def cluster():
    jray.shutdown()
    with Cluster(head_node_args={"num_cpus": 1}) as c:
        doomed = c.add_node(num_cpus=1)
        c.add_node(num_cpus=1)
        jray.init(address=c.address)
        time.sleep(1.0)  # the GCS sends the raylets the cluster's changes within 0.25 s
        try:
            yield c, doomed, NodeAffinitySchedulingStrategy(doomed.node_id, soft=True)
        finally:
            jray.shutdown()


@jray.remote(max_retries=2)
def make(n, tag):
    return np.full(n, tag, dtype=np.uint8)


@jray.remote(max_retries=2)
def plus(x):
    return x + 1


@jray.remote
def total(x):
    return int(x.sum())


def _ready_there(*refs):
    """Wait until made, without copying them to this node."""
    ready, _ = jray.wait(list(refs), num_returns=len(refs), timeout=60, fetch_local=False)
    assert len(ready) == len(refs)


def _poll(fn, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        out = fn()
        if out or time.monotonic() > deadline:
            return out
        time.sleep(0.2)


def test_a_lost_output_is_rebuilt_with_its_freed_argument(cluster):
    c, doomed, there = cluster
    x = make.options(scheduling_strategy=there).remote(N, 5)
    y = plus.options(scheduling_strategy=there).remote(x)
    _ready_there(y)
    del x  # freed once plus finished: rebuilding y needs x made again too
    c.remove_node(doomed)
    got = jray.get(y, timeout=60)
    assert got.shape == (N,) and int(got[0]) == 6 and int(got[-1]) == 6
    # the state API shows both tasks' second attempts, marked as rebuilds
    def rebuilt():
        rows = {t["name"]: t for t in list_tasks(detail=True) if t["name"] in ("make", "plus")}
        return rows if all(r["attempt_number"] == 1 and r["is_reconstruction"] and r["state"] == "FINISHED"
                           for r in rows.values()) and len(rows) == 2 else None
    assert _poll(rebuilt), [(t["name"], t["attempt_number"], t["is_reconstruction"], t["state"]) for t in list_tasks(detail=True)]


def test_a_borrower_finding_the_copy_gone_gets_it_rebuilt(cluster):
    c, doomed, there = cluster
    y = make.options(scheduling_strategy=there).remote(N, 3)
    _ready_there(y)
    c.remove_node(doomed)
    # The owner still names the dead node's copy: the task's worker finds it
    # gone, tells the owner, and waits for the rebuilt one.
    assert jray.get(total.remote(y), timeout=60) == 3 * N


def test_an_output_of_a_task_with_no_retries_left_is_not_rebuilt(cluster):
    c, doomed, there = cluster
    z = make.options(scheduling_strategy=there, max_retries=0).remote(N, 1)
    _ready_there(z)
    c.remove_node(doomed)
    with pytest.raises(exceptions.ObjectReconstructionFailedMaxAttemptsExceededError, match="no retries left"):
        jray.get(z, timeout=60)
    with pytest.raises(exceptions.ObjectReconstructionFailedError):  # and the same to a borrower
        jray.get(total.remote(z), timeout=60)


def test_the_owner_dying_with_the_node_is_owner_died(cluster):
    c, doomed, there = cluster

    @jray.remote
    def put_there():
        return [jray.put(np.ones(N, dtype=np.uint8))]  # owned by the worker on the doomed node

    inner = jray.get(put_there.options(scheduling_strategy=there).remote(), timeout=60)[0]
    c.remove_node(doomed)
    with pytest.raises(exceptions.OwnerDiedError):
        jray.get(inner, timeout=60)


def test_jray_memory_shows_what_is_being_rebuilt(cluster):
    c, doomed, there = cluster

    @jray.remote(max_retries=1)
    def slow(n):
        time.sleep(3)
        return np.zeros(n, dtype=np.uint8)

    y = slow.options(scheduling_strategy=there).remote(N)
    _ready_there(y)
    c.remove_node(doomed)
    got: dict = {}
    t = threading.Thread(target=lambda: got.setdefault("v", jray.get(y, timeout=60)))
    t.start()
    seen = _poll(lambda: [r for r in memory_summary()["reconstructing"] if r["name"] == "slow"])
    t.join(60)
    assert seen and seen[0]["attempt_number"] == 1, memory_summary()
    assert got["v"].shape == (N,)


def test_evicted_lineage_says_so(monkeypatch):
    jray.shutdown()
    monkeypatch.setattr(config, "LINEAGE_MAX_BYTES", 1)  # keeps no task spec at all
    with Cluster(head_node_args={"num_cpus": 1}) as c:
        doomed = c.add_node(num_cpus=1)
        c.add_node(num_cpus=1)
        jray.init(address=c.address)
        try:
            time.sleep(1.0)
            there = NodeAffinitySchedulingStrategy(doomed.node_id, soft=True)
            y = make.options(scheduling_strategy=there).remote(N, 2)
            _ready_there(y)
            c.remove_node(doomed)
            with pytest.raises(exceptions.ObjectReconstructionFailedLineageEvictedError,
                               match="JRAY_LINEAGE_MAX_BYTES"):
                jray.get(y, timeout=60)
        finally:
            jray.shutdown()
