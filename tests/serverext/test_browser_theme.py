"""The new pages in JupyterLab, in a real headless Chromium (issue 18): the
sidebar lists the progress view and the tables page by their names, they
open as Lab panels, and the pages follow Lab's theme: under "JupyterLab
Dark" a page opens dark (``?theme=dark``: Bokeh's dark_minimal, the tables
page's dark palette) and open pages reload light when Lab turns light
again. Screenshots: ``tests/output/jupyterlab_progress_dark.png``,
``tests/output/jupyterlab_tables_dark.png``."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest

from jray._private import node as _node
from tests.serverext.conftest import run_driver
from tests.serverext.test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    UI_TIMEOUT_MS,
    LabServer,
    _screenshot,
)

WORK = """
@jray.remote
def themed_square(i):
    if i == 5:
        raise ValueError("five")
    return i * i

refs = [themed_square.remote(i) for i in range(20)]
jray.wait(refs, num_returns=len(refs), timeout=60)
"""


def _frame(page, match):  # type: ignore[no-untyped-def]
    """The page's iframe whose URL matches, once it has loaded (bounded)."""
    for _ in range(UI_TIMEOUT_MS // 100):
        frame = page.frame(url=match)
        if frame is not None:
            return frame
        page.wait_for_timeout(100)
    raise AssertionError("the view's frame never loaded")


@pytest.mark.timeout(420)
def test_progress_and_tables_follow_the_lab_theme(tmp_path: Path) -> None:
    assert os.path.exists(CHROMIUM), "Debian's chromium is needed at /usr/bin/chromium (CI installs it)"
    from playwright.sync_api import sync_playwright

    server = LabServer(tmp_path)
    info = None
    try:
        status = server.wait_ready()
        assert {"progress", "tables"} <= set(status["views"])
        with open(os.path.join(status["session_dir"], "cluster.json")) as f:
            info = json.load(f)
        run_driver(info["gcs_address"], info["token"], WORK, timeout=120)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
                                         timeout=UI_TIMEOUT_MS)
            page = None
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.set_default_timeout(UI_TIMEOUT_MS)
                page.goto(f"{server.url}lab?token={server.token}")
                page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell"
                                       " && window.jupyterapp.commands.hasCommand('apputils:change-theme')",
                                       timeout=UI_TIMEOUT_MS)
                page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme',"
                              " {theme: 'JupyterLab Dark'})")
                page.wait_for_function("document.body.dataset.jpThemeLight === 'false'", timeout=UI_TIMEOUT_MS)
                page.locator('.jp-SideBar [data-id="jray-sidebar"]').click()
                sidebar = page.locator("#jray-sidebar")
                sidebar.locator(".jray-state-running").wait_for()
                assert sidebar.locator(".jray-view-progress").inner_text() == "Progress"
                assert sidebar.locator(".jray-view-tables").inner_text() == "Tasks, actors, jobs"

                # Progress, dark: the iframe asked for it and Bokeh drew with dark_minimal.
                sidebar.locator(".jray-view-progress").click()
                frame = page.locator("#jray-view-progress iframe")
                frame.wait_for()
                assert "theme=dark" in (frame.get_attribute("src") or "")
                view = _frame(page, lambda u: "/jray/views/progress" in u)
                view.wait_for_function(
                    "() => { const d = Bokeh.documents[0]; const s = d && d.get_model_by_name('progress_bars');"
                    " const i = s ? s.data.name.indexOf('themed_square') : -1;"
                    " return i >= 0 && s.data.done[i] === 19 && s.data.failed[i] === 1; }", timeout=UI_TIMEOUT_MS)
                bg = view.evaluate("getComputedStyle(document.body).backgroundColor")
                assert bg == "rgb(21, 25, 28)", bg  # #15191C
                page.wait_for_timeout(800)
                _screenshot(page, tmp_path, "jupyterlab_progress_dark.png")

                # The tables page, dark too, with the failed task findable.
                sidebar.locator(".jray-view-tables").click()
                tables = _frame(page, lambda u: "/jray/views/tables" in u)
                tables.wait_for_function("Number(document.body.dataset.jrayUpdates || 0) >= 1",
                                         timeout=UI_TIMEOUT_MS)
                assert tables.evaluate("document.documentElement.dataset.jrayTheme") == "dark"
                tables.fill("#jray-filter", "name=themed_square state=FAILED")
                tables.locator("#jray-body tr", has_text="ValueError: five").wait_for()
                _screenshot(page, tmp_path, "jupyterlab_tables_dark.png")

                # Lab turns light: the open pages reload light.
                page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme',"
                              " {theme: 'JupyterLab Light'})")
                page.wait_for_function(
                    "() => { const f = document.querySelector('#jray-view-tables iframe');"
                    " return f && /theme=light/.test(f.src); }", timeout=UI_TIMEOUT_MS)
                tables = _frame(page, lambda u: "/jray/views/tables" in u and "theme=light" in u)
                tables.wait_for_function("Number(document.body.dataset.jrayUpdates || 0) >= 1",
                                         timeout=UI_TIMEOUT_MS)
                assert tables.evaluate("document.documentElement.dataset.jrayTheme") == "light"
            except BaseException:
                if page is not None:
                    with contextlib.suppress(Exception):
                        _screenshot(page, tmp_path, "theme_failure.png")
                raise
            finally:
                browser.close()
    except BaseException:
        print(server.tail())
        raise
    finally:
        leftovers = server.stop()
    assert not leftovers, f"processes outlived jupyter lab: {[p.pid for p in leftovers]}"
    assert info is not None
    assert _node.session_processes(info) == []
    assert _node.session_store_files(info) == []
