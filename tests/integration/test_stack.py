"""``jray stack`` / ``jray.util.stacks.dump_stacks`` / ``%jray stack``: the
stack of every worker on this machine with the task it runs (Ray's ``ray
stack``), on a real cluster, and the workers keep working afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

import jray
from jray.util.stacks import dump_stacks, format_stacks


@jray.remote
def stuck_in_marker_function(path: str) -> int:
    open(path, "w").close()
    time.sleep(60)
    return os.getpid()


@jray.remote
class Sleeper:
    def nap_in_marker_method(self, path: str) -> None:
        open(path, "w").close()
        time.sleep(60)

    def pid(self) -> int:
        return os.getpid()


def _wait_file(path: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_stacks_name_the_running_code_and_leave_workers_alive(jray_cluster, tmp_path) -> None:
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    ref = stuck_in_marker_function.remote(a)
    actor = Sleeper.options(num_cpus=0, max_concurrency=2).remote()
    call = actor.nap_in_marker_method.remote(b)
    _wait_file(a)
    _wait_file(b)
    from jray.util.state import list_tasks

    deadline = time.monotonic() + 30  # the task events reach the GCS (about once a second)
    while len(list_tasks(filters=[("state", "=", "RUNNING")], limit=0)) < 2:
        assert time.monotonic() < deadline, "the two tasks never showed RUNNING"
        time.sleep(0.1)
    entries = dump_stacks()
    by_task = {e["task"]: e for e in entries}
    task = next(e for name, e in by_task.items() if "stuck_in_marker_function" in name)
    assert "in stuck_in_marker_function" in task["stack"] and "time.sleep" not in task.get("error", "")
    method = next(e for name, e in by_task.items() if "nap_in_marker_method" in name)
    assert "in nap_in_marker_method" in method["stack"]
    assert all(e["stack"] and "error" not in e for e in entries)
    text = format_stacks(entries)
    assert f"--- worker pid {task['pid']} (running" in text
    # The CLI, from another process, finds the same.
    info = jray_cluster.address_info
    from jray._private import node as _node

    env = dict(os.environ, JRAY_ADDRESS=info["gcs_address"], JRAY_TOKEN=_node.STARTED_HERE[info["gcs_address"]])
    out = subprocess.run([sys.executable, "-m", "jray.scripts", "stack"], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "in stuck_in_marker_function" in out.stdout and "in nap_in_marker_method" in out.stdout
    # SIGUSR1 did not end anything: the actor answers, the task finishes when cancelled.
    assert jray.get(actor.pid.remote(), timeout=30) == method["pid"]
    jray.cancel(ref, force=True)
    jray.kill(actor)
    with pytest.raises(jray.exceptions.RayActorError):
        jray.get(call, timeout=30)


def test_magic(jray_cluster, capsys, tmp_path) -> None:
    from IPython.testing.globalipapp import get_ipython, start_ipython

    from jray.util.state import list_tasks

    ip = start_ipython() or get_ipython()
    ip.run_line_magic("load_ext", "jray")
    path = str(tmp_path / "m")
    ref = stuck_in_marker_function.remote(path)
    _wait_file(path)
    tid = ref.task_id().hex()
    deadline = time.monotonic() + 30
    while not list_tasks(filters=[("state", "=", "RUNNING"), ("task_id", "=", tid)], limit=0):
        assert time.monotonic() < deadline, "the task never showed RUNNING"
        time.sleep(0.1)
    ip.run_line_magic("jray", "stack")
    out = capsys.readouterr().out
    assert "(running stuck_in_marker_function" in out and "in stuck_in_marker_function" in out
    jray.cancel(ref, force=True)
