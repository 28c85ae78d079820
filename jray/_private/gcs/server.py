"""The GCS servicer: node table and health, jobs, actors (registration,
scheduling through raylet leases, restarts), placement groups (see
``pg_manager.py``), the internal KV and the task-event buffer.

Fate-sharing (Ray's ownership semantics): when a worker or a driver dies,
everything it owns goes with it. Raylets report every death of a process
they ran (``ReportWorkerFailure``); the GCS also watches each driver itself
(``WatchDriver``: a stream the driver holds open, broken when its process
dies; ``DriverHeartbeat``: beats, missing when its host vanished). A death
ends the job of a driver (FAILED), kills the non-detached actors the dead
process created, and is published to every raylet on its cluster-view
stream (``SyncNode``'s ``dead_workers``), so each kills the workers
still running tasks for the dead owner. Node reports and the view:
``cluster_view.py``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import tempfile
import time
from typing import Any

import grpc

from jray._private import config, direct, rpc, serialization
from jray._private.gcs.actor_directory import ActorDirectory, ActorRecord
from jray._private.gcs.cluster_view import GCS_BEAT_SECONDS, ViewPublisher, apply_report
from jray._private.gcs.packages import PackageStore
from jray._private.gcs.pg_manager import PlacementGroupManager
from jray._private.gcs.resource_state import cluster_resource_state
from jray._private.gcs.store import (
    CREATING,
    JOBS,
    NODES,
    PGS,
    GcsStore,
    pack_creation,
    unpack_creation,
)
from jray._private.gcs.task_table import TaskTable
from jray._private.ids import random_id
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import core_worker_pb2 as wpb
from jray._private.protocol import core_worker_pb2_grpc as wgrpc
from jray._private.protocol import gcs_pb2 as gpb
from jray._private.protocol import gcs_pb2_grpc as ggrpc
from jray._private.protocol import raylet_pb2 as rpb
from jray._private.protocol import raylet_pb2_grpc as rgrpc
from jray._private.resources import fits
from jray._private.transport_error import TransportError

logger = logging.getLogger(__name__)
TASKS_SETTLE_SECONDS = 3.0  # after a job ends, its tasks not seen to finish are marked FAILED
MAX_TASKS = 100_000  # task records kept (oldest finished dropped first)


class GcsServer(ggrpc.GcsServiceServicer):
    def __init__(self, token: str, packages_dir: str | None = None, store: GcsStore | None = None) -> None:
        self.token = token
        self.store = store  # the tables on disk (write-through), or None
        self.packages = PackageStore(packages_dir or tempfile.mkdtemp(prefix="jray-packages-"))
        self.cluster_id = random_id(16)
        self.start_time = time.time()
        self.nodes: dict[bytes, gpb.NodeInfo] = {}
        self.last_seen: dict[bytes, float] = {}
        self.node_watchers: set[asyncio.Queue] = set()  # WatchNodes streams
        self.view = ViewPublisher(self.nodes)  # SyncNode streams (the raylets')
        self.kv: dict[tuple[str, bytes], bytes] = {}
        self.jobs: dict[bytes, gpb.JobInfo] = {}
        self._next_job = 1
        self.actors = ActorDirectory()
        self.task_table = TaskTable(MAX_TASKS)
        self.pool = rpc.ChannelPool(token)
        self._tasks: set[asyncio.Task] = set()
        self._kills: set[asyncio.Future] = set()  # KillWorker calls in flight (RemovePlacementGroup waits)
        # Deaths of workers and drivers, numbered, for the raylets (bounded).
        self.dead_workers: collections.deque[tuple[int, bytes]] = collections.deque(maxlen=10_000)
        self._dead_set: set[bytes] = set()
        self.dead_seq = 0
        self.driver_seen: dict[bytes, float] = {}  # job id -> its driver's last heartbeat (monotonic)
        self.pgs = PlacementGroupManager(
            nodes=self.nodes, actors=self.actors,
            kill_actor=lambda rec, reason: self._kill_actor(rec, reason, force=True),
            raylet_stub=lambda address: self.pool.stub(address, rgrpc.RayletServiceStub),
            spawn=self.spawn)
        self.pgs.on_node_changed = self.view.node_changed
        if store is not None:
            self.actors.on_change = self._persist_actor
            self.pgs.table.on_change = lambda rec: store.put(PGS, rec.pg_id, rec.info.SerializeToString())
            self.pgs.table.on_drop = lambda pg_id: store.delete(PGS, pg_id)
            if store.meta_get("cluster_id") is None:  # a fresh store (restore() reads it back)
                store.meta_put("cluster_id", self.cluster_id)

    # -- the tables on disk ------------------------------------------------------------
    def _persist_actor(self, rec: ActorRecord, new: bool = False) -> None:
        assert self.store is not None
        if new:
            self.store.actor_insert(rec.info.actor_id, rec.info.SerializeToString(), rec.spec.SerializeToString(),
                                    rec.worker_id, rec.raylet_address, rec.no_restart)
        else:
            self.store.actor_update(rec.info.actor_id, rec.info.SerializeToString(), rec.worker_id,
                                    rec.raylet_address, rec.no_restart)

    def _persist_node(self, node: gpb.NodeInfo) -> None:
        if self.store is not None:
            self.store.put(NODES, node.node_id, node.SerializeToString())

    def _persist_job(self, job: gpb.JobInfo) -> None:
        if self.store is not None:
            self.store.put(JOBS, job.job_id, job.SerializeToString())

    def restore(self) -> dict[str, int]:
        """Read the tables back after a restart (``--restore``): the same
        cluster id, nodes (the live ones given a fresh heartbeat deadline),
        jobs (a live one's driver given a fresh heartbeat deadline), actors
        (ALIVE ones left running: never created again; those being created
        when the GCS died are created again, the worker a lease had given
        them stopped first), placement groups (unplaced ones placed) and the
        KV. Returns counts for the log."""
        store = self.store
        assert store is not None
        now = time.monotonic()
        cid = store.meta_get("cluster_id")
        if cid:
            self.cluster_id = cid
        self._next_job = int.from_bytes(store.meta_get("next_job") or b"\x01", "little")
        self.dead_seq = int.from_bytes(store.meta_get("dead_seq") or b"\x00", "little")
        store.meta_put("cluster_id", self.cluster_id)
        for data in store.load(NODES):
            node = gpb.NodeInfo.FromString(data)
            self.nodes[node.node_id] = node
            if node.alive:
                self.last_seen[node.node_id] = now
        for data in store.load(JOBS):
            job = gpb.JobInfo.FromString(data)
            self.jobs[job.job_id] = job
            if not job.is_dead:
                self.driver_seen[job.job_id] = now
        for ns, key, value in store.kv_items():
            self.kv[(ns, bytes(key))] = bytes(value)
        resume = []
        for info_b, spec_b, worker_id, raylet, no_restart in store.actors():
            rec = ActorRecord(gpb.ActorInfo.FromString(info_b), cpb.TaskSpec.FromString(spec_b),
                              worker_id=bytes(worker_id), raylet_address=raylet, no_restart=no_restart)
            self.actors.restore(rec)
            if rec.info.state in (gpb.PENDING_CREATION, gpb.RESTARTING):
                resume.append(rec)
        for rec in resume:
            self.spawn(self._resume_creation(rec))
        for data in store.load(PGS):
            self.pgs.table.restore(gpb.PlacementGroupInfo.FromString(data))
        self.pgs.restored()
        return {"nodes": sum(n.alive for n in self.nodes.values()), "jobs": sum(not j.is_dead for j in self.jobs.values()),
                "actors": sum(r.info.state != gpb.DEAD for r in self.actors.actors.values()),
                "placement_groups": len(self.pgs.table.groups), "kv": len(self.kv), "creating": len(resume)}

    async def _resume_creation(self, rec: ActorRecord) -> None:
        """An actor the previous GCS was creating. If its creation task had
        been pushed to a worker, that worker is asked again: it answers from
        the run it has (a worker never runs a creation task twice), so the
        constructor runs once. If it cannot be reached (or the lease was
        granted but nothing pushed), the worker the lease had given is
        stopped and the actor created afresh."""
        pushed = self.store.get(CREATING, rec.info.actor_id) if self.store is not None else None
        if pushed is not None and rec.worker_id:
            worker_b, spec_b = unpack_creation(pushed)
            worker = cpb.Address.FromString(worker_b)
            node = next((n for n in self.nodes.values() if n.alive
                         and f"{n.ip}:{n.raylet_port}" == rec.raylet_address), None)
            if node is not None:
                try:
                    if await self._push_creation(rec, node, worker, cpb.TaskSpec.FromString(spec_b)):
                        return
                except grpc.RpcError as e:
                    logger.info("actor %s: its creating worker is gone (%s); creating it afresh",
                                rec.info.class_name, e.code())
        if rec.worker_id and rec.raylet_address:
            raylet = self.pool.stub(rec.raylet_address, rgrpc.RayletServiceStub)
            await _quiet(raylet.KillWorker(rpb.KillWorkerRequest(
                worker_id=rec.worker_id, force=True, reason="the GCS restarted while creating its actor"),
                timeout=10))
            rec.worker_id, rec.raylet_address = b"", ""
            self._persist_actor(rec)
        await self._schedule(rec)

    def spawn(self, coro: Any) -> None:
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def health_loop(self) -> None:
        while True:
            await asyncio.sleep(config.HEARTBEAT_SECONDS)
            now = time.monotonic()
            for nid in overdue_nodes(self.nodes, self.last_seen, now, config.NODE_DEATH_SECONDS):
                logger.warning("node %s missed its heartbeats: marking it dead", nid.hex())
                self._node_died(nid, f"no heartbeat for {config.NODE_DEATH_SECONDS:g} s")
            for job_id, seen in list(self.driver_seen.items()):
                job = self.jobs.get(job_id)
                if job is None or job.is_dead:
                    self.driver_seen.pop(job_id, None)
                elif now - seen > config.DRIVER_TIMEOUT_SECONDS:
                    self._worker_died(job.driver.worker_id,
                                      f"its driver sent no heartbeat for {config.DRIVER_TIMEOUT_SECONDS:.0f} s")

    # -- deaths of workers and drivers (fate-sharing) ---------------------------------
    def _worker_died(self, worker_id: bytes, reason: str) -> None:
        """A worker or driver died: its job (if a driver) ends as FAILED, the
        non-detached actors it created are killed, and every raylet learns of
        it (to kill the workers running its tasks)."""
        if not worker_id or worker_id in self._dead_set:
            return
        self._dead_set.add(worker_id)
        self.dead_seq += 1
        if self.store is not None:
            self.store.meta_put("dead_seq", self.dead_seq.to_bytes(8, "little"))
        self.dead_workers.append((self.dead_seq, worker_id))
        if len(self.dead_workers) == self.dead_workers.maxlen:
            self._dead_set.discard(self.dead_workers[0][1])
        self.view.wake_all()  # the raylets kill the workers running its tasks
        for job in self.jobs.values():
            if job.driver.worker_id == worker_id and not job.is_dead:
                logger.info("job %s failed: %s", job.job_id.hex(), reason)
                self._end_job(job, f"the driver died ({reason})")
        for rec in list(self.actors.actors.values()):
            if (rec.spec.caller.worker_id == worker_id and not rec.info.detached
                    and rec.info.state != gpb.DEAD):
                self._kill_actor(rec, f"its owner (the process that created it) died: {reason}", force=True)

    def _end_job(self, job: gpb.JobInfo, death_cause: str = "") -> None:
        """The job is over (its driver finished, or died): its non-detached
        actors and placement groups go with it."""
        job.is_dead = True
        job.end_time = time.time()
        job.death_cause = death_cause
        self.driver_seen.pop(job.job_id, None)
        self._persist_job(job)
        why = "the job that created it finished" if not death_cause else f"the job that created it failed: {death_cause}"
        for rec in list(self.actors.actors.values()):
            if rec.info.job_id == job.job_id and not rec.info.detached and rec.info.state != gpb.DEAD:
                self._kill_actor(rec, why, force=True)
        self.pgs.remove_job(job.job_id)
        # Its tasks' last events may still be on their way (flushed every
        # 0.5 s): those not seen to finish a few seconds on never will be.
        ended = "its job ended before it was seen to finish" + (f" ({death_cause})" if death_cause else "")
        try:
            asyncio.get_running_loop().call_later(
                TASKS_SETTLE_SECONDS, lambda: self.task_table.end_job(job.job_id, ended, time.time()))
        except RuntimeError:  # no loop (tests driving the server by hand)
            pass

    def _node_died(self, node_id: bytes, reason: str) -> None:
        node = self.nodes.get(node_id)
        if node is None or not node.alive:
            return
        node.alive = False
        self._persist_node(node)
        self.view.node_changed(node_id)
        event = gpb.NodeEvent(node_id=node_id, ip=node.ip, alive=False, reason=reason, raylet_port=node.raylet_port)
        for q in self.node_watchers:
            q.put_nowait(event)
        self.pgs.on_node_dead(node_id)
        for rec in list(self.actors.actors.values()):
            if rec.info.node_id == node_id and rec.info.state in (gpb.ALIVE, gpb.PENDING_CREATION):
                self._actor_failed(rec, f"the node {node_id.hex()} running it died")

    # -- basics --------------------------------------------------------------
    async def CheckAlive(self, request: Any, context: Any) -> gpb.CheckAliveReply:
        from jray._private.version import __version__

        return gpb.CheckAliveReply(cluster_id=self.cluster_id, uptime=time.time() - self.start_time,
                                   version=__version__)

    async def RegisterNode(self, request: gpb.RegisterNodeRequest, context: Any) -> gpb.RegisterNodeReply:
        n = request.node
        n.alive = True
        self.nodes[n.node_id] = n
        self.last_seen[n.node_id] = time.monotonic()
        self._persist_node(n)
        self.view.node_changed(n.node_id)
        logger.info("node %s registered at %s:%d", n.node_id.hex(), n.ip, n.raylet_port)
        self.pgs.kick()
        return gpb.RegisterNodeReply(cluster_id=self.cluster_id)

    async def UnregisterNode(self, request: gpb.UnregisterNodeRequest, context: Any) -> gpb.UnregisterNodeReply:
        self._node_died(request.node_id, "it stopped")
        return gpb.UnregisterNodeReply()

    def _beat(self, request: gpb.HeartbeatRequest) -> bool:
        """A raylet's beat: its full report when something changed (or now
        and then), else only its id (``cluster_view.py``). False: the GCS
        does not know the node (declared dead, or a GCS restarted afresh)."""
        node_id = request.node.node_id if request.HasField("node") else request.node_id
        known = self.nodes.get(node_id)
        if known is None or not known.alive:
            return False
        now = time.monotonic()
        before = self.last_seen.get(node_id, now)
        self.last_seen[node_id] = now
        if request.HasField("node"):
            if apply_report(known, request.node):
                self.view.node_changed(node_id)
        elif known.idle_duration_ms:  # still idle (going busy would have sent a report)
            known.idle_duration_ms += int((now - before) * 1000)
        return True

    async def Heartbeat(self, request: gpb.HeartbeatRequest, context: Any) -> gpb.HeartbeatReply:
        return gpb.HeartbeatReply(reregister=not self._beat(request))

    async def SyncNode(self, request_iterator: Any, context: Any) -> None:
        """A raylet's stream: its beats in; out, its view of the cluster
        (every node first, then the nodes whose resources or liveness
        changed, and the deaths of workers and drivers) as things happen,
        at most one update per heartbeat period, and an empty one every
        ``GCS_BEAT_SECONDS`` when nothing did (the GCS is there). A stream
        message costs the GCS a third of a unary call's CPU."""
        first = await context.read()
        if first is grpc.aio.EOF:
            return
        if not self._beat(first):
            await context.write(gpb.ClusterViewUpdate(reregister=True))
            return
        sub = self.view.subscribe(first.dead_workers_after)
        reader = asyncio.ensure_future(self._read_beats(context, sub))
        try:
            while True:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(sub.wake.wait(), GCS_BEAT_SECONDS)
                sub.wake.clear()
                if reader.done():
                    if not reader.cancelled() and reader.exception() is None and reader.result() is False:
                        await context.write(gpb.ClusterViewUpdate(reregister=True))
                    return
                nodes, full = self.view.take(sub)
                update = gpb.ClusterViewUpdate(nodes=nodes, full=full, dead_workers_seq=self.dead_seq)
                after = sub.dead_after
                if 0 <= after < self.dead_seq:
                    update.dead_workers.extend(w for seq, w in self.dead_workers if seq > after)
                sub.dead_after = self.dead_seq
                await context.write(update)
                await asyncio.sleep(config.HEARTBEAT_SECONDS)  # changes in a burst go out together
        finally:
            reader.cancel()
            self.view.unsubscribe(sub)

    async def _read_beats(self, context: Any, sub: Any) -> bool:
        """The beats on a SyncNode stream, until it ends (True) or one
        comes from a node the GCS does not know (False)."""
        while True:
            request = await context.read()
            if request is grpc.aio.EOF:
                sub.wake.set()
                return True
            if not self._beat(request):
                sub.wake.set()
                return False

    async def GetAllNodeInfo(self, request: Any, context: Any) -> gpb.GetAllNodeInfoReply:
        return gpb.GetAllNodeInfoReply(nodes=list(self.nodes.values()))

    # -- KV ------------------------------------------------------------------
    # -- runtime_env packages ----------------------------------------------------
    async def PackageExists(self, request: gpb.PackageExistsRequest, context: Any) -> gpb.PackageExistsReply:
        try:
            size = self.packages.size(request.uri)
        except ValueError:
            size = None
        return gpb.PackageExistsReply(exists=size is not None, size=size or 0)

    async def UploadPackage(self, request_iterator: Any, context: Any) -> gpb.UploadPackageReply:
        first = None
        chunks: list[bytes] = []
        try:
            async for c in request_iterator:
                if first is None:
                    first = c
                    if c.total > config.RUNTIME_ENV_MAX_PACKAGE_BYTES * 2:
                        return gpb.UploadPackageReply(error=f"package of {c.total} bytes is over the limit")
                chunks.append(c.data)
            if first is None:
                return gpb.UploadPackageReply(error="empty upload")
            if self.packages.size(first.uri) is None:
                await asyncio.to_thread(self.packages.write, first.uri, iter(chunks), first.total)
                logger.info("stored package %s (%d bytes)", first.uri, first.total)
        except ValueError as e:
            return gpb.UploadPackageReply(error=str(e))
        return gpb.UploadPackageReply(ok=True)

    async def DownloadPackage(self, request: gpb.DownloadPackageRequest, context: Any) -> Any:
        try:
            if self.packages.size(request.uri) is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"the head has no package {request.uri} "
                                    "(deleted to bound its disk use, or the head restarted): run the driver again")
            total = self.packages.size(request.uri) or 0
            first = True
            for data in self.packages.read(request.uri, config.OBJECT_CHUNK_BYTES):
                yield gpb.PackageChunk(uri=request.uri if first else "", data=data, total=total if first else 0)
                first = False
        except ValueError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))

    async def KVPut(self, request: gpb.KVPutRequest, context: Any) -> gpb.KVPutReply:
        key = (request.ns, request.key)
        if key in self.kv and not request.overwrite:
            return gpb.KVPutReply(added=False)
        self.kv[key] = request.value
        if self.store is not None:
            self.store.kv_put(request.ns, request.key, request.value)
        return gpb.KVPutReply(added=True)

    async def KVGet(self, request: gpb.KVGetRequest, context: Any) -> gpb.KVGetReply:
        v = self.kv.get((request.ns, request.key))
        return gpb.KVGetReply(found=v is not None, value=v or b"")

    async def KVDel(self, request: gpb.KVDelRequest, context: Any) -> gpb.KVDelReply:
        if request.prefix:
            keys = [k for k in self.kv if k[0] == request.ns and k[1].startswith(request.key)]
        else:
            keys = [k for k in [(request.ns, request.key)] if k in self.kv]
        for k in keys:
            del self.kv[k]
        if self.store is not None and keys:
            self.store.kv_delete(keys)
        return gpb.KVDelReply(deleted=len(keys))

    async def KVKeys(self, request: gpb.KVKeysRequest, context: Any) -> gpb.KVKeysReply:
        return gpb.KVKeysReply(keys=[k[1] for k in self.kv if k[0] == request.ns and k[1].startswith(request.prefix)])

    # -- jobs ----------------------------------------------------------------
    async def AddJob(self, request: gpb.AddJobRequest, context: Any) -> gpb.AddJobReply:
        wid = request.job.driver.worker_id
        for known in self.jobs.values():  # a retried call (the GCS restarted before it answered)
            if wid and known.driver.worker_id == wid and not known.is_dead:
                return gpb.AddJobReply(job_id=known.job_id)
        job_id = self._next_job.to_bytes(4, "little")
        self._next_job += 1
        job = gpb.JobInfo()
        job.CopyFrom(request.job)
        job.job_id = job_id
        self.jobs[job_id] = job
        self.driver_seen[job_id] = time.monotonic()
        if self.store is not None:
            self.store.meta_put("next_job", self._next_job.to_bytes(4, "little"))
        self._persist_job(job)
        return gpb.AddJobReply(job_id=job_id)

    async def MarkJobFinished(self, request: gpb.MarkJobFinishedRequest, context: Any) -> gpb.MarkJobFinishedReply:
        job = self.jobs.get(request.job_id)
        if job is not None and not job.is_dead:
            self._end_job(job)
            # As for a driver that died: raylets free the objects it owned
            # (a put never got, a result never read) and end its leases.
            self._worker_died(job.driver.worker_id, "its driver finished")
        return gpb.MarkJobFinishedReply()

    async def WatchNodes(self, request: gpb.WatchNodesRequest, context: Any) -> Any:
        """Every node death from now on, as it is declared. The headers go
        out at once: a watcher knows it is subscribed (``wait_for_connection``)
        before it reads the node table to catch up on deaths it missed."""
        q: asyncio.Queue[gpb.NodeEvent] = asyncio.Queue()
        self.node_watchers.add(q)
        try:
            await context.send_initial_metadata(())
            while True:
                yield await q.get()
        finally:
            self.node_watchers.discard(q)

    async def WatchDriver(self, request: gpb.WatchDriverRequest, context: Any) -> Any:
        """Held open by a driver for its job's life; a break that is not the
        job's end is the driver's death (checked: a driver that still
        answers keeps its job, its heartbeats decide)."""
        job = self.jobs.get(request.job_id)
        if job is None:
            return
        ended = False
        try:
            while not job.is_dead:
                yield gpb.WatchDriverReply()
                await asyncio.sleep(2.0)
            ended = True
        finally:
            if not ended and not job.is_dead:
                self.spawn(self._driver_stream_broke(job))

    async def _driver_stream_broke(self, job: gpb.JobInfo) -> None:
        addr = f"{job.driver.ip}:{job.driver.port}"
        stub = self.pool.stub(addr, wgrpc.CoreWorkerServiceStub)
        try:
            await stub.GetObjectStatus(wpb.GetObjectStatusRequest(object_id=b"", timeout=0.0), timeout=1.0)
            return  # it answers: a broken connection, not a dead driver
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNAVAILABLE:
                return  # slow or busy: the heartbeats decide
        self.pool.drop(addr)
        self._worker_died(job.driver.worker_id, "its connection to the GCS closed and it does not answer")

    async def DriverHeartbeat(self, request: gpb.DriverHeartbeatRequest, context: Any) -> gpb.DriverHeartbeatReply:
        job = self.jobs.get(request.job_id)
        if job is None or job.is_dead:
            return gpb.DriverHeartbeatReply(job_dead=True)
        self.driver_seen[request.job_id] = time.monotonic()
        return gpb.DriverHeartbeatReply()

    async def GetAllJobInfo(self, request: Any, context: Any) -> gpb.GetAllJobInfoReply:
        return gpb.GetAllJobInfoReply(jobs=list(self.jobs.values()))

    # -- actors --------------------------------------------------------------
    async def RegisterActor(self, request: gpb.RegisterActorRequest, context: Any) -> gpb.RegisterActorReply:
        ac = request.spec.actor_creation
        if ac.actor_id in self.actors.actors:  # a retried call (the GCS restarted before it answered)
            return gpb.RegisterActorReply(ok=True)
        if ac.name:
            existing = self.actors.lookup_name(ac.namespace, ac.name)
            if existing is not None:
                if request.get_if_exists:
                    return gpb.RegisterActorReply(ok=False, existing=existing.info)
                return gpb.RegisterActorReply(
                    ok=False, error=f"The name {ac.name!r} (namespace={ac.namespace!r}) is already taken by "
                    "another actor. Use get_if_exists=True to get it instead.")
        if ac.actor_id in self.actors.actors:
            return gpb.RegisterActorReply(ok=True)
        rec = self.actors.register(request.spec, dict(request.spec.resources))
        self.spawn(self._schedule(rec))
        return gpb.RegisterActorReply(ok=True)

    def _alive_nodes(self) -> list[gpb.NodeInfo]:
        return [n for n in self.nodes.values() if n.alive]

    def _pick_node(self, rec: ActorRecord) -> gpb.NodeInfo | None:
        demand = dict(rec.spec.resources)
        s = rec.spec.scheduling
        if s.kind == cpb.SchedulingStrategy.PLACEMENT_GROUP:
            return self.pgs.node_for_actor(
                rec, lambda why: self.actors.update(rec, state=gpb.DEAD, death_cause=why))
        nodes = self._alive_nodes()
        if s.kind == cpb.SchedulingStrategy.NODE_AFFINITY:
            n = self.nodes.get(s.node_id)
            if n is not None and n.alive:
                return n
            if not s.soft:
                return None
        feasible = [n for n in nodes if fits(demand, n.resources_total)]
        if not feasible:
            return None
        # Prefer the caller's node, then the most available CPU (spread actors).
        caller_node = rec.spec.caller.node_id
        if s.kind == cpb.SchedulingStrategy.SPREAD and len(feasible) > 1:
            # The nodes in turn (actors created together are all pending at
            # once: counting live ones would put them on one node).
            self._spread_rr = getattr(self, "_spread_rr", -1) + 1
            feasible.sort(key=lambda n: n.node_id)
            k = self._spread_rr % len(feasible)
            order = feasible[k:] + feasible[:k]
            return next((n for n in order if fits(demand, n.resources_available)), order[0])
        if s.kind != cpb.SchedulingStrategy.SPREAD:
            for n in feasible:
                if n.node_id == caller_node and fits(demand, n.resources_available):
                    return n
        count: dict[bytes, int] = collections.Counter(
            r.info.node_id for r in self.actors.actors.values() if r.info.state == gpb.ALIVE)
        return max(feasible, key=lambda n: (fits(demand, n.resources_available),
                                            -count.get(n.node_id, 0), n.resources_available.get("CPU", 0.0)))

    async def _schedule(self, rec: ActorRecord) -> None:
        rec.placing = True  # pending demand until a raylet grants it a worker
        try:
            await self._schedule_loop(rec)
        finally:
            rec.placing = False

    async def _schedule_loop(self, rec: ActorRecord) -> None:
        warned = False
        while rec.info.state in (gpb.PENDING_CREATION, gpb.RESTARTING):
            node = self._pick_node(rec)
            if node is None:
                if rec.info.state == gpb.DEAD:
                    return
                if not warned and rec.spec.scheduling.kind != cpb.SchedulingStrategy.PLACEMENT_GROUP:
                    logger.warning("actor %s cannot be placed yet: no node has %s", rec.info.class_name,
                                   dict(rec.spec.resources))
                    warned = True
                await asyncio.sleep(0.2)
                continue
            try:
                ok = await self._create_on(rec, node)
            except grpc.RpcError as e:
                logger.info("actor %s creation attempt failed: %s", rec.info.class_name, e)
                ok = False
            if ok:
                return
            if rec.info.state == gpb.DEAD:
                return
            await asyncio.sleep(0.1)

    async def _create_on(self, rec: ActorRecord, node: gpb.NodeInfo) -> bool:
        addr = f"{node.ip}:{node.raylet_port}"
        raylet = self.pool.stub(addr, rgrpc.RayletServiceStub)
        req = rpb.WorkerLeaseRequest(resources=dict(rec.spec.resources), scheduling=rec.spec.scheduling,
                                     actor_id=rec.info.actor_id, runtime_env=rec.spec.runtime_env,
                                     name=rec.info.class_name, task_id=rec.spec.task_id,
                                     job_id=rec.spec.job_id, attempt=rec.spec.attempt)
        if rec.spec.runtime_env:  # set-up progress goes where the creator's output does
            req.owner.CopyFrom(rec.spec.driver)
            req.root_task_id = rec.spec.root_task_id or rec.spec.task_id
        # SPREAD: this node's turn was taken here; the raylet must not take another.
        req.grant_or_reject = rec.spec.scheduling.kind == cpb.SchedulingStrategy.SPREAD
        for _ in range(8):
            reply = await raylet.RequestWorkerLease(req)
            if reply.granted:
                break
            if reply.spillback:
                target = f"{reply.retry_at_ip}:{reply.retry_at_port}"
                if not any(n.alive and f"{n.ip}:{n.raylet_port}" == target for n in self.nodes.values()):
                    # A raylet's view lags the GCS by a heartbeat: it sent us to a node
                    # declared dead (whose silence would hold this call for a minute).
                    await asyncio.sleep(config.HEARTBEAT_SECONDS)
                    continue
                addr = target
                raylet = self.pool.stub(addr, rgrpc.RayletServiceStub)
                req.grant_or_reject = True
                continue
            if reply.runtime_env_error:
                from jray.exceptions import RuntimeEnvSetupError

                err = serialization.serialize(RuntimeEnvSetupError(reply.runtime_env_error)).to_bytes()
                self.actors.update(rec, state=gpb.DEAD, creation_failed=True, creation_error=err,
                                   death_cause=f"its runtime_env could not be set up: {reply.runtime_env_error}")
                return True
            return False
        else:
            return False
        rec.placing = False
        if rec.info.state == gpb.DEAD:  # killed while we waited for the lease
            await raylet.KillWorker(rpb.KillWorkerRequest(worker_id=reply.worker.worker_id, force=True))
            return True
        rec.worker_id = reply.worker.worker_id
        rec.raylet_address = addr
        self.actors.by_worker[rec.worker_id] = rec.info.actor_id
        if self.store is not None:  # a restarted GCS stops this worker before creating the actor again
            self._persist_actor(rec)
        spec = cpb.TaskSpec()
        spec.CopyFrom(rec.spec)
        spec.gpu_ids[:] = list(reply.gpu_ids)
        if self.store is not None:
            self.store.put(CREATING, rec.info.actor_id, pack_creation(reply.worker.SerializeToString(),
                                                                     spec.SerializeToString()))
        try:
            return await self._push_creation(rec, node, reply.worker, spec)
        except (grpc.RpcError, TransportError) as e:
            if rec.info.state != gpb.DEAD:
                why = e.details() if isinstance(e, grpc.RpcError) else e.details
                self._actor_failed(rec, f"its worker died during creation: {why}")
            return True

    async def _push_creation(self, rec: ActorRecord, node: gpb.NodeInfo, worker: cpb.Address,
                             spec: cpb.TaskSpec) -> bool:
        """Run the creation task on its leased ``worker`` and record the
        outcome (raises the push's RpcError: the worker is gone)."""
        pickled = self.kv.get(("fun", spec.function.key.encode()))
        if pickled is not None:  # the new worker need not ask for its class (a GCS call fewer per actor)
            spec.function.pickled = pickled
        try:
            if worker.direct_port:
                push = await self._push_direct(worker, spec)
            else:  # a worker started with JRAY_DIRECT_TRANSPORT=0
                worker_addr = f"{worker.ip}:{worker.port}"
                stub = self.pool.stub(worker_addr, wgrpc.CoreWorkerServiceStub)
                try:
                    push = await stub.PushTask(wpb.PushTaskRequest(spec=spec))
                finally:
                    self.pool.drop(worker_addr)  # its one call: the actor's callers talk to it, not the GCS
        finally:
            if self.store is not None:
                self.store.delete(CREATING, rec.info.actor_id)
        if rec.info.state == gpb.DEAD:
            return True
        if push.is_application_error or push.worker_exiting:
            err = push.returns[0].data if push.returns else b""
            msg = "its __init__ raised"
            try:
                msg = f"its __init__ raised:\n{serialization.deserialize(err)}"
            except Exception:  # noqa: BLE001
                pass
            self.actors.update(rec, state=gpb.DEAD, creation_failed=True, creation_error=err, death_cause=msg)
            return True
        created = self.task_table.records.get(spec.task_id)  # its RUNNING event may be here already
        pid = created.pid if created is not None and created.worker_id == rec.worker_id else 0
        self.actors.update(rec, state=gpb.ALIVE, address=worker, node_id=node.node_id, pid=pid)
        return True

    async def _push_direct(self, worker: cpb.Address, spec: cpb.TaskSpec) -> wpb.PushTaskReply:
        """The creation task over the worker's direct port, on a connection
        of its own closed after the reply: the GCS talks to an actor's worker
        once, so it keeps no channel to it (a gRPC channel per actor cost the
        GCS ~1 ms of CPU to open, and stayed open for the GCS's life)."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[wpb.PushTaskReply] = loop.create_future()

        def done(payload: bytes | None, err: Exception | None) -> None:
            if answer.done():
                return
            if err is not None:
                answer.set_exception(err)
            else:
                answer.set_result(wpb.PushTaskReply.FromString(payload or b""))

        stub = direct.DirectStub(f"{worker.ip}:{worker.direct_port}", self.token)
        try:
            stub.push_task_cb(wpb.PushTaskRequest(spec=spec), done)
            return await answer
        finally:
            stub.close(0.0)

    def _actor_failed(self, rec: ActorRecord, reason: str, intentional: bool = False) -> None:
        if rec.info.state == gpb.DEAD:
            return
        self.actors.by_worker.pop(rec.worker_id, None)
        info = rec.info
        restarts_left = info.max_restarts < 0 or info.num_restarts < info.max_restarts
        if intentional or rec.no_restart or not restarts_left:
            self.actors.update(rec, state=gpb.DEAD, death_cause=reason)
            return
        self.actors.update(rec, state=gpb.RESTARTING, num_restarts=info.num_restarts + 1, death_cause=reason)
        self.spawn(self._schedule(rec))

    def _kill_actor(self, rec: ActorRecord, reason: str, force: bool) -> None:
        rec.no_restart = True
        worker_id, raylet_addr = rec.worker_id, rec.raylet_address
        self.actors.update(rec, state=gpb.DEAD, death_cause=reason)
        self.actors.by_worker.pop(worker_id, None)
        if worker_id and raylet_addr:
            raylet = self.pool.stub(raylet_addr, rgrpc.RayletServiceStub)
            kill = asyncio.ensure_future(
                _quiet(raylet.KillWorker(rpb.KillWorkerRequest(worker_id=worker_id, force=force, reason=reason))))
            self._tasks.add(kill)
            self._kills.add(kill)
            kill.add_done_callback(self._tasks.discard)
            kill.add_done_callback(self._kills.discard)

    async def GetActorInfo(self, request: gpb.GetActorInfoRequest, context: Any) -> gpb.GetActorInfoReply:
        rec = self.actors.actors.get(request.actor_id)
        if rec is None:
            return gpb.GetActorInfoReply(found=False)
        if request.timeout > 0:
            await self.actors.wait_change(rec, request.after_version, request.timeout)
        return gpb.GetActorInfoReply(found=True, actor=rec.info)

    async def GetNamedActor(self, request: gpb.GetNamedActorRequest, context: Any) -> gpb.GetNamedActorReply:
        rec = self.actors.lookup_name(request.namespace, request.name)
        if rec is None:
            return gpb.GetNamedActorReply(found=False)
        return gpb.GetNamedActorReply(found=True, actor=rec.info, creation_spec=rec.spec.SerializeToString())

    async def ListActors(self, request: gpb.ListActorsRequest, context: Any) -> gpb.ListActorsReply:
        out = []
        for rec in self.actors.actors.values():
            if request.named_only and not rec.info.name:
                continue
            if not request.all_namespaces and request.namespace and rec.info.namespace != request.namespace:
                continue
            out.append(rec.info)
        return gpb.ListActorsReply(actors=out)

    async def KillActor(self, request: gpb.KillActorRequest, context: Any) -> gpb.KillActorReply:
        rec = self.actors.actors.get(request.actor_id)
        if rec is None or rec.info.state == gpb.DEAD:
            return gpb.KillActorReply()
        if request.no_restart:
            self._kill_actor(rec, "it was killed by jray.kill()", request.force)
        elif rec.worker_id and rec.raylet_address:
            # Restartable kill: the worker dies, the failure path restarts it.
            raylet = self.pool.stub(rec.raylet_address, rgrpc.RayletServiceStub)
            await _quiet(raylet.KillWorker(rpb.KillWorkerRequest(worker_id=rec.worker_id, force=True,
                                                                  reason="killed by jray.kill(no_restart=False)")))
        return gpb.KillActorReply()

    async def ReportWorkerFailure(self, request: gpb.ReportWorkerFailureRequest, context: Any) -> gpb.ReportWorkerFailureReply:
        aid = request.actor_id or self.actors.by_worker.get(request.worker_id, b"")
        rec = self.actors.actors.get(aid) if aid else None
        if rec is not None and (not request.worker_id or rec.worker_id == request.worker_id or request.intentional):
            self._actor_failed(rec, request.reason or "its worker process died", request.intentional)
        if request.worker_id and not request.intentional:
            self._worker_died(request.worker_id, request.reason or "its process died")
        return gpb.ReportWorkerFailureReply()

    # -- placement groups ------------------------------------------------------
    async def CreatePlacementGroup(self, request: gpb.CreatePlacementGroupRequest,
                                   context: Any) -> gpb.CreatePlacementGroupReply:
        error = self.pgs.create(request.group)
        return gpb.CreatePlacementGroupReply(ok=not error, error=error)

    async def RemovePlacementGroup(self, request: gpb.RemovePlacementGroupRequest,
                                   context: Any) -> gpb.RemovePlacementGroupReply:
        before = set(self._kills)
        found = self.pgs.remove(request.placement_group_id)
        # The group's actors are dead when the call returns (a call made right
        # after it fails with ActorDiedError, never reaches a live actor).
        kills = self._kills - before
        if kills:
            await asyncio.wait(kills, timeout=5)
        return gpb.RemovePlacementGroupReply(found=found)

    async def GetPlacementGroup(self, request: gpb.GetPlacementGroupRequest,
                                context: Any) -> gpb.GetPlacementGroupReply:
        rec = self.pgs.lookup(request)
        if rec is None:
            return gpb.GetPlacementGroupReply(found=False)
        if request.wait_ready and request.timeout > 0:
            await self.pgs.table.wait_settled(rec, request.timeout)
        return gpb.GetPlacementGroupReply(found=True, group=rec.info)

    async def ListPlacementGroups(self, request: Any, context: Any) -> gpb.ListPlacementGroupsReply:
        return gpb.ListPlacementGroupsReply(groups=[r.info for r in self.pgs.table.groups.values()])

    # -- task events -----------------------------------------------------------
    async def GetClusterResourceState(self, request: Any, context: Any) -> gpb.GetClusterResourceStateReply:
        return cluster_resource_state(self.nodes.values(), self.actors.actors.values(), self.pgs.table.groups.values())

    async def AddTaskEvents(self, request: gpb.AddTaskEventsRequest, context: Any) -> gpb.AddTaskEventsReply:
        self.task_table.add(request.events)
        for ev in request.events:  # an actor's pid comes with its creation task's RUNNING event
            if ev.pid and ev.type == "ACTOR_CREATION_TASK" and (ev.state == "RUNNING" or "RUNNING" in ev.state_times):
                rec = self.actors.actors.get(ev.actor_id)
                if rec is not None and rec.worker_id == ev.worker_id:
                    rec.info.pid = ev.pid
        return gpb.AddTaskEventsReply()

    async def GetTaskEvents(self, request: gpb.GetTaskEventsRequest, context: Any) -> gpb.GetTaskEventsReply:
        t = self.task_table
        reply = gpb.GetTaskEventsReply(dropped=t.dropped, total=len(t.records), seq=t.seq, state_counts=t.counts())
        if request.counts_only:
            return reply
        if request.since:
            events = t.changed_since(request.since, request.job_id)
            reply.events.extend(events[-request.limit:] if request.limit else events)
        else:
            reply.events.extend(t.query(request.job_id, request.limit))
        return reply


async def _quiet(coro: Any) -> None:
    try:
        await coro
    except grpc.RpcError:
        pass


def overdue_nodes(nodes: dict[bytes, Any], last_seen: dict[bytes, float], now: float,
                  threshold: float) -> list[bytes]:
    """The live nodes whose last heartbeat is more than ``threshold`` s old
    (a node never heard from counts from ``now``: it just registered)."""
    return [nid for nid, node in nodes.items() if node.alive and now - last_seen.get(nid, now) > threshold]

