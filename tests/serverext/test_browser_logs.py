"""The logs page and the nodes view in JupyterLab, in a real headless Chromium
(issue 18): both are listed in the jray sidebar with the other live views
and open as Lab panels; the logs page lists the workers with the actor one
runs and its memory, shows the selected worker's log and keeps it fresh,
and its search box filters (and marks) the lines; the nodes view draws CPU,
memory and store per node and a bar per worker. Behind Jupyter's own auth.

A real ``jupyter lab`` (``lab_session`` of ``test_browser.py``: token, the
extension starting a 2-CPU head); work comes from driver subprocesses
attached to the server's cluster (a detached actor that prints and holds a
50 MB array). Screenshots: ``tests/output/logs_page.png`` and
``tests/output/nodes_view.png``.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.serverext.conftest import run_driver
from tests.serverext.test_browser import UI_TIMEOUT_MS, lab_session

SETUP = """
import os
import numpy as np

@jray.remote(num_cpus=0)
class Printer:
    def say(self, *lines):
        for line in lines:
            print(line)
        return os.getpid()

    def hold(self, mb):
        self.array = np.ones(mb * 2**20 // 8)  # in the worker's memory
        self.stored = jray.put(np.ones(2**20))  # 8 MiB in the node's store
        return self.array.nbytes

p = Printer.options(name="printer", namespace="logs_test", lifetime="detached").remote()
pid = jray.get(p.say.remote(*[f"haystack line {i}" for i in range(30)], "the needle is here", "more hay"))
jray.get(p.hold.remote(50))
print("PID", pid)
"""

LATER = """
p = jray.get_actor("printer", namespace="logs_test")
jray.get(p.say.remote("a second needle arrives", "and hay after it"))
"""


@pytest.mark.timeout(420)
def test_logs_page_and_nodes_view_in_jupyterlab(tmp_path: Path) -> None:
    with lab_session(tmp_path, viewport=(1500, 950), failure_shot="logs_failure.png") as lab:
        server, status, page = lab.server, lab.status, lab.page
        assert {"logs", "nodes"} <= set(status["views"])
        assert lab.info is not None
        address, token = lab.info["gcs_address"], lab.info["token"]
        out = run_driver(address, token, SETUP, timeout=120)
        pid = int(re.search(r"PID (\d+)", out).group(1))  # type: ignore[union-attr]

        # Same auth as the rest of the extension: no token, no data.
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(server.url + "jray/api/views/logs", timeout=30)
        assert e.value.code in (401, 403)

        lab.open_lab()
        sidebar = lab.sidebar()

        # The logs page opens from the sidebar as a Lab panel.
        sidebar.locator(".jray-view-logs").click()
        frame = page.frame_locator("#jray-view-logs iframe")
        frame.locator("body[data-jray-updates]").wait_for(state="attached")
        row = frame.locator("tr.jray-worker", has_text=f"pid {pid}")
        row.wait_for()
        assert "actor Printer" in row.inner_text() and "ACTOR" in row.inner_text()
        frame.locator("tr.jray-worker", has_text=f"pid {pid}").filter(has_text="MiB").wait_for()
        row.click()
        frame.locator("#jray-log .jray-line", has_text="the needle is here").wait_for()
        assert frame.locator("#jray-log .jray-line").count() >= 32
        assert f"pid {pid}" in frame.locator("#jray-log-title").inner_text()

        # The search box filters the lines and marks the matches.
        frame.locator("#jray-log-search").fill("needle")
        frame.locator("#jray-log-count", has_text="1 of").wait_for()
        lines = frame.locator("#jray-log .jray-line").all_inner_texts()
        assert lines == ["the needle is here"], lines
        assert frame.locator("#jray-log mark").all_inner_texts() == ["needle"]

        # New lines arrive while the page follows, filtered as they come.
        run_driver(address, token, LATER, timeout=120)
        frame.locator("#jray-log .jray-line", has_text="a second needle arrives").wait_for()
        assert frame.locator("#jray-log .jray-line").all_inner_texts() == [
            "the needle is here", "a second needle arrives"]
        frame.locator("#jray-log-count", has_text="2 of").wait_for()
        # A regular expression, written /like this/.
        frame.locator("#jray-log-search").fill("/haystack line 1[0-2]$/")
        frame.locator("#jray-log-count", has_text="3 of").wait_for()
        page.wait_for_timeout(500)
        lab.screenshot("logs_page.png")
        frame.locator("#jray-log-search").fill("")
        frame.locator("#jray-log .jray-line", has_text="and hay after it").wait_for()

        # The nodes view: a line per node in each figure, a bar for the actor's worker.
        sidebar.locator(".jray-view-nodes").click()
        nodes = page.frame_locator("#jray-view-nodes iframe")
        nodes.locator("body[data-jray-updates]").wait_for(state="attached")
        view = page.frame(url=lambda u: "/jray/views/nodes" in u)
        assert view is not None
        view.wait_for_function(
            "(pid) => { const d = Bokeh.documents[0];"
            " const s = d && d.get_model_by_name('node_series'), w = d && d.get_model_by_name('worker_memory');"
            " if (!s || !w || !s.data.xs || !s.data.xs.length || s.data.xs[0].length < 6) return false;"
            " const i = w.data.pid.indexOf(pid);"
            " return i >= 0 && w.data.rss[i] >= 50 * 1048576 && /MiB$/.test(w.data.rss_text[i]); }",
            arg=pid, timeout=UI_TIMEOUT_MS)
        sample = view.evaluate(
            "() => { const s = Bokeh.documents[0].get_model_by_name('node_series').data;"
            " return {cpu: s.cpu[0], mem: s.memory[0], total: s.memory_total[0], store: s.store[0]}; }")
        assert all(0 <= c <= 100 for c in sample["cpu"])
        assert all(0 < m <= sample["total"] for m in sample["mem"])
        assert sample["store"][-1] >= 8 * 2**20  # the actor's object
        assert view.locator("canvas").count() > 0
        page.wait_for_timeout(1500)  # the next poll redraws before the picture
        lab.screenshot("nodes_view.png")
