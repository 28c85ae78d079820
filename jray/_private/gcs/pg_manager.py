"""Placement groups in the GCS: creation, two-phase placement of bundles on
raylets, retries while pending, removal, and rescheduling after node death.

Placing a group: choose a node per missing bundle from the GCS's view of
free resources (``placement_groups.place``), ask every chosen raylet to
*prepare* its bundles (carve the resources out, all or nothing per node),
then *commit* them all; if any prepare or commit fails, cancel what was
prepared and try again later. Groups that cannot be placed stay pending and
are retried on every pass of the loop (woken when a node joins or a group is
removed, and every heartbeat period otherwise).

The manager is given what it uses of the GCS, not the GCS itself: the node
table (the GCS's own, live), the actor directory (to find the actors placed in
a group), a callback that kills an actor for good, a factory of raylet
stubs by address, and the GCS's task spawner. A unit test hands it fakes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import grpc

from jray._private import config
from jray._private.gcs.placement_groups import (
    STATE_NAMES,
    PlacementGroupRecord,
    PlacementGroupTable,
    feasible_ever,
    place,
    validate_bundles,
)
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import gcs_pb2 as gpb
from jray._private.protocol import raylet_pb2 as rpb
from jray._private.resources import fits

if TYPE_CHECKING:
    from jray._private.gcs.actor_directory import ActorDirectory, ActorRecord

logger = logging.getLogger(__name__)


class PlacementGroupManager:
    def __init__(self, *, nodes: Mapping[bytes, gpb.NodeInfo], actors: ActorDirectory,
                 kill_actor: Callable[[ActorRecord, str], None], raylet_stub: Callable[[str], Any],
                 spawn: Callable[[Awaitable[Any]], None]) -> None:
        """``nodes``: the GCS's node table by node id (live: a placement
        also takes what it reserved out of a node's ``resources_available``
        until that node's next report).
        ``actors``: the actor directory, searched for the actors in a group.
        ``kill_actor(actor, reason)``: kill an actor for good (no restart).
        ``raylet_stub(address)``: a RayletService stub for ``ip:port``.
        ``spawn(coro)``: run a background coroutine (the bundle cancels)."""
        self.nodes = nodes
        self.actors = actors
        self.kill_actor = kill_actor
        self.raylet_stub = raylet_stub
        self.spawn = spawn
        self.table = PlacementGroupTable()
        self._kick: asyncio.Event | None = None
        self._loop_task: asyncio.Task | None = None
        self._rr = 0
        # Told of each node whose resources_available a placement changed
        # (the GCS sends the raylets that node's record again).
        self.on_node_changed: Callable[[bytes], None] = lambda node_id: None

    # -- lifecycle ---------------------------------------------------------------
    def kick(self) -> None:
        """Something changed (a node joined, resources came back): retry now."""
        if self._kick is not None:
            self._kick.set()

    def _ensure_loop(self) -> None:
        if self._loop_task is None or self._loop_task.done():
            self._kick = asyncio.Event()
            self._loop_task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        assert self._kick is not None
        while True:
            try:
                await asyncio.wait_for(self._kick.wait(), config.HEARTBEAT_SECONDS)
            except asyncio.TimeoutError:
                pass
            self._kick.clear()
            for rec in self.table.unplaced():
                try:
                    await self._try_place(rec)
                except Exception:  # noqa: BLE001 - keep the loop alive; the next pass retries
                    logger.exception("placing placement group %s failed", rec.pg_id.hex())

    def restored(self) -> None:
        """Groups were read back from the store: place the unplaced ones,
        once what the previous GCS may have reserved for them and not
        recorded (bundles prepared or committed on raylets as it died) is
        given back on every live node."""
        if self.table.unplaced():
            self.spawn(self._release_then_place([(r.pg_id, [b.index for b in r.info.bundles if not b.node_id])
                                                 for r in self.table.unplaced()]))

    async def _release_then_place(self, groups: list[tuple[bytes, list[int]]]) -> None:
        calls = []
        for nid, n in list(self.nodes.items()):
            if not n.alive:
                continue
            for pg_id, indexes in groups:
                if indexes:  # an empty list would mean every bundle of the group
                    req = rpb.CancelBundlesRequest(placement_group_id=pg_id, indexes=indexes,
                                                   reason="its placement was interrupted by a GCS restart")
                    calls.append(_quiet(self._raylet(nid).CancelBundles(req, timeout=10)))
        await asyncio.gather(*calls)
        self._ensure_loop()
        self.kick()

    # -- requests ------------------------------------------------------------------
    def create(self, info: gpb.PlacementGroupInfo) -> str:
        """Register a group; '' or an error message."""
        try:
            bundles = validate_bundles([dict(b.resources) for b in info.bundles], info.strategy)
        except ValueError as e:
            return str(e)
        if len(info.placement_group_id) != 16:
            return "a placement group id is 16 bytes"
        if info.placement_group_id in self.table.groups:  # a retried call (the GCS restarted)
            return ""
        if info.name and self.table.lookup_name(info.namespace, info.name) is not None:
            return (f"A placement group named {info.name!r} already exists in namespace {info.namespace!r}; "
                    "remove it first or pick another name.")
        info.state = gpb.PG_PENDING
        info.create_time = time.time()
        del info.bundles[:]
        for i, b in enumerate(bundles):
            info.bundles.append(cpb.Bundle(placement_group_id=info.placement_group_id, index=i, resources=b))
        self.table.add(info)
        self._ensure_loop()
        self.kick()
        return ""

    def remove(self, pg_id: bytes, reason: str = "it was removed by remove_placement_group()") -> bool:
        rec = self.table.groups.get(pg_id)
        if rec is None:
            return False
        if rec.info.state == gpb.PG_REMOVED:
            return True
        placed = rec.fixed()
        for b in rec.info.bundles:
            b.node_id = b""
        self.table.set_state(rec, gpb.PG_REMOVED)
        # Actors first (no restart), then the bundles: killing their workers
        # then reads as an intentional death, not a crash to restart from.
        for actor in self._actors_in(pg_id):
            self.kill_actor(actor, f"its placement group {pg_id.hex()} was removed ({reason})")
        by_node: dict[bytes, list[int]] = {}
        for index, nid in placed.items():
            by_node.setdefault(nid, []).append(index)
        for nid, indexes in by_node.items():
            self._cancel_on(nid, pg_id, indexes, f"placement group {pg_id.hex()} removed")
        self.kick()
        return True

    def remove_job(self, job_id: bytes) -> None:
        """The job finished: its non-detached groups go with it (Ray's lifetime)."""
        for rec in list(self.table.groups.values()):
            if rec.info.creator_job_id == job_id and not rec.info.detached and rec.info.state != gpb.PG_REMOVED:
                self.remove(rec.pg_id, "the job that created it finished")

    def on_node_dead(self, node_id: bytes) -> None:
        hit = self.table.on_node_dead(node_id)
        for rec in hit:
            logger.info("placement group %s lost bundles on dead node %s: rescheduling them",
                        rec.pg_id.hex(), node_id.hex())
        if hit:
            self.kick()

    def lookup(self, request: gpb.GetPlacementGroupRequest) -> PlacementGroupRecord | None:
        if request.placement_group_id:
            return self.table.groups.get(request.placement_group_id)
        return self.table.lookup_name(request.namespace, request.name)

    def _actors_in(self, pg_id: bytes) -> list[ActorRecord]:
        out = []
        for rec in self.actors.actors.values():
            s = rec.spec.scheduling
            if (s.kind == cpb.SchedulingStrategy.PLACEMENT_GROUP and s.placement_group_id == pg_id
                    and rec.info.state != gpb.DEAD):
                out.append(rec)
        return out

    # -- actors placed in a group -----------------------------------------------------
    def node_for_actor(self, actor: ActorRecord, fail: Callable[[str], None]) -> gpb.NodeInfo | None:
        """The node to create an actor on (its bundle's node), None to wait;
        ``fail`` is called when it can never be placed."""
        s = actor.spec.scheduling
        rec = self.table.groups.get(s.placement_group_id)
        if rec is None or rec.info.state == gpb.PG_REMOVED:
            fail(f"its placement group {s.placement_group_id.hex()} was removed (or never existed)")
            return None
        if s.bundle_index >= len(rec.info.bundles):
            fail(f"placement_group_bundle_index {s.bundle_index} is out of range: the group has "
                 f"{len(rec.info.bundles)} bundles")
            return None
        demand = dict(actor.spec.resources)
        candidates = [b for b in rec.info.bundles
                      if b.node_id and (s.bundle_index < 0 or b.index == s.bundle_index)]
        if not any(fits(demand, b.resources) for b in rec.info.bundles
                   if s.bundle_index < 0 or b.index == s.bundle_index):
            fail(f"it asks for {demand}, more than its bundle of placement group {rec.pg_id.hex()} reserves")
            return None
        nodes = [self.nodes.get(b.node_id) for b in candidates if fits(demand, b.resources)]
        alive = [n for n in nodes if n is not None and n.alive]
        if not alive:
            return None  # the group is pending or rescheduling: wait
        self._rr += 1
        return alive[self._rr % len(alive)]

    # -- placement ---------------------------------------------------------------------
    async def _try_place(self, rec: PlacementGroupRecord) -> None:
        if rec.placing or rec.info.state not in (gpb.PG_PENDING, gpb.PG_RESCHEDULING):
            return
        alive = {nid: n for nid, n in self.nodes.items() if n.alive}
        demands = rec.demands()
        fixed = {i: nid for i, nid in rec.fixed().items() if nid in alive}
        plan = place(demands, rec.info.strategy, {nid: dict(n.resources_available) for nid, n in alive.items()},
                     fixed)
        if plan is None:
            if not rec.warned and not feasible_ever(demands, rec.info.strategy,
                                                    {nid: dict(n.resources_total) for nid, n in alive.items()}):
                rec.warned = True
                logger.warning("placement group %s (%s, bundles %s) cannot be placed on the current nodes; it "
                               "stays pending until nodes that can hold it join", rec.pg_id.hex(),
                               rec.info.strategy, demands)
            return
        rec.placing = True
        try:
            await self._two_phase(rec, plan, alive)
        finally:
            rec.placing = False

    async def _two_phase(self, rec: PlacementGroupRecord, plan: dict[int, bytes],
                         alive: dict[bytes, gpb.NodeInfo]) -> None:
        pg_id = rec.pg_id
        by_node: dict[bytes, list[int]] = {}
        for index, nid in plan.items():
            by_node.setdefault(nid, []).append(index)

        async def prepare(nid: bytes, indexes: list[int]) -> bool:
            req = rpb.PrepareBundlesRequest(bundles=[rec.info.bundles[i] for i in indexes])
            try:
                reply = await self._raylet(nid).PrepareBundles(req, timeout=10)
            except grpc.RpcError as e:
                logger.info("prepare of placement group %s on %s failed: %s", pg_id.hex(), nid.hex(), e)
                return False
            return bool(reply.ok)

        nodes = list(by_node)
        results = await asyncio.gather(*(prepare(n, by_node[n]) for n in nodes))
        prepared = [n for n, ok in zip(nodes, results, strict=True) if ok]
        if not all(results) or rec.info.state == gpb.PG_REMOVED:
            for nid in prepared:
                self._cancel_on(nid, pg_id, by_node[nid], "placement attempt abandoned")
            return
        # The heartbeat view lags: take the reservation out of it now so the
        # next group is not planned onto the same resources.
        for nid in nodes:
            have = alive[nid].resources_available
            for i in by_node[nid]:
                for k, v in rec.info.bundles[i].resources.items():
                    have[k] = max(0.0, have.get(k, 0.0) - v)
            self.on_node_changed(nid)

        async def commit(nid: bytes, indexes: list[int]) -> bool:
            req = rpb.CommitBundlesRequest(placement_group_id=pg_id, indexes=indexes)
            try:
                return bool((await self._raylet(nid).CommitBundles(req, timeout=10)).ok)
            except grpc.RpcError:
                return False

        committed = await asyncio.gather(*(commit(n, by_node[n]) for n in nodes))
        lost = [n for n in nodes if not self.nodes[n].alive]
        if not all(committed) or lost or rec.info.state == gpb.PG_REMOVED:
            for nid in nodes:
                self._cancel_on(nid, pg_id, by_node[nid], "placement attempt abandoned")
            return
        for index, nid in plan.items():
            rec.info.bundles[index].node_id = nid
        self.table.set_state(rec, gpb.PG_CREATED)
        logger.info("placement group %s %s: bundles on %s", pg_id.hex(), STATE_NAMES[gpb.PG_CREATED],
                    {i: n.hex()[:8] for i, n in sorted(rec.fixed().items())})

    def _raylet(self, node_id: bytes) -> Any:
        n = self.nodes[node_id]
        return self.raylet_stub(f"{n.ip}:{n.raylet_port}")

    def _cancel_on(self, node_id: bytes, pg_id: bytes, indexes: list[int], reason: str) -> None:
        n = self.nodes.get(node_id)
        if n is None or not n.alive:
            return
        req = rpb.CancelBundlesRequest(placement_group_id=pg_id, indexes=indexes, reason=reason)
        self.spawn(_quiet(self._raylet(node_id).CancelBundles(req, timeout=10)))


async def _quiet(coro: Any) -> None:
    try:
        await coro
    except grpc.RpcError:
        pass
