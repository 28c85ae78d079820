"""The progress view (dask's progress page) on a real cluster: one bar per
function with its failed/done/running/waiting counts, a new run counted
afresh after a quiet spell, quiet functions leaving; and the page in a real
headless Chromium, fed by ``page_data`` as the extension and the head
dashboard feed it."""

from __future__ import annotations

import http.server
import json
import os
import threading
import time
from pathlib import Path

import pytest

import jray
from jray.jupyter.views.pages import page_data, page_html
from jray.jupyter.views.progress import ProgressView, summary

CHROMIUM = "/usr/bin/chromium"
OUTPUT = Path(__file__).resolve().parents[1] / "output"


@jray.remote
def square(i: int) -> int:
    return i * i


@jray.remote
def sometimes_fails(i: int) -> int:
    if i % 4 == 0:
        raise ValueError(i)
    return i


@jray.remote
def holds(path: str) -> None:
    while not os.path.exists(path):
        time.sleep(0.02)


def _settled(view: ProgressView, want: dict[str, dict[str, int]], timeout: float = 30) -> list[dict]:
    """Update until each named function's counts match ``want`` (task events reach the GCS in batches)."""
    deadline = time.monotonic() + timeout
    while True:
        view.update()
        rows = {r["name"]: r for r in summary(view)}
        if all(n in rows and all(rows[n][k] == v for k, v in w.items()) for n, w in want.items()):
            return summary(view)
        assert time.monotonic() < deadline, f"progress never showed {want}; it shows {rows} (runs {view._runs}, tasks {len(view._tasks)}, now {time.time() * 1000:.0f})"
        time.sleep(0.2)


def test_counts_per_function_with_failures_and_running(jray_cluster, tmp_path) -> None:
    view = ProgressView(keep_s=60)
    release = str(tmp_path / "go")
    held = [holds.options(num_cpus=2).remote(release)]  # both CPUs busy: square waits
    squares = [square.remote(i) for i in range(30)]
    _settled(view, {"holds": {"total": 1, "running": 1, "done": 0},
                    "square": {"total": 30, "done": 0, "waiting": 30}})
    open(release, "w").close()
    jray.get(held + squares, timeout=60)
    flaky = [sometimes_fails.remote(i) for i in range(12)]
    jray.wait(flaky, num_returns=12, timeout=60)
    _settled(view, {"square": {"total": 30, "done": 30, "waiting": 0, "running": 0},
                           "sometimes_fails": {"total": 12, "done": 9, "failed": 3},
                           "holds": {"done": 1}})
    d = view.data()["progress_bars"]
    i = d["name"].index("sometimes_fails")
    assert d["counts"][i] == "9 / 12  (3 failed)"
    assert d["failed_end"][i] == pytest.approx(0.25) and d["done_end"][i] == pytest.approx(1.0)
    assert d["color"][i] != "#d62728"  # red means failed only
    json.dumps(page_data("progress", {"view": view}))  # the page's JSON


@jray.remote
def cube(i: int) -> int:
    return i ** 3


def test_a_new_run_counts_afresh_and_quiet_functions_leave(jray_cluster) -> None:
    view = ProgressView(keep_s=5)
    jray.get([cube.remote(i) for i in range(5)], timeout=60)
    _settled(view, {"cube": {"total": 5, "done": 5}})
    time.sleep(6.0)  # quiet for longer than keep_s
    view.update()
    assert "cube" not in {r["name"] for r in summary(view)}, "a quiet function stays"
    jray.get([cube.remote(i) for i in range(3)], timeout=60)
    _settled(view, {"cube": {"total": 3, "done": 3}})


@pytest.mark.timeout(180)
def test_page_in_chromium(jray_cluster, tmp_path) -> None:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is needed at /usr/bin/chromium (CI installs it)")
    from playwright.sync_api import sync_playwright

    state: dict = {}
    html = page_html("progress", "progress/data").encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path == "/progress":
                body, kind = html, "text/html"
            elif self.path == "/progress/data":
                body, kind = json.dumps(page_data("progress", state)).encode(), "application/json"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    release = str(tmp_path / "go")
    try:
        held = [holds.remote(release)]
        refs = [square.remote(i) for i in range(40)] + [sometimes_fails.remote(i) for i in range(8)]
        jray.wait(refs, num_returns=len(refs), timeout=60)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 640})
                page.goto(f"http://127.0.0.1:{server.server_address[1]}/progress", timeout=60_000)
                page.wait_for_function(
                    "(() => { const d = Bokeh.documents[0]; const s = d && d.get_model_by_name('progress_bars');"
                    " return s && s.data.name && s.data.name.includes('square')"
                    " && s.data.done[s.data.name.indexOf('square')] >= 40"
                    " && s.data.failed[s.data.name.indexOf('sometimes_fails')] >= 2; })()",
                    timeout=60_000)
                OUTPUT.mkdir(exist_ok=True)
                page.screenshot(path=str(OUTPUT / "progress_page.png"))
            finally:
                browser.close()
    finally:
        open(release, "w").close()
        server.shutdown()
        server.server_close()
        jray.get(held, timeout=60)
