"""Jobs in a notebook: ``%jray jobs`` through a real IPython shell and
``jray.widgets.JobMonitor`` (its rows, a followed job's logs, its Stop
button's action), on a real head started by ``jray start --head`` (whose
job agent runs the entrypoints), with the address the way a kernel of the
Jupyter server gets it (``JRAY_ADDRESS``/``JRAY_TOKEN``)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("IPython")
pytest.importorskip("ipywidgets")

from jray.job_submission import JobStatus, JobSubmissionClient  # noqa: E402

CLI = [sys.executable, "-m", "jray.scripts"]


def wait_for(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def head() -> Iterator[dict[str, str]]:
    tmp = tempfile.mkdtemp(prefix="jobmon-", dir=os.environ.get("JRAY_TMPDIR"))
    env = dict(os.environ, JRAY_TMPDIR=tmp)
    for k in ("JRAY_ADDRESS", "JRAY_TOKEN"):
        env.pop(k, None)
    r = subprocess.run([*CLI, "start", "--head", "--port", "0", "--num-cpus", "1", "--object-store-memory",
                        str(64 * 1024 * 1024)], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    saved = {k: os.environ.get(k) for k in ("JRAY_ADDRESS", "JRAY_TOKEN", "JRAY_TMPDIR")}
    try:
        from jray._private import node as _node

        os.environ["JRAY_TMPDIR"] = tmp
        info = _node.read_address_file()
        assert info is not None
        os.environ.update(JRAY_ADDRESS=info["gcs_address"], JRAY_TOKEN=info["token"])
        yield {"tmp": tmp, "address": info["gcs_address"]}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        stop = subprocess.run([*CLI, "stop"], env=env, capture_output=True, text=True, timeout=120)
        assert stop.returncode == 0, stop.stdout + stop.stderr


@pytest.fixture(scope="module")
def jobs(head: dict[str, str]) -> dict[str, str]:
    c = JobSubmissionClient()
    ok = c.submit_job(entrypoint="python -c \"print('hello from the job')\"", submission_id="nb-ok")
    bad = c.submit_job(entrypoint="python -c \"import sys; print('about to fail'); sys.exit(3)\"",
                       submission_id="nb-bad")
    slow = c.submit_job(entrypoint="python -u -c \"import time\nfor i in range(600):\n print('tick', i, flush=True)"
                                   "; time.sleep(0.2)\"", submission_id="nb-slow")
    c.wait_until_status(ok, {JobStatus.SUCCEEDED}, timeout=60)
    c.wait_until_status(bad, {JobStatus.FAILED}, timeout=60)
    c.wait_until_status(slow, {JobStatus.RUNNING}, timeout=60)
    return {"ok": ok, "bad": bad, "slow": slow}


@pytest.fixture(scope="module")
def shell() -> Any:
    from IPython.testing.globalipapp import get_ipython, start_ipython

    ip = start_ipython() or get_ipython()
    ip.run_line_magic("load_ext", "jray")
    return ip


def test_jray_jobs_magic_lists_them(head: dict[str, str], jobs: dict[str, str], shell: Any) -> None:
    table = shell.run_line_magic("jray", "jobs")
    rows = {r[0]: r for r in table.rows}
    assert rows["nb-ok"][1] == "SUCCEEDED" and rows["nb-bad"][1] == "FAILED" and rows["nb-slow"][1] == "RUNNING"
    assert "exit code 3" in rows["nb-bad"][5]
    assert "print('hello from the job')" in rows["nb-ok"][2]
    assert table.title.startswith("jobs at http")
    assert "nb-slow" in table._repr_html_() and "RUNNING" in repr(table)


def test_job_monitor_rows_logs_and_stop(head: dict[str, str], jobs: dict[str, str]) -> None:
    from jray.widgets import JobMonitor

    mon = JobMonitor(autostart=False)
    try:
        assert set(mon.jobs) >= {"nb-ok", "nb-bad", "nb-slow"}
        status, text, logs, stop = mon._rows["nb-bad"]
        assert "FAILED" in status.value and "exit code 3" in text.value and stop.disabled
        assert not mon._rows["nb-slow"][3].disabled  # a running job can be stopped
        assert "1 failed" in mon.header.value and "1 running" in mon.header.value
        # Logs follows a job: its output, refreshed while it runs.
        mon._rows["nb-slow"][2].click()
        assert mon.following == "nb-slow" and "tick 0" in mon.log_view.value
        first = mon.log_view.value.count("tick")
        wait_for(lambda: (mon.update(), mon.log_view.value.count("tick") > first)[1], 30, "new log lines")
        # Stop stops it: the job ends STOPPED and the button is disabled.
        mon._rows["nb-slow"][3].click()
        wait_for(lambda: (mon.update(), "STOPPED" in mon._rows["nb-slow"][0].value)[1], 30, "the job to stop")
        assert mon._rows["nb-slow"][3].disabled and "(STOPPED)" in mon.log_title.value
        assert JobSubmissionClient().get_job_status("nb-slow") == JobStatus.STOPPED
        # A job deleted elsewhere leaves the table at the next refresh.
        JobSubmissionClient().delete_job("nb-ok")
        mon.update()
        assert "nb-ok" not in mon.jobs and "nb-ok" not in mon._rows
        mon.follow(None)
        assert mon.log_view.value == ""
        # Polling in its thread, then closed: the thread ends.
        mon.period = 0.1
        mon.start()
        assert mon.running
    finally:
        mon.close()
    assert not mon.running


def test_without_a_jobs_api_the_magic_says_why(shell: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from IPython.core.error import UsageError

    monkeypatch.setenv("JRAY_ADDRESS", "127.0.0.1:1")  # nothing listens there
    monkeypatch.setenv("JRAY_TOKEN", "x")
    with pytest.raises(UsageError, match="%jray jobs: Could not reach the jray cluster at 127.0.0.1:1"):
        shell.run_line_magic("jray", "jobs")
