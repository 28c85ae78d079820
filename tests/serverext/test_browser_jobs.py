"""The JupyterLab sidebar's Jobs section in a real headless Chromium (issue 16).

A real ``jupyter lab`` (``lab_session`` of test_browser.py) starts its own head
with the head's job agent (mode 'start'). Before any job the section shows
the ``jray job submit`` hint; then, submitted with the CLI as a user would:
a job that prints a line every 0.1 s shows RUNNING (its long entrypoint cut
with an ellipsis, whole in the tooltip, its start time), its Logs panel
opens in the main area and follows the output live (new lines arrive,
scrolled to the end); one that exits 3 shows FAILED with its message.
Stop asks first (Cancel leaves it running), then stops it: STOPPED in the
row and in the panel, its process gone. With the agent killed, the section
says the jobs API is unavailable instead of going blank. At 1280 px the rows'
buttons stay inside the sidebar. Screenshot: ``tests/output/jupyterlab_jobs.png``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

import psutil
import pytest

from jray._private.jobs import process
from tests.serverext.test_browser import (
    UI_TIMEOUT_MS,
    LabServer,
    _api,
    _screenshot,
    lab_session,
)

CLI = [sys.executable, "-m", "jray.scripts"]
TICKER = ["python", "-u", "-c",
          "import time\nfor i in range(1200):\n    print('tick', i, flush=True)\n    time.sleep(0.1)"]
FAILING = ["python", "-c", "import sys; print('about to fail'); sys.exit(3)"]


def submit(env: dict[str, str], sid: str, cmd: list[str]) -> None:
    r = subprocess.run([*CLI, "job", "submit", "--no-wait", "--submission-id", sid, "--", *cmd], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sid in r.stdout + r.stderr, r.stdout + r.stderr


def jobs_of(server: LabServer) -> dict[str, dict]:
    return {j["submission_id"]: j for j in _api(server.url + "jray/api/jobs", server.token)["jobs"]}


@pytest.mark.timeout(420)
def test_sidebar_jobs_follow_logs_and_stop(tmp_path):
    with lab_session(tmp_path, jray={"mode": "start", "num_cpus": 1, "num_gpus": 0,
                                     "object_store_memory": 64 * 1024 * 1024},
                     failure_shot="jupyterlab_jobs_failure.png") as lab:
        assert lab.info is not None
        env = dict(os.environ, JRAY_ADDRESS=lab.status["address"], JRAY_TOKEN=lab.info["token"])
        _run(lab.page, lab.server, lab.status, env, tmp_path)
    assert process.agent_process(lab.info["session_dir"]) is None


def _run(page, server: LabServer, status: dict, env: dict[str, str], tmp_path) -> None:
    page.goto(f"{server.url}lab?token={server.token}")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell", timeout=UI_TIMEOUT_MS)
    page.locator('.jp-SideBar [data-id="jray-sidebar"]').click()
    sidebar = page.locator("#jray-sidebar")
    sidebar.locator(".jray-state-running").first.wait_for()

    # No job yet: the hint says how to submit one.
    section = sidebar.locator(".jray-jobs-section")
    section.wait_for(state="visible")
    empty = section.locator(".jray-jobs-empty")
    empty.wait_for(state="visible")
    assert empty.locator(".jray-jobs-hint").inner_text().strip() == "jray job submit -- python script.py"

    # A job that prints and sleeps: RUNNING within a poll or two.
    t0 = time.monotonic()
    submit(env, "lab-ticker", TICKER)
    row = section.locator('.jray-job[data-submission-id="lab-ticker"]')
    section.locator('.jray-job[data-submission-id="lab-ticker"][data-status="RUNNING"]').wait_for(timeout=30_000)
    print(f"\nRUNNING in the sidebar {time.monotonic() - t0:.1f} s after submit")
    empty.wait_for(state="hidden")
    badge = row.locator(".jray-job-status")
    assert badge.inner_text() == "RUNNING"
    assert badge.evaluate("e => getComputedStyle(e).color") != row.evaluate("e => getComputedStyle(e).color")
    entry = row.locator(".jray-job-entrypoint")
    full = jobs_of(server)["lab-ticker"]["entrypoint"]
    assert entry.get_attribute("title") == full and entry.text_content() == full
    assert entry.evaluate("e => e.scrollWidth > e.clientWidth"), "the long entrypoint is not cut"
    assert entry.evaluate("e => getComputedStyle(e).textOverflow") == "ellipsis"
    when = row.locator(".jray-job-when")
    assert when.get_attribute("title").startswith("started ") and " s" in when.inner_text(), when.inner_text()
    assert row.locator(".jray-job-stop").is_visible()
    # Readable at 1280 px: the row's buttons stay inside the sidebar.
    box = sidebar.bounding_box()
    for b in (".jray-job-logs", ".jray-job-stop"):
        bb = row.locator(b).bounding_box()
        assert box and bb and bb["x"] >= box["x"] and bb["x"] + bb["width"] <= box["x"] + box["width"] + 0.5, b

    # A failing job: FAILED, with the reason under it.
    submit(env, "lab-fails", FAILING)
    failed = section.locator('.jray-job[data-submission-id="lab-fails"][data-status="FAILED"]')
    failed.wait_for(timeout=30_000)
    assert failed.locator(".jray-job-status").inner_text() == "FAILED"
    assert "exit code 3" in failed.locator(".jray-job-message").inner_text()
    assert not failed.locator(".jray-job-stop").is_visible()
    ids = section.locator(".jray-job").evaluate_all("rows => rows.map(r => r.dataset.submissionId)")
    assert ids[:2] == ["lab-fails", "lab-ticker"], ids  # newest first
    assert "1 running" in section.locator(".jray-jobs-summary").inner_text()

    # Logs: a main-area panel that follows the output.
    row.locator(".jray-job-logs").click()
    panel = page.locator("#jray-job-logs-lab-ticker")
    panel.wait_for(state="visible")
    text = panel.locator(".jray-job-log-text")
    text.filter(has_text="tick 0").wait_for(timeout=30_000)
    first = _last_tick(text.inner_text())
    page.wait_for_function(
        "n => { const t = document.querySelector('#jray-job-logs-lab-ticker .jray-job-log-text').textContent;"
        " const m = t.match(/tick (\\d+)\\n$/); return m && +m[1] >= n; }", arg=first + 20, timeout=30_000)
    lines = text.inner_text().splitlines()
    assert lines[:3] == ["tick 0", "tick 1", "tick 2"], lines[:5]
    assert lines == [f"tick {i}" for i in range(len(lines))], "a line lost or repeated"
    assert panel.locator(".jray-job-log-head .jray-job-status").inner_text() == "RUNNING"
    assert panel.locator(".jray-job-log-entrypoint").get_attribute("title") == full
    assert "following" in panel.locator(".jray-job-log-state").inner_text()
    # Once the log overflows the panel, it stays scrolled to its end.
    page.wait_for_function(
        "() => { const p = document.querySelector('#jray-job-logs-lab-ticker .jray-job-log-text');"
        " return p.scrollHeight > p.clientHeight + 100; }", timeout=60_000)
    page.wait_for_timeout(1500)  # a read or two more
    assert text.evaluate("p => p.scrollHeight - p.scrollTop - p.clientHeight < 30"), "not scrolled to the end"
    _screenshot(page, tmp_path, "jupyterlab_jobs.png")

    # Stop asks first; Cancel leaves the job running.
    row.locator(".jray-job-stop").click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for()
    assert "Stop the job lab-ticker?" in dialog.inner_text()
    assert full in dialog.locator(".jray-job-stop-entrypoint").inner_text()
    _screenshot(page, tmp_path, "jupyterlab_jobs_stop_dialog.png")
    dialog.locator("button", has_text="Cancel").click()
    dialog.wait_for(state="detached")
    assert jobs_of(server)["lab-ticker"]["status"] == "RUNNING"
    assert _api(server.url + "jray/api/jobs/lab-ticker", server.token)["status"] == "RUNNING"

    # Stop for real: STOPPED in the row and in the panel; the entrypoint's process is gone.
    driver_pids = _ticker_pids()
    assert driver_pids, "no ticker process found"
    row.locator(".jray-job-stop").click()
    dialog.wait_for()
    t1 = time.monotonic()
    dialog.locator("button", has_text="Stop job").click()
    dialog.wait_for(state="detached")
    section.locator('.jray-job[data-submission-id="lab-ticker"][data-status="STOPPED"]').wait_for(timeout=30_000)
    print(f"STOPPED in the sidebar {time.monotonic() - t1:.1f} s after the click")
    assert badge.inner_text() == "STOPPED"
    row.locator(".jray-job-stop").wait_for(state="hidden")
    assert not section.locator(".jray-jobs-error").is_visible()
    panel.locator('.jray-job-log-head .jray-job-status[data-status="STOPPED"]').wait_for(timeout=30_000)
    panel.locator(".jray-job-log-state", has_text="ended").wait_for(timeout=30_000)
    _, alive = psutil.wait_procs([psutil.Process(p) for p in driver_pids if psutil.pid_exists(p)], timeout=15)
    assert not alive, f"the stopped job's processes run on: {alive}"

    # The jobs API gone (agent killed): the section says so, not a blank.
    assert process.stop_agent(status["session_dir"])
    err = section.locator(".jray-jobs-error")
    err.wait_for(state="visible", timeout=30_000)
    assert "jobs API is unavailable" in err.inner_text(), err.inner_text()
    assert sidebar.locator(".jray-state-running").first.is_visible()  # the rest of the sidebar still works


def _last_tick(text: str) -> int:
    ticks = [int(line.split()[1]) for line in text.splitlines() if line.startswith("tick ")]
    return ticks[-1] if ticks else 0


def _ticker_pids() -> list[int]:
    """This test's ticker entrypoint processes (sh -c and its python)."""
    out = []
    for p in psutil.process_iter(["pid", "cmdline", "environ"]):
        with contextlib.suppress(psutil.Error):
            if (p.info["environ"] or {}).get("JRAY_JOB_SUBMISSION_ID") == "lab-ticker":
                out.append(p.pid)
    return out
