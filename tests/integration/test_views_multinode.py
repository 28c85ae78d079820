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
