"""Actors on a real local cluster: state, ordering, handles, names,
lifetimes, kill/exit, failures and restarts, async and threaded actors."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

import jray
from jray import exceptions


@jray.remote
class Counter:
    def __init__(self, start=0):
        self.n = start

    def inc(self, k=1):
        self.n += k
        return self.n

    def get(self):
        return self.n

    def pid(self):
        return os.getpid()

    def crash(self):
        os._exit(1)

    def quit(self):
        jray.actor.exit_actor()


def test_state_and_call_order(jray_cluster):
    c = Counter.remote(10)
    refs = [c.inc.remote() for _ in range(50)]
    assert jray.get(refs, timeout=30) == list(range(11, 61))


def test_handle_passed_to_tasks_and_actors(jray_cluster):
    c = Counter.remote()

    @jray.remote
    def bump(h):
        return jray.get(h.inc.remote(5))

    @jray.remote
    class Relay:
        def go(self, h):
            return jray.get(h.inc.remote(100))

    assert jray.get(bump.remote(c), timeout=30) == 5
    assert jray.get(Relay.remote().go.remote(c), timeout=30) == 105
    assert jray.get(c.get.remote()) == 105


def test_named_actors_namespaces_get_if_exists(jray_cluster):
    a = Counter.options(name="shared-counter").remote()
    jray.get(a.inc.remote())
    b = jray.get_actor("shared-counter")
    assert jray.get(b.get.remote()) == 1
    c = Counter.options(name="shared-counter", get_if_exists=True).remote()
    assert jray.get(c.get.remote()) == 1
    with pytest.raises(ValueError, match="already taken"):
        Counter.options(name="shared-counter").remote()
    with pytest.raises(ValueError, match="Failed to look up actor"):
        jray.get_actor("shared-counter", namespace="elsewhere")
    other = Counter.options(name="shared-counter", namespace="elsewhere").remote(7)
    assert jray.get(jray.get_actor("shared-counter", namespace="elsewhere").get.remote()) == 7
    jray.kill(other)


def test_kill_then_actor_died_error(jray_cluster):
    c = Counter.remote()
    assert jray.get(c.inc.remote()) == 1
    jray.kill(c)
    with pytest.raises(exceptions.ActorDiedError):
        jray.get(c.inc.remote(), timeout=30)


def test_exit_actor(jray_cluster):
    c = Counter.remote()
    jray.get(c.inc.remote())
    with pytest.raises(exceptions.RayActorError):
        jray.get(c.quit.remote(), timeout=30)
    with pytest.raises(exceptions.ActorDiedError):
        jray.get(c.inc.remote(), timeout=30)


def test_init_that_raises_fails_every_call_clearly(jray_cluster):
    @jray.remote
    class Broken:
        def __init__(self):
            raise ZeroDivisionError("bad init")

        def f(self):
            return 1

    b = Broken.remote()
    for _ in range(2):
        with pytest.raises(exceptions.ActorDiedError, match="bad init"):
            jray.get(b.f.remote(), timeout=30)


def test_max_restarts_and_task_retries(jray_cluster):
    c = Counter.options(max_restarts=2, max_task_retries=1).remote(5)
    pid1 = jray.get(c.pid.remote(), timeout=30)
    jray.get(c.inc.remote())
    with pytest.raises(exceptions.RayActorError):
        jray.get(c.crash.remote(), timeout=30)  # retried once: crashes again
    # A restarted actor has fresh state: its __init__ ran again.
    deadline = time.time() + 30
    while True:
        try:
            pid2 = jray.get(c.pid.remote(), timeout=30)
            break
        except exceptions.RayActorError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)
    assert pid2 != pid1


def test_restart_gives_fresh_state(jray_cluster):
    c = Counter.options(max_restarts=2).remote(3)
    assert jray.get(c.inc.remote()) == 4
    c.crash.remote()
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            assert jray.get(c.get.remote(), timeout=10) == 3
            return
        except exceptions.RayActorError:
            time.sleep(0.2)
    pytest.fail("the actor did not come back after its restart")


def test_calls_sent_as_an_actor_crashes_always_settle(jray_cluster):
    """A call sent while the actor's process is dying fails (RayActorError)
    or runs on the restarted actor; it never hangs (a dropped channel used to
    cancel calls still on it, leaving them unsettled)."""
    for _ in range(10):
        c = Counter.options(max_restarts=1).remote(3)
        assert jray.get(c.inc.remote(), timeout=30) == 4
        c.crash.remote()
        racing = c.get.remote()  # sent to the dying process
        try:
            assert jray.get(racing, timeout=20) == 3
        except exceptions.RayActorError:
            pass
        jray.kill(c)


def test_async_actor_runs_calls_concurrently(jray_cluster):
    @jray.remote
    class Waiter:
        def __init__(self):
            self.event = asyncio.Event()

        async def wait(self):
            await self.event.wait()
            return "released"

        async def release(self):
            self.event.set()
            return True

    w = Waiter.remote()
    waiting = [w.wait.remote() for _ in range(5)]
    assert jray.get(w.release.remote(), timeout=30)
    assert jray.get(waiting, timeout=30) == ["released"] * 5


def test_threaded_actor_runs_calls_concurrently(jray_cluster):
    @jray.remote(max_concurrency=3)
    class Barrier:
        def __init__(self):
            self.b = threading.Barrier(3, timeout=20)

        def meet(self):
            return self.b.wait() >= 0

    a = Barrier.remote()
    assert jray.get([a.meet.remote() for _ in range(3)], timeout=30) == [True] * 3


def test_method_num_returns(jray_cluster):
    @jray.remote
    class Pair:
        @jray.method(num_returns=2)
        def two(self):
            return "a", "b"

    p = Pair.remote()
    x, y = p.two.remote()
    assert jray.get([x, y]) == ["a", "b"]


def test_concurrency_groups(jray_cluster):
    @jray.remote(concurrency_groups={"io": 2})
    class Grouped:
        def __init__(self):
            self.b = threading.Barrier(2, timeout=20)

        @jray.method(concurrency_group="io")
        def io(self):
            return self.b.wait() >= 0

        def compute(self):
            return "ok"

    g = Grouped.remote()
    assert jray.get([g.io.remote(), g.io.remote(), g.compute.remote()], timeout=30) == [True, True, "ok"]


def test_actor_direct_instantiation_and_unknown_method(jray_cluster):
    with pytest.raises(TypeError, match=r"\.remote\(\)"):
        Counter()
    c = Counter.remote()
    with pytest.raises(AttributeError, match="nope"):
        c.nope.remote()
    with pytest.raises(ValueError, match="max_concurrency"):
        Counter.options(max_concurrency=0)


def test_detached_actor_outlives_its_driver():
    import subprocess
    import sys

    jray.shutdown()
    ctx = jray.init(num_cpus=1)
    try:
        from jray._private import node

        code = (
            "import jray, os\n"
            "jray.init(address=os.environ['ADDR'], namespace='ns')\n"
            "@jray.remote\n"
            "class Keeper:\n"
            "    def ping(self): return 'pong'\n"
            "k = Keeper.options(name='keeper', lifetime='detached').remote()\n"
            "assert jray.get(k.ping.remote(), timeout=30) == 'pong'\n"
        )
        env = dict(os.environ, ADDR=ctx["gcs_address"], JRAY_TOKEN=jray.api._cluster.token)
        subprocess.run([sys.executable, "-c", code], env=env, timeout=60, check=True)
        k = jray.get_actor("keeper", namespace="ns")
        assert jray.get(k.ping.remote(), timeout=30) == "pong"
        assert node is not None
    finally:
        jray.shutdown()


def test_anonymous_actor_ends_when_its_handle_is_dropped(jray_cluster):
    import gc

    import psutil

    c = Counter.remote()
    pid = jray.get(c.pid.remote(), timeout=30)
    last = c.inc.remote()  # submitted before the drop: still runs
    del c
    gc.collect()
    assert jray.get(last, timeout=30) == 1
    deadline = time.time() + 20
    while time.time() < deadline and psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.1)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE

    named = Counter.options(name="keep-me").remote()
    named_pid = jray.get(named.pid.remote(), timeout=30)
    del named
    gc.collect()
    time.sleep(1)
    assert jray.get(jray.get_actor("keep-me").pid.remote(), timeout=30) == named_pid


@jray.remote
class Cancellable:
    def __init__(self):
        self.ran: list[str] = []

    def work(self, name, seconds, marker=None):
        if marker:
            open(marker, "w").close()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if jray.get_runtime_context().is_canceled():
                self.ran.append(f"{name}:saw-cancel")
                return "stopped early"
            time.sleep(0.02)
        self.ran.append(name)
        return "finished"

    def log(self):
        return list(self.ran)


def test_cancel_actor_calls_follows_ray(jray_cluster, tmp_path):
    marker = str(tmp_path / "started")
    a = Cancellable.remote()
    running = a.work.remote("first", 30, marker)
    queued = a.work.remote("second", 0)
    deadline = time.monotonic() + 30
    while not os.path.exists(marker) and time.monotonic() < deadline:  # "first" is running
        time.sleep(0.02)
    with pytest.raises(ValueError, match="force=True is not supported for actor tasks"):
        jray.cancel(running, force=True)
    # The running call of a sync actor is not interrupted: it sees is_canceled().
    jray.cancel(queued)
    time.sleep(0.3)  # let that notice reach the actor before the running call stops
    jray.cancel(running)
    with pytest.raises(exceptions.TaskCancelledError):  # Ray 2.60 raises it too, whatever the method returned
        jray.get(running, timeout=30)
    with pytest.raises(exceptions.TaskCancelledError):
        jray.get(queued, timeout=30)
    assert jray.get(a.log.remote(), timeout=30) == ["first:saw-cancel"]  # "second" never ran
    assert jray.get(a.work.remote("third", 0), timeout=30) == "finished"  # the actor keeps working


def test_cancel_async_actor_call(jray_cluster):
    @jray.remote
    class Sleeper:
        def __init__(self):
            self.cancelled = 0

        async def nap(self, s):
            try:
                await asyncio.sleep(s)
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
            return "woke"

        async def count(self):
            return self.cancelled

    s = Sleeper.remote()
    assert jray.get(s.nap.remote(0), timeout=30) == "woke"
    r = s.nap.remote(60)
    time.sleep(0.5)
    jray.cancel(r)
    with pytest.raises(exceptions.TaskCancelledError):
        jray.get(r, timeout=20)
    assert jray.get(s.count.remote(), timeout=30) == 1
    assert jray.get(s.nap.remote(0), timeout=30) == "woke"


def test_cancel_actor_call_before_the_actor_started(jray_cluster):
    @jray.remote
    class Slow:
        def __init__(self):
            time.sleep(2)

        def hi(self):
            return "hi"

    s = Slow.remote()
    r = s.hi.remote()
    jray.cancel(r)
    with pytest.raises(exceptions.TaskCancelledError):
        jray.get(r, timeout=30)
    assert jray.get(s.hi.remote(), timeout=30) == "hi"


def test_is_canceled_outside_a_task_raises(jray_cluster):
    with pytest.raises(RuntimeError, match="only available inside a task"):
        jray.get_runtime_context().is_canceled()


def test_tasks_and_actors_use_their_jobs_namespace(jray_cluster):
    """As in Ray, code running in a task or an actor looks up and names actors
    in its job's namespace."""
    @jray.remote
    class Box:
        def __init__(self, v=0):
            self.v = v

        def get(self):
            return self.v

        def lookup(self, name):
            return jray.get(jray.get_actor(name).get.remote())

    Box.options(name="ns-box").remote(7)

    @jray.remote
    def look(name):
        return jray.get(jray.get_actor(name).get.remote())

    @jray.remote
    def make(name):
        b = Box.options(name=name, lifetime="detached").remote(9)
        return jray.get(b.get.remote())

    @jray.remote
    def nested(name):
        return jray.get(look.remote(name))

    ns = jray.get_runtime_context().namespace
    assert jray.get(look.remote("ns-box"), timeout=60) == 7
    assert jray.get(nested.remote("ns-box"), timeout=60) == 7
    assert jray.get(Box.remote().lookup.remote("ns-box"), timeout=60) == 7
    assert jray.get(make.remote("made-in-task"), timeout=60) == 9
    made = jray.get_actor("made-in-task", namespace=ns)  # in the job's namespace, not ""
    assert jray.get(made.get.remote(), timeout=30) == 9
    jray.kill(made)


BIG = os.urandom(2 << 20)  # a class that carries 2 MiB with it


def test_an_actor_gets_its_class_with_its_creation_and_keeps_no_copy_of_it(jray_cluster):
    """The GCS sends the class along with the creation task (the new worker
    asks the GCS for nothing); the spec the actor keeps drops those bytes."""

    @jray.remote(num_cpus=0)
    class Heavy:
        blob = BIG

        def __init__(self, k):
            self.k = k

        def look(self):
            from jray._private.worker import global_state

            w = global_state.worker
            return self.k, len(self.blob), w.executor.actor_spec.function.pickled, w.executor.actor_spec.function.key

    actors = [Heavy.remote(i) for i in range(3)]
    looks = jray.get([a.look.remote() for a in actors], timeout=60)
    assert [(k, n) for k, n, _, _ in looks] == [(0, len(BIG)), (1, len(BIG)), (2, len(BIG))]
    assert all(pickled == b"" and key for _, _, pickled, key in looks)
    for a in actors:
        jray.kill(a)
