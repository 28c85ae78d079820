"""Owner-side submission of normal tasks: dependency resolution, worker
leases from the raylet (with spillback), direct pushes, retries, cancel,
and the items of streaming generators.

Tasks are grouped by *scheduling key* (resource shape, strategy, runtime
env). Each key has a queue, the workers leased for it and the lease requests
in flight. A leased worker takes several tasks in a row (pipelined) and is
returned to its raylet after it has been idle for a short while.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc

from jray import exceptions
from jray._private import config, rpc
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import core_worker_pb2 as wpb
from jray._private.protocol import gcs_pb2 as gpb
from jray._private.protocol import raylet_pb2 as rpb
from jray._private.resources import fits
from jray._private.transport import PushClients, TransportError
from jray._private.worker.event_loop import LoopThread
from jray._private.worker.lineage import Lineage
from jray._private.worker.object_table import ObjectTable, owner_key
from jray._private.worker.submission import PendingCall, SubmissionCore

logger = logging.getLogger("jray")

# Kept for readers of the old name: a pending task is a PendingCall.
PendingTask = PendingCall
# While tasks wait beyond the lease requests in flight, the owner tells its
# raylet how many, by shape, this often (the autoscaler's demand; Ray's
# ReportWorkerBacklog). Tasks pinned to a node or a placement group are not
# demand for new nodes.
BACKLOG_REPORT_SECONDS = 1.0
_BACKLOG_KINDS = (cpb.SchedulingStrategy.DEFAULT, cpb.SchedulingStrategy.SPREAD)
RUN_FADE = 0.9  # how much of a function's longest run is remembered at each new run
LATENCY_HORIZON_S = 10.0  # how long a lease's least push-to-reply latency is remembered
# Tasks queued behind this many in their queue hold their spec serialized
# until pushed (PendingCall.stow): ~0.3 KB instead of ~2.5-3 KB each. The
# head of the queue, which the next pushes take, stays parsed.
STOW_BEYOND = 1024


class Raylets(Protocol):
    """Where leases come from: this node's raylet, and others' (spillback).
    Each is a raylet stub (``RequestWorkerLease``, ``ReturnWorker``,
    ``KillWorker``)."""

    def local(self) -> Any: ...

    def at(self, address: str) -> Any: ...


@dataclass(eq=False)
class Lease:
    address: str
    worker_id: bytes
    lease_id: bytes
    raylet: Any
    key: tuple
    gpu_ids: list[int] = field(default_factory=list)
    in_flight: int = 0
    dead: bool = False
    idle_timer: asyncio.TimerHandle | None = None
    used: bool = False  # ran a task: worth holding briefly for the next one
    replies: int = 0  # replies received (a deep push with none after a while was mispredicted)
    direct_port: int = 0  # the worker's direct transport (jray._private.direct); 0: gRPC
    node_id: bytes = b""  # the worker's node
    # In-flight tasks of functions not known to be short when pushed (task id
    # -> function key): only more tasks of the same function queue behind
    # them on this worker; another function's task could wait there for as
    # long as they run while other workers idle.
    unsure: dict[bytes, str] = field(default_factory=dict)
    # How deep short tasks go on this worker: enough to keep it busy over
    # the round trip to it (a far node needs more than the default).
    # ``latency``: the least time from a push to its reply, less the task's
    # run, over the last LATENCY_HORIZON_S or so (two buckets: the least of
    # the current one and the one before); ``gap``: the mean time between
    # replies while more were in flight (what one task costs the worker,
    # idle time included, so a window too shallow to hide the latency
    # measures a wide gap and grows).
    window: int = config.MAX_TASKS_IN_FLIGHT_PER_WORKER
    latency_before: float = float("inf")
    latency_now: float = float("inf")
    bucket_start: float = 0.0
    gap: float = 0.0
    last_reply: float = 0.0

    @property
    def latency(self) -> float:
        return min(self.latency_before, self.latency_now)

    def measure(self, now: float, pushed_at: float, run_seconds: float, more_in_flight: bool) -> None:
        """A reply came at ``now``: update the latency, the gap and the window."""
        if pushed_at:
            if now - self.bucket_start > LATENCY_HORIZON_S / 2:  # forget old minima: the path may be slower now
                self.latency_before, self.latency_now, self.bucket_start = self.latency_now, float("inf"), now
            self.latency_now = min(self.latency_now, max(0.0, now - pushed_at - run_seconds))
        if more_in_flight and self.last_reply:
            sample = now - self.last_reply
            self.gap = sample if not self.gap else self.gap + (sample - self.gap) * 0.1
        self.last_reply = now if more_in_flight else 0.0
        latency = self.latency
        if self.gap > 0 and latency != float("inf"):
            want = int(2 * latency / self.gap) + 2
            self.window = max(config.MAX_TASKS_IN_FLIGHT_PER_WORKER, min(config.MAX_TASKS_IN_FLIGHT_FAR, want))


@dataclass(eq=False)
class KeyQueue:
    tasks: collections.deque = field(default_factory=collections.deque)
    leases: list[Lease] = field(default_factory=list)
    requests_in_flight: int = 0
    warned: bool = False
    pump_scheduled: bool = False


class TaskSubmitter:
    def __init__(self, lt: LoopThread, core: SubmissionCore, table: ObjectTable, pushes: PushClients,
                 raylets: Raylets, owner_id: bytes,
                 cluster_nodes: Callable[[], Awaitable[list[gpb.NodeInfo]]] | None = None) -> None:
        self.lt = lt
        self.core = core
        self.table = table
        self.pushes = pushes
        self.raylets = raylets
        self.owner_id = owner_id
        self.cluster_nodes = cluster_nodes
        self.queues: dict[tuple, KeyQueue] = {}
        self._to_pump: list[tuple[tuple, KeyQueue]] = []
        self._pump_soon = False
        # Function key -> (tasks seen, longest run in seconds, fading), from replies.
        self.run_seconds: dict[str, tuple[int, float]] = {}
        self.tasks: dict[bytes, PendingCall] = {}
        self._closed = False
        self.first_use: Callable[[], None] | None = None
        self.lineage = Lineage(table, self.resubmit)  # how to make this process's task outputs again
        self.dead_raylets: set[str] = set()  # raylets of nodes the GCS declared dead
        self._asking: dict[asyncio.Future, str] = {}  # lease requests in flight -> raylet ("": local)
        self._backlog_reports: asyncio.Task | None = None
        # Submissions posted in one burst are queued without pushing, then
        # pushed together at the burst's end (in that loop iteration: a
        # single sync call waits for no other).
        lt.add_burst_hooks(self._burst_start, self.pump_pending)

    def _burst_start(self) -> None:
        self._pump_soon = True  # pumped at the burst's end, not in a later iteration

    # -- entry point (user thread) -----------------------------------------
    def submit(self, spec: cpb.TaskSpec, arg_refs: Sequence[tuple[bytes, Any]],
               desc: bytes | None = None) -> Sequence[bytes]:
        task = self.core.start(spec, arg_refs, spec.max_retries, desc)
        self.lt.post(self._start, task)
        return task.return_ids

    def resubmit(self, spec: cpb.TaskSpec, return_ids: Sequence[bytes], retries_left: int) -> None:
        """Loop thread: run a finished task again to rebuild its lost outputs
        (lineage.py; they are pending again): its ref arguments held until it
        settles, resolved again (a lost one is rebuilt first), then queued."""
        arg_refs = tuple((a.ref.object_id, owner_key(a.ref.owner)) for a in spec.args if a.HasField("ref"))
        for oid, owner in arg_refs:
            self.core.refs.incr(oid, owner)
        spec.reconstruction = True
        task = PendingCall(spec, tuple(return_ids), arg_refs, retries_left, resolved=not arg_refs)
        self._start(task)

    def _start(self, task: PendingCall) -> None:
        self.tasks[task.task_id] = task
        task.registry = self.tasks
        events = self.core.events
        events.submitted(task, task.spec)
        if any(a.HasField("ref") for a in task.spec.args):
            events.record(task.spec, "PENDING_ARGS", "", None, task.desc)
            self.lt.spawn(self._resolve_then_queue(task))
        else:
            self._enqueue(task)

    async def _resolve_then_queue(self, task: PendingCall) -> None:
        """Wait for ref arguments (the shared core inlines small ones)."""
        if not await self.core.resolve(task):
            return
        if task.cancelled:
            self._fail(task, exceptions.TaskCancelledError(task.task_id.hex()))
            return
        self._enqueue(task)

    # -- queues and leases ---------------------------------------------------
    def _key(self, spec: cpb.TaskSpec) -> tuple:
        s = spec.scheduling
        return (tuple(sorted(spec.resources.items())), s.kind, s.node_id, s.soft, s.placement_group_id,
                s.bundle_index, spec.runtime_env)


    def _enqueue(self, task: PendingCall) -> None:
        if self.first_use is not None:  # the owner starts watching node deaths
            self.first_use()
            self.first_use = None
        key = self._key(task.spec)
        q = self.queues.get(key)
        if q is None:
            q = self.queues[key] = KeyQueue()
        q.tasks.append(task)
        if len(q.tasks) > STOW_BEYOND:
            task.stow()  # deep in the queue: its spec as bytes until it is pushed
        if not q.pump_scheduled:
            # Pump once after this burst of submissions (posted together and
            # enqueued in one loop callback, which ends with pump_pending):
            # they go out as one batch. call_soon covers other callers.
            q.pump_scheduled = True
            self._to_pump.append((key, q))
            if not self._pump_soon:
                self._pump_soon = True
                self.lt.loop.call_soon(self.pump_pending)

    def pump_pending(self) -> None:
        """Loop thread: pump the queues that got tasks since the last call."""
        self._pump_soon = False
        todo, self._to_pump = self._to_pump, []
        for key, q in todo:
            q.pump_scheduled = False
            self._pump(key, q)

    def _arg_node(self, spec: cpb.TaskSpec) -> bytes:
        """The node whose store holds most of ``spec``'s argument bytes, when
        that is at least LOCALITY_MIN_BYTES (b"" otherwise: no preference)."""
        by_node: dict[bytes, int] = {}
        objects = self.table.objects
        for arg in spec.args:
            if arg.HasField("ref"):
                loc = arg.location if arg.HasField("location") else objects.get(arg.ref.object_id)
                if loc is not None and loc.in_store and loc.node_id:
                    by_node[loc.node_id] = by_node.get(loc.node_id, 0) + loc.size
        if not by_node:
            return b""
        node, size = max(by_node.items(), key=lambda kv: kv[1])
        return node if size >= config.LOCALITY_MIN_BYTES else b""

    def _short_tasks(self, q: KeyQueue) -> bool:
        """Whether the tasks at the head of the queue are of functions that
        never ran longer than SHORT_TASK_SECONDS in several tries (unknown
        ones, or any that once ran long, count as long: a long task pushed
        behind others on one worker would wait for them)."""
        for i, task in enumerate(q.tasks):
            if i == 16:
                break
            if not self._known_short(task):
                return False
        return True

    def _known_short(self, task: PendingCall) -> bool:
        n, longest = self.run_seconds.get(task.fn_key, (0, 0.0))
        return n >= 3 and longest <= config.SHORT_TASK_SECONDS

    def _pump(self, key: tuple, q: KeyQueue) -> None:
        if self._closed:
            return
        try:
            self._pump_queue(key, q)
        finally:
            if (self._backlog_reports is None and len(q.tasks) > q.requests_in_flight
                    and key[1] in _BACKLOG_KINDS and not self._closed):
                self._backlog_reports = self.lt.spawn(self._report_backlog())

    def _backlogs(self) -> list[cpb.ResourceDemand]:
        """Tasks queued beyond the lease requests in flight, by shape."""
        counts: dict[tuple, int] = {}
        for key, q in self.queues.items():
            n = len(q.tasks) - q.requests_in_flight
            if n > 0 and key[1] in _BACKLOG_KINDS:
                counts[key[0]] = counts.get(key[0], 0) + n
        return [cpb.ResourceDemand(shape=dict(shape), backlog_size=n) for shape, n in counts.items()]

    async def _report_backlog(self) -> None:
        """Report the backlog to the local raylet every BACKLOG_REPORT_SECONDS
        while there is one; the last report is the empty one that clears it."""
        try:
            while not self._closed:
                backlog = self._backlogs()
                report = getattr(self.raylets.local(), "ReportWorkerBacklog", None)
                if report is None:  # a raylet without it (the unit tests' fakes)
                    return
                try:
                    await report(rpb.ReportWorkerBacklogRequest(worker_id=self.owner_id, backlog=backlog), timeout=5)
                except (grpc.RpcError, TransportError) as e:
                    logger.debug("backlog report failed: %s", _details(e))
                if not backlog:
                    return
                await asyncio.sleep(BACKLOG_REPORT_SECONDS)
        finally:
            self._backlog_reports = None

    def _pump_queue(self, key: tuple, q: KeyQueue) -> None:
        # SPREAD: each task runs on a lease of its own, asked for it (the
        # raylets take the nodes in turn); a lease that ran one goes back, so
        # quick tasks do not all pile onto the first worker granted.
        spread = key[1] == cpb.SchedulingStrategy.SPREAD
        if spread:
            while q.tasks and q.requests_in_flight < config.MAX_PENDING_LEASE_REQUESTS:
                task = q.tasks.popleft()
                if task.cancelled:
                    self._fail(task, exceptions.TaskCancelledError(task.task_id.hex()))
                    continue
                q.requests_in_flight += 1
                self.lt.spawn(self._request_lease(key, q, task.spec, task))
            for lease in q.leases:
                if lease.in_flight == 0 and lease.idle_timer is None:
                    lease.idle_timer = self.lt.loop.call_later(0.0, self._return_lease, q, lease)
            return
        idle = sum(1 for lease in q.leases if lease.in_flight == 0)
        # Tasks known to be short go a full window deep to each worker (one
        # push instead of one per task; leases that come after the queue
        # drained go straight back).
        short = bool(q.tasks) and self._short_tasks(q)
        # Ask for workers for the tasks the idle leases cannot take at once:
        # one per task, or, for short tasks, one per window of them (a
        # request beyond those would only hold a CPU another owner waits for:
        # a nested task's owner, blocked in get, is served first).
        window = config.MAX_TASKS_IN_FLIGHT_PER_WORKER
        if not short:
            wanted = len(q.tasks) - idle
        else:
            # Leases running a task not known short take no other function's.
            takers = [lease for lease in q.leases if not lease.unsure]
            if not takers:
                wanted = -(-len(q.tasks) // window)
            else:
                # Beyond what the workers held take at once, a worker more per
                # window of tasks, rounded: under half a window more waits for
                # the next refill of a fed worker (see the push below).
                extra = len(q.tasks) - sum(max(0, lease.window - lease.in_flight) for lease in takers)
                wanted = (extra + window // 2) // window
        want = min(wanted, config.MAX_PENDING_LEASE_REQUESTS) - q.requests_in_flight
        for _ in range(max(0, want)):
            # Each request names a different waiting task (for the raylet's task events).
            spec = q.tasks[min(q.requests_in_flight + idle, len(q.tasks) - 1)].peek()
            q.requests_in_flight += 1
            self.lt.spawn(self._request_lease(key, q, spec))
        if q.tasks and q.leases:
            # Pipeline deeply only when there is work for every worker we have
            # or have asked for: a few long tasks must not queue up behind
            # each other on the first worker granted. Refill a worker once it
            # drained to half its window, so refills go out as batches.
            busy = sum(lease.in_flight for lease in q.leases)
            workers = len(q.leases) + q.requests_in_flight
            spread_out = min(config.MAX_TASKS_IN_FLIGHT_PER_WORKER, max(1, -(-(len(q.tasks) + busy) // workers)))
            # A worker here runs short tasks only, and takes more at half its window.
            fed = any(lease.in_flight and not lease.unsure for lease in q.leases)
            for lease in sorted(q.leases, key=lambda x: x.in_flight):
                if not q.tasks:
                    break
                # Deep only on a worker that answered before: the first answer
                # of a new one (far away: its connection, the function's code)
                # may take several round trips, which the deep push's check
                # would take for a long task.
                deep = short and lease.replies > 0
                if deep and fed and lease.in_flight == 0 and len(q.tasks) < lease.window // 2:
                    # Under half a window of short tasks left: the fed workers
                    # take them at their next refill. An idle one used for
                    # them would stay in use and be held, burst after burst
                    # (a nested task's owner kept two CPUs so, and the driver
                    # never got a second worker for its outer tasks).
                    continue
                target = lease.window if deep else spread_out
                if lease.in_flight > target // 2:
                    continue
                batch: list[PendingCall] = []
                blockers = set(lease.unsure.values())
                while q.tasks and len(batch) < target - lease.in_flight:
                    fn = q.tasks[0].fn_key
                    if blockers and blockers != {fn}:
                        break  # not behind another function's task that may run long
                    task = q.tasks.popleft()
                    if not self._known_short(task):
                        blockers.add(fn)
                    if task.cancelled:
                        self._fail(task, exceptions.TaskCancelledError(task.task_id.hex()))
                        continue
                    batch.append(task)
                if batch:
                    self._push(lease, batch, deep=deep)
                    fed = fed or not lease.unsure
        for lease in q.leases:
            if lease.in_flight == 0 and not q.tasks and lease.idle_timer is None:
                # Held briefly for the next task (a loop of synchronous calls
                # reuses it); one granted after its tasks went elsewhere goes
                # back at once (it holds resources others may wait for).
                hold = config.LEASE_IDLE_SECONDS if lease.used else 0.0
                lease.idle_timer = self.lt.loop.call_later(hold, self._return_lease, q, lease)

    async def _request_lease(self, key: tuple, q: KeyQueue, spec: cpb.TaskSpec,
                             task: PendingCall | None = None) -> None:
        """Ask for a worker for the queue's tasks; for ``task`` alone when
        given (SPREAD: it runs on the lease granted for it)."""
        raylet = self.raylets.local()
        req = rpb.WorkerLeaseRequest(resources=dict(spec.resources), scheduling=spec.scheduling,
                                     owner_worker_id=self.owner_id, runtime_env=spec.runtime_env, name=spec.name,
                                     task_id=spec.task_id, job_id=spec.job_id, attempt=spec.attempt,
                                     preferred_node_id=self._arg_node(spec))
        if spec.runtime_env:  # set-up progress shows where the task's output does
            req.owner.CopyFrom(spec.driver)
            req.root_task_id = spec.root_task_id or spec.task_id
        warn_handle = self.lt.loop.call_later(config.INFEASIBLE_WARNING_SECONDS, self._maybe_warn, q, spec)
        at = ""  # the raylet asked: "" for the local one, else its address (a spillback)
        try:
            for _hop in range(8):
                if at in self.dead_raylets:  # spilled to a node declared dead meanwhile: start over here
                    raylet, at, req.grant_or_reject = self.raylets.local(), "", False
                asking = asyncio.ensure_future(raylet.RequestWorkerLease(req))
                self._asking[asking] = at
                try:
                    reply = await asking
                except asyncio.CancelledError:
                    if not (asking.cancelled() and at in self.dead_raylets):
                        raise
                    continue  # its node died while we waited there (node_died cancelled it)
                except (grpc.RpcError, TransportError) as e:
                    if self._closed:
                        return
                    # A node going away shows up here; the GCS's notice of its
                    # death is what the user sees (one line), not this.
                    (logger.debug if rpc.is_connection_error(e) or isinstance(e, TransportError)
                     else logger.warning)("lease request failed: %s", _details(e))
                    await asyncio.sleep(0.5)
                    raylet, at = self.raylets.local(), ""
                    req.grant_or_reject = False
                    continue
                finally:
                    self._asking.pop(asking, None)
                if reply.granted:
                    lease = Lease(f"{reply.worker.ip}:{reply.worker.port}", reply.worker.worker_id, reply.lease_id,
                                  raylet, key, list(reply.gpu_ids), direct_port=reply.worker.direct_port,
                                  node_id=reply.worker.node_id)
                    if self._closed:
                        await self._give_back(lease)
                        return
                    q.leases.append(lease)
                    if task is not None:
                        if task.cancelled:
                            self._fail(task, exceptions.TaskCancelledError(task.task_id.hex()))
                        else:
                            self._push(lease, [task], deep=False)
                        task = None
                    return
                if reply.spillback:
                    at = f"{reply.retry_at_ip}:{reply.retry_at_port}"
                    raylet = self.raylets.at(at)
                    req.grant_or_reject = True
                    continue
                if reply.rejected:  # resources moved: start over at the local raylet
                    raylet, at = self.raylets.local(), ""
                    req.grant_or_reject = False
                    await asyncio.sleep(0.01)
                    continue
                if reply.runtime_env_error or reply.error:
                    err = (exceptions.RuntimeEnvSetupError(reply.runtime_env_error) if reply.runtime_env_error
                           else exceptions.TaskUnschedulableError(reply.error))
                    if task is not None:
                        self._fail(task, err)
                        task = None
                    while q.tasks:
                        self._fail(q.tasks.popleft(), err)
                    return
        finally:
            if task is not None:  # no lease for it (hops used up, or closing): back to the front
                q.tasks.appendleft(task)
            warn_handle.cancel()
            q.requests_in_flight -= 1
            self._pump(key, q)

    def _maybe_warn(self, q: KeyQueue, spec: cpb.TaskSpec) -> None:
        if q.warned or not q.tasks or self.cluster_nodes is None:
            return
        cluster_nodes = self.cluster_nodes

        async def check() -> None:
            try:
                nodes = await cluster_nodes()
            except grpc.RpcError:
                return
            demand = dict(spec.resources)
            if not any(n.alive and fits(demand, n.resources_total) for n in nodes):
                q.warned = True
                logger.warning(
                    "Warning: the task %s demands %s, which no node in the cluster can provide. It stays pending "
                    "until a node with these resources joins. Cluster: %s",
                    spec.name or spec.function.qualname, demand,
                    [dict(n.resources_total) for n in nodes if n.alive],
                )

        self.lt.spawn(check())

    def _return_lease(self, q: KeyQueue, lease: Lease) -> None:
        lease.idle_timer = None
        if lease.in_flight or lease.dead or lease not in q.leases:
            return
        if q.tasks and lease.key[1] != cpb.SchedulingStrategy.SPREAD:
            return
        q.leases.remove(lease)
        self.lt.spawn(self._give_back(lease))

    async def _give_back(self, lease: Lease, disconnect: bool = False) -> None:
        try:
            await lease.raylet.ReturnWorker(rpb.ReturnWorkerRequest(lease_id=lease.lease_id, disconnect=disconnect))
        except (grpc.RpcError, TransportError):
            pass

    # -- push ----------------------------------------------------------------
    def _check_deep_push(self, lease: Lease, batch: list[PendingCall], replies_then: int) -> None:
        """A window of tasks believed short got no answer for a while: the
        guess was wrong. Their functions count as unknown again (long, until
        three runs report short: a task that ran long makes it long for good
        when its reply comes; a worker that was only stalled, by a busy
        machine or a slow link, clears it with its next replies), and the
        tasks that have not started are taken back to run elsewhere."""
        if lease.dead or lease.replies != replies_then:
            return
        waiting = [t for t in batch if t.lease is lease and not t.done]
        if len(waiting) < 2:
            return
        for t in waiting:
            _n, longest = self.run_seconds.get(t.fn_key, (0, 0.0))
            self.run_seconds[t.fn_key] = (0, longest)
        client = self.pushes.get(lease.address, lease.direct_port)

        async def take_back(task_id: bytes) -> None:
            try:
                await client.cancel(task_id, requeue=True, timeout=10)
            except TransportError:
                pass  # the push's own error handling covers a dead worker

        for t in waiting[1:]:  # the first is (most likely) running
            self.lt.spawn(take_back(t.task_id))

    def _push(self, lease: Lease, batch: list[PendingCall], deep: bool = False) -> None:
        if lease.idle_timer is not None:
            lease.idle_timer.cancel()
            lease.idle_timer = None
        lease.in_flight += len(batch)
        lease.used = True
        now = self.lt.loop.time()
        if deep and len(batch) > 1:
            # No answer within the check time (plus the round trip, for a far worker) was a wrong guess.
            latency = lease.latency
            wait = config.SHORT_TASK_CHECK_SECONDS + (2 * latency if latency != float("inf") else 0.0)
            self.lt.loop.call_later(wait, self._check_deep_push, lease, batch, lease.replies)
        scheduled = self.core.events.scheduled
        for task in batch:
            task.pushed_at = now
            if not self._known_short(task):
                lease.unsure[task.task_id] = task.fn_key
            task.lease = lease
            task.spec.gpu_ids[:] = lease.gpu_ids
            scheduled(task, task.spec)
        client = self.pushes.get(lease.address, lease.direct_port)
        pending = {t.task_id: t for t in batch}
        if len(batch) == 1:
            task_id = batch[0].task_id

            def on_reply(reply: wpb.PushTaskReply | None, err: TransportError | None) -> None:
                if reply is None:
                    self._push_failed(lease, pending, err or TransportError("INTERNAL", "no reply"))
                else:
                    reply.task_id = task_id
                    self._on_reply(lease, pending, reply)
                self._pump_key(lease.key)

            client.push(batch[0].spec, on_reply)
            return

        # Several: one call whose replies stream back as each task finishes
        # (fewer calls was the win the profile pointed at).
        def on_done(err: TransportError | None) -> None:
            if err is None and pending:
                err = TransportError("INTERNAL", "the worker closed the batch before answering every task")
            if err is not None:
                self._push_failed(lease, pending, err)
            self._pump_key(lease.key)

        client.push_batch([t.spec for t in batch], lambda reply: self._on_reply(lease, pending, reply), on_done)

    def _pump_key(self, key: tuple) -> None:
        q = self.queues.get(key)
        if q is not None:
            self._pump(key, q)

    def _push_failed(self, lease: Lease, pending: dict[bytes, PendingCall], e: TransportError) -> None:
        """The worker's connection failed: its unanswered tasks are retried
        elsewhere, or fail with WorkerCrashedError when out of retries."""
        lease.in_flight -= len(pending)
        for task_id in pending:
            lease.unsure.pop(task_id, None)
        self._on_lease_lost(lease)
        detail = e.details
        for task in pending.values():
            task.lease = None
            if task.cancelled:
                self._fail(task, exceptions.TaskCancelledError(task.task_id.hex()))
            elif task.retries_left != 0 and not self._closed:
                self._retry(task)
            else:
                self._fail(task, exceptions.WorkerCrashedError(
                    f"The worker running task {task.spec.name or task.spec.function.qualname} died "
                    f"(no retries left): {detail}"))
        pending.clear()

    def _on_reply(self, lease: Lease, pending: dict[bytes, PendingCall], reply: wpb.PushTaskReply) -> None:
        task = pending.pop(reply.task_id, None)
        if task is None:
            return
        lease.unsure.pop(reply.task_id, None)
        lease.in_flight -= 1
        lease.replies += 1
        lease.measure(self.lt.loop.time(), task.pushed_at, reply.run_seconds, lease.in_flight > 0)
        task.lease = None
        if reply.not_run:  # taken back unstarted: queue it again, in front
            q = self.queues.get(lease.key)
            if q is not None and not task.done:
                q.tasks.appendleft(task)
                self._pump(lease.key, q)
            return
        if reply.run_seconds:
            fn = task.fn_key
            n, longest = self.run_seconds.get(fn, (0, 0.0))
            if n == 0 and len(self.run_seconds) > 10_000:
                self.run_seconds.clear()
            # The longest run, fading by RUN_FADE a run: one run stretched by a
            # busy machine (a no-op preempted for a few ms) must not make a
            # function long for good; one that keeps running long stays long.
            # One that waited for other tasks is not short however quick: on
            # one worker, the next would wait behind the work it waits for.
            self.run_seconds[fn] = (0, longest) if reply.blocked else (
                n + 1, max(longest * RUN_FADE, reply.run_seconds))
        if reply.is_application_error and reply.retryable and task.retries_left != 0 and not task.cancelled:
            self._retry(task)
        else:
            self.core.complete(task, reply)
            self.lineage.done(task.task_id)
            if not reply.is_application_error and _any_in_store(reply.returns):
                self.lineage.record(task.spec, task.return_ids, task.retries_left)
        # Keep the worker fed while the batch drains: once it is down to half
        # its window (the pump refills no lease above that, and this reply
        # changed no other lease), so not a pump per reply.
        if pending and lease.in_flight <= lease.window // 2:
            q = self.queues.get(lease.key)
            if q is not None and q.tasks:
                self._pump(lease.key, q)

    def node_died(self, node_id: bytes, raylet_address: str) -> tuple[int, int]:
        """The GCS declared the node dead: the tasks running on its workers
        fail over now (retried elsewhere, or failed when out of retries)
        instead of when their connections time out, its idle leases are
        forgotten, and lease requests waiting at its raylet start over here.
        Returns (tasks that will be retried, tasks out of retries)."""
        self.dead_raylets.add(raylet_address)
        retried = failed = 0
        for q in list(self.queues.values()):
            for lease in [x for x in q.leases if x.node_id == node_id]:
                for t in self.tasks.values():
                    if t.lease is lease and not t.done:
                        if t.retries_left != 0 and not t.cancelled:
                            retried += 1
                        else:
                            failed += 1
                lease.dead = True  # no ReturnWorker to a dead raylet
                q.leases.remove(lease)
                if lease.idle_timer is not None:
                    lease.idle_timer.cancel()
                    lease.idle_timer = None
                self.pushes.drop(lease.address, -1.0)  # the calls on it fail now: _push_failed retries them
        for asking, at in list(self._asking.items()):
            if at == raylet_address:
                asking.cancel()
        return retried, failed

    def _on_lease_lost(self, lease: Lease) -> None:
        if lease.dead:
            return
        lease.dead = True
        q = self.queues.get(lease.key)
        if q is not None and lease in q.leases:
            q.leases.remove(lease)
        self.lt.spawn(self._give_back(lease, disconnect=True))
        self.pushes.drop(lease.address, DROP_GRACE_SECONDS)

    def _retry(self, task: PendingCall) -> None:
        if task.retries_left > 0:
            task.retries_left -= 1
        task.spec.attempt += 1
        if task.spec.streaming and self.core.generator_started(task.task_id):
            # Items already handed out cannot be taken back: fail the rest.
            self._fail(task, exceptions.WorkerCrashedError("the generator's worker died mid-stream"))
            return
        logger.info("retrying task %s (attempt %d)", task.spec.name, task.spec.attempt)
        self._enqueue(task)

    def _fail(self, task: PendingCall, err: BaseException) -> None:
        self.core.fail(task, err)

    # -- cancel ------------------------------------------------------------------
    def cancel(self, task_id: bytes, force: bool, recursive: bool) -> None:
        task = self.tasks.get(task_id)
        if task is None or task.done:
            return
        task.cancelled = True
        task.force_cancel = force
        lease = task.lease
        if lease is None:
            for q in self.queues.values():
                if task in q.tasks:
                    q.tasks.remove(task)
                    self._fail(task, exceptions.TaskCancelledError(task_id.hex()))
                    return
            return  # resolving dependencies: fails when they resolve
        if force:
            self.lt.spawn(self._kill(lease, task))
        else:
            client = self.pushes.get(lease.address, lease.direct_port)

            async def send() -> None:
                try:
                    await client.cancel(task_id, force=False, recursive=recursive)
                except TransportError:
                    pass

            self.lt.spawn(send())

    async def _kill(self, lease: Lease, task: PendingCall) -> None:
        try:
            await lease.raylet.KillWorker(rpb.KillWorkerRequest(worker_id=lease.worker_id, force=True,
                                                                 reason="task cancelled with force=True"))
        except (grpc.RpcError, TransportError):
            pass

    async def shutdown(self) -> None:
        """Give every lease back (the cluster may outlive this process)."""
        self._closed = True
        leases = []
        for q in self.queues.values():
            for lease in q.leases:
                if lease.idle_timer is not None:
                    lease.idle_timer.cancel()
                leases.append(lease)
        self.queues.clear()
        if leases:
            await asyncio.wait([asyncio.ensure_future(self._give_back(x)) for x in leases], timeout=2)


def _details(e: BaseException) -> str:
    """The text of a gRPC or transport error."""
    if isinstance(e, TransportError):
        return e.details
    details = getattr(e, "details", None)
    return str(details() if callable(details) else e)


# A dropped worker's calls in flight get this long to end on their own (as a
# gRPC channel closed with grace) before they fail.
DROP_GRACE_SECONDS = 30.0


def _any_in_store(returns: Any) -> bool:
    """Whether a reply's returns went to a store (a loop, not any() over a
    generator: once per task)."""
    for r in returns:
        if r.in_store:
            return True
    return False
