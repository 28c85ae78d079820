"""The CoreWorker: the engine inside every driver and worker process.

It runs an asyncio loop in a background thread (so it works inside a
Jupyter kernel that already runs its own loop) with a gRPC server on it.
User threads call the sync facade (``put``/``get``/``wait``/submit), which
hands work to the loop; the loop talks to the GCS, the local raylet, other
CoreWorkers and the shared-memory store.

Ownership: the process that creates an object (``put`` or submitting a
task) owns it: it keeps its value (small) or location (large), answers
borrowers' ``GetObjectStatus`` calls, and frees it when the reference
counter says nobody holds it any more.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import contextvars
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

import grpc

from jray import exceptions
from jray._private import config, direct, rpc, serialization
from jray._private.ids import new_task_id, object_id_for, random_id
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import core_worker_pb2 as wpb
from jray._private.protocol import core_worker_pb2_grpc as wgrpc
from jray._private.protocol import gcs_pb2 as gpb
from jray._private.protocol import gcs_pb2_grpc as ggrpc
from jray._private.protocol import raylet_pb2 as rpb
from jray._private.protocol import raylet_pb2_grpc as rgrpc
from jray._private.worker import global_state
from jray._private.worker.borrowing import Borrowing
from jray._private.worker.reference_counter import ReferenceCounter
from jray._private.worker.store_client import StoreClient

logger = logging.getLogger(__name__)
T = TypeVar("T")

# The spec of the task running in this thread / asyncio task (None in a driver).
current_task: contextvars.ContextVar[Any] = contextvars.ContextVar("jray_current_task", default=None)


class CoreWorker(Borrowing, StoreClient):
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
    ) -> None:
        self.is_driver = is_driver
        self.gcs_address = gcs_address
        self.raylet_address = raylet_address
        self.token = token
        self.node_id = node_id
        self.ip = ip
        self.job_id = job_id
        self.namespace = namespace
        self.log_to_driver = log_to_driver
        self.worker_id = random_id(16)
        self.port = 0
        self.direct_port = 0
        self.direct_server: Any = None
        self.raylet_direct: direct.BlockingClient | None = None
        self.store_path = store_path
        self.arena: Any = None
        self.refs = ReferenceCounter(self._on_free, self._on_borrow)
        self.refs.on_deferred = self._schedule_drain
        # object id -> ReturnObject (ready values, owned or fetched)
        self.objects: dict[bytes, cpb.ReturnObject] = {}
        # object id -> futures waiting for it (loop thread only)
        self._waiters: dict[bytes, list[asyncio.Future]] = {}
        self._pending_owned: set[bytes] = set()
        self._exported: set[str] = set()
        self._functions: dict[str, Any] = {}
        self._borrow_rpcs: set[asyncio.Future] = set()
        self._borrow_last: dict[bytes, asyncio.Future] = {}  # object id -> its latest borrower update
        self._borrower_addrs: dict[bytes, str] = {}  # borrower id -> its address (to probe)
        self._borrower_misses: dict[bytes, int] = {}  # borrower id -> failed probes in a row
        self._borrower_prober: asyncio.Task | None = None
        self._release_queue: list[bytes] = []
        self._pins: dict[bytes, list[int]] = {}  # object id -> [offset, size, live views]
        self._pins_lock = threading.Lock()
        self._address: cpb.Address | None = None
        self._node_cache: dict[bytes, tuple[str, int]] = {}  # node id -> raylet address
        self._blocked_seq = 0
        self._generators: dict[bytes, Any] = {}
        self.shutting_down = False
        self._inbox: collections.deque = collections.deque()
        self._inbox_lock = threading.Lock()
        self._inbox_scheduled = False
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name="jray-core-worker", daemon=True)
        self._thread.start()
        from jray._private.worker.task_submitter import TaskSubmitter

        self.task_submitter = TaskSubmitter(self)
        from jray._private.worker.actor_submitter import ActorSubmitter

        self.actor_submitter = ActorSubmitter(self)
        self.executor: Any = None  # set in worker processes
        from jray._private.worker.task_events import TaskEventBuffer

        self.task_events = TaskEventBuffer(self)
        self._events_flusher: asyncio.Task | None = None
        self.log_sink: Callable[[wpb.LogBatch], None] | None = None
        self.default_runtime_env: dict[str, Any] | None = None
        self.root_task_override: bytes = b""

    def current_namespace(self) -> str:
        """The namespace of the job the running task belongs to (a worker's
        own is empty: its tasks carry their job's), else this driver's."""
        spec = current_task.get()
        if spec is not None and spec.namespace:
            return str(spec.namespace)
        return self.namespace

    # -- loop plumbing -----------------------------------------------------
    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def run_sync(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if self.in_loop_thread():
            coro.close()
            raise RuntimeError("jray: a blocking call was made from the CoreWorker's own event loop")
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout)
        except KeyboardInterrupt:
            fut.cancel()
            raise

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        if self.in_loop_thread():
            fn(*args)
        else:
            self.loop.call_soon_threadsafe(fn, *args)

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop, in order; a burst of posts from user
        threads costs one loop wake-up (task submission is the hot path)."""
        if self.in_loop_thread():
            fn(*args)
            return
        self._inbox.append((fn, args))
        with self._inbox_lock:
            if self._inbox_scheduled:
                return
            self._inbox_scheduled = True
        self.loop.call_soon_threadsafe(self._drain_inbox)

    def _drain_inbox(self) -> None:
        with self._inbox_lock:
            self._inbox_scheduled = False
        inbox = self._inbox
        self.task_submitter._pump_soon = True  # pumped below, not in a later iteration
        while inbox:
            fn, args = inbox.popleft()
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - one bad item must not stop the rest
                logger.exception("jray: internal error in %s", getattr(fn, "__qualname__", fn))
        # Submissions in this burst were queued without pushing: push them now,
        # together (in this loop iteration: a single sync call waits for no other).
        self.task_submitter.pump_pending()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        task = self.loop.create_task(coro)
        task.add_done_callback(_log_task_exception)
        return task

    # -- start / stop ------------------------------------------------------
    def connect(self) -> None:
        self.run_sync(self._connect(), timeout=config.STARTUP_TIMEOUT)
        global_state.worker = self

    async def _connect(self) -> None:
        self.pool = rpc.ChannelPool(self.token)
        self.server, self.port = rpc.make_server(self.token, "0.0.0.0" if self.ip != "127.0.0.1" else "127.0.0.1")
        from jray._private.worker.servicer import CoreWorkerServicer

        wgrpc.add_CoreWorkerServiceServicer_to_server(CoreWorkerServicer(self), self.server)
        await self.server.start()
        if not self.is_driver and direct.enabled():  # tasks are pushed here over the direct transport
            self.direct_server = direct.worker_server(self, self.token)
            self.direct_port = await self.direct_server.start(
                "0.0.0.0" if self.ip != "127.0.0.1" else "127.0.0.1")
        self.gcs: ggrpc.GcsServiceStub = self.pool.stub(self.gcs_address, ggrpc.GcsServiceStub)
        self.raylet: rgrpc.RayletServiceStub = self.pool.stub(self.raylet_address, rgrpc.RayletServiceStub)
        reply = await self.raylet.RegisterWorker(
            rpb.RegisterWorkerRequest(worker_id=self.worker_id, pid=os.getpid(), port=self.port,
                                      is_driver=self.is_driver, direct_port=self.direct_port)
        )
        self.node_id = reply.node_id
        self.store_path = reply.store_path
        if reply.direct_port:  # put/get talk to the store from the calling thread, no loop hop
            self.raylet_direct = direct.BlockingClient(
                f"{self.raylet_address.rpartition(':')[0]}:{reply.direct_port}", self.token)
        if self.store_path:
            from jray._private.object_store import Arena

            self.arena = Arena.attach(self.store_path)
        if self.is_driver:
            job = gpb.JobInfo(
                driver=self.address, namespace=self.namespace, start_time=time.time(), driver_pid=os.getpid(),
                entrypoint=" ".join(sys.argv)[:200],
            )
            self.job_id = (await self.gcs.AddJob(gpb.AddJobRequest(job=job))).job_id
        self._events_flusher = self.spawn(self.task_events.flush_loop())
        self._borrower_prober = self.spawn(self._probe_borrowers_loop())

    @property
    def address(self) -> cpb.Address:
        a = self._address
        if a is None or a.port != self.port or a.node_id != self.node_id:
            a = self._address = cpb.Address(ip=self.ip, port=self.port, worker_id=self.worker_id, node_id=self.node_id,
                                            direct_port=self.direct_port)
        return a

    @property
    def owner_key(self) -> tuple[str, bytes]:
        return (f"{self.ip}:{self.port}", self.worker_id)

    def disconnect(self) -> None:
        if self.shutting_down:
            return
        self.shutting_down = True
        try:
            self.run_sync(self._disconnect(), timeout=10)
        except Exception as e:  # pragma: no cover - the cluster may be gone
            logger.debug("disconnect: %s", e)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if global_state.worker is self:
            global_state.worker = None

    async def _disconnect(self) -> None:
        await self.task_submitter.shutdown()
        self.actor_submitter.shutdown()
        if self._events_flusher is not None:
            self._events_flusher.cancel()
        if self._borrower_prober is not None:
            self._borrower_prober.cancel()
        await self.task_events.flush()
        if self.is_driver and self.job_id:
            try:
                await asyncio.wait_for(self.gcs.MarkJobFinished(gpb.MarkJobFinishedRequest(job_id=self.job_id)), 5)
            except Exception:
                pass
        await self.server.stop(grace=0.1)
        if self.direct_server is not None:
            self.direct_server.close()
        await self.pool.close()
        if self.arena is not None:
            try:
                self.arena.close()
            except Exception:
                pass

    # -- reference counting callbacks ---------------------------------------
    def _schedule_drain(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self.refs.drain)
        except RuntimeError:  # loop closed at shutdown
            pass

    def _on_free(self, object_id: bytes) -> None:
        self.call_soon(self._free_owned, object_id)

    def _free_owned(self, object_id: bytes) -> None:
        ret = self.objects.pop(object_id, None)
        self._pending_owned.discard(object_id)
        if ret is not None and ret.in_store and not self.shutting_down:
            self.spawn(self._free_in_store(ret))

    async def _free_in_store(self, ret: cpb.ReturnObject) -> None:
        try:
            await self.raylet.FreeObjects(rpb.FreeObjectsRequest(object_ids=[ret.object_id], broadcast=True))
        except grpc.RpcError:
            pass

    def owns_objects(self) -> bool:
        """Whether objects this process owns are still referenced (by it or
        by borrowers): it must not be reaped as an idle worker then."""
        return bool(self._pending_owned) or bool(self.refs.owned_ids())

    def note_deserialized_ref(self, object_id: bytes, owner: Any) -> None:
        """A ref arrived from another process (ObjectRef.__init__ counts it)."""

    # -- objects: put ------------------------------------------------------
    def new_put_id(self) -> bytes:
        return object_id_for(new_task_id(), 0)

    def put(self, value: Any, *, _owner: Any = None) -> Any:
        from jray.object_ref import ObjectRef

        if isinstance(value, ObjectRef):
            raise TypeError("Calling 'put' on an ObjectRef is not allowed. If you really want to do this, "
                            "you can wrap the ObjectRef in a list and call 'put' on it.")
        return self.put_serialized(serialization.serialize(value))

    def put_serialized(self, ser: serialization.SerializedObject) -> Any:
        from jray.object_ref import ObjectRef

        object_id = self.new_put_id()
        ret = self.store_serialized(object_id, ser)
        self.refs.add_owned(object_id)
        if ser.nested_refs:
            self.refs.set_contained(object_id, [r.binary() for r in ser.nested_refs],
                                    [r.owner_address() for r in ser.nested_refs])
        self.objects[object_id] = ret
        return ObjectRef(object_id, self.owner_key)

    def store_serialized(self, object_id: bytes, ser: serialization.SerializedObject,
                         owner: cpb.Address | None = None) -> cpb.ReturnObject:
        """Keep a value inline when small, else write it into the node's store
        (recorded there as ``owner``'s: a task's caller for its returns, else us)."""
        size = ser.total_size
        nested = [cpb.ObjectRefInfo(object_id=r.binary(), owner=_owner_proto(r.owner_address())) for r in ser.nested_refs]
        if size <= config.MAX_INLINE_BYTES or self.arena is None:
            return cpb.ReturnObject(object_id=object_id, data=ser.to_bytes(), size=size, nested_refs=nested,
                                    is_error=bool(ser.flags & serialization.FLAG_ERROR))
        self.write_to_store(object_id, ser, owner)
        return cpb.ReturnObject(object_id=object_id, in_store=True, node_id=self.node_id, size=size,
                                nested_refs=nested, is_error=bool(ser.flags & serialization.FLAG_ERROR))

    # -- objects: readiness ------------------------------------------------
    def set_ready(self, ret: cpb.ReturnObject) -> None:
        """Loop thread: an object's value or location is known."""
        oid = ret.object_id
        self._pending_owned.discard(oid)
        counted = False
        if ret.nested_refs:
            # Refs in a task's return value, handed off to us (see
            # ``hand_off``): we borrow them as long as the value lives.
            counted = self.refs.set_contained(
                oid, [r.object_id for r in ret.nested_refs], [_owner_key(r.owner) for r in ret.nested_refs],
                registered=True)
        if oid not in self.refs:  # nobody holds it any more
            if ret.in_store:
                self.spawn(self._free_in_store(ret))
            if ret.nested_refs and not counted:
                self.release_hand_off(ret)
            self._wake(oid)
            return
        self.objects[oid] = ret
        self._wake(oid)

    def release_hand_off(self, ret: cpb.ReturnObject) -> None:
        """A return value nobody wants: give back the borrower registrations
        its worker made for us (``hand_off``)."""
        seen: set[bytes] = set()
        for r in ret.nested_refs:
            owner = _owner_key(r.owner)
            if r.object_id not in seen and owner is not None:
                seen.add(r.object_id)
                self._on_borrow(r.object_id, owner, False)

    def _wake(self, oid: bytes) -> None:
        for fut in self._waiters.pop(oid, ()):
            if not fut.done():
                fut.set_result(None)

    def add_pending(self, object_id: bytes) -> None:
        self.refs.add_owned(object_id)
        self._pending_owned.add(object_id)

    async def wait_local_ready(self, object_id: bytes) -> None:
        if object_id in self.objects:
            return
        fut = self.loop.create_future()
        self._waiters.setdefault(object_id, []).append(fut)
        await fut

    async def _ensure_ready(self, ref: Any) -> None:
        """Loop thread: wait until ``ref``'s value or location is known here."""
        oid = ref.binary()
        if oid in self.objects:
            return
        owner = ref.owner_address()
        if owner is None or owner == self.owner_key:
            if oid not in self._pending_owned:
                raise exceptions.ObjectLostError(oid.hex(), f"Object {oid.hex()} is unknown to its owner "
                                                 "(it was freed, or its ref was created by hand).")
            await self.wait_local_ready(oid)
            return
        # Borrowed: ask the owner (long poll), one request per object.
        waiters = self._waiters.get(oid)
        if waiters is not None:
            fut = self.loop.create_future()
            waiters.append(fut)
            await fut
            return
        self._waiters[oid] = []
        try:
            stub = self.pool.stub(owner[0], wgrpc.CoreWorkerServiceStub)
            while True:
                try:
                    reply = await stub.GetObjectStatus(wpb.GetObjectStatusRequest(object_id=oid, timeout=30.0))
                except grpc.RpcError as e:
                    if rpc.is_connection_error(e):
                        err: exceptions.RayError = exceptions.OwnerDiedError(
                            oid.hex(), f"Object {oid.hex()} is lost: its owner ({owner[0]}) has died.")
                        self.objects[oid] = _error_return(oid, err)
                        break
                    raise
                if reply.status == wpb.GetObjectStatusReply.READY:
                    self.objects[oid] = reply.object
                    break
                if reply.status in (wpb.GetObjectStatusReply.FREED, wpb.GetObjectStatusReply.NOT_FOUND):
                    err = exceptions.ObjectLostError(oid.hex(), f"Object {oid.hex()} was freed by its owner.")
                    self.objects[oid] = _error_return(oid, err)
                    break
        finally:
            self._wake(oid)

    # -- objects: get ------------------------------------------------------
    def get(self, refs: Sequence[Any], timeout: float | None) -> list[Any]:
        missing = [r for r in refs if r.binary() not in self.objects]
        if missing:
            blocked = self._notify_blocked(True)
            try:
                self._wait_all(missing, timeout)
            finally:
                if blocked:
                    self._notify_blocked(False)
        return [self._value_of(r) for r in refs]

    def _wait_all(self, refs: Sequence[Any], timeout: float | None) -> None:
        me = self.owner_key
        if all(r.owner_address() in (None, me) for r in refs) and not self.in_loop_thread():
            self._wait_owned(refs, timeout)
            return

        async def waiter() -> None:
            await asyncio.gather(*(self._ensure_ready(r) for r in refs))

        try:
            self.run_sync(asyncio.wait_for(waiter(), timeout) if timeout is not None else waiter())
        except (asyncio.TimeoutError, concurrent.futures.TimeoutError, TimeoutError):
            raise exceptions.GetTimeoutError(
                f"Get timed out: some object(s) not ready after {timeout} s.") from None
        except KeyboardInterrupt:
            self.on_interrupt(refs)
            raise

    def _wait_owned(self, refs: Sequence[Any], timeout: float | None) -> None:
        """Objects this process owns: wait on a plain event the loop sets,
        without a coroutine per get (the synchronous round trip's hot path)."""
        ids = [r.binary() for r in refs]
        waiter = _CountDown(len(ids))
        self.loop.call_soon_threadsafe(self._register_owned_waiter, ids, waiter)
        try:
            if not waiter.event.wait(timeout):
                raise exceptions.GetTimeoutError(f"Get timed out: some object(s) not ready after {timeout} s.")
        except KeyboardInterrupt:
            self.on_interrupt(refs)
            raise
        if waiter.error is not None:
            raise waiter.error

    def _register_owned_waiter(self, ids: list[bytes], waiter: _CountDown, lost_is_done: bool = False) -> None:
        for oid in ids:
            if waiter.done():
                return
            if oid in self.objects or (lost_is_done and oid not in self._pending_owned):
                waiter.set_result(None)
            elif oid not in self._pending_owned:
                waiter.fail(exceptions.ObjectLostError(oid.hex(), f"Object {oid.hex()} is unknown to its owner "
                                                       "(it was freed, or its ref was created by hand)."))
            else:
                self._waiters.setdefault(oid, []).append(waiter)  # type: ignore[arg-type]

    def on_interrupt(self, refs: Sequence[Any]) -> None:
        """Hook for the notebook layer: Ctrl-C while waiting on ``refs``."""

    @contextlib.contextmanager
    def _blocked_on(self, refs: Sequence[Any]) -> Iterator[None]:
        """Around a wait in a task: the raylet lends our CPU meanwhile, and a
        Ctrl-C cancels what is waited on (``on_interrupt``)."""
        blocked = self._notify_blocked(True)
        try:
            yield
        except KeyboardInterrupt:
            self.on_interrupt(refs)
            raise
        finally:
            if blocked:
                self._notify_blocked(False)

    def _notify_blocked(self, blocked: bool) -> bool:
        if self.is_driver or current_task.get() is None:
            return False
        # Fire and forget (ordered by seq at the raylet): a get in a task does
        # not wait two extra round trips.
        self._blocked_seq += 1
        req = rpb.WorkerBlockedRequest(worker_id=self.worker_id, blocked=blocked, seq=self._blocked_seq)

        async def send() -> None:
            try:
                await self.raylet.WorkerBlocked(req)
            except grpc.RpcError:
                pass

        self.post(lambda: self.spawn(send()))
        return True

    def _value_of(self, ref: Any) -> Any:
        ret = self.objects.get(ref.binary())
        if ret is None:  # freed between readiness and here
            raise exceptions.ObjectLostError(ref.hex())
        if ret.in_store:
            value = self._read_from_store(ret)
        else:
            value = serialization.deserialize(ret.data)
        if ret.is_error:
            raise _as_raisable(value)
        return value

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

    # -- objects: wait -----------------------------------------------------
    def wait(self, refs: Sequence[Any], num_returns: int, timeout: float | None, fetch_local: bool) -> tuple[list, list]:
        objects = self.objects
        ids = [r._id for r in refs]
        not_ready_ids = [oid for oid in ids if oid not in objects]
        n_ready = len(ids) - len(not_ready_ids)
        key = self.owner_key
        if n_ready < num_returns and (timeout is None or timeout > 0) and all(
                r._owner is None or r._owner == key for r in refs):
            # All owned here (the common case): count down on a plain event
            # the loop sets as objects become ready, without a coroutine per
            # ref (wait one at a time over many refs is O(refs) per call).
            countdown = _CountDown(num_returns - n_ready)
            self.loop.call_soon_threadsafe(self._register_owned_waiter, not_ready_ids, countdown, True)
            with self._blocked_on(refs):
                countdown.event.wait(timeout)
        elif n_ready < num_returns and (timeout is None or timeout > 0):
            ready_ids = set(ids) - set(not_ready_ids)

            async def waiter() -> None:
                tasks = [asyncio.ensure_future(self._ensure_ready(r)) for r in refs if r.binary() not in ready_ids]
                need = num_returns - len(ready_ids)
                deadline = None if timeout is None else self.loop.time() + timeout
                try:
                    pending = set(tasks)
                    done_n = 0
                    while pending and done_n < need:
                        left = None if deadline is None else max(0.0, deadline - self.loop.time())
                        done, pending = await asyncio.wait(pending, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                        if not done:
                            break
                        done_n += len(done)
                finally:
                    for t in tasks:
                        t.cancel()

            with self._blocked_on(refs):
                self.run_sync(waiter())
        ready: list[Any] = []
        not_ready: list[Any] = []
        for r, oid in zip(refs, ids, strict=True):
            (ready if oid in objects and len(ready) < num_returns else not_ready).append(r)
        if fetch_local:
            self._prefetch(ready)
        return ready, not_ready

    def _prefetch(self, refs: Sequence[Any]) -> None:
        for r in refs:
            ret = self.objects.get(r.binary())
            if ret is not None and ret.in_store and ret.node_id != self.node_id:
                try:
                    self._read_from_store(ret)
                except exceptions.RayError:
                    pass

    def ref_future(self, ref: Any) -> concurrent.futures.Future:
        out: concurrent.futures.Future = concurrent.futures.Future()

        async def run() -> None:
            try:
                await self._ensure_ready(ref)
            except BaseException as e:  # noqa: BLE001
                out.set_exception(e)
                return
            # Deserialize off the loop: store reads make blocking raylet calls.
            threading.Thread(target=_resolve_into, args=(self, ref, out), daemon=True).start()

        asyncio.run_coroutine_threadsafe(run(), self.loop)
        return out

    # -- functions ---------------------------------------------------------
    def export(self, key: str, pickled: bytes) -> None:
        if key in self._exported:
            return

        async def put() -> None:
            await self.gcs.KVPut(gpb.KVPutRequest(ns="fun", key=key.encode(), value=pickled, overwrite=False))

        self.run_sync(put())
        self._exported.add(key)

    def load_function(self, key: str) -> Any:
        fn = self._functions.get(key)
        if fn is None:
            async def get() -> Any:
                return await self.gcs.KVGet(gpb.KVGetRequest(ns="fun", key=key.encode()))

            reply = self.run_sync(get())
            if not reply.found:
                raise exceptions.RaySystemError(f"function {key} was not exported to the GCS")
            import cloudpickle

            fn = self._functions[key] = cloudpickle.loads(reply.value)
        return fn

    # -- streaming generators ------------------------------------------------
    def next_generator_item(self, task_id: bytes, index: int, timeout: float | None) -> Any:
        fut = self.next_generator_item_future(task_id, index)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            raise exceptions.GetTimeoutError("timed out waiting for the generator's next item") from None

    def next_generator_item_future(self, task_id: bytes, index: int) -> concurrent.futures.Future:
        async def run() -> Any:
            return await self.task_submitter.generator_item(task_id, index)

        return asyncio.run_coroutine_threadsafe(run(), self.loop)


class _CountDown:
    """Quacks like the asyncio futures in ``_waiters``; sets a thread event
    once every awaited object is ready (or one is lost)."""

    __slots__ = ("left", "event", "error")

    def __init__(self, n: int) -> None:
        self.left = n
        self.event = threading.Event()
        self.error: BaseException | None = None
        if n == 0:
            self.event.set()

    def done(self) -> bool:
        return self.event.is_set()

    def set_result(self, _value: Any) -> None:
        self.left -= 1
        if self.left <= 0:
            self.event.set()

    def fail(self, err: BaseException) -> None:
        self.error = err
        self.event.set()


def _resolve_into(worker: CoreWorker, ref: Any, out: concurrent.futures.Future) -> None:
    try:
        out.set_result(worker._value_of(ref))
    except BaseException as e:  # noqa: BLE001
        out.set_exception(e)


def _owner_proto(owner: Any) -> cpb.Address:
    if owner is None:
        return cpb.Address()
    ip, port = owner[0].rsplit(":", 1)
    return cpb.Address(ip=ip, port=int(port), worker_id=owner[1])


def _owner_key(addr: cpb.Address) -> tuple[str, bytes] | None:
    if not addr.port:
        return None
    return (f"{addr.ip}:{addr.port}", addr.worker_id)


def _error_return(object_id: bytes, err: BaseException) -> cpb.ReturnObject:
    return cpb.ReturnObject(object_id=object_id, data=serialization.serialize(err, error=True).to_bytes(), is_error=True)


def _as_raisable(value: Any) -> BaseException:
    if isinstance(value, exceptions.RayTaskError):
        return value.as_instanceof_cause()
    if isinstance(value, BaseException):
        return value
    return exceptions.RaySystemError(f"bad error object: {value!r}")


def _log_task_exception(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.debug("background task failed", exc_info=task.exception())
