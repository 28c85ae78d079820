"""Head fault tolerance: the GCS keeps its tables in ``<session>/gcs.db`` and
its supervisor (``jray start --head``) restarts it when it dies.

- SIGKILL of the GCS (by the pid ``cluster.json`` records) while a driver
  runs tasks and an actor serves calls: the calls go on, the GCS is back
  within a few seconds (same port, token, cluster id), a new driver finds
  the named detached actor (the same process: not created again), new
  tasks and actors work, the live driver's job stays RUNNING;
- ``jray start --head --restore`` after only the GCS was stopped by hand;
- raylets exit cleanly (workers stopped, store removed) when the GCS stays
  down past ``JRAY_GCS_LOST_SECONDS``.

Every wait is bounded; every process started here is stopped at teardown
by the pid it was recorded under (never by name); no store file is left.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

import jray
from jray._private import gcs_client, node, rpc
from jray._private import virtual_hosts as vh
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import raylet_pb2 as rpb
from jray._private.protocol import raylet_pb2_grpc as rgrpc
from jray.util.placement_group import placement_group, placement_group_table, remove_placement_group

pytestmark = pytest.mark.timeout(240)
STORE = 64 * 1024 * 1024

DRIVER = textwrap.dedent("""
    import json, os, sys, threading, time
    import jray
    jray.init(address=sys.argv[1], namespace="ft")

    @jray.remote
    class Counter:
        def __init__(self):
            self.n = 0
        def inc(self):
            self.n += 1
            return self.n
        def pid(self):
            return os.getpid()

    @jray.remote
    def double(x):
        return 2 * x

    where = {"resources": {sys.argv[3]: 0.1}} if len(sys.argv) > 3 else {}  # a host's resource
    c = Counter.options(name="counter", lifetime="detached", **where).remote()
    first_pid = jray.get(c.pid.remote(), timeout=60)
    assert jray.get(double.remote(1), timeout=60) == 2
    print(json.dumps({"ready": True, "pid": first_pid}), flush=True)
    calls, tasks, errors, worst = [], 0, [], 0.0
    t_end = time.monotonic() + float(sys.argv[2])
    while time.monotonic() < t_end:  # the test kills the GCS meanwhile
        t0 = time.monotonic()
        try:
            calls.append(jray.get(c.inc.remote(), timeout=30))
            if len(calls) % 5 == 0:
                assert jray.get(double.remote(len(calls)), timeout=30) == 2 * len(calls)
                tasks += 1
            if len(calls) % 10 == 0:  # a GCS call: retried while the GCS is away
                jray.get_actor("counter")
        except Exception as e:
            errors.append(repr(e))
        worst = max(worst, time.monotonic() - t0)
        time.sleep(0.05)
    # After the restart: new tasks and actors, the same actor.
    @jray.remote
    def triple(x):
        return 3 * x
    new = Counter.remote()
    after = {"task": jray.get(triple.remote(5), timeout=60), "new_actor": jray.get(new.inc.remote(), timeout=60),
             "same_pid": jray.get(c.pid.remote(), timeout=60) == first_pid}
    print(json.dumps({"calls": calls, "tasks": tasks, "errors": errors, "worst": worst, **after}), flush=True)
    sys.stdin.readline()  # the test checks the job is RUNNING meanwhile
""")

SECOND = textwrap.dedent("""
    import json, sys
    import jray
    from jray.util.state import list_actors, list_jobs
    jray.init(address=sys.argv[1], namespace="ft")
    c = jray.get_actor("counter")
    out = {"pid": jray.get(c.pid.remote(), timeout=60), "n": jray.get(c.inc.remote(), timeout=60),
           "actors": [(a["class_name"], a["name"], a["state"]) for a in list_actors()],
           "jobs": [j["status"] for j in list_jobs()]}
    print(json.dumps(out), flush=True)
""")


def _env(cluster: node.ClusterHandle, **extra: str) -> dict[str, str]:
    env = dict(os.environ, JRAY_TOKEN=cluster.token, **extra)
    env.pop("JRAY_ADDRESS", None)
    return env


def _recorded(session_dir: str) -> dict:
    with open(os.path.join(session_dir, "cluster.json")) as f:
        return json.load(f)


def _wait_alive(address: str, token: str, timeout: float) -> float:
    """Seconds until the GCS at ``address`` answers (bounded by ``timeout``)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            gcs_client.check_alive_at(address, token, timeout=1)
            return time.monotonic() - t0
        except Exception:  # noqa: BLE001 - not back yet
            time.sleep(0.05)
    raise AssertionError(f"the GCS at {address} did not come back within {timeout} s")


def _store_files(session_dir: str) -> list[str]:
    return glob.glob(f"/dev/shm/jray-{os.path.basename(session_dir)}-*")


@pytest.fixture
def supervised():
    cluster = node.start_head(num_cpus=2, object_store_memory=STORE, supervise=True)
    procs: list[subprocess.Popen] = []
    yield cluster, procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    node.stop_cluster(cluster)
    assert not _store_files(cluster.session_dir)


def test_gcs_killed_while_serving_comes_back_and_loses_nothing(supervised):
    cluster, procs = supervised
    env = _env(cluster)
    drv = subprocess.Popen([sys.executable, "-c", DRIVER, cluster.gcs_address, "8"], env=env, text=True,
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    procs.append(drv)
    assert drv.stdout is not None and drv.stdin is not None
    ready = json.loads(drv.stdout.readline())
    assert ready["ready"]
    before = _recorded(cluster.session_dir)
    cid = gcs_client.check_cluster(cluster.gcs_address, cluster.token).cluster_id
    time.sleep(1.0)  # calls under way
    os.kill(before["gcs_pid"], signal.SIGKILL)
    back_s = _wait_alive(cluster.gcs_address, cluster.token, 15)
    print(f"GCS back {back_s:.2f} s after SIGKILL")
    assert back_s < 5
    after = _recorded(cluster.session_dir)
    assert after["gcs_pid"] != before["gcs_pid"] and after["gcs_supervisor_pid"] == before["gcs_supervisor_pid"]
    assert gcs_client.check_cluster(cluster.gcs_address, cluster.token).cluster_id == cid

    line = drv.stdout.readline()
    assert line, "the driver died"
    out = json.loads(line)
    assert out["errors"] == []
    assert out["calls"] == list(range(1, len(out["calls"]) + 1))  # one actor, never created again
    assert len(out["calls"]) > 20 and out["tasks"] > 3
    assert out["task"] == 15 and out["new_actor"] == 1 and out["same_pid"]
    print(f"{len(out['calls'])} calls, {out['tasks']} tasks; slowest round {out['worst']:.2f} s")

    # A new driver while the first still runs: the named detached actor is
    # found (the same process), nothing is there twice, the live job RUNNING.
    second = subprocess.run([sys.executable, "-c", SECOND, cluster.gcs_address], env=env, text=True,
                            capture_output=True, timeout=120)
    assert second.returncode == 0, second.stderr
    got = json.loads(second.stdout.strip().splitlines()[-1])
    assert got["pid"] == ready["pid"] and got["n"] == len(out["calls"]) + 1
    named = [a for a in got["actors"] if a[1] == "counter"]
    assert named == [["Counter", "counter", "ALIVE"]]
    assert sorted(s for _, _, s in got["actors"]) == ["ALIVE", "ALIVE"]  # the counter and the new one
    assert "RUNNING" in got["jobs"]
    drv.stdin.write("\n")
    drv.stdin.flush()
    assert drv.wait(60) == 0


SLOW_INIT = textwrap.dedent("""
    import json, sys
    import jray
    jray.init(address=sys.argv[1], namespace="ft")

    @jray.remote
    class Slow:
        def __init__(self, path):
            import os, time
            with open(path, "a") as f:
                f.write(f"start {os.getpid()}\\n")
            time.sleep(3)
            with open(path, "a") as f:
                f.write("end\\n")
        def pid(self):
            import os
            return os.getpid()

    a = Slow.options(name="slow").remote(sys.argv[2])
    print(json.dumps({"pid": jray.get(a.pid.remote(), timeout=60)}), flush=True)
""")


def test_gcs_killed_while_an_actor_is_being_created_creates_it_once(supervised, tmp_path):
    """The GCS dies while an actor's __init__ runs: the restarted GCS asks
    the same worker again, which answers from the run it has. The
    constructor runs once; the actor serves from that worker."""
    cluster, procs = supervised
    log = tmp_path / "init.log"
    drv = subprocess.Popen([sys.executable, "-c", SLOW_INIT, cluster.gcs_address, str(log)], env=_env(cluster),
                           text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    procs.append(drv)
    deadline = time.monotonic() + 60
    while not (log.exists() and log.read_text().startswith("start")):
        assert time.monotonic() < deadline, "the constructor never started"
        assert drv.poll() is None, drv.communicate()[1]
        time.sleep(0.05)
    os.kill(_recorded(cluster.session_dir)["gcs_pid"], signal.SIGKILL)
    _wait_alive(cluster.gcs_address, cluster.token, 15)
    out, errs = drv.communicate(timeout=90)
    assert drv.returncode == 0, errs
    lines = log.read_text().splitlines()
    assert lines == [lines[0], "end"] and lines[0].startswith("start "), lines  # __init__ ran once
    assert json.loads(out.strip().splitlines()[-1])["pid"] == int(lines[0].split()[1])


def _prepare_bundle(raylet_address: str, token: str, bundle: cpb.Bundle) -> bool:
    async def go() -> bool:
        pool = rpc.ChannelPool(token)
        try:
            stub = pool.stub(raylet_address, rgrpc.RayletServiceStub)
            reply = await stub.PrepareBundles(rpb.PrepareBundlesRequest(bundles=[bundle]), timeout=10)
            return bool(reply.ok)
        finally:
            await pool.close()

    return asyncio.run(go())


def test_a_bundle_reserved_as_the_gcs_died_is_given_back_after_the_restart(supervised):
    """The GCS dies between preparing a placement group's bundle on a raylet
    and recording it (here: the prepare is made by hand, as the dead GCS
    would have); the restarted GCS gives such reservations back before
    placing the group, so the node's CPUs are not lost to a ghost bundle."""
    cluster, _procs = supervised
    jray.init(address=cluster.gcs_address, _token=cluster.token)
    try:
        # Two bundles that must be on different nodes: pending on one node.
        pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
        ghost = cpb.Bundle(placement_group_id=pg.id.binary(), index=0, resources={"CPU": 1})
        assert _prepare_bundle(cluster.nodes[0].raylet_address, cluster.token, ghost)
        _wait_for(lambda: jray.available_resources().get("CPU") == 1.0, 10, "the prepare to show")
        os.kill(_recorded(cluster.session_dir)["gcs_pid"], signal.SIGKILL)
        _wait_alive(cluster.gcs_address, cluster.token, 15)
        _wait_for(lambda: jray.available_resources().get("CPU") == 2.0, 20, "the ghost bundle to be given back")
        assert placement_group_table(pg)["state"] == "PENDING"
        remove_placement_group(pg)
    finally:
        jray.shutdown()


def _wait_for(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_restore_by_hand_after_stopping_only_the_gcs(tmp_path):
    env = dict(os.environ, JRAY_TMPDIR=str(tmp_path))
    for var in ("JRAY_ADDRESS", "JRAY_TOKEN", "RAY_ADDRESS"):
        env.pop(var, None)
    cli = [sys.executable, "-m", "jray.scripts"]
    r = subprocess.run([*cli, "start", "--head", "--port", "0", "--num-cpus", "1", "--object-store-memory",
                        str(STORE)], env=env, capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr
    with open(tmp_path / "jray_current_cluster") as f:
        session_dir = json.load(f)["session_dir"]
    info = _recorded(session_dir)
    recorded = [psutil.Process(p) for p in (info["gcs_pid"], info["gcs_supervisor_pid"],
                                             *(n["raylet_pid"] for n in info["nodes"]))]
    try:
        denv = dict(env, JRAY_TOKEN=info["token"])
        make = textwrap.dedent("""
            import os, sys, jray
            jray.init(address=sys.argv[1], namespace="ft")
            @jray.remote
            class Keeper:
                def pid(self): return os.getpid()
            k = Keeper.options(name="keeper", lifetime="detached").remote()
            print(jray.get(k.pid.remote(), timeout=60))
        """)
        r = subprocess.run([sys.executable, "-c", make, info["gcs_address"]], env=denv, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        pid = int(r.stdout.strip().splitlines()[-1])

        # Stop only the GCS (SIGTERM: a clean exit, so its supervisor lets it go).
        os.kill(info["gcs_pid"], signal.SIGTERM)
        for p in recorded[:2]:
            p.wait(15)
        time.sleep(1.0)  # the raylet rides over it (it exits only after 60 s)
        assert recorded[2].is_running()
        r = subprocess.run([*cli, "start", "--head", "--restore"], env=env, capture_output=True, text=True,
                           timeout=90)
        assert r.returncode == 0, r.stderr + r.stdout
        again = _recorded(session_dir)
        recorded += [psutil.Process(again["gcs_pid"]), psutil.Process(again["gcs_supervisor_pid"])]
        assert again["gcs_address"] == info["gcs_address"]
        find = textwrap.dedent("""
            import sys, jray
            jray.init(address=sys.argv[1], namespace="ft")
            print(jray.get(jray.get_actor("keeper").pid.remote(), timeout=60))
        """)
        r = subprocess.run([sys.executable, "-c", find, info["gcs_address"]], env=denv, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert int(r.stdout.strip().splitlines()[-1]) == pid
        r = subprocess.run([*cli, "start", "--head", "--restore"], env=env, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode != 0 and "is running" in r.stderr
        r = subprocess.run([*cli, "stop"], env=env, capture_output=True, text=True, timeout=90)
        assert r.returncode == 0, r.stderr
        assert "GCS supervisor" in r.stdout
    finally:
        for p in recorded:
            try:
                for ch in p.children(recursive=True):
                    ch.kill()
                p.kill()
            except psutil.Error:
                pass
        for path in _store_files(session_dir):
            os.unlink(path)
    deadline = time.monotonic() + 10
    while any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in recorded) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _store_files(session_dir)


def test_raylets_exit_cleanly_when_the_gcs_stays_down(monkeypatch):
    monkeypatch.setenv("JRAY_GCS_LOST_SECONDS", "3")
    monkeypatch.setenv("JRAY_GCS_IN_PROCESS", "0")  # a GCS process of its own, killed alone
    cluster = node.start_head(num_cpus=1, object_store_memory=STORE)  # unsupervised: it stays down
    try:
        extra = node.add_node(cluster, num_cpus=1, object_store_memory=STORE)
        raylets = [n.proc for n in cluster.nodes]
        assert all(p is not None for p in raylets)
        gcs = psutil.Process(cluster.gcs_pid)  # forked by the head raylet (or, JRAY_GCS_FORK=0, by us)
        gcs.kill()
        deadline = time.monotonic() + 10
        while gcs.is_running() and gcs.status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        t0 = time.monotonic()
        codes = [p.wait(20) for p in raylets if p is not None]
        took = time.monotonic() - t0
        assert codes == [0, 0] and 2.5 < took < 15, (codes, took)
        assert not os.path.exists(extra.store_path) and not os.path.exists(cluster.head.store_path)
    finally:
        node.stop_cluster(cluster)
    assert not _store_files(cluster.session_dir)


def test_on_virtual_hosts_the_gcs_restarts_under_a_remote_driver():
    """The head on host a (``jray start --head``), a node on b with the
    actor, the driver on c: the head's GCS is SIGKILLed (inside a, by the
    pid its cluster.json records) and the driver on c never sees it."""
    reason = vh.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with vh.VirtualHosts() as v:
        a, b, c = v.add_host("a"), v.add_host("b"), v.add_host("c")
        address, token = vh.start_head(a, num_cpus=1, object_store_memory=STORE)
        vh.start_node(b, address, token, num_cpus=2, object_store_memory=STORE,
                      extra_args=["--resources", '{"host_b": 1}'])
        env = vh.jray_env(c, JRAY_TOKEN=token)
        drv = c.popen([sys.executable, "-c", DRIVER, address, "8", "host_b"], env=env, text=True,
                      stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            assert drv.stdout is not None and drv.stdin is not None
            ready = json.loads(drv.stdout.readline())
            with open(a.fs_path("/tmp/jray/jray_current_cluster")) as f:
                session = json.load(f)["session_dir"]
            with open(a.fs_path(os.path.join(session, "cluster.json"))) as f:
                gcs_pid = json.load(f)["gcs_pid"]
            time.sleep(1.0)
            assert a.run(["kill", "-9", str(gcs_pid)]).returncode == 0
            t0 = time.monotonic()
            while a.run_python(f"from jray._private import gcs_client; "
                               f"gcs_client.check_alive_at({address!r}, {token!r}, timeout=1)",
                               env=vh.jray_env(a)).returncode != 0:
                assert time.monotonic() - t0 < 15, "the GCS did not come back"
            line = drv.stdout.readline()
            assert line, "the driver died"
            out = json.loads(line)
            assert out["errors"] == [] and out["calls"] == list(range(1, len(out["calls"]) + 1))
            assert out["task"] == 15 and out["new_actor"] == 1 and out["same_pid"]
            got = vh.run_driver_json(c, SECOND.replace("jray.init(address=sys.argv[1], ", "jray.init("),
                                     address, token, timeout=120)
            assert got["pid"] == ready["pid"]
            assert [x for x in got["actors"] if x[1] == "counter"] == [["Counter", "counter", "ALIVE"]]
            drv.stdin.write("\n")
            drv.stdin.flush()
            assert drv.wait(60) == 0
        finally:
            if drv.poll() is None:
                drv.kill()
                drv.wait(10)
            for h in (c, b, a):
                vh.stop_jray(h)
    assert v.leftovers() == []
