"""Views and node stats on two raylets: lanes and store use per node, a
custom resource bar in the monitor."""

from __future__ import annotations

import time

import numpy as np
import pytest

import jray
from jray.testing import Cluster
from jray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from jray.util.state import list_nodes
from jray.views import ObjectStoreView, TaskStreamView
from tests.polling import poll


@pytest.fixture(scope="module")
def two_nodes():
    jray.shutdown()
    with Cluster(head_node_args={"num_cpus": 1}) as c:
        node = c.add_node(num_cpus=2, resources={"gadget": 2})
        c.connect()
        yield c, node


@jray.remote
def where(i: int) -> str:
    time.sleep(0.05)
    return jray.get_runtime_context().get_node_id()


@jray.remote
def make_array() -> np.ndarray:
    return np.ones(2_000_000)


def test_lanes_and_store_use_per_node(two_nodes):
    c, node = two_nodes
    head = next(n["node_id"] for n in list_nodes() if n["is_head_node"])
    on = {nid: NodeAffinitySchedulingStrategy(nid, soft=False) for nid in (head, node.node_id)}
    ran = jray.get([where.options(scheduling_strategy=s).remote(i) for i, s in enumerate(on.values())
                    for _ in range(2)], timeout=60)
    assert set(ran) == set(on)
    stream = TaskStreamView()

    def lanes() -> set[str]:
        stream.update()
        d = stream.sources["task_stream"].data
        return {n for n, name in zip(d["node_id"], d["name"], strict=True) if name == "where"}

    poll(lanes, lambda s: s == set(on), "a lane on each node")
    assert stream.sources["task_util"].data["cpus"][0] == 3

    ref = make_array.options(scheduling_strategy=on[node.node_id]).remote()
    assert jray.get(ref, timeout=60).sum() == 2_000_000  # sealed in the worker node's store
    store = ObjectStoreView()
    store.update()
    per_node = dict(zip(store.sources["store_nodes"].data["node_id"],
                        store.sources["store_nodes"].data["used"], strict=True))
    assert set(per_node) == set(on) and per_node[node.node_id] >= 16_000_000
    assert len(store.sources["store_usage"].data["xs"]) == 2
    objs = store.sources["store_objects"].data
    # The primary copy is where the task sealed it (get pulled a secondary copy to the head).
    (i,) = [k for k, oid in enumerate(objs["object_id"]) if oid == ref.hex() and objs["primary"][k]]
    assert objs["node_id"][i] == node.node_id and objs["owner_pid"][i] > 0  # owned by this driver
    row = poll(lambda: {n["node_id"]: n for n in list_nodes(detail=True)}[node.node_id],
               lambda n: n["num_objects"] >= 1 and n["object_store_used"] >= 16_000_000, "worker node stats")
    assert row["resources_total"]["gadget"] == 2
    del ref


def test_monitor_has_a_panel_per_node_with_custom_resources(two_nodes):
    from jray.widgets import ClusterMonitor

    _, node = two_nodes
    mon = ClusterMonitor(autostart=False)
    try:
        assert len(mon.panels) == 2
        assert "gadget" in mon.panels[node.node_id].bars
        assert mon.panels[node.node_id].bars["CPU"].progress.max == 2
        assert "2 nodes alive" in mon.header.value
    finally:
        mon.close()


@jray.remote
def shout(tag: str) -> tuple[str, int]:
    import os

    print(f"second node says {tag}")
    return jray.get_runtime_context().get_node_id(), os.getpid()


def test_logs_of_the_second_node(two_nodes):
    """A task pinned to the second node: its log is read through that node's
    raylet (which alone knows its worker's pid), by task id, pid and file."""
    import uuid

    from jray.util.state import get_log, list_log_files, list_logs

    _, node = two_nodes
    head = next(n["node_id"] for n in list_nodes() if n["is_head_node"])
    tag = uuid.uuid4().hex[:8]
    ref = shout.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False)).remote(tag)
    where, pid = jray.get(ref, timeout=60)
    assert where == node.node_id
    lines = poll(lambda: _log_or_none(get_log, task_id=ref.task_id().hex()),
                 lambda ls: ls is not None and f"second node says {tag}" in ls, "the task's log on the second node")
    assert f"second node says {tag}" in list(get_log(node_id=node.node_id, pid=pid))
    with pytest.raises(FileNotFoundError, match=f"no worker with pid {pid} on node {head}"):
        list(get_log(node_id=head, pid=pid))  # the head's raylet did not start it
    rows = [f for f in list_log_files(node_id=node.node_id) if f["pid"] == pid]
    assert len(rows) == 1 and rows[0]["node_id"] == node.node_id and rows[0]["worker_alive"]
    assert rows[0]["filename"] in list_logs(node_id=node.node_id)["worker"]
    assert f"second node says {tag}" in list(get_log(node_id=node.node_id, filename=rows[0]["filename"]))
    assert lines[-1] == f"second node says {tag}"


def _log_or_none(get_log, **kw):
    try:
        return list(get_log(**kw))
    except FileNotFoundError:
        return None


def test_nodes_view_has_a_line_per_node(two_nodes):
    from jray.views import NodesView

    _, node = two_nodes
    view = NodesView()

    def data() -> dict:
        view.update()
        return view.data()

    d = poll(data, lambda d: len(d["node_series"]["node_id"]) == 2 and all(len(x) >= 2 for x in d["node_series"]["xs"]),
             "two samples of each node")
    assert node.node_id in d["node_series"]["node_id"]
    assert all(t > 0 for t in d["node_series"]["memory_total"])
    workers = d["worker_memory"]
    assert node.node_id in workers["node_id"]  # the second node's workers have bars too
