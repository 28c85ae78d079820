"""A head that does not come up (a raylet past its start-up timeout on an
overloaded machine, SIGKILLed) leaves nothing: ``node._abandon_start``
kills the processes and what they started, and removes the session's
``/dev/shm`` store file, which a SIGKILLed raylet cannot remove itself."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil

from jray._private import node


def test_abandon_start_removes_processes_children_and_store_file(tmp_path) -> None:
    session_dir = str(tmp_path / "session_failedstart")
    os.mkdir(session_dir)
    store = f"/dev/shm/jray-{os.path.basename(session_dir)}-abcdef123456"
    with open(store, "wb") as f:
        f.truncate(1 << 20)
    other = f"/dev/shm/jray-session_someone_else-{os.getpid()}"
    with open(other, "wb") as f:
        f.truncate(4096)
    # A "raylet" that started a child of its own (as its zygote) and hangs.
    parent = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                               "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
                               "time.sleep(60)"])
    try:
        deadline = time.monotonic() + 10
        while not psutil.Process(parent.pid).children():
            assert time.monotonic() < deadline, "the child never started"
            time.sleep(0.05)
        child = psutil.Process(parent.pid).children()[0]
        node._abandon_start(session_dir, [parent])
        assert parent.poll() is not None
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
        assert not os.path.exists(store)
        assert os.path.exists(other), "another session's store file was removed"
    finally:
        for p in (store, other):
            if os.path.exists(p):
                os.unlink(p)
        if parent.poll() is None:
            parent.kill()
            parent.wait(5)
