"""The object table: what this process knows of each object's value or
location, who waits for it, and ``get``/``wait`` over it.

An entry is a ``ReturnObject``: the value inline (small) or where it lives
(a node's store). Objects this process owns appear when their task settles
(``set_ready``); until then their ids are *pending*. Objects owned
elsewhere are asked of their owner (a long poll, one request per object)
the first time someone waits for them (``ensure_ready``).

Waiters: coroutines on the loop await a future per object; user threads
blocked in ``get``/``wait`` on objects this process owns count down a plain
event instead (no coroutine per ref: the synchronous round trip's hot path).

The table holds no sockets: asking an owner, reading the store, telling the
raylet a thread is blocked and freeing store copies are callables given to
it (``Deps``), so it can be driven by plain calls.
"""

from __future__ import annotations

import _thread
import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from jray import exceptions
from jray._private import debug_wake as debugger
from jray._private import serialization
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import core_worker_pb2 as wpb
from jray._private.worker.event_loop import LoopThread
from jray._private.worker.identity import Identity
from jray._private.worker.reference_counter import ReferenceCounter

Owner = tuple[str, bytes]
RECOVERY_TRIES = 3  # a get whose copy keeps vanishing asks its owner this often, then fails


class OwnerGone(Exception):
    """The owner of an object could not be reached (its process died)."""


@dataclass
class Deps:
    """What the table needs from the rest of the CoreWorker."""

    ask_owner: Callable[[str, bytes, float, bytes], Awaitable[wpb.GetObjectStatusReply]]  # raises OwnerGone
    read_store: Callable[[cpb.ReturnObject], Any]  # a value in a store (user thread)
    free_in_store: Callable[[cpb.ReturnObject], None]  # loop thread
    release_hand_off: Callable[[cpb.ReturnObject], None]  # loop thread
    notify_blocked: Callable[[bool], bool]  # a task's thread blocks/unblocks; True when noted
    on_interrupt: Callable[[Sequence[Any]], None]  # Ctrl-C while waiting on refs
    # Pin many store objects in one exchange before reading them (user thread;
    # StoreClient.prefetch), and release the pins no read took (unpin_unread).
    prefetch_store: Callable[[list[cpb.ReturnObject]], list[bytes]] = lambda rets: []
    unpin_unread: Callable[[list[bytes]], None] = lambda ids: None


class ObjectTable:
    def __init__(self, lt: LoopThread, refs: ReferenceCounter, me: Identity, deps: Deps) -> None:
        self.lt = lt
        self.refs = refs
        self.me = me
        self.deps = deps
        # object id -> ReturnObject (ready values, owned or fetched)
        self.objects: dict[bytes, cpb.ReturnObject] = {}
        # object id -> futures (or _CountDowns) waiting for it (loop thread only)
        self.waiters: dict[bytes, list[Any]] = {}
        self.pending_owned: set[bytes] = set()
        self.prefetch = True  # wait(fetch_local=True) copies ready objects to this node (no node: off)
        # Lineage reconstruction (lineage.py), set by the CoreWorker: rebuild(oid,
        # lost node id) makes an owned object whose copy is gone pending again
        # (or its value the error saying why not); can_rebuild(oid) tells.
        self.rebuild: Callable[[bytes, bytes], None] | None = None
        self.can_rebuild: Callable[[bytes], bool] = lambda oid: False

    # -- owned objects -------------------------------------------------------
    def add_pending(self, object_id: bytes) -> None:
        """An object this process owns whose value is not known yet."""
        self.refs.add_owned(object_id)
        self.pending_owned.add(object_id)

    def add_owned(self, object_id: bytes, ret: cpb.ReturnObject) -> None:
        """A ready object this process owns (``put``)."""
        self.refs.add_owned(object_id)
        self.objects[object_id] = ret

    def free_owned(self, object_id: bytes) -> None:
        """Loop thread: nobody holds an owned object any more."""
        ret = self.objects.pop(object_id, None)
        self.pending_owned.discard(object_id)
        if ret is not None and ret.in_store:
            self.deps.free_in_store(ret)

    def owns_objects(self) -> bool:
        return bool(self.pending_owned) or bool(self.refs.owned_ids())

    def set_ready(self, ret: cpb.ReturnObject) -> None:
        """Loop thread: an object's value or location is known."""
        oid = ret.object_id
        self.pending_owned.discard(oid)
        counted = False
        if ret.nested_refs:
            # Refs in a task's return value, handed off to us (see
            # ``Borrowing.hand_off``): we borrow them as long as the value lives.
            counted = self.refs.set_contained(
                oid, [r.object_id for r in ret.nested_refs], [owner_key(r.owner) for r in ret.nested_refs],
                registered=True)
        if oid not in self.refs:  # nobody holds it any more
            if ret.in_store:
                self.deps.free_in_store(ret)
            if ret.nested_refs and not counted:
                self.deps.release_hand_off(ret)
            self.wake(oid)
            return
        self.objects[oid] = ret
        self.wake(oid)

    def set_error(self, object_id: bytes, data: bytes) -> None:
        """Loop thread: an object's value is this serialized error."""
        self.set_ready(cpb.ReturnObject(object_id=object_id, data=data, is_error=True))

    def wake(self, oid: bytes) -> None:
        for fut in self.waiters.pop(oid, ()):
            if not fut.done():
                fut.set_result(None)

    async def wait_local_ready(self, object_id: bytes) -> None:
        if object_id in self.objects:
            return
        fut = self.lt.loop.create_future()
        self.waiters.setdefault(object_id, []).append(fut)
        await fut

    # -- readiness of any object -------------------------------------------------
    async def ensure_ready(self, oid: bytes, owner: Owner | None, lost_node_id: bytes = b"") -> None:
        """Loop thread: wait until the object's value or location is known
        here. ``lost_node_id``: the copy we knew of (on that node) is gone: the
        owner is told so (it rebuilds the object, or says why it cannot)."""
        if oid in self.objects:
            return
        if owner is None or owner == self.me.owner_key:
            if oid not in self.pending_owned and self.rebuild is not None and self.can_rebuild(oid):
                self.refs.add_owned(oid)  # freed since (an argument of a task being rebuilt): made again
                self.rebuild(oid, b"")
            if oid in self.objects:
                return
            if oid not in self.pending_owned:
                raise exceptions.ObjectLostError(oid.hex(), f"Object {oid.hex()} is unknown to its owner "
                                                 "(it was freed, or its ref was created by hand).")
            await self.wait_local_ready(oid)
            return
        # Borrowed: ask the owner (long poll), one request per object.
        waiters = self.waiters.get(oid)
        if waiters is not None:
            fut = self.lt.loop.create_future()
            waiters.append(fut)
            await fut
            return
        self.waiters[oid] = []
        try:
            while True:
                try:
                    reply = await self.deps.ask_owner(owner[0], oid, 30.0, lost_node_id)
                    lost_node_id = b""
                except OwnerGone:
                    err: exceptions.RayError = exceptions.OwnerDiedError(
                        oid.hex(), f"Object {oid.hex()} is lost: its owner ({owner[0]}) has died.")
                    self.objects[oid] = error_return(oid, err)
                    break
                if reply.status == wpb.GetObjectStatusReply.READY:
                    self.objects[oid] = reply.object
                    break
                if reply.status in (wpb.GetObjectStatusReply.FREED, wpb.GetObjectStatusReply.NOT_FOUND):
                    err = exceptions.ObjectLostError(oid.hex(), f"Object {oid.hex()} was freed by its owner.")
                    self.objects[oid] = error_return(oid, err)
                    break
        finally:
            self.wake(oid)

    # -- get -------------------------------------------------------------------
    def get(self, refs: Sequence[Any], timeout: float | None) -> list[Any]:
        missing = [r for r in refs if r.binary() not in self.objects]
        if missing:
            blocked = self.deps.notify_blocked(True)
            try:
                self._wait_all(missing, timeout)
            finally:
                if blocked:
                    self.deps.notify_blocked(False)
        if len(refs) < 2 or self.lt.in_loop_thread():
            return [self.value_of(r) for r in refs]
        # Many values: their store pins in one exchange, not a call each.
        rets = [ret for ret in (self.objects.get(r.binary()) for r in refs) if ret is not None and ret.in_store]
        pinned = self.deps.prefetch_store(rets) if len(rets) > 1 else []
        try:
            return [self.value_of(r) for r in refs]
        finally:
            self.deps.unpin_unread(pinned)

    def _wait_all(self, refs: Sequence[Any], timeout: float | None) -> None:
        me = self.me.owner_key
        if all(r.owner_address() in (None, me) for r in refs) and not self.lt.in_loop_thread():
            self._wait_owned(refs, timeout)
            return

        async def waiter() -> None:
            await asyncio.gather(*(self.ensure_ready(r.binary(), r.owner_address()) for r in refs))

        try:
            self.lt.run_sync(asyncio.wait_for(waiter(), timeout) if timeout is not None else waiter(), wakeable=True)
        except (asyncio.TimeoutError, concurrent.futures.TimeoutError, TimeoutError):
            raise exceptions.GetTimeoutError(
                f"Get timed out: some object(s) not ready after {timeout} s.") from None
        except KeyboardInterrupt:
            self.deps.on_interrupt(refs)
            raise

    def _wait_owned(self, refs: Sequence[Any], timeout: float | None) -> None:
        """Objects this process owns: wait on a plain event the loop sets,
        without a coroutine per get (the synchronous round trip's hot path)."""
        ids = [r.binary() for r in refs]
        waiter = _CountDown(len(ids))
        self.lt.post(self._register_owned_waiter, ids, waiter)  # behind the submit it waits on: one wake-up
        try:
            with debugger.wakeable(waiter.event.set) as wk:
                ready = waiter.event.wait(timeout)
            if wk.woken and waiter.left > 0 and waiter.error is None:
                raise debugger.DebugWake
            if not ready:
                raise exceptions.GetTimeoutError(f"Get timed out: some object(s) not ready after {timeout} s.")
        except KeyboardInterrupt:
            self.deps.on_interrupt(refs)
            raise
        if waiter.error is not None:
            raise waiter.error

    def _register_owned_waiter(self, ids: list[bytes], waiter: _CountDown, lost_is_done: bool = False) -> None:
        for oid in ids:
            if waiter.done():
                return
            if oid in self.objects or (lost_is_done and oid not in self.pending_owned):
                waiter.set_result(None)
            elif oid not in self.pending_owned:
                waiter.fail(exceptions.ObjectLostError(oid.hex(), f"Object {oid.hex()} is unknown to its owner "
                                                       "(it was freed, or its ref was created by hand)."))
            else:
                self.waiters.setdefault(oid, []).append(waiter)

    @contextlib.contextmanager
    def blocked_on(self, refs: Sequence[Any]) -> Iterator[None]:
        """Around a wait in a task: the raylet lends our CPU meanwhile, and a
        Ctrl-C cancels what is waited on (``on_interrupt``)."""
        blocked = self.deps.notify_blocked(True)
        try:
            yield
        except KeyboardInterrupt:
            self.deps.on_interrupt(refs)
            raise
        finally:
            if blocked:
                self.deps.notify_blocked(False)

    def value_of(self, ref: Any) -> Any:
        oid = ref.binary()
        for attempt in range(RECOVERY_TRIES + 1):
            ret = self.objects.get(oid)
            if ret is None:  # freed between readiness and here
                raise exceptions.ObjectLostError(ref.hex())
            if ret.in_store:
                try:
                    value = self.deps.read_store(ret)
                except exceptions.ObjectLostError:
                    # Its copy is gone (its node died): the owner rebuilds it
                    # from its lineage, or says why not; then read it again.
                    if attempt == RECOVERY_TRIES or self.lt.in_loop_thread():
                        raise
                    self._recover(ref, ret)
                    continue
            else:
                value = serialization.deserialize(ret.data)
            if ret.is_error:
                raise as_raisable(value)
            return value
        raise exceptions.ObjectLostError(ref.hex())  # pragma: no cover - the loop returns or raises

    def _recover(self, ref: Any, ret: cpb.ReturnObject) -> None:
        """User thread: the copy ``ret`` names is gone: wait for the object again
        (its owner rebuilds it), the error of why it cannot be as its value."""
        oid = ref.binary()
        owner = ref.owner_address()

        async def recover() -> None:
            if owner is None or owner == self.me.owner_key:
                if self.objects.get(oid) is ret:
                    if self.rebuild is not None:
                        self.rebuild(oid, ret.node_id)
                    if self.objects.get(oid) is ret:  # nothing can rebuild it
                        self.objects[oid] = error_return(oid, exceptions.ObjectLostError(
                            oid.hex(), f"Object {oid.hex()} is lost: its copy on node {ret.node_id.hex()[:8]} "
                            "is gone."))
                await self.ensure_ready(oid, None)
            else:
                if self.objects.get(oid) is ret:
                    self.objects.pop(oid, None)
                await self.ensure_ready(oid, owner, lost_node_id=ret.node_id or b"?")

        self.lt.run_sync(recover())

    # -- wait --------------------------------------------------------------------
    def wait(self, refs: Sequence[Any], num_returns: int, timeout: float | None,
             fetch_local: bool) -> tuple[list, list]:
        objects = self.objects
        ids = [r._id for r in refs]
        not_ready_ids = [oid for oid in ids if oid not in objects]
        n_ready = len(ids) - len(not_ready_ids)
        key = self.me.owner_key
        if n_ready < num_returns and (timeout is None or timeout > 0) and all(
                r._owner is None or r._owner == key for r in refs):
            # All owned here (the common case): count down on a plain event
            # the loop sets as objects become ready, without a coroutine per
            # ref (wait one at a time over many refs is O(refs) per call).
            countdown = _CountDown(num_returns - n_ready)
            self.lt.post(self._register_owned_waiter, not_ready_ids, countdown, True)
            with self.blocked_on(refs), debugger.wakeable(countdown.event.set) as wk:
                countdown.event.wait(timeout)
            if wk.woken and countdown.left > 0 and countdown.error is None:
                raise debugger.DebugWake
        elif n_ready < num_returns and (timeout is None or timeout > 0):
            ready_ids = set(ids) - set(not_ready_ids)
            loop = self.lt.loop

            async def waiter() -> None:
                tasks = [asyncio.ensure_future(self.ensure_ready(r.binary(), r.owner_address()))
                         for r in refs if r.binary() not in ready_ids]
                need = num_returns - len(ready_ids)
                deadline = None if timeout is None else loop.time() + timeout
                try:
                    pending = set(tasks)
                    done_n = 0
                    while pending and done_n < need:
                        left = None if deadline is None else max(0.0, deadline - loop.time())
                        done, pending = await asyncio.wait(pending, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                        if not done:
                            break
                        done_n += len(done)
                finally:
                    for t in tasks:
                        t.cancel()

            with self.blocked_on(refs):
                self.lt.run_sync(waiter(), wakeable=True)
        ready: list[Any] = []
        not_ready: list[Any] = []
        for r, oid in zip(refs, ids, strict=True):
            (ready if oid in objects and len(ready) < num_returns else not_ready).append(r)
        if fetch_local:
            self._prefetch(ready)
        return ready, not_ready

    def _prefetch(self, refs: Sequence[Any]) -> None:
        if not self.prefetch:
            return
        for r in refs:
            ret = self.objects.get(r.binary())
            if ret is not None and ret.in_store and ret.node_id != self.me.node_id:
                try:
                    self.deps.read_store(ret)
                except exceptions.RayError:
                    pass

    def ref_future(self, ref: Any) -> concurrent.futures.Future:
        """A future for ``ref``'s value (any thread)."""
        out: concurrent.futures.Future = concurrent.futures.Future()

        async def run() -> None:
            try:
                await self.ensure_ready(ref.binary(), ref.owner_address())
            except BaseException as e:  # noqa: BLE001
                out.set_exception(e)
                return
            # Deserialize off the loop: store reads make blocking raylet calls.
            threading.Thread(target=self._resolve_into, args=(ref, out), daemon=True).start()

        asyncio.run_coroutine_threadsafe(run(), self.lt.loop)
        return out

    def _resolve_into(self, ref: Any, out: concurrent.futures.Future) -> None:
        try:
            out.set_result(self.value_of(ref))
        except BaseException as e:  # noqa: BLE001
            out.set_exception(e)


class _Flag:
    """A one-shot ``threading.Event`` on one bare lock (set from any thread,
    waited on by one): a synchronous get's wait, made once per round trip,
    without an Event's Condition and the waiter lock it allocates."""

    __slots__ = ("_lock", "_set")

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()
        self._lock.acquire()
        self._set = False

    def set(self) -> None:
        if not self._set:
            self._set = True
            try:
                self._lock.release()
            except RuntimeError:  # set from two threads at once: released already
                pass

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        if self._set:
            return True
        if self._lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            self._lock.release()  # set for good: later waits return at once
            return True
        return self._set


class _CountDown:
    """Quacks like the asyncio futures in ``waiters``; sets a thread event
    once every awaited object is ready (or one is lost)."""

    __slots__ = ("left", "event", "error")

    def __init__(self, n: int) -> None:
        self.left = n
        self.event = _Flag()
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


def owner_key(addr: cpb.Address) -> Owner | None:
    """The (address, worker id) key of an owner's address message."""
    if not addr.port:
        return None
    return (f"{addr.ip}:{addr.port}", addr.worker_id)


def owner_proto(owner: Owner | None) -> cpb.Address:
    if owner is None:
        return cpb.Address()
    ip, port = owner[0].rsplit(":", 1)
    return cpb.Address(ip=ip, port=int(port), worker_id=owner[1])


def error_return(object_id: bytes, err: BaseException) -> cpb.ReturnObject:
    return cpb.ReturnObject(object_id=object_id, data=serialization.serialize(err, error=True).to_bytes(), is_error=True)


def as_raisable(value: Any) -> BaseException:
    if isinstance(value, exceptions.RayTaskError):
        return value.as_instanceof_cause()
    if isinstance(value, BaseException):
        return value
    return exceptions.RaySystemError(f"bad error object: {value!r}")
