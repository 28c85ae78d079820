"""The tables page (the Ray dashboard's task, actor and job tables) on a real
cluster: each tab's rows from the state API, and in a real headless
Chromium the filter (words and ``column=value``), the state menu, sorting,
and the links between tabs and to the logs page."""

from __future__ import annotations

import http.server
import json
import os
import threading
import urllib.parse
from pathlib import Path

import pytest

import jray
from jray.jupyter.views.pages import page_data, page_html

CHROMIUM = "/usr/bin/chromium"
OUTPUT = Path(__file__).resolve().parents[1] / "output"


@jray.remote
def tabled(i: int) -> int:
    if i == 3:
        raise ValueError("three is not allowed here")
    return i


@jray.remote(num_cpus=0)
class Ledger:
    def add(self, x: int) -> int:
        return x


@pytest.fixture(scope="module")
def ran(jray_cluster):
    refs = [tabled.remote(i) for i in range(6)]
    jray.wait(refs, num_returns=len(refs), timeout=60)
    ledger = Ledger.options(name="the-ledger").remote()
    assert jray.get(ledger.add.remote(5), timeout=60) == 5
    import time

    from jray.util.state import list_tasks

    deadline = time.monotonic() + 30  # task events reach the GCS in batches
    from jray.util.state import list_actors

    def complete() -> bool:
        ended = [t for t in list_tasks(limit=0, detail=True) if t["name"] in ("tabled", "Ledger.add")
                 and t["worker_pid"] and (t["state"] == "FINISHED" or (t["state"] == "FAILED" and t["error_message"]))]
        return len(ended) >= 7 and any(a["name"] == "the-ledger" and a["pid"] for a in list_actors(detail=True))

    while not complete():
        assert time.monotonic() < deadline, "the tasks never showed as ended"
        time.sleep(0.2)
    yield ledger
    jray.kill(ledger)


def test_each_tab_has_its_rows(ran) -> None:
    state: dict = {}
    tasks = page_data("tables", state, params={"tab": "tasks"})
    assert tasks["error"] is None
    mine = [r for r in tasks["rows"] if r["name"] == "tabled"]
    assert len(mine) == 6
    failed = [r for r in mine if r["state"] == "FAILED"]
    assert len(failed) == 1 and "three is not allowed here" in failed[0]["error"]
    assert all(r["worker_pid"] and r["node_id"] for r in mine), mine
    call = next(r for r in tasks["rows"] if r["name"] == "Ledger.add")
    actors = page_data("tables", state, params={"tab": "actors"})["rows"]
    ledger = next(a for a in actors if a["name"] == "the-ledger")
    assert ledger["class_name"] == "Ledger" and ledger["state"] == "ALIVE" and ledger["pid"]
    assert call["actor_id"] == ledger["actor_id"]
    jobs = page_data("tables", state, params={"tab": "jobs"})["rows"]
    me = jray.get_runtime_context().get_job_id()
    assert any(j["job_id"] == me and j["status"] == "RUNNING" and j["type"] == "DRIVER" for j in jobs)
    bad = page_data("tables", state, params={"tab": "nope"})
    assert "no tab 'nope'" in bad["error"] and bad["rows"] == []
    json.dumps(tasks)


@pytest.mark.timeout(180)
def test_filters_sorting_and_links_in_chromium(ran) -> None:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is needed at /usr/bin/chromium (CI installs it)")
    from playwright.sync_api import sync_playwright

    state: dict = {}
    html = page_html("tables", "tables/data").encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path, _, query = self.path.partition("?")
            if path == "/tables":
                body, kind = html, "text/html"
            elif path == "/tables/data":
                params = dict(urllib.parse.parse_qsl(query))
                body, kind = json.dumps(page_data("tables", state, params=params)).encode(), "application/json"
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
    base = f"http://127.0.0.1:{server.server_address[1]}/tables"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 720})
                page.goto(base, timeout=60_000)
                page.wait_for_function("Number(document.body.dataset.jrayUpdates || 0) >= 1", timeout=60_000)
                page.fill("#jray-filter", "tabled")
                rows = page.locator("#jray-body tr")
                assert rows.count() == 6
                page.fill("#jray-filter", "name=tabled state=FAILED")
                assert rows.count() == 1 and "three is not allowed here" in rows.first.inner_text()
                assert "jray-FAILED" in rows.first.inner_html()
                assert "tab=tasks" in page.url and "state%3DFAILED" in page.url  # the filter is in the link
                # The worker pid links to its log on the logs page.
                href = rows.first.locator("a[href^='logs#']").first.get_attribute("href")
                assert href and "pid=" in href and "node_id=" in href
                page.fill("#jray-filter", "name=tabled")
                page.select_option("#jray-state", "FINISHED")
                assert rows.count() == 5
                page.select_option("#jray-state", "")
                def column(title: str) -> int:  # 1-based, by the header's text (the order is the page's)
                    i = page.evaluate("(t) => [...document.querySelectorAll('th')].findIndex("
                                      "(th) => th.textContent.trim().startsWith(t))", title)
                    assert i >= 0, f"no column {title!r}"
                    return i + 1

                page.click("th:has-text('worker pid')")  # sort by it (descending first)
                pids = [int(t) for t in page.locator(f"#jray-body tr td:nth-child({column('worker pid')})")
                        .all_inner_texts() if t]
                assert len(pids) == 6 and pids == sorted(pids, reverse=True)
                OUTPUT.mkdir(exist_ok=True)
                page.screenshot(path=str(OUTPUT / "tables_page.png"))
                # A task's actor: the Actors tab, filtered to it.
                page.fill("#jray-filter", "name=Ledger.add")
                page.locator("#jray-body tr").first.locator(f"td:nth-child({column('actor id')}) a").click()
                page.wait_for_function("document.querySelector('.jray-tab.jray-on').dataset.tab === 'actors'"
                                       " && document.querySelectorAll('#jray-body tr').length === 1", timeout=30_000)
                assert "the-ledger" in page.locator("#jray-body tr").first.inner_text()
                # The jobs tab lists this driver's job.
                page.click(".jray-tab[data-tab=jobs]")
                assert page.input_value("#jray-filter") == ""  # another table: its own filter
                job = jray.get_runtime_context().get_job_id()
                page.wait_for_function(
                    f"[...document.querySelectorAll('#jray-body tr')].some(r => r.dataset.id === '{job}')",
                    timeout=30_000)
            finally:
                browser.close()
    finally:
        server.shutdown()
        server.server_close()
