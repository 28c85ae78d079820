"""Shared fixtures: a real local cluster, and leak checks (no process a test
started and no /dev/shm store file may outlive it)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time

import psutil
import pytest

# Every cluster the tests start keeps its sessions here, so the leak check
# below only counts store files of this run (not of another run on the same
# machine). Subprocesses and kernels inherit it.
_TMP = tempfile.mkdtemp(prefix="jray-tests-")
os.environ["JRAY_TMPDIR"] = _TMP


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_TMP, ignore_errors=True)


def _our_children() -> set[int]:
    try:
        return {p.pid for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE}
    except psutil.Error:
        return set()


def _jray_shm() -> set[str]:
    """Store files (``jray-<session>-<node>``) of sessions this run started."""
    try:
        sessions = set(os.listdir(_TMP))
        return {f for f in os.listdir("/dev/shm")
                if f.startswith("jray-") and f[len("jray-"):].rsplit("-", 1)[0] in sessions}
    except OSError:
        return set()


@pytest.fixture(autouse=True, scope="module")
def no_leaks():
    """Fail the module if it leaves a child process or a store file behind."""
    shm_before = _jray_shm()
    yield
    deadline = time.monotonic() + 10
    while True:
        left = _our_children()
        shm = _jray_shm() - shm_before
        if not left and not shm:
            return
        if time.monotonic() > deadline:
            for pid in left:  # clean up what we started, then fail
                try:
                    psutil.Process(pid).kill()
                except psutil.Error:
                    pass
            pytest.fail(f"leaked processes {sorted(left)} / shm files {sorted(shm)}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def jray_cluster():
    """A local head with 2 CPUs, shared by the tests of one module."""
    import jray

    if jray.is_initialized():
        jray.shutdown()
    ctx = jray.init(num_cpus=2, object_store_memory=256 * 1024 * 1024)
    yield ctx
    jray.shutdown()
