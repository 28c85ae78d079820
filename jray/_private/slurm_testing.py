"""A real SLURM on one machine, for tests: ``slurmctld``, one ``slurmd`` per
node, and ``munged``, all started directly (no systemd) from a temp dir.

Layout::

    root namespace ("login node")        virtual hosts (jray._private.virtual_hosts)
    munged   <base>/munge/munge.sock      n1: slurmd -N n1   (own IP, /tmp, /dev/shm, pids)
    slurmctld on the bridge address  <--  n2: slurmd -N n2
    sbatch / squeue / scancel (env)       n3: slurmd -N n3

Each ``slurmd`` runs inside its own virtual host, so every SLURM node is a
machine of its own as far as jray is concerned: its own address (``NodeAddr``),
``/tmp`` and ``/dev/shm``, and a job's processes are visible (and countable)
per host. ``munged`` and
``slurmctld`` stay in the root namespace: the hosts reach the controller at
the bridge address and munge through its socket file (a path socket crosses
network namespaces).

``<base>`` is made under ``/var/tmp``, not ``/tmp``: a host's ``/tmp`` is
private, and this directory stands for the shared file system (NFS home) of
a real cluster: the config, the state, job scripts and their output are
visible on every node and on the login node.

:class:`SlurmCluster` is a context manager; :meth:`SlurmCluster.env` is the
environment for SLURM's client commands (``SLURM_CONF``); :meth:`close`
cancels every job, kills every daemon it started by pid (and everything in
the hosts), and removes the temp dir. A run that crashes leaves nothing
running either: the hosts' keepers and the daemons die with the process
that started them, and the next :class:`SlurmCluster` removes its temp dir
(:func:`cleanup_stale`). :func:`unavailable_reason` says why
it cannot run here (not root, binaries missing); tests skip with it.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence

from jray._private import virtual_hosts as vh

_BINARIES = ("slurmctld", "slurmd", "sbatch", "srun", "squeue", "scancel", "scontrol", "sinfo", "munged")


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")


@functools.cache
def unavailable_reason() -> str | None:
    """None when a real SLURM can be started here, else why not (for ``pytest.skip``)."""
    if os.geteuid() != 0:
        return "a test SLURM needs root (slurmd runs jobs as their user; virtual hosts need namespaces)"
    missing = [b for b in _BINARIES if _which(b) is None]
    if missing:
        return f"SLURM is not installed ({', '.join(missing)} missing: apt-get install slurmctld slurmd slurm-client munge)"
    return vh.unavailable_reason()


_BASE_PARENT = "/var/tmp"
_PREFIX = "jray-slurm-"


def cleanup_stale() -> None:
    """Remove the temp dirs of test SLURMs whose process is gone (a crashed run;
    its daemons died with it: see :func:`_die_with_parent`)."""
    try:
        names = os.listdir(_BASE_PARENT)
    except OSError:
        return
    for name in names:
        pid = name[len(_PREFIX):].split("-", 1)[0]
        if name.startswith(_PREFIX) and pid.isdigit() and int(pid) != os.getpid() \
                and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(os.path.join(_BASE_PARENT, name), ignore_errors=True)


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when the process that started it dies
    (prctl PR_SET_PDEATHSIG), so a crashed test leaves no munged/slurmctld."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


_CONF = """\
# Written by jray._private.slurm_testing: a throwaway cluster.
ClusterName=jraytest
SlurmctldHost={ctl_name}({ctl_addr})
SlurmctldPort={ctl_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
AuthInfo=socket={munge_socket}
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool/%n
SlurmctldPidFile={base}/run/slurmctld.pid
SlurmdPidFile={base}/run/slurmd-%n.pid
SlurmctldLogFile={base}/log/slurmctld.log
SlurmdLogFile={base}/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
# Fast for tests: cancelled jobs get SIGKILL {kill_wait} s after SIGTERM, a
# finished job leaves squeue soon, the scheduler looks often.
KillWait={kill_wait}
MinJobAge=10
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
MessageTimeout=10
SchedulerParameters=sched_interval=1,bf_interval=1
{nodes}
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


class SlurmCluster:
    """A running SLURM of ``nodes`` nodes (``n1``...), each with ``cpus`` CPUs and
    ``memory_mb`` of RealMemory, one partition ``debug`` holding them all."""

    def __init__(self, nodes: int = 3, cpus: int = 2, memory_mb: int = 2000, kill_wait: int = 5,
                 timeout: float = 60) -> None:
        reason = unavailable_reason()
        if reason is not None:
            raise RuntimeError(reason)
        self.node_names = [f"n{i + 1}" for i in range(nodes)]
        self.kill_wait = kill_wait
        cleanup_stale()
        self.base = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=_BASE_PARENT)
        self.conf = os.path.join(self.base, "slurm.conf")
        os.chmod(self.base, 0o755)  # job scripts and their output live here; munge's dir stays private
        self.hosts = vh.VirtualHosts()
        self._procs: list[subprocess.Popen[bytes]] = []
        self._closed = False
        try:
            self._start(cpus, memory_mb, kill_wait, timeout)
        except BaseException:
            self.close()
            raise

    # -- bring-up -----------------------------------------------------------------------------
    def _start(self, cpus: int, memory_mb: int, kill_wait: int, timeout: float) -> None:
        for d in ("munge", "state", "spool", "run", "log", "jobs"):
            os.makedirs(os.path.join(self.base, d), exist_ok=True)
        os.chmod(os.path.join(self.base, "munge"), 0o700)  # munged refuses a dir others can write
        hosts = [self.hosts.add_host(name) for name in self.node_names]
        self.munge_socket = os.path.join(self.base, "munge", "munge.sock")
        self._start_munged()
        ctl_addr = self.hosts.gateway
        self.ctl_port = _free_port(ctl_addr)
        nodes = "\n".join(
            f"NodeName={h.name} NodeAddr={h.ip} NodeHostname={h.name} CPUs={cpus} Sockets=1 "
            f"CoresPerSocket={cpus} ThreadsPerCore=1 RealMemory={memory_mb} State=UNKNOWN"
            for h in hosts)
        with open(self.conf, "w") as f:
            f.write(_CONF.format(ctl_name=socket.gethostname().split(".")[0], ctl_addr=ctl_addr,
                                 ctl_port=self.ctl_port, slurmd_port=6818, munge_socket=self.munge_socket,
                                 base=self.base, kill_wait=kill_wait, nodes=nodes))
        self._spawn([_bin("slurmctld"), "-D", "-i", "-f", self.conf], "slurmctld")
        for h in hosts:
            os.makedirs(os.path.join(self.base, "spool", h.name), exist_ok=True)
            log = open(os.path.join(self.base, "log", f"slurmd-{h.name}.out"), "wb")
            env = {**h.env, "SLURM_CONF": self.conf}
            p = h.popen([_bin("slurmd"), "-D", "-N", h.name, "-f", self.conf], env=env, stdout=log,
                        stderr=subprocess.STDOUT)
            log.close()
            self._procs.append(p)
        self.wait_idle(timeout)

    def _spawn(self, argv: Sequence[str], name: str) -> subprocess.Popen[bytes]:
        with open(os.path.join(self.base, "log", f"{name}.out"), "wb") as log:
            p = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env=self.env(), start_new_session=True, preexec_fn=_die_with_parent)
        self._procs.append(p)
        return p

    def _start_munged(self) -> None:
        d = os.path.join(self.base, "munge")
        key = os.path.join(d, "munge.key")
        with open(os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400), "wb") as f:
            f.write(os.urandom(1024))
        self._spawn([_bin("munged"), "-F", "--force", f"--key-file={key}", f"--socket={self.munge_socket}",
                     f"--pid-file={d}/munged.pid", f"--log-file={d}/munged.log", f"--seed-file={d}/munged.seed"],
                    "munged")
        deadline = time.monotonic() + 10
        while not os.path.exists(self.munge_socket):
            if self._procs[-1].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"munged did not start:\n{self.log('munged.out')}\n{self.log('munge/munged.log')}")
            time.sleep(0.05)

    def wait_idle(self, timeout: float = 60) -> None:
        """Block until every node is up and idle (``sinfo``), or raise with the logs."""
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            for p in self._procs:
                if p.poll() is not None:
                    raise RuntimeError(f"a SLURM daemon exited ({p.args!r}, {p.returncode}):\n{self._logs()}")
            res = self.run(["sinfo", "-h", "-N", "-o", "%N %t"], check=False)
            last = res.stdout + res.stderr
            states = dict(line.split() for line in res.stdout.splitlines() if len(line.split()) == 2)
            if res.returncode == 0 and all(states.get(n) == "idle" for n in self.node_names):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"SLURM nodes not idle within {timeout} s: {last!r}\n{self._logs()}")
            time.sleep(0.2)

    # -- use ----------------------------------------------------------------------------------
    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """An environment for SLURM's commands (and for sbatch's jobs, which
        inherit it): ``SLURM_CONF``, and no jray cluster variables of this process."""
        env = dict(os.environ if base is None else base)
        for var in ("JRAY_ADDRESS", "JRAY_TOKEN", "RAY_ADDRESS", "JRAY_SESSION_DIR", "JRAY_RAYLET_PID",
                    "JRAY_TMPDIR"):
            env.pop(var, None)
        env["SLURM_CONF"] = self.conf
        env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", ""), "/usr/sbin"])
        return env

    def run(self, argv: Sequence[str], check: bool = True, timeout: float = 30,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """A SLURM command (``sbatch``, ``squeue``...) on the login node (this namespace)."""
        res = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                             env=dict(env) if env is not None else self.env(), stdin=subprocess.DEVNULL)
        if check and res.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
        return res

    def jobs(self) -> dict[str, str]:
        """Job id -> state of the jobs SLURM still lists."""
        res = self.run(["squeue", "-h", "-o", "%i %T"])
        return dict(line.split() for line in res.stdout.splitlines() if len(line.split()) == 2)

    def wait_job_gone(self, job_id: str, timeout: float = 60) -> None:
        """Block until ``job_id`` has left the queue (finished, failed or cancelled)."""
        deadline = time.monotonic() + timeout
        while job_id in self.jobs():
            if time.monotonic() > deadline:
                raise TimeoutError(f"SLURM job {job_id} still queued/running after {timeout} s")
            time.sleep(0.2)

    def host(self, name: str) -> vh.Host:
        return self.hosts[name]

    def node_processes(self, name: str) -> list[str]:
        """Command lines of the processes on node ``name``, its slurmd excepted."""
        out = []
        for pid in self.hosts[name].processes():
            cmd = vh._cmd(pid)
            if "slurmd" not in cmd.split(" ", 1)[0]:
                out.append(cmd)
        return out

    def node_shm(self, name: str) -> list[str]:
        """Files in node ``name``'s /dev/shm."""
        return sorted(os.listdir(self.hosts[name].fs_path("/dev/shm")))

    def log(self, rel: str) -> str:
        try:
            with open(os.path.join(self.base, "log" if "/" not in rel else "", rel), errors="replace") as f:
                return f.read()[-4000:]
        except OSError as e:
            return f"({e})"

    def _logs(self) -> str:
        parts = [f"--- {n}\n{self.log(n)}" for n in ("munged.out", "slurmctld.out", "slurmctld.log")]
        parts += [f"--- slurmd {n}\n{self.log(f'slurmd-{n}.log')}{self.log(f'slurmd-{n}.out')}"
                  for n in self.node_names]
        return "\n".join(parts)

    # -- teardown -----------------------------------------------------------------------------
    def close(self) -> None:
        """Cancel every job, stop every daemon (by pid), remove the hosts and the temp dir. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:  # jobs still running get SIGTERM (their traps stop their daemons), then a bounded wait
            if all(p.poll() is None for p in self._procs) and self.jobs():
                self.run(["scancel", "--full", "-u", "root"], check=False, timeout=10)
                deadline = time.monotonic() + self.kill_wait + 5
                while self.jobs() and time.monotonic() < deadline:
                    time.sleep(0.2)
        except (OSError, subprocess.SubprocessError, RuntimeError):
            pass
        self.hosts.close()  # every slurmd, slurmstepd and job process (the hosts' pid namespaces)
        for p in reversed(self._procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self._procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> SlurmCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _bin(name: str) -> str:
    path = _which(name)
    if path is None:
        raise RuntimeError(f"{name} not found")
    return path


__all__ = ["SlurmCluster", "cleanup_stale", "unavailable_reason"]
