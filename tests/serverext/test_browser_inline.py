"""The two plain-HTML pages inline in a notebook cell (issue 18), in a real
JupyterLab and headless Chromium: a notebook runs a function's tasks, then
``jray.views.tables(filter=...)`` shows the tables page in the cell's output
(an iframe of the extension's page, under the server's base URL, with
Jupyter's login cookie) with the tasks' rows, and ``jray.views.logs(pid=...)``
the logs page with the worker's log and the task's printed lines found by
the search. The frames open in Lab's theme and follow it to dark. A frame
whose page is not a jray page (here a made-up path) is replaced by a message
saying why. Screenshots: ``tests/output/inline_tables.png``,
``inline_logs.png``, ``inline_pages_dark.png``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.serverext.test_browser import UI_TIMEOUT_MS, _api, _notebook, lab_session

CELLS = [
    "import os\nimport jray\njray.init(ignore_reinit_error=True)",
    "@jray.remote\ndef inline_square(i):\n    print('inline square says', i, flush=True)\n    return i * i, os.getpid()\n\n"
    "res = jray.get([inline_square.remote(i) for i in range(6)])\nprint('squares', [r for r, _ in res])",
    "jray.views.tables(filter='name=inline_square', height=360)",
    "jray.views.logs(pid=res[0][1], search='inline square says', height=360)",
    "from jray.jupyter.views.inline import PageFrame\nPageFrame('tables', '/no-such-base/jray/views/tables', height=120)",
]


def _cell(page, i: int):  # type: ignore[no-untyped-def]
    return page.locator(".jp-Notebook .jp-Cell").nth(i)


@pytest.mark.timeout(420)
def test_tables_and_logs_pages_inline_in_a_notebook_cell(tmp_path: Path) -> None:
    with lab_session(tmp_path, viewport=(1280, 900), failure_shot="inline_failure.png") as lab:
        server, page = lab.server, lab.page
        _api(server.url + "api/contents/inline.ipynb", server.token, "PUT",
             {"type": "notebook", "format": "json", "content": _notebook(CELLS)})
        lab.open_lab("lab/tree/inline.ipynb", theme="JupyterLab Light")
        page.locator(".jp-Notebook .jp-Cell").first.wait_for()
        page.wait_for_function(
            "() => { const k = window.jupyterapp.shell.currentWidget.sessionContext;"
            " return k && k.session && k.session.kernel && k.session.kernel.status === 'idle'; }")
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        page.locator(".jp-OutputArea-output", has_text="squares [0, 1, 4, 9, 16, 25]").wait_for()

        # The tables page in cell 3's output: the function's six tasks, FINISHED.
        out = _cell(page, 2).locator(".jp-OutputArea-output .jray-inline-page")
        out.wait_for()
        out.scroll_into_view_if_needed()
        src = out.locator("iframe").get_attribute("src") or ""
        assert src.startswith("/jray/views/tables?theme=light#"), src  # themed by the output's script
        assert server.token not in src
        frame = _cell(page, 2).frame_locator(".jray-inline-page iframe")
        frame.locator("body[data-jray-updates]").wait_for(state="attached")
        assert frame.locator("#jray-filter").input_value() == "name=inline_square"
        page.wait_for_function(
            "() => { const f = document.querySelectorAll('.jp-Notebook .jp-Cell')[2]"
            ".querySelector('.jray-inline-page iframe');"
            " const d = f && f.contentDocument; if (!d) return false;"
            " const rows = [...d.querySelectorAll('#jray-body tr')].filter(r => /inline_square/.test(r.textContent)"
            " && /FINISHED/.test(r.textContent)); return rows.length === 6; }", timeout=UI_TIMEOUT_MS)
        assert out.get_attribute("data-jray-loaded") == "1"
        page.wait_for_timeout(500)
        out.screenshot(path=str(tmp_path / "inline_tables.png"))
        _keep(tmp_path, "inline_tables.png")

        # The logs page in cell 4's output: the worker's log, the task's prints found.
        logs = _cell(page, 3).locator(".jp-OutputArea-output .jray-inline-page")
        logs.wait_for()
        logs.scroll_into_view_if_needed()
        lframe = _cell(page, 3).frame_locator(".jray-inline-page iframe")
        lframe.locator("#jray-log .jray-line", has_text="inline square says").first.wait_for()
        pid = page.evaluate("() => new URLSearchParams(document.querySelectorAll('.jp-Notebook .jp-Cell')[3]"
                            ".querySelector('.jray-inline-page iframe').contentWindow.location.hash.slice(1)).get('pid')")
        assert pid and f"pid {pid}" in lframe.locator("#jray-log-title").inner_text()
        lines = lframe.locator("#jray-log .jray-line").all_inner_texts()
        assert lines and all("inline square says" in line for line in lines), lines
        lframe.locator("#jray-log mark").first.wait_for()
        page.wait_for_timeout(500)
        logs.screenshot(path=str(tmp_path / "inline_logs.png"))
        _keep(tmp_path, "inline_logs.png")

        # Not a jray page in the frame: a message in its place, saying why.
        bad = _cell(page, 4).locator(".jp-OutputArea-output .jray-inline-page")
        bad.wait_for()
        bad.locator(".jray-inline-error", has_text="could not be shown here").wait_for()
        assert not bad.locator("iframe").is_visible()

        # Lab turns dark: the frames reload dark, the page's own state (filter) kept.
        page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
        page.wait_for_function(
            "() => [...document.querySelectorAll('.jray-inline-page iframe')].slice(0, 2)"
            ".every(f => /[?]theme=dark#/.test(f.src))", timeout=UI_TIMEOUT_MS)
        frame.locator("html[data-jray-theme=dark] body[data-jray-updates]").wait_for(state="attached")
        assert frame.locator("#jray-filter").input_value() == "name=inline_square"
        frame.locator("#jray-body tr", has_text="inline_square").first.wait_for()
        out.scroll_into_view_if_needed()
        page.wait_for_timeout(800)
        lab.screenshot("inline_pages_dark.png")


def _keep(tmp_path: Path, name: str) -> None:
    import shutil

    from tests.serverext.test_browser import OUTPUT

    OUTPUT.mkdir(exist_ok=True)
    shutil.copy(tmp_path / name, OUTPUT / name)
