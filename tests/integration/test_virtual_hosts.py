"""Several machines on one box (``jray._private.virtual_hosts``): hosts reach
each other only over their network, their /tmp, /dev/shm and processes are
private, a partition cuts a host off; and a jray cluster of three hosts
spreads tasks over them and moves objects between their stores. Skipped
where namespaces cannot be made (not root, no ``ip``/``unshare``/``nsenter``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from jray._private import virtual_hosts as vh

# A TCP server in a host: accepts connections and answers each with its hostname.
SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen()
print("listening", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(socket.gethostname().encode())
    c.close()
"""

CLIENT = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])) as c:
        print(c.recv(100).decode())
except OSError as e:
    print("error", type(e).__name__)
"""


@pytest.fixture(autouse=True)
def _need_hosts():
    reason = vh.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


def serve(host: vh.Host, bind: str, port: int) -> subprocess.Popen:
    p = host.popen([sys.executable, "-c", SERVER, bind, str(port)], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline() == "listening\n"
    return p


def ask(host: vh.Host, ip: str, port: int, timeout: float = 2.0) -> str:
    res = host.run([sys.executable, "-c", CLIENT, ip, str(port), str(timeout)], timeout=30)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def ask_from_root(ip: str, port: int, timeout: float = 2.0) -> str:
    try:
        with socket.create_connection((ip, port), timeout=timeout) as c:
            return c.recv(100).decode()
    except OSError as e:
        return f"error {type(e).__name__}"


def root_shm() -> set[str]:
    return {f for f in os.listdir("/dev/shm") if f.startswith("jray-")}


def test_hosts_share_only_the_network():
    with vh.VirtualHosts() as v:
        a, b = v.add_host("a"), v.add_host("b")
        assert a.ip != b.ip and a.ip.rsplit(".", 1)[0] == b.ip.rsplit(".", 1)[0]
        serve(a, "0.0.0.0", 7000)
        serve(b, "0.0.0.0", 7000)  # the same port: separate network stacks
        serve(a, "127.0.0.1", 7001)
        # Hosts reach each other by IP, the root namespace reaches both.
        assert ask(a, b.ip, 7000) == "b"
        assert ask(b, a.ip, 7000) == "a"
        assert ask_from_root(a.ip, 7000) == "a"
        # Loopback is up inside each host and private to it.
        assert ask(a, "127.0.0.1", 7001) == "a"
        assert ask(b, "127.0.0.1", 7001) == "error ConnectionRefusedError"

        # /tmp and /dev/shm are private; the root namespace sees them only through fs_path.
        tag = f"vh-{os.getpid()}"
        res = a.run(["sh", "-c", f"echo A > /tmp/{tag} && echo A > /dev/shm/{tag} && hostname && ls /proc"])
        assert res.returncode == 0, res.stderr
        assert res.stdout.split()[0] == "a"
        pids_in_a = [p for p in res.stdout.split()[1:] if p.isdigit()]
        # Its own pid namespace: the keeper (pid 1), the two servers, sh (and ls).
        assert "1" in pids_in_a and len(pids_in_a) <= 5, pids_in_a
        res = b.run(["sh", "-c", f"hostname; ls /tmp/{tag} || ls /dev/shm/{tag}"])
        assert res.returncode != 0 and res.stdout.strip() == "b" and "No such file" in res.stderr
        assert not os.path.exists(f"/tmp/{tag}") and not os.path.exists(f"/dev/shm/{tag}")
        with open(a.fs_path(f"/tmp/{tag}")) as f:
            assert f.read() == "A\n"

        # A partition: the host's link down, nothing reaches it nor leaves it; up again, all is back.
        b.link_down()
        assert ask(a, b.ip, 7000, timeout=0.5) == "error TimeoutError"
        assert ask(b, a.ip, 7000, timeout=0.5).startswith("error")
        assert ask_from_root(b.ip, 7000, timeout=0.5) == "error TimeoutError"
        assert ask(b, "127.0.0.1", 7001) == "error ConnectionRefusedError"  # still has its loopback
        b.link_up()
        assert ask(a, b.ip, 7000) == "b"

        # Power loss: every process in the host killed, its memory (/dev/shm) lost, its disk (/tmp) kept.
        sleeper = a.popen(["sleep", "300"])
        assert len(a.processes()) == 3  # two servers and the sleeper
        a.power_off()
        assert a.processes() == [] and sleeper.wait(5) == -9
        assert ask(b, a.ip, 7000, timeout=0.5) == "error TimeoutError"
        assert os.listdir(a.fs_path("/dev/shm")) == [] and os.path.exists(a.fs_path(f"/tmp/{tag}"))
        a.power_on()
        serve(a, "0.0.0.0", 7000)
        assert ask(b, a.ip, 7000) == "a"
        # terminate() reaches the process inside the host, not just the nsenter before it.
        sleeper = b.popen(["sleep", "300"])
        sleeper.terminate()
        assert sleeper.wait(5) == -15
        assert b.run_python("import socket; print(socket.gethostname())").stdout == "b\n"
    assert v.leftovers() == []
    v.close()  # idempotent
    assert v.leftovers() == []


def _connect_and_read(ip: str, port: int, timeout: float = 5) -> str:
    """Python code that connects to ``ip:port``, reads the greeting and prints the seconds it took."""
    return f"""
import socket, time
t = time.monotonic()
socket.create_connection(({ip!r}, {port}), timeout={timeout}).recv(10)
print(time.monotonic() - t)
"""


def test_netem_delays_or_says_why_not():
    """Delay and loss on a host's link: the kernel's netem where it has one,
    else jray's userspace delay line; both grow every round trip with that
    host, and taking the emulation off gives the plain link back."""
    with vh.VirtualHosts() as v:
        a, b = v.add_host("a"), v.add_host("b")
        if vh.delay_unavailable_reason() is not None:
            with pytest.raises(RuntimeError, match="netem"):
                b.netem(delay_ms=50)
            return
        serve(b, "0.0.0.0", 7000)
        code = _connect_and_read(b.ip, 7000)
        fast = float(a.run_python(code).stdout)
        b.netem(delay_ms=100)
        slow = float(a.run_python(code).stdout)
        # A host added while the emulation runs is reached through it too (both ways).
        c = v.add_host("c")
        serve(c, "0.0.0.0", 7001)
        to_c = _connect_and_read(c.ip, 7001)
        b_to_c = float(b.run_python(to_c).stdout)
        a_to_c = float(a.run_python(to_c).stdout)
        b.netem()
        back = float(a.run_python(code).stdout)
        assert slow > fast + 0.3, (fast, slow)  # connect and reply: two round trips of 200 ms at least
        assert b_to_c > 0.3 and a_to_c < 0.3, (b_to_c, a_to_c)  # only b's link is slowed
        assert back < 0.3, back
        # All of it lost: a partition while it lasts, the link whole again after.
        b.netem(loss_pct=100)
        cut = a.run_python(_connect_and_read(b.ip, 7000, timeout=1))
        b.netem()
        assert cut.returncode != 0 and "timed out" in cut.stderr, cut.stderr[-500:]
        assert float(a.run_python(code).stdout) < 0.3
        with pytest.raises(ValueError, match="loss_pct"):
            b.netem(loss_pct=150)
    assert v.leftovers() == []
    # The emulation's own parts are gone with it (the delay line runs outside the hosts).
    assert b._delay_line is None


def test_delay_line_stands_in_for_netem_where_the_kernel_has_none():
    """jray's userspace delay line (a TUN device) on its own, even where the
    kernel has netem: a host's round trips grow by twice the delay."""
    if vh.unavailable_reason() is not None:
        pytest.skip(vh.unavailable_reason())
    if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        pytest.skip("no /dev/net/tun")
    from jray.bench.network import ping_rtt_ms
    with vh.VirtualHosts() as v:
        a, b = v.add_host("a"), v.add_host("b")
        base = ping_rtt_ms(a, b)
        b._set_delay_line(20.0, 0.0)
        try:
            slowed = ping_rtt_ms(a, b), ping_rtt_ms(b, a)
            assert "jdelay0" in vh._sh("ip", "-n", b.netns, "link").stdout
        finally:
            b._stop_delay_line()
        after = ping_rtt_ms(a, b)
        assert "jdelay0" not in vh._sh("ip", "-n", b.netns, "link").stdout
    assert all(x >= 20.0 for x in slowed), (base, slowed)
    assert after < 20.0, (base, after)
    assert v.leftovers() == []


DRIVER_SPREAD = """
import json, os, socket, time
import jray
jray.init()

@jray.remote(num_cpus=1)
def where():
    time.sleep(0.2)
    return socket.gethostname(), os.environ["JRAY_NODE_IP"]

# SPREAD picks among the nodes in the head raylet's view, which the GCS
# updates as nodes join (within 0.25 s): wait for all three there first.
deadline = time.time() + 30
while sum(n["Alive"] for n in jray.nodes()) < 3 and time.time() < deadline:
    time.sleep(0.1)
time.sleep(0.6)
spread = jray.get([where.options(scheduling_strategy="SPREAD").remote() for _ in range(6)])
pinned = {h: jray.get(where.options(resources={"host_" + h: 1}).remote()) for h in "abc"}
nodes = sorted(n["NodeManagerAddress"] for n in jray.nodes() if n["Alive"])
print(json.dumps({"spread": spread, "pinned": pinned, "nodes": nodes,
                  "driver_node": jray.get_runtime_context().get_node_id()}))
"""

DRIVER_OBJECTS = """
import json, socket
import numpy as np
import jray
jray.init()

@jray.remote(resources={"host_b": 1})
def make(n):
    return np.arange(n, dtype=np.int64)  # 8 MB: in b's store, pulled by whoever reads it

@jray.remote(resources={"host_b": 1})
def total(x):
    return socket.gethostname(), int(x.sum())

@jray.remote(resources={"host_b": 1})
def total_nested(refs):
    return int(jray.get(refs[0]).sum())  # b asks the owner, this driver on c, where the object is

x = jray.get(make.remote(1_000_000))
mine = jray.put(np.ones(1_000_000, dtype=np.int64))  # owned here (host c), read on b
small = jray.put(np.ones(10, dtype=np.int64))
print(json.dumps({"sum": int(x.sum()), "readonly": not x.flags.writeable,
                  "on_b": jray.get(total.remote(mine)),
                  "nested": jray.get([total_nested.remote([mine]), total_nested.remote([small])], timeout=20),
                  "driver_node": jray.get_runtime_context().get_node_id()}))
"""


def test_three_host_cluster():
    shm_before = root_shm()
    with vh.VirtualHosts() as v:
        a, b, c, d = (v.add_host(n) for n in "abcd")
        address, token = vh.start_head(a, extra_args=["--resources", '{"host_a": 1}'])
        assert address == f"{a.ip}:6379"
        node_b = vh.start_node(b, address, token, extra_args=["--resources", '{"host_b": 1}'])
        node_c = vh.start_node(c, address, token, extra_args=["--resources", '{"host_c": 1}'])

        out = vh.run_driver_json(a, DRIVER_SPREAD, address, token)
        assert {h for h, _ in out["spread"]} == {"a", "b", "c"}
        ips = {"a": a.ip, "b": b.ip, "c": c.ip}
        assert all(ip == ips[h] for h, ip in out["spread"])
        assert out["pinned"] == {h: [h, ips[h]] for h in "abc"}
        assert out["nodes"] == sorted(ips.values())
        assert out["driver_node"] not in (node_b, node_c)  # the head's: the node on the driver's machine

        # A driver on c (JRAY_ADDRESS names the head) uses c's node; objects cross stores both ways.
        out = vh.run_driver_json(c, DRIVER_OBJECTS, address, token)
        assert out == {"sum": 499999500000, "readonly": True, "on_b": ["b", 1_000_000], "nested": [1_000_000, 10],
                       "driver_node": node_c}

        # A machine without a node drives the cluster as a client: its objects live in the head's store.
        head_node = vh.run_driver_json(a, DRIVER_OBJECTS, address, token)["driver_node"]
        out = vh.run_driver_json(d, DRIVER_OBJECTS, address, token)
        assert out == {"sum": 499999500000, "readonly": True, "on_b": ["b", 1_000_000], "nested": [1_000_000, 10],
                       "driver_node": head_node}
        assert not os.listdir(d.fs_path("/dev/shm"))  # no store on the client's machine

        # The daemons run detached inside the hosts; their stores are in the hosts' /dev/shm only.
        assert b.processes() and any(f.startswith("jray-") for f in os.listdir(b.fs_path("/dev/shm")))
        assert root_shm() == shm_before
        started = time.monotonic()
    assert time.monotonic() - started < 5  # close() kills what jray start daemonized, quickly
    assert v.leftovers() == []
    assert root_shm() == shm_before

