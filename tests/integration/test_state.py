"""The state API (``jray.util.state``) and ``jray list/summary/memory`` on
real clusters. Task events reach the GCS in batches, so every check on them
polls with a deadline."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from collections.abc import Callable

import numpy as np
import pytest

import jray
from jray.util.state import (
    list_actors,
    list_jobs,
    list_nodes,
    list_objects,
    list_tasks,
    list_workers,
    summarize_tasks,
)
from tests.integration.test_cli import STORE, kill_recorded, make_env, read_cluster, run_cli
from tests.polling import poll


@jray.remote
def square(x):
    return x * x


@jray.remote
def explode():
    raise ValueError("boom")


@jray.remote
class Counter:
    def __init__(self):
        self.n = 0

    def inc(self):
        self.n += 1
        return self.n


@pytest.fixture(scope="module")
def ran(jray_cluster):
    """A few tasks (one failing) and an actor, run once for the module."""
    assert jray.get([square.remote(i) for i in range(3)]) == [0, 1, 4]
    with pytest.raises(jray.exceptions.RayTaskError):
        jray.get(explode.remote(), timeout=30)
    c = Counter.remote()
    assert jray.get(c.inc.remote(), timeout=30) == 1
    return c


def by_name(name: str) -> Callable[[], list[dict]]:
    return lambda: list_tasks(filters=[("func_or_class_name", "=", name)])


def test_list_tasks_states(ran):
    # The owner's FINISHED and the worker's RUNNING come from two flushers, either first.
    done = poll(by_name("square"),
                lambda ts: len(ts) == 3 and all(t["state"] == "FINISHED" and t["worker_id"] for t in ts),
                "square tasks")
    t = done[0]
    assert t["type"] == "NORMAL_TASK" and t["name"] == "square"
    assert t["node_id"] == list_nodes()[0]["node_id"]
    assert t["worker_id"] and t["worker_pid"] and t["job_id"]
    (failed,) = poll(by_name("explode"), lambda ts: ts and ts[0]["state"] == "FAILED" and ts[0]["error_message"],
                     "failed task")
    assert "ValueError: boom" in failed["error_message"]
    calls = poll(by_name("Counter.inc"), lambda ts: ts and ts[0]["state"] == "FINISHED", "actor call")
    assert calls[0]["type"] == "ACTOR_TASK" and calls[0]["actor_id"] == ran._actor_id.hex()


def test_list_tasks_detail_has_times_and_resources(ran):
    (t,) = poll(lambda: list_tasks(filters=[("func_or_class_name", "=", "explode")], detail=True),
                lambda ts: ts and ts[0]["end_time_ms"] and ts[0]["start_time_ms"], "failed task times")
    assert t["creation_time_ms"] <= t["start_time_ms"] <= t["end_time_ms"]
    # PENDING_NODE_ASSIGNMENT only when a lease was asked for it (not when an
    # idle leased worker took it at once).
    assert {"SUBMITTED", "SCHEDULED", "RUNNING", "FAILED"} <= set(t["state_times_ms"])
    assert set(t["state_times_ms"]) <= {"SUBMITTED", "PENDING_NODE_ASSIGNMENT", "SCHEDULED", "RUNNING", "FAILED"}
    assert t["required_resources"] == {"CPU": 1.0}


def test_filters_and_limit(ran):
    poll(by_name("explode"), lambda ts: ts and ts[0]["state"] == "FAILED", "failed task")
    failed = list_tasks(filters=[("state", "=", "FAILED")])
    assert [t["name"] for t in failed] == ["explode"]
    others = list_tasks(filters=[("state", "!=", "FAILED")])
    assert "explode" not in {t["name"] for t in others}
    assert len(list_tasks(limit=2)) == 2
    with pytest.raises(ValueError, match="colour"):
        list_tasks(filters=[("colour", "=", "red")])
    with pytest.raises(ValueError, match="~"):
        list_tasks(filters=[("state", "~", "x")])


def test_summarize_tasks(ran):
    def counts() -> dict:
        return summarize_tasks()["cluster"]["summary"]

    s = poll(counts, lambda s: s.get("square", {}).get("state_counts") == {"FINISHED": 3}, "summary")
    assert s["explode"]["state_counts"] == {"FAILED": 1}
    assert s["Counter.inc"]["type"] == "ACTOR_TASK"


def test_actor_alive_then_dead(ran):
    aid = ran._actor_id.hex()
    (a,) = poll(lambda: list_actors(filters=[("actor_id", "=", aid)]), lambda r: r[0]["pid"], "actor pid")
    assert a["state"] == "ALIVE" and a["class_name"] == "Counter"
    (call,) = poll(by_name("Counter.inc"), lambda ts: ts and ts[0]["worker_pid"], "actor call pid")
    assert a["pid"] == call["worker_pid"]
    jray.kill(ran)
    poll(lambda: list_actors(filters=[("actor_id", "=", aid)]), lambda r: r[0]["state"] == "DEAD", "dead actor")


def test_list_objects_shows_a_put_array(jray_cluster):
    arr = np.ones(1_000_000)
    ref = jray.put(arr)
    rows = list_objects(filters=[("object_id", "=", ref.hex())])
    assert len(rows) == 1
    assert rows[0]["object_size"] >= arr.nbytes
    assert rows[0]["where"] == "shm" and rows[0]["pid"] == os.getpid()
    del ref


def test_nodes_workers_jobs(jray_cluster):
    (node,) = list_nodes()
    assert node["state"] == "ALIVE" and node["is_head_node"] and node["resources_total"]["CPU"] == 2
    workers = list_workers()
    assert {w["worker_type"] for w in workers} >= {"DRIVER"}
    assert any(w["pid"] == os.getpid() for w in workers)
    ran = [t for t in list_tasks(filters=[("type", "=", "NORMAL_TASK")]) if t["worker_id"]]
    pids = {w["pid"] for w in workers}
    for t in ran:  # a pooled worker that ran a task is listed with its id
        if t["worker_pid"] in pids:
            assert any(w["worker_id"] == t["worker_id"] and w["pid"] == t["worker_pid"] for w in workers)
    jobs = list_jobs(filters=[("status", "=", "RUNNING")])
    assert any(j["driver_pid"] == os.getpid() for j in jobs)


DRIVER = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    import jray
    jray.init(address="auto")

    @jray.remote
    def add(a, b):
        return a + b

    @jray.remote
    def fail():
        raise RuntimeError("nope")

    jray.get([add.remote(i, i) for i in range(4)])
    try:
        jray.get(fail.remote())
    except Exception:
        pass
    ref = jray.put(np.zeros(500_000))
    marker = sys.argv[1]
    with open(marker + ".tmp", "w") as f:
        f.write(ref.hex())
    os.rename(marker + ".tmp", marker)
    deadline = time.monotonic() + 60
    while not os.path.exists(marker + ".done") and time.monotonic() < deadline:
        time.sleep(0.05)
    jray.shutdown()
""")


@pytest.fixture
def cli_cluster(tmp_path):
    env = make_env(tmp_path)
    r = run_cli(env, "start", "--head", "--port", "0", "--num-cpus", "2", "--num-gpus", "0",
                "--object-store-memory", STORE)
    assert r.returncode == 0, r.stderr
    yield env
    run_cli(env, "stop")
    kill_recorded(str(tmp_path))


def test_cli_list_summary_memory(cli_cluster, tmp_path):
    import subprocess

    env = cli_cluster
    marker = str(tmp_path / "ready")
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, marker], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        poll(lambda: os.path.exists(marker) or driver.poll() is not None, bool, "driver ready", 60)
        assert driver.poll() is None, driver.communicate()
        oid = open(marker).read()
        r = run_cli(env, "memory")
        assert r.returncode == 0, r.stderr
        assert oid in r.stdout and "3.8 MiB" in r.stdout and "shm" in r.stdout
        assert read_cluster(env)["nodes"][0]["node_id"] in r.stdout  # store totals per node
        r = run_cli(env, "memory", "--format", "json")
        (obj,) = [o for o in json.loads(r.stdout)["objects"] if o["object_id"] == oid]
        assert obj["pid"] == driver.pid and obj["pins"] >= 0
    finally:
        open(marker + ".done", "w").close()
        driver.communicate(timeout=60)
    assert driver.returncode == 0

    def tasks() -> list[dict]:
        r = run_cli(env, "list", "tasks", "--format", "json", "--filter", "name=add")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    rows = poll(tasks, lambda ts: len(ts) == 4 and all(t["state"] == "FINISHED" for t in ts), "CLI tasks")
    assert {t["name"] for t in rows} == {"add"}
    r = run_cli(env, "list", "tasks", "--filter", "state=FAILED")
    assert r.returncode == 0 and "fail" in r.stdout and "RuntimeError: nope" in r.stdout
    r = run_cli(env, "summary", "tasks")
    assert r.returncode == 0 and "add" in r.stdout and "FINISHED: 4" in r.stdout
    for what in ("actors", "objects", "nodes", "workers", "jobs"):
        r = run_cli(env, "list", what, "--format", "json")
        assert r.returncode == 0, (what, r.stderr)
        json.loads(r.stdout)
    r = run_cli(env, "list", "tasks", "--filter", "colour=red")
    assert r.returncode == 1 and "colour" in r.stderr


def test_summarize_actors_and_objects(jray_cluster):
    from jray.util import state

    @jray.remote
    class Summed:
        def ping(self):
            return 1

    actors = [Summed.remote() for _ in range(2)]
    jray.get([a.ping.remote() for a in actors])
    big = jray.put(np.zeros(2 * 2**20, dtype=np.uint8))  # in the store (not inline)
    s = state.summarize_actors()["cluster"]
    assert s["summary"]["Summed"]["state_counts"].get("ALIVE") == 2
    assert s["total_actors"] >= 2
    o = state.summarize_objects()["cluster"]
    assert o["total_objects"] >= 1 and o["total_size_mb"] >= 2.0
    del big
