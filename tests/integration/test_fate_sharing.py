"""When an owner dies, its work ends (Ray's fate-sharing): a killed driver's
tasks and actors, an actor killed while owning a long task, the child actor
of a killed actor, and raylets whose GCS is gone.

Each test measures against a bound a user would notice (the next driver's
work runs at once, not behind an orphan), never a timing of the engine.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest

import jray
from jray import exceptions
from jray.testing import Cluster
from jray.util import state
from tests.polling import poll

DRIVER = r"""
import os, sys, time, jray
jray.init(address=os.environ["ADDR"], namespace="victim")

@jray.remote
def forever():
    time.sleep(600)

@jray.remote
class Keeper:
    def ping(self):
        return os.getpid()

keep = Keeper.options(name="keeper").remote()
stay = Keeper.options(name="stayer", lifetime="detached").remote()
jray.get([keep.ping.remote(), stay.ping.remote()])
refs = [forever.remote() for _ in range(2)]   # every CPU of the cluster, for 10 minutes
time.sleep(1.0)
print("READY", flush=True)
time.sleep(600)
"""


@pytest.fixture
def cluster():
    c = Cluster(head_node_args={"num_cpus": 2})
    try:
        c.connect(namespace="victim")
        yield c
    finally:
        c.shutdown()


def _start_driver(cluster: Cluster, code: str) -> subprocess.Popen:
    env = dict(os.environ, ADDR=cluster.address, JRAY_TOKEN=cluster.handle.token)
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if line.strip() != "READY":
        proc.kill()
        proc.wait(timeout=10)
        raise AssertionError(f"the driver did not start: {line!r}")
    return proc


def _actor_state(name: str) -> str | None:
    rows = [a for a in state.list_actors(detail=True) if a.get("name") == name]
    return rows[0]["state"] if rows else None


@jray.remote
def short(i):
    time.sleep(0.5)
    return i


def test_a_killed_drivers_tasks_and_actors_end_and_the_next_driver_runs_at_once(cluster):
    victim = _start_driver(cluster, DRIVER)
    victim_job = [j for j in state.list_jobs() if j["driver_pid"] == victim.pid]
    assert victim_job and victim_job[0]["status"] == "RUNNING"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    # The orphans held both CPUs; the next driver's tasks run promptly.
    assert jray.get([short.remote(i) for i in range(8)], timeout=30) == list(range(8))
    job = poll(lambda: [j for j in state.list_jobs() if j["driver_pid"] == victim.pid], lambda js: js and
               js[0]["status"] == "FAILED", "the killed driver's job FAILED", timeout=10)
    assert "driver" in (job[0]["message"] or "")
    poll(lambda: _actor_state("keeper"), lambda s: s == "DEAD", "its actor killed", timeout=10)
    assert _actor_state("stayer") == "ALIVE"  # detached actors outlive their job
    jray.kill(jray.get_actor("stayer", namespace="victim"))


ACTOR_OWNER = r"""
import os, time, jray
jray.init(address=os.environ["ADDR"], namespace="victim")

@jray.remote
def forever():
    time.sleep(600)

@jray.remote
class Child:
    def pid(self):
        return os.getpid()

@jray.remote
class Parent:
    def start(self):
        self.child = Child.options(name="child").remote()
        pid = jray.get(self.child.pid.remote())
        self.refs = [forever.remote() for _ in range(2)]   # every CPU, for 10 minutes
        return pid

p = Parent.options(name="parent").remote()
jray.get(p.start.remote())
time.sleep(1.0)
print("READY", flush=True)
time.sleep(600)
"""


def test_an_actor_killed_while_owning_tasks_and_a_child_actor(cluster):
    proc = _start_driver(cluster, ACTOR_OWNER)
    try:
        parent = jray.get_actor("parent", namespace="victim")
        assert _actor_state("child") == "ALIVE"
        jray.kill(parent)
        # The parent's two long tasks held both CPUs: they end with it.
        assert jray.get([short.remote(i) for i in range(6)], timeout=30) == list(range(6))
        poll(lambda: _actor_state("child"), lambda s: s == "DEAD", "the child actor killed with its owner",
             timeout=10)
        assert proc.poll() is None  # its driver lives on
    finally:
        proc.kill()
        proc.wait(timeout=10)


NOTEBOOK_KERNEL = r"""
import os, time, jray
jray.init(address=os.environ["ADDR"])

@jray.remote
def long_cell():
    time.sleep(600)

refs = [long_cell.remote() for _ in range(2)]
time.sleep(1.0)
print("READY", flush=True)
time.sleep(600)
"""


def test_a_killed_kernel_does_not_hold_up_the_next_one(cluster):
    """A notebook's kernel running long tasks is killed (as a kernel restart
    does): a new kernel attaching to the same cluster gets its work done."""
    kernel = _start_driver(cluster, NOTEBOOK_KERNEL)
    kernel.kill()
    kernel.wait(timeout=10)
    code = ("import os, time, jray\njray.init(address=os.environ['ADDR'])\n"
            "f = jray.remote(lambda i: (time.sleep(0.5), i)[1])\n"
            "print(jray.get([f.remote(i) for i in range(8)], timeout=30))\n")
    env = dict(os.environ, ADDR=cluster.address, JRAY_TOKEN=cluster.handle.token)
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(list(range(8)))


def test_raylets_exit_when_the_gcs_is_gone(monkeypatch):
    monkeypatch.setenv("JRAY_GCS_LOST_SECONDS", "3")
    monkeypatch.setenv("JRAY_GCS_IN_PROCESS", "0")  # a GCS process of its own, killed alone
    c = Cluster(head_node_args={"num_cpus": 1})
    try:
        c.add_node(num_cpus=1)
        handle = c.handle
        raylets = [psutil.Process(n.raylet_pid) for n in handle.nodes]
        workers = [p for r in raylets for p in r.children(recursive=True)]
        stores = [n.store_path for n in handle.nodes]
        assert all(os.path.exists(p) for p in stores)
        os.kill(handle.gcs_pid, signal.SIGKILL)
        gone, alive = psutil.wait_procs(raylets + workers, timeout=20)
        assert not alive, f"still running without a GCS: {alive}"
        left = [p for p in stores if os.path.exists(p)]
        assert not left, f"store files left: {left}"
    finally:
        c.shutdown()


@pytest.mark.parametrize("gcs_in_process", ["1", "0"])
def test_a_killed_raylets_zygote_and_workers_exit_with_it(monkeypatch, gcs_in_process):
    """A raylet SIGKILLed (no goodbye, no cleanup of its own): its zygote
    sees its request pipe close and exits, and the workers it forked (an
    actor's, an idle one) die with the zygote: none is left running
    orphaned. With the GCS forked from the raylet too (it must not keep
    the zygote's pipe open)."""
    monkeypatch.setenv("JRAY_GCS_IN_PROCESS", gcs_in_process)
    c = Cluster(head_node_args={"num_cpus": 1})
    try:
        c.connect()

        @jray.remote(num_cpus=0)
        class Pid:
            def pid(self):
                return os.getpid()

        actor_pid = jray.get(Pid.remote().pid.remote(), timeout=60)
        raylet = psutil.Process(c.handle.head.raylet_pid)
        descendants = raylet.children(recursive=True)
        assert actor_pid in {p.pid for p in descendants}
        zygotes = [p for p in descendants if "zygote" in " ".join(p.cmdline())]
        assert zygotes, "no zygote under the raylet"
        running = [p for p in descendants if "jray._private.gcs" not in " ".join(p.cmdline())]
        raylet.kill()
        # at once, not when a driver or an owner notices something (~20 s later)
        gone, alive = psutil.wait_procs(running, timeout=8)
        assert not alive, f"still running after their raylet was killed: {alive}"
    finally:
        jray.shutdown()
        c.shutdown()


def test_gcs_down_errors_say_the_head_is_unreachable(monkeypatch):
    from jray._private import gcs_client

    # The driver retries an unreachable GCS for GCS_RECONNECT_SECONDS (60 by default) before it
    # gives up: what it says then is the point here, not the default wait.
    monkeypatch.setattr(gcs_client, "GCS_RECONNECT_SECONDS", 3.0)
    monkeypatch.setenv("JRAY_GCS_IN_PROCESS", "0")  # a GCS process of its own, killed alone
    c = Cluster(head_node_args={"num_cpus": 1})
    try:
        c.connect()

        @jray.remote
        class Late:
            def ping(self):
                return 1

        os.kill(c.handle.gcs_pid, signal.SIGKILL)
        time.sleep(0.5)
        with pytest.raises(exceptions.GcsUnavailableError, match="head is unreachable"):
            Late.remote()
    finally:
        c.shutdown()


def test_a_call_made_as_the_head_dies_raises_instead_of_hanging(monkeypatch):
    """The head raylet (serving the GCS) is killed: the driver finds its
    cluster lost and disconnects while the user's thread is in a GCS call.
    That call raises (the cluster is lost, or the head is unreachable)
    instead of waiting forever on a loop that stopped under it."""
    import threading

    from jray._private import gcs_client

    monkeypatch.setattr(gcs_client, "GCS_RECONNECT_SECONDS", 3.0)
    c = Cluster(head_node_args={"num_cpus": 1})
    try:
        c.connect()

        @jray.remote
        class Late:
            def ping(self):
                return 1

        os.kill(c.handle.head.raylet_pid, signal.SIGKILL)
        time.sleep(0.5)
        outcome: list[BaseException | None] = []

        def call() -> None:
            try:
                Late.remote()
                outcome.append(None)
            except BaseException as e:  # noqa: BLE001 - what it raised is the point
                outcome.append(e)

        t = threading.Thread(target=call, daemon=True)
        t.start()
        t.join(30)
        assert outcome, "the call hung with its cluster gone"
        assert isinstance(outcome[0], (exceptions.ClusterLostError, exceptions.GcsUnavailableError)), outcome
    finally:
        c.shutdown()


def test_a_driver_its_raylet_cannot_see_is_noticed_by_the_gcs(cluster):
    """A driver in its own PID namespace: the raylet's pid check cannot see
    it (as for a driver on another machine), so only the GCS's watch of the
    driver (its stream breaks, it no longer answers) can end its job."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux) for a PID namespace")
    env = dict(os.environ, ADDR=cluster.address, JRAY_TOKEN=cluster.handle.token)
    proc = subprocess.Popen(["unshare", "--pid", "--fork", sys.executable, "-c", DRIVER], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if line.strip() != "READY":
            err = proc.stderr.read() if proc.poll() is not None else ""
            if "Operation not permitted" in err:
                pytest.skip("PID namespaces are not allowed here")
            raise AssertionError(f"the driver did not start: {line!r} {err[-500:]}")
        driver = psutil.Process(proc.pid).children()[0]
        job = [j for j in state.list_jobs() if j["status"] == "RUNNING" and j["namespace"] == "victim"
               and j["driver_pid"] == 1]
        assert job, state.list_jobs()
        driver.kill()
        assert jray.get([short.remote(i) for i in range(8)], timeout=30) == list(range(8))
        poll(lambda: [j["status"] for j in state.list_jobs() if j["job_id"] == job[0]["job_id"]],
             lambda s: s == ["FAILED"], "the job FAILED by the GCS's watch", timeout=10)
        poll(lambda: _actor_state("keeper"), lambda s: s == "DEAD", "its actor killed", timeout=10)
        jray.kill(jray.get_actor("stayer", namespace="victim"))
    finally:
        proc.kill()
        proc.wait(timeout=10)
