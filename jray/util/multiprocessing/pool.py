"""``multiprocessing.Pool`` on jray actors (Ray's ``ray.util.multiprocessing``).

Each "process" of the pool is one actor. Work is cut into chunks, and each
chunk is one actor call that runs the function over its items; a failure
comes back as the original exception (with the remote traceback as its
``__cause__``, as the standard library does). ``apply_async`` and the
``imap`` family catch errors item by item (``run_batch``); ``map`` and
``starmap`` send a chunk as the bare list of items and get back the list of
results, or the first error, as the standard library's ``mapstar`` does
(``run_chunk``): half the pickling of a per-item outcome.

An ``AsyncResult`` without callbacks fetches its results when asked
(``get``, ``wait``, ``ready``); one with callbacks watches its refs so the
callbacks run as soon as the results arrive.

``apply_async`` calls travel in batches, as the standard library's task
queue lets a burst of them through its pipe: a call waits in the pool's
pending list until someone asks for a result (``get``/``wait``/``ready``
of any pending call send them all at once), the list holds ``BATCH_MAX``
calls, another function is applied, or ``BATCH_LINGER_S`` passed since the
first one (a thread: what callbacks wait for). A flush splits the list over
the actors, one ``run_batch`` call each; the calls' outcomes stay item by
item, so one call's error is its own. A burst of 5,000 no-op calls costs a
few dozen actor calls instead of 5,000, and a single ``apply`` waits for
nothing (its ``get`` sends it).

What a worker sees stays what Ray's Pool shows it: only calls whose
arguments cannot change (numbers, strings, bytes, None, tuples of them)
wait; any other call is sent at once, after the pending ones. The
function is serialized at the first call of a batch (``jray.put``), and the
batch's later calls share it, as Ray exports a remote function once: a
global the function reads, changed after the first call of a batch, is
not seen by the batch's later calls (a batch ends when a result is asked
for, another function comes, or 0.5 ms passed). With ``maxtasksperchild`` each call goes on its own, so an
actor's count of tasks stays the standard library's.
"""

from __future__ import annotations

import builtins
import itertools
import logging
import multiprocessing
import os
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jray
from jray.actor import exit_actor

logger = logging.getLogger(__name__)

# An item of a chunk: positional and keyword arguments of one call.
_Call = tuple[tuple[Any, ...], dict[str, Any]]
# What a chunk gives back per item: (True, value) or (False, (exception, traceback text)).
_Outcome = tuple[bool, Any]


class TimeoutError(multiprocessing.TimeoutError, builtins.TimeoutError):
    """Raised when a result is not ready within the timeout given to ``get``/``next``."""


class RemoteTraceback(Exception):
    """The traceback text of an error raised in a pool actor (set as its ``__cause__``)."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


class _PoolActor:
    """One worker of the pool; runs ``initializer`` once, then chunks of calls."""

    def __init__(self, initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]) -> None:
        if initializer is not None:
            initializer(*initargs)

    def ping(self) -> int:
        return os.getpid()

    def run_batch(self, func: Callable[..., Any], calls: list[_Call]) -> list[_Outcome]:
        out: list[_Outcome] = []
        for args, kwargs in calls:
            try:
                out.append((True, func(*args, **kwargs)))
            except Exception as e:  # noqa: BLE001 - sent back to the caller
                out.append((False, (_picklable(e), traceback.format_exc())))
        return out

    def run_chunk(self, func: Callable[..., Any], items: list[Any], star: bool) -> _Outcome:
        """``map``/``starmap`` over a chunk: (True, results) or (False, the first error)."""
        try:
            if star:
                return True, [func(*args) for args in items]
            return True, [func(x) for x in items]
        except Exception as e:  # noqa: BLE001 - sent back to the caller
            return False, (_picklable(e), traceback.format_exc())

    def exit(self) -> None:
        exit_actor()


def _picklable(e: BaseException) -> BaseException:
    import cloudpickle

    try:
        cloudpickle.loads(cloudpickle.dumps(e))
        return e
    except Exception:  # noqa: BLE001
        return RuntimeError(
            f"{type(e).__name__}: {e} (the original exception could not be pickled)"
        )


def _unwrap(outcome: _Outcome) -> Any:
    ok, value = outcome
    if ok:
        return value
    exc, tb = value
    raise _with_cause(exc, tb)


def _with_cause(exc: BaseException, tb: str) -> BaseException:
    exc.__cause__ = RemoteTraceback(f'\n"""\n{tb}"""')
    return exc


_actor_class: Any = None


def _pool_actor_class() -> Any:
    global _actor_class
    if _actor_class is None:
        _actor_class = jray.remote(_PoolActor)
    return _actor_class


class AsyncResult:
    """The future result of ``apply_async`` / ``map_async`` / ``starmap_async``.

    Each ref gives a chunk: a list of per-item outcomes (``run_batch``), or
    with ``whole_chunks`` one outcome for the whole chunk (``run_chunk``).
    Without callbacks the results are fetched when asked for (``get``,
    ``wait``, ``ready``); with one, each ref is watched, so the callback runs
    as soon as the last result arrives (on the thread resolving them).
    """

    def __init__(
        self,
        chunk_refs: list[Any],
        callback: Callable[[Any], Any] | None = None,
        error_callback: Callable[[BaseException], Any] | None = None,
        single_result: bool = False,
        whole_chunks: bool = False,
    ) -> None:
        self._callback = callback
        self._error_callback = error_callback
        self._single = single_result
        self._whole = whole_chunks
        self._refs = chunk_refs
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._chunks: list[Any] = [None] * len(chunk_refs)
        self._left = len(chunk_refs)
        self._value: Any = None
        self._error: BaseException | None = None
        self._watched = callback is not None or error_callback is not None
        if not chunk_refs:
            self._finish()
        elif self._watched:
            for i, ref in enumerate(chunk_refs):
                ref.future().add_done_callback(lambda f, i=i: self._on_chunk(i, f))

    def _failed_chunk(self, e: BaseException) -> Any:
        return (False, (e, "")) if self._whole else [(False, (e, ""))]

    def _on_chunk(self, i: int, fut: Any) -> None:
        try:
            chunk = fut.result()
        except BaseException as e:  # noqa: BLE001 - e.g. the actor died (terminate)
            chunk = self._failed_chunk(e)
        with self._lock:
            self._chunks[i] = chunk
            self._left -= 1
            last = self._left == 0
        if last:
            self._finish()

    def _fetch(self, timeout: float | None) -> bool:
        """Without callbacks: get the chunks if they are all there within
        ``timeout``, and finish; whether the result is ready."""
        if self._done.is_set():
            return True
        if self._watched:
            return self._done.wait(timeout)
        try:
            chunks = jray.get(self._refs, timeout=timeout)
        except jray.exceptions.GetTimeoutError:
            return False
        except Exception:  # noqa: BLE001 - a chunk failed (its actor died): each on its own
            chunks = []
            for ref in self._refs:
                try:
                    chunks.append(jray.get(ref, timeout=timeout))
                except jray.exceptions.GetTimeoutError:
                    return False
                except Exception as e:  # noqa: BLE001
                    chunks.append(self._failed_chunk(e))
        with self._lock:
            if self._done.is_set():  # another thread finished it meanwhile
                return True
            self._chunks = list(chunks)
            self._left = 0
            self._finish()
        return True

    def _finish(self) -> None:
        values: list[Any] = []
        for chunk in self._chunks:
            if self._whole:
                ok, value = chunk
                if ok:
                    values.extend(value)
                    continue
                outcomes: Any = [chunk]
            else:
                outcomes = chunk or ()
            for ok, value in outcomes:
                if not ok:
                    exc, tb = value
                    self._error = _with_cause(exc, tb) if tb else exc
                    break
                values.append(value)
            if self._error is not None:
                break
        if self._error is None:
            self._value = values[0] if self._single else values
        self._done.set()
        try:
            if self._error is not None:
                if self._error_callback is not None:
                    self._error_callback(self._error)
            elif self._callback is not None:
                self._callback(self._value)
        except Exception:  # a callback must not kill the thread resolving results
            logger.exception("Pool result callback raised")

    def ready(self) -> bool:
        """Whether the call has finished (successfully or not)."""
        return self._fetch(0)

    def successful(self) -> bool:
        """Whether the call finished without raising; ValueError if not ready."""
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return self._error is None

    def wait(self, timeout: float | None = None) -> None:
        """Block until the result is ready or ``timeout`` seconds pass."""
        self._fetch(timeout)

    def get(self, timeout: float | None = None) -> Any:
        """The result; re-raises the call's exception; TimeoutError past ``timeout``."""
        if not self._fetch(timeout):
            raise TimeoutError(f"Result not ready after {timeout} s")
        if self._error is not None:
            raise self._error
        return self._value


class _ApplyResult(AsyncResult):
    """The result of one batched ``apply_async`` call: pending in the pool
    until a flush puts it in a ``_Batch``, then settled by that batch."""

    def __init__(
        self,
        pool: Pool,
        callback: Callable[[Any], Any] | None,
        error_callback: Callable[[BaseException], Any] | None,
    ) -> None:
        super().__init__([None], single_result=True)  # one chunk, not a ref to watch: its batch has it
        self._callback = callback
        self._error_callback = error_callback
        self._watched = callback is not None or error_callback is not None
        self._pool = pool
        self._batch: _Batch | None = None

    def _settle(self, outcome: _Outcome) -> None:
        with self._lock:
            if self._done.is_set():
                return
            self._chunks = [[outcome]]
            self._left = 0
        self._finish()

    def _fetch(self, timeout: float | None) -> bool:
        if self._done.is_set():
            return True
        if self._batch is None:
            self._pool._flush()  # asked for: everything pending goes now
        batch = self._batch
        if batch is None:  # settled without a batch (it could not be sent)
            return self._done.is_set()
        if self._watched:
            return self._done.wait(timeout)
        return batch.fetch(timeout)


class _Batch:
    """``apply_async`` calls sent together, one ``run_batch`` actor call:
    its outcomes are fetched once and handed to each call's result."""

    def __init__(self, ref: Any, members: list[_ApplyResult]) -> None:
        self.ref = ref
        self.members = members
        self._lock = threading.Lock()
        self._delivered = False
        for m in members:
            m._batch = self
        if any(m._watched for m in members):
            ref.future().add_done_callback(self._on_done)

    def _failed(self, e: BaseException) -> list[_Outcome]:
        return [(False, (e, ""))] * len(self.members)

    def _on_done(self, fut: Any) -> None:
        try:
            outcomes = fut.result()
        except BaseException as e:  # noqa: BLE001 - e.g. the actor died (terminate)
            outcomes = self._failed(e)
        self._deliver(outcomes)

    def _deliver(self, outcomes: list[_Outcome]) -> None:
        with self._lock:
            if self._delivered:
                return
            self._delivered = True
        for member, outcome in zip(self.members, outcomes, strict=False):
            member._settle(outcome)

    def fetch(self, timeout: float | None) -> bool:
        if self._delivered:
            return True
        try:
            outcomes = jray.get(self.ref, timeout=timeout)
        except jray.exceptions.GetTimeoutError:
            return False
        except Exception as e:  # noqa: BLE001 - the actor died: every call of the batch fails with it
            outcomes = self._failed(e)
        self._deliver(outcomes)
        return True


# Batching of apply_async (see the module docstring).
BATCH_LINGER_S = 0.0005
BATCH_MAX = 512
FLUSHER_IDLE_S = 5.0


class IMapIterator:
    """The iterator of ``imap`` (in order) and ``imap_unordered`` (as ready).

    Chunks are submitted lazily, a few per actor ahead of the consumer, so
    the input may be a long (even endless) generator.
    """

    def __init__(
        self,
        pool: Pool,
        func: Callable[..., Any],
        calls: Iterator[_Call],
        chunksize: int,
        ordered: bool,
    ) -> None:
        self._pool = pool
        pool._flush()  # pending apply_async calls go first, as they came first
        self._func = jray.put(func)
        self._chunks = _chunked(calls, chunksize)
        self._ordered = ordered
        self._in_flight: deque[tuple[Any, int]] = deque()  # (ref, actor slot)
        self._ready: deque[_Outcome] = deque()
        self._exhausted = False
        for _ in range(2):
            for slot in range(len(pool._actors)):
                self._submit_next(slot)

    def _submit_next(self, slot: int) -> None:
        if self._exhausted:
            return
        chunk = next(self._chunks, None)
        if chunk is None:
            self._exhausted = True
            return
        self._in_flight.append((self._pool._run_batch(slot, self._func, chunk), slot))

    def __iter__(self) -> IMapIterator:
        return self

    def __next__(self) -> Any:
        return self.next()

    def next(self, timeout: float | None = None) -> Any:
        """The next result; TimeoutError if none is ready within ``timeout`` seconds."""
        if not self._ready:
            if not self._in_flight:
                raise StopIteration
            if self._ordered:
                ref, slot = self._in_flight[0]
            else:
                ready, _ = jray.wait(
                    [r for r, _ in self._in_flight], num_returns=1, timeout=timeout
                )
                if not ready:
                    raise TimeoutError(f"No result ready after {timeout} s")
                ref, slot = next(e for e in self._in_flight if e[0] == ready[0])
            try:
                chunk = jray.get(ref, timeout=timeout)
            except jray.exceptions.GetTimeoutError:
                raise TimeoutError(f"Result not ready after {timeout} s") from None
            self._in_flight.remove((ref, slot))
            self._ready.extend(chunk)
            self._submit_next(slot)
        return _unwrap(self._ready.popleft())


def _chunked(calls: Iterator[_Call], size: int) -> Iterator[list[_Call]]:
    while True:
        chunk = list(itertools.islice(calls, size))
        if not chunk:
            return
        yield chunk


_ATOMS = (int, float, complex, str, bytes, bool, type(None))


def _frozen(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` cannot change between the ``apply_async`` call and
    its batch's flush: atoms, and tuples (and the call's own kwargs dict) of
    them. Anything else (a list, an array, an object) is sent at once, so
    the worker sees it as it was at the call, as in Ray."""
    if isinstance(value, _ATOMS):
        return True
    if depth > 3:
        return False
    if type(value) is tuple:
        return all(_frozen(v, depth + 1) for v in value)
    if type(value) is dict and depth == 1:  # the call's kwargs: a dict built here
        return all(_frozen(v, depth + 1) for v in value.values())
    return False


def _same_func(a: Any, b: Any) -> bool:
    """Whether ``b`` is the function pending calls apply (a bound method is
    a new object at each attribute access, equal to the last)."""
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - a callable whose __eq__ fails is just another function
        return False


def _one_arg(iterable: Iterable[Any]) -> Iterator[_Call]:
    return (((x,), {}) for x in iterable)


class Pool:
    """A pool of actors with the ``multiprocessing.Pool`` API.

    ``processes`` defaults to the cluster's CPU count; jray is initialized
    (locally with that many CPUs, or at ``ray_address``) if it is not yet.
    ``initializer(*initargs)`` runs once in each actor; with
    ``maxtasksperchild`` an actor is replaced after that many chunks.
    ``ray_remote_args`` are the actors' ``.options(...)``. ``context`` is
    accepted and ignored, as in Ray.
    """

    def __init__(
        self,
        processes: int | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: Iterable[Any] | None = (),
        maxtasksperchild: int | None = None,
        context: Any = None,
        ray_address: str | None = None,
        ray_remote_args: dict[str, Any] | None = None,
    ) -> None:
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if maxtasksperchild is not None and (
            not isinstance(maxtasksperchild, int) or maxtasksperchild < 1
        ):
            raise ValueError("maxtasksperchild must be a positive int or None")
        if processes is not None and processes < 1:
            raise ValueError("Number of processes must be at least 1")
        self._initializer = initializer
        self._initargs = tuple(initargs or ())
        self._maxtasksperchild = maxtasksperchild
        self._remote_args = dict(ray_remote_args or {})
        self._closed = False
        self._terminated = False
        self._lock = threading.Lock()
        self._next_slot = 0
        self._processes = self._init_cluster(processes, ray_address)
        self._actors: list[Any] = [self._new_actor() for _ in range(self._processes)]
        self._tasks_run = [0] * self._processes
        self._retired: list[Any] = []  # replaced by maxtasksperchild; exit once done
        # apply_async calls not sent yet, all of one function (see _flush).
        self._pending: list[tuple[_Call, _ApplyResult]] = []
        self._pending_func: Any = None
        self._pending_func_ref: Any = None  # the function as the first pending call found it
        self._pending_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._flusher: threading.Thread | None = None
        self._flusher_cond = threading.Condition()
        self._flush_due = False
        # Waiting here surfaces a failing initializer at construction, as in Ray.
        jray.get([a.ping.remote() for a in self._actors])

    @staticmethod
    def _init_cluster(processes: int | None, ray_address: str | None) -> int:
        if not jray.is_initialized():
            env = os.environ.get("JRAY_ADDRESS") or os.environ.get("RAY_ADDRESS")
            if ray_address in (None, "local") and not (ray_address is None and env):
                jray.init(num_cpus=processes)
            else:
                jray.init(address=ray_address)
        cpus = int(jray.cluster_resources().get("CPU", 0))
        if processes is None:
            return max(cpus, 1)
        if processes > cpus:
            raise ValueError(
                f"Tried to start a pool with {processes} processes on a jray cluster that has only "
                f"{cpus} CPUs."
            )
        return processes

    def _new_actor(self) -> Any:
        return (
            _pool_actor_class()
            .options(**self._remote_args)
            .remote(self._initializer, self._initargs)
        )

    def _check_running(self) -> None:
        if self._closed:
            raise ValueError("Pool not running")

    def _run_batch(self, slot: int, func: Any, chunk: list[Any], star: bool | None = None) -> Any:
        """Send one chunk to the actor in ``slot`` (``run_batch`` of calls, or
        with ``star`` given ``run_chunk`` of bare items); replace that actor
        once it has run ``maxtasksperchild`` chunks (it exits after finishing them)."""
        with self._lock:
            actor = self._actors[slot]
            if star is None:
                ref = actor.run_batch.remote(func, chunk)
            else:
                ref = actor.run_chunk.remote(func, chunk, star)
            self._tasks_run[slot] += 1
            if (
                self._maxtasksperchild is not None
                and self._tasks_run[slot] >= self._maxtasksperchild
            ):
                actor.exit.remote()
                self._retired.append(actor)
                self._actors[slot] = self._new_actor()
                self._tasks_run[slot] = 0
        return ref

    def _take_slot(self) -> int:
        with self._lock:
            slot = self._next_slot
            self._next_slot = (slot + 1) % len(self._actors)
            return slot

    def _chunksize(self, n: int, chunksize: int | None) -> int:
        if chunksize is not None:
            if chunksize < 1:
                raise ValueError(f"Chunksize must be 1+, not {chunksize}")
            return chunksize
        size, extra = divmod(n, len(self._actors) * 4)
        return max(size + (1 if extra else 0), 1)

    def _map_async(
        self,
        func: Callable[..., Any],
        items: list[Any],
        star: bool,
        chunksize: int | None,
        callback: Callable[[Any], Any] | None,
        error_callback: Callable[[BaseException], Any] | None,
    ) -> AsyncResult:
        self._check_running()
        self._flush()  # pending apply_async calls go first, as they came first
        size = self._chunksize(len(items), chunksize)
        func_ref = jray.put(func)
        refs = [
            self._run_batch(self._take_slot(), func_ref, items[i : i + size], star)
            for i in range(0, len(items), size)
        ]
        return AsyncResult(refs, callback, error_callback, whole_chunks=True)

    # -- the multiprocessing.Pool API -------------------------------------
    def apply(
        self, func: Callable[..., Any], args: Iterable[Any] = (), kwds: dict[str, Any] | None = None
    ) -> Any:
        """``func(*args, **kwds)`` in one actor; blocks for the result."""
        self._check_running()
        self._flush()
        ref = self._run_batch(self._take_slot(), func, [(tuple(args or ()), dict(kwds or {}))])
        return AsyncResult([ref], single_result=True).get()

    def apply_async(
        self,
        func: Callable[..., Any],
        args: Iterable[Any] | None = (),
        kwds: dict[str, Any] | None = None,
        callback: Callable[[Any], Any] | None = None,
        error_callback: Callable[[BaseException], Any] | None = None,
    ) -> AsyncResult:
        """``func(*args, **kwds)`` in one actor; returns an AsyncResult.

        The call may wait a moment to go with others (module docstring);
        asking for any pending result sends them at once."""
        self._check_running()
        call = (tuple(args or ()), dict(kwds or {}))
        if self._maxtasksperchild is not None or not _frozen(call):
            # Alone: each call one task of its actor (maxtasksperchild), or
            # arguments that could change before a flush, sent as they are now.
            self._flush()
            ref = self._run_batch(self._take_slot(), func, [call])
            return AsyncResult([ref], callback, error_callback, single_result=True)
        result = _ApplyResult(self, callback, error_callback)
        while True:
            with self._pending_lock:
                if not self._pending:
                    # The batch's function, serialized now (as the first call's
                    # arguments would be); a function that cannot be pickled fails here.
                    self._pending_func, self._pending_func_ref = func, jray.put(func)
                if _same_func(self._pending_func, func):
                    self._pending.append((call, result))
                    n = len(self._pending)
                    break
            self._flush()  # another function's calls go first
        if n >= BATCH_MAX:
            self._flush()
        elif n == 1:
            self._wake_flusher()
        return result

    def _wake_flusher(self) -> None:
        """Have the flusher thread send the pending calls ``BATCH_LINGER_S``
        from now (started on demand; it ends after ``FLUSHER_IDLE_S`` idle,
        so a pool nobody terminates keeps no thread)."""
        with self._flusher_cond:
            self._flush_due = True
            if self._flusher is None:
                self._flusher = threading.Thread(target=self._flusher_loop, name="jray-pool-flush", daemon=True)
                self._flusher.start()
            else:
                self._flusher_cond.notify()

    def _flusher_loop(self) -> None:
        while True:
            with self._flusher_cond:
                if not self._flush_due:
                    self._flusher_cond.wait(FLUSHER_IDLE_S)
                    if not self._flush_due:
                        self._flusher = None
                        return
                self._flush_due = False
            time.sleep(BATCH_LINGER_S)
            try:
                self._flush()
            except Exception:  # noqa: BLE001 - e.g. the cluster went away; the results' get says so
                logger.debug("flush of pending apply_async calls failed", exc_info=True)

    def _flush(self) -> None:
        """Send the pending ``apply_async`` calls: split over the actors,
        one ``run_batch`` each."""
        with self._flush_lock:
            with self._pending_lock:
                pending, self._pending = self._pending, []
                func, self._pending_func_ref = self._pending_func_ref, None
                self._pending_func = None
            if not pending:
                return
            parts = min(len(self._actors), len(pending))
            size = -(-len(pending) // parts)
            for i in range(0, len(pending), size):
                self._send_batch(func, pending[i : i + size])

    def _send_batch(self, func: Any, part: list[tuple[_Call, _ApplyResult]]) -> None:
        try:
            ref = self._run_batch(self._take_slot(), func, [call for call, _ in part])
        except Exception as e:  # noqa: BLE001 - e.g. an argument that cannot be pickled
            if len(part) == 1:
                part[0][1]._settle((False, (e, "")))
                return
            for one in part:  # one by one: only the call that cannot go fails
                self._send_batch(func, [one])
            return
        _Batch(ref, [result for _, result in part])

    def map(
        self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int | None = None
    ) -> list[Any]:
        """``[func(x) for x in iterable]``, computed in chunks across the actors."""
        return self.map_async(func, iterable, chunksize).get()  # type: ignore[no-any-return]

    def map_async(
        self,
        func: Callable[[Any], Any],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        callback: Callable[[Any], Any] | None = None,
        error_callback: Callable[[BaseException], Any] | None = None,
    ) -> AsyncResult:
        """``map`` that returns an AsyncResult of the list."""
        return self._map_async(func, list(iterable), False, chunksize, callback, error_callback)

    def starmap(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
    ) -> list[Any]:
        """``[func(*args) for args in iterable]``, computed across the actors."""
        return self.starmap_async(func, iterable, chunksize).get()  # type: ignore[no-any-return]

    def starmap_async(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        callback: Callable[[Any], Any] | None = None,
        error_callback: Callable[[BaseException], Any] | None = None,
    ) -> AsyncResult:
        """``starmap`` that returns an AsyncResult of the list."""
        items = [tuple(args) for args in iterable]
        return self._map_async(func, items, True, chunksize, callback, error_callback)

    def imap(
        self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int = 1
    ) -> IMapIterator:
        """An iterator of ``func(x)`` in input order, computed ahead of the consumer."""
        self._check_running()
        return IMapIterator(
            self, func, _one_arg(iterable), self._chunksize(0, chunksize), ordered=True
        )

    def imap_unordered(
        self, func: Callable[[Any], Any], iterable: Iterable[Any], chunksize: int = 1
    ) -> IMapIterator:
        """Like ``imap``, but yields results as they finish."""
        self._check_running()
        return IMapIterator(
            self, func, _one_arg(iterable), self._chunksize(0, chunksize), ordered=False
        )

    def close(self) -> None:
        """Accept no more work; the actors finish what they were given."""
        self._closed = True
        self._flush()

    def terminate(self) -> None:
        """Stop at once: kill the actors; unfinished results fail."""
        self._closed = True
        if self._terminated:
            return
        self._flush()  # pending calls fail with their actor, not hang
        self._terminated = True
        if not jray.is_initialized():
            return
        for actor in self._actors + self._retired:
            try:
                jray.kill(actor)
            except Exception:  # noqa: BLE001 - already gone
                logger.debug("kill of pool actor failed", exc_info=True)

    def join(self) -> None:
        """Wait until the actors finished all their work, then stop them
        (after ``close`` or ``terminate``)."""
        if not self._closed:
            raise ValueError("Pool is still running")
        if self._terminated:
            return
        # Calls to one actor run in order: a ping answered means its work is
        # done (a retired actor answers "died" once it has exited after its work).
        for ping in [a.ping.remote() for a in self._actors + self._retired]:
            try:
                jray.get(ping)
            except jray.exceptions.RayActorError:
                pass
        self.terminate()

    def __enter__(self) -> Pool:
        self._check_running()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.terminate()

    def __reduce__(self) -> Any:
        raise TypeError("Pool objects cannot be passed between processes or pickled")


__all__ = ["AsyncResult", "IMapIterator", "Pool", "TimeoutError"]
