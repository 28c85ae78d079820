"""A cluster with mutual TLS across "machines" (network namespaces with
private /tmp and /dev/shm): the head started with ``jray start --head --tls``
on host a, a node joining from host b and a client driving from host c,
each with a copy of the head's TLS directory (``JRAY_TLS_DIR``).

Covered: the whole path works over TLS (tasks on both nodes, an actor,
objects of tens of MB both ways, the CLI); every port any process of the
cluster listens on speaks TLS and nothing else; a process without the
certificate, or with one of another CA, gets a clear error at once and the
cluster carries on; a node without TLS cannot join.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
import time

import pytest

from jray._private import virtual_hosts as vh

CERTS = "/tmp/cluster-tls"  # where hosts b and c keep their copy


@pytest.fixture(scope="module")
def hosts():
    reason = vh.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with vh.VirtualHosts() as v:
        a, b, c = v.add_host("a"), v.add_host("b"), v.add_host("c")
        address, token = vh.start_head(a, num_cpus=2, extra_args=["--tls", "--resources", '{"host_a": 4}'])
        src = a.fs_path("/tmp/jray/tls")
        for h in (b, c):
            shutil.copytree(src, h.fs_path(CERTS))
        vh.start_node(b, address, token, num_cpus=2, extra_args=["--resources", '{"host_b": 4}'],
                      env={"JRAY_TLS_DIR": CERTS})
        yield v, a, b, c, address, token
    assert v.leftovers() == []


WORK = textwrap.dedent("""
    import json, socket
    import numpy as np
    import jray
    jray.init()

    @jray.remote
    def where(x): return socket.gethostname(), float(x.sum())

    arr = np.arange(5_000_000, dtype=np.float64)  # 40 MB, client -> nodes
    ref = jray.put(arr)
    got = jray.get([where.options(resources={f"host_{h}": 1}).remote(ref) for h in "ab"])

    @jray.remote(resources={"host_b": 1})
    def make(): return np.full(30_000_000, 3, dtype=np.uint8)  # 30 MB, node b -> client

    @jray.remote
    class Acc:
        def __init__(self): self.n = 0
        def add(self, k): self.n += k; return self.n

    acc = Acc.remote()
    jray.get([acc.add.remote(i) for i in range(10)])
    big = jray.get(make.remote())
    print(json.dumps({"hosts": sorted(h for h, _ in got), "sums": [s == float(arr.sum()) for _, s in got],
                      "big": [int(big.sum()), big.nbytes], "actor": jray.get(acc.add.remote(0))}))
""")


def test_a_client_works_over_mutual_tls(hosts):
    _v, _a, _b, c, address, token = hosts
    out = vh.run_driver_json(c, WORK, address, token, timeout=120, env={"JRAY_TLS_DIR": CERTS})
    assert len(out["hosts"]) == 2 and out["sums"] == [True, True]
    assert out["big"] == [90_000_000, 30_000_000]
    assert out["actor"] == 45
    res = c.run([*vh.CLI, "status", "--address", address], timeout=60,
                env=vh.jray_env(c, JRAY_TOKEN=token, JRAY_TLS_DIR=CERTS))
    assert res.returncode == 0, res.stderr
    assert "2 nodes alive" in res.stdout


LISTENING = textwrap.dedent("""
    import json, psutil
    ports = sorted({c.laddr.port for c in psutil.net_connections(kind="tcp")
                    if c.status == psutil.CONN_LISTEN and c.laddr.ip not in ("127.0.0.1", "::1")})
    print(json.dumps(ports))
""")

PROBE = textwrap.dedent("""
    import json, socket, sys
    from jray._private import tls
    out = {}
    for port in json.loads(sys.argv[1]):
        addr = f"{sys.argv[2]}:{port}"
        plain = b""
        try:
            with socket.create_connection((sys.argv[2], port), timeout=5) as s:
                s.settimeout(5)
                s.sendall(b"PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n" + bytes(9))  # gRPC's / HTTP/2's preface
                plain = s.recv(64)
        except OSError:
            pass
        # a plaintext server answers the preface with an HTTP/2 frame (SETTINGS: type 4 at byte 3)
        out[port] = {"tls": tls.speaks_tls(addr), "http2_answer": len(plain) >= 9 and plain[3] == 4}
    print(json.dumps(out))
""")


def test_every_port_of_every_machine_speaks_only_tls(hosts):
    _v, a, b, c, _address, _token = hosts
    checked = 0
    for h in (a, b):
        res = h.run_python(LISTENING, timeout=60)
        assert res.returncode == 0, res.stderr
        ports = json.loads(res.stdout.strip().splitlines()[-1])
        assert len(ports) >= 3, ports  # (head) GCS, raylet gRPC, raylet direct, workers' ports
        res = c.run([sys.executable, "-c", PROBE, json.dumps(ports), h.ip], env=vh.jray_env(c), timeout=120)
        assert res.returncode == 0, res.stderr
        for port, seen in json.loads(res.stdout.strip().splitlines()[-1]).items():
            assert seen == {"tls": True, "http2_answer": False}, (h.name, port, seen)
            checked += 1
    print(f"{checked} listening ports on 2 machines: TLS only")


NO_TLS = textwrap.dedent("""
    import time, jray
    t0 = time.monotonic()
    try:
        jray.init()
        print("connected")
    except Exception as e:
        print(type(e).__name__, "|", e, "|", round(time.monotonic() - t0, 1))
""")


def test_without_the_clusters_certificate_nothing_connects(hosts):
    _v, _a, _b, c, address, token = hosts
    # no TLS at all
    res = vh.run_driver(c, NO_TLS, address, token, timeout=60)
    line = res.stdout.strip().splitlines()[-1]
    assert line.startswith("ConnectionError"), res.stdout + res.stderr
    assert "uses TLS and this process does not" in line and "JRAY_TLS_DIR" in line
    assert float(line.rsplit("|", 1)[1]) < 10
    # a certificate of another CA
    res = c.run_python("from jray._private import tls; tls.generate('/tmp/other-ca')", timeout=60)
    assert res.returncode == 0, res.stderr
    res = vh.run_driver(c, NO_TLS, address, token, timeout=60, env={"JRAY_TLS_DIR": "/tmp/other-ca"})
    line = res.stdout.strip().splitlines()[-1]
    assert line.startswith("ConnectionError") and "TLS handshake" in line, res.stdout + res.stderr
    assert "same CA" in line and float(line.rsplit("|", 1)[1]) < 10
    # a node without TLS cannot join
    res = c.run([*vh.CLI, "start", "--address", address, "--node-ip-address", c.ip, "--num-cpus", "1"],
                env=vh.jray_env(c, JRAY_TOKEN=token), timeout=60)
    assert res.returncode != 0 and "uses TLS" in (res.stdout + res.stderr), res.stdout + res.stderr
    assert not c.processes() or all("raylet" not in _cmdline(p) for p in c.processes())
    # the cluster carries on
    out = vh.run_driver_json(c, WORK, address, token, timeout=120, env={"JRAY_TLS_DIR": CERTS})
    assert out["actor"] == 45


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_the_head_machines_drivers_find_tls_in_the_address_file(hosts):
    """On the head's machine nobody sets JRAY_TLS_DIR: jray.init("auto") and
    the CLI read it from the session the address file names."""
    _v, a, _b, _c, _address, _token = hosts
    script = textwrap.dedent("""
        import jray
        jray.init("auto")
        @jray.remote
        def seven(): return 7
        print(jray.get(seven.remote()))
    """)
    t0 = time.monotonic()
    res = a.run_python(script, timeout=120,
                       env={k: v for k, v in vh.jray_env(a).items() if not k.startswith("JRAY_TLS")})
    assert res.returncode == 0 and res.stdout.strip().splitlines()[-1] == "7", res.stdout + res.stderr
    res = a.run([*vh.CLI, "list", "nodes"], env=vh.jray_env(a), timeout=60)
    assert res.returncode == 0 and res.stdout.count("ALIVE") == 2, res.stdout + res.stderr
    assert os.path.exists(a.fs_path("/tmp/jray/tls/node.key"))
    print(f"head-machine driver and CLI over TLS in {time.monotonic() - t0:.1f} s")
