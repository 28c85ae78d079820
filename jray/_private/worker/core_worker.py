"""The CoreWorker: the engine inside every driver and worker process.

It is a composition of parts, each owning its state (see the README's
architecture section for the picture):

- ``LoopThread`` (``event_loop.py``): the asyncio loop in a background
  thread (so it works inside a Jupyter kernel that already runs its own
  loop) and the sync facade user threads call through;
- ``Identity`` (``identity.py``): this process's address on the wire;
- ``ReferenceCounter`` (``reference_counter.py``) and ``ObjectTable``
  (``object_table.py``): what is referenced, what is ready, get/wait;
- ``Borrowing`` (``borrowing.py``): registrations with other owners;
- ``StoreClient`` (``store_client.py``): the node's shared-memory store;
- ``SubmissionCore`` (``submission.py``) under the thin ``TaskSubmitter``
  and ``ActorSubmitter``, which push through ``transport.PushClients``;
- in worker processes, the ``Executor`` runs what is pushed here.

This class connects them to the cluster (the gRPC server, the GCS and
raylet stubs, the direct push server), hands each the callables it needs,
and keeps the facade the rest of jray calls (``put``/``get``/``wait``, the
submitters, ``export``/``load_function``).

Ownership: the process that creates an object (``put`` or submitting a
task) owns it: it keeps its value (small) or location (large), answers
borrowers' ``GetObjectStatus`` calls, and frees it when the reference
counter says nobody holds it any more.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import logging
import os
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import grpc

from jray import exceptions
from jray._private import config, direct, gcs_client, rpc, serialization, tls
from jray._private.ids import new_task_id, object_id_for, random_id
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import core_worker_pb2 as wpb
from jray._private.protocol import core_worker_pb2_grpc as wgrpc
from jray._private.protocol import gcs_pb2 as gpb
from jray._private.protocol import gcs_pb2_grpc as ggrpc
from jray._private.protocol import raylet_pb2 as rpb
from jray._private.protocol import raylet_pb2_grpc as rgrpc
from jray._private.transport import PushClients
from jray._private.worker import global_state
from jray._private.worker.actor_submitter import ActorSubmitter
from jray._private.worker.borrowing import Borrowing
from jray._private.worker.event_loop import LoopThread
from jray._private.worker.identity import Identity
from jray._private.worker.object_table import Deps, ObjectTable, OwnerGone, owner_proto
from jray._private.worker.reference_counter import ReferenceCounter
from jray._private.worker.store_client import StoreClient
from jray._private.worker.submission import SubmissionCore
from jray._private.worker.task_events import TaskEventBuffer
from jray._private.worker.task_submitter import TaskSubmitter

logger = logging.getLogger(__name__)
T = TypeVar("T")


async def _refuses(address: str) -> bool:
    """Whether ``HOST:PORT`` refuses a TCP connection (nothing listens there)."""
    host, _, port = address.rpartition(":")
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port)), 1.0)
    except ConnectionRefusedError:
        return True
    except (OSError, ValueError, asyncio.TimeoutError):
        return False
    writer.close()
    return False

# The spec of the task running in this thread / asyncio task (None in a driver).
current_task: contextvars.ContextVar[Any] = contextvars.ContextVar("jray_current_task", default=None)

# Kept for importers of the old private names.
_owner_proto = owner_proto


class CoreWorker:
    def __init__(
        self,
        *,
        is_driver: bool,
        gcs_address: str,
        raylet_address: str,
        token: str,
        node_id: bytes,
        ip: str = "127.0.0.1",
        job_id: bytes = b"",
        namespace: str = "",
        log_to_driver: bool = True,
        store_path: str = "",
        client: bool = False,
    ) -> None:
        self.is_driver = is_driver
        # A client: a driver on a machine with no node of the cluster. It
        # registers with no raylet; its objects live in its home node's store
        # (``raylet_address``), reached over the network (store_client.py).
        self.client = client
        self.gcs_address = gcs_address
        self.raylet_address = raylet_address
        self.token = token
        self.job_id = job_id
        self.namespace = namespace
        self.log_to_driver = log_to_driver
        self.me = Identity(random_id(16), ip, node_id)
        self.store_path = store_path
        self.direct_server: Any = None
        self.server: Any = None  # gRPC: a driver's from the start, a worker's when first asked for
        self._grpc_started: asyncio.Future[int] | None = None
        self.tunnel: Any = None  # a client's way in (_private/tunnel.py)
        self.host_ip = ip  # this machine's address (a client's ``me.ip`` becomes its tunnel's)
        self.shutting_down = False
        # A driver whose cluster is gone (see _cluster_watch_loop): what it
        # waits on fails with this, and it disconnects itself.
        self.lost: exceptions.ClusterLostError | None = None
        self._probe_now: asyncio.Event | None = None
        self._exported: set[str] = set()
        self._functions: dict[str, Any] = {}
        self._node_cache: dict[bytes, tuple[str, int]] = {}  # node id -> raylet address
        self._dead_nodes: set[bytes] | None = None  # handled deaths; None until the first watch
        self._blocked_seq = 0
        self.executor: Any = None  # set in worker processes
        self.log_sink: Callable[[wpb.LogBatch], None] | None = None
        self.default_runtime_env: dict[str, Any] | None = None  # the job's, resolved (drivers)
        self.default_runtime_env_json = ""
        self.default_actor_lifetime: str | None = None  # JobConfig(default_actor_lifetime=...) (drivers)
        self.root_task_override: bytes = b""
        self._events_flusher: asyncio.Task | None = None
        self._borrower_prober: asyncio.Task | None = None
        self._driver_liveness: asyncio.Task | None = None
        self._cluster_watch: asyncio.Task | None = None
        self._node_watch: asyncio.Task | None = None
        self._metrics_reporter: asyncio.Task | None = None
        # Non-detached actors this process created: they die with it (the GCS
        # kills them), so a worker that owns any is not reaped as idle.
        self.owned_actors: set[bytes] = set()
        self.blocked_tasks: set[bytes] = set()  # running tasks that waited in get/wait

        # The parts, each given what it needs.
        self.lt = LoopThread()
        self.loop = self.lt.loop
        self.pool: rpc.ChannelPool = rpc.ChannelPool(token)
        self.pushes = PushClients(self.pool, token)
        self.refs = ReferenceCounter(self._on_free, self._on_borrow)
        self.refs.on_deferred = self._schedule_drain
        closing: Callable[[], bool] = lambda: self.shutting_down  # noqa: E731
        self.store = StoreClient(self.lt, self.me, lambda: self.raylet, self._raylet_of, closing,
                                 raylet_at=lambda address: self.pool.stub(address, rgrpc.RayletServiceStub))
        self.table = ObjectTable(self.lt, self.refs, self.me, Deps(
            ask_owner=self._ask_owner, read_store=self.store.read, free_in_store=self._free_in_store,
            release_hand_off=self._release_hand_off, notify_blocked=self._notify_blocked,
            on_interrupt=lambda refs: self.on_interrupt(refs), prefetch_store=self.store.prefetch,
            unpin_unread=self.store.unpin_unread))
        self.borrowing = Borrowing(self.lt, self.me, self.refs, self.table, self._worker_stub, self._drop_peer,
                                   closing)
        self.task_events = TaskEventBuffer(self.me, self._send_task_events)
        self.submission = SubmissionCore(self.lt, self.table, self.refs, self.task_events,
                                         self.borrowing.release_hand_off)
        self.task_submitter = TaskSubmitter(self.lt, self.submission, self.table, self.pushes, _Raylets(self),
                                            self.me.worker_id, self._cluster_nodes)
        self.actor_submitter = ActorSubmitter(self.lt, self.submission, self.pushes, self.me.worker_id,
                                              self._watch_actor)
        lineage = self.task_submitter.lineage
        self.table.rebuild = lineage.reconstruct
        self.table.can_rebuild = lineage.can_rebuild

    # -- identity ------------------------------------------------------------
    @property
    def worker_id(self) -> bytes:
        return self.me.worker_id

    @property
    def ip(self) -> str:
        return self.me.ip

    @property
    def port(self) -> int:
        return self.me.port

    @property
    def direct_port(self) -> int:
        return self.me.direct_port

    @property
    def node_id(self) -> bytes:
        return self.me.node_id

    @node_id.setter
    def node_id(self, value: bytes) -> None:
        self.me.node_id = value

    @property
    def address(self) -> cpb.Address:
        return self.me.address

    @property
    def owner_key(self) -> tuple[str, bytes]:
        return self.me.owner_key

    @property
    def arena(self) -> Any:
        return self.store.arena

    @property
    def objects(self) -> dict[bytes, cpb.ReturnObject]:
        return self.table.objects

    @property
    def raylet_direct(self) -> direct.BlockingClient | None:
        """The raylet's direct socket for store calls (None: over gRPC)."""
        return self.store.direct  # type: ignore[no-any-return]

    def current_namespace(self) -> str:
        """The namespace of the job the running task belongs to (a worker's
        own is empty: its tasks carry their job's), else this driver's."""
        spec = current_task.get()
        if spec is not None and spec.namespace:
            return str(spec.namespace)
        return self.namespace

    # -- loop facade ---------------------------------------------------------
    def in_loop_thread(self) -> bool:
        return self.lt.in_loop_thread()

    def run_sync(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return self.lt.run_sync(coro, timeout)

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        self.lt.call_soon(fn, *args)

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        self.lt.post(fn, *args)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        return self.lt.spawn(coro)

    def gcs_sync(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """``run_sync`` of a GCS call: a GCS that does not answer is a
        GcsUnavailableError naming the head, not a raw gRPC error."""
        try:
            return self.run_sync(coro, timeout)
        except grpc.RpcError as e:
            raise rpc.gcs_unavailable(e, self.gcs_address) from None

    # -- start / stop ------------------------------------------------------
    def connect(self) -> None:
        self.run_sync(self._connect(), timeout=config.STARTUP_TIMEOUT)
        global_state.worker = self

    async def _connect(self) -> None:
        # A client listens on loopback only: the cluster reaches it through its tunnel.
        host = "0.0.0.0" if self.ip != "127.0.0.1" and not self.client else "127.0.0.1"
        if not self.is_driver and direct.enabled():  # tasks are pushed here over the direct transport
            # A worker without TLS serves gRPC only when a gRPC client comes:
            # one port, the direct server's, relays it (relay.Relay). Most
            # workers (an actor's, above all) never get one, and starting a
            # gRPC server cost each new worker ~3 ms of CPU and gRPC's threads.
            lazy = tls.current() is None
            self.direct_server = direct.push_server(lambda: self.executor, self.token,
                                                    http2=self._grpc_port if lazy else None)
            self.me.direct_port = await self.direct_server.start(host)
            if lazy:
                self.me.port = self.me.direct_port
        if not self.me.port:
            self.me.port = await self._start_grpc(host)
        # Calls ride over a GCS restart (retried while it is away, GCS_RECONNECT_SECONDS).
        # Channels are opened on first use: an actor that lives for one call may need neither.
        self.gcs: ggrpc.GcsServiceStub = gcs_client.RetryingGcsStub(  # type: ignore[assignment]
            rpc.LazyStub(lambda: self.pool.stub(self.gcs_address, ggrpc.GcsServiceStub)))
        self.raylet: rgrpc.RayletServiceStub = rpc.LazyStub(  # type: ignore[assignment]
            lambda: self.pool.stub(self.raylet_address, rgrpc.RayletServiceStub))
        if self.client:  # no local process for a raylet to watch, no store to map
            host, _, port = self.raylet_address.rpartition(":")
            self.store.remote = (host, int(port))
            self.table.prefetch = False
            # The cluster may not reach this machine (NAT, a firewall): it
            # reaches this process through a port of the home raylet, which
            # relays over a stream this process opened (_private/tunnel.py).
            from jray._private.tunnel import TunnelClient

            raylet = self.raylet
            self.tunnel = TunnelClient(lambda frames: raylet.Tunnel(frames), self.worker_id, self.me.port,
                                       config.DRIVER_TIMEOUT_SECONDS)
            tunnel_port = await self.tunnel.start(timeout=config.STARTUP_TIMEOUT)
            self.me.ip, self.me.port = host, tunnel_port
        else:
            register = rpb.RegisterWorkerRequest(worker_id=self.worker_id, pid=os.getpid(), port=self.port,
                                                 is_driver=self.is_driver, direct_port=self.direct_port)
            raylet_direct = 0 if self.is_driver else int(os.environ.get("JRAY_RAYLET_DIRECT_PORT") or 0)
            if raylet_direct:  # a worker: over the raylet's direct port (its address came with the fork)
                reg = direct.BlockingClient(f"{self.raylet_address.rpartition(':')[0]}:{raylet_direct}",
                                            self.token, timeout=config.STARTUP_TIMEOUT)
                try:  # blocking the loop: nothing else runs on it before the worker is known
                    reply = reg.call("RegisterWorker", register)
                finally:
                    reg.close()
            else:
                reply = await self.raylet.RegisterWorker(register)
            self.me.node_id = reply.node_id
            self.store_path = reply.store_path
            if reply.direct_port:  # put/get talk to the store from the calling thread, no loop hop
                self.store.direct = direct.BlockingClient(
                    f"{self.raylet_address.rpartition(':')[0]}:{reply.direct_port}", self.token)
            if self.store_path:
                from jray._private.object_store import Arena

                self.store.arena = Arena.attach(self.store_path)
        if self.is_driver:
            job = gpb.JobInfo(
                driver=self.address, driver_host=self.host_ip, namespace=self.namespace, start_time=time.time(),
                driver_pid=os.getpid(),
                entrypoint=" ".join(sys.argv)[:200],
            )
            self.job_id = (await self.gcs.AddJob(gpb.AddJobRequest(job=job))).job_id
            self._driver_liveness = self.spawn(self._driver_liveness_loop())
            self._cluster_watch = self.spawn(self._cluster_watch_loop())
            self.ensure_node_watch()
        else:  # a worker watches once it submits work of its own
            self.task_submitter.first_use = self.actor_submitter.first_use = self.ensure_node_watch
        self._events_flusher = self.spawn(self.task_events.flush_loop())
        from jray._private import metrics as _metrics

        # ray.util.metrics: reported once something is recorded
        _metrics.on_first_record = self.start_metrics_reporter
        if _metrics.recorded():
            self.start_metrics_reporter()
        self._borrower_prober = self.spawn(self.borrowing.probe_loop())

    async def _start_grpc(self, host: str) -> int:
        """Serve ``CoreWorkerService`` over gRPC; its port."""
        self.server, port = rpc.make_server(self.token, host)
        from jray._private.worker.servicer import CoreWorkerServicer

        wgrpc.add_CoreWorkerServiceServicer_to_server(CoreWorkerServicer(self), self.server)
        await self.server.start()
        return port

    async def _grpc_port(self) -> int:
        """The loopback port of this worker's gRPC server, started on the
        first gRPC client's arrival (its connections are relayed there)."""
        if self._grpc_started is None:
            self._grpc_started = asyncio.ensure_future(self._start_grpc("127.0.0.1"))
        return await asyncio.shield(self._grpc_started)

    def disconnect(self) -> None:
        if self.shutting_down:
            return
        self.shutting_down = True
        try:
            self.run_sync(self._disconnect(), timeout=10)
        except Exception as e:  # pragma: no cover - the cluster may be gone
            logger.debug("disconnect: %s", e)
        self.lt.stop(error=self.lost)  # a user thread waiting on it gets this (no hang)
        if global_state.worker is self:
            global_state.worker = None

    async def _disconnect(self) -> None:
        await self.task_submitter.shutdown()
        self.actor_submitter.shutdown()
        if self._events_flusher is not None:
            self._events_flusher.cancel()
        if self._borrower_prober is not None:
            self._borrower_prober.cancel()
        if self._cluster_watch is not None:
            self._cluster_watch.cancel()
        if self.lost is None:  # else nobody is there to tell
            await self.task_events.flush()
        if self.is_driver and self.job_id and self.lost is None:
            try:
                await asyncio.wait_for(self.gcs.MarkJobFinished(gpb.MarkJobFinishedRequest(job_id=self.job_id)), 5)
            except Exception:
                pass
        if self._driver_liveness is not None:
            self._driver_liveness.cancel()
        if self._node_watch is not None:
            self._node_watch.cancel()
        if self._metrics_reporter is not None:  # the last values out before leaving
            self._metrics_reporter.cancel()
            from jray._private import metrics as _metrics

            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.report_metrics(_metrics), 2)
            if _metrics.on_first_record == self.start_metrics_reporter:
                _metrics.on_first_record = None
        if self.tunnel is not None:
            await self.tunnel.close()
        if self.server is not None:
            await self.server.stop(grace=0.1)
        if self.direct_server is not None:
            self.direct_server.close()
        self.pushes.close()
        await self.pool.close()
        self.store.close()

    # -- ray.util.metrics -------------------------------------------------------
    def start_metrics_reporter(self) -> None:
        """Report this process's metrics to its raylet every second (any thread)."""
        if self._metrics_reporter is not None or self.shutting_down:
            return
        try:
            on_loop = asyncio.get_running_loop() is self.lt.loop
        except RuntimeError:
            on_loop = False
        if not on_loop:
            self.lt.loop.call_soon_threadsafe(self.start_metrics_reporter)
            return
        self._metrics_reporter = self.lt.spawn(self._metrics_loop())

    async def _metrics_loop(self) -> None:
        from jray._private import metrics as _metrics

        while True:
            await self.report_metrics(_metrics)
            await asyncio.sleep(config.METRICS_REPORT_SECONDS)

    async def report_metrics(self, registry: Any, force: bool = False) -> None:
        points = registry.snapshot(only_if_changed=not force)
        if points is None:
            return
        try:
            await self.raylet.ReportMetrics(rpb.ReportMetricsRequest(worker_id=self.worker_id, points=points),
                                            timeout=5)
        except grpc.RpcError:
            pass  # the next report carries the same totals

    # -- node deaths ---------------------------------------------------------
    def ensure_node_watch(self) -> None:
        """Follow the GCS's node deaths (one stream): the work this process
        owns on a dead node fails over at once."""
        if self._node_watch is not None or self.shutting_down:
            return
        try:
            on_loop = asyncio.get_running_loop() is self.lt.loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._node_watch = self.lt.spawn(self._node_watch_loop())
        else:
            self.lt.loop.call_soon_threadsafe(self.ensure_node_watch)

    async def _node_watch_loop(self) -> None:
        while not self.shutting_down:
            try:
                call = self.gcs.WatchNodes(gpb.WatchNodesRequest())
                await call.wait_for_connection()
                # Deaths declared while no stream was open (a GCS restart, a
                # blip) are in the node table: handle those after subscribing.
                await self._catch_up_node_deaths()
                async for ev in call:
                    if not ev.alive:
                        self._on_node_dead(ev)
            except grpc.RpcError:
                pass
            await asyncio.sleep(1.0)  # the GCS restarted or a blip: watch again

    async def _catch_up_node_deaths(self) -> None:
        reply = await self.gcs.GetAllNodeInfo(gpb.GetAllNodeInfoRequest(), timeout=10)
        dead = [n for n in reply.nodes if not n.alive]
        if self._dead_nodes is None:  # first watch: deaths before this process are history
            self._dead_nodes = {n.node_id for n in dead}
            return
        for n in dead:
            if n.node_id not in self._dead_nodes:
                self._on_node_dead(gpb.NodeEvent(node_id=n.node_id, ip=n.ip, raylet_port=n.raylet_port, alive=False,
                                                 reason="declared dead while the GCS was out of reach"))

    def _on_node_dead(self, ev: gpb.NodeEvent) -> None:
        if self.is_driver and ev.node_id == self.node_id and self._probe_now is not None:
            # This driver's own node: the cluster is likely being stopped.
            # Look now; when it is gone, one line says so, not this one.
            self._probe_now.set()
        if self._dead_nodes is not None:
            if ev.node_id in self._dead_nodes:
                return
            self._dead_nodes.add(ev.node_id)
        retried, failed = self.task_submitter.node_died(ev.node_id, f"{ev.ip}:{ev.raylet_port}")
        restarting, dead = self.actor_submitter.node_died(ev.node_id)
        self._node_cache.pop(ev.node_id, None)

        def n(k: int, what: str) -> str:
            return f"{k} {what}" if k == 1 else f"{k} {what.replace('task', 'tasks').replace('actor', 'actors')}"

        parts = [n(retried, "task retried")]
        if failed:
            parts.append(n(failed, "task failed (no retries left)"))
        parts.append(n(restarting, "actor restarting"))
        if dead:
            parts.append(n(dead, "actor dead (no restarts left)"))
        args = ("node %s (id %s) died: %s; %s", ev.ip, ev.node_id.hex()[:8], ev.reason, ", ".join(parts))
        if self.is_driver and ev.node_id == self.node_id:
            # Its own node: most likely the whole cluster is stopping, which
            # _on_cluster_lost says in one line; this line only if it is not.
            def later() -> None:
                if self.lost is None and not self.shutting_down:
                    logger.warning(*args)

            self.lt.loop.call_later(3.0, later)
            return
        (logger.warning if self.is_driver else logger.info)(*args)

    async def _driver_liveness_loop(self) -> None:
        """A driver's side of the GCS's watch: a stream held open for the
        job's life (its break tells the GCS this process died) and a beat
        every DRIVER_HEARTBEAT_SECONDS (their absence tells it this host
        vanished)."""
        req = gpb.WatchDriverRequest(job_id=self.job_id)
        beat = gpb.DriverHeartbeatRequest(job_id=self.job_id)

        async def hold() -> None:
            async for _ in self.gcs.WatchDriver(req):
                pass

        stream: asyncio.Task | None = None
        try:
            while not self.shutting_down:
                if stream is None or stream.done():  # (re)open: the GCS may have restarted
                    stream = self.spawn(hold())
                try:
                    await self.gcs.DriverHeartbeat(beat, timeout=5)
                except grpc.RpcError:
                    pass
                await asyncio.sleep(config.DRIVER_HEARTBEAT_SECONDS)
        finally:
            if stream is not None:
                stream.cancel()

    async def _cluster_watch_loop(self) -> None:
        """A driver notices its cluster is gone: the GCS's port and its
        home raylet's both refuse connections, twice in a row (a GCS that
        restarts leaves the raylet up; a cut network times out, it does not
        refuse). Then ``_on_cluster_lost``: waits fail at once with one
        error, not after their timeout with a retry logged per second."""
        self._probe_now = asyncio.Event()
        refused_in_a_row = 0
        while not self.shutting_down and self.lost is None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._probe_now.wait(), config.DRIVER_HEARTBEAT_SECONDS)
            self._probe_now.clear()
            if await _refuses(self.gcs_address) and await _refuses(self.raylet_address):
                refused_in_a_row += 1
                if refused_in_a_row >= 2:
                    self._on_cluster_lost("its head and this driver's node stopped")
                    return
                await asyncio.sleep(0.3)
                self._probe_now.set()
            else:
                refused_in_a_row = 0

    def _on_cluster_lost(self, detail: str) -> None:
        """Loop thread: fail every object this driver waits for with one
        ClusterLostError and disconnect (in a thread: disconnect stops this
        loop), so the next ``jray.init()`` or API call connects anew."""
        if self.lost is not None or self.shutting_down:
            return
        err = exceptions.ClusterLostError(self.gcs_address, detail)
        self.lost = err
        waited_on = any(self.table.waiters.values())
        data = serialization.serialize(err, error=True).to_bytes()
        for oid in list(self.table.pending_owned):
            self.table.set_error(oid, data)
        global_state.lost = err
        if not waited_on:  # a get in progress raises it; else say it once here
            logger.warning("%s", err)
        import threading

        threading.Thread(target=self._drop_lost_cluster, name="jray-cluster-lost", daemon=True).start()

    def _drop_lost_cluster(self) -> None:
        self.disconnect()

    # -- wiring: what the parts are given ----------------------------------------
    def _worker_stub(self, address: str) -> Any:
        return self.pool.stub(address, wgrpc.CoreWorkerServiceStub)

    def _drop_peer(self, address: str) -> None:
        self.pushes.drop(address, rpc.DROP_GRACE_SECONDS)

    async def _ask_owner(self, address: str, object_id: bytes, timeout: float,
                         lost_node_id: bytes = b"") -> wpb.GetObjectStatusReply:
        try:
            return await self._worker_stub(address).GetObjectStatus(
                wpb.GetObjectStatusRequest(object_id=object_id, timeout=timeout, lost_node_id=lost_node_id))
        except grpc.RpcError as e:
            if rpc.is_connection_error(e):
                raise OwnerGone(address) from None
            raise

    async def _watch_actor(self, actor_id: bytes, after_version: int, timeout: float) -> gpb.GetActorInfoReply:
        return await self.gcs.GetActorInfo(
            gpb.GetActorInfoRequest(actor_id=actor_id, after_version=after_version, timeout=timeout))

    async def _send_task_events(self, request: bytes) -> None:
        """A serialized AddTaskEventsRequest (TaskEventBuffer.take_bytes), sent as it is."""
        await self.pool.stub(self.gcs_address, _RawTaskEventsStub).AddTaskEvents(request, timeout=5)

    async def _cluster_nodes(self) -> list[gpb.NodeInfo]:
        return list((await self.gcs.GetAllNodeInfo(gpb.GetAllNodeInfoRequest())).nodes)

    def _free_in_store(self, ret: cpb.ReturnObject) -> None:
        if self.shutting_down:
            return

        async def free() -> None:
            try:
                await self.raylet.FreeObjects(rpb.FreeObjectsRequest(object_ids=[ret.object_id], broadcast=True))
            except grpc.RpcError:
                pass

        self.spawn(free())

    def _release_hand_off(self, ret: cpb.ReturnObject) -> None:
        self.borrowing.release_hand_off(ret)

    def _raylet_of(self, node_id: bytes) -> tuple[str, int]:
        hit = self._node_cache.get(node_id)
        if hit is None:
            async def nodes() -> Any:
                return await self.gcs.GetAllNodeInfo(gpb.GetAllNodeInfoRequest())

            for n in self.run_sync(nodes()).nodes:
                self._node_cache[n.node_id] = (n.ip, n.raylet_port)
            hit = self._node_cache.get(node_id)
            if hit is None:
                raise exceptions.ObjectLostError("", f"node {node_id.hex()} holding the object is unknown")
        return hit

    def _notify_blocked(self, blocked: bool) -> bool:
        if self.is_driver:
            return False
        spec = current_task.get()
        if spec is None:
            return False
        if blocked:
            self.blocked_tasks.add(spec.task_id)  # its reply says so (executor)
        # Fire and forget (ordered by seq at the raylet): a get in a task does
        # not wait two extra round trips.
        self._blocked_seq += 1
        req = rpb.WorkerBlockedRequest(worker_id=self.worker_id, blocked=blocked, seq=self._blocked_seq)
        if self.store.direct is not None:  # from this thread, no loop hop (seq orders it against other threads')
            try:
                self.store.direct.post("WorkerBlocked", req)
            except direct.DirectError:
                pass  # the raylet is gone: nothing to lend the CPU to
            return True

        async def send() -> None:
            try:
                await self.raylet.WorkerBlocked(req)
            except grpc.RpcError:
                pass

        self.post(lambda: self.spawn(send()))
        return True

    # -- reference counting callbacks ---------------------------------------
    def _schedule_drain(self) -> None:
        """Refs were dropped (``ObjectRef.__del__``: any thread, any moment):
        decrement them on the loop, later, never inside the ``__del__``.
        From a user thread, through the loop's inbox: the drop at the end of
        a synchronous call shares its wake-up with the next call's submit
        (a loop wake-up a call fewer) instead of waking the loop on its own."""
        try:
            if self.lt.in_loop_thread():
                self.loop.call_soon(self.refs.drain)
            else:
                self.lt.post(self.refs.drain)
        except RuntimeError:  # loop closed at shutdown
            pass

    def _on_free(self, object_id: bytes) -> None:
        self.call_soon(self.table.free_owned, object_id)

    def _on_borrow(self, object_id: bytes, owner: Any, add: bool) -> None:
        self.borrowing.on_borrow(object_id, owner, add)

    def owns_objects(self) -> bool:
        """Whether objects this process owns are still referenced (by it or
        by borrowers), or it created actors that live on: it must not be
        reaped as an idle worker then (they would die with it)."""
        return self.table.owns_objects() or bool(self.owned_actors)

    def note_deserialized_ref(self, object_id: bytes, owner: Any) -> None:
        """A ref arrived from another process (ObjectRef.__init__ counts it)."""

    # -- borrowing facade (the executor and the servicer) ---------------------------
    def hand_off(self, refs: Sequence[Any], caller: cpb.Address) -> None:
        self.borrowing.hand_off(refs, caller)

    async def flush_borrows(self) -> None:
        await self.borrowing.flush()

    def note_borrower(self, borrower_id: bytes, address: cpb.Address) -> None:
        self.borrowing.note_borrower(borrower_id, address)

    def release_hand_off(self, ret: cpb.ReturnObject) -> None:
        self.borrowing.release_hand_off(ret)

    # -- objects: put ------------------------------------------------------
    def new_put_id(self) -> bytes:
        return object_id_for(new_task_id(), 0)

    def put(self, value: Any, *, _owner: Any = None) -> Any:
        from jray._private.object_ref import ObjectRef

        if isinstance(value, ObjectRef):
            raise TypeError("Calling 'put' on an ObjectRef is not allowed. If you really want to do this, "
                            "you can wrap the ObjectRef in a list and call 'put' on it.")
        return self.put_serialized(serialization.serialize(value))

    def put_serialized(self, ser: serialization.SerializedObject) -> Any:
        from jray._private.object_ref import ObjectRef

        object_id = self.new_put_id()
        ret = self.store_serialized(object_id, ser)
        self.table.add_owned(object_id, ret)
        if ser.nested_refs:
            self.refs.set_contained(object_id, [r.binary() for r in ser.nested_refs],
                                    [r.owner_address() for r in ser.nested_refs])
        return ObjectRef(object_id, self.owner_key)

    def store_serialized(self, object_id: bytes, ser: serialization.SerializedObject,
                         owner: cpb.Address | None = None) -> cpb.ReturnObject:
        """Keep a value inline when small, else write it into the node's store
        (recorded there as ``owner``'s: a task's caller for its returns, else us)."""
        size = ser.total_size
        nested = [cpb.ObjectRefInfo(object_id=r.binary(), owner=owner_proto(r.owner_address())) for r in ser.nested_refs]
        is_error = bool(ser.flags & serialization.FLAG_ERROR)
        if size <= config.MAX_INLINE_BYTES or not self.store.can_store:
            return cpb.ReturnObject(object_id=object_id, data=ser.to_bytes(), size=size, nested_refs=nested,
                                    is_error=is_error)
        self.store.write(object_id, ser, owner)
        return cpb.ReturnObject(object_id=object_id, in_store=True, node_id=self.node_id, size=size,
                                nested_refs=nested, is_error=is_error)

    # -- objects: readiness, get, wait (the object table) ------------------------------
    def set_ready(self, ret: cpb.ReturnObject) -> None:
        self.table.set_ready(ret)

    def add_pending(self, object_id: bytes) -> None:
        self.table.add_pending(object_id)

    async def wait_local_ready(self, object_id: bytes) -> None:
        await self.table.wait_local_ready(object_id)

    async def _ensure_ready(self, ref: Any) -> None:
        """Loop thread: wait until ``ref``'s value or location is known here."""
        await self.table.ensure_ready(ref.binary(), ref.owner_address())

    def get(self, refs: Sequence[Any], timeout: float | None) -> list[Any]:
        return self.table.get(refs, timeout)

    def wait(self, refs: Sequence[Any], num_returns: int, timeout: float | None, fetch_local: bool) -> tuple[list, list]:
        return self.table.wait(refs, num_returns, timeout, fetch_local)

    def _value_of(self, ref: Any) -> Any:
        return self.table.value_of(ref)

    def ref_future(self, ref: Any) -> concurrent.futures.Future:
        return self.table.ref_future(ref)

    def on_interrupt(self, refs: Sequence[Any]) -> None:
        """Hook for the notebook layer: Ctrl-C while waiting on ``refs``."""

    # -- functions ---------------------------------------------------------
    def export(self, key: str, pickled: bytes) -> None:
        if key in self._exported:
            return

        async def put() -> None:
            await self.gcs.KVPut(gpb.KVPutRequest(ns="fun", key=key.encode(), value=pickled, overwrite=False))

        self.gcs_sync(put())
        self._exported.add(key)

    def load_function(self, key: str, pickled: bytes = b"") -> Any:
        """The function or class exported under ``key``: from ``pickled``
        where the task carried it, else from the GCS (once per process)."""
        fn = self._functions.get(key)
        if fn is None and pickled:
            import cloudpickle

            fn = self._functions[key] = cloudpickle.loads(pickled)
        if fn is None:
            async def get() -> Any:
                return await self.gcs.KVGet(gpb.KVGetRequest(ns="fun", key=key.encode()))

            reply = self.gcs_sync(get())
            if not reply.found:
                raise exceptions.RaySystemError(f"function {key} was not exported to the GCS")
            import cloudpickle

            fn = self._functions[key] = cloudpickle.loads(reply.value)
        return fn

    # -- streaming generators ------------------------------------------------
    def on_generator_item(self, msg: wpb.GeneratorItem) -> None:
        self.submission.on_generator_item(msg)

    def next_generator_item(self, task_id: bytes, index: int, timeout: float | None) -> Any:
        fut = self.next_generator_item_future(task_id, index)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            raise exceptions.GetTimeoutError("timed out waiting for the generator's next item") from None

    def generator_item_ready_future(self, task_id: bytes, index: int) -> concurrent.futures.Future:
        """Done when item ``index`` exists or the generator ended (no ref is
        made: a ref made and dropped here would free the item)."""
        async def run() -> bool:
            return await self.submission.generator_item(task_id, index) is not None

        return asyncio.run_coroutine_threadsafe(run(), self.loop)

    def next_generator_item_future(self, task_id: bytes, index: int) -> concurrent.futures.Future:
        async def run() -> Any:
            oid = await self.submission.generator_item(task_id, index)
            if oid is None:
                return None
            from jray._private.object_ref import ObjectRef

            return ObjectRef(oid, self.owner_key)

        return asyncio.run_coroutine_threadsafe(run(), self.loop)


class _Raylets:
    """The task submitter's raylets: this node's, and others' for spillback."""

    def __init__(self, w: CoreWorker) -> None:
        self._w = w

    def local(self) -> Any:
        return self._w.raylet

    def at(self, address: str) -> Any:
        return self._w.pool.stub(address, rgrpc.RayletServiceStub)


class _RawTaskEventsStub:
    """``GcsService.AddTaskEvents`` taking the request already serialized
    (TaskEventBuffer.take_bytes encodes it by hand: parsing it into a proto
    for the generated stub to serialize again cost ~1 us a task)."""

    def __init__(self, channel: Any) -> None:
        self.AddTaskEvents = channel.unary_unary("/jray.protocol.GcsService/AddTaskEvents",
                                                 response_deserializer=gpb.AddTaskEventsReply.FromString)
