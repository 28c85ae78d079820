"""A driver on a machine with no node of the cluster (a client), on its own
"machine": a network namespace with private /tmp and /dev/shm, so nothing
reaches the cluster except over the network. The head runs on host a, a
second node on host b, the client on host c.

Covered: the API from the client (tasks, actors named/detached/async,
the cluster's calls back to the client through its tunnel while nothing on
the client's machine listens on the network,
objects both ways in chunks, wait, cancel, streaming generators, placement
groups, runtime_env uploaded from the client, the state API and the CLI);
no daemon or store on the client's machine; a client killed with SIGKILL
while it owns an actor and objects is released by the cluster; a network
blip shorter than the grace period loses nothing; a large get costs the
client about one copy of the value; connection errors (unreachable address,
refused token, other version).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from jray._private import virtual_hosts as vh


@pytest.fixture(scope="module")
def hosts():
    reason = vh.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with vh.VirtualHosts() as v:
        a, b, c = v.add_host("a"), v.add_host("b"), v.add_host("c")
        address, token = vh.start_head(a, num_cpus=2, object_store_memory=1536 * 1024 * 1024,
                                       extra_args=["--resources", '{"host_a": 4}'])
        vh.start_node(b, address, token, num_cpus=2, extra_args=["--resources", '{"host_b": 4}'])
        yield v, a, b, c, address, token
    assert v.leftovers() == []


API = textwrap.dedent("""
    import asyncio, json, os, socket, sys, time
    import numpy as np
    import jray
    from jray.util.placement_group import placement_group
    from jray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
    from jray.util.state import list_nodes, list_actors

    os.makedirs("/tmp/proj", exist_ok=True)
    with open("/tmp/proj/client_code.py", "w") as f:
        f.write("WHERE = 'written on the client'\\n")
    jray.init(runtime_env={"working_dir": "/tmp/proj"})
    out = {}

    @jray.remote
    def host():
        import client_code
        return socket.gethostname(), client_code.WHERE

    out["hosts"] = sorted({h for h, _ in jray.get([host.options(resources={f"host_{x}": 1}).remote()
                                                     for x in "ab"])})
    out["code"] = jray.get(host.remote())[1]

    @jray.remote
    class Counter:
        def __init__(self): self.n = 0
        def inc(self): self.n += 1; return self.n

    named = Counter.options(name="client-named", lifetime="detached").remote()
    jray.get(named.inc.remote())
    out["named"] = jray.get(jray.get_actor("client-named").inc.remote())

    @jray.remote
    class Async:
        async def twice(self, x):
            await asyncio.sleep(0.01)
            return 2 * x

    aa = Async.remote()
    out["async"] = sorted(jray.get([aa.twice.remote(i) for i in range(5)]))

    # objects both ways: a 200 MB array put here and summed on b; a 100 MB result read back here
    arr = np.arange(25_000_000, dtype=np.float64)
    ref = jray.put(arr)

    @jray.remote(resources={"host_b": 1})
    def total(x): return float(x.sum()), socket.gethostname()

    out["total"] = jray.get(total.remote(ref))[0] == float(arr.sum())

    @jray.remote(resources={"host_b": 1})
    def make(n): return np.full(n, 7, dtype=np.uint8)

    big = jray.get(make.remote(100_000_000))
    out["big"] = [int(big[0]), int(big[-1]), big.nbytes, big.flags.writeable]
    out["roundtrip"] = bool((jray.get(ref) == arr).all())

    @jray.remote
    def slow(i): time.sleep(0.2 * i); return i

    refs = [slow.remote(i) for i in range(4)]
    ready, rest = jray.wait(refs, num_returns=2, timeout=30)
    out["wait"] = [len(ready), len(rest)]

    @jray.remote
    def forever(): time.sleep(600)

    victim = forever.remote()
    time.sleep(0.5)
    jray.cancel(victim, force=True)
    try:
        jray.get(victim, timeout=30)
        out["cancel"] = "not cancelled"
    except (jray.exceptions.TaskCancelledError, jray.exceptions.WorkerCrashedError) as e:
        out["cancel"] = type(e).__name__

    @jray.remote(num_returns="streaming")
    def gen(n):
        for i in range(n):
            yield i * i

    out["stream"] = [jray.get(r) for r in gen.remote(4)]

    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
    jray.get(pg.ready(), timeout=30)
    out["pg"] = sorted(jray.get([host.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, i))
                                 .remote() for i in range(2)]))[0][0] != ""
    out["nodes"] = len(list_nodes())
    out["actors"] = sorted({a["class_name"] for a in list_actors() if a["state"] == "ALIVE"})
    out["node_of_driver"] = jray.get_runtime_context().get_node_id()
    out["pids_here"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    out["shm_here"] = os.listdir("/dev/shm")
    print(json.dumps(out))
""")


def test_the_api_from_a_client(hosts):
    v, a, b, c, address, token = hosts
    out = vh.run_driver_json(c, API, address, token, timeout=240)
    assert out["hosts"] == ["a", "b"]  # the client's machine runs nothing
    assert out["code"] == "written on the client"
    assert out["named"] == 2 and out["async"] == [0, 2, 4, 6, 8]
    assert out["total"] is True and out["roundtrip"] is True
    assert out["big"] == [7, 7, 100_000_000, False]
    assert out["wait"] == [2, 2]
    assert out["cancel"] in ("TaskCancelledError", "WorkerCrashedError")
    assert out["stream"] == [0, 1, 4, 9]
    assert out["pg"] is True and out["nodes"] == 2
    assert {"Counter", "Async"} <= set(out["actors"])
    assert out["shm_here"] == []  # no store on the client's machine
    # the client's host ran only its driver (pid 1 is the host's keeper, 2+ the driver's own)
    assert len(out["pids_here"]) <= 3, out["pids_here"]
    # the CLI from the client's machine
    res = c.run([*vh.CLI, "list", "actors", "--format", "json"],
                env=vh.jray_env(c, JRAY_ADDRESS=address, JRAY_TOKEN=token), timeout=60)
    assert res.returncode == 0, res.stderr
    assert any(r["name"] == "client-named" for r in json.loads(res.stdout))


CALLBACKS = textwrap.dedent("""
    import json, psutil, jray
    import numpy as np
    jray.init()
    from jray._private.worker import global_state

    @jray.remote
    def borrow(refs):  # a borrower on the cluster asks the owner (here) about the ref
        return float(jray.get(refs[0], timeout=30).sum())

    @jray.remote
    def shout():
        print("output from the cluster")
        return 1

    @jray.remote(num_returns="streaming")
    def gen(n):
        for i in range(n):
            yield i

    ref = jray.put(np.ones(300_000))  # 2.4 MB: in the head's store, owned here
    w = global_state.worker
    out = {"borrow": jray.get(borrow.remote([ref]), timeout=60), "shout": jray.get(shout.remote(), timeout=60),
           "stream": [jray.get(r, timeout=30) for r in gen.remote(3)],
           "address": [w.me.ip, w.me.port, w.host_ip],
           "listening": sorted({c.laddr.ip for c in psutil.net_connections(kind="tcp")
                                if c.status == psutil.CONN_LISTEN})}
    print(json.dumps(out))
""")


def test_the_cluster_reaches_the_client_through_its_tunnel(hosts):
    """The client's machine accepts no connection (as behind NAT): nothing on
    it listens on a network address, yet borrowers, output lines and
    streamed items reach the driver, through its home raylet's port."""
    v, a, b, c, address, token = hosts
    res = vh.run_driver(c, CALLBACKS, address, token, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["borrow"] == 300_000.0 and out["shout"] == 1 and out["stream"] == [0, 1, 2]
    assert "output from the cluster" in res.stdout + res.stderr
    assert out["address"][0] == a.ip and out["address"][2] == c.ip  # reached at the head; lives on c
    assert all(ip in ("127.0.0.1", "::1", "::ffff:127.0.0.1") for ip in out["listening"]), out["listening"]


OWNER = textwrap.dedent("""
    import sys, numpy as np, jray
    jray.init()

    @jray.remote
    class Held:
        def ping(self): return "pong"

    h = Held.options(name=sys.argv[1]).remote()
    jray.get(h.ping.remote())
    ref = jray.put(np.ones(5_000_000, dtype=np.float64))  # 40 MB in the head's store, owned here
    print(ref.hex(), flush=True)
    print("ready", flush=True)
    for line in sys.stdin:  # until killed: each line asks for the actor and the object again
        print(jray.get(h.ping.remote(), timeout=30), float(jray.get(ref, timeout=30).sum()), flush=True)
""")

STATE = textwrap.dedent("""
    import json, jray
    from jray.util.state import list_actors, list_objects, list_jobs
    jray.init()
    actors = [a["state"] for a in list_actors(detail=True) if a["name"] == %r]
    objects = [o["object_id"] for o in list_objects()]
    jobs = [j["status"] for j in list_jobs() if j["driver_ip"] == %r]
    print(json.dumps({"actor": actors, "objects": objects, "jobs": jobs}))
""")


def _start_owner(c, address, token, name):
    proc = c.popen([sys.executable, "-c", OWNER, name], env=vh.jray_env(c, JRAY_ADDRESS=address, JRAY_TOKEN=token),
                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    oid = proc.stdout.readline().strip()
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()[-2000:]
    return proc, oid


def test_a_killed_client_is_released(hosts):
    v, a, b, c, address, token = hosts
    proc, oid = _start_owner(c, address, token, "killed-client-actor")
    state = STATE % ("killed-client-actor", c.ip)
    before = vh.run_driver_json(a, state, address, token)
    assert before["actor"] == ["ALIVE"] and oid in before["objects"] and "RUNNING" in before["jobs"]
    killed = time.monotonic()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    _close(proc)
    deadline = killed + 30
    while True:
        now = vh.run_driver_json(a, state, address, token)
        if now["actor"] == ["DEAD"] and oid not in now["objects"] and "RUNNING" not in now["jobs"]:
            break
        assert time.monotonic() < deadline, f"30 s after the client's SIGKILL: {now}"
        time.sleep(0.5)


def test_a_network_blip_loses_nothing(hosts):
    v, a, b, c, address, token = hosts
    proc, oid = _start_owner(c, address, token, "blip-client-actor")
    try:
        c.link_down()
        time.sleep(5)  # well under the 30 s grace period
        c.link_up()
        time.sleep(1)
        now = vh.run_driver_json(a, STATE % ("blip-client-actor", c.ip), address, token)
        assert now["actor"] == ["ALIVE"] and oid in now["objects"] and "RUNNING" in now["jobs"]
        proc.stdin.write("again\n")
        proc.stdin.flush()
        assert proc.stdout.readline().split() == ["pong", "5000000.0"]  # the client carries on
    finally:
        c.link_up()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        _close(proc)


def _close(proc) -> None:
    for f in (proc.stdin, proc.stdout, proc.stderr):
        if f is not None:
            f.close()


BIG_GET = textwrap.dedent("""
    import json, resource, numpy as np, jray
    jray.init()

    @jray.remote
    def make(n): return np.ones(n, dtype=np.uint8)

    ref = make.remote(1 << 30)
    jray.wait([ref], timeout=120)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    x = jray.get(ref, timeout=120)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"n": int(x.size), "ok": bool(x[0] == 1 and x[-1] == 1), "grew": peak - base}))
""")


def test_a_1gib_result_costs_the_client_one_copy(hosts):
    v, a, b, c, address, token = hosts
    out = vh.run_driver_json(c, BIG_GET, address, token, timeout=240)
    assert out["n"] == 1 << 30 and out["ok"] is True
    assert out["grew"] < 1.25 * (1 << 30), out  # one buffer of the value, chunks streamed into it


def test_connection_errors_are_clear_and_quick(hosts):
    v, a, b, c, address, token = hosts
    t0 = time.monotonic()
    res = vh.run_driver(c, "import jray; jray.init()", f"{b.ip}:6399", token, timeout=60)
    assert res.returncode != 0 and f"{b.ip}:6399" in res.stderr and "ConnectionError" in res.stderr
    assert time.monotonic() - t0 < 20  # refused at once; the interpreter start counts too
    res = vh.run_driver(c, "import jray; jray.init()", address, "not-the-token", timeout=60)
    assert res.returncode != 0 and "AuthenticationError" in res.stderr and "refused this token" in res.stderr
    old = ("import jray, jray._private.version as v; v.__version__ = '0.0.0-other'; "
           "jray.init()")
    res = vh.run_driver(c, old, address, token, timeout=60)
    assert res.returncode != 0 and "Version mismatch" in res.stderr and "0.0.0-other" in res.stderr
    res = vh.run_driver(c, f"import jray; jray.init('jray://{address}')", address, token, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]


def test_an_address_that_does_not_answer_fails_within_10_s(hosts):
    v, a, b, c, address, token = hosts
    nobody = str(v.network.network_address + 250)  # on the hosts' network, no host there
    t0 = time.monotonic()
    res = vh.run_driver(c, "import jray; jray.init()", f"{nobody}:6379", token, timeout=60)
    took = time.monotonic() - t0
    assert res.returncode != 0 and f"{nobody}:6379" in res.stderr and "within 10 s" in res.stderr, res.stderr
    assert took < 20, took  # 10 s of waiting, plus the interpreter's start
