"""Two raylets on one machine: tasks spread, resources route work, node
affinity (also to a node that joined a moment ago)."""

from __future__ import annotations

import collections
import time

import pytest

import jray
from jray import exceptions
from jray.testing import Cluster
from jray.util.scheduling_strategies import NodeAffinitySchedulingStrategy


@pytest.fixture(scope="module")
def two_nodes():
    jray.shutdown()
    with Cluster(head_node_args={"num_cpus": 1}) as c:
        node = c.add_node(num_cpus=2, resources={"special": 1})
        c.connect()
        yield c, node


def test_tasks_run_on_both_nodes(two_nodes):
    @jray.remote
    def where():
        time.sleep(0.05)
        return jray.get_runtime_context().get_node_id()

    seen = collections.Counter(jray.get([where.remote() for _ in range(30)], timeout=60))
    assert len(seen) == 2
    assert jray.cluster_resources()["CPU"] == 3


def test_custom_resource_routes_to_its_node(two_nodes):
    _, node = two_nodes

    @jray.remote(resources={"special": 1})
    def special():
        return jray.get_runtime_context().get_node_id()

    assert set(jray.get([special.remote() for _ in range(3)], timeout=60)) == {node.node_id}


def test_node_affinity_hard_and_soft(two_nodes):
    c, _ = two_nodes
    fresh = c.add_node(num_cpus=1)  # joined a moment ago: the head's view may lag

    @jray.remote
    def here():
        return jray.get_runtime_context().get_node_id()

    strategy = NodeAffinitySchedulingStrategy(fresh.node_id, soft=False)
    assert jray.get(here.options(scheduling_strategy=strategy).remote(), timeout=30) == fresh.node_id
    gone = NodeAffinitySchedulingStrategy("ab" * 16, soft=False)
    with pytest.raises(exceptions.TaskUnschedulableError, match="not alive"):
        jray.get(here.options(scheduling_strategy=gone).remote(), timeout=30)
    soft = NodeAffinitySchedulingStrategy("ab" * 16, soft=True)
    assert jray.get(here.options(scheduling_strategy=soft).remote(), timeout=30)
    c.remove_node(fresh)


def test_spread_uses_every_node_for_tasks_and_actors():
    """SPREAD (issue 15's finding: 12 tasks on 2 of 3 nodes): each task runs
    on a lease asked for it, so quick tasks do not pile onto the first worker
    granted; actors created together go to the nodes in turn. Also Ray's
    ``ray.init(address=cluster.address)`` with no token (the Cluster's)."""
    jray.shutdown()
    with Cluster(head_node_args={"num_cpus": 2}) as c:
        c.add_node(num_cpus=2)
        c.add_node(num_cpus=2)
        jray.init(address=c.address)
        try:
            time.sleep(1.0)  # the GCS sends the raylets the cluster's changes within 0.25 s

            @jray.remote(scheduling_strategy="SPREAD")
            def where(s):
                time.sleep(s)
                return jray.get_runtime_context().get_node_id()

            for s in (0.0, 0.2):
                seen = collections.Counter(jray.get([where.remote(s) for _ in range(12)], timeout=60))
                assert len(seen) == 3, (s, seen)

            @jray.remote(num_cpus=0)
            class Where:
                def node(self):
                    return jray.get_runtime_context().get_node_id()

            actors = [Where.options(scheduling_strategy="SPREAD").remote() for _ in range(6)]
            seen = collections.Counter(jray.get([a.node.remote() for a in actors], timeout=60))
            assert sorted(seen.values()) == [2, 2, 2], seen
        finally:
            jray.shutdown()


def test_default_policy_spreads_past_half_busy():
    """Ray's hybrid policy: the driver's node takes work until half its CPUs
    are busy, then a less loaded node does (two 1-CPU tasks on two 2-CPU
    nodes run one on each, not both here)."""
    jray.shutdown()
    with Cluster(head_node_args={"num_cpus": 2}) as c:
        other = c.add_node(num_cpus=2)
        jray.init(address=c.address)
        try:
            time.sleep(1.0)  # the GCS sends the raylets the cluster's changes within 0.25 s

            @jray.remote(num_cpus=1)
            def where():
                time.sleep(1.0)
                return jray.get_runtime_context().get_node_id()

            nodes = jray.get([where.remote() for _ in range(2)], timeout=60)
            assert len(set(nodes)) == 2 and other.node_id in nodes, nodes
        finally:
            jray.shutdown()
