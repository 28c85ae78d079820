"""The GCS's tables on disk (``gcs/store.py``) and a GCS started again from
them (``GcsServer.restore``): nodes, jobs, actors (named, detached, ALIVE
ones left as they are), placement groups, the KV, the cluster id and the
counters; what is written is there before the call returns."""

from __future__ import annotations

import asyncio

from jray._private.gcs.server import GcsServer
from jray._private.gcs.store import CREATING, NODES, GcsStore, pack_creation, unpack_creation
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import gcs_pb2 as gpb


def _spec(actor_id: bytes, name: str = "", detached: bool = False) -> cpb.TaskSpec:
    spec = cpb.TaskSpec(task_id=actor_id + b"t", job_id=b"\x01\x00\x00\x00")
    spec.actor_creation.actor_id = actor_id
    spec.actor_creation.name = name
    spec.actor_creation.namespace = "ns"
    spec.actor_creation.class_name = "A"
    spec.actor_creation.detached = detached
    return spec


def test_store_rows_kv_and_meta(tmp_path):
    path = str(tmp_path / "gcs.db")
    s = GcsStore(path, fresh=True)
    s.put(NODES, b"n1", b"one")
    s.put(NODES, b"n1", b"uno")
    s.put(NODES, b"n2", b"two")
    s.delete(NODES, b"n2")
    s.kv_put("fun", b"k", b"v")
    s.kv_put("fun", b"k2", b"v2")
    s.kv_delete([("fun", b"k2")])
    s.meta_put("x", b"1")
    s.actor_insert(b"a", b"info", b"spec", b"w", "addr", False)
    s.actor_update(b"a", b"info2", b"w2", "addr2", True)
    s.close()
    # Another connection (another process after a crash) reads it all.
    s = GcsStore(path)
    assert s.load(NODES) == [b"uno"]
    assert [(ns, bytes(k), bytes(v)) for ns, k, v in s.kv_items()] == [("fun", b"k", b"v")]
    assert s.meta_get("x") == b"1" and s.meta_get("y") is None
    assert s.actors() == [(b"info2", b"spec", b"w2", "addr2", True)]
    s.close()
    assert GcsStore(path, fresh=True).load(NODES) == []


def test_a_restored_gcs_has_the_tables_of_the_one_that_died(tmp_path):
    path = str(tmp_path / "gcs.db")

    async def first() -> bytes:
        gcs = GcsServer("t", packages_dir=str(tmp_path / "p"), store=GcsStore(path, fresh=True))
        node = gpb.NodeInfo(node_id=b"n" * 16, ip="127.0.0.1", raylet_port=1, resources_total={"CPU": 2.0})
        await gcs.RegisterNode(gpb.RegisterNodeRequest(node=node), None)
        dead = gpb.NodeInfo(node_id=b"d" * 16, ip="127.0.0.1", raylet_port=2)
        await gcs.RegisterNode(gpb.RegisterNodeRequest(node=dead), None)
        await gcs.UnregisterNode(gpb.UnregisterNodeRequest(node_id=b"d" * 16), None)
        driver = cpb.Address(worker_id=b"w" * 16, ip="127.0.0.1", port=3)
        job = (await gcs.AddJob(gpb.AddJobRequest(job=gpb.JobInfo(driver=driver)), None)).job_id
        assert (await gcs.AddJob(gpb.AddJobRequest(job=gpb.JobInfo(driver=driver)), None)).job_id == job  # a retry
        await gcs.KVPut(gpb.KVPutRequest(ns="fun", key=b"f", value=b"pickled"), None)
        alive = gcs.actors.register(_spec(b"a" * 16, "named", detached=True), {})
        gcs.actors.update(alive, state=gpb.ALIVE, address=cpb.Address(ip="127.0.0.1", port=9), node_id=b"n" * 16)
        alive.worker_id = b"x" * 16
        gcs.actors.update(alive, pid=42)
        gone = gcs.actors.register(_spec(b"b" * 16, "gone"), {})
        gcs.actors.update(gone, state=gpb.DEAD, death_cause="killed")
        pg = gpb.PlacementGroupInfo(placement_group_id=b"p" * 16, name="g", strategy="PACK",
                                    bundles=[cpb.Bundle(resources={"CPU": 1.0})])
        assert gcs.pgs.create(pg) == ""
        for t in list(gcs._tasks) + [gcs.pgs._loop_task]:
            if t is not None:
                t.cancel()
        return gcs.cluster_id

    cluster_id = asyncio.run(first())

    async def second() -> None:
        gcs = GcsServer("t", packages_dir=str(tmp_path / "p"), store=GcsStore(path))
        counts = gcs.restore()
        assert gcs.cluster_id == cluster_id
        assert counts["nodes"] == 1 and counts["jobs"] == 1 and counts["creating"] == 0
        assert gcs.nodes[b"n" * 16].alive and not gcs.nodes[b"d" * 16].alive
        assert b"n" * 16 in gcs.last_seen  # a fresh deadline: not declared dead at once
        hb = await gcs.Heartbeat(gpb.HeartbeatRequest(node=gcs.nodes[b"n" * 16]), None)
        assert not hb.reregister
        job = gcs.jobs[b"\x01\x00\x00\x00"]
        assert not job.is_dead and job.job_id in gcs.driver_seen
        assert gcs._next_job == 2
        assert (await gcs.KVGet(gpb.KVGetRequest(ns="fun", key=b"f"), None)).value == b"pickled"
        named = await gcs.GetNamedActor(gpb.GetNamedActorRequest(name="named", namespace="ns"), None)
        assert named.found and named.actor.state == gpb.ALIVE and named.actor.pid == 42 and named.actor.detached
        assert gcs.actors.by_worker[b"x" * 16] == b"a" * 16  # its death report still finds it
        assert not (await gcs.GetNamedActor(gpb.GetNamedActorRequest(name="gone", namespace="ns"), None)).found
        g = await gcs.GetPlacementGroup(gpb.GetPlacementGroupRequest(name="g"), None)
        assert g.found and g.group.state == gpb.PG_PENDING
        # A retried RegisterActor of a known actor is not an error (its name is its own).
        again = await gcs.RegisterActor(gpb.RegisterActorRequest(spec=_spec(b"a" * 16, "named", True)), None)
        assert again.ok
        for t in list(gcs._tasks) + [gcs.pgs._loop_task]:
            if t is not None:
                t.cancel()

    asyncio.run(second())


def test_an_actor_being_created_is_kept_with_its_worker_and_spec(tmp_path):
    store = GcsStore(str(tmp_path / "gcs.db"))
    worker = cpb.Address(ip="10.0.0.2", port=4321, worker_id=b"w" * 16).SerializeToString()
    spec = cpb.TaskSpec(task_id=b"t" * 16, gpu_ids=[1]).SerializeToString()
    store.put(CREATING, b"a" * 16, pack_creation(worker, spec))
    store.close()
    again = GcsStore(str(tmp_path / "gcs.db"))
    row = again.get(CREATING, b"a" * 16)
    assert row is not None
    assert unpack_creation(row) == (worker, spec)
    again.delete(CREATING, b"a" * 16)
    assert again.get(CREATING, b"a" * 16) is None
    again.close()
