"""The submission core shared by the task and actor submitters.

Both submitters run the same pipeline for each call; only how a call finds
its worker differs (a lease from a raylet, or the actor's address from the
GCS). The shared part lives here:

1. ``start``: the call's return ids (pending objects this process owns),
   a hold on every ref argument until the call settles, and the state of a
   streaming generator;
2. ``resolve``: wait for ref arguments; a failed argument fails the call
   with the same error, a value in a store is passed by location, and a
   small value this process already has is inlined (tasks and actor calls
   alike);
3. settlement (``complete`` with the worker's reply, ``fail`` with an
   error): return values into the object table, a task event, the argument
   holds released, the generator told; exactly once per call;
4. streaming generators: items as they are reported, and waiting for the
   next one.

No sockets and no gRPC here: the core works on the object table, the
reference counter and the task-event buffer it is given.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from jray import exceptions
from jray._private import config, serialization
from jray._private.ids import object_id_for
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import core_worker_pb2 as wpb
from jray._private.worker.event_loop import LoopThread
from jray._private.worker.object_table import ObjectTable
from jray._private.worker.reference_counter import ReferenceCounter
from jray._private.worker.task_events import any_error, error_text


class EventSink(Protocol):
    def record(self, spec: cpb.TaskSpec, state: str, error: str = "",
               where: tuple[bytes, bytes, int, float] | None = None, desc: bytes | None = None,
               early: tuple[float, float] | None = None) -> None: ...

    def submitted(self, call: Any, spec: cpb.TaskSpec) -> None: ...

    def scheduled(self, call: Any, spec: cpb.TaskSpec) -> None: ...

    def ended(self, call: Any) -> tuple[float, float] | None: ...

    def describe(self, spec: cpb.TaskSpec) -> bytes | None: ...


class PendingCall:
    """A task or actor call from submission until it settles.

    A call queued behind many others holds its spec serialized (``stow``):
    a parsed protobuf TaskSpec costs 2.5-3 KB of memory against ~0.2-0.3 KB
    as bytes, and a million queued tasks would hold gigabytes. ``spec``
    parses it again on first use (when the call is pushed). Slots, and
    tuples rather than lists: a queued call is one small object the garbage
    collector tracks (its gen-2 passes over a million queued calls were a
    third of their submission time)."""

    __slots__ = ("_spec", "blob", "task_id", "fn_key", "desc", "return_ids", "arg_refs", "retries_left", "registry", "resolved",
                 "cancelled", "force_cancel", "done", "lease", "pushed_at", "submitted_at",
                 "scheduled_at")

    def __init__(self, spec: cpb.TaskSpec, return_ids: tuple[bytes, ...], arg_refs: tuple[tuple[bytes, Any], ...],
                 retries_left: int, resolved: bool = False) -> None:
        self._spec: cpb.TaskSpec | None = spec
        self.blob: bytes | None = None  # the spec serialized, while stowed
        self.task_id: bytes = spec.task_id
        self.fn_key: str = spec.function.key  # the function's (run times are kept per function)
        self.desc: bytes | None = None  # what describes it in task events (TaskEventBuffer.describe)
        self.return_ids = return_ids
        self.arg_refs = arg_refs
        self.retries_left = retries_left
        self.registry: Any = None  # the submitter's table of live calls (a dict-like; left when settled)
        self.resolved = resolved  # ref arguments resolved (or none)
        self.cancelled = False
        self.force_cancel = False
        self.done = False
        self.lease: Any = None  # tasks: the lease it was pushed on, while in flight
        self.pushed_at = 0.0  # tasks: when it was pushed (the loop's clock)
        self.submitted_at = 0.0  # when it was submitted, while no task event said so (TaskEventBuffer.submitted)
        self.scheduled_at = 0.0  # when it was pushed, likewise (TaskEventBuffer.scheduled)

    @property
    def spec(self) -> cpb.TaskSpec:
        s = self._spec
        if s is None:
            s = self._spec = cpb.TaskSpec.FromString(self.blob)
            self.blob = None
        return s

    def stow(self) -> None:
        """Hold the spec serialized until it is next used (loop thread; the
        spec must not be changed through another reference meanwhile)."""
        s = self._spec
        if s is not None:
            self.blob = s.SerializeToString()
            self._spec = None

    def peek(self) -> cpb.TaskSpec:
        """The spec, read-only, without keeping a stowed one parsed."""
        s = self._spec
        return s if s is not None else cpb.TaskSpec.FromString(self.blob)

    def __repr__(self) -> str:
        return f"PendingCall({self.task_id.hex()}, {'stowed' if self._spec is None else 'parsed'})"


@dataclass(eq=False)
class GeneratorState:
    received: int = 0
    done: bool = False
    waiters: list[tuple[int, asyncio.Future]] = field(default_factory=list)


class SubmissionCore:
    def __init__(self, lt: LoopThread, table: ObjectTable, refs: ReferenceCounter, events: EventSink,
                 release_hand_off: Callable[[cpb.ReturnObject], None]) -> None:
        self.lt = lt
        self.table = table
        self.refs = refs
        self.events = events
        self.release_hand_off = release_hand_off
        self.generators: dict[bytes, GeneratorState] = {}

    # -- 1. start (user thread) -------------------------------------------------
    def start(self, spec: cpb.TaskSpec, arg_refs: Sequence[tuple[bytes, Any]], retries: int,
              desc: bytes | None = None) -> PendingCall:
        """A new call (``desc``: its task-event description, where the caller
        kept one with its spec template)."""
        n = 1 if spec.streaming else spec.num_returns
        tid = spec.task_id
        return_ids = (object_id_for(tid, 1),) if n == 1 else tuple(object_id_for(tid, i + 1) for i in range(n))
        table = self.table
        for oid in return_ids:
            table.add_pending(oid)
        for oid, owner in arg_refs:
            self.refs.incr(oid, owner)  # held by the pending call
        if spec.streaming:
            self.generators[spec.task_id] = GeneratorState()
        call = PendingCall(spec, return_ids, tuple(arg_refs), retries, resolved=not arg_refs)
        call.desc = desc if desc is not None else self.events.describe(spec)
        return call

    # -- 2. arguments (loop thread) ---------------------------------------------------
    async def resolve(self, call: PendingCall) -> bool:
        """Wait for the call's ref arguments; False when that settled the call
        (an argument failed or was lost)."""
        table = self.table
        for arg in call.spec.args:
            if not arg.HasField("ref"):
                continue
            oid = arg.ref.object_id
            owner = (f"{arg.ref.owner.ip}:{arg.ref.owner.port}", arg.ref.owner.worker_id)
            try:
                await table.ensure_ready(oid, owner)
            except exceptions.RayError as e:
                self.fail(call, e)
                return False
            ret = table.objects.get(oid)
            if ret is None:
                continue
            if ret.is_error:
                # A failed dependency fails this call with the same error.
                self.finish_with_data(call, ret.data)
                return False
            if ret.in_store:
                arg.location.CopyFrom(ret)
            elif len(ret.data) <= config.MAX_INLINE_BYTES:
                name, star = arg.name, arg.star
                nested = list(ret.nested_refs)
                arg.Clear()
                arg.name, arg.star, arg.data = name, star, ret.data
                arg.nested_refs.extend(nested)
        call.resolved = True
        return True

    # -- 3. settlement (loop thread) ----------------------------------------------------
    def complete(self, call: PendingCall, reply: wpb.PushTaskReply) -> None:
        """The worker answered: its returns become the call's objects."""
        if call.done:  # already settled (cancelled): drop what the worker handed us
            for ret in reply.returns:
                self.release_hand_off(ret)
            return
        call.done = True
        failed = reply.is_application_error or any_error(reply.returns)
        # where and when it ran, when its worker left that to us (task_events.end_running)
        where = (reply.worker_id, reply.node_id, reply.pid, reply.started_at) if reply.started_at else None
        self.events.record(call.spec, "FAILED" if failed else "FINISHED", reply.system_error, where, call.desc,
                           self.events.ended(call))
        set_ready = self.table.set_ready
        for ret in reply.returns:
            # A copy of its own: the reply's return shares the whole reply's
            # protobuf arena (~1.2 KB for a task returning None, ~0.5 KB for
            # the copy), kept as long as the object is (a million results
            # not read yet).
            own = cpb.ReturnObject()
            own.CopyFrom(ret)
            set_ready(own)
        self._settled(call)

    def fail(self, call: PendingCall, err: BaseException) -> None:
        self.finish_with_data(call, serialization.serialize(err, error=True).to_bytes(), error_text(err))

    def finish_with_data(self, call: PendingCall, data: bytes, error: str = "") -> None:
        """Every return of the call is this serialized error."""
        if call.done:
            return
        call.done = True
        self.events.record(call.spec, "FAILED", error, None, call.desc, self.events.ended(call))
        for oid in call.return_ids:
            self.table.set_error(oid, data)
        self._settled(call)

    def _settled(self, call: PendingCall) -> None:
        if call.registry is not None:
            call.registry.pop(call.task_id, None)
        if call.spec.streaming:
            self.generator_done(call.task_id)
            if call.spec.dynamic_returns:  # read through its one return, never iterated
                self.generators.pop(call.task_id, None)
        for oid, _owner in call.arg_refs:
            self.refs.decr(oid)
        call.arg_refs = ()

    # -- 4. streaming generators (loop thread) ---------------------------------------------
    def on_generator_item(self, msg: wpb.GeneratorItem) -> None:
        st = self.generators.get(msg.task_id)
        if st is None:
            return
        if msg.done:
            self.generator_done(msg.task_id)
            return
        if msg.index <= st.received:
            self.release_hand_off(msg.item)
            return  # duplicate after a retry
        self.table.add_pending(msg.item.object_id)
        self.table.set_ready(msg.item)
        st.received = msg.index
        _wake_generator(st)

    def generator_done(self, task_id: bytes) -> None:
        st = self.generators.get(task_id)
        if st is not None:
            st.done = True
            _wake_generator(st)

    def generator_started(self, task_id: bytes) -> bool:
        """Whether a generator already handed out items (they cannot be
        taken back: a retry would repeat them)."""
        st = self.generators.get(task_id)
        return st is not None and st.received > 0

    async def generator_item(self, task_id: bytes, index: int) -> bytes | None:
        """The object id of item ``index`` (1-based) once it exists; None
        when the generator ended before it (or is unknown)."""
        st = self.generators.get(task_id)
        if st is None:
            return None
        while st.received < index and not st.done:
            fut = self.lt.loop.create_future()
            st.waiters.append((index, fut))
            await fut
        if st.received >= index:
            return object_id_for(task_id, index + 1)
        self.generators.pop(task_id, None)
        return None


def _wake_generator(st: GeneratorState) -> None:
    keep = []
    for index, fut in st.waiters:
        if st.received >= index or st.done:
            if not fut.done():
                fut.set_result(None)
        else:
            keep.append((index, fut))
    st.waiters = keep
