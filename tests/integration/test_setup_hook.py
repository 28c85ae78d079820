"""``runtime_env={"worker_process_setup_hook": ...}`` (issue 20), as Ray
documents it: every worker of the env runs the hook once at start, before
its first task (a callable, pickled by the driver, or a "module.function"
path); a hook that raises fails the tasks with RuntimeEnvSetupError carrying
its traceback; a hook that is not callable is refused at the call."""

from __future__ import annotations

import os

import pytest

import jray
from jray import exceptions


def _set_marker():
    os.environ["HOOK_MARKER"] = f"set in {os.getpid()}"


def _boom():
    raise ValueError("the hook failed on purpose")


@jray.remote
def marker():
    return os.environ.get("HOOK_MARKER"), os.getpid()


@pytest.fixture(scope="module")
def job():
    jray.shutdown()
    jray.init(num_cpus=2, runtime_env={"worker_process_setup_hook": _set_marker})
    yield
    jray.shutdown()


def test_a_job_level_hook_runs_in_each_worker_before_its_tasks(job):
    for value, pid in jray.get([marker.remote() for _ in range(4)], timeout=120):
        assert value == f"set in {pid}"  # run in that very worker process


def test_a_module_path_hook(job):
    env = {"worker_process_setup_hook": "logging.basicConfig", "env_vars": {"X": "1"}}
    value, _pid = jray.get(marker.options(runtime_env=env).remote(), timeout=120)
    # the task-level env replaces the job's hook (Ray's merge: fields of the call win)
    assert value is None


def test_a_hook_that_raises_fails_the_tasks_with_its_traceback(job):
    with pytest.raises(exceptions.RuntimeEnvSetupError, match="the hook failed on purpose") as e:
        jray.get(marker.options(runtime_env={"worker_process_setup_hook": _boom}).remote(), timeout=120)
    assert "_boom" in str(e.value) and "Traceback" in str(e.value)
    assert jray.get(marker.remote(), timeout=60)[0] is not None  # the job's other workers carry on


def test_bad_hooks_are_refused_at_the_call(job):
    with pytest.raises(TypeError, match="callable or a 'module.function'"):
        marker.options(runtime_env={"worker_process_setup_hook": 42}).remote()
    with pytest.raises(ValueError, match="not a 'module.function' path"):
        marker.options(runtime_env={"worker_process_setup_hook": "no dots"}).remote()
