"""``jray profile`` / ``jray.util.profiling.profile`` / ``%jray profile``: a
CPU profile of an actor's or a task's worker for N seconds, on a real
cluster: the hot function is on top, idle waits are left out, the flame
graph is an SVG naming it, and the worker goes on working."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

import jray
from jray.util.profiling import profile


def burn_in_hot_loop(seconds: float) -> int:
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        n += sum(i * i for i in range(200))
    return n


@jray.remote
class Busy:
    def spin(self, seconds: float) -> int:
        return burn_in_hot_loop(seconds)

    def ping(self) -> str:
        return "pong"


@jray.remote
def spinning_task(seconds: float) -> int:
    return burn_in_hot_loop(seconds)


def test_actor_profile_names_the_hot_function(jray_cluster, tmp_path) -> None:
    a = Busy.options(max_concurrency=2).remote()
    assert jray.get(a.ping.remote(), timeout=60) == "pong"
    work = a.spin.remote(8)
    p = profile(actor_id=a._actor_id.hex(), duration=1.5)
    assert p.cpu_seconds > 0.1
    # The threads blocked in C (the event loop, gRPC's poller) weigh nothing: the hot loop is nearly all.
    # (A running generator's frame may come without its callers: count this file's frames.)
    hot = sum(n for stack, n in p.folded.items() if "test_profile.py" in stack)
    assert hot >= 0.8 * p.samples, p.folded
    top = p.top(5)
    assert "test_profile.py" in top.splitlines()[1]  # own code first
    assert "actor Busy" in top and "threading.py" not in top
    svg = p.to_svg()
    assert svg.startswith("<svg") and "burn_in_hot_loop" in svg and "spin" in svg
    assert p._repr_svg_() == svg
    # The CLI, by pid, writes the SVG.
    info = jray_cluster.address_info
    from jray._private import node as _node

    env = dict(os.environ, JRAY_ADDRESS=info["gcs_address"], JRAY_TOKEN=_node.STARTED_HERE[info["gcs_address"]])
    out = subprocess.run([sys.executable, "-m", "jray.scripts", "profile", "--pid", str(p.pid), "--duration", "1",
                          "-o", str(tmp_path / "f.svg")], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    # the hot code named (its generator's frame may come without its caller, as above)
    assert "test_profile.py" in out.stdout and (tmp_path / "f.svg").read_text().startswith("<svg")
    assert jray.get(a.ping.remote(), timeout=30) == "pong"  # SIGUSR2 ended nothing
    assert jray.get(work, timeout=60) > 0
    jray.kill(a)


def test_task_profile_magic_and_bad_input(jray_cluster, capsys) -> None:
    from IPython.core.error import UsageError
    from IPython.testing.globalipapp import get_ipython, start_ipython

    from jray.util.state import list_tasks

    ref = spinning_task.remote(8)
    deadline = time.monotonic() + 30
    rows: list = []
    while not rows:
        rows = [t for t in list_tasks(filters=[("state", "=", "RUNNING")], limit=0, detail=True)
                if t["name"].endswith("spinning_task")]
        assert time.monotonic() < deadline, "the task never showed RUNNING"
        time.sleep(0.1)
    ip = start_ipython() or get_ipython()
    ip.run_line_magic("load_ext", "jray")
    p = ip.run_line_magic("jray", f"profile {rows[0]['task_id']} 1")
    assert "test_profile.py" in p.top(5) and "spinning_task" in p.what  # the hot code (see above)
    with pytest.raises(UsageError, match="usage"):
        ip.run_line_magic("jray", "profile")
    with pytest.raises(UsageError, match="not a live jray worker on this machine"):
        ip.run_line_magic("jray", f"profile {os.getpid()} 1")
    with pytest.raises(UsageError, match="no running task"):
        ip.run_line_magic("jray", "profile ffffffffffffffff 1")
    with pytest.raises(ValueError, match="duration"):
        profile(pid=1, duration=0)
    assert jray.get(ref, timeout=60) > 0
