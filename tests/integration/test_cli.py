"""The ``jray`` command line on real detached clusters: ``start --head``,
``start --address``, ``status``, a driver attaching with ``address="auto"``,
``stop``, ``--block`` and bad input.

Every command runs as a subprocess with its own ``JRAY_TMPDIR``, so no test
sees or touches a user's cluster; teardown stops whatever a test left by the
pids its ``cluster.json`` recorded (never by process name).
"""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

CLI = [sys.executable, "-m", "jray.scripts"]
TIMEOUT = 60
STORE = str(64 * 1024 * 1024)


def run_cli(
    env: dict[str, str], *args: str, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout)


def make_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ, JRAY_TMPDIR=str(tmp))
    for var in ("JRAY_ADDRESS", "JRAY_TOKEN", "RAY_ADDRESS"):
        env.pop(var, None)
    return env


def read_cluster(env: dict[str, str]) -> dict:
    with open(os.path.join(env["JRAY_TMPDIR"], "jray_current_cluster")) as f:
        session_dir = json.load(f)["session_dir"]
    with open(os.path.join(session_dir, "cluster.json")) as f:
        return json.load(f)


def recorded_processes(tmp: str) -> list[psutil.Process]:
    """The live processes recorded in any cluster.json under ``tmp`` (checked
    against their session, so a reused pid is left alone), with their children."""
    out = []
    for path in glob.glob(os.path.join(tmp, "session_*", "cluster.json")):
        with open(path) as f:
            info = json.load(f)
        for pid in [info["gcs_pid"], *(n["raylet_pid"] for n in info["nodes"])]:
            try:
                p = psutil.Process(pid)
                if info["session_dir"] in " ".join(p.cmdline()):
                    out += [p, *p.children(recursive=True)]
            except psutil.Error:
                pass
    return out


def store_files(tmp: str) -> list[str]:
    out = []
    for session in glob.glob(os.path.join(tmp, "session_*")):
        out += glob.glob(f"/dev/shm/jray-{os.path.basename(session)}-*")
    return out


def alive(procs: list[psutil.Process]) -> list[int]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except psutil.Error:
            pass
    return out


def wait_gone(procs: list[psutil.Process], timeout: float = 10) -> None:
    # Not psutil.wait_procs: a zombie whose parent is an init that does not
    # reap (some containers) would count as running until the timeout.
    deadline = time.monotonic() + timeout
    while alive(procs) and time.monotonic() < deadline:
        time.sleep(0.05)


def kill_recorded(tmp: str) -> None:
    procs = recorded_processes(tmp)
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass
    wait_gone(procs)
    for path in store_files(tmp):
        os.unlink(path)


@pytest.fixture(scope="module")
def cluster_env(tmp_path_factory):
    """The environment of the cluster the module's first tests build up and the stop test ends."""
    tmp = tmp_path_factory.mktemp("cli")
    yield make_env(tmp)
    kill_recorded(str(tmp))


@pytest.fixture
def fresh_env(tmp_path):
    yield make_env(tmp_path)
    kill_recorded(str(tmp_path))


def status_of(env: dict[str, str]) -> str:
    r = run_cli(env, "status")
    assert r.returncode == 0, r.stderr
    return r.stdout


def resource_total(status: str, name: str) -> str:
    for line in status.splitlines():
        cols = re.split(r"\s{2,}", line.strip())  # columns are two spaces apart
        if cols and cols[0] == name:
            return cols[-1]
    raise AssertionError(f"no {name} row in:\n{status}")


def test_start_head_then_status(cluster_env):
    r = run_cli(
        cluster_env,
        "start",
        "--head",
        "--port",
        "0",
        "--num-cpus",
        "2",
        "--num-gpus",
        "0",
        "--object-store-memory",
        STORE,
    )
    assert r.returncode == 0, r.stderr
    info = read_cluster(cluster_env)
    assert info["gcs_address"] in r.stdout
    assert 'jray.init(address="auto")' in r.stdout
    assert f"JRAY_TOKEN={info['token']}" in r.stdout
    assert f"jray start --address {info['gcs_address']}" in r.stdout
    out = status_of(cluster_env)
    assert "1 node alive" in out
    assert info["nodes"][0]["node_id"] in out
    assert resource_total(out, "CPU") == "2"
    assert resource_total(out, "object_store_memory") == "64.0 MiB"


def test_second_head_is_refused(cluster_env):
    r = run_cli(cluster_env, "start", "--head", "--port", "0", "--num-cpus", "1")
    assert r.returncode == 1
    assert "already running" in r.stderr


def test_node_joins_with_start_address(cluster_env):
    info = read_cluster(cluster_env)
    # No JRAY_TOKEN: on the head machine the address file provides it.
    r = run_cli(
        cluster_env,
        "start",
        "--address",
        info["gcs_address"],
        "--num-cpus",
        "3",
        "--num-gpus",
        "0",
        "--resources",
        '{"box": 1}',
        "--labels",
        '{"zone": "b"}',
        "--object-store-memory",
        STORE,
    )
    assert r.returncode == 0, r.stderr
    info = read_cluster(cluster_env)
    assert len(info["nodes"]) == 2
    out = status_of(cluster_env)
    assert "2 nodes alive" in out
    assert all(n["node_id"] in out for n in info["nodes"])
    assert resource_total(out, "CPU") == "5"
    assert resource_total(out, "box") == "1"
    listed = run_cli(cluster_env, "list", "nodes", "--detail", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    labels = {row["node_id"]: row["labels"] for row in json.loads(listed.stdout)}
    assert labels[info["nodes"][1]["node_id"]] == {"zone": "b"}


def test_driver_attaches_with_address_auto(cluster_env):
    script = (
        "import jray\n"
        "jray.init(address='auto')\n"
        "@jray.remote\n"
        "def double(x):\n"
        "    return 2 * x\n"
        "@jray.remote(resources={'box': 1})\n"
        "def on_box():\n"
        "    return jray.get_runtime_context().get_node_id()\n"
        "print('result', jray.get(double.remote(21), timeout=30), jray.get(on_box.remote(), timeout=30))\n"
        "jray.shutdown()\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", script],
        env=cluster_env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert r.returncode == 0, r.stderr
    box_node = read_cluster(cluster_env)["nodes"][1]["node_id"]
    assert f"result 42 {box_node}" in r.stdout


def test_stop_leaves_no_process_or_store_file(cluster_env):
    tmp = cluster_env["JRAY_TMPDIR"]
    procs = recorded_processes(tmp)
    assert len(procs) >= 3  # GCS, two raylets (and their workers)
    assert len(store_files(tmp)) == 2
    r = run_cli(cluster_env, "stop")
    assert r.returncode == 0, r.stderr
    assert "Stopped the jray cluster" in r.stdout
    assert alive(procs) == []
    assert store_files(tmp) == []
    assert not os.path.exists(os.path.join(tmp, "jray_current_cluster"))
    again = run_cli(cluster_env, "stop")
    assert again.returncode == 0
    assert "No jray cluster is running" in again.stdout
    status = run_cli(cluster_env, "status")
    assert status.returncode == 1
    assert "No jray cluster is running" in status.stderr


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--resources", "{bad json"], "--resources"),
        (["--resources", "[1, 2]"], "--resources"),
        (["--resources", '{"box": -1}'], "--resources"),
        (["--resources", '{"CPU": 2}'], "--resources"),
        (["--labels", '{"zone": 1}'], "--labels"),
        (["--labels", "zone=a"], "--labels"),
        (["--num-cpus", "-1"], "--num-cpus"),
        (["--num-gpus", "-2"], "--num-gpus"),
        (["--object-store-memory", "-5"], "--object-store-memory"),
        (["--port", "70000"], "--port"),
    ],
)
def test_bad_input_exits_2(fresh_env, args, flag):
    r = run_cli(fresh_env, "start", "--head", *args)
    assert r.returncode == 2
    assert flag in r.stderr
    assert recorded_processes(fresh_env["JRAY_TMPDIR"]) == []


def test_join_without_token_is_a_clear_error(fresh_env):
    r = run_cli(fresh_env, "start", "--address", "127.0.0.1:9")
    assert r.returncode == 1
    assert "JRAY_TOKEN" in r.stderr


def test_status_with_wrong_token(fresh_env):
    r = run_cli(
        fresh_env,
        "start",
        "--head",
        "--port",
        "0",
        "--num-cpus",
        "1",
        "--object-store-memory",
        STORE,
    )
    assert r.returncode == 0, r.stderr
    addr = read_cluster(fresh_env)["gcs_address"]
    bad = run_cli(dict(fresh_env, JRAY_TOKEN="not-the-token"), "status", "--address", addr)
    assert bad.returncode == 1
    assert "refused the token" in bad.stderr
    assert run_cli(fresh_env, "stop", "--force").returncode == 0
    assert store_files(fresh_env["JRAY_TMPDIR"]) == []


def test_stop_after_a_raylet_crash(fresh_env):
    """Workers whose raylet was SIGKILLed are still found (in its session) and stopped."""
    r = run_cli(
        fresh_env,
        "start",
        "--head",
        "--port",
        "0",
        "--num-cpus",
        "2",
        "--object-store-memory",
        STORE,
    )
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + TIMEOUT
    while len(procs := recorded_processes(fresh_env["JRAY_TMPDIR"])) < 3:  # GCS, raylet, the prestarted worker
        assert time.monotonic() < deadline, "the prestarted workers did not appear"
        time.sleep(0.1)
    raylet = psutil.Process(read_cluster(fresh_env)["nodes"][0]["raylet_pid"])
    raylet.kill()
    wait_gone([raylet])
    r = run_cli(fresh_env, "stop")
    assert r.returncode == 0, r.stderr
    assert alive(procs) == []
    assert store_files(fresh_env["JRAY_TMPDIR"]) == []


def test_block_stops_the_cluster_on_ctrl_c(fresh_env):
    tmp = fresh_env["JRAY_TMPDIR"]
    proc = subprocess.Popen(
        [
            *CLI,
            "start",
            "--head",
            "--port",
            "0",
            "--num-cpus",
            "1",
            "--object-store-memory",
            STORE,
            "--block",
        ],
        env=fresh_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (recorded_processes(tmp) and store_files(tmp)):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the blocked head did not come up"
            time.sleep(0.1)
        procs = recorded_processes(tmp)
        time.sleep(0.5)  # past the signal handler's installation
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "Stopped the jray cluster" in out
    assert alive(procs) == []
    assert store_files(tmp) == []


DRIVER = """
import sys, jray
ctx = jray.init(num_cpus=1, object_store_memory=64 * 1024 * 1024)
print(ctx.address_info["gcs_address"], flush=True)
sys.stdin.readline()
jray.shutdown()
"""


def test_a_cluster_started_by_init_is_found_by_the_cli(fresh_env):
    """Issue 18: `jray status`/`jray memory` in a terminal find the cluster a
    bare `jray.init()` (a notebook's kernel) started, as Ray's CLI does;
    `jray stop` leaves it to its driver; the record goes with the cluster."""
    addr_file = os.path.join(fresh_env["JRAY_TMPDIR"], "jray_current_cluster")
    p = subprocess.Popen([sys.executable, "-c", DRIVER], env=fresh_env, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        address = p.stdout.readline().strip()  # bounded: init fails or prints within STARTUP_TIMEOUT
        assert re.fullmatch(r"[\d.]+:\d+", address), p.stderr.read() if p.poll() is not None else address
        assert f"jray cluster at {address}: 1 node alive" in status_of(fresh_env)
        r = run_cli(fresh_env, "memory")
        assert r.returncode == 0 and "64.0 MiB" in r.stdout, r  # the init cluster's store capacity
        r = run_cli(fresh_env, "stop")
        assert r.returncode == 0 and "jray.shutdown()" in r.stdout and str(p.pid) in r.stdout, r.stdout
        assert f"jray cluster at {address}: 1 node alive" in status_of(fresh_env)  # still running
        p.stdin.write("\n")
        p.stdin.flush()
        assert p.wait(TIMEOUT) == 0
        assert not os.path.exists(addr_file)  # its driver stopped it: the record went too
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def test_init_leaves_a_live_jray_start_cluster_recorded(fresh_env):
    r = run_cli(fresh_env, "start", "--head", "--port", "0", "--num-cpus", "1", "--object-store-memory", STORE)
    assert r.returncode == 0, r.stderr
    head = read_cluster(fresh_env)["gcs_address"]
    p = subprocess.Popen([sys.executable, "-c", DRIVER], env=dict(fresh_env, JRAY_ADDRESS="local"),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        own = p.stdout.readline().strip()
        assert own and own != head, p.stderr.read() if p.poll() is not None else own
        assert read_cluster(fresh_env)["gcs_address"] == head  # not clobbered
        p.stdin.write("\n")
        p.stdin.flush()
        assert p.wait(TIMEOUT) == 0
        assert read_cluster(fresh_env)["gcs_address"] == head  # nor removed by the driver's stop
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    assert run_cli(fresh_env, "stop").returncode == 0
