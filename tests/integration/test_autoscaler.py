"""The autoscaler with the ``local`` provider: real ``jray start`` processes
as nodes, the monitor as a real process reading demand from the GCS.

One cluster (started from a notebook-style config dict with
``jray.autoscaler.sdk.create_or_update_cluster``) serves the module's tests
in order: min_workers, scale-up from demand (CPUs the head lacks; a custom
resource only one node type has, infeasible until its node joins), a
placement group, scale-down after idle (never below min_workers),
``request_resources`` holding nodes, ``scale_to`` pinning a type (and the
ClusterMonitor showing its nodes launching and joining), a node type whose launch fails
(reported with its message, retried with back-off), a node that never joins
(cancelled after ``node_start_wait_s``). Its teardown
(``teardown_cluster``) must leave no process and no ``/dev/shm`` file. A last
test runs ``jray up`` / ``jray status`` / ``jray down`` from the command line.

Times measured (demand to joined node, idle to gone) are printed (``-s``).
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest

import jray
from jray.autoscaler import sdk
from jray.util.placement_group import placement_group, remove_placement_group

IDLE_MINUTES = 0.05  # 3 s
STORE = 64 * 1024 * 1024
START_WAIT_S = 8  # node_start_wait_s: a node not joined by then is cancelled
# A "python" that never starts a node: the "hang" type's nodes never join.
_HANG = os.path.join(tempfile.mkdtemp(prefix="as-hang-", dir=os.environ.get("JRAY_TMPDIR")), "python")
with open(_HANG, "w") as _f:
    _f.write("#!/bin/sh\nexec sleep 120\n")
os.chmod(_HANG, 0o755)
CONFIG: dict[str, Any] = {
    "cluster_name": "astest",
    "max_workers": 4,
    "idle_timeout_minutes": IDLE_MINUTES,
    "provider": {"type": "local", "head_port": 0, "node_start_wait_s": START_WAIT_S},
    "head_node_type": "head",
    "available_node_types": {
        "head": {"resources": {"CPU": 0}, "node_config": {"object_store_memory": STORE}},
        "small": {"resources": {"CPU": 1}, "min_workers": 1, "max_workers": 1,
                  "node_config": {"object_store_memory": STORE}},
        "big": {"resources": {"CPU": 2}, "max_workers": 2, "node_config": {"object_store_memory": STORE}},
        "foo": {"resources": {"CPU": 1, "foo": 1}, "max_workers": 1,
                "node_config": {"object_store_memory": STORE}},
        "broken": {"resources": {"CPU": 1, "broken": 1}, "max_workers": 1,
                   "node_config": {"python": "/nonexistent/bin/python3"}},
        "hang": {"resources": {"CPU": 1, "hang": 1}, "max_workers": 1, "node_config": {"python": _HANG}},
    },
}
ENV = {"JRAY_AUTOSCALER_UPDATE_INTERVAL_S": "0.5", "JRAY_AUTOSCALER_BACKOFF_BASE_S": "1",
       "JRAY_AUTOSCALER_BACKOFF_CAP_S": "30"}


def wait_for(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; autoscaler status:\n"
                                 f"{json.dumps(sdk.get_status(), indent=1, default=str)[-3000:]}")
        time.sleep(0.2)


def joined(node_type: str) -> list[dict[str, Any]]:
    """Nodes of a type that joined the cluster (as the autoscaler last saw them)."""
    st = sdk.get_status() or {}
    return [n for n in st.get("node_list", []) if n["node_type"] == node_type and n["status"] != "launching"]


def alive_workers() -> list[dict[str, Any]]:
    return [n for n in jray.nodes() if n["Alive"] and "jray.io/provider-node-id" in n["Labels"]]


def session_leftovers(tmp: str) -> tuple[list[int], list[str]]:
    """Live processes whose command line names the test's temp dir, and
    store files of its sessions."""
    procs = []
    for p in psutil.process_iter(["pid", "cmdline", "environ"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
            env = p.info["environ"] or {}
            if p.pid != os.getpid() and (tmp in cmd or env.get("JRAY_TMPDIR") == tmp) and \
                    p.status() != psutil.STATUS_ZOMBIE:
                procs.append(p.pid)
        except psutil.Error:
            pass
    sessions = {os.path.basename(s) for s in glob.glob(os.path.join(tmp, "session_*"))}
    shm = [f for f in os.listdir("/dev/shm") if f.startswith("jray-") and
           f[len("jray-"):].rsplit("-", 1)[0] in sessions]
    return procs, shm


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    saved = {k: os.environ.get(k) for k in (*ENV, "JRAY_TMPDIR", "JRAY_ADDRESS", "JRAY_TOKEN")}
    tmp = tempfile.mkdtemp(prefix="as-", dir=os.environ.get("JRAY_TMPDIR"))
    os.environ.update(ENV, JRAY_TMPDIR=tmp)
    os.environ.pop("JRAY_ADDRESS", None)
    os.environ.pop("JRAY_TOKEN", None)
    if jray.is_initialized():
        jray.shutdown()
    t0 = time.monotonic()
    info = sdk.create_or_update_cluster(CONFIG)
    try:
        jray.init(address="auto")
        yield info, t0
    finally:
        jray.shutdown()
        t1 = time.monotonic()
        sdk.teardown_cluster(CONFIG)
        print(f"\nteardown_cluster took {time.monotonic() - t1:.1f} s")
        try:
            deadline = time.monotonic() + 10
            while session_leftovers(tmp) != ([], []) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert session_leftovers(tmp) == ([], []), "teardown_cluster left processes / store files"
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def test_min_workers_come_up(cluster: Any) -> None:
    info, t0 = cluster
    assert info.started_head
    wait_for(lambda: joined("small"), 60, "the min_workers node")
    print(f"\nmin_workers node joined {time.monotonic() - t0:.1f} s after create_or_update_cluster")
    nodes = alive_workers()
    assert len(nodes) == 1 and nodes[0]["Resources"]["CPU"] == 1


def test_scale_up_from_demand_and_infeasible_resource(cluster: Any) -> None:
    @jray.remote(num_cpus=1, resources={"foo": 1})
    def on_foo() -> str:
        return str(jray.get_runtime_context().get_node_id())

    @jray.remote(num_cpus=2)
    def two_cpus() -> str:
        time.sleep(1.5)
        return str(jray.get_runtime_context().get_node_id())

    t = time.monotonic()
    ref = on_foo.remote()
    # No node has "foo": the demand is infeasible, and the autoscaler says so until it launches one.
    wait_for(lambda: any(d.get("shape") == {"CPU": 1.0, "foo": 1.0} or joined("foo")
                         for d in (sdk.get_status() or {}).get("demand", [])) or joined("foo"),
             30, "the foo demand to be seen")
    node = jray.get(ref, timeout=60)
    print(f"\ninfeasible {{foo: 1}} task: {time.monotonic() - t:.1f} s from submission to its result on a new node")
    labels = {n["NodeID"]: n["Labels"] for n in jray.nodes()}
    assert labels[node].get("jray.io/provider-node-id", "").startswith("local-")

    # Four 2-CPU tasks: the head has no CPU, small has one: "big" nodes (max_workers 2) come up.
    t = time.monotonic()
    refs = [two_cpus.remote() for _ in range(4)]
    wait_for(lambda: joined("big"), 60, "a big node")
    print(f"demand to the first joined big node: {time.monotonic() - t:.1f} s")
    nodes = jray.get(refs, timeout=90)
    big = {n["NodeID"] for n in alive_workers() if n["Resources"].get("CPU") == 2}
    assert set(nodes) <= big and len(big) == 2
    decisions = [d for d in sdk.get_status()["decisions"] if d["action"] == "launch"]
    assert any(d["node_type"] == "foo" and "{CPU: 1, foo: 1}" in d["reason"] for d in decisions)
    assert any(d["node_type"] == "big" and "{CPU: 2}" in d["reason"] for d in decisions)


def test_placement_group_demand(cluster: Any) -> None:
    # Three bundles of 2 CPUs on three distinct nodes: big x2 exist (or come
    # back); the third must come from elsewhere: it cannot (max 2 big, others
    # too small), so it stays pending and the autoscaler reports it.
    pg = placement_group([{"CPU": 2}, {"CPU": 2}], strategy="STRICT_SPREAD")
    assert pg.wait(60)
    bundles_nodes = {b for b in jray.util.placement_group_table(pg)["bundles_to_node_id"].values()}
    assert len(bundles_nodes) == 2
    pending = placement_group([{"CPU": 2}] * 3, strategy="STRICT_SPREAD")
    wait_for(lambda: any(d.get("kind") == "placement_group" and d.get("strategy") == "STRICT_SPREAD"
                         for d in sdk.get_status()["demand"]), 30, "the pending placement group in the status")
    remove_placement_group(pending)
    remove_placement_group(pg)


def test_scale_down_after_idle_keeps_min_workers(cluster: Any) -> None:
    t = time.monotonic()
    wait_for(lambda: len(alive_workers()) == 1, 60, "idle nodes to be terminated")
    print(f"\nidle nodes gone {time.monotonic() - t:.1f} s after their work ended "
          f"(idle_timeout_minutes={IDLE_MINUTES}, i.e. {IDLE_MINUTES * 60:.0f} s)")
    assert alive_workers()[0]["Resources"]["CPU"] == 1  # the min_workers node stays
    time.sleep(IDLE_MINUTES * 60 + 2)
    assert len(alive_workers()) == 1
    terminations = [d for d in sdk.get_status()["decisions"] if d["action"] == "terminate"]
    idle = [d for d in terminations if "idle for more than" in d["reason"]]
    assert idle, terminations
    # Nothing else ended a node, except a launch the autoscaler gave up on: on a loaded
    # machine (a full suite beside benchmarks) a node once took longer than
    # node_start_wait_s to join, and was cancelled as it should be.
    assert all("did not join within" in d["reason"] for d in terminations if d not in idle), \
        [(d["node_type"], d["reason"]) for d in terminations]
    assert not any(d["node_type"] == "small" for d in idle)


def test_request_resources(cluster: Any) -> None:
    t = time.monotonic()
    sdk.request_resources(bundles=[{"CPU": 2}])
    wait_for(lambda: joined("big"), 60, "a big node for request_resources")
    print(f"\nrequest_resources to a joined node: {time.monotonic() - t:.1f} s")
    assert sdk.get_status()["resource_request"] == [{"CPU": 2.0}]
    # The request stands: its node is idle, but kept past the idle timeout.
    time.sleep(IDLE_MINUTES * 60 + 2)
    assert len(joined("big")) == 1
    sdk.request_resources(num_cpus=0)  # replaces it with nothing
    wait_for(lambda: not joined("big"), 60, "the big node to be scaled down once the request is gone")


def test_scale_to_pins_a_type_and_the_cluster_monitor_shows_nodes_arrive(cluster: Any) -> None:
    from jray.widgets import ClusterMonitor

    with pytest.raises(ValueError, match="unknown worker node type 'nope'.*big"):
        sdk.scale_to("nope", 1)
    with pytest.raises(ValueError, match="max_workers is 2"):
        sdk.scale_to("big", 3)
    with pytest.raises(TypeError, match="non-negative integer"):
        sdk.scale_to("big", -1)
    mon = ClusterMonitor(autostart=False)
    try:
        t = time.monotonic()
        assert sdk.scale_to("big", 2) == {"big": 2}

        def arriving_shown() -> bool:
            # Launching for about a second: a monitor update on a loaded machine can come after
            # both nodes joined already (then the counts below show them).
            mon.update()
            value = mon.autoscaler.value
            return "big" in value and ("launching" in value or len(joined("big")) == 2)
        wait_for(arriving_shown, 30, "the ClusterMonitor to show big nodes launching")
        wait_for(lambda: len(joined("big")) == 2, 60, "two big nodes for scale_to('big', 2)")
        print(f"\nscale_to('big', 2) to both joined: {time.monotonic() - t:.1f} s")
        mon.update()
        assert "big 2 (scaled to 2)" in mon.autoscaler.value
        assert sum(p.node_id in {n["node_id"] for n in joined("big")} for p in mon.panels.values()) == 2
        st = sdk.get_status()
        assert st["node_types"]["big"]["target"] == 2 and st["scale_targets"] == {"big": 2}
        # Pinned, idle past the timeout, they stay.
        time.sleep(IDLE_MINUTES * 60 + 2)
        assert len(joined("big")) == 2
        # Pinned to 0, idle nodes go at once (no idle timeout to wait out).
        t = time.monotonic()
        sdk.scale_to("big", 0)
        wait_for(lambda: not joined("big") and not [w for w in alive_workers() if w["Resources"].get("CPU") == 2],
                 60, "the big nodes to go for scale_to('big', 0)")
        print(f"scale_to('big', 0) to both gone: {time.monotonic() - t:.1f} s")
        assert any("scaled to 0" in d["reason"] for d in sdk.get_status()["decisions"])
        assert sdk.scale_to("big", None) == {}
        wait_for(lambda: sdk.get_status()["scale_targets"] == {}, 10, "the pin to be dropped")
    finally:
        mon.close()
        sdk.scale_to("big", None)


def test_teardown_workers_only(cluster: Any) -> None:
    small = wait_for(lambda: joined("small"), 30, "the min_workers node")
    pid = small[0]["provider_id"]
    # keep_min_workers spares the small node; workers_only leaves the head and autoscaler.
    sdk.teardown_cluster(CONFIG, workers_only=True, keep_min_workers=True)
    time.sleep(1.5)
    assert [n["provider_id"] for n in joined("small")] == [pid]
    # workers_only alone terminates it; the autoscaler, still running, brings min_workers back.
    sdk.teardown_cluster(CONFIG, workers_only=True)
    wait_for(lambda: [n for n in joined("small") if n["provider_id"] != pid], 60,
             "the autoscaler to bring a new min_workers node")
    assert sdk.get_status()["running"]
    assert [n for n in jray.nodes() if n["Alive"] and "jray.io/provider-node-id" not in n["Labels"]]  # the head


def test_failed_launch_is_reported_and_retried_with_backoff(cluster: Any) -> None:
    @jray.remote(num_cpus=1, resources={"broken": 1})
    def never() -> None:
        pass

    ref = never.remote()
    st = wait_for(lambda: (s := sdk.get_status()) and sum(f["node_type"] == "broken" for f in s["failures"]) >= 3
                  and s, 40, "three failed launches of the broken type")
    fails = [f for f in st["failures"] if f["node_type"] == "broken"]
    assert "/nonexistent/bin/python3" in fails[0]["message"]
    # Back-off: the delays double (1, 2, 4 s), the launches are spaced by them.
    assert [f["retry_in_s"] for f in fails[:3]] == [1.0, 2.0, 4.0]
    gaps = [b["time"] - a["time"] for a, b in zip(fails, fails[1:], strict=False)]
    assert all(g >= a["retry_in_s"] - 0.1 for g, a in zip(gaps, fails, strict=False)), gaps
    out = subprocess.run([sys.executable, "-m", "jray.scripts", "status"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    for section in ("Pending:", "Recent failures:", "Demands:", "/nonexistent/bin/python3"):
        assert section in out.stdout, out.stdout
    jray.cancel(ref, force=True)
    with pytest.raises(Exception):  # noqa: B017 - cancelled
        jray.get(ref, timeout=30)


def test_node_that_never_joins_is_cancelled(cluster: Any) -> None:
    @jray.remote(num_cpus=1, resources={"hang": 1})
    def never() -> None:
        pass

    info, _ = cluster
    ref = never.remote()
    t = time.monotonic()
    st = wait_for(lambda: (s := sdk.get_status()) and any(f["node_type"] == "hang" for f in s["failures"]) and s,
                  START_WAIT_S + 20, "the hang node to be cancelled")
    print(f"\nnode that never joined cancelled {time.monotonic() - t:.1f} s after the demand "
          f"(node_start_wait_s={START_WAIT_S})")
    fail = next(f for f in st["failures"] if f["node_type"] == "hang")
    assert f"did not join the cluster within {START_WAIT_S} s" in fail["message"]
    assert any(d["action"] == "terminate" and d["node_type"] == "hang" for d in st["decisions"])
    # It is gone from the local provider's state (its process was terminated).
    node_id = fail["message"].split()[1]
    assert node_id.startswith("local-")
    with open(os.path.join(info.session_dir, "local-nodes-astest.json")) as f:
        assert node_id not in json.load(f)
    jray.cancel(ref, force=True)
    with pytest.raises(Exception):  # noqa: B017 - cancelled
        jray.get(ref, timeout=30)


def test_cli_up_status_down(tmp_path: Any) -> None:
    """``jray up -y`` / ``jray status`` / ``jray down -y`` from a YAML file."""
    import yaml

    env = dict(os.environ, **ENV, JRAY_TMPDIR=str(tmp_path))
    for var in ("JRAY_ADDRESS", "JRAY_TOKEN"):
        env.pop(var, None)
    cfg = {**CONFIG, "cluster_name": "cli", "available_node_types": {
        k: v for k, v in CONFIG["available_node_types"].items() if k in ("head", "small")}}
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cli = [sys.executable, "-m", "jray.scripts"]
    try:
        up = subprocess.run([*cli, "up", "-y", "--wait", "--timeout", "60", str(path)], env=env,
                            capture_output=True, text=True, timeout=120)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "1 of 1 min_workers node joined" in up.stdout
        st = subprocess.run([*cli, "status"], env=env, capture_output=True, text=True, timeout=60)
        assert st.returncode == 0 and "Autoscaler (running, cluster cli" in st.stdout, st.stdout + st.stderr
        bad = subprocess.run([*cli, "up", "-y", str(tmp_path / "missing.yaml")], env=env, capture_output=True,
                             text=True, timeout=60)
        assert bad.returncode == 1 and "cannot read the cluster config" in bad.stderr
    finally:
        down = subprocess.run([*cli, "down", "-y", str(path)], env=env, capture_output=True, text=True,
                              timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "Terminated 1 node of cluster cli" in down.stdout
    deadline = time.monotonic() + 10
    while session_leftovers(str(tmp_path)) != ([], []) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert session_leftovers(str(tmp_path)) == ([], [])


def test_jray_stop_without_down_releases_the_nodes(tmp_path: Any) -> None:
    """``jray stop`` on the head (not ``jray down``): the autoscaler sees its
    head gone, terminates its nodes and exits, rather than leave them
    running until their GCS timeout."""
    import yaml

    env = dict(os.environ, **ENV, JRAY_TMPDIR=str(tmp_path))
    for var in ("JRAY_ADDRESS", "JRAY_TOKEN"):
        env.pop(var, None)
    cfg = {**CONFIG, "cluster_name": "stopped", "available_node_types": {
        k: v for k, v in CONFIG["available_node_types"].items() if k in ("head", "small")}}
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cli = [sys.executable, "-m", "jray.scripts"]
    try:
        up = subprocess.run([*cli, "up", "-y", "--wait", "--timeout", "60", str(path)], env=env,
                            capture_output=True, text=True, timeout=120)
        assert up.returncode == 0, up.stdout + up.stderr
        procs, _ = session_leftovers(str(tmp_path))
        names = " ".join(" ".join(psutil.Process(p).cmdline()) for p in procs)
        assert "autoscaler._private.monitor" in names and "--address" in names  # the monitor and a worker node
        t = time.monotonic()
        stop = subprocess.run([*cli, "stop"], env=env, capture_output=True, text=True, timeout=120)
        assert stop.returncode == 0, stop.stdout + stop.stderr
        deadline = time.monotonic() + 20
        while session_leftovers(str(tmp_path)) != ([], []) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert session_leftovers(str(tmp_path)) == ([], []), "the monitor or its node outlived the head"
        print(f"\njray stop to no monitor and no node: {time.monotonic() - t:.1f} s")
    finally:
        subprocess.run([*cli, "down", "-y", str(path)], env=env, capture_output=True, text=True, timeout=120)
