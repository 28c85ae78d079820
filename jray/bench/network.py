"""Between machines: object transfer and remote tasks on two "machines" on
one box, jray and Ray 2.60 on the same setup (issue 19).

Hosts of :mod:`jray._private.virtual_hosts` (network namespaces on a
bridge, each with private ``/tmp`` and ``/dev/shm``): the head on host A,
a second node on host B, each with 2 CPUs and a 3 GiB object store, and a
host C with no node for the client rows. For
Ray: ``ray start --head`` in A and ``ray start --address`` in B with the
Ray virtualenv's ``ray``; for jray: ``jray start`` the same way. Figures:

- **transfer** of a numpy array of 100 MB and 1 GiB from A to B: a task
  pinned to A (node affinity) returns it; a driver on B waits for it with
  ``fetch_local=False`` and the clock runs over its ``get`` (B's node pulls
  the object into its store; the driver maps it). GB/s, one warm-up, then
  ``reps``; the first transfer of the largest size (B's store pages not yet
  touched) is reported apart;
- the **raw link** next to it: the same byte count over one TCP connection
  between the namespaces, Python sockets with 4 MiB buffers (``sendall`` /
  ``recv_into`` a reused buffer, as ``iperf`` does), A→B and B→A;
- **receiving-node memory** during that first transfer of the largest size:
  every 10 ms, B's ``/dev/shm`` in use (its private tmpfs: ``statvfs``
  through the host's root) plus the private memory (``RssAnon``) of every
  process on B (the raylet's shown apart); the peak less the value just
  before the ``get``, less the object's size: what B holds beyond one copy;
- **remote tasks**: a driver on A runs no-op tasks pinned to B: round trip
  (``get(f.remote())`` in a loop) and tasks/s (``n`` submitted, then one
  ``get``); again at 1 ms and 10 ms RTT added to B's link: ``tc netem``
  where the kernel has it, else jray's userspace delay line (a TUN device
  that holds B's outgoing packets, :mod:`jray._private.delay_line`); the
  rows name which, and say "not run" and why where neither can run. The
  TCP round trip measured under each emulation is reported beside it;
- **a client off the cluster** (a notebook on a laptop): a driver on a third
  host C with no node (jray: ``JRAY_ADDRESS``/``JRAY_TOKEN``; Ray: Ray
  Client, ``ray://A:10001``), no-op tasks anywhere: round trip and tasks/s,
  with no shaping and at 1 ms / 10 ms RTT on C's link.

Needs root (namespaces). Run it as ``python bench/network.py`` with jray's
interpreter. Like the rest of ``jray.bench`` it imports nothing from jray at
module level; :func:`run` imports the harness.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

MB = 1000**2
MIB = 1024**2
GIB = 1024**3
STORE_BYTES = 3 * GIB  # each node's object store: a 1 GiB object, the next one, room to spare
NODE_CPUS = 2
RAW_PORT = 5201
RAY_GCS_PORT = 6379
NETEM_RTTS_MS = (1.0, 10.0)  # the round trips the netem rows emulate
MEM_SAMPLE_S = 0.01
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RAY_PYTHON = os.path.join(ROOT, ".venv-ray", "bin", "python")

# Targets (issue 19): jray/Ray and jray/raw link of a transfer's GB/s; the
# receiving node's memory beyond one copy; tasks/s at 10 ms RTT over 0 ms.
TARGET_VS_RAY = 1.5
TARGET_VS_LINK = 0.7
TARGET_EXTRA_MIB = 256.0
TARGET_RTT10_KEEP = 0.5


# -- scripts run inside the hosts (any Python with the runtime and numpy) -------------------

# argv: "send"|"recv", ip, port, nbytes, reps. The receiver connects, starts
# the clock, sends one byte; the sender answers with nbytes; the receiver
# stops the clock at the last byte and acknowledges. One line of JSON: seconds.
RAW_LINK = r"""
import json, socket, sys, time
role, ip, port, n, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
BUF = 4 << 20
def tune(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUF)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUF)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
buf = bytearray(BUF)
mv = memoryview(buf)
if role == "send":
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tune(srv)
    srv.bind((ip, port))
    srv.listen(1)
    print("listening", flush=True)
    for _ in range(reps):
        c, _ = srv.accept()
        tune(c)
        c.recv(1)
        left = n
        while left:
            k = min(left, BUF)
            c.sendall(mv[:k])
            left -= k
        c.recv(1)
        c.close()
else:
    out = []
    for _ in range(reps):
        for _try in range(100):
            try:
                s = socket.create_connection((ip, port), timeout=60)
                break
            except OSError:
                time.sleep(0.05)
        tune(s)
        t0 = time.perf_counter()
        s.sendall(b"g")
        got = 0
        while got < n:
            k = s.recv_into(mv, min(BUF, n - got))
            if not k:
                raise SystemExit("connection closed early")
            got += k
        out.append(time.perf_counter() - t0)
        s.sendall(b"k")
        s.close()
    print(json.dumps(out), flush=True)
"""

# argv: "echo"|"ping", ip, port. 200 one-byte round trips; prints the median in ms.
TCP_PING = r"""
import socket, statistics, sys, time
role, ip, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if role == "echo":
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((ip, port))
    srv.listen(1)
    print("listening", flush=True)
    c, _ = srv.accept()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while c.recv(1):
        c.sendall(b"p")
else:
    s = socket.create_connection((ip, port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out = []
    for _ in range(200):
        t0 = time.perf_counter()
        s.sendall(b"p")
        s.recv(1)
        out.append((time.perf_counter() - t0) * 1e3)
    s.close()
    print(statistics.median(out), flush=True)
"""

# Shared by both drivers: the runtime, init, the nodes by address.
_PRELUDE = r"""
import importlib, json, sys, time
cfg = json.loads(sys.argv[1])
rt = importlib.import_module(cfg["runtime"])
NodeAffinity = importlib.import_module(cfg["runtime"] + ".util.scheduling_strategies").NodeAffinitySchedulingStrategy
rt.init(address=cfg["address"], log_to_driver=False)
def node_of(ip):
    deadline = time.monotonic() + 60
    while True:
        ids = [n["NodeID"] for n in rt.nodes() if n["Alive"] and n["NodeManagerAddress"] == ip]
        if ids:
            return ids[0]
        if time.monotonic() > deadline:
            raise SystemExit(f"no live node at {ip}: {rt.nodes()}")
        time.sleep(0.2)
def emit(**kw):
    print(json.dumps(kw), flush=True)
"""

# On B: objects made on A, got here. Before the memory-measured transfer it
# prints {"mem": "ready"} and waits for a line on stdin (the sampler runs).
TRANSFER_DRIVER = _PRELUDE + r"""
import numpy as np
on_a = NodeAffinity(node_of(cfg["a_ip"]), soft=False)

@rt.remote(num_cpus=1)
def make(n):
    a = np.empty(n, dtype=np.uint8)
    a[::4096] = 1
    a[-1] = 7
    return a

def one(n, before=None):
    ref = make.options(scheduling_strategy=on_a).remote(n)
    ready, _ = rt.wait([ref], num_returns=1, timeout=600, fetch_local=False)
    assert ready, "the object was not made on A in time"
    time.sleep(0.2)
    if before is not None:
        before()
    t0 = time.perf_counter()
    arr = rt.get(ref, timeout=600)
    s = time.perf_counter() - t0
    assert arr.nbytes == n and arr[-1] == 7, (arr.nbytes, n)
    del arr, ref
    time.sleep(0.3)  # both stores free their copies
    return s

sizes = cfg["sizes"]
big = max(sizes)
def handshake():
    emit(mem="ready")
    sys.stdin.readline()
first = one(big, handshake)
emit(mem="done", first_s=first, nbytes=big)
for n in sizes:
    one(n)  # warm-up
    emit(size=n, seconds=[one(n) for _ in range(cfg["reps"])])
rt.shutdown()
"""

# Rounds of no-op tasks ``f`` (defined before them): ``rtt_n`` round trips,
# then ``async_n`` submitted at once, ``reps`` times each; one line of JSON.
_TASK_ROUNDS = r"""
rt.get([f.remote() for _ in range(50)], timeout=300)
rtt = []
for _ in range(cfg["reps"]):
    t0 = time.perf_counter()
    for _ in range(cfg["rtt_n"]):
        rt.get(f.remote(), timeout=300)
    rtt.append((time.perf_counter() - t0) / cfg["rtt_n"] * 1e3)
rate = []
for _ in range(cfg["reps"]):
    t0 = time.perf_counter()
    rt.get([f.remote() for _ in range(cfg["async_n"])], timeout=600)
    rate.append(cfg["async_n"] / (time.perf_counter() - t0))
print(json.dumps({"rtt_ms": rtt, "tasks_per_s": rate}), flush=True)
rt.shutdown()
"""

# On A: no-op tasks pinned to B.
TASKS_DRIVER = _PRELUDE + r"""
f = rt.remote(num_cpus=1)(lambda: 0).options(scheduling_strategy=NodeAffinity(node_of(cfg["b_ip"]), soft=False))
""" + _TASK_ROUNDS


# -- the figures ----------------------------------------------------------------------------


def summary(samples: Sequence[float]) -> dict[str, Any]:
    """Median, min, max of ``samples`` (all of them kept)."""
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples),
            "samples": list(samples)}


def gbps(nbytes: int, seconds: Sequence[float]) -> dict[str, Any]:
    return summary([nbytes / s / 1e9 for s in seconds])


@dataclass
class Config:
    sizes: list[int] = field(default_factory=lambda: [100 * MB, GIB])
    reps: int = 5
    rtt_n: int = 300
    async_n: int = 2000
    task_reps: int = 3
    runtimes: list[str] = field(default_factory=lambda: ["jray", "ray"])
    ray_python: str = RAY_PYTHON
    netem: bool = True
    client: bool = True  # the client rows (a driver on a third host with no node)
    timeout: float = 1800.0
    progress: Callable[[str], None] = lambda _m: None


def _size_name(n: int) -> str:
    if n >= GIB and n % GIB == 0:
        return f"{n // GIB} GiB"
    return f"{n / MB:g} MB"


class MemSampler(threading.Thread):
    """Samples a host's ``/dev/shm`` in use and its processes' private RSS
    every ``MEM_SAMPLE_S`` until :meth:`stop`; keeps the first sample and the
    peak of the sum."""

    def __init__(self, host: Any) -> None:
        super().__init__(daemon=True)
        self.host = host
        self._stop_ev = threading.Event()
        self.first: dict[str, int] | None = None
        self.peak: dict[str, int] | None = None
        self.count = 0
        self._raylets: set[int] = set()
        self._pids: list[int] = []

    def _refresh(self) -> None:
        self._pids = self.host.processes()
        self._raylets = set()
        for pid in self._pids:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            # jray: python -m jray._private.raylet; Ray: .../core/src/ray/raylet/raylet
            if b"jray._private.raylet" in cmd or cmd.split(b"\0", 1)[0].endswith(b"/raylet"):
                self._raylets.add(pid)

    def sample(self) -> dict[str, int]:
        st = os.statvfs(self.host.fs_path("/dev/shm"))
        shm = (st.f_blocks - st.f_bfree) * st.f_frsize
        anon = raylet = 0
        for pid in self._pids:
            kb = _rss_anon_kb(pid)
            anon += kb * 1024
            if pid in self._raylets:
                raylet += kb * 1024
        return {"shm": shm, "anon": anon, "raylet_anon": raylet, "total": shm + anon}

    def run(self) -> None:
        last_refresh = 0.0
        while not self._stop_ev.is_set():
            now = time.monotonic()
            if now - last_refresh > 0.25:
                self._refresh()
                last_refresh = now
            s = self.sample()
            self.count += 1
            if self.first is None:
                self.first = s
            if self.peak is None or s["total"] > self.peak["total"]:
                self.peak = s
            self._stop_ev.wait(MEM_SAMPLE_S)

    def stop(self) -> None:
        self._stop_ev.set()
        self.join(timeout=10)


def _rss_anon_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def raw_link(src: Any, dst: Any, nbytes: int, reps: int, python: str = sys.executable) -> dict[str, Any]:
    """GB/s of ``nbytes`` over TCP from host ``src`` to host ``dst``."""
    sender = src.popen([python, "-c", RAW_LINK, "send", src.ip, str(RAW_PORT), str(nbytes), str(reps)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert sender.stdout is not None
        if sender.stdout.readline().strip() != "listening":
            raise RuntimeError(f"raw link sender did not start: {sender.communicate(timeout=10)[1][-2000:]}")
        res = dst.run([python, "-c", RAW_LINK, "recv", src.ip, str(RAW_PORT), str(nbytes), str(reps)],
                      timeout=120 + reps * nbytes / 50e6)
        if res.returncode != 0:
            raise RuntimeError(f"raw link receiver failed: {res.stderr[-2000:]}")
        sender.wait(timeout=30)
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait(timeout=10)
    return gbps(nbytes, json.loads(res.stdout.strip().splitlines()[-1]))


# On C, a machine with no node of the cluster (a laptop's notebook): a client
# driver (jray: JRAY_ADDRESS/JRAY_TOKEN, Ray: Ray Client at ray://A:10001),
# no-op tasks anywhere on the cluster.
CLIENT_DRIVER = r"""
import importlib, json, sys, time
cfg = json.loads(sys.argv[1])
rt = importlib.import_module(cfg["runtime"])
rt.init(address=cfg["client_address"], log_to_driver=False)
f = rt.remote(num_cpus=1)(lambda: 0)
""" + _TASK_ROUNDS
RAY_CLIENT_PORT = 10001


@dataclass
class Cluster:
    """Two nodes of one runtime on hosts ``a`` (head) and ``b``."""

    runtime: str
    a: Any
    b: Any
    python: str
    address: str
    env: dict[str, str]  # on top of a host's own environment

    @property
    def client_address(self) -> str:
        """What a driver on a machine without a node connects to."""
        return self.address if self.runtime == "jray" else f"ray://{self.a.ip}:{RAY_CLIENT_PORT}"

    def driver(self, host: Any, script: str, extra: dict[str, Any]) -> Any:
        cfg = {"runtime": self.runtime, "address": self.address, "a_ip": self.a.ip, "b_ip": self.b.ip,
               "client_address": self.client_address, **extra}
        env = {k: v for k, v in host.env.items() if self.runtime == "jray" or k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        return host.popen([self.python, "-c", script, json.dumps(cfg)], env={**env, **self.env},
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def start_cluster(vh: Any, runtime: str, a: Any, b: Any, ray_python: str) -> Cluster:
    """The runtime's head on ``a`` and a node on ``b`` (their CLIs, as a user would)."""
    if runtime == "jray":
        address, token = vh.start_head(a, num_cpus=NODE_CPUS, object_store_memory=STORE_BYTES)
        vh.start_node(b, address, token, num_cpus=NODE_CPUS, object_store_memory=STORE_BYTES)
        return Cluster(runtime, a, b, sys.executable, address, {"JRAY_ADDRESS": address, "JRAY_TOKEN": token})
    ray = os.path.join(os.path.dirname(ray_python), "ray")
    env = {k: v for k, v in a.env.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # Token auth as Ray 2.60 turns it on by itself once ~/.ray/auth_token
    # exists (the hosts share /root): set outright, so head, node and driver agree.
    env.update(RAY_USAGE_STATS_ENABLED="0", PATH=os.path.dirname(ray_python) + os.pathsep + env.get("PATH", ""),
               RAY_AUTH_MODE=os.environ.get("RAY_AUTH_MODE", "token"))
    common = ["--num-cpus", str(NODE_CPUS), "--object-store-memory", str(STORE_BYTES), "--disable-usage-stats"]
    address = f"{a.ip}:{RAY_GCS_PORT}"
    for host, args in ((a, ["--head", f"--port={RAY_GCS_PORT}", "--include-dashboard=false"]),
                       (b, [f"--address={address}"])):
        res = host.run([ray, "start", *args, "--node-ip-address", host.ip, *common], env=env, timeout=180)
        if res.returncode != 0:
            raise RuntimeError(f"ray start on {host.name} failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return Cluster(runtime, a, b, ray_python, address, {k: env[k] for k in ("RAY_USAGE_STATS_ENABLED", "PATH", "RAY_AUTH_MODE")})


def _lines(proc: Any, deadline: float) -> Any:
    """Each JSON line of a driver's stdout (others skipped), until it ends."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if time.monotonic() > deadline:
            raise TimeoutError("driver past its deadline")
        line = line.strip()
        if line.startswith("{"):
            yield json.loads(line)


def _finish(proc: Any, what: str) -> None:
    try:
        err = proc.communicate(timeout=60)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        err = proc.communicate()[1]
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}):\n{(err or '')[-3000:]}")


def measure_transfer(cl: Cluster, cfg: Config) -> dict[str, Any]:
    """Transfer figures and the receiving node's memory, from a driver on B."""
    proc = cl.driver(cl.b, TRANSFER_DRIVER, {"sizes": cfg.sizes, "reps": cfg.reps})
    out: dict[str, Any] = {}
    sampler: MemSampler | None = None
    deadline = time.monotonic() + cfg.timeout
    try:
        for ev in _lines(proc, deadline):
            if ev.get("mem") == "ready":
                sampler = MemSampler(cl.b)
                sampler._refresh()
                sampler.start()
                time.sleep(0.1)  # a baseline before the get
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
            elif ev.get("mem") == "done":
                assert sampler is not None
                sampler.stop()
                first, peak, n = sampler.first, sampler.peak, ev["nbytes"]
                assert first is not None and peak is not None
                out["first"] = {"size": n, "gbps": n / ev["first_s"] / 1e9}
                out["memory"] = {
                    "size": n, "samples": sampler.count,
                    "extra_mib": (peak["total"] - first["total"] - n) / MIB,
                    "shm_growth_mib": (peak["shm"] - first["shm"]) / MIB,
                    "anon_growth_mib": (peak["anon"] - first["anon"]) / MIB,
                    "raylet_anon_growth_mib": (peak["raylet_anon"] - first["raylet_anon"]) / MIB,
                }
                cfg.progress(f"  {cl.runtime}: first {_size_name(n)} {out['first']['gbps']:.2f} GB/s, "
                             f"beyond one copy {out['memory']['extra_mib']:.0f} MiB")
            elif "size" in ev:
                out.setdefault("transfer", {})[str(ev["size"])] = gbps(ev["size"], ev["seconds"])
                cfg.progress(f"  {cl.runtime}: {_size_name(ev['size'])} "
                             f"{out['transfer'][str(ev['size'])]['median']:.2f} GB/s")
    finally:
        if sampler is not None and sampler.is_alive():
            sampler.stop()
        if proc.poll() is None and time.monotonic() > deadline:
            proc.kill()
        _finish(proc, f"{cl.runtime} transfer driver on {cl.b.name}")
    return out


def measure_tasks(cl: Cluster, cfg: Config) -> dict[str, Any]:
    """Round trip and tasks/s of tasks pinned to B, from a driver on A."""
    proc = cl.driver(cl.a, TASKS_DRIVER, {"rtt_n": cfg.rtt_n, "async_n": cfg.async_n, "reps": cfg.task_reps})
    evs = list(_lines(proc, time.monotonic() + cfg.timeout))
    _finish(proc, f"{cl.runtime} tasks driver on {cl.a.name}")
    ev = evs[-1]
    return {"rtt_ms": summary(ev["rtt_ms"]), "tasks_per_s": summary(ev["tasks_per_s"])}


def measure_client(cl: Cluster, c: Any, cfg: Config) -> dict[str, Any]:
    """Round trip and tasks/s of a client driver on ``c`` (no node there)."""
    proc = cl.driver(c, CLIENT_DRIVER, {"rtt_n": max(1, cfg.rtt_n // 3), "async_n": cfg.async_n,
                                        "reps": cfg.task_reps})
    evs = list(_lines(proc, time.monotonic() + cfg.timeout))
    _finish(proc, f"{cl.runtime} client driver on {c.name}")
    ev = evs[-1]
    return {"rtt_ms": summary(ev["rtt_ms"]), "tasks_per_s": summary(ev["tasks_per_s"])}


def ping_rtt_ms(src: Any, dst: Any, python: str = sys.executable) -> float:
    """The median round trip (ms) of one byte over TCP from ``src`` to ``dst`` and back (200 of them)."""
    echo = dst.popen([python, "-c", TCP_PING, "echo", dst.ip, str(RAW_PORT + 1)],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert echo.stdout is not None
        if echo.stdout.readline().strip() != "listening":
            raise RuntimeError(f"TCP echo did not start: {echo.communicate(timeout=10)[1][-2000:]}")
        res = src.run([python, "-c", TCP_PING, "ping", dst.ip, str(RAW_PORT + 1)], timeout=60)
        if res.returncode != 0:
            raise RuntimeError(f"TCP ping failed: {res.stderr[-2000:]}")
        echo.wait(timeout=30)
    finally:
        if echo.poll() is None:
            echo.kill()
            echo.wait(timeout=10)
    return float(res.stdout.strip().splitlines()[-1])


def run(cfg: Config) -> dict[str, Any]:
    """Every figure, for each runtime of ``cfg.runtimes``: the JSON of a run."""
    from jray._private import virtual_hosts as vh
    from jray.bench import report

    reason = vh.unavailable_reason()
    if reason is not None:
        raise RuntimeError(reason)
    result: dict[str, Any] = {"machine": report.machine_info(), "config": {
        "sizes": cfg.sizes, "reps": cfg.reps, "rtt_n": cfg.rtt_n, "async_n": cfg.async_n,
        "task_reps": cfg.task_reps, "node_cpus": NODE_CPUS, "store_bytes": STORE_BYTES}}
    netem_reason = vh.delay_unavailable_reason() if cfg.netem else "not asked (--no-netem)"
    result["netem"] = netem_reason or "ok"
    result["emulation"] = vh.delay_emulation() if netem_reason is None else None
    with vh.VirtualHosts() as v:
        a, b, c = v.add_host("a"), v.add_host("b"), v.add_host("c")  # c: the client's machine, no node
        result["ping_ms"] = ping_rtt_ms(a, b)
        cfg.progress(f"raw link (TCP round trip {result['ping_ms']:.3f} ms)")
        result["raw_link"] = {}
        for n in cfg.sizes:
            result["raw_link"][str(n)] = {"a_to_b": raw_link(a, b, n, cfg.reps), "b_to_a": raw_link(b, a, n, cfg.reps)}
            r = result["raw_link"][str(n)]
            cfg.progress(f"  {_size_name(n)}: A→B {r['a_to_b']['median']:.2f} GB/s, "
                         f"B→A {r['b_to_a']['median']:.2f} GB/s")
        for name in cfg.runtimes:
            cfg.progress(f"{name}: starting a head on A and a node on B")
            t0 = time.monotonic()
            rr: dict[str, Any] = {}
            result[name] = rr
            try:
                cl = start_cluster(vh, name, a, b, cfg.ray_python)
                rr["start_s"] = time.monotonic() - t0
                rr.update(measure_transfer(cl, cfg))
                rr["tasks"] = {"0": measure_tasks(cl, cfg)}
                cfg.progress(f"  {name}: remote task {rr['tasks']['0']['rtt_ms']['median']:.2f} ms, "
                             f"{rr['tasks']['0']['tasks_per_s']['median']:.0f} tasks/s")
                if netem_reason is None:
                    for rtt in NETEM_RTTS_MS:
                        b.netem(delay_ms=rtt / 2)  # each direction of B's link: RTT A<->B grows by rtt
                        try:
                            rr["tasks"][f"{rtt:g}"] = dict(measure_tasks(cl, cfg), ping_ms=ping_rtt_ms(a, b))
                        finally:
                            b.netem()
                if cfg.client:
                    rr["client"] = {}
                    for rtt in (0.0, *(NETEM_RTTS_MS if netem_reason is None else ())):
                        if rtt:
                            c.netem(delay_ms=rtt / 2)  # the client's link alone: RTT C<->cluster grows by rtt
                        try:
                            rr["client"][f"{rtt:g}"] = dict(measure_client(cl, c, cfg), ping_ms=ping_rtt_ms(c, a))
                        finally:
                            if rtt:
                                c.netem()
                    cfg.progress(f"  {name}: client task {rr['client']['0']['rtt_ms']['median']:.2f} ms, "
                                 f"{rr['client']['0']['tasks_per_s']['median']:.0f} tasks/s")
            except Exception as e:  # noqa: BLE001 - reported, the other runtime still runs
                rr["error"] = f"{type(e).__name__}: {e}"
                cfg.progress(f"  {name} failed: {rr['error'][:2000]}")
            finally:
                for h in (c, b, a):
                    h.kill_all()
    return result


# -- the report -----------------------------------------------------------------------------


def _fmt(s: dict[str, Any] | None, digits: int = 2) -> str:
    if not s:
        return "–"
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def _ratio(x: float | None, y: float | None) -> float | None:
    return x / y if x is not None and y else None


def _met(ok: bool | None) -> str:
    return "–" if ok is None else ("yes" if ok else "**no**")


def _median(s: dict[str, Any] | None) -> float | None:
    return None if not s else float(s["median"])


def table(result: dict[str, Any]) -> str:
    """The Markdown table of a run: jray, Ray, jray/Ray, raw link, target, met."""
    j, r = result.get("jray") or {}, result.get("ray") or {}
    head = ("| figure | jray | Ray | jray/Ray | raw link A→B (B→A) | jray/link | target | met |\n"
            "|---|---|---|---:|---|---:|---|---|")
    rows = [head]
    for key in result["config"]["sizes"]:
        n = int(key)
        js = (j.get("transfer") or {}).get(str(n))
        rs = (r.get("transfer") or {}).get(str(n))
        link = result["raw_link"][str(n)]
        vs_ray = _ratio(_median(js), _median(rs))
        vs_link = _ratio(_median(js), _median(link["a_to_b"]))
        ok = None if vs_link is None else (vs_link >= TARGET_VS_LINK and (vs_ray is None or vs_ray >= TARGET_VS_RAY))
        rows.append(f"| transfer {_size_name(n)} A→B (GB/s) | {_fmt(js)} | {_fmt(rs)} | {_x(vs_ray)} | "
                    f"{_fmt(link['a_to_b'])} ({link['b_to_a']['median']:.2f}) | {_pct(vs_link)} | "
                    f"≥ {TARGET_VS_RAY:g}× Ray, ≥ {TARGET_VS_LINK:.0%} of link | {_met(ok)} |")
    jf, rf = j.get("first"), r.get("first")
    if jf or rf:
        n = int((jf or rf or {})["size"])
        link_m = _median(result["raw_link"][str(n)]["a_to_b"])
        jg, rg = jf and jf["gbps"], rf and rf["gbps"]
        rows.append(f"| first transfer {_size_name(n)} into untouched pages (GB/s) | {_num(jg)} | {_num(rg)} | "
                    f"{_x(_ratio(jg, rg))} | | {_pct(_ratio(jg, link_m))} | – | – |")
    jm, rm = j.get("memory"), r.get("memory")
    if jm or rm:
        n = int((jm or rm or {})["size"])
        je, re_ = jm and jm["extra_mib"], rm and rm["extra_mib"]
        rows.append(f"| receiving node beyond one copy, {_size_name(n)} (MiB) | {_num(je, 0)} | {_num(re_, 0)} | "
                    f"{_x(_ratio(je, re_) if (je or 0) > 0 and (re_ or 0) > 0 else None)} | | | "
                    f"≤ {TARGET_EXTRA_MIB:g} MiB | {_met(None if je is None else je <= TARGET_EXTRA_MIB)} |")
        for part, label in (("shm_growth_mib", "at the peak: its /dev/shm growth"),
                            ("raylet_anon_growth_mib", "at the peak: its raylet's private RSS growth")):
            rows.append(f"| … {label} (MiB) | {_num(jm and jm[part], 0)} | {_num(rm and rm[part], 0)} | | | | | |")
    jt, rt_ = j.get("tasks") or {}, r.get("tasks") or {}
    jc, rc = j.get("client") or {}, r.get("client") or {}
    how = result.get("emulation") or "netem"
    rtts = [("0", "no shaping"), *[(f"{x:g}", f"{x:g} ms RTT ({how})") for x in NETEM_RTTS_MS]]
    for rtt_key, label in rtts:
        if rtt_key != "0" and result.get("netem") != "ok":
            rows.append(f"| remote tasks at {label} | not run: {result.get('netem')} | | | | | | |")
            continue
        ja = jt.get(rtt_key)
        target, ok = "–", None
        if rtt_key == f"{NETEM_RTTS_MS[-1]:g}" and ja and jt.get("0"):
            keep = _ratio(_median(ja["tasks_per_s"]), _median(jt["0"]["tasks_per_s"]))
            target, ok = f"≥ {TARGET_RTT10_KEEP:g}× the 0 ms figure", keep is not None and keep >= TARGET_RTT10_KEEP
        rows += _task_rows("remote ", label, ja, rt_.get(rtt_key), target, ok)
    for rtt_key, label in rtts:
        if jc.get(rtt_key) or rc.get(rtt_key):
            rows += _task_rows("client off the cluster: ", label, jc.get(rtt_key), rc.get(rtt_key))
    for name, rr in (("jray", j), ("Ray", r)):
        if rr.get("error"):
            rows.append(f"\n{name} failed: {rr['error'].splitlines()[0][:300]}")
    return "\n".join(rows)


def _task_rows(what: str, label: str, ja: dict[str, Any] | None, ra: dict[str, Any] | None,
               target: str = "–", ok: bool | None = None) -> list[str]:
    """The round-trip and tasks/s rows of one task measurement (jray, Ray), its TCP ping in the label."""
    ping = (ja or ra or {}).get("ping_ms")
    if ping is not None:
        label += f", TCP ping {ping:.2f} ms"
    rtt = f"{_x(_ratio(_median(ja and ja['rtt_ms']), _median(ra and ra['rtt_ms'])))}"
    rate = f"{_x(_ratio(_median(ja and ja['tasks_per_s']), _median(ra and ra['tasks_per_s'])))}"
    return [f"| {what}task round trip, {label} (ms) | {_fmt(ja and ja['rtt_ms'])} | {_fmt(ra and ra['rtt_ms'])} | "
            f"{rtt} | | | – | – |",
            f"| {what}tasks/s, {label} | {_fmt(ja and ja['tasks_per_s'], 0)} | {_fmt(ra and ra['tasks_per_s'], 0)} | "
            f"{rate} | | | {target} | {_met(ok)} |"]


def _x(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}×"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.0%}"


def _num(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def header(result: dict[str, Any]) -> str:
    m = result["machine"]
    return (f"{m['date']}; {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; {m['os']}. Hosts "
            f"(network namespaces on a bridge, private /tmp and /dev/shm), TCP round trip {result.get('ping_ms', 0):.3f} ms; "
            f"{NODE_CPUS} CPUs and a {STORE_BYTES // GIB} GiB store per node; medians (min–max) of "
            f"{result['config']['reps']} transfers after a warm-up, {result['config']['task_reps']} task rounds "
            f"of {result['config']['rtt_n']} round trips / {result['config']['async_n']} tasks.")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--sizes", default="100MB,1GB", help="object sizes: NNMB (10^6 bytes) or NGB (GiB), comma-separated")
    p.add_argument("--reps", type=int, default=5, help="timed transfers per size after one warm-up")
    p.add_argument("--rtt-n", type=int, default=300, help="round trips per task round")
    p.add_argument("--async-n", type=int, default=2000, help="tasks submitted at once per task round")
    p.add_argument("--task-reps", type=int, default=3, help="task rounds")
    p.add_argument("--runtimes", default="jray,ray")
    p.add_argument("--ray-python", default=RAY_PYTHON)
    p.add_argument("--no-netem", action="store_true", help="skip the 1 ms / 10 ms RTT rows")
    p.add_argument("--no-client", action="store_true", help="skip the client rows (a driver on a host with no node)")
    p.add_argument("--out", help="write the run's JSON here")
    args = p.parse_args(argv)
    cfg = Config(sizes=[_parse_size(s) for s in args.sizes.split(",")], reps=args.reps, rtt_n=args.rtt_n,
                 async_n=args.async_n, task_reps=args.task_reps, runtimes=args.runtimes.split(","),
                 ray_python=args.ray_python, netem=not args.no_netem, client=not args.no_client,
                 progress=lambda m: print(m, file=sys.stderr, flush=True))
    if "ray" in cfg.runtimes and not os.path.exists(cfg.ray_python):
        p.error(f"no Ray interpreter at {cfg.ray_python} (bash bench/setup_ray_venv.sh)")
    result = run(cfg)
    md = header(result) + "\n\n" + table(result)
    print(md)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(dict(result, markdown=md), f, indent=1)
    return 0 if all(not (result.get(n) or {}).get("error") for n in cfg.runtimes) else 1


def _parse_size(s: str) -> int:
    s = s.strip().upper()
    if s.endswith("GB"):
        return int(float(s[:-2]) * GIB)
    if s.endswith("MB"):
        return int(float(s[:-2]) * MB)
    return int(s)
