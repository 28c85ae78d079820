"""The GCS's placement-group manager without a GCS: a node table, an actor
directory, fake raylets and a recording kill-actor callback, as the
manager's constructor takes them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from jray._private.gcs.actor_directory import ActorDirectory, ActorRecord
from jray._private.gcs.pg_manager import PlacementGroupManager
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import gcs_pb2 as gpb
from jray._private.protocol import raylet_pb2 as rpb

A, B = b"\x0a" * 16, b"\x0b" * 16
PG = b"\x01" * 16


class FakeRaylet:
    """Records the two-phase calls; ``prepare_ok`` says how prepares go."""

    def __init__(self, calls: list[tuple[str, bytes, tuple[int, ...]]], node_id: bytes) -> None:
        self.calls, self.node_id, self.prepare_ok = calls, node_id, True

    async def PrepareBundles(self, req: rpb.PrepareBundlesRequest, timeout: float) -> rpb.PrepareBundlesReply:
        self.calls.append(("prepare", self.node_id, tuple(b.index for b in req.bundles)))
        return rpb.PrepareBundlesReply(ok=self.prepare_ok)

    async def CommitBundles(self, req: rpb.CommitBundlesRequest, timeout: float) -> rpb.CommitBundlesReply:
        self.calls.append(("commit", self.node_id, tuple(req.indexes)))
        return rpb.CommitBundlesReply(ok=True)

    async def CancelBundles(self, req: rpb.CancelBundlesRequest, timeout: float) -> rpb.CancelBundlesReply:
        self.calls.append(("cancel", self.node_id, tuple(req.indexes)))
        return rpb.CancelBundlesReply(cancelled=len(req.indexes))


class Gcs:
    """Just what the manager is given."""

    def __init__(self) -> None:
        self.nodes = {nid: gpb.NodeInfo(node_id=nid, ip=f"10.0.0.{nid[0]}", raylet_port=7000, alive=True,
                                        resources_total={"CPU": 2}, resources_available={"CPU": 2})
                      for nid in (A, B)}
        self.actors = ActorDirectory()
        self.calls: list[tuple[str, bytes, tuple[int, ...]]] = []
        self.raylets = {f"10.0.0.{nid[0]}:7000": FakeRaylet(self.calls, nid) for nid in (A, B)}
        self.killed: list[tuple[bytes, str]] = []
        self.tasks: list[asyncio.Future[Any]] = []
        self.pgs = PlacementGroupManager(nodes=self.nodes, actors=self.actors, kill_actor=self.kill_actor,
                                         raylet_stub=self.raylets.__getitem__, spawn=self.spawn)

    def kill_actor(self, rec: ActorRecord, reason: str) -> None:
        self.killed.append((rec.info.actor_id, reason))

    def spawn(self, coro: Awaitable[Any]) -> None:
        self.tasks.append(asyncio.ensure_future(coro))

    async def settle(self) -> None:
        await asyncio.gather(*self.tasks)


def group(strategy: str = "STRICT_SPREAD", n: int = 2) -> gpb.PlacementGroupInfo:
    return gpb.PlacementGroupInfo(placement_group_id=PG, strategy=strategy,
                                  bundles=[cpb.Bundle(resources={"CPU": 1}) for _ in range(n)])


def test_a_group_is_prepared_then_committed_on_its_nodes() -> None:
    async def main() -> None:
        g = Gcs()
        assert g.pgs.create(group()) == ""
        rec = g.pgs.table.groups[PG]
        await g.pgs.table.wait_settled(rec, 5)
        assert rec.info.state == gpb.PG_CREATED
        assert sorted(rec.fixed().values()) == [A, B]
        prepares = [c for c in g.calls if c[0] == "prepare"]
        commits = [c for c in g.calls if c[0] == "commit"]
        assert len(prepares) == len(commits) == 2 and g.calls.index(commits[0]) > g.calls.index(prepares[-1])
        # The reservation is taken out of the node table until the next heartbeat.
        assert g.nodes[A].resources_available["CPU"] == g.nodes[B].resources_available["CPU"] == 1

    asyncio.run(main())


def test_a_failed_prepare_cancels_the_other_nodes_and_stays_pending() -> None:
    async def main() -> None:
        g = Gcs()
        g.raylets["10.0.0.11:7000"].prepare_ok = False  # node B
        g.pgs.create(group())
        rec = g.pgs.table.groups[PG]
        for _ in range(50):
            if any(c[0] == "cancel" for c in g.calls):
                break
            await asyncio.sleep(0.01)
        await g.settle()
        assert rec.info.state == gpb.PG_PENDING and rec.fixed() == {}
        prepared_on_a = next(c[2] for c in g.calls if c[:2] == ("prepare", A))
        assert [c for c in g.calls if c[0] in ("cancel", "commit")] == [("cancel", A, prepared_on_a)]

    asyncio.run(main())


def test_removing_a_group_kills_its_actors_and_cancels_its_bundles() -> None:
    async def main() -> None:
        g = Gcs()
        g.pgs.create(group())
        rec = g.pgs.table.groups[PG]
        await g.pgs.table.wait_settled(rec, 5)
        where = rec.fixed()
        spec = cpb.TaskSpec(scheduling=cpb.SchedulingStrategy(kind=cpb.SchedulingStrategy.PLACEMENT_GROUP,
                                                              placement_group_id=PG),
                            actor_creation=cpb.ActorCreationSpec(actor_id=b"actor-in-pg"))
        g.actors.register(spec, {"CPU": 1})
        other = cpb.TaskSpec(actor_creation=cpb.ActorCreationSpec(actor_id=b"other-actor"))
        g.actors.register(other, {"CPU": 1})
        g.calls.clear()
        assert g.pgs.remove(PG)
        await g.settle()
        assert g.killed == [(b"actor-in-pg", f"its placement group {PG.hex()} was removed "
                                             "(it was removed by remove_placement_group())")]
        assert sorted(g.calls) == sorted(("cancel", nid, (index,)) for index, nid in where.items())
        assert rec.info.state == gpb.PG_REMOVED and g.pgs.lookup(gpb.GetPlacementGroupRequest(
            placement_group_id=PG)) is rec

    asyncio.run(main())


def test_an_actor_in_a_group_goes_to_its_bundle_s_node() -> None:
    async def main() -> None:
        g = Gcs()
        g.pgs.create(group())
        rec = g.pgs.table.groups[PG]
        await g.pgs.table.wait_settled(rec, 5)
        where = rec.fixed()
        for index in (0, 1):
            spec = cpb.TaskSpec(resources={"CPU": 1}, scheduling=cpb.SchedulingStrategy(
                kind=cpb.SchedulingStrategy.PLACEMENT_GROUP, placement_group_id=PG, bundle_index=index),
                actor_creation=cpb.ActorCreationSpec(actor_id=b"a%d" % index))
            actor = g.actors.register(spec, {"CPU": 1})
            node = g.pgs.node_for_actor(actor, fail=_unexpected)
            assert node is not None and node.node_id == where[index]
        too_big = g.actors.register(cpb.TaskSpec(resources={"CPU": 2}, scheduling=cpb.SchedulingStrategy(
            kind=cpb.SchedulingStrategy.PLACEMENT_GROUP, placement_group_id=PG, bundle_index=0),
            actor_creation=cpb.ActorCreationSpec(actor_id=b"big")), {"CPU": 2})
        why: list[str] = []
        assert g.pgs.node_for_actor(too_big, fail=why.append) is None
        assert why == [f"it asks for {{'CPU': 2.0}}, more than its bundle of placement group {PG.hex()} reserves"]

    asyncio.run(main())


def _unexpected(why: str) -> None:
    raise AssertionError(f"the actor was failed: {why}")
