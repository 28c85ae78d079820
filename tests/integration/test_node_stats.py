"""Per-node stats (sent by raylets with their heartbeats, kept by the GCS)
in ``list_nodes`` rows and ``jray list nodes``, and the task events raylets
report (a lease request seen: PENDING_NODE_ASSIGNMENT; granted: SCHEDULED).
Stats and events travel in batches, so every check polls with a deadline."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np
import pytest

import jray
from jray._private.worker import global_state
from jray.scripts import main as cli_main
from jray.util.state import list_nodes, list_tasks
from tests.polling import poll


def node() -> dict[str, Any]:
    (n,) = list_nodes(detail=True)
    return n


@jray.remote
def hold(path: str) -> int:
    """Run until ``path`` exists (at most 60 s)."""
    deadline = time.monotonic() + 60
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    return os.getpid()


@jray.remote(num_cpus=2)
def wide(path: str) -> int:
    deadline = time.monotonic() + 60
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    return 2


def test_node_rows_carry_stats(jray_cluster):
    n = node()
    for key in ("resources_total", "resources_available", "num_workers", "num_idle_workers", "num_busy_workers",
                "object_store_used", "object_store_memory", "num_objects", "spilled_bytes", "pending_leases"):
        assert key in n, key
    assert n["object_store_memory"] == 256 * 1024 * 1024 and n["spilled_bytes"] == 0
    brief = list_nodes()[0]  # the default listing shows use too
    assert {"resources_available", "num_workers", "object_store_used"} <= set(brief)


def test_node_stats_follow_running_tasks(jray_cluster, tmp_path):
    poll(node, lambda n: n["resources_available"].get("CPU") == 2, "idle CPUs")
    release = str(tmp_path / "release")
    ref = hold.remote(release)
    try:
        busy = poll(node, lambda n: n["resources_available"].get("CPU") == 1 and n["num_busy_workers"] >= 1,
                    "a CPU in use while the task runs")
        assert busy["num_workers"] >= busy["num_busy_workers"] + busy["num_idle_workers"]
    finally:
        open(release, "w").close()
    assert jray.get(ref, timeout=60) > 0
    poll(node, lambda n: n["resources_available"].get("CPU") == 2, "CPUs back after the task")


def test_node_stats_follow_the_store(jray_cluster):
    before = poll(node, lambda n: True, "node")
    arr = np.ones(2_000_000)
    ref = jray.put(arr)
    n = poll(node, lambda n: n["object_store_used"] >= before["object_store_used"] + arr.nbytes
             and n["num_objects"] >= before["num_objects"] + 1, "store use after a put")
    assert n["object_store_used"] <= n["object_store_memory"]
    del ref
    poll(node, lambda n: n["object_store_used"] <= before["object_store_used"]
         and n["num_objects"] <= before["num_objects"], "store use after the ref is dropped")


def test_raylet_reports_a_waiting_lease(jray_cluster, tmp_path):
    release = str(tmp_path / "release")
    first = wide.remote(release)  # holds both CPUs
    poll(node, lambda n: n["resources_available"].get("CPU") == 0, "both CPUs taken")
    second = wide.remote(release)  # its lease request waits at the raylet
    tid = second.task_id().hex() if hasattr(second, "task_id") else None
    try:
        def waiting() -> list[dict]:
            return [t for t in list_tasks(filters=[("func_or_class_name", "=", "wide")], detail=True)
                    if t["state"] == "PENDING_NODE_ASSIGNMENT"]

        (t,) = poll(waiting, lambda ts: len(ts) == 1, "a task pending node assignment")
        assert tid is None or t["task_id"] == tid
        assert t["node_id"] == node()["node_id"]  # the raylet that holds the request
        assert poll(node, lambda n: n["pending_leases"] >= 1, "pending lease")["pending_leases"] == 1
    finally:
        open(release, "w").close()
    assert jray.get([first, second], timeout=60) == [2, 2]
    done = poll(lambda: list_tasks(filters=[("func_or_class_name", "=", "wide")], detail=True),
                # (the worker's RUNNING event comes in its own batch, possibly after the owner's FINISHED)
                lambda ts: len(ts) == 2 and all(t["state"] == "FINISHED" and "RUNNING" in t["state_times_ms"]
                                                for t in ts), "wide tasks finished")
    for t in done:
        times = t["state_times_ms"]
        assert {"PENDING_NODE_ASSIGNMENT", "SCHEDULED", "RUNNING"} <= set(times)
        assert times["SUBMITTED"] <= times["PENDING_NODE_ASSIGNMENT"] <= times["SCHEDULED"] <= times["RUNNING"]


def test_actor_creation_lease_is_reported(jray_cluster):
    @jray.remote
    class Probe:
        def ping(self):
            return "pong"

    p = Probe.remote()
    assert jray.get(p.ping.remote(), timeout=60) == "pong"
    (t,) = poll(lambda: list_tasks(filters=[("type", "=", "ACTOR_CREATION_TASK"),
                                            ("name", "=", "Probe.__init__")], detail=True),
                lambda ts: ts and "PENDING_NODE_ASSIGNMENT" in ts[0]["state_times_ms"]
                and "SCHEDULED" in ts[0]["state_times_ms"], "actor creation events from the raylet")
    jray.kill(p)


def test_cli_list_nodes_shows_stats(jray_cluster, capsys, monkeypatch):
    monkeypatch.setenv("JRAY_TOKEN", global_state.worker.token)
    address = jray_cluster.address_info["gcs_address"]
    assert cli_main(["list", "nodes", "--format", "json", "--detail", "--address", address]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["num_workers"] >= 0 and row["object_store_memory"] == 256 * 1024 * 1024
    assert "num_idle_workers" in row and "num_objects" in row
    assert cli_main(["list", "nodes", "--address", address]) == 0
    assert "OBJECT_STORE_USED" in capsys.readouterr().out


@pytest.fixture(autouse=True)
def _attached(jray_cluster):
    assert global_state.worker is not None


@jray.remote
def tick(i: int) -> int:
    return i


def test_task_changes_return_only_what_changed(jray_cluster):
    from jray.util.state import task_changes, task_state_counts

    def quiet_seq() -> int | None:
        """A seq after which nothing changed for a while (late batches all in:
        the owner, the worker and the raylet report a task independently, so
        its FINISHED may be in before the worker's RUNNING)."""
        seq = task_changes(limit=1)["seq"]
        time.sleep(1.5)
        return seq if not task_changes(since=seq)["tasks"] else None

    assert jray.get([tick.remote(i) for i in range(3)], timeout=60) == [0, 1, 2]
    poll(lambda: task_changes(), lambda c: sum(t["name"] == "tick" and t["state"] == "FINISHED"
                                               for t in c["tasks"]) == 3, "first ticks")
    seq = poll(quiet_seq, lambda s: s is not None, "a quiet task table")
    first = task_changes()
    assert first["seq"] == seq and first["total"] == len(first["tasks"])
    assert sum(t["name"] == "tick" and t["state"] == "FINISHED" and bool(t["worker_pid"]) for t in first["tasks"]) == 3
    assert task_changes(limit=2)["tasks"] == first["tasks"][-2:]
    ref = tick.remote(99)
    assert jray.get(ref, timeout=60) == 99
    tid = ref.task_id().hex()
    later = poll(lambda: task_changes(since=seq),
                 lambda c: any(t["task_id"] == tid and t["state"] == "FINISHED" for t in c["tasks"]), "new tick")
    assert later["seq"] > seq and [t["task_id"] for t in later["tasks"]] == [tid]  # only what changed
    counts = task_state_counts()
    assert counts.get("FINISHED", 0) >= 4 and sum(counts.values()) == later["total"]
