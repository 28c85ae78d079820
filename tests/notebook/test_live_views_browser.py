"""The inline live views in JupyterLab, in headless Chromium: the
ClusterMonitor draws its bars and the Bokeh task stream (a jupyter_bokeh
widget, BokehJS inlined into the page) draws the bars of tasks run after it
was shown. Reuses the server-extension browser test's ``LabServer``."""

from __future__ import annotations

import contextlib
import os
import shutil

import pytest

from tests.serverext.test_browser import CHROMIUM, CHROMIUM_ARGS, OUTPUT, LabServer, _api, _notebook

CELLS = [
    "import time\nimport jray\njray.init(ignore_reinit_error=True)",
    "from IPython.display import display\n"
    "mon = jray.widgets.ClusterMonitor(period=0.5)\n"
    "display(mon)\n"
    "live = jray.views.task_stream(period=0.5)\n"
    "live",
    "store = jray.views.object_store(period=0.5)\nref = jray.put(b'x' * 5_000_000)\nstore",
    "@jray.remote\ndef work(i):\n    time.sleep(0.3)\n    return i\n\n"
    "print('sum', sum(jray.get([work.remote(i) for i in range(8)])))",
]
TIMEOUT_MS = 90_000


@pytest.mark.timeout(400)
def test_inline_views_render_and_update_in_jupyterlab(tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.skip("needs Debian's chromium at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    server = LabServer(tmp_path)
    try:
        server.wait_ready()
        _api(server.url + "api/contents/views.ipynb", server.token, "PUT",
             {"type": "notebook", "format": "json", "content": _notebook(CELLS)})
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
                                         timeout=TIMEOUT_MS)
            errors: list[str] = []
            page = browser.new_page(viewport={"width": 1300, "height": 1600})
            try:
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.set_default_timeout(TIMEOUT_MS)
                page.goto(f"{server.url}lab/tree/views.ipynb?token={server.token}")
                page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell")
                page.locator(".jp-Notebook .jp-Cell").first.wait_for()
                page.wait_for_function(
                    "() => { const k = window.jupyterapp.shell.currentWidget.sessionContext;"
                    " return k && k.session && k.session.kernel && k.session.kernel.status === 'idle'; }")
                page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
                page.locator(".jp-OutputArea-output", has_text="sum 28").wait_for()
                # The monitor: a panel per node with its bars, and the finished tasks.
                page.locator(".jp-OutputArea-output", has_text="workers:").first.wait_for()
                page.locator(".jp-OutputArea-output", has_text="FINISHED").first.wait_for()
                # The task stream: a Bokeh figure whose source got the 8 tasks after it was shown.
                page.wait_for_function(
                    "() => { if (!window.Bokeh) return false;"
                    " for (const d of Bokeh.documents) { const s = d.get_model_by_name('task_stream');"
                    " if (s && s.data.name && s.data.name.filter(n => n === 'work').length >= 8) return true; }"
                    " return false; }")
                assert page.locator(".jp-OutputArea-output canvas").count() > 0
                # The object store view: its table (bokeh-tables) lists the put.
                page.locator(".jp-OutputArea-output .slick-cell", has_text="4.8 MiB").first.wait_for()
                assert not [e for e in errors if "Could not create a view" in e], errors
                page.wait_for_timeout(1000)
                page.screenshot(path=str(tmp_path / "inline_views.png"), full_page=True)
                OUTPUT.mkdir(exist_ok=True)
                shutil.copy(tmp_path / "inline_views.png", OUTPUT / "inline_views.png")
            except BaseException:
                with contextlib.suppress(Exception):
                    page.screenshot(path=str(tmp_path / "inline_views_failure.png"), full_page=True)
                raise
            finally:
                browser.close()
    except BaseException:
        print(server.tail())
        raise
    finally:
        leftovers = server.stop()
    assert not leftovers, f"processes outlived jupyter lab: {[p.pid for p in leftovers]}"
