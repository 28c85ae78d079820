"""The raylet servicer: the gRPC face of one node, over plain parts.

- Leases: ``lease_policy.decide_lease`` decides where a lease request goes
  (grant here, spill to another node, wait, or fail) from a snapshot of
  this node and the cluster; the servicer does what it says: takes the
  resources (``scheduler.NodeResources``) and a worker (``worker_pool``),
  queues the request (``leases.LeaseQueue``), asks the GCS. Granted leases
  are kept in ``leases.LeaseTable``.
- Placement groups: bundles are carved out of the node (``bundles.py``) when
  the GCS prepares them, and leases in a group draw from its bundle here.
  When the bundle is not on this node the raylet asks the GCS where the
  group's bundles are (the GCS is the authority; the cluster view from
  heartbeats carries no bundles) and spills the request to that node
  (``lease_policy.decide_bundle_lease``); while the group is pending it
  waits on the GCS.
- Objects: the node's store and transfers between nodes live in
  ``object_manager.ObjectManager``; the store RPCs here delegate to it (the
  direct transport calls the same ``CreateObject``/``GetObject``/
  ``AbortObject`` methods).
- The node: registration, one stream with the GCS (``SyncNode``:
  change-driven reports out, a liveness beat when nothing changed; the
  cluster view back, nodes as they change and deaths of owners), task
  events, and the worker monitor.
- Observing it: ``GetNodeStats`` (the store, workers with their memory and
  CPU, the machine's CPU and memory: ``host_stats.py``, sampled at most once
  a second), and the node's log files (``ListLogs``, ``GetLog``: ``logs.py``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import grpc

from jray._private import config, gcs_client, output_wire, rpc, tls
from jray._private.ids import random_id
from jray._private.metrics import NodeMetrics
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import core_worker_pb2 as wpb
from jray._private.protocol import core_worker_pb2_grpc as wgrpc
from jray._private.protocol import gcs_pb2 as gpb
from jray._private.protocol import gcs_pb2_grpc as ggrpc
from jray._private.protocol import raylet_pb2 as rpb
from jray._private.protocol import raylet_pb2_grpc as rgrpc
from jray._private.raylet.bundles import Bundle, BundleTable
from jray._private.raylet.host_stats import HostStats
from jray._private.raylet.lease_policy import (
    BundleLookup,
    Error,
    Grant,
    LeaseRequest,
    LeaseView,
    PeerNode,
    Spill,
    Wait,
    bundle_lookup,
    decide_bundle_lease,
    decide_lease,
    reserve_spilled,
)
from jray._private.raylet.leases import BlockedWorkers, LeaseQueue, LeaseRecord, LeaseTable
from jray._private.raylet.logs import LogDir, LogError
from jray._private.raylet.object_manager import ObjectManager
from jray._private.raylet.resource_load import PendingLease, ResourceLoad
from jray._private.raylet.scheduler import Allocation, NodeResources
from jray._private.raylet.task_events import FLUSH_SECONDS, RayletTaskEvents
from jray._private.raylet.worker_pool import WorkerEnv, WorkerPool, WorkerProc
from jray._private.runtime_env.agent import RuntimeEnvAgent, RuntimeEnvSetupFailed
from jray._private.runtime_env.agent import summary as env_summary
from jray._private.runtime_env.validation import env_key
from jray._private.tunnel import TunnelHost

logger = logging.getLogger(__name__)
SP = cpb.SchedulingStrategy
SERVICE = rpb.DESCRIPTOR.services_by_name["RayletService"].full_name
# ReadObject with replies serialized by hand (object_manager.encode_chunk):
# not in raylet.proto, registered beside the service by add_raw_methods.
READ_OBJECT_RAW = "ReadObjectRaw"
READ_OBJECT_METHOD = f"/{SERVICE}/{READ_OBJECT_RAW}"
# A runtime_env set-up still running after this shows as a progress line
# where the task's output goes, redrawn this often.
ENV_PROGRESS_AFTER_SECONDS = 0.5
ENV_PROGRESS_EVERY_SECONDS = 0.5


class Raylet(rgrpc.RayletServiceServicer):
    def __init__(self, *, token: str, node_id: bytes, ip: str, resources: dict[str, float], gcs_address: str,
                 store: Any, arena: Any, store_path: str, session_dir: str, is_head: bool,
                 labels: dict[str, str] | None = None) -> None:
        self.token = token
        self.node_id = node_id
        self.ip = ip
        self.port = 0
        self.direct_port = 0  # store calls over jray._private.direct
        self.bulk: Any = None  # bulk.BulkServer: objects to other raylets over plain TCP (none with TLS)
        self.res = NodeResources(resources)
        self.bundles = BundleTable(self.res)
        self.gcs_address = gcs_address
        self.dead_workers_seen = -1  # the GCS's dead-worker sequence seen so far (-1: none yet)
        self.store = store
        self.arena = arena
        self.store_path = store_path
        self.session_dir = session_dir
        self.is_head = is_head
        self.labels = labels or {}
        self.pool = rpc.ChannelPool(token)
        # Calls ride over a GCS restart (retried while it is away); heartbeats have their own loop.
        self.gcs = gcs_client.RetryingGcsStub(self.pool.stub(gcs_address, ggrpc.GcsServiceStub))
        # Clients' ways in (_private/tunnel.py): a port here per client, kept across a blip.
        self.tunnels = TunnelHost(ip, config.DRIVER_TIMEOUT_SECONDS)
        self.metrics = NodeMetrics(ip)  # ray.util.metrics of this node's processes
        self.metrics_export_port = 0
        # The cluster as the GCS's view stream last described it (by node
        # id), and the copy decisions read and write (reserve_spilled), made
        # afresh from it on each update and each beat.
        self._peers: dict[bytes, gpb.NodeInfo] = {}
        self.view: list[gpb.NodeInfo] = []
        self._view_reserved = False  # the copy holds spilled requests' reservations
        self._view_at = 0.0  # when the copy was made (loop time)
        self._gcs_heard = 0.0  # when the GCS last said something on the stream (loop time)
        self.leases = LeaseTable(self.res)
        self.queue = LeaseQueue()  # lease requests waiting for resources here
        self.blocked = BlockedWorkers()  # workers blocked in get/wait (their CPU lent)
        # Owners known dead (most recent last, bounded): a lease that was being granted
        # while its owner died is given back instead of held for no one.
        self._dead_owners: collections.OrderedDict[bytes, None] = collections.OrderedDict()
        self.objects = ObjectManager(
            store=store, arena=arena, node_id=node_id,
            raylet_stub=lambda address: self.pool.stub(address, rgrpc.RayletServiceStub),
            read_object=lambda address: self.pool.raw_unary_stream(
                address, READ_OBJECT_METHOD, rpb.ReadObjectRequest.SerializeToString),
            bulk_peer=self._bulk_peer, token=token)
        self.workers: WorkerPool | None = None
        self.envs: RuntimeEnvAgent | None = None  # set by __main__ (it knows the directories)
        self._env_watches: set[tuple[str, str, int]] = set()  # set-ups shown as progress lines
        self._env_grants: dict[str, int] = {}  # runtime_env keys being set up or granted right now
        self._last_env_gc = 0.0
        self.stop_event = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._spread_rr = 0
        self.task_events = RayletTaskEvents(node_id)
        self.load = ResourceLoad()  # what waits here, and idleness (for the autoscaler)
        self.host = HostStats()  # the machine's CPU and memory, the workers' (sampled at most once a second)
        self.log_dir = LogDir(os.path.join(session_dir, "logs"))

    def spawn(self, coro: Any) -> None:
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    def _bulk_peer(self, address: str) -> tuple[str, int] | None:
        """The bulk listener of the raylet at ``address`` (from the cluster
        view), or None: it has none, it is unknown yet, or TLS is on."""
        if tls.current() is not None:
            return None
        for n in self.view:
            if n.bulk_port and n.alive and f"{n.ip}:{n.raylet_port}" == address:
                return n.ip, n.bulk_port
        return None

    # -- node info / heartbeats -------------------------------------------------
    def node_info(self) -> gpb.NodeInfo:
        stats = self.store.stats() if self.store is not None else {}
        host = self.host.sample(self.workers.pids() if self.workers else ())
        return gpb.NodeInfo(
            node_id=self.node_id, ip=self.ip, raylet_port=self.port, resources_total=self.res.total,
            resources_available={k: max(0.0, v) for k, v in self.res.available.items()}, alive=True,
            is_head=self.is_head, store_path=self.store_path,
            object_store_memory=int(stats.get("capacity", 0)), store_used=int(stats.get("used", 0)),
            num_workers=len(self.workers.by_pid) if self.workers else 0, labels=self.labels,
            pid=os.getpid(), spilled_bytes=int(stats.get("spilled_bytes", 0)), pending_leases=len(self.queue),
            start_time=time.time(), num_idle_workers=len(self.workers.idle) if self.workers else 0,
            num_leased_workers=len(self.leases.by_worker), num_objects=int(stats.get("num_objects", 0)),
            metrics_export_port=self.metrics_export_port, resource_load=self.load.demands(),
            idle_duration_ms=self.load.idle_ms(self._busy()),
            cpu_percent=host.cpu_percent, memory_used=host.memory_used, memory_total=host.memory_total,
            bulk_port=self.bulk.port if self.bulk is not None else 0,
        )

    def _busy(self) -> bool:
        """Anything leased or waiting, or any resource taken (bundles too)."""
        avail = self.res.available
        return bool(self.leases.by_id or len(self.queue) or self.bundles.bundles) or any(
            avail.get(k, 0.0) + 1e-9 < v for k, v in self.res.total.items())

    async def register(self) -> None:
        await self.gcs.RegisterNode(gpb.RegisterNodeRequest(node=self.node_info()))

    @staticmethod
    def _report_key(info: gpb.NodeInfo) -> tuple[Any, ...]:
        """What a report is sent at once for when it changed (not the
        machine's CPU and memory, nor how long the node has been idle)."""
        return (sorted(info.resources_available.items()), sorted(info.resources_total.items()),
                info.pending_leases, info.num_workers, info.num_idle_workers, info.num_leased_workers,
                info.num_objects, info.store_used, info.spilled_bytes, info.idle_duration_ms == 0,
                [d.SerializeToString(deterministic=True) for d in info.resource_load])

    async def heartbeat_loop(self) -> None:
        """This node's stream with the GCS (``SyncNode``), opened again
        when it breaks (a GCS restart, a blip) or the GCS asks this node to
        register again. A GCS that stays silent for GCS_LOST_SECONDS ends
        this raylet: its workers stop and its store goes (nothing to serve
        without a head)."""
        self.spawn(self.task_events_loop())
        loop = asyncio.get_running_loop()
        self._gcs_heard = loop.time()
        warned_at = 0.0
        while not self.stop_event.is_set():
            failure: BaseException | None = None
            try:
                await self._sync()
            except (grpc.RpcError, asyncio.InvalidStateError) as e:  # the stream broke, or would not open
                failure = e
            now = loop.time()
            silent = now - self._gcs_heard
            if silent >= config.GCS_LOST_SECONDS:
                logger.error("the GCS at %s has not answered for %.0f s: this raylet exits",
                             self.gcs_address, silent)
                self.stop_event.set()
                return
            if failure is not None and (not warned_at or now - warned_at >= 10.0):  # not every try
                warned_at = now
                logger.warning("the stream to the GCS broke (%s); the raylet exits if it stays silent for %.0f s",
                               failure.code() if isinstance(failure, grpc.RpcError) else failure,
                               config.GCS_LOST_SECONDS)
            elif failure is None and warned_at:
                warned_at = 0.0
            await asyncio.sleep(config.HEARTBEAT_SECONDS)

    async def _sync(self) -> None:
        """One ``SyncNode`` stream: beats out, change-driven as Ray's (every
        HEARTBEAT_SECONDS the node's report is looked at and sent when it
        changed; else a liveness beat, the id only, every LIVENESS_SECONDS,
        and the full report every NODE_REPORT_SECONDS); the view in
        (``_read_view``). Returns when the stream ends."""
        loop = asyncio.get_running_loop()
        call = self.gcs.SyncNode()
        reader = asyncio.ensure_future(self._read_view(call))
        sent_key: tuple[Any, ...] | None = None
        sent_at = full_at = -1e9
        try:
            while not reader.done() and not self.stop_event.is_set():
                now = loop.time()
                if now - self._gcs_heard >= config.GCS_LOST_SECONDS:
                    return  # open, but silent: a partition (the caller ends this raylet)
                info = self.node_info()
                key = self._report_key(info)
                full = key != sent_key or now - full_at >= config.NODE_REPORT_SECONDS
                if full or now - sent_at >= config.LIVENESS_SECONDS:
                    if full:
                        request = gpb.HeartbeatRequest(node=info, dead_workers_after=self.dead_workers_seen)
                    else:
                        request = gpb.HeartbeatRequest(node_id=self.node_id)
                    await call.write(request)
                    sent_at = now
                    if full:
                        sent_key, full_at = key, now
                    if self._view_reserved and now - self._view_at >= config.LIVENESS_SECONDS:
                        self._rebuild_view()  # spilled requests' reservations last a beat at most
                await asyncio.wait((reader,), timeout=config.HEARTBEAT_SECONDS)
            if reader.done() and reader.result():
                # The GCS lost us (declared dead, or restarted afresh): the bundles we hold
                # were placed again elsewhere, or are unknown now.
                self._kill_leases_in(self.bundles.cancel_all(), "the GCS no longer knows this node")
                await self.register()
        finally:
            reader.cancel()
            call.cancel()

    async def _read_view(self, call: Any) -> bool:
        """The GCS's side of the stream; True when it asks this node to
        register again."""
        loop = asyncio.get_running_loop()
        async for update in call:
            self._gcs_heard = loop.time()
            if update.reregister:
                return True
            self._apply_view(update)
        return False

    def _apply_view(self, update: gpb.ClusterViewUpdate) -> None:
        for wid in update.dead_workers:  # owners that died elsewhere
            self.release_leases_owned_by(wid)
            self.objects.forget_owner(wid)  # their objects here (a client's puts among them)
        self.dead_workers_seen = update.dead_workers_seq
        if update.full:
            self._peers = {}
        for n in update.nodes:
            self._peers[n.node_id] = n
        if update.full or update.nodes:
            self._rebuild_view()

    def _rebuild_view(self) -> None:
        """The decisions' copy of the view, without the reservations of
        requests spilled since the last one (``reserve_spilled``)."""
        view = []
        for n in self._peers.values():
            copy = gpb.NodeInfo()
            copy.CopyFrom(n)
            view.append(copy)
        self.view = view
        self._view_reserved = False
        self._view_at = asyncio.get_running_loop().time()

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
                logger.info("driver pid=%d is gone", d.pid)
                self.release_leases_owned_by(d.worker_id)
                self.spawn(self._report_death(d.worker_id, b"", f"the driver process (pid={d.pid}) exited",
                                              is_driver=True))
            self.workers.kill_idle_beyond(int(self.res.total.get("CPU", 1)), config.IDLE_WORKER_KILL_SECONDS,
                                          ask=lambda w: self.spawn(self._reap_idle(w)),
                                          other_env_seconds=config.RUNTIME_ENV_IDLE_WORKER_SECONDS)
            if self.envs is not None and time.monotonic() - self._last_env_gc > 5.0:
                self._last_env_gc = time.monotonic()
                busy = set(self.workers.workers_by_env()) | {k for k, n in self._env_grants.items() if n}
                self.envs.gc(busy)

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
        self.blocked.forget(w.worker_id)
        if self.store is not None and w.worker_id:
            self.objects.forget_client(w.worker_id)
        lease = self.leases.by_worker.get(w.worker_id)
        if lease is not None:
            self.leases.end(lease)
            self._dispatch()
        self.release_leases_owned_by(w.worker_id)
        if not w.worker_id:
            return  # never registered: it owned nothing
        if w.actor_id:
            # A worker forked by the zygote is not our child: no exit code here.
            how = f" (exit code {code})" if code is not None else " (killed, or it crashed)"
            reason = f"its worker process (pid={w.pid}) died unexpectedly{how}"
        else:
            reason = f"its worker process (pid={w.pid}) exited"
        await self._report_death(w.worker_id, w.actor_id, reason)

    async def _report_death(self, worker_id: bytes, actor_id: bytes, reason: str, is_driver: bool = False) -> None:
        """Tell the GCS (it restarts the actor, ends a driver's job, and tells
        every raylet to stop the dead owner's tasks)."""
        try:
            await self.gcs.ReportWorkerFailure(gpb.ReportWorkerFailureRequest(
                worker_id=worker_id, node_id=self.node_id, actor_id=actor_id, reason=reason, is_driver=is_driver))
        except grpc.RpcError:
            pass

    def release_leases_owned_by(self, owner_id: bytes) -> None:
        """The owner of some leases died: the tasks it submitted end with it
        (Ray's fate-sharing). Their workers are killed, never handed out
        again while they may still run a dead owner's task; the resources
        go to waiting requests."""
        assert self.workers is not None
        if owner_id:
            self._dead_owners[owner_id] = None
            self._dead_owners.move_to_end(owner_id)
            while len(self._dead_owners) > 10_000:
                self._dead_owners.popitem(last=False)
        self.load.forget_owner(owner_id)
        leases = self.leases.owned_by(owner_id)
        for lease in leases:
            self.leases.end(lease)
            logger.info("ending worker pid=%d: the owner of its lease died", lease.worker.pid)
            self._end_worker(lease.worker)
        if leases:
            self._dispatch()

    def _end_worker(self, w: WorkerProc) -> None:
        """SIGTERM (the worker sends its buffered task events and output, for
        at most half a second), then SIGKILL after FATE_SHARING_GRACE_SECONDS."""
        assert self.workers is not None
        self.workers.kill(w, force=False)
        asyncio.get_running_loop().call_later(config.FATE_SHARING_GRACE_SECONDS, self._kill_if_alive, w)

    def _kill_if_alive(self, w: WorkerProc) -> None:
        if self.workers is not None and not w.dead:
            self.workers.kill(w, force=True)

    # -- workers -------------------------------------------------------------
    async def RegisterWorker(self, request: rpb.RegisterWorkerRequest, context: Any) -> rpb.RegisterWorkerReply:
        assert self.workers is not None
        self.workers.on_register(request.pid, request.worker_id, request.port, request.is_driver,
                                 request.direct_port)
        return rpb.RegisterWorkerReply(node_id=self.node_id, store_path=self.store_path,
                                       store_capacity=self.store.capacity if self.store is not None else 0,
                                       direct_port=self.direct_port)

    async def RequestWorkerLease(self, request: rpb.WorkerLeaseRequest, context: Any) -> rpb.WorkerLeaseReply:
        self.task_events.record(request, "PENDING_NODE_ASSIGNMENT")
        req = LeaseRequest.from_proto(request)
        if req.kind == SP.PLACEMENT_GROUP:
            return await self._lease_in_bundle(request, req, context)
        if request.actor_id:  # the GCS counts pending actors itself
            return await self._lease(request, req, context, None)
        pending = self.load.begin(req.demand)  # the autoscaler's demand while it waits here
        try:
            return await self._lease(request, req, context, pending)
        finally:
            self.load.end(pending)

    async def _lease(self, request: rpb.WorkerLeaseRequest, req: LeaseRequest, context: Any,
                     pending: PendingLease | None) -> rpb.WorkerLeaseReply:
        while True:
            d = decide_lease(req, self._lease_view())
            if isinstance(d, Error):
                return rpb.WorkerLeaseReply(error=d.message)
            if d.spread_rr is not None:
                self._spread_rr = d.spread_rr
            if isinstance(d, Spill):
                reserve_spilled(d.node, req.demand)
                self._view_reserved = True
                return _spill(d.node)
            if isinstance(d, Grant):
                alloc = self.res.acquire(req.demand)
                if alloc is not None:  # (always: the view was taken in this same step)
                    return await self._grant(request, alloc, None)
                req = replace(req, resumed="resources")
                continue
            if pending is not None:
                pending.infeasible = d.reason == "feasible"
            if d.reason == "view":
                await self._refresh_view()
            elif d.reason == "feasible":
                await asyncio.sleep(config.HEARTBEAT_SECONDS)
                if context.done() if hasattr(context, "done") else False:
                    return rpb.WorkerLeaseReply(rejected=True)
            else:
                alloc = await self._queue_for(request.owner_worker_id, req.demand)
                if alloc is not None:
                    return await self._grant(request, alloc, None)
            req = replace(req, resumed=d.reason)

    def _lease_view(self) -> LeaseView:
        return LeaseView(self.node_id, self.res, not self.queue, self.view, self._spread_rr)

    async def _refresh_view(self) -> None:
        try:
            nodes = (await self.gcs.GetAllNodeInfo(gpb.GetAllNodeInfoRequest(), timeout=5)).nodes
        except grpc.RpcError:
            return
        self._peers = {n.node_id: n for n in nodes}
        self._rebuild_view()

    async def _queue_for(self, owner: bytes, demand: dict[str, float]) -> Allocation | None:
        """Wait in the queue for this node's resources, a bounded while (the
        caller then looks at other nodes again)."""
        entry = self.queue.add(owner, demand)
        self._dispatch()  # resources may be free (a request ahead of us just left)
        alloc = None
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
            self.queue.remove(entry)
        if alloc is None and entry.fut.done():  # handed over as the wait timed out
            alloc = entry.fut.result()
        return alloc

    async def _grant(self, request: rpb.WorkerLeaseRequest, alloc: Allocation,
                     pool: NodeResources | None) -> rpb.WorkerLeaseReply:
        assert self.workers is not None
        env: WorkerEnv | None = None
        key = env_key(request.runtime_env) if request.runtime_env and self.envs is not None else ""
        if key:
            self._env_grants[key] = self._env_grants.get(key, 0) + 1
        try:
            if key:
                assert self.envs is not None
                if request.HasField("owner"):
                    self._watch_env_setup(key, request)
                try:
                    rec = await self.envs.get_or_create(request.runtime_env)
                except RuntimeEnvSetupFailed as e:
                    (pool or self.res).release(alloc)
                    self._dispatch()
                    return rpb.WorkerLeaseReply(runtime_env_error=str(e))
                assert rec.context is not None
                env = WorkerEnv(key, request.runtime_env, rec.context)
            w = await self.workers.pop_worker(config.STARTUP_TIMEOUT, env)
        except asyncio.CancelledError:  # the requester went away (its call cancelled, or it exited)
            (pool or self.res).release(alloc)
            self._dispatch()
            raise
        except Exception as e:  # noqa: BLE001
            (pool or self.res).release(alloc)
            self._dispatch()
            return rpb.WorkerLeaseReply(error=f"could not start a worker: {e}")
        finally:
            if key:
                self._env_grants[key] -= 1
        if request.owner_worker_id and request.owner_worker_id in self._dead_owners:
            # The owner died while its worker was being found (its leases were let go
            # before this one existed): nobody would ever return this one.
            (pool or self.res).release(alloc)
            self.workers.push_idle(w)
            self._dispatch()
            return rpb.WorkerLeaseReply(error="the lease's owner died while it was being granted")
        lease = LeaseRecord(random_id(16), w, alloc, request.actor_id, request.owner_worker_id, pool)
        w.lease_id = lease.lease_id
        w.actor_id = request.actor_id
        self.leases.add(lease)
        logger.debug("grant %s to %s cpu=%s", lease.lease_id.hex()[:6], w.pid, self.res.available.get("CPU"))
        self.task_events.record(request, "SCHEDULED")
        return rpb.WorkerLeaseReply(
            granted=True, lease_id=lease.lease_id, gpu_ids=alloc.gpu_ids, assigned=alloc.demand,
            worker=cpb.Address(ip=self.ip, port=w.port, worker_id=w.worker_id, node_id=self.node_id,
                               direct_port=w.direct_port))

    def _watch_env_setup(self, key: str, request: rpb.WorkerLeaseRequest) -> None:
        """Show a runtime_env set-up that takes a while as a progress line
        where the task's output goes (its notebook cell): one per env, node
        and driver, however many leases wait on it."""
        watch = (key, request.owner.ip, request.owner.port)  # the first asker's cell shows it
        if watch in self._env_watches:
            return
        self._env_watches.add(watch)

        async def report() -> None:
            try:
                await asyncio.sleep(ENV_PROGRESS_AFTER_SECONDS)
                assert self.envs is not None
                rec = self.envs.envs.get(key)
                if rec is None or rec.status != "PENDING":
                    return
                stub = self.pool.stub(f"{request.owner.ip}:{request.owner.port}", wgrpc.CoreWorkerServiceStub)
                bar = f"env-{key}-{self.node_id.hex()[:8]}-{request.root_task_id.hex()[:8]}"
                what = env_summary(rec.env_json)
                while rec.status == "PENDING":
                    text = (f"runtime_env on {self.ip}: setting up {what} [{time.monotonic() - rec.started:.0f} s] "
                            f"{rec.phase}")
                    await self._send_env_progress(stub, request, {"kind": "progress", "id": bar, "n": 0,
                                                                  "total": None, "text": text})
                    assert rec.future is not None
                    await asyncio.wait([rec.future], timeout=ENV_PROGRESS_EVERY_SECONDS)
                ok = rec.status == "READY"
                text = (f"runtime_env on {self.ip}: {what} ready in {rec.setup_seconds:.1f} s" if ok else
                        f"runtime_env on {self.ip}: {what} failed after {rec.setup_seconds:.1f} s "
                        f"(log: {rec.log_path})")
                await self._send_env_progress(stub, request, {"kind": "progress", "id": bar, "n": 1 if ok else 0,
                                                              "total": 1, "text": text, "closed": True,
                                                              "error": not ok})
            finally:
                self._env_watches.discard(watch)

        self.spawn(report())

    async def _send_env_progress(self, stub: Any, request: rpb.WorkerLeaseRequest, msg: dict[str, Any]) -> None:
        line = wpb.LogLine(prefix=f"raylet {self.ip}", text=output_wire.encode(msg),
                           root_task_id=request.root_task_id, task_id=request.task_id)
        try:
            await stub.PublishLogs(wpb.LogBatch(pid=os.getpid(), ip=self.ip, job_id=request.job_id, lines=[line]),
                                   timeout=5)
        except Exception:  # noqa: BLE001 - the owner may be gone; progress is a courtesy
            pass

    def _dispatch(self) -> None:
        """Resources came back: hand them to waiting lease requests (blocked
        workers' first, see ``leases.py``)."""
        self.queue.hand_out(self.res, self.blocked)

    # -- placement groups ------------------------------------------------------
    async def _lease_in_bundle(self, request: rpb.WorkerLeaseRequest, req: LeaseRequest,
                               context: Any) -> rpb.WorkerLeaseReply:
        pg_id, index = req.placement_group_id, req.bundle_index
        while True:
            if context.done() if hasattr(context, "done") else False:
                return rpb.WorkerLeaseReply(rejected=True)  # the requester went away
            got = self.bundles.acquire(pg_id, index, req.demand)
            if got is not None:
                return await self._grant(request, got[1], got[0].pool)
            here = any(b.fits_total(req.demand) for b in self.bundles.local(pg_id, index))
            d = decide_bundle_lease(req, here, None, self._lease_view())
            if isinstance(d, Wait) and d.reason == "lookup":
                # While the group is pending and no bundle of it is here, the
                # GCS holds the reply up to a second for it to be placed.
                lookup = await self._lookup_bundles(req, wait=not here)
                d = decide_bundle_lease(req, here, lookup, self._lease_view())
            if isinstance(d, Error):
                return rpb.WorkerLeaseReply(error=d.message)
            if d.spread_rr is not None:
                self._spread_rr = d.spread_rr
            if isinstance(d, Spill):
                return _spill(d.node)
            if d.reason == "bundle":
                await self.queue.wait_bundle(config.HEARTBEAT_SECONDS * 2)
            elif d.reason == "placement":
                await asyncio.sleep(config.HEARTBEAT_SECONDS)

    async def _lookup_bundles(self, req: LeaseRequest, wait: bool) -> BundleLookup:
        """Ask the GCS where the group's bundles are (see ``bundle_lookup``);
        none, after a heartbeat, when the GCS cannot be reached."""
        pg_id = req.placement_group_id
        greq = gpb.GetPlacementGroupRequest(placement_group_id=pg_id, wait_ready=wait, timeout=1.0 if wait else 0.0)
        try:
            reply = await self.gcs.GetPlacementGroup(greq, timeout=10)
        except grpc.RpcError as e:
            logger.warning("placement group lookup failed: %s", e.code() if hasattr(e, "code") else e)
            await asyncio.sleep(config.HEARTBEAT_SECONDS)
            return BundleLookup()
        return bundle_lookup(reply.found, reply.group, pg_id, req.bundle_index, req.demand)

    def _kill_leases_in(self, bundles: list[Bundle], reason: str) -> None:
        """Bundles went away: the workers leased in them die with them."""
        pools = [b.pool for b in bundles]
        assert self.workers is not None or not pools
        for lease in self.leases.in_pools(pools):
            if self.workers is not None:
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
        lease = self.leases.by_id.get(request.lease_id)
        logger.debug("return %s found=%s", request.lease_id.hex()[:6], lease is not None)
        if lease is not None:
            self.leases.end(lease)
            assert self.workers is not None
            if request.disconnect:
                self.workers.kill(lease.worker, force=True)
            else:
                self.workers.push_idle(lease.worker)
            self._dispatch()
        return rpb.ReturnWorkerReply()

    async def WorkerBlocked(self, request: rpb.WorkerBlockedRequest, context: Any) -> rpb.WorkerBlockedReply:
        if not self.blocked.update(request.worker_id, request.blocked, request.seq):
            return rpb.WorkerBlockedReply()  # overtaken by a newer message
        lease = self.leases.by_worker.get(request.worker_id)
        if lease is not None:
            if request.blocked:
                self.leases.pool(lease).lend_cpu(lease.alloc)
                self._dispatch()
            else:
                self.leases.pool(lease).reclaim_cpu(lease.alloc)
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

    # -- object store (see object_manager.py) -------------------------------------
    async def CreateObject(self, request: rpb.CreateObjectRequest, context: Any) -> rpb.CreateObjectReply:
        return self.objects.create(request)

    async def SealObject(self, request: rpb.SealObjectRequest, context: Any) -> rpb.SealObjectReply:
        self.objects.seal(request.object_id)
        return rpb.SealObjectReply()

    async def AbortObject(self, request: rpb.AbortObjectRequest, context: Any) -> rpb.AbortObjectReply:
        self.objects.abort(request.object_id)
        return rpb.AbortObjectReply()

    async def GetObject(self, request: rpb.GetObjectRequest, context: Any) -> rpb.GetObjectReply:
        return await self.objects.get(request)

    async def ReadObject(self, request: rpb.ReadObjectRequest, context: Any) -> AsyncIterator[rpb.ObjectChunk]:
        # aclosing: a reader gone mid-stream unpins the object at once, as
        # when this method was the stream itself.
        async with contextlib.aclosing(self.objects.read(request)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def ReadObjectRaw(self, request: rpb.ReadObjectRequest, context: Any) -> AsyncIterator[bytes]:
        """ReadObject, each reply already serialized (another raylet's pull)."""
        async with contextlib.aclosing(self.objects.read_raw(request)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def Tunnel(self, request_iterator: Any, context: Any) -> AsyncIterator[rpb.TunnelFrame]:
        async for frame in self.tunnels.serve(request_iterator, context):
            yield frame

    async def WriteObject(self, request_iterator: Any, context: Any) -> rpb.WriteObjectReply:
        return await self.objects.write(request_iterator)

    async def ReleaseObjects(self, request: rpb.ReleaseObjectsRequest, context: Any) -> rpb.ReleaseObjectsReply:
        self.objects.release(request.object_ids, request.client_id)
        return rpb.ReleaseObjectsReply()

    async def FreeObjects(self, request: rpb.FreeObjectsRequest, context: Any) -> rpb.FreeObjectsReply:
        self.objects.free(request.object_ids)
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
            worker_pids=self.workers.pids(), num_pulls=self.objects.num_pulls,
            num_bulk_pulls=self.objects.num_bulk_pulls, num_bulk_fallbacks=self.objects.num_bulk_fallbacks)
        if self.bulk is not None:
            reply.num_bulk_sent, reply.num_bulk_refused = self.bulk.num_sent, self.bulk.num_refused
        host = self.host.sample(self.workers.pids())
        reply.cpu_percent, reply.memory_used, reply.memory_total = (
            host.cpu_percent, host.memory_used, host.memory_total)
        for w in self.workers.by_pid.values():
            proc = host.procs.get(w.pid)
            reply.workers.append(rpb.WorkerStats(
                pid=w.pid, worker_id=w.worker_id, state=self.workers.state_of(w), actor_id=w.actor_id,
                rss_bytes=proc.rss if proc else 0, cpu_percent=proc.cpu_percent if proc else 0.0,
                log_file=w.log_file, start_time=w.started_at, runtime_env_key=w.env_key))
        if self.envs is not None:
            reply.runtime_envs.extend(rpb.RuntimeEnvState(**st) for st in self.envs.states(self.workers.workers_by_env()))
        if request.include_objects:
            reply.objects.extend(self.objects.object_infos())
        if request.include_metrics:
            reply.metrics.extend(self.metrics.aggregate())
        return reply

    # -- logs (logs.py) ------------------------------------------------------------
    async def ListLogs(self, request: rpb.ListLogsRequest, context: Any) -> rpb.ListLogsReply:
        assert self.workers is not None
        logs = self.workers.logs
        files = await asyncio.to_thread(self.log_dir.list, request.glob_filter)
        reply = rpb.ListLogsReply(log_dir=self.log_dir.path)
        for name, size, mtime in files:
            rec = logs.by_file.get(name)
            info = rpb.LogFileInfo(filename=name, size=size, mtime=mtime)
            if rec is not None:
                info.pid, info.worker_id, info.worker_alive = rec.pid, rec.worker_id, rec.alive
            reply.files.append(info)
        return reply

    async def GetLog(self, request: rpb.GetLogRequest, context: Any) -> rpb.GetLogReply:
        assert self.workers is not None
        reply = rpb.GetLogReply()
        name = request.filename
        if request.pid or request.worker_id:
            rec = self.workers.logs.find(request.pid, request.worker_id)
            if rec is None:
                who = f"worker {request.worker_id.hex()}" if request.worker_id else f"pid {request.pid}"
                return rpb.GetLogReply(error=f"no worker with {who} on node {self.node_id.hex()} ({self.ip}): "
                                             "was it started by this node's raylet?", not_found=True)
            name = rec.filename
            reply.pid, reply.worker_id, reply.worker_alive = rec.pid, rec.worker_id, rec.alive
        try:
            data, end, size = await asyncio.to_thread(
                self.log_dir.read, name, tail=request.tail, offset=request.offset, max_bytes=request.max_bytes)
        except LogError as e:
            return rpb.GetLogReply(error=str(e), not_found=e.not_found)
        except OSError as e:
            return rpb.GetLogReply(error=f"cannot read log {name!r}: {e.strerror or e}", not_found=True)
        reply.data, reply.offset, reply.size, reply.filename = data, end, size, name
        return reply

    async def ReportWorkerBacklog(self, request: rpb.ReportWorkerBacklogRequest,
                                  context: Any) -> rpb.ReportWorkerBacklogReply:
        self.load.report_backlog(request.worker_id, [(b.shape, b.backlog_size) for b in request.backlog])
        return rpb.ReportWorkerBacklogReply()

    async def WaitWorkerReady(self, request: rpb.WaitWorkerReadyRequest,
                              context: Any) -> rpb.WaitWorkerReadyReply:
        """Answer once a worker of this node has registered (or after
        ``timeout_s``, ready=False): ``init()`` that started the cluster waits
        here so its first task finds a warm worker, as the hundredth does."""
        pool = self.workers
        if pool is None:
            return rpb.WaitWorkerReadyReply(ready=False)
        if pool.first_registered.is_set():
            return rpb.WaitWorkerReadyReply(ready=True)
        try:
            await asyncio.wait_for(pool.first_registered.wait(), max(0.0, min(request.timeout_s, 30.0)))
        except asyncio.TimeoutError:
            return rpb.WaitWorkerReadyReply(ready=False)
        return rpb.WaitWorkerReadyReply(ready=True)

    async def ReportMetrics(self, request: rpb.ReportMetricsRequest, context: Any) -> rpb.ReportMetricsReply:
        self.metrics.report(request.worker_id, request.points)
        return rpb.ReportMetricsReply()

    async def PrepareRuntimeEnv(self, request: rpb.PrepareRuntimeEnvRequest,
                                context: Any) -> rpb.PrepareRuntimeEnvReply:
        if self.envs is None or not request.runtime_env or not env_key(request.runtime_env):
            return rpb.PrepareRuntimeEnvReply(started=False)
        self.spawn(self.envs.prepare(request.runtime_env))
        return rpb.PrepareRuntimeEnvReply(started=True)

    async def download_package(self, uri: str, dest: str) -> None:
        """Fetch a runtime_env package from the head (the agent's download)."""
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                async for chunk in self.gcs.DownloadPackage(gpb.DownloadPackageRequest(uri=uri), timeout=600):
                    f.write(chunk.data)
        except grpc.RpcError as e:
            raise RuntimeError(f"downloading {uri} from the head failed: "
                               f"{e.details() if hasattr(e, 'details') else e}") from None

    async def Shutdown(self, request: Any, context: Any) -> rpb.ShutdownRayletReply:
        asyncio.get_running_loop().call_soon(self.stop_event.set)
        return rpb.ShutdownRayletReply()


def _spill(node: PeerNode) -> rpb.WorkerLeaseReply:
    return rpb.WorkerLeaseReply(spillback=True, retry_at_ip=node.ip, retry_at_port=node.raylet_port,
                                retry_at_node_id=node.node_id)


async def _quiet(coro: Any) -> None:
    try:
        await coro
    except grpc.RpcError:
        pass


def add_raw_methods(raylet: Raylet, server: Any) -> None:
    """The methods a raylet serves beside ``raylet.proto``'s, their replies
    bytes the handler serialized itself (``ReadObjectRaw``)."""
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
        READ_OBJECT_RAW: grpc.unary_stream_rpc_method_handler(
            raylet.ReadObjectRaw, request_deserializer=rpb.ReadObjectRequest.FromString, response_serializer=None),
    }),))
