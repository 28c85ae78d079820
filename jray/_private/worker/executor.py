"""Worker side: running the tasks and actor calls pushed to this process.

Normal tasks and calls of a plain actor run one at a time on the process's
main thread (so signals, cancellation by KeyboardInterrupt, and libraries
that insist on the main thread work). Threaded actors run calls on a thread
pool of ``max_concurrency`` threads, async actors on their own asyncio loop
with at most ``max_concurrency`` calls in flight; concurrency groups get
their own pool or limit. Calls from one caller start in the order they were
submitted (sequence numbers), whatever order the network delivers them in.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import logging
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc

from jray import exceptions
from jray._private import debugger, serialization
from jray._private.ids import object_id_for
from jray._private.object_ref import DynamicObjectRefGenerator, ObjectRef
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import core_worker_pb2 as wpb
from jray._private.protocol import core_worker_pb2_grpc as wgrpc
from jray._private.protocol import gcs_pb2 as gpb
from jray._private.worker.core_worker import current_task
from jray._private.worker.log_stream import LogForwarder
from jray._private.worker.task_events import error_text

if TYPE_CHECKING:
    from jray._private.worker.core_worker import CoreWorker

logger = logging.getLogger(__name__)
NORMAL, CREATION, ACTOR = cpb.NORMAL_TASK, cpb.ACTOR_CREATION_TASK, cpb.ACTOR_TASK


class ActorExit(BaseException):
    """Raised by ``exit_actor()`` to end the actor after the current call."""


class Executor:
    def __init__(self, worker: CoreWorker) -> None:
        self.setup_error: str | None = None  # worker_process_setup_hook's traceback, when it raised
        self.w = worker
        self.main_queue: queue.Queue = queue.Queue()
        self.actor: Any = None
        self.actor_spec: cpb.TaskSpec | None = None
        self.is_async = False
        self.actor_loop: asyncio.AbstractEventLoop | None = None
        self.pools: dict[str, concurrent.futures.ThreadPoolExecutor] = {}
        self.async_limits: dict[str, asyncio.Semaphore] = {}
        self.expected_seq: dict[bytes, int] = {}
        self.seq_waiters: dict[tuple[bytes, int], asyncio.Future] = {}
        self.running_main: bytes | None = None
        self.cancelled: set[bytes] = set()
        self.async_tasks: dict[bytes, asyncio.Task] = {}  # async actor calls, on the actor's loop
        self.logs = LogForwarder(worker)
        self.node_has_gpus = bool(os.environ.get("JRAY_NODE_HAS_GPUS"))  # set by the raylet at the worker's start
        self.pid = os.getpid()
        debugger.install_breakpointhook()  # breakpoint() in a task: a remote pdb session
        self.exiting = False
        # The actor-creation task this worker took (its task id and reply):
        # pushed again (a GCS restarted mid-creation asks once more), it is
        # answered from here, never run a second time.
        self.creation: tuple[bytes, asyncio.Future] | None = None

    # -- entry from the gRPC servicer (loop thread) ---------------------------
    async def push_task(self, spec: cpb.TaskSpec) -> wpb.PushTaskReply:
        if spec.type == CREATION and self.creation is not None and self.creation[0] == spec.task_id:
            return await asyncio.shield(self.creation[1])  # type: ignore[no-any-return]
        if self.exiting:
            return wpb.PushTaskReply(worker_exiting=True, system_error="the worker is exiting")
        if spec.type == ACTOR:
            return await self._actor_call(spec)
        fut = self.w.loop.create_future()
        self.main_queue.put((spec, fut))
        if spec.type == CREATION:
            # Shielded: the caller (the GCS) dying cancels this call, not
            # the creation, whose reply waits here for its next push.
            self.creation = (spec.task_id, fut)
            fut = asyncio.shield(fut)
        reply: wpb.PushTaskReply = await fut
        await self.w.flush_borrows()
        return reply

    def push_fast(self, spec: cpb.TaskSpec, respond: Callable[[wpb.PushTaskReply], None]) -> bool:
        """Loop thread: take a pushed task, or an actor call next in its
        caller's sequence for the main thread, with no coroutine: the main
        thread's answer goes out from the loop's next turn (``_Responder``).
        False: ``push_task`` takes it (creation, async and threaded actors,
        calls out of order, an exiting worker)."""
        if self.exiting:
            return False
        if spec.type == ACTOR:
            if self.actor is None or self.is_async or self.pools or spec.concurrency_group:
                return False
            caller, seq = spec.caller_id, spec.sequence_no
            if seq != self.expected_seq.get(caller, 0):
                return False
            self._next_expected(caller, seq + 1)
        elif spec.type != NORMAL:
            return False
        self.main_queue.put((spec, _Responder(self.w, respond)))
        return True

    async def push_batch(self, specs: Any) -> Any:
        """Normal tasks pushed together: queue them all, answer each in turn."""
        loop = self.w.loop
        if specs and specs[0].type == ACTOR and not self._in_order_on_main(specs):
            async def one(spec: cpb.TaskSpec) -> wpb.PushTaskReply:
                r = await self._actor_call(spec)
                r.task_id = spec.task_id
                return r

            for done in asyncio.as_completed([asyncio.ensure_future(one(s)) for s in specs]):
                yield await done
            return
        # Answered as they finish (a task taken back before it started is
        # answered at once, not after the ones ahead of it).
        finished: asyncio.Queue = asyncio.Queue()
        for spec in specs:
            fut = loop.create_future()
            fut.add_done_callback(functools.partial(_put_done, finished, spec.task_id))
            self.main_queue.put((spec, fut))
        for _ in range(len(specs)):
            task_id, fut = await finished.get()
            reply: wpb.PushTaskReply = fut.result()
            await self.w.flush_borrows()
            reply.task_id = task_id
            yield reply

    def _in_order_on_main(self, specs: Any) -> bool:
        """A batch of calls to a plain actor that are next in their caller's
        sequence: queue them for the main thread as they are, in one go (no
        task per call). Else each goes through ``_actor_call``."""
        if self.actor is None or self.exiting or self.is_async or self.pools:
            return False
        caller = specs[0].caller_id
        seq = self.expected_seq.get(caller, 0)
        for spec in specs:
            if spec.caller_id != caller or spec.sequence_no != seq or spec.concurrency_group:
                return False
            seq += 1
        self._next_expected(caller, seq)
        return True

    def _next_expected(self, caller: bytes, seq: int) -> None:
        """``caller``'s calls up to ``seq`` are taken: wake the one numbered ``seq`` if it waits."""
        self.expected_seq[caller] = seq
        nxt = self.seq_waiters.pop((caller, seq), None)
        if nxt is not None and not nxt.done():
            nxt.set_result(None)

    async def _actor_call(self, spec: cpb.TaskSpec) -> wpb.PushTaskReply:
        caller, seq = spec.caller_id, spec.sequence_no
        expected = self.expected_seq.get(caller, 0)
        if seq > expected:
            fut = self.w.loop.create_future()
            self.seq_waiters[(caller, seq)] = fut
            await fut
        self._next_expected(caller, seq + 1)
        if self.actor is None and not self.exiting:
            return self._reply_error(spec, exceptions.RayActorError("This worker holds no actor."))
        group = spec.concurrency_group or self._method_group(spec.method_name)
        done = self.w.loop.create_future()
        if self.is_async:
            assert self.actor_loop is not None
            cf = asyncio.run_coroutine_threadsafe(self._run_async_call(spec, group), self.actor_loop)
            cf.add_done_callback(lambda f: self.w.loop.call_soon_threadsafe(_transfer, f, done))
        elif group in self.pools:
            pool = self.pools[group]
            cf = pool.submit(self.execute, spec)
            cf.add_done_callback(lambda f: self.w.loop.call_soon_threadsafe(_transfer, f, done))
        else:
            self.main_queue.put((spec, done))
        reply: wpb.PushTaskReply = await done
        await self.w.flush_borrows()
        return reply

    def _method_group(self, method: str) -> str:
        meta = getattr(self, "method_meta", {}).get(method) or {}
        return meta.get("concurrency_group") or "_default"

    # -- main thread ---------------------------------------------------------------
    def run_forever(self) -> None:
        while True:
            spec, fut = self.main_queue.get()
            if spec is None:
                return
            self.running_main = spec.task_id
            try:
                reply = self.execute(spec)
            except KeyboardInterrupt:
                reply = self._reply_error(spec, exceptions.TaskCancelledError(spec.task_id.hex()))
            finally:
                self.running_main = None
            # A burst of finished tasks wakes the loop once (post's inbox).
            self.w.post(_set, fut, reply)
            if self.exiting:
                self._finish_exit()

    # -- executing one task (any thread) ---------------------------------------------
    def execute(self, spec: cpb.TaskSpec) -> wpb.PushTaskReply:
        if spec.type == CREATION:  # reported at once: the GCS learns the actor's pid from it
            self.w.task_events.record(spec, "RUNNING")
            return self._execute(spec)
        events = self.w.task_events
        deferred = events.start_running(spec)
        started: float | None = None
        try:
            reply = self._execute(spec)
        finally:
            if deferred:
                started = events.end_running(spec.task_id)
        if started is not None:  # no flush reported it running: its owner reports where and when it ran
            reply.started_at, reply.pid = started, self.pid
            reply.worker_id, reply.node_id = self.w.worker_id, self.w.node_id
        return reply

    def _execute(self, spec: cpb.TaskSpec) -> wpb.PushTaskReply:
        token = current_task.set(spec)
        self.logs.set_context(spec)
        env_restore = self._apply_env(spec)
        try:
            if spec.task_id in self.cancelled:
                raise KeyboardInterrupt
            if self.setup_error is not None:  # the env's worker_process_setup_hook raised here
                return self._app_error(spec, exceptions.RuntimeEnvSetupError(self.setup_error))
            if spec.type == CREATION:
                return self._create_actor(spec)
            fn = self._callable(spec)
            args, kwargs = self._resolve_args(spec)
            if spec.streaming:
                return self._stream(spec, fn(*args, **kwargs))
            t0 = time.perf_counter()
            result = fn(*args, **kwargs)
            if inspect.iscoroutine(result):
                result = asyncio.run(result)
            # The user function's own time (not loading it or its arguments):
            # owners push windows of tasks known to be short (task_submitter).
            run_seconds = time.perf_counter() - t0
            reply = self._returns(spec, result)
            reply.run_seconds = run_seconds
            if self.w.blocked_tasks and spec.task_id in self.w.blocked_tasks:
                reply.blocked = True
            return reply
        except KeyboardInterrupt:
            if spec.task_id in self.cancelled:
                return self._reply_error(spec, exceptions.TaskCancelledError(spec.task_id.hex()))
            raise
        except ActorExit:
            return self._exit_actor_reply(spec)
        except Exception as e:  # noqa: BLE001 - user code
            return self._app_error(spec, e)
        finally:
            self.cancelled.discard(spec.task_id)
            if self.w.blocked_tasks:
                self.w.blocked_tasks.discard(spec.task_id)
            _restore_env(env_restore)
            self.logs.end_task()
            current_task.reset(token)

    async def _run_async_call(self, spec: cpb.TaskSpec, group: str) -> wpb.PushTaskReply:
        me = asyncio.current_task()
        if me is not None:
            self.async_tasks[spec.task_id] = me
        try:
            if spec.task_id in self.cancelled:
                raise asyncio.CancelledError
            return await self._run_async_call_in(spec, group)
        except asyncio.CancelledError:  # cancelled while waiting for a concurrency slot
            return self._reply_error(spec, exceptions.TaskCancelledError(spec.task_id.hex()))
        finally:
            self.async_tasks.pop(spec.task_id, None)
            self.cancelled.discard(spec.task_id)

    async def _run_async_call_in(self, spec: cpb.TaskSpec, group: str) -> wpb.PushTaskReply:
        sem = self.async_limits.get(group) or self.async_limits["_default"]
        async with sem:
            token = current_task.set(spec)
            self.logs.set_context(spec)
            self.w.task_events.record(spec, "RUNNING")
            try:
                fn = self._callable(spec)
                if any(a.HasField("ref") for a in spec.args):  # may block on get(): off the loop
                    args, kwargs = await asyncio.get_running_loop().run_in_executor(None, self._resolve_args, spec)
                else:
                    args, kwargs = self._resolve_args(spec)
                if spec.streaming:
                    return await self._stream_async(spec, fn(*args, **kwargs))
                result = fn(*args, **kwargs)
                if inspect.isawaitable(result):
                    result = await result
                return self._returns(spec, result)
            except ActorExit:
                return self._exit_actor_reply(spec)
            except asyncio.CancelledError:
                return self._reply_error(spec, exceptions.TaskCancelledError(spec.task_id.hex()))
            except Exception as e:  # noqa: BLE001
                return self._app_error(spec, e)
            finally:
                await self.logs.drain()
                current_task.reset(token)

    def _callable(self, spec: cpb.TaskSpec) -> Callable[..., Any]:
        if spec.type == ACTOR:
            if spec.method_name == "__jray_ready__":
                return lambda: True
            if spec.method_name == "__jray_terminate__":
                def terminate() -> None:
                    raise ActorExit()
                return terminate
            return getattr(self.actor, spec.method_name)  # type: ignore[no-any-return]
        fn = self.w.load_function(spec.function.key)
        return getattr(fn, "_function", fn)  # type: ignore[no-any-return]

    def _resolve_args(self, spec: cpb.TaskSpec) -> tuple[list[Any], dict[str, Any]]:

        by_ref = [a for a in spec.args if a.HasField("ref")]
        values: dict[bytes, Any] = {}
        if by_ref:
            # The pending task holds these at their owner: no borrower count
            # here. Where the owner said the value is in a store, skip asking.
            objects = self.w.objects
            for a in by_ref:
                if a.HasField("location") and a.ref.object_id not in objects:
                    objects[a.ref.object_id] = a.location
            refs = [ObjectRef(a.ref.object_id, (f"{a.ref.owner.ip}:{a.ref.owner.port}", a.ref.owner.worker_id),
                              _count=False) for a in by_ref]
            try:
                for r, v in zip(refs, self.w.get(refs, None), strict=True):
                    values[r.binary()] = v
            finally:
                for a in by_ref:  # cached for this call only, unless a ref here holds it
                    if a.ref.object_id not in self.w.refs:
                        objects.pop(a.ref.object_id, None)
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for a in spec.args:
            v = values[a.ref.object_id] if a.HasField("ref") else serialization.deserialize(a.data)
            if a.name:
                kwargs[a.name] = v
            elif a.star:
                args.extend(v)
            else:
                args.append(v)
        return args, kwargs

    # -- results -----------------------------------------------------------------
    def _returns(self, spec: cpb.TaskSpec, result: Any) -> wpb.PushTaskReply:
        n = spec.num_returns
        if n == 0:
            values: list[Any] = []
        elif n == 1:
            values = [result]
        else:
            if inspect.isgenerator(result):
                result = list(result)
            try:
                values = list(result)
            except TypeError:
                return self._app_error(spec, TypeError(
                    f"{spec.name} declared num_returns={n} but returned a non-sequence {type(result).__name__}"))
            if len(values) != n:
                return self._app_error(spec, ValueError(
                    f"{spec.name} declared num_returns={n} but returned {len(values)} values"))
        reply = wpb.PushTaskReply()
        for i, v in enumerate(values):
            reply.returns.append(self._make_return(spec, object_id_for(spec.task_id, i + 1), v))
        return reply

    def _make_return(self, spec: cpb.TaskSpec, object_id: bytes, value: Any) -> cpb.ReturnObject:
        ser = serialization.serialize(value)
        if ser.nested_refs:  # the caller borrows them from here on (before the reply leaves)
            self.w.hand_off(ser.nested_refs, spec.caller)
        return self.w.store_serialized(object_id, ser, owner=spec.caller)  # the caller owns returns

    def _app_error(self, spec: cpb.TaskSpec, e: BaseException) -> wpb.PushTaskReply:
        tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        self.w.task_events.record(spec, "FAILED", error_text(e))
        name = spec.name or spec.function.qualname or spec.method_name
        err = e if isinstance(e, exceptions.RayTaskError) else exceptions.RayTaskError(
            name, tb, e, pid=os.getpid(), ip=self.w.ip,
            actor_repr=(f"{self.actor_spec.actor_creation.class_name}" if self.actor_spec is not None else None))
        if err is not e:  # a task's own error: its frames stay here a while for a post-mortem
            err.task_id = spec.task_id.hex()
            err.debug_address = debugger.keep_post_mortem(spec.task_id, name, e)
        reply = self._reply_error(spec, err)
        reply.is_application_error = True
        reply.retryable = _retryable(spec, e)
        return reply

    def _reply_error(self, spec: cpb.TaskSpec, err: BaseException) -> wpb.PushTaskReply:
        reply = wpb.PushTaskReply()
        n = 1 if spec.streaming or spec.type == CREATION else spec.num_returns
        data = serialization.serialize(err, error=True).to_bytes()
        for i in range(max(n, 1) if spec.type != CREATION else 1):
            reply.returns.append(cpb.ReturnObject(object_id=object_id_for(spec.task_id, i + 1), data=data, is_error=True))
        return reply

    # -- streaming generators -------------------------------------------------------
    def _report_item(self, spec: cpb.TaskSpec, index: int, item: cpb.ReturnObject | None) -> None:
        msg = wpb.GeneratorItem(task_id=spec.task_id, index=index, done=item is None, attempt=spec.attempt)
        if item is not None:
            msg.item.CopyFrom(item)
        async def send() -> None:
            if item is not None and item.nested_refs:
                await self.w.flush_borrows()  # the hand-off reaches the owners first
            stub = self.w.pool.stub(f"{spec.caller.ip}:{spec.caller.port}", wgrpc.CoreWorkerServiceStub)
            await stub.ReportGeneratorItem(msg)

        self.w.run_sync(send())

    def _stream(self, spec: cpb.TaskSpec, gen: Any) -> wpb.PushTaskReply:
        index = 0
        try:
            if not inspect.isgenerator(gen) and not hasattr(gen, "__next__"):
                gen = iter([gen])
            for value in gen:
                index += 1
                self.logs.flush()
                self._report_item(spec, index, self._make_return(spec, object_id_for(spec.task_id, index + 1), value))
        except (KeyboardInterrupt, ActorExit):
            raise
        except Exception as e:  # noqa: BLE001 - the error becomes the next item
            index += 1
            err = self._app_error(spec, e).returns[0]
            err.object_id = object_id_for(spec.task_id, index + 1)
            self._report_item(spec, index, err)
        self._report_item(spec, index + 1, None)
        return self._stream_done(spec, index)

    def _stream_done(self, spec: cpb.TaskSpec, n: int) -> wpb.PushTaskReply:
        """The reply ending a generator task; ``num_returns="dynamic"``: its
        one return is a DynamicObjectRefGenerator of the items' refs (the
        caller owns them already: they were reported as they came)."""
        reply = wpb.PushTaskReply(num_streamed=n)
        value: Any = None
        if spec.dynamic_returns:
            owner = (f"{spec.caller.ip}:{spec.caller.port}", spec.caller.worker_id)
            value = DynamicObjectRefGenerator(
                [ObjectRef(object_id_for(spec.task_id, i + 2), owner, _count=False) for i in range(n)])
        reply.returns.append(self._make_return(spec, object_id_for(spec.task_id, 1), value))
        return reply

    async def _stream_async(self, spec: cpb.TaskSpec, gen: Any) -> wpb.PushTaskReply:
        loop = asyncio.get_running_loop()
        if not hasattr(gen, "__anext__"):
            return await loop.run_in_executor(None, self._stream, spec, gen)
        index = 0
        try:
            async for value in gen:
                index += 1
                item = self._make_return(spec, object_id_for(spec.task_id, index + 1), value)
                await loop.run_in_executor(None, self._report_item, spec, index, item)
        except Exception as e:  # noqa: BLE001
            index += 1
            err = self._app_error(spec, e).returns[0]
            err.object_id = object_id_for(spec.task_id, index + 1)
            await loop.run_in_executor(None, self._report_item, spec, index, err)
        await loop.run_in_executor(None, self._report_item, spec, index + 1, None)
        return self._stream_done(spec, index)

    # -- actors ---------------------------------------------------------------------
    def _create_actor(self, spec: cpb.TaskSpec) -> wpb.PushTaskReply:
        import pickle

        cls = self.w.load_function(spec.function.key, spec.function.pickled)
        spec.function.ClearField("pickled")  # kept as the actor's spec: without the class's bytes
        cls = getattr(cls, "_modified_class", cls)
        ac = spec.actor_creation
        self.actor_spec = spec
        self.method_meta = pickle.loads(ac.method_meta) if ac.method_meta else {}
        groups: dict[str, int] = pickle.loads(ac.concurrency_groups) if ac.concurrency_groups else {}
        self.is_async = ac.is_async
        if self.is_async:
            self._start_actor_loop(ac.max_concurrency, groups)
        elif ac.max_concurrency > 1 or groups:
            self.pools["_default"] = concurrent.futures.ThreadPoolExecutor(
                max(1, ac.max_concurrency), thread_name_prefix="jray-actor")
            for g, n in groups.items():
                self.pools[g] = concurrent.futures.ThreadPoolExecutor(n, thread_name_prefix=f"jray-actor-{g}")
        try:
            args, kwargs = self._resolve_args(spec)
            self.actor = cls.__new__(cls)
            if self.is_async:
                assert self.actor_loop is not None
                fut = asyncio.run_coroutine_threadsafe(_call_async_init(self.actor, args, kwargs), self.actor_loop)
                fut.result()
            else:
                self.actor.__init__(*args, **kwargs)
        except ActorExit:
            return self._exit_actor_reply(spec)
        except Exception as e:  # noqa: BLE001
            self.actor = None
            reply = self._app_error(spec, e)
            reply.worker_exiting = True
            self.exiting = True
            return reply
        self.w.task_events.record(spec, "FINISHED")
        return wpb.PushTaskReply()

    def _start_actor_loop(self, max_concurrency: int, groups: dict[str, int]) -> None:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            self.async_limits["_default"] = asyncio.Semaphore(max(1, max_concurrency))
            for g, n in groups.items():
                self.async_limits[g] = asyncio.Semaphore(n)
            ready.set()
            loop.run_forever()

        threading.Thread(target=run, name="jray-async-actor", daemon=True).start()
        ready.wait(10)
        self.actor_loop = loop

    def _exit_actor_reply(self, spec: cpb.TaskSpec) -> wpb.PushTaskReply:
        """exit_actor(): tell the GCS (no restart), answer, then leave."""
        self.exiting = True
        actor_id = spec.actor_id or spec.actor_creation.actor_id

        async def report() -> None:
            await self.w.gcs.ReportWorkerFailure(gpb.ReportWorkerFailureRequest(
                worker_id=self.w.worker_id, node_id=self.w.node_id, actor_id=actor_id,
                reason="The actor exited by calling exit_actor().", intentional=True))

        try:
            self.w.run_sync(report(), timeout=10)
        except Exception:  # noqa: BLE001
            pass
        reply = self._reply_error(spec, exceptions.ActorDiedError(
            "The actor exited by calling exit_actor().", actor_id.hex()))
        reply.worker_exiting = True
        if threading.current_thread() is not threading.main_thread():
            self.w.loop.call_later(0.2, self.exit_now, "exit_actor")
        return reply

    def _finish_exit(self) -> None:
        time.sleep(0.1)  # let the reply go out
        self.exit_now("actor exit")

    def exit_now(self, reason: str) -> None:
        self.logs.flush()
        logger.info("worker exiting: %s", reason)
        sys.stdout.flush()
        os._exit(0)

    # -- cancel ------------------------------------------------------------------
    def cancel(self, task_id: bytes, force: bool) -> bool:
        if force:
            self.w.loop.call_later(0.01, self.exit_now, "force cancel")
            return True
        self.cancelled.add(task_id)  # not started yet: it will not run
        if self.actor_loop is not None:  # async actor: cancel its asyncio task
            loop = self.actor_loop

            def cancel_there() -> None:
                t = self.async_tasks.get(task_id)
                if t is not None:
                    t.cancel()

            loop.call_soon_threadsafe(cancel_there)
            return True
        if self.running_main == task_id and (
                self.actor_spec is None or getattr(self.actor, "__jray_interruptible__", False)):
            # A task (or an actor that asks for it, such as a %%remote
            # namespace): a real signal (not _thread.interrupt_main) so
            # blocking calls such as time.sleep return with EINTR and raise
            # at once. A running call of any other actor is not interrupted:
            # it sees is_canceled() turn True.
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # type: ignore[arg-type]
        return True

    def requeue(self, task_id: bytes) -> bool:
        """Loop thread: hand a task pushed here back to its owner if it has
        not started (its owner runs it on another worker)."""
        q = self.main_queue
        with q.mutex:
            found = next((i for i, entry in enumerate(q.queue)
                          if entry[0] is not None and entry[0].task_id == task_id and entry[0].type == NORMAL), None)
            if found is None:
                return False
            _spec, fut = q.queue[found]
            del q.queue[found]
        _set(fut, wpb.PushTaskReply(not_run=True))
        return True

    def is_cancelled(self, task_id: bytes) -> bool:
        return task_id in self.cancelled

    # -- environment ------------------------------------------------------------------
    def _apply_env(self, spec: cpb.TaskSpec) -> dict[str, str | None]:
        # (runtime_env variables are the worker's own: it was started for the env)
        if not (spec.gpu_ids or self.node_has_gpus or spec.resources.get("GPU", 0) > 0):
            return {}
        changes = {"CUDA_VISIBLE_DEVICES": ",".join(str(g) for g in spec.gpu_ids)}
        old = {k: os.environ.get(k) for k in changes}
        os.environ.update(changes)
        return old if spec.type != CREATION else {}


def _restore_env(old: dict[str, str | None]) -> None:
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


async def _call_async_init(actor: Any, args: list[Any], kwargs: dict[str, Any]) -> None:
    r = actor.__init__(*args, **kwargs)
    if inspect.isawaitable(r):
        await r


def _retryable(spec: cpb.TaskSpec, e: BaseException) -> bool:
    if not spec.retry_exceptions:
        return False
    if not spec.retry_exception_allowlist:
        return True
    import pickle

    try:
        allow = pickle.loads(spec.retry_exception_allowlist)
    except Exception:  # noqa: BLE001
        return True
    return isinstance(e, tuple(allow))


def _put_done(finished: asyncio.Queue, task_id: bytes, fut: asyncio.Future) -> None:
    finished.put_nowait((task_id, fut))


class _Responder:
    """Stands in for the future of a task taken by ``push_fast``: setting
    its result sends the reply (after the task's borrower registrations
    reached their owners, as ``push_task`` does)."""

    __slots__ = ("w", "respond", "sent")

    def __init__(self, w: CoreWorker, respond: Callable[[wpb.PushTaskReply], None]) -> None:
        self.w = w
        self.respond = respond
        self.sent = False

    def done(self) -> bool:
        return self.sent

    def set_result(self, reply: wpb.PushTaskReply) -> None:
        self.sent = True
        if self.w.borrowing.pending():
            self.w.spawn(self._after_borrows(reply))
        else:
            self.respond(reply)

    async def _after_borrows(self, reply: wpb.PushTaskReply) -> None:
        await self.w.flush_borrows()
        self.respond(reply)


def _set(fut: asyncio.Future, value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _transfer(src: concurrent.futures.Future, dst: asyncio.Future) -> None:
    if dst.done():
        return
    if src.cancelled():
        dst.set_exception(asyncio.CancelledError())
    elif src.exception() is not None:
        dst.set_exception(src.exception())  # type: ignore[arg-type]
    else:
        dst.set_result(src.result())


__all__ = ["Executor", "ActorExit", "grpc"]
