"""The whole jray UI at 1280 px wide in both Lab themes, for a person to look
at (issue 18's "looks designed" review), with checks that every view drew.

One real JupyterLab (``lab_session``), a cluster with some history (tasks of
two functions, one failing; a detached actor that prints and holds store
objects; a finished job submitted with the CLI), then, under "JupyterLab
Light" and "JupyterLab Dark": the sidebar, each page opened from it as a Lab
panel (task stream, progress, tables, logs, nodes, object store, metrics),
the Jobs section with a job's log panel, the Autoscaler section, and
``ClusterMonitor`` with the inline tables page in a notebook. Each lands in
``tests/output/ui_review_<view>_<theme>.png``.

The Autoscaler section needs an autoscaler's published status: the page's
``GET jray/api/autoscaler`` is answered here with a fixed status (a pinned
type, a launch, demand with an infeasible shape, a failed launch) so the
section can be looked at without starting nodes; the real section is
tests/serverext/test_browser_autoscaler.py's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.serverext.conftest import run_driver
from tests.serverext.test_browser import UI_TIMEOUT_MS, _api, _notebook, lab_session

WORK = """
import numpy as np

@jray.remote
def preprocess(i):
    return np.ones(1000) * i

@jray.remote
def train_step(i):
    if i % 7 == 3:
        raise ValueError(f"bad batch {i}")
    return i

@jray.remote(num_cpus=0)
class Reporter:
    def say(self, *lines):
        for line in lines:
            print(line)
    def hold(self):
        self.refs = [jray.put(np.ones(2**20 // 8 * k)) for k in (1, 2, 4)]
        return len(self.refs)

r = Reporter.options(name="reporter", namespace="review", lifetime="detached").remote()
jray.get(r.say.remote(*[f"epoch {i}: loss {1 / (i + 1):.4f}" for i in range(40)], "ERROR: a warning to find"))
jray.get(r.hold.remote())
jray.get([preprocess.remote(i) for i in range(30)])
jray.wait([train_step.remote(i) for i in range(20)], num_returns=20, timeout=60)
"""

PAGES = ["task_stream", "progress", "tables", "logs", "nodes", "object_store", "metrics"]
THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}
CELLS = [
    "import jray\njray.init(ignore_reinit_error=True)\nfrom jray.widgets import ClusterMonitor\n"
    "monitor = ClusterMonitor()\nmonitor",
    "jray.views.tables(filter='name=train_step', height=300)",
]


def _autoscaler_status(now: float) -> dict:
    return {"status": {
        "cluster_name": "review", "provider": "slurm", "max_workers": 4, "idle_timeout_minutes": 5,
        "running": True, "monitor_pid": 1, "time": now,
        "nodes": {"running": {"cpu4": 1}, "launching": {"cpu4": 1}, "idle": {"gpu1": 0}},
        "node_types": {"cpu4": {"resources": {"CPU": 4}, "min_workers": 0, "max_workers": 3, "target": 2,
                                "count": 2},
                       "gpu1": {"resources": {"CPU": 8, "GPU": 1}, "min_workers": 0, "max_workers": 1,
                                "target": None, "count": 0}},
        "scale_targets": {"cpu4": 2},
        "demand": [{"shape": {"CPU": 1}, "count": 12, "kind": "task", "name": "train_step"},
                   {"shape": [{"CPU": 2}, {"CPU": 2}], "count": 1, "kind": "placement_group", "strategy": "PACK"},
                   {"shape": {"GPU": 4}, "count": 1, "infeasible": True, "kind": "task", "name": "big_model"}],
        "decisions": [{"time": now - 5, "action": "launch", "node_type": "cpu4", "count": 1,
                       "reason": "12 tasks need CPU: 1"}],
        "failures": [{"time": now - 20, "node_type": "gpu1", "retry_in_s": 60, "failures_in_a_row": 2,
                      "message": "sbatch: error: Batch job submission failed: Invalid partition name specified"}],
    }}


def _close_main(page) -> None:  # type: ignore[no-untyped-def]
    page.evaluate("() => { for (const w of [...window.jupyterapp.shell.widgets('main')]) w.close(); }")
    # Lab puts a Launcher back in an empty main area: only that may be left.
    page.wait_for_function("() => [...window.jupyterapp.shell.widgets('main')]"
                           ".every(w => w.title.label === 'Launcher')")


@pytest.mark.timeout(600)
def test_every_view_in_both_themes_at_1280px(tmp_path: Path) -> None:
    with lab_session(tmp_path, viewport=(1280, 800), failure_shot="ui_review_failure.png") as lab:
        server, page = lab.server, lab.page
        assert lab.info is not None
        address, token = lab.info["gcs_address"], lab.info["token"]
        run_driver(address, token, WORK, timeout=180)
        env = dict(os.environ, JRAY_ADDRESS=address, JRAY_TOKEN=token)
        r = subprocess.run([sys.executable, "-m", "jray.scripts", "job", "submit", "--submission-id", "review-job",
                            "--", "python", "-c", "for i in range(30): print('step', i, 'of the review job')"],
                           env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        _api(server.url + "api/contents/review.ipynb", server.token, "PUT",
             {"type": "notebook", "format": "json", "content": _notebook(CELLS)})
        page.route(lambda url: url.split("?")[0].endswith("/jray/api/autoscaler"), lambda route: route.fulfill(
            status=200, content_type="application/json", body=json.dumps(_autoscaler_status(time.time()))))

        lab.open_lab(theme=THEMES["light"])
        for theme, lab_theme in THEMES.items():
            page.evaluate(f"window.jupyterapp.commands.execute('apputils:change-theme', {{theme: '{lab_theme}'}})")
            page.wait_for_function(f"document.body.dataset.jpThemeLight === '{str(theme == 'light').lower()}'")
            _close_main(page)
            sidebar = lab.sidebar()
            sidebar.locator(".jray-node").first.wait_for()
            page.wait_for_timeout(1200)
            lab.screenshot(f"ui_review_sidebar_{theme}.png")

            for name in PAGES:
                _close_main(page)
                sidebar = lab.sidebar()
                sidebar.locator(f".jray-view-{name}").click()
                frame = page.frame_locator(f"#jray-view-{name} iframe")
                frame.locator("body[data-jray-updates]").wait_for(state="attached")
                src = page.locator(f"#jray-view-{name} iframe").get_attribute("src") or ""
                assert f"theme={theme}" in src, src
                if name == "logs":  # the actor's log, with a search
                    frame.locator("tr.jray-worker", has_text="actor Reporter").first.click()
                    frame.locator("#jray-log .jray-line", has_text="epoch 3:").first.wait_for()
                    frame.locator("#jray-log-search").fill("epoch 1")
                page.wait_for_timeout(2500)  # a couple of polls: the figures drawn with data
                lab.screenshot(f"ui_review_{name}_{theme}.png")

            # Jobs: the section, and the job's log panel.
            _close_main(page)
            sidebar = lab.sidebar()
            row = sidebar.locator('.jray-job[data-submission-id="review-job"]')
            row.wait_for()
            row.scroll_into_view_if_needed()
            row.locator(".jray-job-logs").click()
            page.locator(".jray-job-log-panel").filter(has_text="of the review job").first.wait_for()
            page.wait_for_timeout(800)
            lab.screenshot(f"ui_review_jobs_{theme}.png")

            # The Autoscaler section (its status answered above).
            section = sidebar.locator(".jray-autoscaler")
            section.wait_for(state="visible")
            section.scroll_into_view_if_needed()
            page.wait_for_timeout(800)
            lab.screenshot(f"ui_review_autoscaler_{theme}.png")

            # ClusterMonitor and the inline tables page in a notebook.
            _close_main(page)
            page.evaluate("window.jupyterapp.commands.execute('docmanager:open', {path: 'review.ipynb'})")
            page.locator(".jp-Notebook .jp-Cell").first.wait_for()
            page.wait_for_function(
                "() => { const k = window.jupyterapp.shell.currentWidget.sessionContext;"
                " return k && k.session && k.session.kernel && k.session.kernel.status === 'idle'; }",
                timeout=UI_TIMEOUT_MS)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.locator(".jp-OutputArea-output .jray-inline-page[data-jray-loaded]").wait_for()
            page.locator(".jp-OutputArea-output .widget-vbox").first.wait_for()
            page.wait_for_timeout(2500)
            lab.screenshot(f"ui_review_cluster_monitor_{theme}.png")
            page.evaluate("window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
            page.evaluate("window.jupyterapp.commands.execute('docmanager:save')")
            page.wait_for_function("() => { const w = window.jupyterapp.shell.currentWidget;"
                                   " return w && w.context && !w.context.model.dirty; }")
