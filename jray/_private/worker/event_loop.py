"""The CoreWorker's event loop, in a thread of its own.

A driver lives inside a Jupyter kernel that already runs an asyncio loop, so
the engine's loop runs in a background thread; user threads reach it
through this small facade (ipyparallel's "async core, sync facade"):
``run_sync`` (block on a coroutine), ``call_soon`` (thread-safe callback),
``post`` (an ordered inbox: a burst of posts from user threads costs one
loop wake-up, which matters on the submission hot path) and ``spawn`` (a
background task whose failure is logged).

Burst hooks: a part that wants to act once per burst of posts (the task
submitter pushes the tasks of a burst together) registers
``add_burst_hooks(start, end)``; ``start`` runs before the inbox drains,
``end`` after it.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from jray._private import debug_wake as debugger

logger = logging.getLogger(__name__)
T = TypeVar("T")


class LoopThread:
    def __init__(self, name: str = "jray-core-worker") -> None:
        self.loop = asyncio.new_event_loop()
        self._inbox: collections.deque = collections.deque()
        self._inbox_lock = threading.RLock()  # re-entrant: a post may come from an ObjectRef's __del__
        self._inbox_scheduled = False
        self._burst_start: list[Callable[[], None]] = []
        self._burst_end: list[Callable[[], None]] = []
        # run_sync's waits in progress: a loop that stops under them fails them
        # (a driver whose cluster was lost disconnects while a user thread waits).
        self._waits: set[concurrent.futures.Future] = set()
        self._stopped: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._ident = self._thread.ident  # known once start() returns

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def stop(self, timeout: float = 5.0, error: BaseException | None = None) -> None:
        """Stop the loop and join its thread (pending tasks are abandoned).
        A ``run_sync`` waiting then, or called later, raises ``error``
        (default: a RuntimeError saying the CoreWorker stopped)."""
        self._stopped = error or RuntimeError("jray: this process's CoreWorker has stopped (jray.shutdown(), or its "
                                              "cluster was lost): call jray.init() again")
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except RuntimeError:  # already closed
            pass
        else:
            self._thread.join(timeout=timeout)
        for fut in list(self._waits):
            fut.cancel()  # run_sync sees it cancelled and raises self._stopped

    def in_loop_thread(self) -> bool:
        return threading.get_ident() == self._ident  # (on every post: cheaper than current_thread())

    def run_sync(self, coro: Coroutine[Any, Any, T], timeout: float | None = None, wakeable: bool = False) -> T:
        """Run ``coro`` on the loop and wait for its result (user threads).
        ``wakeable``: a task paused at a breakpoint cuts the wait short
        (``debugger.DebugWake``; the main thread only)."""
        if self.in_loop_thread():
            coro.close()
            raise RuntimeError("jray: a blocking call was made from the CoreWorker's own event loop")
        if self._stopped is not None:
            coro.close()
            raise self._stopped
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        self._waits.add(fut)
        try:
            if self._stopped is not None and not fut.done():  # stopped just now: nothing will run it
                fut.cancel()
            if not wakeable:
                return fut.result(timeout)
            with debugger.wakeable(fut.cancel) as wk:
                try:
                    return fut.result(timeout)
                except concurrent.futures.CancelledError:
                    if wk.woken:
                        raise debugger.DebugWake from None
                    raise
        except KeyboardInterrupt:
            fut.cancel()
            raise
        except concurrent.futures.CancelledError:
            if self._stopped is not None:
                raise self._stopped from None
            raise
        finally:
            self._waits.discard(fut)

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """``fn(*args)`` on the loop: now when already there, else soon."""
        if self.in_loop_thread():
            fn(*args)
        else:
            self.loop.call_soon_threadsafe(fn, *args)

    def add_burst_hooks(self, start: Callable[[], None], end: Callable[[], None]) -> None:
        self._burst_start.append(start)
        self._burst_end.append(end)

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
        for hook in self._burst_start:
            hook()
        while inbox:
            fn, args = inbox.popleft()
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - one bad item must not stop the rest
                logger.exception("jray: internal error in %s", getattr(fn, "__qualname__", fn))
        for hook in self._burst_end:
            hook()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        """A background task on the loop (loop thread); its failure is logged."""
        task = self.loop.create_task(coro)
        task.add_done_callback(_log_task_exception)
        return task


def _log_task_exception(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.debug("background task failed", exc_info=task.exception())
