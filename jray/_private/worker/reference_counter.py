"""Distributed reference counting by ownership, as plain state (no I/O).

Each process keeps one table. For an object this process *owns* the entry
counts local ObjectRef instances, pending tasks that take it as an argument,
and outer objects that captured it; ``borrowers`` counts, per process,
the registrations of processes that received the ref and still hold it. The
object is freed when both are zero.

For an object owned elsewhere the same count makes this process a
*borrower*: the 0 → 1 transition registers with the owner and 1 → 0
unregisters, through the callbacks (which the CoreWorker turns into RPCs).

Refs in a task's return value are *handed off* (Ray's protocol for refs
nested in returns): before replying, the executing worker registers the
caller as a borrower of each one with its owner (itself, or a third process).
The caller counts the refs as captured by the return object with
``registered=True``: where that makes it a new borrower the registration is
already done; where it borrowed the ref already, the extra registration is
given back at once. So an inner object lives as long as the outer one (or a
ref deserialized from it) does, even after the worker dropped its own refs.

Thread-safety: ObjectRef.__del__ runs on any thread, so every method takes a
lock; callbacks run after the lock is released.

Most entries are objects owned here that nobody borrows and that capture no
refs (every task result and put on a driver): such an entry is a bare int,
its count, and becomes a ``RefEntry`` when it first needs more. An int is
not an object the garbage collector tracks: a million unread results were a
million more objects for each of its full passes.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterable
from typing import Any

_NO_BORROWERS: dict[bytes, int] = {}
# Deferred decrements applied per hold of the lock (drain): long enough that
# a dropped list of results takes it a few times, short enough that a
# submit waiting for it waits well under a millisecond.
_DRAIN_SLICE = 512


class RefEntry:
    __slots__ = ("count", "owned", "owner", "borrowers", "contained")

    def __init__(self, owned: bool, owner: Any = None) -> None:
        self.count = 0
        self.owned = owned
        self.owner = owner
        # borrower id -> registrations; most objects have none: one shared
        # empty dict (never written: add_borrower gives an entry its own).
        self.borrowers: dict[bytes, int] = _NO_BORROWERS
        # Ids of refs inside the value (most have none: a tuple, so the
        # collector need not track an empty list per object).
        self.contained: tuple[bytes, ...] = ()


class ReferenceCounter:
    def __init__(
        self,
        on_free: Callable[[bytes], None],
        on_borrow: Callable[[bytes, Any, bool], None],
    ) -> None:
        self._lock = threading.Lock()
        self._entries: dict[bytes, int | RefEntry] = {}  # a bare int: see the module's docstring
        self._on_free = on_free
        self._on_borrow = on_borrow
        # Decrements from ObjectRef.__del__: the garbage collector can run
        # __del__ on a thread that already holds self._lock, so __del__ only
        # appends here (atomic) and the next caller or drain() applies them.
        self._deferred: collections.deque[bytes] = collections.deque()
        self.on_deferred: Callable[[], None] | None = None

    def decr_deferred(self, object_id: bytes) -> None:
        was_empty = not self._deferred
        self._deferred.append(object_id)
        if was_empty and self.on_deferred is not None:
            self.on_deferred()

    def drain(self) -> None:
        """Apply the deferred decrements, a slice at a time under one hold of
        the lock: a list of 5,000 results dropped at once took the lock 5,000
        times, each a chance to meet the user thread's next submit there (a
        thread switch per meeting: ~20 us a drop on the loop thread)."""
        dq = self._deferred
        while dq:
            batch: list[tuple[bytes, int, bytes | None]] = []
            try:
                for _ in range(_DRAIN_SLICE):
                    batch.append((dq.popleft(), 1, None))
            except IndexError:
                pass
            if batch:
                self._release_many(batch)

    # -- queries -----------------------------------------------------------
    def __contains__(self, object_id: bytes) -> bool:
        return object_id in self._entries

    def get(self, object_id: bytes) -> RefEntry | None:
        """The entry of ``object_id`` (read-only: a copy where it is a bare count)."""
        e = self._entries.get(object_id)
        if type(e) is int:
            r = RefEntry(True)
            r.count = e
            return r
        return e  # type: ignore[return-value]

    def _full(self, object_id: bytes, e: int | RefEntry) -> RefEntry:
        """The entry as a RefEntry, made one in place from a bare count (under the lock)."""
        if type(e) is int:
            r = RefEntry(True)
            r.count = e
            self._entries[object_id] = r
            return r
        return e  # type: ignore[return-value]

    def owned_ids(self) -> list[bytes]:
        with self._lock:
            return [k for k, e in self._entries.items() if type(e) is int or e.owned]  # type: ignore[union-attr]

    def borrower_ids(self) -> set[bytes]:
        """Every process registered as a borrower of an object owned here."""
        with self._lock:
            return {b for e in self._entries.values() if type(e) is not int for b in e.borrowers}  # type: ignore[union-attr]

    def snapshot(self) -> dict[bytes, tuple[int, bool, int]]:
        """object id -> (count, owned, number of borrowers)."""
        with self._lock:
            return {k: (e, True, 0) if type(e) is int else (e.count, e.owned, len(e.borrowers))  # type: ignore[union-attr]
                    for k, e in self._entries.items()}

    # -- updates -----------------------------------------------------------
    def add_owned(self, object_id: bytes, contained: Iterable[bytes] = ()) -> None:
        """Register an object this process owns (before any ref to it exists)."""
        with self._lock:
            e = self._entries.get(object_id)
            if e is None:
                self._entries[object_id] = 0
            elif type(e) is not int:
                e.owned = True  # type: ignore[union-attr]
        if contained:
            self.set_contained(object_id, contained)

    def set_contained(self, object_id: bytes, contained: Iterable[bytes], owners: Iterable[Any] = (),
                      registered: bool = False) -> bool:
        """Refs captured inside ``object_id``'s value stay alive with it.

        ``registered``: the refs were handed off with a task's return value,
        so this process is registered as their borrower once per distinct
        ref already. False (nothing counted) when ``object_id`` is unknown.
        """
        ids = list(contained)
        if not ids:
            return True
        owners_l = list(owners) or [None] * len(ids)
        with self._lock:
            e = self._entries.get(object_id)
            if e is None:
                return False
            e = self._full(object_id, e)
            e.contained += tuple(ids)
        seen: set[bytes] = set()
        for cid, owner in zip(ids, owners_l, strict=True):
            self.incr(cid, owner, registered=registered and cid not in seen)
            seen.add(cid)
        return True

    def incr(self, object_id: bytes, owner: Any = None, n: int = 1, registered: bool = False) -> None:
        """Count ``n`` more refs. ``registered``: the owner already counts one
        registration of this process as a borrower (a hand-off)."""
        borrow = unborrow = False
        with self._lock:
            e: Any = self._entries.get(object_id)  # (Any: mypy does not narrow by ``type(e) is int``)
            if type(e) is int:  # owned here, nothing else to it
                self._entries[object_id] = e + n
                return
            if e is None:
                e = self._entries[object_id] = RefEntry(False, owner)
            elif e.owner is None and owner is not None:
                e.owner = owner
            if not e.owned and e.owner is not None:
                if e.count == 0:
                    borrow = not registered
                else:
                    unborrow = registered  # registered before: give the extra one back
            e.count += n
            owner = e.owner
        if borrow:
            self._on_borrow(object_id, owner, True)
        elif unborrow:
            self._on_borrow(object_id, owner, False)

    def decr(self, object_id: bytes, n: int = 1) -> None:
        self._release(object_id, n, None)

    def add_borrower(self, object_id: bytes, borrower: bytes) -> bool:
        """One more registration of ``borrower`` (each is undone by one
        ``remove_borrower``). False when this process does not own the object."""
        with self._lock:
            e = self._entries.get(object_id)
            if e is None:
                return False
            e = self._full(object_id, e)
            if not e.owned:
                return False
            if e.borrowers is _NO_BORROWERS:
                e.borrowers = {}
            e.borrowers[borrower] = e.borrowers.get(borrower, 0) + 1
            return True

    def remove_borrower(self, object_id: bytes, borrower: bytes) -> None:
        self._release(object_id, 0, borrower)

    def remove_borrower_everywhere(self, borrower: bytes) -> None:
        """A borrower process died: drop it from every entry."""
        with self._lock:
            ids = [k for k, e in self._entries.items() if type(e) is not int and borrower in e.borrowers]  # type: ignore[union-attr]
        for k in ids:
            self._release(k, 0, borrower, everywhere=True)

    def _release(self, object_id: bytes, n: int, borrower: bytes | None, everywhere: bool = False) -> None:
        self._release_many([(object_id, n, borrower)], everywhere)

    def _release_many(self, stack: list[tuple[bytes, int, bytes | None]], everywhere: bool = False) -> None:
        """Release each (object id, count, borrower) of ``stack`` (consumed)."""
        freed: list[bytes] = []
        unborrow: list[tuple[bytes, Any]] = []
        entries = self._entries
        with self._lock:
            while stack:
                oid, k, b = stack.pop()
                e: Any = entries.get(oid)
                if type(e) is int:  # owned, no borrowers, nothing inside
                    if b is not None and not k:
                        continue  # a borrower not registered (any more): nothing changes
                    if e > k:
                        entries[oid] = e - k
                    else:
                        del entries[oid]
                        freed.append(oid)
                    continue
                if e is None:
                    continue
                e.count -= k
                if b is not None and b not in e.borrowers and not k:
                    continue  # not registered (any more): nothing changes
                if b is not None and b in e.borrowers:
                    left = 0 if everywhere else e.borrowers[b] - 1
                    if left > 0:
                        e.borrowers[b] = left
                    else:
                        del e.borrowers[b]
                if e.count > 0 or e.borrowers:
                    continue
                if e.count < 0:  # pragma: no cover - a bug: never go negative
                    e.count = 0
                del entries[oid]
                if e.owned:
                    freed.append(oid)
                elif e.owner is not None:
                    unborrow.append((oid, e.owner))
                for c in e.contained:
                    stack.append((c, 1, None))
        for oid in freed:
            self._on_free(oid)
        for oid, owner in unborrow:
            self._on_borrow(oid, owner, False)
