"""The head's dashboard (issue 16): jray's pages on the jobs API's port, for
a cluster used without Jupyter. A real ``jray start --head`` on loopback
(where the dashboard is on by default), real jobs, and a real headless
Chromium that logs in with the token, follows a job's log and watches the
task-stream page update."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CLI = [sys.executable, "-m", "jray.scripts"]
CHROMIUM = "/usr/bin/chromium"
OUTPUT = Path(__file__).resolve().parents[1] / "output"


def request(addr: str, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def head() -> Iterator[dict[str, Any]]:
    tmp = tempfile.mkdtemp(prefix="dash-", dir=os.environ.get("JRAY_TMPDIR"))
    env = dict(os.environ, JRAY_TMPDIR=tmp)
    for k in ("JRAY_ADDRESS", "JRAY_TOKEN"):
        env.pop(k, None)
    r = subprocess.run([*CLI, "start", "--head", "--port", "0", "--num-cpus", "1", "--dashboard-port", "0",
                        "--object-store-memory", str(64 * 1024 * 1024)], env=env, capture_output=True, text=True,
                       timeout=120)
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        line = next(ln for ln in r.stdout.splitlines() if ln.startswith("Dashboard at http://"))
        addr = line.split("http://", 1)[1].split("/", 1)[0]
        saved = os.environ.get("JRAY_TMPDIR")
        os.environ["JRAY_TMPDIR"] = tmp
        try:
            from jray._private import node as _node

            info = _node.read_address_file()
        finally:
            if saved is None:
                os.environ.pop("JRAY_TMPDIR", None)
            else:
                os.environ["JRAY_TMPDIR"] = saved
        assert info is not None
        yield {"addr": addr, "token": info["token"], "gcs": info["gcs_address"], "env": env}
    finally:
        subprocess.run([*CLI, "stop"], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def job(head: dict[str, Any]) -> str:
    from jray.job_submission import JobStatus

    env = {**head["env"], "JRAY_ADDRESS": head["gcs"], "JRAY_TOKEN": head["token"]}
    code = ("import jray, time\njray.init()\n@jray.remote\ndef f(i):\n    time.sleep(0.05)\n    return i\n"
            "print('total', sum(jray.get([f.remote(i) for i in range(20)])), flush=True)\n")
    script = Path(tempfile.mkdtemp(prefix="dashjob-", dir=os.environ.get("JRAY_TMPDIR"))) / "work.py"
    script.write_text(code)
    r = subprocess.run([*CLI, "job", "submit", "--submission-id", "dash-1", "--working-dir", str(script.parent),
                        "--", "python", "work.py"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "total 190" in r.stdout
    assert JobStatus.SUCCEEDED.value in subprocess.run([*CLI, "job", "status", "dash-1"], env=env,
                                                       capture_output=True, text=True, timeout=60).stdout
    return "dash-1"


def login(head: dict[str, Any]) -> str:
    status, hdrs, _ = request(head["addr"], "POST", "/login",
                              urllib.parse.urlencode({"token": head["token"]}).encode(),
                              {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 303 and hdrs["location"] == "/"
    cookie = hdrs["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    return cookie.split(";", 1)[0]


def test_everything_is_behind_the_token(head: dict[str, Any]) -> None:
    addr = head["addr"]
    status, hdrs, _ = request(addr, "GET", "/")
    assert status == 303 and hdrs["location"] == "/login"
    for path in ("/api/views/task_stream", "/api/jobs/"):
        status, _, body = request(addr, "GET", path)
        assert status == 401, (path, body)
    status, _, body = request(addr, "POST", "/login", b"token=wrong", {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 401 and b"not this cluster's token" in body and b"set-cookie" not in body.lower()
    status, _, body = request(addr, "GET", "/", headers={"Cookie": "jray_dashboard=forged"})
    assert status == 303
    status, _, body = request(addr, "GET", "/login")
    assert status == 200 and b"name='token'" in body


def test_pages_and_data_with_the_cookie(head: dict[str, Any], job: str) -> None:
    addr, cookie = head["addr"], login(head)
    h = {"Cookie": cookie}
    status, _, body = request(addr, "GET", "/", headers=h)
    page = body.decode()
    assert status == 200 and "Nodes" in page and "head" in page and "/jobs/dash-1" in page and "SUCCEEDED" in page
    assert "/views/task_stream" in page
    status, hdrs, body = request(addr, "GET", "/views/task_stream", headers=h)
    assert status == 200 and hdrs["content-type"].startswith("text/html") and b"Bokeh" in body
    assert b"/api/views/task_stream" in body
    status, _, body = request(addr, "GET", "/api/views/task_stream", headers=h)
    data = json.loads(body)
    assert status == 200 and isinstance(data, dict) and data
    bars = max((len(next(iter(cols.values()), [])) for cols in data.values()), default=0)
    assert bars >= 20  # the job's 20 tasks (and its driver's) are in the stream
    status, _, body = request(addr, "GET", "/jobs/dash-1", headers=h)
    assert status == 200 and b"python work.py" in body and b"logs/tail" in body
    status, _, body = request(addr, "GET", "/api/jobs/dash-1/logs/tail?offset=0&wait=0", headers=h)
    assert status == 200 and "total 190" in json.loads(body)["logs"]  # the REST API takes the cookie too
    status, _, body = request(addr, "GET", "/views/nope", headers=h)
    assert status == 404
    # The bearer token still works for every page, as for the REST API.
    status, _, _ = request(addr, "GET", "/", headers={"Authorization": f"Bearer {head['token']}"})
    assert status == 200


def test_logs_and_nodes_pages(head: dict[str, Any], job: str) -> None:
    """Issue 18: the logs page and the nodes view are dashboard pages too, behind
    the token; the logs page's poll carries its selection in the query."""
    addr, cookie = head["addr"], login(head)
    h = {"Cookie": cookie}
    status, _, body = request(addr, "GET", "/", headers=h)
    assert "/views/logs" in body.decode() and "/views/nodes" in body.decode()
    status, _, body = request(addr, "GET", "/views/logs", headers=h)
    assert status == 200 and b'id="jray-log-search"' in body and b'"/api/views/logs"' in body
    assert request(addr, "GET", "/api/views/logs")[0] == 401
    status, _, body = request(addr, "GET", "/api/views/logs", headers=h)
    data = json.loads(body)
    assert status == 200 and data["log"] is None
    (node,) = data["nodes"]
    assert node["is_head"] and any(f["file"] == "gcs.log" for f in node["files"])
    q = urllib.parse.urlencode({"node_id": node["node_id"], "file": "gcs.log", "tail": "5"})
    status, _, body = request(addr, "GET", f"/api/views/logs?{q}", headers=h)
    log = json.loads(body)["log"]
    assert status == 200 and log["error"] is None and 0 < len(log["lines"]) <= 5
    q = urllib.parse.urlencode({"node_id": node["node_id"], "file": "../cluster.json"})
    log = json.loads(request(addr, "GET", f"/api/views/logs?{q}", headers=h)[2])["log"]
    assert "'..' is not allowed" in log["error"] and log["lines"] == []
    status, _, body = request(addr, "GET", "/api/views/nodes", headers=h)
    nodes = json.loads(body)
    assert status == 200 and nodes["node_latest"]["node_id"] == [node["node_id"]]


@pytest.mark.timeout(300)
def test_in_chromium(head: dict[str, Any], job: str) -> None:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is needed at /usr/bin/chromium (CI installs it)")
    from playwright.sync_api import sync_playwright

    base = f"http://{head['addr']}"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(base + "/", timeout=60_000)
            assert page.url.endswith("/login")
            page.fill("input[name=token]", head["token"])
            page.click("button[type=submit]")
            page.wait_for_selector("text=Jobs", timeout=30_000)
            page.click("a[href='/jobs/dash-1']")
            page.wait_for_selector("body[data-jray-done='1']", timeout=30_000)
            assert "total 190" in page.inner_text("#log") and page.inner_text("#status") == "SUCCEEDED"
            page.goto(base + "/views/task_stream", timeout=60_000)
            page.wait_for_function("Number(document.body.dataset.jrayUpdates || 0) >= 2", timeout=60_000)
            OUTPUT.mkdir(exist_ok=True)
            page.screenshot(path=str(OUTPUT / "head_dashboard_task_stream.png"))
            page.goto(base + "/", timeout=60_000)
            page.screenshot(path=str(OUTPUT / "head_dashboard.png"), full_page=True)
        finally:
            browser.close()
