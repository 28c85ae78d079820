"""JupyterLab in a real headless Chromium: the jray sidebar shows the cluster the
server started, a notebook runs tasks on it, the task-stream page draws them,
and the cluster stops with the server.

One test (the machine is small): a real ``jupyter lab`` subprocess with a
token and the extension in mode 'start', driven by Playwright with Debian's
``/usr/bin/chromium``. Issue 18's look: Stop styled as danger and asking
first (Cancel keeps the cluster), links that look like links, one byte
format, Add node with chosen CPUs, the status-bar item and Launcher card.
The screenshots land in the test's ``tmp_path`` and in
``tests/output/`` (git-ignored).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from jray._private import node as _node

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "tests" / "output"
UI_TIMEOUT_MS = 90_000

NOTEBOOK_CELLS = [
    "import time\nimport jray\njray.init(ignore_reinit_error=True)",
    "@jray.remote\ndef work(i):\n    time.sleep(0.3)\n    return i\n\n"
    "print('sum', sum(jray.get([work.remote(i) for i in range(8)])))",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _api(url: str, token: str, method: str = "GET", body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else (b"" if method != "GET" else None)
    req = urllib.request.Request(url, data=data, method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return dict(json.loads(r.read() or b"{}"))


def _notebook(cells: list[str]) -> dict:
    return {"nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "execution_count": None,
                       "outputs": [], "source": src} for i, src in enumerate(cells)]}


class LabServer:
    """``jupyter lab`` in its own process group, isolated config/data dirs."""

    def __init__(self, tmp: Path, jray: dict | None = None) -> None:
        """``jray``: the JrayExtension config (default: start a 2-CPU head)."""
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}/"
        root, conf, data, runtime, labext, settings = (
            tmp / d for d in ("root", "config", "data", "runtime", "labext", "settings"))
        for d in (root, conf, data, runtime, labext, settings):
            d.mkdir()
        # No "get notified about Jupyter news?" toast over the screenshot.
        (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
        (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false"}))
        self.root = root
        # The editable install has no share/jupyter/labextensions/jray-lab: point
        # Lab at the committed build (what the wheel ships there).
        (labext / "jray-lab").symlink_to(REPO / "jray" / "labextension")
        (conf / "jupyter_server_config.json").write_text(json.dumps({
            "ServerApp": {"jpserver_extensions": {"jray.jupyter.serverext": True}, "allow_root": True,
                          "port": self.port, "port_retries": 0, "ip": "127.0.0.1", "open_browser": False,
                          "root_dir": str(root)},
            "IdentityProvider": {"token": self.token},
            "LabApp": {"extra_labextensions_path": [str(labext)], "expose_app_in_browser": True,
                       "user_settings_dir": str(settings),
                       "news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate"},
            "JrayExtension": jray or {"mode": "start", "num_cpus": 2, "num_gpus": 0,
                                      "object_store_memory": 64 * 1024 * 1024},
        }))
        env = dict(os.environ, JUPYTER_CONFIG_DIR=str(conf), JUPYTER_DATA_DIR=str(data),
                   JUPYTER_RUNTIME_DIR=str(runtime), JUPYTER_PLATFORM_DIRS="1")
        for k in ("JRAY_ADDRESS", "JRAY_TOKEN", "JRAY_DASHBOARD_URL"):
            env.pop(k, None)
        self.log_path = tmp / "jupyterlab.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser"], cwd=root, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 120, state: str = "running") -> dict:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited ({self.proc.returncode}):\n{self.tail()}")
            with contextlib.suppress(OSError, ValueError):
                st = _api(self.url + "jray/api/status", self.token)
                if st.get("state") == state:
                    return st
            if time.monotonic() > deadline:
                raise TimeoutError(f"jupyter lab with a jray cluster {state} not ready in {timeout} s:\n"
                                   + self.tail())
            time.sleep(0.5)

    def tail(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> list[psutil.Process]:
        """SIGTERM (Jupyter shuts kernels and extensions down), SIGKILL after a
        grace period; returns descendants still alive afterwards (then killed)."""
        try:
            family = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            family = []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        _, alive = psutil.wait_procs(family, timeout=15)
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()
        self.log.close()
        return alive


def _screenshot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    OUTPUT.mkdir(exist_ok=True)
    shutil.copy(path, OUTPUT / name)


@dataclass
class LabSession:
    """What ``lab_session`` yields: the server, its status when ready, the
    session's cluster.json (None when no cluster ran at the start), a page."""

    server: LabServer
    status: dict
    info: dict | None
    page: Any
    tmp_path: Path

    def open_lab(self, path: str = "lab", theme: str | None = None) -> None:
        """Open Lab (``path``: "lab" or "lab/tree/x.ipynb") and wait for its app;
        ``theme``: "JupyterLab Dark"/"JupyterLab Light" applied first."""
        page = self.page
        page.goto(f"{self.server.url}{path}?token={self.server.token}")
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell", timeout=UI_TIMEOUT_MS)
        if theme is not None:
            page.wait_for_function("() => window.jupyterapp.commands.hasCommand('apputils:change-theme')",
                                   timeout=UI_TIMEOUT_MS)
            page.evaluate(f"window.jupyterapp.commands.execute('apputils:change-theme', {{theme: {theme!r}}})")
            light = "true" if "Light" in theme else "false"
            page.wait_for_function(f"document.body.dataset.jpThemeLight === '{light}'", timeout=UI_TIMEOUT_MS)

    def sidebar(self, state: str | None = "running") -> Any:
        """The jray sidebar, shown (and its cluster in ``state``, when given)."""
        sidebar = self.page.locator("#jray-sidebar")
        if not sidebar.is_visible():
            self.page.locator('.jp-SideBar [data-id="jray-sidebar"]').click()
        if state is not None:
            sidebar.locator(f".jray-state-{state}").first.wait_for()
        return sidebar

    def screenshot(self, name: str) -> None:
        _screenshot(self.page, self.tmp_path, name)


@contextlib.contextmanager
def lab_session(tmp_path: Path, *, jray: dict | None = None, state: str = "running",
                viewport: tuple[int, int] = (1280, 900), failure_shot: str = "jupyterlab_failure.png",
                ) -> Iterator[LabSession]:
    """A real ``jupyter lab`` (``LabServer``, its ``jray`` config) ready with its
    cluster in ``state``, and a page of headless Chromium at ``viewport``.

    On the way out: a screenshot ``failure_shot`` and the server's log if the
    body raised; the browser closed; the server stopped. Then, when the body
    passed: no process outlived the server and, when a cluster ran at the
    start, none of its daemons and no store file is left (the server's head
    stops with it)."""
    assert os.path.exists(CHROMIUM), "Debian's chromium is needed at /usr/bin/chromium (CI installs it)"
    from playwright.sync_api import sync_playwright

    server = LabServer(tmp_path, jray)
    info = None
    try:
        status = server.wait_ready(state=state)
        if status.get("session_dir"):
            with open(os.path.join(status["session_dir"], "cluster.json")) as f:
                info = json.load(f)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
                                         timeout=UI_TIMEOUT_MS)
            page = None
            try:
                page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
                page.set_default_timeout(UI_TIMEOUT_MS)
                yield LabSession(server, status, info, page, tmp_path)
            except BaseException:
                if page is not None:
                    with contextlib.suppress(Exception):
                        _screenshot(page, tmp_path, failure_shot)
                raise
            finally:
                browser.close()
    except BaseException:
        print(server.tail())
        raise
    finally:
        leftovers = server.stop()
    assert not leftovers, f"processes outlived jupyter lab: {[p.pid for p in leftovers]}"
    if info is not None and state == "running" and (jray or {}).get("mode", "start") == "start":
        assert _node.session_processes(info) == []
        assert _node.session_store_files(info) == []


@pytest.mark.timeout(420)
def test_jupyterlab_sidebar_notebook_and_task_stream(tmp_path):
    with lab_session(tmp_path, viewport=(1400, 900)) as lab:
        server, status, info, page = lab.server, lab.status, lab.info, lab.page
        assert status["owned"] and status["resources_total"]["CPU"] == 2.0
        _api(server.url + "api/contents/demo.ipynb", server.token, "PUT",
             {"type": "notebook", "format": "json", "content": _notebook(NOTEBOOK_CELLS)})
        lab.open_lab("lab/tree/demo.ipynb")

        # The sidebar shows the cluster the server started.
        page.locator('.jp-SideBar [data-id="jray-sidebar"]').click()
        sidebar = page.locator("#jray-sidebar")
        sidebar.locator(".jray-state-running").wait_for()
        assert status["address"] in sidebar.locator(".jray-state-line").inner_text()
        sidebar.locator(".jray-node").first.wait_for()
        assert sidebar.locator('.jray-resources [data-resource="CPU"]').inner_text().strip().endswith("/ 2")
        # No autoscaler on a cluster the server started: no Autoscaler section.
        assert _api(server.url + "jray/api/autoscaler", server.token) == {"status": None}
        assert not sidebar.locator(".jray-autoscaler").is_visible()

        # Issue 18: Stop looks like danger, Add node does not; the links look like links;
        # the store reads in jray's one byte format (KiB/MiB, not "0.00 GiB").
        assert "jp-mod-warn" in sidebar.locator(".jray-stop").get_attribute("class")
        assert "jp-mod-accept" in sidebar.locator(".jray-add-node").get_attribute("class")
        page.wait_for_function(  # links re-render each poll: look at the one in the page now
            "() => { const a = document.querySelector('#jray-sidebar .jray-view-task_stream');"
            " return a && getComputedStyle(a).textDecorationLine.includes('underline'); }")
        store_text = sidebar.locator('.jray-resources [data-resource="store"]').inner_text()
        assert re.search(r"\d+(\.\d)? (B|KiB|MiB) / 64\.0 MiB", store_text), store_text
        # The status bar says nodes and CPUs; the Launcher has a "jray cluster" card.
        item = page.locator("#jray-statusbar-item")
        item.filter(has_text=re.compile(r"jray: 1 node · [\d.]+/2 CPU")).wait_for()
        # The notebook of the URL opens first: on a loaded machine it can open after the
        # Launcher below and take the front, hiding the card.
        page.locator(".jp-Notebook .jp-Cell").first.wait_for()
        page.evaluate("window.jupyterapp.commands.execute('launcher:create')"
                      ".then(w => window.jupyterapp.shell.activateById(w.id))")
        # The Launcher in front (Lab opens one of its own at start when the notebook is late).
        card = page.locator(".jp-LauncherCard:visible", has_text="jray cluster")
        card.wait_for()
        assert card.locator(".jp-LauncherCard-label").inner_text().strip() == "jray cluster"
        assert card.locator("svg").count() > 0  # the jray icon
        _screenshot(page, tmp_path, "jupyterlab_launcher_statusbar.png")
        page.locator('.jp-SideBar [data-id="jray-sidebar"]').click()  # hide the sidebar
        sidebar.wait_for(state="hidden")
        card.click()  # the card shows it again
        sidebar.wait_for(state="visible")
        page.evaluate("window.jupyterapp.shell.currentWidget.close()")  # the launcher

        # Scale from the sidebar: a worker node with the CPUs chosen joins, then leaves.
        sidebar.locator(".jray-add-cpus").fill("2")
        sidebar.locator(".jray-add-node").click()
        page.wait_for_function(
            "() => document.querySelectorAll('#jray-sidebar .jray-node-alive').length === 2")
        item.filter(has_text=re.compile(r"jray: 2 nodes · [\d.]+/4 CPU")).wait_for()
        sidebar.locator(".jray-remove-node").click()
        sidebar.locator(".jray-node-dead").wait_for()
        page.wait_for_function(
            "() => document.querySelectorAll('#jray-sidebar .jray-node-alive').length === 1")

        # The task stream opens in a Lab panel, before any task ran.
        sidebar.locator(".jray-view-task_stream").click()
        frame = page.frame_locator("#jray-view-task_stream iframe")
        frame.locator("body[data-jray-updates]").wait_for(state="attached")

        # Insert the init snippet into the notebook, then run it all.
        page.wait_for_function(
            "() => { const w = window.jupyterapp.shell.widgets('main');"
            " for (const p of w) { if (p.context && p.context.path === 'demo.ipynb')"
            " { window.jupyterapp.shell.activateById(p.id); return true; } } return false; }")
        page.locator(".jp-Notebook .jp-Cell").first.wait_for()
        sidebar.locator(".jray-insert-init").click()
        page.wait_for_function(
            "() => document.querySelectorAll('.jp-Notebook .jp-Cell').length === 3")
        first_cell = page.locator(".jp-Notebook .jp-Cell").first.inner_text()
        assert "jray.init()" in first_cell
        page.wait_for_function(
            "() => { const k = window.jupyterapp.shell.currentWidget.sessionContext;"
            " return k && k.session && k.session.kernel && k.session.kernel.status === 'idle'; }")
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        page.locator(".jp-OutputArea-output", has_text="sum 28").wait_for()

        # The sidebar counts the finished tasks.
        if not sidebar.is_visible():
            page.locator('.jp-SideBar [data-id="jray-sidebar"]').click()
        page.wait_for_function(
            "() => /finished (\\d+)/.test(document.querySelector('#jray-sidebar .jray-tasks').textContent)"
            " && +document.querySelector('#jray-sidebar .jray-tasks').textContent"
            ".match(/finished (\\d+)/)[1] >= 8")

        # Bars appear on the task-stream page: rows in its Bokeh source, a canvas drawn.
        page.evaluate("window.jupyterapp.shell.activateById('jray-view-task_stream')")
        view = page.frame(url=lambda u: "/jray/views/task_stream" in u)
        assert view is not None
        view.wait_for_function(
            "() => { const d = Bokeh.documents[0];"
            " const s = d && d.get_model_by_name('task_stream');"
            " return s && s.data.name && s.data.name.filter(n => n === 'work').length >= 8; }",
            timeout=UI_TIMEOUT_MS)
        assert view.locator("canvas").count() > 0
        page.wait_for_timeout(1500)  # let the next poll redraw before the picture
        _screenshot(page, tmp_path, "jupyterlab_task_stream.png")

        # The object-store page opens in its own tab and polls its data too.
        sidebar.locator(".jray-view-object_store").click()
        store = page.frame_locator("#jray-view-object_store iframe")
        store.locator("body[data-jray-updates]").wait_for(state="attached")
        assert store.locator("canvas").count() > 0

        # Stop asks first, naming the attached kernels; Cancel leaves the cluster running.
        if not sidebar.is_visible():
            page.locator('.jp-SideBar [data-id="jray-sidebar"]').click()
        sidebar.locator(".jray-stop").click()
        dialog = page.locator(".jp-Dialog")
        dialog.wait_for()
        text = dialog.inner_text()
        assert "Stop the jray cluster" in text and "1 kernel of this server is attached" in text, text
        assert "lost" in text
        _screenshot(page, tmp_path, "jupyterlab_stop_dialog.png")
        dialog.locator("button", has_text="Cancel").click()
        dialog.wait_for(state="detached")
        assert _api(server.url + "jray/api/status", server.token)["state"] == "running"
        assert sidebar.locator(".jray-state-running").is_visible()
    # lab_session checked that the server's cluster stopped with it (no daemon, no store file).
    assert info is not None
    assert "jray: stopping the local head" in server.log_path.read_text(errors="replace")
