"""The inline live views in JupyterLab, in headless Chromium: the
ClusterMonitor draws its bars and the Bokeh task stream (a jupyter_bokeh
widget, BokehJS inlined into the page) draws the bars of tasks run after it
was shown. Runs in the server-extension browser tests' ``lab_session``."""

from __future__ import annotations

import pytest

from tests.serverext.test_browser import _api, _notebook, lab_session

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
    with lab_session(tmp_path, viewport=(1300, 1600), failure_shot="inline_views_failure.png") as lab:
        server, page = lab.server, lab.page
        _api(server.url + "api/contents/views.ipynb", server.token, "PUT",
             {"type": "notebook", "format": "json", "content": _notebook(CELLS)})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.set_default_timeout(TIMEOUT_MS)
        lab.open_lab("lab/tree/views.ipynb")
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
        lab.screenshot("inline_views.png")
