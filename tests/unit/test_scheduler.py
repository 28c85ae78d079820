"""Resource accounting and placement without sockets."""

from types import SimpleNamespace

from jray._private.raylet.scheduler import NodeResources, pick_remote


def test_acquire_release_conserves_resources():
    r = NodeResources({"CPU": 2, "GPU": 2, "x": 1})
    a = r.acquire({"CPU": 1, "GPU": 1})
    b = r.acquire({"CPU": 0.5, "x": 1})
    assert a and b and a.gpu_ids == [0]
    assert r.acquire({"x": 1}) is None
    assert r.acquire({"CPU": 1}) is None
    r.release(a)
    r.release(b)
    assert r.available == {"CPU": 2, "GPU": 2, "x": 1}


def test_lend_cpu_while_blocked_is_conserved():
    r = NodeResources({"CPU": 1})
    parent = r.acquire({"CPU": 1})
    assert parent and r.acquire({"CPU": 1}) is None
    r.lend_cpu(parent)
    child = r.acquire({"CPU": 1})
    assert child is not None
    r.reclaim_cpu(parent)
    assert r.available["CPU"] == -1
    r.release(child)
    r.release(parent)
    assert r.available["CPU"] == 1


def test_fractional_gpus_share_a_device():
    r = NodeResources({"CPU": 4, "GPU": 1})
    a = r.acquire({"GPU": 0.5})
    b = r.acquire({"GPU": 0.5})
    assert a and b and a.gpu_ids == b.gpu_ids == [0]
    assert r.acquire({"GPU": 0.5}) is None


def test_pick_remote_prefers_free_nodes():
    def node(nid, avail, total):
        return SimpleNamespace(node_id=nid, alive=True, resources_available=avail, resources_total=total,
                               pending_leases=0)

    nodes = [node(b"a", {"CPU": 0}, {"CPU": 2}), node(b"b", {"CPU": 2}, {"CPU": 2}),
             node(b"c", {"CPU": 1, "gpu": 1}, {"CPU": 1, "gpu": 1})]
    assert pick_remote({"CPU": 1}, nodes, b"a", now=True).node_id == b"b"
    assert pick_remote({"gpu": 1}, nodes, b"a", now=False).node_id == b"c"
    assert pick_remote({"tpu": 1}, nodes, b"a", now=False) is None
