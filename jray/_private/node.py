"""Starting and stopping the daemons of a node (GCS, raylet) as processes.

``start_head`` launches the GCS and the head raylet at the same time (their
interpreter start-ups overlap) and hands the raylet the GCS port through
its stdin. Each daemon announces itself with one JSON line on stdout.
The cluster token is generated here and given to children through the
environment; drivers that attach later find it in the address file, which
only the user can read.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import secrets
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psutil

from jray._private import config


def jray_tmp_root() -> str:
    return os.environ.get("JRAY_TMPDIR") or os.path.join(tempfile.gettempdir(), "jray")


def local_ip_addresses() -> set[str]:
    """The IP addresses of this machine's interfaces (loopback included)."""
    ips = {"127.0.0.1", "::1"}
    try:
        for addrs in psutil.net_if_addrs().values():
            ips.update(a.address.split("%", 1)[0] for a in addrs if a.family in (socket.AF_INET, socket.AF_INET6))
    except OSError:
        pass
    return ips


def route_ip_to(host: str) -> str:
    """This machine's address on the route to ``host`` (what a peer there
    connects back to); no packet is sent."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.connect((host, 9))
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def address_file() -> str:
    return os.path.join(jray_tmp_root(), "jray_current_cluster")


def default_object_store_memory() -> int:
    """30% of RAM, capped by the free space of /dev/shm (Ray's default)."""
    mem = int(psutil.virtual_memory().total * 0.3)
    try:
        st = os.statvfs("/dev/shm")
        mem = min(mem, int(st.f_bavail * st.f_frsize * 0.95))
    except OSError:
        pass
    return max(mem, 64 * 1024 * 1024)


def detect_gpus() -> int:
    vis = os.environ.get("CUDA_VISIBLE_DEVICES")
    if vis is not None:
        return len([v for v in vis.split(",") if v.strip()])
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=5)
        return len([ln for ln in out.stdout.splitlines() if ln.startswith("GPU ")])
    except (OSError, subprocess.SubprocessError):
        return 0


def detect_gpu_model() -> str:
    """The GPU model as Ray names it (``H100`` for "NVIDIA H100 80GB HBM3",
    ``V100`` for "Tesla V100-SXM2-16GB"), from ``nvidia-smi``; "" without one."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return ""
    return gpu_model_name(out.stdout.splitlines()[0]) if out.returncode == 0 and out.stdout.strip() else ""


def gpu_model_name(full: str) -> str:
    words = full.replace("-", " ").split()
    words = [w for w in words if w.upper() not in ("NVIDIA", "TESLA", "GEFORCE", "RTX")]
    return words[0] if words else ""


@dataclass
class NodeHandle:
    node_id: str
    raylet_address: str
    raylet_pid: int
    store_path: str
    proc: subprocess.Popen | None = None


@dataclass
class ClusterHandle:
    gcs_address: str
    token: str
    session_dir: str
    gcs_pid: int
    gcs_proc: subprocess.Popen | None = None
    nodes: list[NodeHandle] = field(default_factory=list)
    supervisor_pid: int = 0            # the GCS's supervisor (it restarts a GCS that died), 0: none
    supervisor_proc: subprocess.Popen | None = None

    @property
    def head(self) -> NodeHandle:
        return self.nodes[0]


def _read_ready(proc: subprocess.Popen, what: str, log: str, timeout: float) -> dict[str, Any]:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buf = b""
    fd = proc.stdout.fileno()
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            proc.kill()
            raise RuntimeError(f"the {what} did not start within {timeout:.0f} s; see {log}")
        r, _, _ = select.select([fd], [], [], min(left, 0.5))
        if r:
            chunk = os.read(fd, 4096)
            if not chunk:
                proc.wait(5)
                raise RuntimeError(f"the {what} exited during start-up (code {proc.returncode}); see {log}:\n"
                                   + _tail(log))
            buf += chunk
    proc.stdout.close()
    info = dict(json.loads(buf.split(b"\n", 1)[0]))
    if "error" in info:  # it checked its configuration and gave up
        proc.wait(5)
        raise RuntimeError(f"the {what} could not start: {info['error']}")
    return info


def _tail(path: str, n: int = 20) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def node_resources(num_cpus: float | None, num_gpus: float | None, resources: dict[str, float] | None,
                   memory: int | None, ip: str, is_head: bool) -> dict[str, float]:
    res = {k: float(v) for k, v in (resources or {}).items()}
    for bad in ("CPU", "GPU"):
        if bad in res:
            raise ValueError(f"Use the num_cpus/num_gpus arguments instead of {bad!r} in resources.")
    res["CPU"] = float(num_cpus if num_cpus is not None else (os.cpu_count() or 1))
    gpus = num_gpus if num_gpus is not None else detect_gpus()
    if gpus:
        res["GPU"] = float(gpus)
        model = detect_gpu_model()
        if model:
            res[f"accelerator_type:{model}"] = 1.0
    res["memory"] = float(memory if memory is not None else int(psutil.virtual_memory().available * 0.7))
    res[f"node:{ip}"] = 1.0
    if is_head:
        res["node:__internal_head__"] = 1.0
    return res


def start_raylet(*, gcs_address: str | None, token: str, session_dir: str, resources: dict[str, float],
                 object_store_memory: int, ip: str = "127.0.0.1", head: bool = False, port: int = 0,
                 parent_pid: int = 0, detached: bool = False, labels: dict[str, str] | None = None,
                 spill_dir: str = "", fork_gcs: list[str] | None = None,
                 gcs_in_process: list[str] | None = None) -> tuple[subprocess.Popen, str]:
    """A raylet process; with ``gcs_in_process`` (the GCS's arguments) it
    serves the GCS itself, with ``fork_gcs`` it forks the GCS from itself;
    either way it announces the GCS's port (and pid) with its own."""
    log = os.path.join(session_dir, "logs", f"raylet-{time.time_ns()}.log")
    cmd = [sys.executable, "-m", "jray._private.raylet", "--gcs-address", gcs_address or "-",
           "--node-ip", ip, "--port", str(port), "--resources", json.dumps(resources),
           "--labels", json.dumps(labels or {}),
           "--object-store-memory", str(int(object_store_memory)), "--session-dir", session_dir,
           "--log", log, "--parent-pid", str(parent_pid)]
    if spill_dir:
        cmd += ["--spill-dir", spill_dir]
    if head:
        cmd.append("--head")
    if gcs_in_process is not None:
        cmd += ["--gcs-in-process", json.dumps(gcs_in_process)]
    elif fork_gcs is not None:
        cmd += ["--fork-gcs", json.dumps(fork_gcs)]
    # JRAY_SESSION_DIR: the raylet forks its zygote, whose workers show the
    # raylet's initial environment (/proc/<pid>/environ): it marks them as this session's.
    env = dict(os.environ, JRAY_TOKEN=token, _JRAY_LEAN_IMPORT="1", JRAY_SESSION_DIR=session_dir)  # see jray/__init__.py
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE
                            if gcs_address is None and fork_gcs is None and gcs_in_process is None
                            else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    return proc, log


def new_session_dir() -> str:
    root = jray_tmp_root()
    os.makedirs(root, exist_ok=True)
    d = tempfile.mkdtemp(prefix=time.strftime("session_%Y%m%d_%H%M%S_"), dir=root)
    os.makedirs(os.path.join(d, "logs"), exist_ok=True)
    return d


def spill_dir_of(system_config: dict[str, Any] | None) -> str:
    """The spill directory set the way Ray sets it: ``_system_config=
    {"object_spilling_config": json.dumps({"type": "filesystem", "params":
    {"directory_path": PATH}})}`` (a dict is taken too). "" for the default
    (the session's ``spill-<node>/``)."""
    conf = (system_config or {}).get("object_spilling_config")
    if not conf:
        return ""
    if isinstance(conf, str):
        conf = json.loads(conf)
    if conf.get("type", "filesystem") != "filesystem":
        raise ValueError(f"object_spilling_config: only the 'filesystem' type is supported, got {conf.get('type')!r}")
    path = (conf.get("params") or {}).get("directory_path") or ""
    if isinstance(path, list):  # Ray accepts several directories; one is used here
        path = path[0] if path else ""
    return str(path)


def _gcs_args(*, session_dir: str, ip: str, port: int, parent: int) -> list[str]:
    return ["--host", ip, "--port", str(port), "--log", os.path.join(session_dir, "logs", "gcs.log"),
            "--parent-pid", str(parent), "--session-dir", session_dir]


def _fork_gcs() -> bool:
    """A head without a supervisor gets its GCS from its raylet
    (raylet/__main__.py), unless ``JRAY_GCS_FORK=0`` (a process of its own)."""
    return os.environ.get("JRAY_GCS_FORK", "1") not in ("0", "false", "no", "off")


def _gcs_in_process() -> bool:
    """That GCS is served from the raylet's own process (one process fewer:
    ~9 MB less idle memory), unless ``JRAY_GCS_IN_PROCESS=0`` (then forked
    from it: a GCS that can be killed, and fail, on its own)."""
    return os.environ.get("JRAY_GCS_IN_PROCESS", "1") not in ("0", "false", "no", "off")


def _start_gcs(*, token: str, session_dir: str, ip: str, port: int, parent: int, supervise: bool,
               restore: bool = False) -> subprocess.Popen:
    """The GCS process (with ``supervise``: its supervisor, which runs it and
    restarts it from its tables when it dies); it announces itself on stdout."""
    gcs_log = os.path.join(session_dir, "logs", "gcs.log")
    if supervise:
        cmd = [sys.executable, "-m", "jray._private.gcs.supervisor", "--host", ip, "--port", str(port),
               "--session-dir", session_dir, "--log", os.path.join(session_dir, "logs", "gcs_supervisor.log"),
               "--gcs-log", gcs_log, "--parent-pid", str(parent)]
    else:
        cmd = [sys.executable, "-m", "jray._private.gcs",
               *_gcs_args(session_dir=session_dir, ip=ip, port=port, parent=parent)]
    return subprocess.Popen(
        cmd + (["--restore"] if restore else []),
        env=dict(os.environ, JRAY_TOKEN=token, _JRAY_LEAN_IMPORT="1"), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)  # Ctrl-C in the driver's terminal spares it


def start_head(*, num_cpus: float | None = None, num_gpus: float | None = None,
               resources: dict[str, float] | None = None, object_store_memory: int | None = None,
               memory: int | None = None, port: int = 0, ip: str = "127.0.0.1", detached: bool = False,
               labels: dict[str, str] | None = None, spill_dir: str = "", supervise: bool = False) -> ClusterHandle:
    """The GCS and the head raylet. ``supervise``: the GCS runs under a
    supervisor that restarts it from its tables when it dies (``jray start
    --head``)."""
    token = secrets.token_hex(24)
    session_dir = new_session_dir()
    parent = 0 if detached else os.getpid()
    res = node_resources(num_cpus, num_gpus, resources, memory, ip, True)
    store_mem = object_store_memory or default_object_store_memory()
    gcs_log = os.path.join(session_dir, "logs", "gcs.log")
    if not supervise and _fork_gcs():
        # One process start: the raylet serves the GCS (or forks it, sharing its imports) and announces both.
        gcs_args = _gcs_args(session_dir=session_dir, ip=ip, port=port, parent=parent)
        here = _gcs_in_process()
        raylet, raylet_log = start_raylet(
            gcs_address=None, token=token, session_dir=session_dir, resources=res, object_store_memory=store_mem,
            ip=ip, head=True, parent_pid=parent, detached=detached, labels=labels, spill_dir=spill_dir,
            fork_gcs=None if here else gcs_args, gcs_in_process=gcs_args if here else None)
        try:
            r = _read_ready(raylet, "raylet", raylet_log, config.STARTUP_TIMEOUT)
        except BaseException:
            _abandon_start(session_dir, [raylet])
            raise
        gcs_address = f"{ip}:{r['gcs_port']}"
        return _head_started(ClusterHandle(gcs_address, token, session_dir, int(r["gcs_pid"]), None), r, raylet, ip)
    gcs = _start_gcs(token=token, session_dir=session_dir, ip=ip, port=port, parent=parent, supervise=supervise)
    raylet, raylet_log = start_raylet(gcs_address=None, token=token, session_dir=session_dir, resources=res,
                                      object_store_memory=store_mem, ip=ip, head=True, parent_pid=parent,
                                      detached=detached, labels=labels, spill_dir=spill_dir)
    try:
        g = _read_ready(gcs, "GCS", gcs_log, config.STARTUP_TIMEOUT)
        gcs_address = f"{ip}:{g['port']}"
        assert raylet.stdin is not None
        raylet.stdin.write(f"{gcs_address}\n".encode())
        raylet.stdin.close()
        r = _read_ready(raylet, "raylet", raylet_log, config.STARTUP_TIMEOUT)
    except BaseException:
        _abandon_start(session_dir, [gcs, raylet])
        raise
    if supervise:
        handle = ClusterHandle(gcs_address, token, session_dir, int(g["pid"]), None,
                               supervisor_pid=gcs.pid, supervisor_proc=gcs)
    else:
        handle = ClusterHandle(gcs_address, token, session_dir, gcs.pid, gcs)
    return _head_started(handle, r, raylet, ip)


def _head_started(handle: ClusterHandle, ready: dict[str, Any], raylet: subprocess.Popen, ip: str) -> ClusterHandle:
    """A head is up: remember it as started here, with its raylet, in the session file."""
    STARTED_HERE[handle.gcs_address] = handle.token
    handle.nodes.append(NodeHandle(ready["node_id"], f"{ip}:{ready['port']}", raylet.pid, ready["store_path"], raylet))
    _write_session(handle)
    return handle


def _abandon_start(session_dir: str, procs: list[subprocess.Popen]) -> None:
    """A head that did not come up: its processes killed, and what a killed
    raylet could not remove (its ``/dev/shm`` store file, its zygote and
    workers) removed too, so a failed start leaves nothing behind."""
    children: list[psutil.Process] = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            children.extend(psutil.Process(p.pid).children(recursive=True))
        with contextlib.suppress(OSError):
            p.kill()
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            p.wait(5)
    for c in children:
        with contextlib.suppress(psutil.Error):
            c.kill()
    _wait_gone(children, 5)
    for path in glob.glob(f"/dev/shm/jray-{os.path.basename(session_dir)}-*"):
        with contextlib.suppress(OSError):
            os.unlink(path)


def restore_head(info: dict[str, Any]) -> ClusterHandle:
    """Start the GCS of the cluster recorded in ``info`` (what
    ``read_address_file`` returns) again, under a supervisor, from the
    tables in its session (``jray start --head --restore``): same port,
    same token; its raylets, workers and drivers reconnect."""
    with session_lock(info["session_dir"]):
        handle = load_session(info["session_dir"])
        ip, _, port = handle.gcs_address.rpartition(":")
        proc = _start_gcs(token=handle.token, session_dir=handle.session_dir, ip=ip.strip("[]"), port=int(port),
                          parent=0, supervise=True, restore=True)
        try:
            g = _read_ready(proc, "GCS", os.path.join(handle.session_dir, "logs", "gcs.log"), config.STARTUP_TIMEOUT)
        except BaseException:
            proc.kill()
            raise
        handle.gcs_pid, handle.supervisor_pid = int(g["pid"]), proc.pid
        _write_session(handle)
    return handle


def add_node(cluster: ClusterHandle, *, num_cpus: float | None = None, num_gpus: float | None = None,
             resources: dict[str, float] | None = None, object_store_memory: int | None = None,
             memory: int | None = None, ip: str = "127.0.0.1", detached: bool = False,
             labels: dict[str, str] | None = None) -> NodeHandle:
    res = node_resources(num_cpus, num_gpus, resources, memory, ip, False)
    proc, log = start_raylet(gcs_address=cluster.gcs_address, token=cluster.token, session_dir=cluster.session_dir,
                             resources=res, object_store_memory=object_store_memory or default_object_store_memory(),
                             ip=ip, parent_pid=0 if detached else os.getpid(), detached=detached, labels=labels)
    r = _read_ready(proc, "raylet", log, config.STARTUP_TIMEOUT)
    node = NodeHandle(r["node_id"], f"{ip}:{r['port']}", proc.pid, r["store_path"], proc)
    cluster.nodes.append(node)
    _write_session(cluster)
    return node


def _write_session(c: ClusterHandle) -> None:
    info = {"gcs_address": c.gcs_address, "token": c.token, "session_dir": c.session_dir, "gcs_pid": c.gcs_pid,
            "gcs_supervisor_pid": c.supervisor_pid,
            "nodes": [{"node_id": n.node_id, "raylet_address": n.raylet_address, "raylet_pid": n.raylet_pid,
                       "store_path": n.store_path} for n in c.nodes]}
    from jray._private import tls

    if tls.record() is not None:
        info["tls"] = tls.record()
    path = os.path.join(c.session_dir, "cluster.json")
    tmp = f"{path}.tmp-{os.getpid()}"  # atomically: the GCS's supervisor rewrites it too
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(info, f)
    os.replace(tmp, path)


def write_address_file(c: ClusterHandle, driver_pid: int = 0) -> None:
    """Record ``c`` as this machine's cluster (for the CLI and ``"auto"``).
    ``driver_pid``: a cluster that process's ``jray.init()`` started (and
    stops): ``jray start --head`` may replace it, ``jray stop`` leaves it."""
    record: dict[str, Any] = {"gcs_address": c.gcs_address, "session_dir": c.session_dir}
    if driver_pid:
        record["driver_pid"] = driver_pid
    tmp = f"{address_file()}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(record, f)
    os.replace(tmp, address_file())


def claim_address_file(c: ClusterHandle) -> bool:
    """Write the address file for ``c`` unless it names another cluster
    that is still running; whether it was written."""
    info = read_address_file()
    if info is not None and info.get("session_dir") != c.session_dir:
        with contextlib.suppress(OSError, ValueError, KeyError):
            if session_processes(info):
                return False
    try:
        write_address_file(c, driver_pid=os.getpid())
    except OSError:
        return False
    return True


def read_address_file() -> dict[str, Any] | None:
    try:
        with open(address_file()) as f:
            info = dict(json.load(f))
        with open(os.path.join(info["session_dir"], "cluster.json")) as f:
            info.update(json.load(f))
    except (OSError, ValueError, KeyError):
        return None
    return info


def remove_address_file_if(c: ClusterHandle) -> None:
    info = read_address_file()
    if info is not None and info.get("session_dir") == c.session_dir:
        try:
            os.unlink(address_file())
        except OSError:
            pass


def stop_pid(pid: int, proc: subprocess.Popen | None, timeout: float = 5.0) -> None:
    """SIGTERM, wait, then SIGKILL: only for pids this process started."""
    if pid <= 0:  # 0 or negative would signal a whole process group
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None:
            if proc.poll() is not None:
                return
        elif not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
        if proc is not None:
            proc.wait(5)
    except (OSError, subprocess.TimeoutExpired):
        pass


def _is_gcs(p: psutil.Process) -> bool:
    return "jray._private.gcs" in _cmdline(p)


def _dead(p: psutil.Process) -> bool:
    try:
        return p.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:  # gone (NoSuchProcess), or not ours to look at
        return True


def stop_node(node: NodeHandle) -> None:
    children: list[psutil.Process] = []
    try:
        # Not a GCS the head raylet forked: stop_cluster stops it after the nodes.
        children = [c for c in psutil.Process(node.raylet_pid).children(recursive=True) if not _is_gcs(c)]
    except psutil.Error:
        pass
    stop_pid(node.raylet_pid, node.proc)
    # Workers normally exit with their raylet; what is left is killed, all at
    # once, and waited for until dead: gone, or a zombie (its reaper is
    # init now; psutil's wait() would wait for that reaping, ~1.5 s here).
    for ch in children:
        try:
            ch.kill()
        except psutil.Error:
            pass
    deadline = time.monotonic() + 2.0
    for ch in children:
        while time.monotonic() < deadline and not _dead(ch):
            time.sleep(0.005)
    try:
        os.unlink(node.store_path)
    except OSError:
        pass


# The tokens of the clusters this process started (jray.testing.Cluster, a
# local init): ``jray.init(address=cluster.address)`` needs no token, as in Ray.
STARTED_HERE: dict[str, str] = {}


def stop_cluster(c: ClusterHandle) -> None:
    STARTED_HERE.pop(c.gcs_address, None)
    for node in reversed(c.nodes):
        stop_node(node)
    if c.supervisor_pid:
        # The supervisor first (it stops its GCS); the GCS's pid changes with
        # each restart: the current one is in cluster.json.
        gcs_pid = c.gcs_pid
        with contextlib.suppress(OSError, ValueError, KeyError):
            gcs_pid = int(load_session(c.session_dir).gcs_pid)
        stop_pid(c.supervisor_pid, c.supervisor_proc)
        if _is_daemon_of(gcs_pid, "jray._private.gcs", c.session_dir) is not None:
            stop_pid(gcs_pid, None)
    elif c.gcs_pid not in {n.raylet_pid for n in c.nodes}:  # (a GCS in its raylet's process went with it)
        stop_pid(c.gcs_pid, c.gcs_proc)
    # A raylet that died between creating its store and announcing it left
    # a file no node handle names: every store file is named after the session.
    for path in glob.glob(f"/dev/shm/jray-{os.path.basename(c.session_dir)}-*"):
        try:
            os.unlink(path)
        except OSError:
            pass
    remove_address_file_if(c)


# -- clusters that outlive their starter (the ``jray`` command line) ----------
# ``jray start`` exits once its daemons are up, so later commands know the
# cluster only from ``cluster.json``: pids, not Popen objects. A recorded pid
# may have been reused by an unrelated process since, so every pid is checked
# against this session before anything is signalled, and nothing is ever
# selected by process name.


def load_session(session_dir: str) -> ClusterHandle:
    """The handle of the cluster recorded in ``<session_dir>/cluster.json``."""
    with open(os.path.join(session_dir, "cluster.json")) as f:
        info = json.load(f)
    handle = ClusterHandle(info["gcs_address"], info["token"], info["session_dir"], int(info["gcs_pid"]),
                           supervisor_pid=int(info.get("gcs_supervisor_pid", 0)))
    handle.nodes = [NodeHandle(n["node_id"], n["raylet_address"], int(n["raylet_pid"]), n["store_path"])
                    for n in info["nodes"]]
    return handle


@contextlib.contextmanager
def session_lock(session_dir: str) -> Iterator[None]:
    """Serialises read-modify-write of ``cluster.json`` between processes
    (two ``jray start --address`` run at once must both be recorded)."""
    fd = os.open(os.path.join(session_dir, "cluster.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def join_cluster(gcs_address: str, token: str, session_dir: str | None = None,
                 **node_args: Any) -> tuple[ClusterHandle, NodeHandle]:
    """Start a detached raylet that joins the GCS at ``gcs_address`` and record
    it in ``cluster.json``: that of ``session_dir`` (the cluster's session on
    this machine), else of a new session for a node whose GCS runs on another
    host (recorded with ``gcs_pid`` 0: nothing here to stop for it)."""
    if session_dir is None:
        handle = ClusterHandle(gcs_address, token, new_session_dir(), 0)
        return handle, add_node(handle, detached=True, **node_args)
    with session_lock(session_dir):
        handle = load_session(session_dir)
        return handle, add_node(handle, detached=True, **node_args)


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def _is_daemon_of(pid: int, module: str, session_dir: str) -> psutil.Process | None:
    """The live process ``pid`` if it is still ``python -m <module>`` of this session."""
    if pid <= 0:
        return None
    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return None
    except psutil.Error:
        return None
    cmd = _cmdline(p)
    if module in cmd and any(session_dir in arg for arg in cmd):
        return p
    return None


def _workers_of(raylet_pid: int, raylet: psutil.Process | None, session_dir: str) -> list[psutil.Process]:
    """The workers a raylet started: its descendants, and the members of its
    session (a detached raylet leads one; its workers stay there after it dies),
    each confirmed by the environment the raylet gave it."""
    cands: dict[int, psutil.Process] = {}
    if raylet is not None:
        with contextlib.suppress(psutil.Error):
            cands.update((c.pid, c) for c in raylet.children(recursive=True))
    for p in psutil.process_iter():
        with contextlib.suppress(OSError):
            if p.pid not in cands and p.pid != raylet_pid and os.getsid(p.pid) == raylet_pid:
                cands[p.pid] = p
    out = []
    for p in cands.values():
        if _is_gcs(p):  # a head raylet's forked GCS: its descendant, with the session's environment
            continue
        try:
            env = p.environ()
            # A worker forked by a zygote the raylet forked shows the raylet's
            # initial environment: the session, but not the raylet's pid.
            if (p.status() != psutil.STATUS_ZOMBIE and env.get("JRAY_SESSION_DIR") == session_dir
                    and env.get("JRAY_RAYLET_PID", str(raylet_pid)) == str(raylet_pid)):
                out.append(p)
        except psutil.Error:
            pass
    return out


def session_processes(info: dict[str, Any]) -> list[tuple[str, psutil.Process]]:
    """The live processes of the cluster recorded in ``info`` (what
    ``read_address_file`` returns), as (role, process) with role "gcs",
    "raylet", "worker" or "gcs_supervisor"."""
    session_dir = info["session_dir"]
    out: list[tuple[str, psutil.Process]] = []
    raylets: dict[int, psutil.Process] = {}
    for n in info.get("nodes", []):
        pid = int(n["raylet_pid"])
        raylet = _is_daemon_of(pid, "jray._private.raylet", session_dir)
        if raylet is not None:
            out.append(("raylet", raylet))
            raylets[pid] = raylet
        out.extend(("worker", w) for w in _workers_of(pid, raylet, session_dir))
    sup = _is_daemon_of(int(info.get("gcs_supervisor_pid", 0)), "jray._private.gcs.supervisor", session_dir)
    if sup is not None:  # before the GCS: stopped first, it restarts nothing
        out.append(("gcs_supervisor", sup))
    gcs_pid = int(info.get("gcs_pid", 0))
    gcs = raylets.get(gcs_pid) or _is_daemon_of(gcs_pid, "jray._private.gcs", session_dir)
    if gcs is not None:  # (a head raylet serving the GCS itself is listed as both)
        out.append(("gcs", gcs))
    return out


def session_store_files(info: dict[str, Any]) -> list[str]:
    """The ``/dev/shm`` store files of the cluster's nodes on this machine."""
    paths = {n["store_path"] for n in info.get("nodes", []) if n.get("store_path")}
    paths.update(glob.glob(f"/dev/shm/jray-{os.path.basename(info['session_dir'])}-*"))
    return sorted(p for p in paths if os.path.exists(p))


def _gone(p: psutil.Process) -> bool:
    # A zombie has exited; its parent (init, once ``jray start`` is gone) may
    # reap it late or, in some containers, never.
    try:
        return not p.is_running() or p.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until every process has exited; returns those still alive."""
    deadline = time.monotonic() + timeout
    while True:
        for p in procs:  # reap our own children (``jray start --block``)
            with contextlib.suppress(psutil.Error, ChildProcessError):
                if p.ppid() == os.getpid():
                    p.wait(0)
        alive = [p for p in procs if not _gone(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def stop_session(info: dict[str, Any], *, grace: float = 10.0, force: bool = False) -> dict[str, Any]:
    """Stop every process of the cluster recorded in ``info``: raylets first
    (they stop their workers and unlink their stores), then the GCS, each with
    SIGTERM and SIGKILL after ``grace`` seconds (at once with ``force``).
    Removes the store files, and the address file when it names this cluster.
    Returns the pids stopped by role, those that needed SIGKILL and the files
    removed."""
    procs = session_processes(info)
    stopped: dict[str, list[int]] = {"gcs": [], "raylet": [], "worker": [], "gcs_supervisor": []}
    for role, p in procs:
        stopped[role].append(p.pid)

    def signal_all(ps: list[psutil.Process], kill: bool) -> None:
        for p in ps:  # psutil refuses to signal a pid that was reused
            with contextlib.suppress(psutil.Error):
                p.kill() if kill else p.terminate()

    alive = [p for _, p in procs]
    if not force:
        deadline = time.monotonic() + grace
        raylets = [p for role, p in procs if role == "raylet"]
        signal_all(raylets, kill=False)
        _wait_gone(raylets, grace)
        sups = [p for role, p in procs if role == "gcs_supervisor"]
        signal_all(sups, kill=False)  # first: a GCS that exits now is not restarted
        _wait_gone(sups, 5.0)
        signal_all([p for role, p in procs if role != "raylet"], kill=False)
        alive = _wait_gone(alive, max(0.5, deadline - time.monotonic()))
    killed = [p.pid for p in alive]
    signal_all(alive, kill=True)
    _wait_gone(alive, 5.0)
    files = session_store_files(info)
    for path in files:
        with contextlib.suppress(OSError):
            os.unlink(path)
    current = read_address_file()
    if current is not None and current.get("session_dir") == info["session_dir"]:
        with contextlib.suppress(OSError):
            os.unlink(address_file())
    return {"pids": stopped, "killed": killed, "store_files": files}
