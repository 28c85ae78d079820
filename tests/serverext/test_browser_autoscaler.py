"""The JupyterLab sidebar's Autoscaler section in a real headless Chromium
(issue 17): "scale to N" on a worker node type, watch the nodes arrive, hand
the type back to the demand.

An autoscaling cluster with the ``local`` provider (real ``jray start``
processes as nodes) is started from a config dict with
``jray.autoscaler.sdk.create_or_update_cluster``; a real ``jupyter lab``
attaches to it (``LabServer`` of test_browser.py). The REST API is checked
first (the status with its node types; 400 for an unknown type or a count
past ``max_workers``), then the sidebar: the ``cpu1`` row shows no node, a
count past the maximum answers the server's message inline, "Scale" to 2
brings two nodes (in the Autoscaler section and in the Nodes list), "Auto"
unpins the type; an infeasible task is listed as such in the pending
demand, and a type pinned to 1 whose launch fails shows the failure with its
retry. ``teardown_cluster`` must leave no process and no
``/dev/shm`` file. The screenshot lands in ``tests/output/``.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import tempfile
import time
import urllib.error
from typing import Any

import psutil
import pytest

import jray
from jray.autoscaler import sdk
from tests.serverext.test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    UI_TIMEOUT_MS,
    LabServer,
    _api,
    _screenshot,
)

STORE = 64 * 1024 * 1024
CONFIG: dict[str, Any] = {
    "cluster_name": "labastest",
    "max_workers": 3,
    "idle_timeout_minutes": 30,  # nodes stay until the teardown: no scale-down during the test
    "provider": {"type": "local", "head_port": 0},
    "head_node_type": "head",
    "available_node_types": {
        "head": {"resources": {"CPU": 0}, "node_config": {"object_store_memory": STORE}},
        "cpu1": {"resources": {"CPU": 1}, "max_workers": 2, "node_config": {"object_store_memory": STORE}},
        # Its nodes never start: the launch failure is reported (and retried).
        "broken": {"resources": {"CPU": 1, "broken": 1}, "max_workers": 1,
                   "node_config": {"python": "/nonexistent/bin/python3"}},
    },
}
ENV = {"JRAY_AUTOSCALER_UPDATE_INTERVAL_S": "0.5"}
NODES_TIMEOUT_S = 60


def session_leftovers(tmp: str) -> tuple[list[int], list[str]]:
    """Live processes whose command line or JRAY_TMPDIR names the test's temp
    dir, and store files of its sessions (as tests/integration/test_autoscaler.py;
    copied: importing that module makes a temp dir)."""
    procs = []
    for p in psutil.process_iter(["pid", "cmdline", "environ"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
            env = p.info["environ"] or {}
            if p.pid != os.getpid() and (tmp in cmd or env.get("JRAY_TMPDIR") == tmp) and \
                    p.status() != psutil.STATUS_ZOMBIE:
                procs.append(p.pid)
        except psutil.Error:
            pass
    sessions = {os.path.basename(s) for s in glob.glob(os.path.join(tmp, "session_*"))}
    shm = [f for f in os.listdir("/dev/shm") if f.startswith("jray-") and
           f[len("jray-"):].rsplit("-", 1)[0] in sessions]
    return procs, shm


def _api_error(url: str, token: str, body: dict) -> tuple[int, str]:
    """POST expected to fail: the status and the server's message."""
    try:
        _api(url, token, "POST", body)
    except urllib.error.HTTPError as e:
        return e.code, str(json.loads(e.read() or b"{}").get("message", ""))
    raise AssertionError(f"POST {url} {body} succeeded")


@pytest.mark.timeout(420)
def test_sidebar_autoscaler_scale_to_n(tmp_path):
    assert os.path.exists(CHROMIUM), "Debian's chromium is needed at /usr/bin/chromium (CI installs it)"
    from playwright.sync_api import sync_playwright

    saved = {k: os.environ.get(k) for k in (*ENV, "JRAY_TMPDIR", "JRAY_ADDRESS", "JRAY_TOKEN")}
    tmp = tempfile.mkdtemp(prefix="as-lab-", dir=os.environ.get("JRAY_TMPDIR"))
    os.environ.update(ENV, JRAY_TMPDIR=tmp)
    os.environ.pop("JRAY_ADDRESS", None)
    os.environ.pop("JRAY_TOKEN", None)
    server = None
    try:
        t0 = time.monotonic()
        info = sdk.create_or_update_cluster(CONFIG)
        print(f"\ncreate_or_update_cluster took {time.monotonic() - t0:.1f} s")
        server = LabServer(tmp_path, jray={"mode": "attach", "address": info.address, "token": info.token})
        try:
            _run(server, info, tmp_path, sync_playwright)
        except BaseException:
            print(server.tail())
            raise
        finally:
            leftovers = server.stop()
        assert not leftovers, f"processes outlived jupyter lab: {[p.pid for p in leftovers]}"
    finally:
        t1 = time.monotonic()
        sdk.teardown_cluster(CONFIG)
        print(f"teardown_cluster took {time.monotonic() - t1:.1f} s")
        try:
            deadline = time.monotonic() + 10
            while session_leftovers(tmp) != ([], []) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert session_leftovers(tmp) == ([], []), "teardown_cluster left processes / store files"
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _status(info: Any) -> dict[str, Any]:
    return sdk.get_status(info.address, info.token) or {}


def _run(server: LabServer, info: Any, tmp_path: Any, sync_playwright: Any) -> None:
    server.wait_ready()
    api = server.url + "jray/api/autoscaler"

    # REST: the published status with the worker node type; bad requests answer 400 with the reason.
    deadline = time.monotonic() + 30
    while not (_api(api, server.token).get("status") or {}).get("node_types"):
        assert time.monotonic() < deadline, "the autoscaler published no status in 30 s"
        time.sleep(0.5)
    st = _api(api, server.token)["status"]
    assert st["cluster_name"] == "labastest" and st["provider"] == "local" and st["running"]
    assert st["node_types"]["cpu1"] == {"resources": {"CPU": 1}, "min_workers": 0, "max_workers": 2,
                                        "target": None, "count": 0}
    assert set(st["node_types"]) == {"cpu1", "broken"}
    code, msg = _api_error(api + "/scale", server.token, {"node_type": "gpu8", "count": 1})
    assert code == 400 and "gpu8" in msg, msg
    code, msg = _api_error(api + "/scale", server.token, {"node_type": "cpu1", "count": 3})
    assert code == 400 and "max_workers is 2" in msg, msg
    assert _status(info)["scale_targets"] == {}

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
                                     timeout=UI_TIMEOUT_MS)
        page = None
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(UI_TIMEOUT_MS)
            page.goto(f"{server.url}lab?token={server.token}")
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell", timeout=UI_TIMEOUT_MS)
            page.locator('.jp-SideBar [data-id="jray-sidebar"]').click()
            sidebar = page.locator("#jray-sidebar")
            sidebar.locator(".jray-state-running").first.wait_for()

            # The Autoscaler section: the cluster, and the cpu1 type with no node yet.
            section = sidebar.locator(".jray-autoscaler")
            section.wait_for(state="visible")
            header = section.locator(".jray-as-header").inner_text()
            assert "labastest" in header and "local" in header and "running" in header, header
            row = section.locator('.jray-as-type[data-node-type="cpu1"]')
            row.wait_for()
            assert "0 running · 0 idle · 0 launching" in row.locator(".jray-as-counts").inner_text()
            assert "min 0 · max 2" in row.locator(".jray-as-limits").inner_text()
            assert "CPU 1" in row.locator(".jray-as-resources").inner_text()
            scale_input = row.locator(".jray-as-scale-input")
            assert scale_input.input_value() == "0" and scale_input.get_attribute("max") == "2"
            # A poll leaves the row in the page: its input keeps the focus (and what is being typed).
            # (On a loaded machine Lab may still be opening a Launcher, which takes the focus to
            # itself: then try again. A row re-rendered by a poll leaves the focus on <body>.)
            for _ in range(3):
                scale_input.focus()
                page.wait_for_timeout(2500)  # past a poll
                if scale_input.evaluate("e => document.activeElement === e"):
                    break
                assert page.evaluate("() => document.activeElement !== document.body"), \
                    "a poll took the input's focus"
            else:
                raise AssertionError("something in the page kept taking the input's focus")
            assert not row.locator(".jray-as-auto-button").is_visible()
            assert not row.locator(".jray-as-pin").is_visible()
            assert page.locator("#jray-sidebar .jray-node-alive").count() == 1  # the head

            # Past max_workers: the server's message, inline, and nothing pinned.
            scale_input.fill("3")
            row.locator(".jray-as-scale-button").click()
            error = row.locator(".jray-as-error")
            error.wait_for(state="visible")
            assert "max_workers is 2" in error.inner_text(), error.inner_text()
            assert _status(info)["scale_targets"] == {}

            # Scale to 2: the type is pinned, two nodes arrive in both lists.
            scale_input.fill("2")
            t_scale = time.monotonic()
            row.locator(".jray-as-scale-button").click()
            error.wait_for(state="hidden")
            row.locator(".jray-as-pin", has_text="pinned to 2").wait_for(timeout=30_000)
            assert row.locator(".jray-as-auto-button").is_visible()
            page.wait_for_function(
                "() => { const r = document.querySelector("
                "'#jray-sidebar .jray-as-type[data-node-type=\"cpu1\"]');"
                " return r && +r.dataset.running + +r.dataset.idle === 2 && +r.dataset.launching === 0"
                " && document.querySelectorAll('#jray-sidebar .jray-node-alive').length === 3; }",
                timeout=NODES_TIMEOUT_S * 1000)
            print(f"scale to 2: both nodes in the sidebar {time.monotonic() - t_scale:.1f} s after the click")
            st = _status(info)
            assert st["scale_targets"] == {"cpu1": 2}
            worker_ids = {n["node_id"] for n in st["node_list"] if n["node_type"] == "cpu1"}
            shown = set(sidebar.locator(".jray-node-alive").evaluate_all("rows => rows.map(r => r.dataset.nodeId)"))
            assert len(worker_ids) == 2 and worker_ids <= shown, (worker_ids, shown)
            counts = row.locator(".jray-as-counts").inner_text()
            assert "0 launching" in counts, counts
            decisions = section.locator(".jray-as-decisions").inner_text()
            assert "cpu1" in decisions, decisions
            page.wait_for_timeout(500)
            _screenshot(page, tmp_path, "jupyterlab_autoscaler.png")

            # Auto: the pin is gone (the badge, the button, the published targets); the nodes stay.
            row.locator(".jray-as-auto-button").click()
            row.locator(".jray-as-pin").wait_for(state="hidden", timeout=30_000)
            row.locator(".jray-as-auto-button").wait_for(state="hidden")
            assert row.get_attribute("data-target") == ""
            assert not error.is_visible()
            assert _status(info)["scale_targets"] == {}
            assert _status(info)["node_types"]["cpu1"]["target"] is None

            # Pending demand: a task no node type can run is marked infeasible.
            jray.init(info.address, _token=info.token, log_to_driver=False)

            @jray.remote(num_cpus=1, resources={"nope": 1})
            def never() -> None:
                pass

            ref = never.remote()
            line = section.locator(".jray-as-demand-line.jray-as-infeasible", has_text="CPU 1, nope 1")
            line.wait_for(timeout=30_000)
            assert "infeasible" in line.inner_text(), line.inner_text()

            # A failed launch: its message, and when the next try comes.
            broken = section.locator('.jray-as-type[data-node-type="broken"]')
            broken.locator(".jray-as-scale-input").fill("1")
            broken.locator(".jray-as-scale-button").click()
            failure = section.locator('.jray-as-failure[data-node-type="broken"]').first
            failure.wait_for(timeout=30_000)
            text = failure.inner_text()
            assert "/nonexistent/bin/python3" in text and "retry in" in text, text
            failure.scroll_into_view_if_needed()
            _screenshot(page, tmp_path, "jupyterlab_autoscaler_demand.png")
            broken.locator(".jray-as-auto-button").click()
            broken.locator(".jray-as-pin").wait_for(state="hidden", timeout=30_000)
            assert _status(info)["scale_targets"] == {}
            jray.cancel(ref, force=True)
        except BaseException:
            if page is not None:
                with contextlib.suppress(Exception):
                    _screenshot(page, tmp_path, "jupyterlab_autoscaler_failure.png")
            raise
        finally:
            browser.close()
            jray.shutdown()
