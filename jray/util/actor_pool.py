"""ActorPool: spread work over a fixed set of actors (Ray's ``ray.util.ActorPool``).

The pool hands each submitted value to an idle actor through a user
function ``fn(actor, value) -> ObjectRef``; an actor counts as busy until
its result has been taken back with ``get_next`` / ``get_next_unordered``.
Values submitted while every actor is busy wait in a local backlog.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jray
from jray.object_ref import ObjectRef

_TIMEOUT_MSG = "Timed out waiting for result"


def _refs_of(future: Any) -> list[ObjectRef]:
    """The ObjectRefs behind what ``fn`` returned (one ref, or a list of them)."""
    if isinstance(future, ObjectRef):
        return [future]
    if (
        isinstance(future, (list, tuple))
        and future
        and all(isinstance(r, ObjectRef) for r in future)
    ):
        return list(future)
    raise TypeError(
        "The function given to ActorPool must return an ObjectRef (e.g. `lambda a, v: a.method.remote(v)`) "
        f"or a list of them, got {type(future).__name__}."
    )


def _key(future: Any) -> Any:
    return tuple(future) if isinstance(future, list) else future


class ActorPool:
    """Run ``fn(actor, value)`` over a fixed list of actor handles.

    >>> pool = ActorPool([Doubler.remote(), Doubler.remote()])
    >>> list(pool.map(lambda a, v: a.double.remote(v), [1, 2, 3]))
    [2, 4, 6]
    """

    def __init__(self, actors: Iterable[Any]) -> None:
        self._idle_actors: list[Any] = list(actors)
        # key of an in-flight result -> (submission index, actor running it)
        self._future_to_actor: dict[Any, tuple[int, Any]] = {}
        self._index_to_future: dict[int, Any] = {}
        self._next_task_index = 0
        self._next_return_index = 0
        self._pending_submits: deque[tuple[Callable[[Any, Any], Any], Any]] = deque()

    # -- bulk ------------------------------------------------------------
    def map(self, fn: Callable[[Any, Any], Any], values: Iterable[Any]) -> Iterator[Any]:
        """Results of ``fn`` over ``values``, in the order of ``values``.

        Results still pending from earlier submissions are dropped first
        (as Ray does), so the iterator yields exactly one result per value.
        """
        self._drop_pending(ordered=True)
        for v in values:
            self.submit(fn, v)
        return self._drain(self.get_next)

    def map_unordered(self, fn: Callable[[Any, Any], Any], values: Iterable[Any]) -> Iterator[Any]:
        """Like :meth:`map`, but yields each result as soon as it is ready."""
        self._drop_pending(ordered=False)
        for v in values:
            self.submit(fn, v)
        return self._drain(self.get_next_unordered)

    def _drain(self, take: Callable[[], Any]) -> Iterator[Any]:
        while self.has_next():
            yield take()

    def _drop_pending(self, ordered: bool) -> None:
        while self.has_next():
            try:
                if ordered and self._next_return_index < self._next_task_index:
                    self.get_next(timeout=0, ignore_if_timedout=True)
                else:
                    self.get_next_unordered(timeout=0, ignore_if_timedout=True)
            except TimeoutError:
                pass

    # -- one at a time ---------------------------------------------------
    def submit(self, fn: Callable[[Any, Any], Any], value: Any) -> None:
        """Run ``fn(actor, value)`` on an idle actor, or queue it until one frees up."""
        if not self._idle_actors:
            self._pending_submits.append((fn, value))
            return
        actor = self._idle_actors.pop()
        try:
            future = fn(actor, value)
            _refs_of(future)
        except BaseException:
            self._idle_actors.append(actor)
            raise
        index = self._next_task_index
        self._future_to_actor[_key(future)] = (index, actor)
        self._index_to_future[index] = future
        self._next_task_index += 1

    def has_next(self) -> bool:
        """Whether a submitted result is still waiting to be returned."""
        return bool(self._future_to_actor)

    def get_next(self, timeout: float | None = None, ignore_if_timedout: bool = False) -> Any:
        """The next result in submission order.

        Raises StopIteration when nothing is pending and TimeoutError when the
        result is not ready within ``timeout`` seconds; with
        ``ignore_if_timedout=True`` that result is dropped (its actor is freed)
        before the TimeoutError is raised.
        """
        if not self.has_next():
            raise StopIteration("No more results to get")
        if self._next_return_index >= self._next_task_index:
            raise ValueError("It is not allowed to call get_next() after get_next_unordered().")
        future = self._index_to_future[self._next_return_index]
        timed_out = False
        if timeout is not None:
            refs = _refs_of(future)
            ready, _ = jray.wait(refs, num_returns=len(refs), timeout=timeout)
            if len(ready) < len(refs):
                if not ignore_if_timedout:
                    raise TimeoutError(_TIMEOUT_MSG)
                timed_out = True
        del self._index_to_future[self._next_return_index]
        self._next_return_index += 1
        _, actor = self._future_to_actor.pop(_key(future))
        if timed_out:
            self._return_actor(actor)
            raise TimeoutError(f"{_TIMEOUT_MSG}. The task {future} has been ignored.")
        return self._take(future, actor)

    def get_next_unordered(
        self, timeout: float | None = None, ignore_if_timedout: bool = False
    ) -> Any:
        """Any ready result (whichever finishes first).

        Raises StopIteration when nothing is pending and TimeoutError when no
        result is ready within ``timeout`` seconds; with
        ``ignore_if_timedout=True`` one pending result is dropped first.
        """
        if not self.has_next():
            raise StopIteration("No more results to get")
        first = {_refs_of(f)[-1]: f for f in self._future_to_actor}
        ready, _ = jray.wait(list(first), num_returns=1, timeout=timeout)
        if ready:
            future = first[ready[0]]
        elif not ignore_if_timedout:
            raise TimeoutError(_TIMEOUT_MSG)
        else:
            future = next(iter(self._future_to_actor))
        index, actor = self._future_to_actor.pop(future)
        del self._index_to_future[index]
        self._next_return_index = max(self._next_return_index, index + 1)
        if not ready:
            self._return_actor(actor)
            raise TimeoutError(f"{_TIMEOUT_MSG}. The task {future} has been ignored.")
        return self._take(future, actor)

    def _take(self, future: Any, actor: Any) -> Any:
        alive = True
        try:
            return jray.get(future)
        except jray.exceptions.ActorDiedError:
            alive = False  # a dead actor would swallow every later submit
            raise
        finally:
            self._return_actor(actor, alive)

    def _return_actor(self, actor: Any, alive: bool = True) -> None:
        if alive:
            self._idle_actors.append(actor)
        while self._pending_submits and self._idle_actors:
            self.submit(*self._pending_submits.popleft())

    # -- membership ------------------------------------------------------
    def has_free(self) -> bool:
        """Whether an actor is idle and no submission is waiting for one."""
        return bool(self._idle_actors) and not self._pending_submits

    def pop_idle(self) -> Any:
        """Remove and return an idle actor, or None when none is free."""
        return self._idle_actors.pop() if self.has_free() else None

    def push(self, actor: Any) -> None:
        """Add ``actor`` to the pool (it may take a waiting submission at once)."""
        busy = [a for _, a in self._future_to_actor.values()]
        if actor in self._idle_actors or actor in busy:
            raise ValueError("Actor already belongs to current ActorPool")
        self._return_actor(actor)


__all__ = ["ActorPool"]
