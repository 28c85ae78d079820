"""The new pages in JupyterLab, in a real headless Chromium (issue 18): the
sidebar lists the progress view and the tables page by their names, they
open as Lab panels, and the pages follow Lab's theme: under "JupyterLab
Dark" a page opens dark (``?theme=dark``: Bokeh's dark_minimal, the tables
page's dark palette) and open pages reload light when Lab turns light
again. Screenshots: ``tests/output/jupyterlab_progress_dark.png``,
``tests/output/jupyterlab_tables_dark.png``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.serverext.conftest import run_driver
from tests.serverext.test_browser import UI_TIMEOUT_MS, lab_session

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
    with lab_session(tmp_path, failure_shot="theme_failure.png") as lab:
        page = lab.page
        assert {"progress", "tables"} <= set(lab.status["views"])
        assert lab.info is not None
        run_driver(lab.info["gcs_address"], lab.info["token"], WORK, timeout=120)
        lab.open_lab(theme="JupyterLab Dark")
        sidebar = lab.sidebar()
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
        lab.screenshot("jupyterlab_progress_dark.png")

        # The tables page, dark too, with the failed task findable.
        sidebar.locator(".jray-view-tables").click()
        tables = _frame(page, lambda u: "/jray/views/tables" in u)
        tables.wait_for_function("Number(document.body.dataset.jrayUpdates || 0) >= 1",
                                 timeout=UI_TIMEOUT_MS)
        assert tables.evaluate("document.documentElement.dataset.jrayTheme") == "dark"
        tables.fill("#jray-filter", "name=themed_square state=FAILED")
        tables.locator("#jray-body tr", has_text="ValueError: five").wait_for()
        lab.screenshot("jupyterlab_tables_dark.png")

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
