"""Caller-side submission of actor method calls.

Each caller keeps, per actor, a FIFO of calls. Calls are sent directly to the
actor's worker in submission order, numbered per (caller, incarnation) so the
actor runs them in that order even if the network reorders them. The actor's
state (address, restarts, death) comes from the GCS through a long-poll
watcher. When the actor's worker dies, calls in flight are retried on the
restarted actor up to ``max_task_retries`` or fail with ActorDiedError.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from jray import exceptions
from jray._private import serialization
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import core_worker_pb2 as wpb
from jray._private.protocol import gcs_pb2 as gpb
from jray._private.transport import PushClients, TransportError
from jray._private.worker.event_loop import LoopThread
from jray._private.worker.submission import PendingCall, SubmissionCore

logger = logging.getLogger(__name__)
ALIVE, DEAD = gpb.ALIVE, gpb.DEAD
# Calls in flight per actor and caller. The actor runs calls in sequence
# order and holds out-of-order ones, so an unbounded window could fill every
# HTTP/2 stream of the connection with calls waiting for one not yet sent.
MAX_IN_FLIGHT = 64
HOLD_SECONDS = 0.0005


# An actor call in flight is a PendingCall of the shared submission core.
ActorCall = PendingCall


@dataclass(eq=False)
class ActorQueue:
    actor_id: bytes
    info: gpb.ActorInfo | None = None
    queue: collections.deque = field(default_factory=collections.deque)
    in_flight: dict[int, PendingCall] = field(default_factory=dict)
    next_seq: int = 0
    incarnation: str = ""
    watcher: asyncio.Task | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    sender: asyncio.Task | None = None
    held_refs: list[tuple[bytes, Any]] = field(default_factory=list)  # creation args
    refill: bool = False  # a reply drained the window: send the next batch
    hold_timer: bool = False


def _incarnation(info: gpb.ActorInfo) -> str:
    return f"{info.address.ip}:{info.address.port}/{info.num_restarts}"


class ActorSubmitter:
    def __init__(self, lt: LoopThread, core: SubmissionCore, pushes: PushClients, caller_id: bytes,
                 watch_actor: Callable[[bytes, int, float], Awaitable[gpb.GetActorInfoReply]]) -> None:
        self.lt = lt
        self.core = core
        self.pushes = pushes
        self.caller_id = caller_id
        self.watch_actor = watch_actor  # (actor id, after version, timeout): the GCS's long poll
        self.actors: dict[bytes, ActorQueue] = {}
        # task id -> call, for calls not finished yet (a settled call leaves
        # through its ``registry``, this dict); written by user threads
        # (submit) and the loop (settlement): single dict ops only.
        self.calls: dict[bytes, PendingCall] = {}
        self._closed = False
        self.first_use: Callable[[], None] | None = None
        # Actors this process registered, until their watcher starts: it knows
        # their first state (PENDING_CREATION, version 1) and waits for the next.
        self._registered: set[bytes] = set()

    def _queue(self, actor_id: bytes) -> ActorQueue:
        q = self.actors.get(actor_id)
        if q is None:
            q = self.actors[actor_id] = ActorQueue(actor_id)
            q.watcher = self.lt.spawn(self._watch(q))
            q.sender = self.lt.spawn(self._send_loop(q))
        return q

    # -- creation ------------------------------------------------------------
    def registered(self, actor_id: bytes) -> None:
        """This process registered ``actor_id`` with the GCS just now (any
        thread): its watcher's first long poll waits for the state after
        PENDING_CREATION instead of asking for that one (a GCS call fewer per actor)."""
        self._registered.add(actor_id)

    def hold_creation_args(self, actor_id: bytes, arg_refs: list[tuple[bytes, Any]]) -> None:
        for oid, owner in arg_refs:
            self.core.refs.incr(oid, owner)

        def attach() -> None:
            self._queue(actor_id).held_refs.extend(arg_refs)

        self.lt.call_soon(attach)

    # -- calls (user thread) ------------------------------------------------------
    def submit(self, actor_id: bytes, spec: cpb.TaskSpec, arg_refs: Sequence[tuple[bytes, Any]],
               max_task_retries: int, desc: bytes | None = None) -> Sequence[bytes]:
        call = self.core.start(spec, arg_refs, max_task_retries, desc)
        call.registry = self.calls
        self.calls[spec.task_id] = call
        events = self.core.events
        events.submitted(call, spec)
        if arg_refs:
            events.record(spec, "PENDING_ARGS", "", None, call.desc)
        self.lt.post(self._enqueue, actor_id, call)
        return call.return_ids

    def _enqueue(self, actor_id: bytes, call: ActorCall) -> None:
        if self.first_use is not None:  # the caller starts watching node deaths
            self.first_use()
            self.first_use = None
        q = self._queue(actor_id)
        info = q.info
        if (call.resolved and not q.queue and not q.in_flight and info is not None and info.state == ALIVE
                and q.incarnation == _incarnation(info) and not self._closed):
            # Idle actor, nothing queued: send now (the synchronous call's path).
            self._send(q, info, [call])
            return
        q.queue.append(call)
        q.wake.set()

    def _send(self, q: ActorQueue, info: gpb.ActorInfo, calls: list[PendingCall]) -> None:
        """Number the calls and push them in one go (one call: unary; more:
        replies stream back as each call finishes, in any order)."""
        by_task: dict[bytes, int] = {}
        for call in calls:
            seq = q.next_seq
            q.next_seq += 1
            call.spec.sequence_no = seq
            call.spec.caller_id = self.caller_id
            q.in_flight[seq] = call
            by_task[call.task_id] = seq
        addr = f"{info.address.ip}:{info.address.port}"
        client = self.pushes.get(addr, info.address.direct_port)
        if len(calls) == 1:
            task_id = calls[0].task_id

            def on_reply(reply: wpb.PushTaskReply | None, err: TransportError | None) -> None:
                if reply is None:
                    self.lt.spawn(self._push_failed(q, addr, by_task, err or TransportError("INTERNAL", "no reply")))
                    return
                reply.task_id = task_id
                self._on_reply(q, by_task, reply)

            client.push(calls[0].spec, on_reply)
            return

        def on_done(err: TransportError | None) -> None:
            if err is None and by_task:
                err = TransportError("INTERNAL", "the actor closed the batch before answering every call")
            if err is not None:
                self.lt.spawn(self._push_failed(q, addr, dict(by_task), err))
                by_task.clear()

        client.push_batch([c.spec for c in calls], lambda reply: self._on_reply(q, by_task, reply), on_done)

    # -- the watcher: actor state from the GCS ---------------------------------------
    async def _watch(self, q: ActorQueue) -> None:
        version = -1
        if q.actor_id in self._registered:
            self._registered.discard(q.actor_id)
            version = 1  # ActorDirectory.register's: PENDING_CREATION
        while not self._closed:
            try:
                reply = await self.watch_actor(q.actor_id, version, 30.0)
            except (grpc.RpcError, TransportError) as e:
                if self._closed:
                    return
                logger.debug("actor watch failed: %s", e)
                await asyncio.sleep(0.5)
                continue
            if not reply.found:
                q.info = gpb.ActorInfo(actor_id=q.actor_id, state=DEAD, death_cause="The actor is unknown to the GCS.")
            else:
                if reply.actor.version == version:
                    continue
                q.info = reply.actor
                version = reply.actor.version
            q.wake.set()
            if q.info.state in (ALIVE, DEAD) and q.held_refs:
                for oid, _owner in q.held_refs:
                    self.core.refs.decr(oid)
                q.held_refs = []
            if q.info.state == DEAD:
                self._fail_all(q)
                return

    def node_died(self, node_id: bytes) -> tuple[int, int]:
        """The GCS declared the node dead: calls in flight to the actors on it
        fail over now (retried on the restarted actor, or failed with why it
        died) instead of when their connections time out. Returns how many
        of this process's actors were there: (restarting, dead for good)."""
        restarting = dead = 0
        for q in self.actors.values():
            info = q.info
            if info is not None and info.state == ALIVE and info.address.node_id == node_id:
                if info.max_restarts < 0 or info.num_restarts < info.max_restarts:
                    restarting += 1
                else:
                    dead += 1
                self.pushes.drop(f"{info.address.ip}:{info.address.port}", -1.0)
        return restarting, dead

    # -- cancel (Ray's semantics for actor tasks) ----------------------------------
    def cancel(self, task_id: bytes) -> None:
        """Cancel an actor call. Not sent yet: it fails with TaskCancelledError
        and never runs. Sent: the actor is asked to cancel it: a call still
        queued there does not run, a running call of an async actor has its
        asyncio task cancelled, and a running call of a sync or threaded
        actor only sees ``get_runtime_context().is_canceled()`` turn True
        (actor state is not interrupted halfway). Either way, ``get`` on a
        cancelled call raises TaskCancelledError, as in Ray."""
        call = self.calls.get(task_id)
        if call is None:
            return
        actor_id = call.peek().actor_id
        q = self.actors.get(actor_id)
        if q is not None and call in q.queue:
            q.queue.remove(call)
            self._fail(call, exceptions.TaskCancelledError(task_id.hex()))
            return
        if q is None or q.info is None or not q.info.address.port:
            return
        # Sent: whatever the method returns now, get() raises
        # TaskCancelledError (as Ray does; checked on Ray 2.60).
        call.cancelled = True
        addr = f"{q.info.address.ip}:{q.info.address.port}"
        client = self.pushes.get(addr, q.info.address.direct_port)

        async def send() -> None:
            try:
                await client.cancel(task_id, timeout=10)
            except TransportError as e:
                logger.debug("cancelling actor call %s failed: %s", task_id.hex(), e)

        self.lt.spawn(send())

    def mark_killed(self, actor_id: bytes, reason: str) -> None:
        """jray.kill(no_restart=True) returned: fail calls from here on at
        once, without waiting for the GCS's notice to reach the watcher."""
        q = self._queue(actor_id)
        version = q.info.version if q.info is not None else 0
        q.info = gpb.ActorInfo(actor_id=actor_id, state=DEAD, death_cause=reason, version=version,
                               class_name=q.info.class_name if q.info is not None else "")
        self._fail_all(q)

    def _death_error(self, q: ActorQueue) -> exceptions.RayError:
        info = q.info
        if info is not None and info.creation_failed and info.creation_error:
            try:
                cause = serialization.deserialize(info.creation_error)
            except Exception:  # noqa: BLE001
                cause = None
            if isinstance(cause, exceptions.RuntimeEnvSetupError):
                return cause  # as Ray: the actor's calls raise the setup error itself
            if isinstance(cause, BaseException):
                return exceptions.ActorDiedError(
                    f"The actor {info.class_name} died because its __init__ raised:\n{cause}", q.actor_id.hex())
        cause_txt = info.death_cause if info is not None else "unknown"
        name = info.class_name if info is not None else ""
        return exceptions.ActorDiedError(
            f"The actor {name} ({q.actor_id.hex()}) is dead: {cause_txt}", q.actor_id.hex())

    def _fail_all(self, q: ActorQueue) -> None:
        """The actor is dead: fail the calls not sent yet. Calls in flight
        are left to their RPC: the actor may have answered them before it
        died (e.g. calls ahead of an exit_actor()), and a reply in transit
        must not be overtaken by the GCS's death notice."""
        err = self._death_error(q)
        calls = list(q.queue)
        q.queue.clear()
        for call in calls:
            self._fail(call, err)

    # -- the sender ---------------------------------------------------------------
    async def _send_loop(self, q: ActorQueue) -> None:
        while not self._closed:
            await q.wake.wait()
            q.wake.clear()
            info = q.info
            if info is None or info.state != ALIVE:
                if info is not None and info.state == DEAD:
                    self._fail_all(q)
                continue
            incarnation = _incarnation(info)
            if incarnation != q.incarnation:
                q.incarnation = incarnation
                q.next_seq = 0
            if q.in_flight and not q.refill:
                # Calls are in flight: let new ones gather briefly (until a
                # reply drains the window, at most HOLD_SECONDS) so they go out
                # as one batch. Never longer: an in-flight call may be waiting
                # for one of these (e.g. a blocking get on a queue actor).
                if not q.hold_timer:
                    q.hold_timer = True
                    self.lt.loop.call_later(HOLD_SECONDS, self._release_hold, q)
                continue
            q.refill = False
            batch: list[PendingCall] = []
            while (q.queue and q.info is info and not self._closed
                   and len(q.in_flight) + len(batch) < MAX_IN_FLIGHT):
                call = q.queue[0]
                if not call.resolved:
                    if batch:  # send what is ready before waiting on arguments
                        self._send(q, info, batch)
                        batch = []
                    ok = await self.core.resolve(call)
                    if not ok:
                        q.queue.popleft()
                        continue
                    if q.info is not info:
                        break
                q.queue.popleft()
                batch.append(call)
            if batch:
                self._send(q, info, batch)

    def _release_hold(self, q: ActorQueue) -> None:
        q.hold_timer = False
        q.refill = True
        q.wake.set()

    async def _push_failed(self, q: ActorQueue, addr: str, by_task: dict[bytes, int], e: TransportError) -> None:
        """The push's connection failed: retry its unanswered calls on the
        restarted actor, or fail them with why the actor died."""
        self.pushes.drop(addr, DROP_GRACE_SECONDS)
        lost = sorted(((seq, q.in_flight.pop(seq)) for seq in by_task.values() if seq in q.in_flight),
                      key=lambda x: x[0])
        if self._closed or not lost:
            return
        detail = e.details
        retry = []
        doomed = []
        for _seq, call in lost:
            if call.retries_left != 0 and (q.info is None or q.info.state != DEAD):
                if call.retries_left > 0:
                    call.retries_left -= 1
                call.spec.attempt += 1
                retry.append(call)
            else:
                doomed.append(call)
        # Back to the front, in their original order; the watcher wakes
        # the sender when the GCS reports the restart.
        q.queue.extendleft(reversed(retry))
        if doomed:
            # The connection usually drops before the GCS's notice of why
            # the actor died arrives: give the notice a moment, so the
            # error says why (killed, its placement group removed, ...).
            loop = self.lt.loop
            deadline = loop.time() + 1.0
            while (q.info is None or q.info.state != DEAD) and loop.time() < deadline:
                await asyncio.sleep(0.02)
            for call in doomed:
                if q.info is not None and q.info.state == DEAD:
                    self._fail(call, self._death_error(q))
                else:
                    self._fail(call, exceptions.ActorDiedError(
                        f"The actor died unexpectedly before finishing this call ({call.spec.method_name}): "
                        f"{detail}", q.actor_id.hex()))

    def _on_reply(self, q: ActorQueue, by_task: dict[bytes, int], reply: wpb.PushTaskReply) -> None:
        seq = by_task.pop(reply.task_id, None)
        if seq is None:
            return
        call = q.in_flight.pop(seq, None)
        if call is None:
            return
        if not reply.returns and reply.system_error and call.spec.num_returns:
            # The worker refused the call (it is exiting): it never ran.
            self._fail(call, exceptions.ActorDiedError(
                f"The actor {call.spec.actor_creation.class_name} is exiting and did not run "
                f"{call.spec.method_name}: {reply.system_error}", q.actor_id.hex()))
            return
        if call.cancelled:
            for ret in reply.returns:  # nobody will read them
                self.core.release_hand_off(ret)
            self._fail(call, exceptions.TaskCancelledError(call.task_id.hex()))
            if q.queue and len(q.in_flight) <= MAX_IN_FLIGHT // 2:
                q.refill = True
                q.wake.set()
            return
        if (reply.is_application_error and reply.retryable and call.retries_left != 0 and not call.cancelled
                and not self._closed):
            # retry_exceptions: the method raised an exception it asked to be
            # retried on; it runs again (after the calls already in flight).
            if call.retries_left > 0:
                call.retries_left -= 1
            call.spec.attempt += 1
            logger.info("retrying actor call %s (attempt %d)", call.spec.name, call.spec.attempt)
            q.queue.appendleft(call)
            q.refill = True
            q.wake.set()
            return
        if q.queue and len(q.in_flight) <= MAX_IN_FLIGHT // 2:
            q.refill = True
            q.wake.set()
        self.core.complete(call, reply)

    def _fail(self, call: PendingCall, err: BaseException) -> None:
        self.core.fail(call, err)

    def shutdown(self) -> None:
        self._closed = True
        for q in self.actors.values():
            for t in (q.watcher, q.sender):
                if t is not None:
                    t.cancel()
            q.wake.set()


# A dropped actor's calls in flight get this long to end on their own.
DROP_GRACE_SECONDS = 30.0
