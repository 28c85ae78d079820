"""A FIFO queue shared across the cluster (Ray's ``ray.util.queue``).

The items live in one async actor holding an ``asyncio.Queue``; a
:class:`Queue` object is only a handle to that actor, so it can be passed to
tasks and actors and every copy reaches the same items. Blocking calls wait
inside the actor, so a consumer blocked in ``get`` does not hold up
producers.
"""

from __future__ import annotations

import asyncio
import queue as _stdlib_queue
from collections.abc import Iterable
from typing import Any

import jray
from jray.actor import exit_actor


class Empty(_stdlib_queue.Empty):
    """Raised when getting from a Queue that stays empty (no wait, or past the timeout)."""


class Full(_stdlib_queue.Full):
    """Raised when putting into a Queue that stays full (no wait, or past the timeout)."""


class _QueueActor:
    """Holds the items. Replies carry a success flag instead of raising, so the
    caller can raise a clean Empty/Full without a remote traceback."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)

    async def qsize(self) -> int:
        return self.queue.qsize()

    async def empty(self) -> bool:
        return self.queue.empty()

    async def full(self) -> bool:
        return self.queue.full()

    async def put(self, item: Any, timeout: float | None = None) -> bool:
        # Try at once first: wait_for(..., 0) gives up before the put even runs.
        if not self.queue.full():
            self.queue.put_nowait(item)
            return True
        try:
            await asyncio.wait_for(self.queue.put(item), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def put_nowait(self, item: Any) -> bool:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            return False
        return True

    async def put_nowait_batch(self, items: list[Any]) -> str | None:
        if self.maxsize > 0 and len(items) + self.queue.qsize() > self.maxsize:
            return (
                f"Cannot add {len(items)} items to queue of size {self.queue.qsize()} "
                f"and maxsize {self.maxsize}."
            )
        for item in items:
            self.queue.put_nowait(item)
        return None

    async def get(self, timeout: float | None = None) -> tuple[bool, Any]:
        if not self.queue.empty():
            return True, self.queue.get_nowait()
        try:
            return True, await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return False, None

    async def get_nowait(self) -> tuple[bool, Any]:
        try:
            return True, self.queue.get_nowait()
        except asyncio.QueueEmpty:
            return False, None

    async def get_nowait_batch(self, num_items: int) -> tuple[bool, Any]:
        if num_items > self.queue.qsize():
            return False, f"Cannot get {num_items} items from queue of size {self.queue.qsize()}."
        return True, [self.queue.get_nowait() for _ in range(num_items)]

    async def _terminate(self) -> None:
        exit_actor()


_actor_class: Any = None


def _queue_actor_class() -> Any:
    # Built on first use (not at import): jray may still be importing when
    # this module is, and one ActorClass exports the class only once.
    global _actor_class
    if _actor_class is None:
        _actor_class = jray.remote(_QueueActor)
    return _actor_class


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")


class Queue:
    """A first-in, first-out queue whose items live in an actor.

    ``maxsize`` bounds the number of items (0: unbounded). ``actor_options``
    go to the actor's ``.options(...)``, e.g. ``{"num_cpus": 1}`` or a
    name. Like ``asyncio.Queue`` with blocking, non-blocking, batched and
    async variants of put and get.
    """

    def __init__(self, maxsize: int = 0, actor_options: dict[str, Any] | None = None) -> None:
        self.maxsize = maxsize
        self.actor: Any = _queue_actor_class().options(**(actor_options or {})).remote(maxsize)

    def _handle(self) -> Any:
        if self.actor is None:
            raise RuntimeError("This Queue has been shut down; create a new Queue.")
        return self.actor

    def __len__(self) -> int:
        return self.size()

    def size(self) -> int:
        """The number of items in the queue."""
        return jray.get(self._handle().qsize.remote())  # type: ignore[no-any-return]

    def qsize(self) -> int:
        """The number of items in the queue."""
        return self.size()

    def empty(self) -> bool:
        """Whether the queue holds no item."""
        return jray.get(self._handle().empty.remote())  # type: ignore[no-any-return]

    def full(self) -> bool:
        """Whether the queue holds ``maxsize`` items."""
        return jray.get(self._handle().full.remote())  # type: ignore[no-any-return]

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Add ``item``; when full, wait up to ``timeout`` seconds (forever if
        None) for room, or raise Full at once when ``block`` is False."""
        if not block:
            return self.put_nowait(item)
        _check_timeout(timeout)
        if not jray.get(self._handle().put.remote(item, timeout)):
            raise Full(f"The queue stayed full (maxsize {self.maxsize}) for {timeout} s.")
        return None

    async def put_async(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """``put`` for asyncio code: awaits instead of blocking the thread."""
        if not block:
            ok = await self._handle().put_nowait.remote(item)
        else:
            _check_timeout(timeout)
            ok = await self._handle().put.remote(item, timeout)
        if not ok:
            raise Full(f"The queue is full (maxsize {self.maxsize}).")

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return the oldest item; when empty, wait up to
        ``timeout`` seconds (forever if None) for one, or raise Empty at once
        when ``block`` is False."""
        if not block:
            return self.get_nowait()
        _check_timeout(timeout)
        ok, item = jray.get(self._handle().get.remote(timeout))
        if not ok:
            raise Empty(f"The queue stayed empty for {timeout} s.")
        return item

    async def get_async(self, block: bool = True, timeout: float | None = None) -> Any:
        """``get`` for asyncio code: awaits instead of blocking the thread."""
        if not block:
            ok, item = await self._handle().get_nowait.remote()
        else:
            _check_timeout(timeout)
            ok, item = await self._handle().get.remote(timeout)
        if not ok:
            raise Empty("The queue is empty.")
        return item

    def put_nowait(self, item: Any) -> None:
        """Add ``item`` or raise Full at once (same as ``put(item, block=False)``)."""
        if not jray.get(self._handle().put_nowait.remote(item)):
            raise Full(f"The queue is full (maxsize {self.maxsize}).")

    def put_nowait_batch(self, items: Iterable[Any]) -> None:
        """Add all ``items`` at once, or none of them (raising Full) when they do not fit."""
        if not isinstance(items, Iterable):
            raise TypeError("Argument 'items' must be an Iterable")
        error = jray.get(self._handle().put_nowait_batch.remote(list(items)))
        if error is not None:
            raise Full(error)

    def get_nowait(self) -> Any:
        """Remove and return the oldest item or raise Empty at once."""
        ok, item = jray.get(self._handle().get_nowait.remote())
        if not ok:
            raise Empty("The queue is empty.")
        return item

    def get_nowait_batch(self, num_items: int) -> list[Any]:
        """Remove and return the ``num_items`` oldest items, or raise Empty
        (taking nothing) when fewer are there."""
        if isinstance(num_items, bool) or not isinstance(num_items, int):
            raise TypeError("Argument 'num_items' must be an int")
        if num_items < 0:
            raise ValueError("'num_items' must be nonnegative")
        ok, out = jray.get(self._handle().get_nowait_batch.remote(num_items))
        if not ok:
            raise Empty(out)
        return out  # type: ignore[no-any-return]

    def shutdown(self, force: bool = False, grace_period_s: int = 5) -> None:
        """Stop the queue's actor (its items are lost).

        Without ``force``, the actor first finishes the calls already sent to
        it; past ``grace_period_s`` seconds it is killed anyway.
        """
        actor, self.actor = self.actor, None
        if actor is None:
            return
        if not force:
            done = actor._terminate.remote()
            ready, _ = jray.wait([done], timeout=grace_period_s)
            if ready:
                return
        jray.kill(actor, no_restart=True)


__all__ = ["Empty", "Full", "Queue"]
