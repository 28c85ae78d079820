"""jray.util on a real local cluster: ActorPool, the actor-backed Queue,
and the multiprocessing.Pool look-alike."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import queue as stdlib_queue
import time

import psutil
import pytest

import jray
from jray import exceptions
from jray.util import ActorPool
from jray.util.multiprocessing import Pool
from jray.util.multiprocessing import TimeoutError as PoolTimeoutError
from jray.util.queue import Empty, Full, Queue

T = 30  # bound of every wait on the cluster


def _cluster_pids() -> set[int]:
    try:
        return {
            p.pid
            for p in psutil.Process().children(recursive=True)
            if p.status() != psutil.STATUS_ZOMBIE
        }
    except psutil.Error:
        return set()


def _jray_shm() -> set[str]:
    try:
        return {
            f
            for f in os.listdir("/dev/shm")
            if f.startswith("jray-") and not f.startswith("jray-test-")
        }
    except OSError:
        return set()


@pytest.fixture(scope="module")
def cluster():
    """One 2-CPU local cluster for the module; afterwards no process of it
    and no store file may remain."""
    if jray.is_initialized():
        jray.shutdown()
    shm_before = _jray_shm()
    ctx = jray.init(num_cpus=2)
    yield ctx
    jray.shutdown()
    deadline = time.monotonic() + 10
    while (_cluster_pids() or _jray_shm() - shm_before) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _cluster_pids(), "cluster processes outlived jray.shutdown()"
    assert not _jray_shm() - shm_before, "store files outlived jray.shutdown()"


@jray.remote
class Worker:
    def double(self, v, delay=0.0):
        time.sleep(delay)
        return 2 * v

    def fail(self, v):
        raise ValueError(f"bad value {v}")


@pytest.fixture(scope="module")
def workers(cluster):
    actors = [Worker.remote(), Worker.remote()]
    jray.get([a.double.remote(0) for a in actors], timeout=T)
    return actors


def _double(a, v):
    return a.double.remote(v)


# -- ActorPool ---------------------------------------------------------------


def test_actor_pool_map_keeps_input_order(workers):
    pool = ActorPool(workers)
    # Earlier values sleep longer, so they finish last: map must still be ordered.
    delays = [0.3, 0.2, 0.1, 0.0, 0.0, 0.0]
    out = list(pool.map(lambda a, v: a.double.remote(v, delays[v]), range(6)))
    assert out == [0, 2, 4, 6, 8, 10]
    assert not pool.has_next()
    assert list(pool.map(_double, [])) == []


def test_actor_pool_map_unordered_returns_everything_fastest_first(workers):
    pool = ActorPool(workers)
    out = list(
        pool.map_unordered(lambda a, v: a.double.remote(v, 1.0 if v == 0 else 0.0), range(5))
    )
    assert sorted(out) == [0, 2, 4, 6, 8]
    assert out[-1] == 0  # the slow first value came back last


def test_actor_pool_submit_and_get_next(workers):
    pool = ActorPool(workers)
    assert not pool.has_next()
    with pytest.raises(StopIteration, match="No more results"):
        pool.get_next()
    with pytest.raises(StopIteration):
        pool.get_next_unordered()
    for v in (1, 2, 3):  # more values than actors: the third waits for a free one
        pool.submit(_double, v)
    assert pool.has_next()
    assert [pool.get_next(timeout=T) for _ in range(3)] == [2, 4, 6]
    assert not pool.has_next()

    pool.submit(_double, 5)
    pool.submit(_double, 6)
    both = [pool.get_next_unordered(timeout=T), pool.get_next_unordered(timeout=T)]
    assert sorted(both) == [10, 12]

    pool.submit(lambda a, v: a.double.remote(v, 0.5), 7)
    pool.submit(_double, 8)
    assert pool.get_next_unordered(timeout=T) == 16  # the later, faster one
    with pytest.raises(ValueError, match="get_next_unordered"):
        pool.get_next()  # its turn has passed: ordered access is over
    assert pool.get_next_unordered(timeout=T) == 14


def test_actor_pool_timeouts(workers):
    pool = ActorPool(workers)
    pool.submit(lambda a, v: a.double.remote(v, 0.6), 1)
    with pytest.raises(TimeoutError, match="Timed out"):
        pool.get_next(timeout=0.05)
    assert pool.has_next()  # still pending, nothing lost
    assert pool.get_next(timeout=T) == 2

    pool.submit(lambda a, v: a.double.remote(v, 0.6), 1)
    with pytest.raises(TimeoutError):
        pool.get_next_unordered(timeout=0.05)
    assert pool.get_next_unordered(timeout=T) == 2

    pool.submit(lambda a, v: a.double.remote(v, 0.3), 1)
    with pytest.raises(TimeoutError, match="ignored"):
        pool.get_next(timeout=0.01, ignore_if_timedout=True)
    assert not pool.has_next()  # the timed-out result was dropped
    assert pool.has_free()


def test_actor_pool_errors_and_bad_fn(workers):
    pool = ActorPool(workers)
    pool.submit(lambda a, v: a.fail.remote(v), 3)
    with pytest.raises(ValueError, match="bad value 3"):
        pool.get_next(timeout=T)
    assert pool.has_free()  # the actor came back to the pool
    with pytest.raises(TypeError, match="must return an ObjectRef"):
        pool.submit(lambda a, v: v, 1)
    assert len(pool._idle_actors) == 2


def test_actor_pool_membership(workers):
    a1, a2 = workers
    pool = ActorPool([a1])
    pool.submit(lambda a, v: a.double.remote(v, 0.2), 1)
    assert not pool.has_free()
    assert pool.pop_idle() is None
    pool.submit(_double, 2)  # waits: the only actor is busy
    pool.push(a2)  # a new actor takes the waiting submission at once
    assert pool.get_next(timeout=T) == 2
    assert pool.get_next(timeout=T) == 4
    assert pool.has_free()
    with pytest.raises(ValueError, match="already belongs"):
        pool.push(a1)
    popped = {pool.pop_idle(), pool.pop_idle()}
    assert popped == {a1, a2}
    assert pool.pop_idle() is None and not pool.has_free()


# -- Queue -------------------------------------------------------------------


def test_queue_exceptions_are_stdlib_queue_exceptions():
    assert issubclass(Empty, stdlib_queue.Empty)
    assert issubclass(Full, stdlib_queue.Full)


def test_queue_fifo_sizes_and_nowait(cluster):
    q = Queue(maxsize=3)
    assert q.empty() and not q.full() and q.size() == 0 and len(q) == 0
    for i in range(3):
        q.put(i, timeout=T)
    assert q.full() and q.qsize() == 3 and len(q) == 3
    with pytest.raises(Full):
        q.put_nowait(99)
    with pytest.raises(Full):
        q.put(99, block=False)
    assert [q.get(timeout=T) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(Empty):
        q.get_nowait()
    with pytest.raises(Empty):
        q.get(block=False)
    q.put_nowait("x")
    assert q.get(timeout=0) == "x"  # an item already there is returned even with timeout 0
    with pytest.raises(ValueError, match="non-negative"):
        q.get(timeout=-1)
    with pytest.raises(ValueError, match="non-negative"):
        q.put(1, timeout=-1)
    q.shutdown()


def test_queue_blocking_timeouts(cluster):
    q = Queue(maxsize=1)
    t0 = time.monotonic()
    with pytest.raises(Empty):
        q.get(timeout=0.3)
    assert 0.25 <= time.monotonic() - t0 < T
    q.put(1)
    t0 = time.monotonic()
    with pytest.raises(Full):
        q.put(2, timeout=0.3)
    assert 0.25 <= time.monotonic() - t0 < T
    assert q.qsize() == 1 and q.get(timeout=T) == 1
    q.shutdown()


def test_queue_batches(cluster):
    q = Queue(maxsize=4)
    q.put_nowait_batch([1, 2, 3])
    with pytest.raises(Full, match="Cannot add 2 items"):
        q.put_nowait_batch([4, 5])
    assert q.qsize() == 3  # all or nothing
    with pytest.raises(Empty, match="Cannot get 4 items"):
        q.get_nowait_batch(4)
    assert q.get_nowait_batch(2) == [1, 2]
    assert q.get_nowait_batch(0) == []
    assert q.get_nowait_batch(1) == [3]
    with pytest.raises(TypeError):
        q.put_nowait_batch(5)
    with pytest.raises(TypeError):
        q.get_nowait_batch("2")
    with pytest.raises(ValueError, match="nonnegative"):
        q.get_nowait_batch(-1)
    q.shutdown()


@jray.remote
def produce(q, n):
    for i in range(n):
        q.put(i, timeout=T)
        time.sleep(0.005)
    return n


@jray.remote
class Consumer:
    def __init__(self, q):
        self.q = q

    def take(self, n):
        return [self.q.get(timeout=T) for _ in range(n)]


def test_queue_fifo_between_a_producer_task_and_a_consumer_actor(cluster):
    q = Queue(maxsize=5)  # smaller than the stream: the producer blocks on a full queue
    consumer = Consumer.remote(q)
    taken = consumer.take.remote(30)  # starts waiting on an empty queue
    time.sleep(0.2)
    produced = produce.remote(q, 30)
    assert jray.get(taken, timeout=T) == list(range(30))
    assert jray.get(produced, timeout=T) == 30
    assert q.empty()
    jray.kill(consumer)
    q.shutdown()


def test_queue_async_api(cluster):
    q = Queue()

    async def main():
        getter = asyncio.ensure_future(q.get_async(timeout=T))  # blocks until the put below
        await asyncio.sleep(0.1)
        await q.put_async("a")
        await q.put_async("b", block=False)
        first = await asyncio.wait_for(getter, T)
        second = await q.get_async(block=False)
        with pytest.raises(Empty):
            await q.get_async(timeout=0.1)
        with pytest.raises(Empty):
            await q.get_async(block=False)
        return first, second

    assert asyncio.run(main()) == ("a", "b")
    q.shutdown()


def test_queue_shutdown(cluster):
    q = Queue()
    q.put(1)
    actor = q.actor
    q.shutdown(grace_period_s=T)
    with pytest.raises(RuntimeError, match="shut down"):
        q.put(2)
    with pytest.raises(exceptions.RayActorError):
        jray.get(actor.qsize.remote(), timeout=T)
    q.shutdown()  # a second shutdown is a no-op

    q2 = Queue(actor_options={"num_cpus": 0})
    actor2 = q2.actor
    q2.shutdown(force=True)
    with pytest.raises(exceptions.RayActorError):
        jray.get(actor2.qsize.remote(), timeout=T)


# -- multiprocessing.Pool ----------------------------------------------------


def square(x):
    return x * x


def add(a, b, c=0):
    return a + b + c


def divide(a, b):
    return a / b


def sleep_then(x, delay):
    time.sleep(delay)
    return x


def fail_on_3(x):
    if x == 3:
        raise KeyError(x)
    return x


_init_value = None


def set_init_value(v):
    global _init_value
    _init_value = v


def get_init_value():
    return _init_value, os.getpid()


@pytest.fixture(scope="module")
def pool(cluster):
    p = Pool(processes=2)
    yield p
    p.terminate()


def test_pool_map_and_starmap_equal_builtins(pool):
    xs = list(range(37))
    assert pool.map(square, xs) == list(map(square, xs))
    assert pool.map(square, xs, chunksize=1) == list(map(square, xs))
    assert pool.map(square, xs, chunksize=100) == list(map(square, xs))
    assert pool.map(square, iter(xs)) == list(map(square, xs))  # any iterable
    assert pool.map(square, []) == []
    pairs = [(i, 2 * i) for i in range(10)]
    assert pool.starmap(add, pairs) == [a + b for a, b in pairs]
    assert pool.starmap_async(add, pairs, chunksize=3).get(timeout=T) == [a + b for a, b in pairs]


def test_pool_apply_and_callbacks(pool):
    assert pool.apply(add, (1, 2), {"c": 3}) == 6
    got = []
    r = pool.apply_async(add, (1,), {"b": 4}, callback=got.append)
    assert r.get(timeout=T) == 5
    assert r.ready() and r.successful()
    m = pool.map_async(square, range(5), callback=got.append)
    m.wait(timeout=T)
    assert m.get(timeout=T) == [0, 1, 4, 9, 16]
    deadline = time.monotonic() + T
    while len(got) < 2 and time.monotonic() < deadline:  # callbacks run on a resolver thread
        time.sleep(0.01)
    assert sorted(got, key=str) == [5, [0, 1, 4, 9, 16]]


def test_pool_errors_are_reraised_on_get(pool):
    errors = []
    r = pool.apply_async(divide, (1, 0), error_callback=errors.append)
    with pytest.raises(ZeroDivisionError) as info:
        r.get(timeout=T)
    assert "divide" in str(info.value.__cause__)  # the remote traceback
    assert r.ready() and not r.successful()
    deadline = time.monotonic() + T
    while not errors and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(errors) == 1 and isinstance(errors[0], ZeroDivisionError)
    with pytest.raises(KeyError):
        pool.map(fail_on_3, range(6))
    assert pool.apply(square, (7,)) == 49  # the pool is still usable


def identity(x):
    return x


def touch_file(path):
    with open(path, "w") as f:
        f.write("ran")
    return os.getpid()


def test_pool_apply_async_burst_goes_in_batches_and_each_call_keeps_its_outcome(pool, tmp_path):
    from jray.util.state import list_tasks

    before = len(list_tasks(filters=[("name", "=", "_PoolActor.run_batch")], limit=100_000))
    # A burst of 300 calls: one raises, one has an argument that cannot be pickled.
    results = [pool.apply_async(fail_on_3, (i,)) for i in range(300)]
    with pytest.raises(Exception, match="pickle|Pickl"):  # at the call, as in Ray
        pool.apply_async(square, (lambda_holder(),))
    # A mutable argument is sent as it was at the call, whatever happens to it after.
    params = {"x": 1}
    snapshot = pool.apply_async(identity, (params,))
    params["x"] = 2
    after_change = pool.apply_async(identity, (params,))
    assert [r.get(timeout=T) for r in results[:3]] == [0, 1, 2]
    with pytest.raises(KeyError):
        results[3].get(timeout=T)
    assert [r.get(timeout=T) for r in results[4:]] == list(range(4, 300))
    assert results[5].successful() and not results[3].successful()
    assert snapshot.get(timeout=T) == {"x": 1} and after_change.get(timeout=T) == {"x": 2}
    # ...sent as a few actor calls, not one each (the point of batching).
    deadline = time.monotonic() + T
    while True:
        after = len(list_tasks(filters=[("name", "=", "_PoolActor.run_batch")], limit=100_000))
        if after > before or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert 0 < after - before < 150, (before, after)
    # Calls of different functions interleaved: each gets its own function.
    mixed = [pool.apply_async(square if i % 2 else add, (i, 1) if i % 2 == 0 else (i,)) for i in range(20)]
    assert [r.get(timeout=T) for r in mixed] == [i * i if i % 2 else i + 1 for i in range(20)]
    # Nobody asks for the result: the call runs anyway, soon (the flusher), and callbacks fire.
    marker = tmp_path / "ran"
    got = []
    pool.apply_async(touch_file, (str(marker),), callback=got.append)
    deadline = time.monotonic() + T
    while not (marker.exists() and got) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert marker.read_text() == "ran" and len(got) == 1


class lambda_holder:
    """An argument that cannot be pickled (holds a lock)."""

    def __init__(self):
        import threading

        self.lock = threading.Lock()


def test_pool_terminate_fails_pending_apply_async_calls(cluster):
    p = Pool(1)
    slow = p.apply_async(sleep_then, ("slow", 30))
    queued = [p.apply_async(square, (i,)) for i in range(5)]
    p.terminate()
    for r in [slow, *queued]:
        with pytest.raises(exceptions.RayActorError):
            r.get(timeout=T)


def test_pool_async_result_timeouts(pool):
    r = pool.apply_async(sleep_then, ("late", 0.5))
    assert not r.ready()
    with pytest.raises(ValueError, match="not ready"):
        r.successful()
    with pytest.raises(PoolTimeoutError):
        r.get(timeout=0.05)
    with pytest.raises(multiprocessing.TimeoutError):  # the stdlib's class too
        r.get(timeout=0.01)
    r.wait(timeout=0.01)
    assert r.get(timeout=T) == "late"


def test_pool_imap(pool):
    assert list(pool.imap(square, range(10))) == [x * x for x in range(10)]
    assert list(pool.imap(square, (x for x in range(10)), chunksize=3)) == [
        x * x for x in range(10)
    ]
    assert sorted(pool.imap_unordered(square, range(10), chunksize=2)) == [x * x for x in range(10)]
    it = pool.imap(fail_on_3, range(5))
    assert [next(it), next(it), next(it)] == [0, 1, 2]
    with pytest.raises(KeyError):
        next(it)
    assert list(it) == [4]  # the error is at its own position only
    assert list(pool.imap(square, [])) == []
    assert list(pool.imap_unordered(square, [])) == []


def test_pool_imap_next_timeout(cluster):
    with Pool(1) as p:
        r = p.apply_async(sleep_then, (1, 0.5))
        it = p.imap(square, [2])  # queued behind the slow call on the only actor
        with pytest.raises(PoolTimeoutError):
            it.next(timeout=0.05)
        assert it.next(timeout=T) == 4 and r.get(timeout=T) == 1


def test_pool_context_manager_terminates_its_actors(cluster):
    with Pool(2) as p:
        actors = list(p._actors)
        assert p.map(square, range(4)) == [0, 1, 4, 9]
    for a in actors:
        with pytest.raises(exceptions.RayActorError):
            jray.get(a.ping.remote(), timeout=T)
    with pytest.raises(ValueError, match="Pool not running"):
        p.map(square, [1])
    with pytest.raises(ValueError, match="Pool not running"):
        p.apply_async(square, (1,))


def test_pool_close_join_initializer_and_maxtasksperchild(cluster):
    p = Pool(1, initializer=set_init_value, initargs=(42,), maxtasksperchild=1)
    v1, pid1 = p.apply(get_init_value)
    v2, pid2 = p.apply(get_init_value)
    assert v1 == v2 == 42  # the initializer ran in the replacement actor too
    assert pid1 != pid2  # one task per child: a fresh actor each time
    with pytest.raises(ValueError, match="still running"):
        p.join()
    r = p.apply_async(sleep_then, ("done", 0.5))
    p.close()
    with pytest.raises(ValueError, match="Pool not running"):
        p.map(square, [1])
    p.join()  # waits for the work already given
    assert r.ready() and r.get(timeout=0) == "done"


def test_pool_argument_checks(cluster):
    with pytest.raises(ValueError, match="only 2 CPUs"):
        Pool(processes=3)
    with pytest.raises(ValueError):
        Pool(processes=0)
    with pytest.raises(ValueError):
        Pool(1, maxtasksperchild=0)
    with pytest.raises(TypeError):
        Pool(1, initializer=5)


def test_pool_initializes_jray_when_needed(cluster):
    jray.shutdown()
    try:
        with Pool(processes=1) as p:
            assert jray.is_initialized()
            # Started with num_cpus=processes, as Ray does.
            assert jray.cluster_resources()["CPU"] == 1
            assert p.map(square, [3]) == [9]
    finally:
        jray.shutdown()
        jray.init(num_cpus=2)  # give the module fixture back its cluster
