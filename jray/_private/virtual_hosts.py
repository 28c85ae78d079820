"""Several machines on one box: a test harness of "hosts" that share nothing
but a network.

Each :class:`Host` is a network namespace (``ip netns``) wired by a veth
pair to a Linux bridge in the root namespace, with its own private IPv4
address (``10.A.B.X/24``, a subnet and bridge picked per
:class:`VirtualHosts` instance and checked against the routes in use), its
own loopback, and a keeper process (``unshare --mount --pid --uts --ipc
--fork``) that is pid 1 of the host's pid namespace and holds a mount
namespace with private tmpfs mounts on ``/tmp`` and ``/dev/shm`` (and a
fresh ``/proc``). Processes are started inside with ``nsenter -t <keeper>``,
so a file in one host's ``/tmp`` or shared memory is invisible to the
others and to the root namespace: only the network connects them. The
root namespace has address ``.1`` on the bridge, so the test process can
reach every host.

Killing the keeper (pid 1 of the namespace) kills everything in the host,
daemons included: :meth:`VirtualHosts.close` does that, then removes the
veths, the namespaces and the bridge. The keeper also exits when the
process that made it dies (it watches a pipe from it), so a crashed test
leaves no process behind; links and namespaces of such a run are removed
by the next :class:`VirtualHosts` (``cleanup_stale``).

Needs root, ``ip``, ``unshare`` and ``nsenter``: :func:`unavailable_reason`
says why not (tests skip with it). ``netem`` (delay, loss) uses the kernel's
``sch_netem`` where it has it (:func:`netem_unavailable_reason`), else
jray's userspace delay line on a TUN device (:mod:`delay_line`): either
way, :func:`delay_unavailable_reason` says whether it can run.

The jray helpers at the end start ``jray start --head`` / ``--address``
inside hosts and run driver scripts there.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable, Sequence
from typing import Any

# pid 1 of a host: reaps orphans (daemons double-fork), exits when the
# process that started it goes away (its stdin, a pipe from it, reaches EOF);
# the kernel then kills everything else in the host's pid namespace.
_KEEPER = r"""
import os, select, sys
os.write(1, b"ready\n")
while True:
    r, _, _ = select.select([0], [], [], 0.2)
    if r and not os.read(0, 1):
        sys.exit(0)
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
"""

# Run by the keeper (as pid 1 of the new namespaces) before it becomes the keeper.
# The paths after the first three arguments are under /tmp and stay visible
# in the host (the checkout and the virtualenv, when they live there): the
# old /tmp is bound on /dev/shm for a moment, they are bound back from it.
_SETUP = (
    'name=$1; py=$2; code=$3; shift 3; '
    "mount --bind /tmp /dev/shm && mount -t tmpfs -o mode=1777 tmpfs /tmp && "
    'for p in "$@"; do mkdir -p "$p" && mount --bind "/dev/shm${p#/tmp}" "$p" || exit 1; done && '
    "umount /dev/shm && mount -t tmpfs -o mode=1777 tmpfs /dev/shm"
    ' && hostname "$name" && exec "$py" -I -S -c "$code"'
)


def _kept_under_tmp() -> list[str]:
    """The checkout and the Python environment, where they live under /tmp
    (a fresh clone there): a host's private /tmp must still show them."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    paths = {os.path.realpath(p) for p in (root, sys.prefix, sys.base_prefix, os.path.dirname(sys.executable))}
    under = sorted(p for p in paths if p.startswith("/tmp/"))
    out: list[str] = []
    for p in under:  # shortest first: a path inside one already kept needs nothing
        if not any(p == q or p.startswith(q + "/") for q in out):
            out.append(p)
    return out

_NAME_PREFIX = "jv"  # every link and namespace of this harness: jv<pid, 5 base-36 digits><instance, 2>...
_IFACE = "eth0"  # the host's end of its veth pair, inside its namespace
_DELAY_TUN = "jdelay0"  # the delay line's TUN device, inside a host's namespace
_DELAY_LINE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "delay_line.py")
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_instances = itertools.count()


def _b36(n: int, width: int) -> str:
    s = ""
    while n:
        n, d = divmod(n, 36)
        s = _B36[d] + s
    return s.rjust(width, "0")[-width:]


def _sh(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


# -- can it run here? -----------------------------------------------------------------------


@functools.cache
def unavailable_reason() -> str | None:
    """None when the harness works on this machine, else why not (for ``pytest.skip``).
    Tries a namespace, a bridge and a pid namespace once (cached)."""
    if not sys.platform.startswith("linux"):
        return "virtual hosts need Linux namespaces"
    if os.geteuid() != 0:
        return "virtual hosts need root (network and mount namespaces)"
    for tool in ("ip", "unshare", "nsenter", "mount"):
        if shutil.which(tool) is None:
            return f"virtual hosts need the '{tool}' command"
    probe = f"{_NAME_PREFIX}{_b36(os.getpid(), 5)}zzprobe"
    try:
        _sh("ip", "netns", "add", probe)
        try:
            _sh("ip", "link", "add", probe[:15], "type", "bridge")
            _sh("ip", "link", "del", probe[:15])
            _sh("ip", "-n", probe, "link", "set", "lo", "up")
        finally:
            _sh("ip", "netns", "del", probe, check=False)
        _sh("unshare", "--mount", "--pid", "--uts", "--ipc", "--fork", "--mount-proc", "--propagation",
            "private", "sh", "-c", "mount -t tmpfs tmpfs /tmp && hostname probe")
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        return f"virtual hosts cannot be made here: {e}"
    return None


@functools.cache
def netem_unavailable_reason() -> str | None:
    """None when ``tc qdisc ... netem`` works (delay, loss), else why not."""
    base = unavailable_reason()
    if base is not None:
        return base
    if shutil.which("tc") is None:
        return "netem needs the 'tc' command"
    probe = f"{_NAME_PREFIX}{_b36(os.getpid(), 5)}zznetem"
    try:
        _sh("ip", "netns", "add", probe)
        try:
            _sh("tc", "-n", probe, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms")
        finally:
            _sh("ip", "netns", "del", probe, check=False)
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        return f"tc netem does not work here (kernel without sch_netem?): {e}"
    return None


def delay_unavailable_reason() -> str | None:
    """None when :meth:`Host.netem` can emulate delay and loss here: with the
    kernel's netem, or else with the userspace delay line (a TUN device)."""
    netem = netem_unavailable_reason()
    if netem is None:
        return None
    base = unavailable_reason()
    if base is not None:
        return base
    if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        return f"no network emulation here: {netem}; and no /dev/net/tun for jray's delay line"
    return None


def delay_emulation() -> str:
    """What :meth:`Host.netem` uses here: ``"netem"`` or ``"delay line"`` (see :func:`delay_unavailable_reason`)."""
    return "netem" if netem_unavailable_reason() is None else "delay line"


def _mac_of(netns: str | None, dev: str) -> str:
    argv = ["ip", "-j", "link", "show", "dev", dev] if netns is None else ["ip", "-n", netns, "-j", "link", "show",
                                                                           "dev", dev]
    return str(json.loads(_sh(*argv).stdout)[0]["address"])


# -- processes of a namespace ---------------------------------------------------------------


def _ns_link(pid: int, kind: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def _pids_in(kind: str, links: set[str]) -> list[int]:
    """Live (not zombie) pids whose ``kind`` namespace is one of ``links``."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            pid = int(entry)
            if _ns_link(pid, kind) in links and not _is_zombie(pid):
                out.append(pid)
    return sorted(out)


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


class HostProcess(subprocess.Popen):
    """A process started in a host. ``pid`` is the ``nsenter`` that started it
    (in the root namespace; it exits with the process's status); signals go
    to the process itself (``inner_pid``)."""

    _inner: int | None = None

    def inner_pid(self, timeout: float = 2.0) -> int | None:
        """The process in the host (its pid as the root namespace sees it)."""
        if self._inner is not None:
            return self._inner
        deadline = time.monotonic() + timeout
        while True:
            kids = _children(self.pid)
            if kids:
                self._inner = kids[0]
                return kids[0]
            if self.poll() is not None or time.monotonic() > deadline:
                return None
            time.sleep(0.005)

    def send_signal(self, sig: int) -> None:
        if self.poll() is not None:
            return
        inner = self.inner_pid()
        if inner is not None:
            try:
                os.kill(inner, sig)
            except ProcessLookupError:
                pass


# -- hosts ----------------------------------------------------------------------------------


class Host:
    """One machine: its own network, /tmp, /dev/shm, pids and hostname."""

    def __init__(self, owner: VirtualHosts, name: str, ip: str, netns: str, veth: str) -> None:
        self.owner = owner
        self.name = name
        self.ip = ip
        self.netns = netns
        self.veth = veth  # the root namespace's end of the pair (the host's is eth0)
        self.keeper_pid = 0  # pid 1 of the host, as the root namespace sees it
        self.pidns = ""
        self.netns_link = ""
        self._keeper: subprocess.Popen | None = None  # the unshare parent
        self._procs: list[subprocess.Popen] = []
        self._delay_line: subprocess.Popen | None = None  # jray's netem stand-in, while one runs
        env = dict(os.environ)
        for var in ("JRAY_ADDRESS", "JRAY_TOKEN", "RAY_ADDRESS", "JRAY_SESSION_DIR", "JRAY_RAYLET_PID"):
            env.pop(var, None)
        env.update(TMPDIR="/tmp", JRAY_TMPDIR="/tmp/jray", HOSTNAME=name)
        self.env: dict[str, str] = env

    def __repr__(self) -> str:
        return f"Host({self.name!r}, ip={self.ip!r})"

    def _start_keeper(self) -> None:
        self._keeper = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.netns}", "unshare", "--mount", "--pid", "--uts", "--ipc",
             "--fork", "--kill-child", "--mount-proc", "--propagation", "private",
             "sh", "-c", _SETUP, "keeper", self.name, sys.executable, _KEEPER, *_kept_under_tmp()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self._keeper.stdout is not None
        line = self._keeper.stdout.readline()
        if line != b"ready\n":
            self._keeper.kill()
            _, err = self._keeper.communicate(timeout=10)
            raise RuntimeError(f"host {self.name}: the keeper did not start: {err.decode(errors='replace')}")
        kids = _children(self._keeper.pid)
        if len(kids) != 1:
            raise RuntimeError(f"host {self.name}: cannot find the keeper process (unshare children {kids})")
        self.keeper_pid = kids[0]
        self.pidns = _ns_link(self.keeper_pid, "pid") or ""
        self.netns_link = _ns_link(self.keeper_pid, "net") or ""

    # -- processes ----------------------------------------------------------------------------
    def popen(self, argv: Sequence[str], env: dict[str, str] | None = None, cwd: str | None = None,
              **kwargs: Any) -> HostProcess:
        """Start ``argv`` inside the host (its network, mounts, pids). ``env``
        defaults to :attr:`env`; ``cwd`` (a path inside the host) to /tmp.
        Other arguments go to :class:`subprocess.Popen` (stdout, stderr, text...)."""
        if not self.keeper_pid:
            raise RuntimeError(f"host {self.name} is closed")
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        p = HostProcess(
            ["nsenter", "-t", str(self.keeper_pid), "--net", "--mount", "--pid", "--uts", "--ipc",
             f"--wdns={cwd or '/tmp'}", "--", *argv],
            env=self.env if env is None else env, **kwargs)
        p.inner_pid(timeout=10)  # started in the host when this returns (processes() and kill_all see it)
        self._procs = [q for q in self._procs if q.poll() is None]
        self._procs.append(p)
        return p

    def run(self, argv: Sequence[str], timeout: float = 60, env: dict[str, str] | None = None,
            cwd: str | None = None, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the host to its end; stdout and stderr captured as text.
        Past ``timeout`` the process is killed and ``TimeoutExpired`` raised."""
        p = self.popen(argv, env=env, cwd=cwd, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = p.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            raise subprocess.TimeoutExpired(list(argv), timeout, output=out, stderr=err) from None
        return subprocess.CompletedProcess(list(argv), p.returncode, out, err)

    def run_python(self, code: str, timeout: float = 60, env: dict[str, str] | None = None,
                   cwd: str | None = None) -> subprocess.CompletedProcess[str]:
        """``python -c code`` (this interpreter) inside the host."""
        return self.run([sys.executable, "-c", textwrap.dedent(code)], timeout=timeout, env=env, cwd=cwd)

    def processes(self) -> list[int]:
        """Live processes in the host (root-namespace pids), the keeper excepted."""
        if not self.pidns:
            return []
        return [p for p in _pids_in("pid", {self.pidns}) if p != self.keeper_pid]

    def kill_all(self, timeout: float = 10) -> None:
        """SIGKILL every process in the host (power loss for its processes)."""
        deadline = time.monotonic() + timeout
        while True:
            left = self.processes()
            if not left:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"host {self.name}: processes {left} survive SIGKILL")
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)
        for q in self._procs:  # the nsenters: they end with their process
            try:
                q.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        self._procs = [q for q in self._procs if q.poll() is None]

    # -- network ------------------------------------------------------------------------------
    def link_down(self) -> None:
        """Cut the host's cable (its veth at the bridge): packets to and from it
        are dropped, as in a partition; its own address still works inside it."""
        _sh("ip", "link", "set", self.veth, "down")

    def link_up(self) -> None:
        _sh("ip", "link", "set", self.veth, "up")

    def netem(self, delay_ms: float = 0, loss_pct: float = 0) -> None:
        """Delay (ms) and lose (%) packets in each direction of the host's link:
        a round trip with this host grows by twice ``delay_ms``; both 0 remove
        the emulation. With the kernel's ``tc netem`` where it has one, else
        with jray's userspace delay line (:mod:`jray._private.delay_line`),
        which holds the host's outgoing packets for the whole round-trip
        delay and drops them with the loss of both directions together.
        Raises RuntimeError where neither can run (:func:`delay_unavailable_reason`)."""
        if delay_ms < 0 or not 0 <= loss_pct <= 100:
            raise ValueError(f"netem needs delay_ms >= 0 and loss_pct within 0..100, not {delay_ms}, {loss_pct}")
        if netem_unavailable_reason() is None:
            spec = ["delay", f"{delay_ms}ms"] if delay_ms else []
            spec += ["loss", f"{loss_pct}%"] if loss_pct else []
            for tc, dev in ((["tc", "-n", self.netns], _IFACE), (["tc"], self.veth)):  # both directions
                if spec:
                    _sh(*tc, "qdisc", "replace", "dev", dev, "root", "netem", *spec)
                else:
                    _sh(*tc, "qdisc", "del", "dev", dev, "root", check=False)
            return
        reason = delay_unavailable_reason()
        if reason is not None:
            raise RuntimeError(reason)
        if not delay_ms and not loss_pct:
            self._stop_delay_line()
            return
        one_way_kept = 1.0 - loss_pct / 100.0
        self._set_delay_line(2 * delay_ms, 100.0 * (1.0 - one_way_kept * one_way_kept))

    def _set_delay_line(self, delay_ms: float, loss_pct: float) -> None:
        line = self._delay_line
        if line is not None and line.poll() is None:
            self._tell_delay_line(f"set {delay_ms} {loss_pct}")
            return
        self._delay_line = None
        argv = [sys.executable, "-I", _DELAY_LINE, "--tun", _DELAY_TUN, "--dev", _IFACE,
                "--src-mac", _mac_of(self.netns, _IFACE), "--delay-ms", str(delay_ms), "--loss-pct", str(loss_pct)]
        for ip, mac in self.owner._macs().items():
            if ip != self.ip:
                argv += ["--mac", f"{ip}={mac}"]
        # In the host's network namespace only: a part of the network, not a process of the host
        # (kill_all and power_off leave it; stopping the emulation or closing the hosts ends it).
        proc = subprocess.Popen(["ip", "netns", "exec", self.netns, *argv], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None
        if proc.stdout.readline() != b"ready\n":
            proc.kill()
            _, err = proc.communicate(timeout=10)
            raise RuntimeError(f"host {self.name}: the delay line did not start: {err.decode(errors='replace')}")
        self._delay_line = proc
        try:
            # What comes in on eth0 now has no route back through eth0: loose source checks.
            _sh("ip", "netns", "exec", self.netns, "sh", "-c",
                f"echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter && echo 0 > /proc/sys/net/ipv4/conf/{_IFACE}/rp_filter")
            _sh("ip", "-n", self.netns, "route", "replace", str(self.owner.network), "dev", _DELAY_TUN, "src", self.ip)
        except BaseException:
            self._stop_delay_line()
            raise

    def _tell_delay_line(self, command: str) -> None:
        line = self._delay_line
        if line is None or line.stdin is None:
            return
        try:
            line.stdin.write(command.encode() + b"\n")
            line.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise RuntimeError(f"host {self.name}: the delay line is gone ({e})") from None

    def _stop_delay_line(self) -> None:
        line, self._delay_line = self._delay_line, None
        if line is None:
            return
        _sh("ip", "-n", self.netns, "route", "replace", str(self.owner.network), "dev", _IFACE, "proto", "kernel",
            "scope", "link", "src", self.ip, check=False)
        try:
            if line.stdin is not None:
                line.stdin.close()  # its end of input ends it
            line.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            line.kill()
            line.wait(timeout=5)
        finally:
            for f in (line.stdout, line.stderr):
                if f is not None:
                    f.close()

    # -- power --------------------------------------------------------------------------------
    def power_off(self) -> None:
        """Power loss: every process killed, the link down, /dev/shm emptied
        (memory is lost; /tmp stands for the disk and is kept)."""
        self.kill_all()
        self.link_down()
        shm = self.fs_path("/dev/shm")
        for entry in os.listdir(shm):
            path = os.path.join(shm, entry)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.unlink(path)
                except OSError:
                    pass

    def power_on(self) -> None:
        """The link back up (start daemons again yourself, as after a boot)."""
        self.link_up()

    # -- files --------------------------------------------------------------------------------
    def fs_path(self, path: str) -> str:
        """Where a file of the host (e.g. in its private /tmp) is, seen from the root namespace."""
        if not path.startswith("/"):
            raise ValueError(f"fs_path needs an absolute path inside the host, not {path!r}")
        if not self.keeper_pid:
            raise RuntimeError(f"host {self.name} is closed")
        return f"/proc/{self.keeper_pid}/root{path}"

    def _close(self) -> None:
        self._stop_delay_line()
        if self._keeper is not None:
            try:
                if self.keeper_pid:
                    os.kill(self.keeper_pid, signal.SIGKILL)  # the kernel kills the rest of the namespace
            except ProcessLookupError:
                pass
            self._keeper.kill()
            try:
                self._keeper.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            self._keeper = None
        deadline = time.monotonic() + 10
        while self.pidns and _pids_in("pid", {self.pidns}) and time.monotonic() < deadline:
            time.sleep(0.02)
        for q in self._procs:
            try:
                q.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                q.kill()
        self._procs = []
        self.keeper_pid = 0


class VirtualHosts:
    """A set of hosts on one bridge. Use as a context manager, or call :meth:`close`."""

    def __init__(self) -> None:
        reason = unavailable_reason()
        if reason is not None:
            raise RuntimeError(reason)
        cleanup_stale()
        self.prefix = f"{_NAME_PREFIX}{_b36(os.getpid(), 5)}{_b36(next(_instances), 2)}"
        self.bridge = self.prefix + "br"
        self.hosts: list[Host] = []
        self._closed = False
        self._links: set[str] = set()
        self.network = _free_subnet()
        self.gateway = str(self.network.network_address + 1)  # the root namespace's address
        try:
            _sh("ip", "link", "add", self.bridge, "type", "bridge")
            self._links.add(self.bridge)
            _sh("ip", "addr", "add", f"{self.gateway}/{self.network.prefixlen}", "dev", self.bridge)
            _sh("ip", "link", "set", self.bridge, "up")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> VirtualHosts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getitem__(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def add_host(self, name: str) -> Host:
        """A new host, up, with the next free address of the subnet."""
        if self._closed:
            raise RuntimeError("these virtual hosts are closed")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,30}", name) or any(h.name == name for h in self.hosts):
            raise ValueError(f"bad or duplicate host name {name!r}")
        idx = len(self.hosts)
        if idx >= 250:
            raise RuntimeError("at most 250 hosts")
        ip = str(self.network.network_address + 2 + idx)
        host = Host(self, name, ip, f"{self.prefix}-{name}", f"{self.prefix}h{_b36(idx, 2)}")
        self.hosts.append(host)
        peer = f"{self.prefix}p{_b36(idx, 2)}"
        _sh("ip", "netns", "add", host.netns)
        _sh("ip", "link", "add", host.veth, "type", "veth", "peer", "name", peer)
        self._links.add(host.veth)
        _sh("ip", "link", "set", peer, "netns", host.netns)
        _sh("ip", "-n", host.netns, "link", "set", peer, "name", _IFACE)
        _sh("ip", "-n", host.netns, "addr", "add", f"{ip}/{self.network.prefixlen}", "dev", _IFACE)
        _sh("ip", "-n", host.netns, "link", "set", _IFACE, "up")
        _sh("ip", "-n", host.netns, "link", "set", "lo", "up")
        _sh("ip", "link", "set", host.veth, "master", self.bridge)
        _sh("ip", "link", "set", host.veth, "up")
        host._start_keeper()
        for h in self.hosts:  # a delay line running on another host must know where the new one is
            if h is not host and h._delay_line is not None:
                h._tell_delay_line(f"mac {ip} {_mac_of(host.netns, _IFACE)}")
        return host

    def _macs(self) -> dict[str, str]:
        """IPv4 address -> MAC of every host's interface and of the root namespace's bridge."""
        out = {self.gateway: _mac_of(None, self.bridge)}
        for h in self.hosts:
            out[h.ip] = _mac_of(h.netns, _IFACE)
        return out

    def close(self) -> None:
        """Kill every process of every host, remove veths, namespaces and the
        bridge. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for h in self.hosts:
            h._close()
        for h in self.hosts:
            _sh("ip", "link", "del", h.veth, check=False)
            _sh("ip", "netns", "del", h.netns, check=False)
        _sh("ip", "link", "del", self.bridge, check=False)

    def leftovers(self) -> list[str]:
        """What of these hosts is still there (namespaces, links, processes): [] after a clean close."""
        out = [f"netns {n}" for n in _netns_names() if n.startswith(self.prefix)]
        out += [f"link {n}" for n in _link_names() if n.startswith(self.prefix)]
        pidns = {h.pidns for h in self.hosts if h.pidns}
        netns = {h.netns_link for h in self.hosts if h.netns_link}
        pids = set(_pids_in("pid", pidns)) | set(_pids_in("net", netns))
        out += [f"process {p} ({_cmd(p)})" for p in sorted(pids)]
        return out


def _cmd(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:200]
    except OSError:
        return "?"


def _netns_names() -> list[str]:
    res = _sh("ip", "netns", "list", check=False)
    return [line.split()[0] for line in res.stdout.splitlines() if line.strip()]


def _link_names() -> list[str]:
    res = _sh("ip", "-o", "link", "show", check=False)
    names = []
    for line in res.stdout.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@", 1)[0])
    return names


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.64.0.0/10 that no address or route here overlaps, picked from the pid."""
    used: list[ipaddress.IPv4Network] = []
    for line in _sh("ip", "-o", "-4", "addr", "show", check=False).stdout.splitlines():
        m = re.search(r"inet (\S+)", line)
        if m:
            used.append(ipaddress.IPv4Interface(m.group(1)).network)
    for line in _sh("ip", "-4", "route", "show", "table", "all", check=False).stdout.splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("default", "broadcast", "local", "unreachable", "blackhole", "prohibit"):
            word = line.split()[1] if word != "default" and len(line.split()) > 1 else ""
        try:
            used.append(ipaddress.IPv4Network(word, strict=False))
        except ValueError:
            pass
    start = (os.getpid() * 7919 + next(_instances) * 131) % 16384
    for i in range(16384):
        n = (start + i) % 16384
        net = ipaddress.IPv4Network(f"10.{64 + n // 256}.{n % 256}.0/24")
        if not any(net.overlaps(u) for u in used if u.prefixlen > 0):
            return net
    raise RuntimeError("no free /24 in 10.64.0.0/10 for virtual hosts")


def cleanup_stale() -> None:
    """Remove links and namespaces this harness left from processes that are gone."""
    mine = re.compile(rf"{_NAME_PREFIX}([0-9a-z]{{5}})")

    def dead(name: str) -> bool:
        m = mine.match(name)
        if m is None:
            return False
        pid = int(m.group(1), 36)
        return pid != os.getpid() and not os.path.exists(f"/proc/{pid}")

    for name in _link_names():
        if dead(name):
            _sh("ip", "link", "del", name, check=False)
    for name in _netns_names():
        if dead(name):
            _sh("ip", "netns", "del", name, check=False)


# -- jray on virtual hosts --------------------------------------------------------------------

CLI = [sys.executable, "-m", "jray.scripts"]
DEFAULT_STORE = 128 * 1024 * 1024


def jray_env(host: Host, **extra: Any) -> dict[str, str]:
    """The host's environment plus ``extra`` (values as strings)."""
    return {**host.env, **{k: str(v) for k, v in extra.items()}}


def _check(res: subprocess.CompletedProcess[str], what: str) -> subprocess.CompletedProcess[str]:
    if res.returncode != 0:
        raise RuntimeError(f"{what} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res


def start_head(host: Host, num_cpus: float = 1, extra_args: Iterable[str] = (),
               object_store_memory: int = DEFAULT_STORE, env: dict[str, Any] | None = None,
               timeout: float = 60) -> tuple[str, str]:
    """``jray start --head`` on ``host`` (its daemons run detached inside it);
    returns (GCS address, token)."""
    res = _check(host.run([*CLI, "start", "--head", "--node-ip-address", host.ip, "--num-cpus", _num(num_cpus),
                           "--object-store-memory", str(object_store_memory), *extra_args],
                          env=jray_env(host, **(env or {})), timeout=timeout), f"jray start --head on {host.name}")
    m = re.search(r"JRAY_ADDRESS=(\S+) JRAY_TOKEN=(\S+)", res.stdout)
    if m is not None:
        return m.group(1), m.group(2)
    with open(host.fs_path("/tmp/jray/jray_current_cluster")) as f:
        session = json.load(f)["session_dir"]
    with open(host.fs_path(os.path.join(session, "cluster.json"))) as f:
        info = json.load(f)
    return info["gcs_address"], info["token"]


def start_node(host: Host, address: str, token: str, num_cpus: float = 1, extra_args: Iterable[str] = (),
               object_store_memory: int = DEFAULT_STORE, env: dict[str, Any] | None = None,
               timeout: float = 60) -> str:
    """``jray start --address`` on ``host``: a node joining the cluster; returns its node id (hex)."""
    res = _check(host.run([*CLI, "start", "--address", address, "--node-ip-address", host.ip,
                           "--num-cpus", _num(num_cpus), "--object-store-memory", str(object_store_memory),
                           *extra_args],
                          env=jray_env(host, JRAY_TOKEN=token, **(env or {})), timeout=timeout),
                 f"jray start --address on {host.name}")
    m = re.search(r"Started a jray node ([0-9a-f]+)", res.stdout)
    return m.group(1) if m else ""


def stop_jray(host: Host, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``jray stop`` on ``host`` (what its address file records)."""
    return host.run([*CLI, "stop"], env=jray_env(host), timeout=timeout)


def run_driver(host: Host, script: str, address: str, token: str, timeout: float = 60,
               env: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a driver script (``jray.init()`` finds the cluster through
    JRAY_ADDRESS and JRAY_TOKEN) inside ``host``."""
    return host.run_python(script, timeout=timeout,
                           env=jray_env(host, JRAY_ADDRESS=address, JRAY_TOKEN=token, **(env or {})))


def run_driver_json(host: Host, script: str, address: str, token: str, timeout: float = 60,
                    env: dict[str, Any] | None = None) -> Any:
    """:func:`run_driver`, then the last line of its stdout parsed as JSON."""
    res = _check(run_driver(host, script, address, token, timeout, env), f"driver on {host.name}")
    lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
    if not lines:
        raise RuntimeError(f"driver on {host.name} printed nothing:\n{res.stderr[-3000:]}")
    return json.loads(lines[-1])


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


__all__ = ["Host", "HostProcess", "VirtualHosts", "cleanup_stale", "delay_emulation", "delay_unavailable_reason",
           "jray_env", "netem_unavailable_reason",
           "run_driver", "run_driver_json", "start_head", "start_node", "stop_jray", "unavailable_reason"]
