"""The raylet servicer: worker leases, placement-group bundles, the worker
pool, the node's object store and object transfer between nodes, heartbeats
to the GCS.

Leases in a placement group are served from the bundle's own resources
(``bundles.py``). When the bundle is not on this node the raylet asks the
GCS where the group's bundles are (the GCS is the authority; the cluster
view from heartbeats carries no bundles) and spills the request back to
that node; while the group is still pending it waits on the GCS.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc

from jray._private import config, rpc
from jray._private.ids import is_put_id, random_id
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import core_worker_pb2 as wpb
from jray._private.protocol import core_worker_pb2_grpc as wgrpc
from jray._private.protocol import gcs_pb2 as gpb
from jray._private.protocol import gcs_pb2_grpc as ggrpc
from jray._private.protocol import raylet_pb2 as rpb
from jray._private.protocol import raylet_pb2_grpc as rgrpc
from jray._private.raylet.bundles import Bundle, BundleTable
from jray._private.raylet.scheduler import Allocation, NodeResources, fits, pick_remote
from jray._private.raylet.task_events import FLUSH_SECONDS, RayletTaskEvents
from jray._private.raylet.worker_pool import WorkerPool, WorkerProc

logger = logging.getLogger(__name__)
SP = cpb.SchedulingStrategy


class _Waiter:
    """A lease request waiting for resources; ``fut`` gets its Allocation."""

    __slots__ = ("seq", "owner", "demand", "fut")

    def __init__(self, seq: int, owner: bytes, demand: dict[str, float], fut: asyncio.Future) -> None:
        self.seq, self.owner, self.demand, self.fut = seq, owner, demand, fut


@dataclass(eq=False)
class LeaseRecord:
    lease_id: bytes
    worker: WorkerProc
    alloc: Allocation
    actor_id: bytes = b""
    owner_id: bytes = b""
    pool: NodeResources | None = None  # a bundle's pool, None for the node's own


class Raylet(rgrpc.RayletServiceServicer):
    def __init__(self, *, token: str, node_id: bytes, ip: str, resources: dict[str, float], gcs_address: str,
                 store: Any, arena: Any, store_path: str, session_dir: str, is_head: bool,
                 labels: dict[str, str] | None = None) -> None:
        self.token = token
        self.node_id = node_id
        self.ip = ip
        self.port = 0
        self.direct_port = 0  # store calls over jray._private.direct
        self.res = NodeResources(resources)
        self.bundles = BundleTable(self.res)
        self._bundle_waiters: list[asyncio.Future] = []
        self.gcs_address = gcs_address
        self.store = store
        self.arena = arena
        self.store_path = store_path
        self.session_dir = session_dir
        self.is_head = is_head
        self.labels = labels or {}
        self.pool = rpc.ChannelPool(token)
        self.gcs = self.pool.stub(gcs_address, ggrpc.GcsServiceStub)
        self.view: list[gpb.NodeInfo] = []
        self.leases: dict[bytes, LeaseRecord] = {}
        self.lease_by_worker: dict[bytes, LeaseRecord] = {}
        # Lease requests waiting for resources, in arrival order (see _dispatch).
        self.waiting: list[_Waiter] = []
        self._waiter_seq = 0
        self.blocked_workers: set[bytes] = set()  # workers blocked in get/wait (their CPU lent)
        self._pulls: dict[bytes, asyncio.Future] = {}
        self.num_pulls = 0
        self._seal_waiters: dict[bytes, list[asyncio.Future]] = {}
        self.workers: WorkerPool | None = None
        self.stop_event = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._spread_rr = 0
        self._blocked_seq: dict[bytes, int] = {}
        self.task_events = RayletTaskEvents(node_id)

    def spawn(self, coro: Any) -> None:
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    # -- node info / heartbeats -------------------------------------------------
    def node_info(self) -> gpb.NodeInfo:
        stats = self.store.stats() if self.store is not None else {}
        return gpb.NodeInfo(
            node_id=self.node_id, ip=self.ip, raylet_port=self.port, resources_total=self.res.total,
            resources_available={k: max(0.0, v) for k, v in self.res.available.items()}, alive=True,
            is_head=self.is_head, store_path=self.store_path,
            object_store_memory=int(stats.get("capacity", 0)), store_used=int(stats.get("used", 0)),
            num_workers=len(self.workers.by_pid) if self.workers else 0, labels=self.labels,
            pid=os.getpid(), spilled_bytes=int(stats.get("spilled_bytes", 0)), pending_leases=len(self.waiting),
            start_time=time.time(), num_idle_workers=len(self.workers.idle) if self.workers else 0,
            num_leased_workers=len(self.lease_by_worker), num_objects=int(stats.get("num_objects", 0)),
        )

    async def register(self) -> None:
        await self.gcs.RegisterNode(gpb.RegisterNodeRequest(node=self.node_info()))

    async def heartbeat_loop(self) -> None:
        self.spawn(self.task_events_loop())
        while not self.stop_event.is_set():
            try:
                reply = await self.gcs.Heartbeat(gpb.HeartbeatRequest(node=self.node_info()), timeout=5)
                if reply.reregister:
                    # The GCS lost us (declared dead, or restarted): the bundles we hold
                    # were placed again elsewhere, or are unknown now.
                    self._kill_leases_in(self.bundles.cancel_all(), "the GCS no longer knows this node")
                    await self.register()
                else:
                    self.view = list(reply.nodes)
            except grpc.RpcError as e:
                logger.warning("heartbeat to the GCS failed: %s", e.code() if hasattr(e, "code") else e)
            await asyncio.sleep(config.HEARTBEAT_SECONDS)

    async def task_events_loop(self) -> None:
        """Send the task events this raylet saw to the GCS, in batches."""
        while not self.stop_event.is_set():
            await asyncio.sleep(FLUSH_SECONDS)
            batch = self.task_events.take()
            if not batch:
                continue
            try:
                await self.gcs.AddTaskEvents(gpb.AddTaskEventsRequest(events=batch), timeout=5)
            except grpc.RpcError as e:  # events are best effort
                self.task_events.dropped += len(batch)
                logger.debug("dropped %d task events: %s", len(batch), e)

    async def monitor_loop(self) -> None:
        assert self.workers is not None
        while not self.stop_event.is_set():
            await asyncio.sleep(0.05)
            for w in self.workers.reap_dead():
                await self._on_worker_death(w)
            for d in self.workers.dead_drivers():
                self.release_leases_owned_by(d.worker_id)
            self.workers.kill_idle_beyond(int(self.res.total.get("CPU", 1)), config.IDLE_WORKER_KILL_SECONDS,
                                          ask=lambda w: self.spawn(self._reap_idle(w)))

    async def _reap_idle(self, w: WorkerProc) -> None:
        """Ask an idle worker to exit; one that owns objects still in use
        refuses (they would be lost with it, as Ray's workers refuse) and
        stays in the pool."""
        assert self.workers is not None
        stub = self.pool.stub(f"{self.ip}:{w.port}", wgrpc.CoreWorkerServiceStub)
        try:
            reply = await stub.Exit(wpb.ExitRequest(if_idle=True, reason="idle"), timeout=5)
        except grpc.RpcError:
            self.workers.kill(w, force=True)
            return
        if reply.refused:
            self.workers.push_idle(w)

    async def _on_worker_death(self, w: WorkerProc) -> None:
        code = w.proc.returncode if w.proc is not None else None
        logger.info("worker pid=%d exited (code %s)", w.pid, code)
        self._blocked_seq.pop(w.worker_id, None)
        self.blocked_workers.discard(w.worker_id)
        if self.store is not None and w.worker_id:
            self.store.release_client(w.worker_id)
            # What it put can never be freed by its owner now: free it here
            # (task returns it wrote belong to their callers, so they stay).
            for o in self.store.list_objects():
                owner, oid = o["owner"], o["object_id"]
                if isinstance(owner, cpb.Address) and owner.worker_id == w.worker_id and is_put_id(oid):
                    self.store.free(oid)
        lease = self.lease_by_worker.pop(w.worker_id, None)
        if lease is not None:
            self.leases.pop(lease.lease_id, None)
            self._pool(lease).release(lease.alloc)
            self._dispatch()
        self.release_leases_owned_by(w.worker_id)
        if w.actor_id:
            # A worker forked by the zygote is not our child: no exit code here.
            how = f" (exit code {code})" if code is not None else " (killed, or it crashed)"
            reason = f"its worker process (pid={w.pid}) died unexpectedly{how}"
            try:
                await self.gcs.ReportWorkerFailure(gpb.ReportWorkerFailureRequest(
                    worker_id=w.worker_id, node_id=self.node_id, actor_id=w.actor_id, reason=reason))
            except grpc.RpcError:
                pass

    def release_leases_owned_by(self, owner_id: bytes) -> None:
        """The owner of some leases died: take its workers back."""
        assert self.workers is not None
        for lease in [x for x in self.leases.values() if x.owner_id == owner_id and not x.actor_id]:
            self.leases.pop(lease.lease_id, None)
            self.lease_by_worker.pop(lease.worker.worker_id, None)
            self._pool(lease).release(lease.alloc)
            self.workers.push_idle(lease.worker)
        self._dispatch()

    # -- workers -------------------------------------------------------------
    async def RegisterWorker(self, request: rpb.RegisterWorkerRequest, context: Any) -> rpb.RegisterWorkerReply:
        assert self.workers is not None
        self.workers.on_register(request.pid, request.worker_id, request.port, request.is_driver,
                                 request.direct_port)
        return rpb.RegisterWorkerReply(node_id=self.node_id, store_path=self.store_path,
                                       store_capacity=self.store.capacity if self.store is not None else 0,
                                       direct_port=self.direct_port)

    async def RequestWorkerLease(self, request: rpb.WorkerLeaseRequest, context: Any) -> rpb.WorkerLeaseReply:
        demand = {k: v for k, v in request.resources.items() if v > 0}
        self.task_events.record(request, "PENDING_NODE_ASSIGNMENT")
        s = request.scheduling
        if s.kind == SP.PLACEMENT_GROUP:
            return await self._lease_in_bundle(request, demand, context)
        # Node affinity to another node.
        if s.kind == SP.NODE_AFFINITY and s.node_id and s.node_id != self.node_id:
            target = next((n for n in self.view if n.node_id == s.node_id and n.alive), None)
            if target is None:
                # The heartbeat view lags the GCS by up to a beat: a node that
                # just joined is not in it yet. Ask the GCS before giving up.
                try:
                    self.view = list((await self.gcs.GetAllNodeInfo(gpb.GetAllNodeInfoRequest(), timeout=5)).nodes)
                except grpc.RpcError:
                    pass
                target = next((n for n in self.view if n.node_id == s.node_id and n.alive), None)
            if target is not None:
                return _spill(target)
            if not s.soft:
                return rpb.WorkerLeaseReply(error=f"NodeAffinitySchedulingStrategy: node {s.node_id.hex()} "
                                            "is not alive and soft=False")
        pinned = s.kind == SP.NODE_AFFINITY and (s.node_id == self.node_id)
        # Never runnable here: send it where it can run, or wait for such a node.
        while not self.res.fits_total(demand):
            if pinned and not s.soft:
                return rpb.WorkerLeaseReply(error=f"node {self.node_id.hex()} can never provide {demand}")
            other = pick_remote(demand, self.view, self.node_id, now=False)
            if other is not None:
                return _spill(other)
            await asyncio.sleep(config.HEARTBEAT_SECONDS)
            if context.done() if hasattr(context, "done") else False:
                return rpb.WorkerLeaseReply(rejected=True)
        if (request.preferred_node_id and request.preferred_node_id != self.node_id
                and not request.grant_or_reject and s.kind == SP.DEFAULT):
            # Locality: run where the task's large arguments already are.
            target = next((n for n in self.view if n.node_id == request.preferred_node_id and n.alive
                           and _fits(demand, n.resources_total)), None)
            if target is not None:
                return _spill(target)
        if s.kind == SP.SPREAD and not request.grant_or_reject:
            nodes = [n for n in self.view if n.alive and _fits(demand, n.resources_total)]
            if len(nodes) > 1:
                self._spread_rr += 1
                target = sorted(nodes, key=lambda n: n.node_id)[self._spread_rr % len(nodes)]
                if target.node_id != self.node_id:
                    return _spill(target)
        alloc = self.res.acquire(demand) if not self.waiting else None  # no overtaking the queue
        while alloc is None:
            if not request.grant_or_reject and not pinned:
                other = pick_remote(demand, self.view, self.node_id, now=True)
                if other is not None:
                    return _spill(other)
            self._waiter_seq += 1
            entry = _Waiter(self._waiter_seq, request.owner_worker_id, demand,
                            asyncio.get_running_loop().create_future())
            self.waiting.append(entry)
            self._dispatch()  # resources may be free (a request ahead of us just left)
            try:
                alloc = await asyncio.wait_for(asyncio.shield(entry.fut), config.HEARTBEAT_SECONDS * 2)
            except asyncio.TimeoutError:
                pass  # look at other nodes again
            except asyncio.CancelledError:  # the requester went away
                if entry.fut.done():
                    self.res.release(entry.fut.result())
                    self._dispatch()
                raise
            finally:
                if entry in self.waiting:
                    self.waiting.remove(entry)
            if alloc is None and entry.fut.done():  # handed over as the wait timed out
                alloc = entry.fut.result()
        return await self._grant(request, alloc, None)

    async def _grant(self, request: rpb.WorkerLeaseRequest, alloc: Allocation,
                     pool: NodeResources | None) -> rpb.WorkerLeaseReply:
        assert self.workers is not None
        try:
            w = await self.workers.pop_worker(config.STARTUP_TIMEOUT)
        except Exception as e:  # noqa: BLE001
            (pool or self.res).release(alloc)
            self._dispatch()
            return rpb.WorkerLeaseReply(error=f"could not start a worker: {e}")
        lease = LeaseRecord(random_id(16), w, alloc, request.actor_id, request.owner_worker_id, pool)
        w.lease_id = lease.lease_id
        w.actor_id = request.actor_id
        self.leases[lease.lease_id] = lease
        self.lease_by_worker[w.worker_id] = lease
        logger.debug("grant %s to %s cpu=%s", lease.lease_id.hex()[:6], w.pid, self.res.available.get("CPU"))
        self.task_events.record(request, "SCHEDULED")
        return rpb.WorkerLeaseReply(
            granted=True, lease_id=lease.lease_id, gpu_ids=alloc.gpu_ids, assigned=alloc.demand,
            worker=cpb.Address(ip=self.ip, port=w.port, worker_id=w.worker_id, node_id=self.node_id,
                               direct_port=w.direct_port))

    def _dispatch(self) -> None:
        """Resources came back: hand them to waiting lease requests.

        Requests from workers blocked in ``get``/``wait`` go first (in
        arrival order), then the rest in arrival order: finishing the work a
        blocked task waits for frees its CPU, while granting new top-level
        tasks first would start ever more tasks that block in turn (nested
        tasks on a small node starved behind their parents)."""
        if not self.waiting:
            return
        blocked = self.blocked_workers
        for entry in sorted(self.waiting, key=lambda e: (e.owner not in blocked, e.seq)):
            if entry.fut.done():
                continue
            alloc = self.res.acquire(entry.demand)
            if alloc is not None:
                entry.fut.set_result(alloc)
        waiters, self._bundle_waiters = self._bundle_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def _pool(self, lease: LeaseRecord) -> NodeResources:
        return lease.pool if lease.pool is not None else self.res

    # -- placement groups ------------------------------------------------------
    async def _lease_in_bundle(self, request: rpb.WorkerLeaseRequest, demand: dict[str, float],
                               context: Any) -> rpb.WorkerLeaseReply:
        s = request.scheduling
        pg_id, index = s.placement_group_id, s.bundle_index
        while True:
            if context.done() if hasattr(context, "done") else False:
                return rpb.WorkerLeaseReply(rejected=True)  # the requester went away
            got = self.bundles.acquire(pg_id, index, demand)
            if got is not None:
                return await self._grant(request, got[1], got[0].pool)
            here = [b for b in self.bundles.local(pg_id, index) if b.fits_total(demand)]
            if here and (index >= 0 or request.grant_or_reject):
                await self._wait_bundle()  # our bundle is busy: wait for it to free up
                continue
            error, nodes = await self._bundle_nodes(pg_id, index, demand, wait=not here)
            if error:
                return rpb.WorkerLeaseReply(error=error)
            others = [n for n in nodes if n != self.node_id]
            if others:
                self._spread_rr += 1
                target_id = others[self._spread_rr % len(others)]
                target = next((n for n in self.view if n.node_id == target_id and n.alive), None)
                if target is not None:
                    return _spill(target)
            if here:
                await self._wait_bundle()
            elif nodes:  # placed, but our view or our commit lags: look again shortly
                await asyncio.sleep(config.HEARTBEAT_SECONDS)

    async def _wait_bundle(self) -> None:
        fut = asyncio.get_running_loop().create_future()
        self._bundle_waiters.append(fut)
        try:
            await asyncio.wait_for(fut, config.HEARTBEAT_SECONDS * 2)
        except asyncio.TimeoutError:
            pass

    async def _bundle_nodes(self, pg_id: bytes, index: int, demand: dict[str, float],
                            wait: bool) -> tuple[str, list[bytes]]:
        """Ask the GCS which nodes hold a bundle of the group that can take
        ``demand``: (error, nodes); no nodes while the group is pending (with
        ``wait``, after waiting up to a second for it to be placed)."""
        req = gpb.GetPlacementGroupRequest(placement_group_id=pg_id, wait_ready=wait, timeout=1.0 if wait else 0.0)
        try:
            reply = await self.gcs.GetPlacementGroup(req, timeout=10)
        except grpc.RpcError as e:
            logger.warning("placement group lookup failed: %s", e.code() if hasattr(e, "code") else e)
            await asyncio.sleep(config.HEARTBEAT_SECONDS)
            return "", []
        name = f"placement group {pg_id.hex()}"
        if not reply.found:
            return f"{name} does not exist", []
        g = reply.group
        if g.state == gpb.PG_REMOVED:
            return f"{name} was removed", []
        if index >= len(g.bundles):
            return (f"placement_group_bundle_index {index} is out of range: {name} has "
                    f"{len(g.bundles)} bundles"), []
        chosen = [b for b in g.bundles if index < 0 or b.index == index]
        if not any(fits(demand, b.resources) for b in chosen):
            where = "any bundle" if index < 0 else f"bundle {index}"
            return (f"the request {demand} does not fit in {where} of {name} "
                    f"(bundles: {[dict(b.resources) for b in chosen]})"), []
        nodes = [b.node_id for b in chosen if b.node_id and fits(demand, b.resources)]
        return "", list(dict.fromkeys(nodes))

    def _kill_leases_in(self, bundles: list[Bundle], reason: str) -> None:
        """Bundles went away: the workers leased in them die with them."""
        pools = {id(b.pool) for b in bundles}
        assert self.workers is not None or not pools
        for lease in list(self.leases.values()):
            if lease.pool is not None and id(lease.pool) in pools and self.workers is not None:
                logger.info("killing worker pid=%d leased in a cancelled bundle: %s", lease.worker.pid, reason)
                self.workers.kill(lease.worker, force=True)
        self._dispatch()

    async def PrepareBundles(self, request: rpb.PrepareBundlesRequest, context: Any) -> rpb.PrepareBundlesReply:
        specs = [(b.placement_group_id, b.index, dict(b.resources)) for b in request.bundles]
        ok = self.bundles.prepare(specs)
        logger.debug("prepare %d bundles: %s (available now %s)", len(specs), ok, self.res.available)
        return rpb.PrepareBundlesReply(ok=ok, error="" if ok else "not enough free resources on this node")

    async def CommitBundles(self, request: rpb.CommitBundlesRequest, context: Any) -> rpb.CommitBundlesReply:
        ok = self.bundles.commit(request.placement_group_id, list(request.indexes))
        self._dispatch()
        return rpb.CommitBundlesReply(ok=ok)

    async def CancelBundles(self, request: rpb.CancelBundlesRequest, context: Any) -> rpb.CancelBundlesReply:
        gone = self.bundles.cancel(request.placement_group_id, list(request.indexes))
        self._kill_leases_in(gone, request.reason or "placement group removed")
        return rpb.CancelBundlesReply(cancelled=len(gone))

    async def ReturnWorker(self, request: rpb.ReturnWorkerRequest, context: Any) -> rpb.ReturnWorkerReply:
        lease = self.leases.pop(request.lease_id, None)
        logger.debug("return %s found=%s", request.lease_id.hex()[:6], lease is not None)
        if lease is not None:
            self.lease_by_worker.pop(lease.worker.worker_id, None)
            self._pool(lease).release(lease.alloc)
            assert self.workers is not None
            if request.disconnect:
                self.workers.kill(lease.worker, force=True)
            else:
                self.workers.push_idle(lease.worker)
            self._dispatch()
        return rpb.ReturnWorkerReply()

    async def WorkerBlocked(self, request: rpb.WorkerBlockedRequest, context: Any) -> rpb.WorkerBlockedReply:
        if request.seq:
            if request.seq <= self._blocked_seq.get(request.worker_id, 0):
                return rpb.WorkerBlockedReply()  # overtaken by a newer message
            self._blocked_seq[request.worker_id] = request.seq
        if request.blocked:
            self.blocked_workers.add(request.worker_id)
        else:
            self.blocked_workers.discard(request.worker_id)
        lease = self.lease_by_worker.get(request.worker_id)
        if lease is not None:
            if request.blocked:
                self._pool(lease).lend_cpu(lease.alloc)
                self._dispatch()
            else:
                self._pool(lease).reclaim_cpu(lease.alloc)
        return rpb.WorkerBlockedReply()

    async def KillWorker(self, request: rpb.KillWorkerRequest, context: Any) -> rpb.KillWorkerReply:
        assert self.workers is not None
        w = self.workers.by_id.get(request.worker_id)
        if w is None:
            return rpb.KillWorkerReply(found=False)
        logger.info("killing worker pid=%d: %s", w.pid, request.reason)
        if request.force or w.port == 0:
            self.workers.kill(w, force=True)
        else:
            stub = self.pool.stub(f"{self.ip}:{w.port}", wgrpc.CoreWorkerServiceStub)
            try:
                await stub.Exit(wpb.ExitRequest(force=False, reason=request.reason), timeout=2)
            except grpc.RpcError:
                self.workers.kill(w, force=True)
        return rpb.KillWorkerReply(found=True)

    # -- object store -------------------------------------------------------------
    async def CreateObject(self, request: rpb.CreateObjectRequest, context: Any) -> rpb.CreateObjectReply:
        from jray._private.object_store import ObjectExistsError
        from jray.exceptions import ObjectStoreFullError

        # A put: pinned for its writer, which may read it back at once without
        # asking (it releases the pin shortly unless it does).
        pin_for = request.owner.worker_id if is_put_id(request.object_id) and request.owner.worker_id else None
        try:
            offset = self.store.create(request.object_id, request.size, owner=request.owner,
                                       primary=request.primary, pin_for=pin_for)
        except ObjectExistsError:
            return rpb.CreateObjectReply(ok=False, exists=True)
        except ObjectStoreFullError as e:
            if not request.primary or self.store.spill_dir is None:
                return rpb.CreateObjectReply(ok=False, full=True, error=str(e))
            # No room in memory (too big, or the rest is pinned): the writer
            # puts the object straight into a spill file.
            try:
                path = self.store.create_spilled(request.object_id, request.size, owner=request.owner)
            except (OSError, ObjectStoreFullError) as e2:
                return rpb.CreateObjectReply(ok=False, full=True, error=f"{e} Writing it to disk failed too: {e2}")
            return rpb.CreateObjectReply(ok=True, spill_path=path)
        return rpb.CreateObjectReply(ok=True, offset=offset)

    async def SealObject(self, request: rpb.SealObjectRequest, context: Any) -> rpb.SealObjectReply:
        self.store.seal(request.object_id)
        for fut in self._seal_waiters.pop(request.object_id, ()):
            if not fut.done():
                fut.set_result(None)
        return rpb.SealObjectReply()

    async def AbortObject(self, request: rpb.AbortObjectRequest, context: Any) -> rpb.AbortObjectReply:
        self.store.abort(request.object_id)
        return rpb.AbortObjectReply()

    async def GetObject(self, request: rpb.GetObjectRequest, context: Any) -> rpb.GetObjectReply:
        from jray.exceptions import ObjectStoreFullError

        oid = request.object_id
        if not self.store.contains(oid):
            if request.from_port and request.from_node_id != self.node_id:
                err = await self._pull(oid, f"{request.from_ip}:{request.from_port}")
                if err:
                    return rpb.GetObjectReply(found=False, error=err)
            else:
                fut = asyncio.get_running_loop().create_future()
                self._seal_waiters.setdefault(oid, []).append(fut)
                try:
                    await asyncio.wait_for(fut, request.timeout or 10)
                except asyncio.TimeoutError:
                    return rpb.GetObjectReply(found=False, error="the object is not in this node's store")
        try:
            loc = self.store.get(oid, request.client_id)
        except (ObjectStoreFullError, OSError) as e:
            # No room to restore it: the reader reads the spill file itself,
            # pinned for it (the file outlives a free until the reader
            # releases it, as ReleaseObjects does for memory).
            spilled = self.store.pin_spilled(oid, request.client_id)
            if spilled is not None:
                return rpb.GetObjectReply(found=True, size=spilled[1], spill_path=spilled[0])
            return rpb.GetObjectReply(found=False, full=True, error=f"it could not be restored from disk: {e}")
        if loc is None:
            return rpb.GetObjectReply(found=False, error="the object is not in this node's store")
        return rpb.GetObjectReply(found=True, offset=loc[0], size=loc[1])

    async def _pull(self, oid: bytes, address: str) -> str:
        fut = self._pulls.get(oid)
        if fut is None:
            fut = self._pulls[oid] = asyncio.ensure_future(self._do_pull(oid, address))
            fut.add_done_callback(lambda _f: self._pulls.pop(oid, None))
        return await asyncio.shield(fut)

    async def _do_pull(self, oid: bytes, address: str) -> str:
        """Copy an object from another node's store, chunk by chunk, into
        ours; when it does not fit in memory (larger than our store, or the
        rest is pinned), into a spill file of ours, as a local put would."""
        from jray._private.object_store import ObjectExistsError
        from jray.exceptions import ObjectStoreFullError

        self.num_pulls += 1
        stub = self.pool.stub(address, rgrpc.RayletServiceStub)
        view = None
        file = None
        created = False
        try:
            async for chunk in stub.ReadObject(rpb.ReadObjectRequest(object_id=oid, chunk_size=config.OBJECT_CHUNK_BYTES)):
                if not chunk.found:
                    return f"the object is not on node {address}"
                if view is None and file is None:
                    try:
                        offset = self.store.create(oid, chunk.total_size, primary=False)
                    except ObjectExistsError:
                        return ""
                    except ObjectStoreFullError as e:
                        if self.store.spill_dir is None:
                            return f"no room for it in this node's store: {e}"
                        path = self.store.create_spilled(oid, chunk.total_size, primary=False)
                        created = True
                        file = open(path, "r+b")  # noqa: SIM115 - closed below
                    else:
                        created = True
                        view = self.arena.write_view(offset, chunk.total_size)
                if file is not None:
                    file.seek(chunk.offset)
                    file.write(chunk.data)
                elif view is not None:
                    view[chunk.offset: chunk.offset + len(chunk.data)] = chunk.data
            if file is not None:
                file.close()
            elif view is not None:
                view.release()
            else:
                return "empty transfer"
            self.store.seal(oid)
            return ""
        except Exception as e:  # noqa: BLE001
            if file is not None:
                file.close()
            if created:
                self.store.abort(oid)
            return f"transfer from {address} failed: {e}"

    async def ReadObject(self, request: rpb.ReadObjectRequest, context: Any) -> AsyncIterator[rpb.ObjectChunk]:
        oid = request.object_id
        if not self.store.contains(oid):
            # Writers seal without waiting: the location can reach a puller
            # before the seal reaches us. Wait for it a little.
            fut = asyncio.get_running_loop().create_future()
            self._seal_waiters.setdefault(oid, []).append(fut)
            try:
                await asyncio.wait_for(fut, 10)
            except asyncio.TimeoutError:
                pass
            if not self.store.contains(oid):
                yield rpb.ObjectChunk(found=False)
                return
        chunk = request.chunk_size or config.OBJECT_CHUNK_BYTES
        # read_chunks pins the object while it runs and reads a spilled one
        # from its file (no restore, which could fail for lack of room).
        total = self.store.object_size(oid) or 0
        pos = 0
        for data in self.store.read_chunks(oid, chunk):
            yield rpb.ObjectChunk(found=True, total_size=total, offset=pos, data=bytes(data))
            pos += len(data)

    async def ReleaseObjects(self, request: rpb.ReleaseObjectsRequest, context: Any) -> rpb.ReleaseObjectsReply:
        for oid in request.object_ids:
            self.store.release(oid, request.client_id)
        return rpb.ReleaseObjectsReply()

    async def FreeObjects(self, request: rpb.FreeObjectsRequest, context: Any) -> rpb.FreeObjectsReply:
        for oid in request.object_ids:
            self.store.free(oid)
        if request.broadcast:
            for n in self.view:
                if n.alive and n.node_id != self.node_id:
                    stub = self.pool.stub(f"{n.ip}:{n.raylet_port}", rgrpc.RayletServiceStub)
                    self.spawn(_quiet(stub.FreeObjects(rpb.FreeObjectsRequest(object_ids=request.object_ids))))
        return rpb.FreeObjectsReply()

    async def GetNodeStats(self, request: rpb.GetNodeStatsRequest, context: Any) -> rpb.GetNodeStatsReply:
        assert self.workers is not None
        stats = self.store.stats()
        reply = rpb.GetNodeStatsReply(
            node_id=self.node_id, store_capacity=int(stats["capacity"]), store_used=int(stats["used"]),
            num_objects=int(stats["num_objects"]), num_workers=len(self.workers.by_pid),
            num_idle_workers=len(self.workers.idle), resources_total=self.res.total,
            resources_available=self.res.available, spilled_bytes=int(stats.get("spilled_bytes", 0)),
            worker_pids=self.workers.pids(), num_pulls=self.num_pulls)
        if request.include_objects:
            for o in self.store.list_objects():
                owner = o.get("owner")
                reply.objects.append(rpb.StoreObjectInfo(
                    object_id=o["object_id"], size=o["size"], sealed=o["sealed"], primary=o["primary"],
                    pins=o["pins"], spilled=o["spilled"], owner=owner if isinstance(owner, cpb.Address) else None))
        return reply

    async def Shutdown(self, request: Any, context: Any) -> rpb.ShutdownRayletReply:
        asyncio.get_running_loop().call_soon(self.stop_event.set)
        return rpb.ShutdownRayletReply()


def _spill(node: gpb.NodeInfo) -> rpb.WorkerLeaseReply:
    return rpb.WorkerLeaseReply(spillback=True, retry_at_ip=node.ip, retry_at_port=node.raylet_port,
                                retry_at_node_id=node.node_id)


def _fits(demand: dict[str, float], have: Any) -> bool:
    return all(have.get(k, 0.0) + 1e-9 >= v for k, v in demand.items())


async def _quiet(coro: Any) -> None:
    try:
        await coro
    except grpc.RpcError:
        pass
