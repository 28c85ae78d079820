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
import functools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc

from jray import exceptions
from jray._private import config, rpc, serialization
from jray._private.direct import DirectStub
from jray._private.ids import object_id_for, task_id_of
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import core_worker_pb2 as wpb
from jray._private.protocol import core_worker_pb2_grpc as wgrpc
from jray._private.protocol import gcs_pb2 as gpb
from jray._private.protocol import raylet_pb2 as rpb
from jray._private.protocol import raylet_pb2_grpc as rgrpc
from jray._private.worker.task_events import any_error, error_text

if TYPE_CHECKING:
    from jray._private.worker.core_worker import CoreWorker

logger = logging.getLogger("jray")


@dataclass(eq=False)
class PendingTask:
    spec: cpb.TaskSpec
    return_ids: list[bytes]
    arg_refs: list[tuple[bytes, Any]]
    retries_left: int
    cancelled: bool = False
    force_cancel: bool = False
    lease: Lease | None = None
    done: bool = False


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


@dataclass(eq=False)
class KeyQueue:
    tasks: collections.deque = field(default_factory=collections.deque)
    leases: list[Lease] = field(default_factory=list)
    requests_in_flight: int = 0
    warned: bool = False
    pump_scheduled: bool = False


@dataclass(eq=False)
class GeneratorState:
    received: int = 0
    done: bool = False
    waiters: list[tuple[int, asyncio.Future]] = field(default_factory=list)


class TaskSubmitter:
    def __init__(self, worker: CoreWorker) -> None:
        self.w = worker
        self.queues: dict[tuple, KeyQueue] = {}
        self._to_pump: list[tuple[tuple, KeyQueue]] = []
        self._pump_soon = False
        # Function key -> (tasks seen, longest run in seconds), from replies.
        self.run_seconds: dict[str, tuple[int, float]] = {}
        self.tasks: dict[bytes, PendingTask] = {}
        self.generators: dict[bytes, GeneratorState] = {}
        self._closed = False

    # -- entry point (user thread) -----------------------------------------
    def submit(self, spec: cpb.TaskSpec, arg_refs: list[tuple[bytes, Any]]) -> list[bytes]:
        w = self.w
        n = 1 if spec.streaming else spec.num_returns
        return_ids = [object_id_for(spec.task_id, i + 1) for i in range(n)]
        for oid in return_ids:
            w.add_pending(oid)
        for oid, owner in arg_refs:
            w.refs.incr(oid, owner)  # held by the pending task
        if spec.streaming:
            self.generators[spec.task_id] = GeneratorState()
        task = PendingTask(spec, return_ids, arg_refs, spec.max_retries)
        w.post(self._start, task)
        return return_ids

    def _start(self, task: PendingTask) -> None:
        self.tasks[task.spec.task_id] = task
        events = self.w.task_events
        events.record(task.spec, "SUBMITTED")
        if any(a.HasField("ref") for a in task.spec.args):
            events.record(task.spec, "PENDING_ARGS")
            self.w.spawn(self._resolve_then_queue(task))
        else:
            self._enqueue(task)

    async def _resolve_then_queue(self, task: PendingTask) -> None:
        """Wait for ref arguments; inline small values the owner already has."""
        from jray.object_ref import ObjectRef

        for arg in task.spec.args:
            if not arg.HasField("ref"):
                continue
            oid = arg.ref.object_id
            owner = (f"{arg.ref.owner.ip}:{arg.ref.owner.port}", arg.ref.owner.worker_id)
            ref = ObjectRef(oid, owner, _count=False)
            try:
                await self.w._ensure_ready(ref)
            except exceptions.RayError as e:
                self._fail(task, e)
                return
            ret = self.w.objects.get(oid)
            if ret is None:
                continue
            if ret.is_error:
                # A failed dependency fails this task with the same error.
                self._finish_with_data(task, ret.data)
                return
            if ret.in_store:
                arg.location.CopyFrom(ret)
            elif len(ret.data) <= config.MAX_INLINE_BYTES:
                name, star = arg.name, arg.star
                nested = list(ret.nested_refs)
                arg.Clear()
                arg.name, arg.star, arg.data = name, star, ret.data
                arg.nested_refs.extend(nested)
        if task.cancelled:
            self._fail(task, exceptions.TaskCancelledError(task.spec.task_id.hex()))
            return
        self._enqueue(task)

    # -- queues and leases ---------------------------------------------------
    def _key(self, spec: cpb.TaskSpec) -> tuple:
        s = spec.scheduling
        return (tuple(sorted(spec.resources.items())), s.kind, s.node_id, s.soft, s.placement_group_id,
                s.bundle_index, spec.runtime_env)

    def _enqueue(self, task: PendingTask) -> None:
        key = self._key(task.spec)
        q = self.queues.get(key)
        if q is None:
            q = self.queues[key] = KeyQueue()
        q.tasks.append(task)
        if not q.pump_scheduled:
            # Pump once after this burst of submissions (posted together and
            # enqueued in one loop callback, which ends with pump_pending):
            # they go out as one batch. call_soon covers other callers.
            q.pump_scheduled = True
            self._to_pump.append((key, q))
            if not self._pump_soon:
                self._pump_soon = True
                self.w.loop.call_soon(self.pump_pending)

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
        objects = self.w.objects
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
        seen = self.run_seconds
        for i, task in enumerate(q.tasks):
            if i == 16:
                break
            n, longest = seen.get(task.spec.function.key, (0, 0.0))
            if n < 3 or longest > config.SHORT_TASK_SECONDS:
                return False
        return True

    def _pump(self, key: tuple, q: KeyQueue) -> None:
        if self._closed:
            return
        idle = sum(1 for lease in q.leases if lease.in_flight == 0)
        # Tasks known to be short go a full window deep to each worker (one
        # push instead of one per task; leases that come after the queue
        # drained go straight back).
        short = len(q.tasks) > 1 and self._short_tasks(q)
        # Ask for workers for the tasks the idle leases cannot take at once.
        want = min(len(q.tasks) - idle, config.MAX_PENDING_LEASE_REQUESTS) - q.requests_in_flight
        for _ in range(max(0, want)):
            # Each request names a different waiting task (for the raylet's task events).
            spec = q.tasks[min(q.requests_in_flight + idle, len(q.tasks) - 1)].spec
            q.requests_in_flight += 1
            self.w.spawn(self._request_lease(key, q, spec))
        if q.tasks and q.leases:
            # Pipeline deeply only when there is work for every worker we have
            # or have asked for: a few long tasks must not queue up behind
            # each other on the first worker granted. Refill a worker once it
            # drained to half its window, so refills go out as batches.
            busy = sum(lease.in_flight for lease in q.leases)
            workers = len(q.leases) + q.requests_in_flight
            target = min(config.MAX_TASKS_IN_FLIGHT_PER_WORKER, max(1, -(-(len(q.tasks) + busy) // workers)))
            if short:
                target = config.MAX_TASKS_IN_FLIGHT_PER_WORKER
            for lease in sorted(q.leases, key=lambda x: x.in_flight):
                if not q.tasks:
                    break
                if lease.in_flight > target // 2:
                    continue
                batch: list[PendingTask] = []
                while q.tasks and len(batch) < target - lease.in_flight:
                    task = q.tasks.popleft()
                    if task.cancelled:
                        self._fail(task, exceptions.TaskCancelledError(task.spec.task_id.hex()))
                        continue
                    batch.append(task)
                if batch:
                    self._push(lease, batch, deep=short)
        for lease in q.leases:
            if lease.in_flight == 0 and not q.tasks and lease.idle_timer is None:
                # Held briefly for the next task (a loop of synchronous calls
                # reuses it); one granted after its tasks went elsewhere goes
                # back at once (it holds resources others may wait for).
                hold = config.LEASE_IDLE_SECONDS if lease.used else 0.0
                lease.idle_timer = self.w.loop.call_later(hold, self._return_lease, q, lease)

    async def _request_lease(self, key: tuple, q: KeyQueue, spec: cpb.TaskSpec) -> None:
        raylet = self.w.raylet
        req = rpb.WorkerLeaseRequest(resources=dict(spec.resources), scheduling=spec.scheduling,
                                     owner_worker_id=self.w.worker_id, runtime_env=spec.runtime_env, name=spec.name,
                                     task_id=spec.task_id, job_id=spec.job_id, attempt=spec.attempt,
                                     preferred_node_id=self._arg_node(spec))
        warn_handle = self.w.loop.call_later(config.INFEASIBLE_WARNING_SECONDS, self._maybe_warn, q, spec)
        try:
            for _hop in range(8):
                try:
                    reply = await raylet.RequestWorkerLease(req)
                except grpc.RpcError as e:
                    if self._closed:
                        return
                    logger.warning("lease request failed: %s", e.details() if hasattr(e, "details") else e)
                    await asyncio.sleep(0.5)
                    raylet = self.w.raylet
                    req.grant_or_reject = False
                    continue
                if reply.granted:
                    lease = Lease(f"{reply.worker.ip}:{reply.worker.port}", reply.worker.worker_id, reply.lease_id,
                                  raylet, key, list(reply.gpu_ids), direct_port=reply.worker.direct_port)
                    if self._closed:
                        await self._give_back(lease)
                        return
                    q.leases.append(lease)
                    return
                if reply.spillback:
                    raylet = self.w.pool.stub(f"{reply.retry_at_ip}:{reply.retry_at_port}", rgrpc.RayletServiceStub)
                    req.grant_or_reject = True
                    continue
                if reply.rejected:  # resources moved: start over at the local raylet
                    raylet = self.w.raylet
                    req.grant_or_reject = False
                    await asyncio.sleep(0.01)
                    continue
                if reply.error:
                    err = exceptions.TaskUnschedulableError(reply.error)
                    while q.tasks:
                        self._fail(q.tasks.popleft(), err)
                    return
        finally:
            warn_handle.cancel()
            q.requests_in_flight -= 1
            self._pump(key, q)

    def _maybe_warn(self, q: KeyQueue, spec: cpb.TaskSpec) -> None:
        if q.warned or not q.tasks:
            return

        async def check() -> None:
            try:
                nodes = (await self.w.gcs.GetAllNodeInfo(gpb.GetAllNodeInfoRequest())).nodes
            except grpc.RpcError:
                return
            demand = dict(spec.resources)
            if not any(n.alive and all(n.resources_total.get(k, 0.0) >= v for k, v in demand.items()) for n in nodes):
                q.warned = True
                logger.warning(
                    "Warning: the task %s demands %s, which no node in the cluster can provide. It stays pending "
                    "until a node with these resources joins. Cluster: %s",
                    spec.name or spec.function.qualname, demand,
                    [dict(n.resources_total) for n in nodes if n.alive],
                )

        self.w.spawn(check())

    def _return_lease(self, q: KeyQueue, lease: Lease) -> None:
        lease.idle_timer = None
        if lease.in_flight or lease.dead or lease not in q.leases:
            return
        if q.tasks:
            return
        q.leases.remove(lease)
        self.w.spawn(self._give_back(lease))

    async def _give_back(self, lease: Lease, disconnect: bool = False) -> None:
        try:
            await lease.raylet.ReturnWorker(rpb.ReturnWorkerRequest(lease_id=lease.lease_id, disconnect=disconnect))
        except grpc.RpcError:
            pass

    # -- push ----------------------------------------------------------------
    def _check_deep_push(self, lease: Lease, batch: list[PendingTask], replies_then: int) -> None:
        """A window of tasks believed short got no answer for a while: the
        guess was wrong. Their functions count as long from now on, and the
        tasks that have not started are taken back to run elsewhere."""
        if lease.dead or lease.replies != replies_then:
            return
        waiting = [t for t in batch if t.lease is lease and not t.done]
        if len(waiting) < 2:
            return
        for t in waiting:
            n, _longest = self.run_seconds.get(t.spec.function.key, (0, 0.0))
            self.run_seconds[t.spec.function.key] = (n, float("inf"))
        stub = self.w.pool.stub(lease.address, wgrpc.CoreWorkerServiceStub)

        async def take_back(task_id: bytes) -> None:
            try:
                await stub.CancelTask(wpb.CancelTaskRequest(task_id=task_id, requeue=True), timeout=10)
            except grpc.RpcError:
                pass  # the push's own error handling covers a dead worker

        for t in waiting[1:]:  # the first is (most likely) running
            self.w.spawn(take_back(t.spec.task_id))

    def _push(self, lease: Lease, batch: list[PendingTask], deep: bool = False) -> None:
        if lease.idle_timer is not None:
            lease.idle_timer.cancel()
            lease.idle_timer = None
        lease.in_flight += len(batch)
        lease.used = True
        if deep and len(batch) > 1:
            self.w.loop.call_later(config.SHORT_TASK_CHECK_SECONDS, self._check_deep_push, lease, batch,
                                   lease.replies)
        record = self.w.task_events.record
        for task in batch:
            task.lease = lease
            task.spec.gpu_ids[:] = lease.gpu_ids
            record(task.spec, "SCHEDULED")
        if len(batch) == 1:
            stub = self.w.pool.push_stub(lease.address, lease.direct_port)
            if isinstance(stub, DirectStub):  # a lone task: answered by callback, no asyncio task
                task = batch[0]
                stub.push_task_cb(wpb.PushTaskRequest(spec=task.spec), functools.partial(
                    self._on_single, lease, {task.spec.task_id: task}, task.spec.task_id))
                return
        self.w.spawn(self._push_and_handle(lease, batch))

    def _on_single(self, lease: Lease, pending: dict[bytes, PendingTask], task_id: bytes,
                   payload: bytes | None, err: grpc.RpcError | None) -> None:
        if err is not None or payload is None:
            self._push_failed(lease, pending, err or RuntimeError("no reply"))
        else:
            reply = wpb.PushTaskReply.FromString(payload)
            reply.task_id = task_id
            self._on_reply(lease, pending, reply)
        q = self.queues.get(lease.key)
        if q is not None:
            self._pump(lease.key, q)

    async def _push_and_handle(self, lease: Lease, batch: list[PendingTask]) -> None:
        """One task: a unary call. Several: one call whose replies stream back
        as each task finishes (fewer RPCs was the win the profile pointed at)."""
        stub = self.w.pool.push_stub(lease.address, lease.direct_port)
        pending = {t.spec.task_id: t for t in batch}
        try:
            if len(batch) == 1:
                reply = await stub.PushTask(wpb.PushTaskRequest(spec=batch[0].spec))
                reply.task_id = batch[0].spec.task_id
                self._on_reply(lease, pending, reply)
            else:
                call = stub.PushTaskBatch(wpb.PushTaskBatchRequest(specs=[t.spec for t in batch]))
                async for reply in call:
                    self._on_reply(lease, pending, reply)
                if pending:
                    raise RuntimeError("the worker closed the batch before answering every task")
        except (grpc.RpcError, RuntimeError) as e:
            self._push_failed(lease, pending, e)
        q = self.queues.get(lease.key)
        if q is not None:
            self._pump(lease.key, q)

    def _push_failed(self, lease: Lease, pending: dict[bytes, PendingTask], e: BaseException) -> None:
        """The worker's connection failed: its unanswered tasks are retried
        elsewhere, or fail with WorkerCrashedError when out of retries."""
        lease.in_flight -= len(pending)
        self._on_lease_lost(lease)
        detail = e.details() if isinstance(e, grpc.RpcError) and hasattr(e, "details") else str(e)
        for task in pending.values():
            task.lease = None
            if task.cancelled:
                self._fail(task, exceptions.TaskCancelledError(task.spec.task_id.hex()))
            elif task.retries_left != 0 and not self._closed:
                self._retry(task)
            else:
                self._fail(task, exceptions.WorkerCrashedError(
                    f"The worker running task {task.spec.name or task.spec.function.qualname} died "
                    f"(no retries left): {detail}"))

    def _on_reply(self, lease: Lease, pending: dict[bytes, PendingTask], reply: wpb.PushTaskReply) -> None:
        task = pending.pop(reply.task_id, None)
        if task is None:
            return
        lease.in_flight -= 1
        lease.replies += 1
        task.lease = None
        if reply.not_run:  # taken back unstarted: queue it again, in front
            q = self.queues.get(lease.key)
            if q is not None and not task.done:
                q.tasks.appendleft(task)
                self._pump(lease.key, q)
            return
        if reply.run_seconds:
            fn = task.spec.function.key
            n, longest = self.run_seconds.get(fn, (0, 0.0))
            if n == 0 and len(self.run_seconds) > 10_000:
                self.run_seconds.clear()
            self.run_seconds[fn] = (n + 1, max(longest, reply.run_seconds))
        if reply.is_application_error and reply.retryable and task.retries_left != 0 and not task.cancelled:
            self._retry(task)
        else:
            self._complete(task, reply)
        if pending:  # keep the worker fed while the batch drains
            q = self.queues.get(lease.key)
            if q is not None and q.tasks:
                self._pump(lease.key, q)

    def _on_lease_lost(self, lease: Lease) -> None:
        if lease.dead:
            return
        lease.dead = True
        q = self.queues.get(lease.key)
        if q is not None and lease in q.leases:
            q.leases.remove(lease)
        self.w.spawn(self._give_back(lease, disconnect=True))
        self.w.pool.drop(lease.address)

    def _retry(self, task: PendingTask) -> None:
        if task.retries_left > 0:
            task.retries_left -= 1
        task.spec.attempt += 1
        if task.spec.streaming:
            st = self.generators.get(task.spec.task_id)
            if st is not None and st.received:
                # Items already handed out cannot be taken back: fail the rest.
                self._fail(task, exceptions.WorkerCrashedError("the generator's worker died mid-stream"))
                return
        logger.info("retrying task %s (attempt %d)", task.spec.name, task.spec.attempt)
        self._enqueue(task)

    # -- completion ------------------------------------------------------------
    def _complete(self, task: PendingTask, reply: wpb.PushTaskReply) -> None:
        if task.done:  # already settled (cancelled): drop what the worker handed us
            for ret in reply.returns:
                self.w.release_hand_off(ret)
            return
        task.done = True
        self.tasks.pop(task.spec.task_id, None)
        failed = reply.is_application_error or any_error(reply.returns)
        self.w.task_events.record(task.spec, "FAILED" if failed else "FINISHED", reply.system_error)
        for ret in reply.returns:
            self.w.set_ready(ret)
        if task.spec.streaming:
            self._generator_done(task.spec.task_id)
        self._release_args(task)

    def _finish_with_data(self, task: PendingTask, data: bytes, error: str = "") -> None:
        if task.done:
            return
        task.done = True
        self.w.task_events.record(task.spec, "FAILED", error)
        self.tasks.pop(task.spec.task_id, None)
        for oid in task.return_ids:
            self.w.set_ready(cpb.ReturnObject(object_id=oid, data=data, is_error=True))
        if task.spec.streaming:
            self._generator_done(task.spec.task_id)
        self._release_args(task)

    def _fail(self, task: PendingTask, err: BaseException) -> None:
        self._finish_with_data(task, serialization.serialize(err, error=True).to_bytes(), error_text(err))

    def _release_args(self, task: PendingTask) -> None:
        for oid, _owner in task.arg_refs:
            self.w.refs.decr(oid)
        task.arg_refs = []

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
            self.w.spawn(self._kill(lease, task))
        else:
            stub = self.w.pool.stub(lease.address, wgrpc.CoreWorkerServiceStub)

            async def send() -> None:
                try:
                    await stub.CancelTask(wpb.CancelTaskRequest(task_id=task_id, force=False, recursive=recursive))
                except grpc.RpcError:
                    pass

            self.w.spawn(send())

    async def _kill(self, lease: Lease, task: PendingTask) -> None:
        try:
            await lease.raylet.KillWorker(rpb.KillWorkerRequest(worker_id=lease.worker_id, force=True,
                                                                 reason="task cancelled with force=True"))
        except grpc.RpcError:
            pass

    # -- streaming generators ------------------------------------------------------
    def on_generator_item(self, msg: wpb.GeneratorItem) -> None:
        st = self.generators.get(msg.task_id)
        if st is None:
            return
        if msg.done:
            self._generator_done(msg.task_id)
            return
        if msg.index <= st.received:
            self.w.release_hand_off(msg.item)
            return  # duplicate after a retry
        self.w.add_pending(msg.item.object_id)
        self.w.set_ready(msg.item)
        st.received = msg.index
        self._wake_generator(st)

    def _generator_done(self, task_id: bytes) -> None:
        st = self.generators.get(task_id)
        if st is not None:
            st.done = True
            self._wake_generator(st)

    def _wake_generator(self, st: GeneratorState) -> None:
        keep = []
        for index, fut in st.waiters:
            if st.received >= index or st.done:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((index, fut))
        st.waiters = keep

    async def generator_item(self, task_id: bytes, index: int) -> Any:
        from jray.object_ref import ObjectRef

        st = self.generators.get(task_id)
        if st is None:
            return None
        while st.received < index and not st.done:
            fut = self.w.loop.create_future()
            st.waiters.append((index, fut))
            await fut
        if st.received >= index:
            return ObjectRef(object_id_for(task_id, index + 1), self.w.owner_key)
        self.generators.pop(task_id, None)
        return None

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


def task_of(object_id: bytes) -> bytes:
    return task_id_of(object_id)


__all__ = ["TaskSubmitter", "rpc"]
