"""``notebooks/05_monitoring.ipynb`` run top to bottom in JupyterLab, in
headless Chromium, on the cluster the server extension started (issue 18):
the live displays are still there and still moving when the run ends, the
close() demo closes only its own display, and neither what the kernel writes
(Lab's log console gets what belongs to no cell) nor the server's log has a
"No such comm": nothing the browser sends after a display closed reaches a
kernel that no longer knows the comm."""

from __future__ import annotations

import json

import pytest

from tests.serverext.test_browser import REPO, _api, lab_session

TIMEOUT_MS = 150_000
NOTEBOOK = REPO / "notebooks" / "05_monitoring.ipynb"
# Appended to the test's copy: close a Bokeh view right after pushing it an
# update, while the browser still answers it with the ranges it recomputed,
# which is when a kernel that forgot the comm logs "No such comm".
CLOSE_RACE = """for _ in range(5):
    w = jray.views.task_stream(period=60)
    display(w)
    time.sleep(1.0)
    w.view.update()
    w.close()
from jray.jupyter.views.live import _ClosedComm
print("closed 5; late messages dropped:", _ClosedComm.dropped)"""

_RUN_STATE = """() => {
  const nb = window.jupyterapp.shell.currentWidget;
  if (!nb || !nb.content || !nb.sessionContext.session || !nb.sessionContext.session.kernel) return null;
  const cells = nb.content.widgets.filter(c => c.model.type === 'code');
  const errors = [];
  for (const c of cells) for (const o of c.model.outputs.toJSON())
    if (o.output_type === 'error') errors.push(o.ename + ': ' + o.evalue);
  return {idle: nb.sessionContext.session.kernel.status === 'idle', errors,
          done: cells.every(c => c.model.executionCount !== null)};
}"""

_BOKEH_UPDATES = """() => {
  // Every Bokeh document's task_stream / store_nodes source, by name: how many rows now.
  const out = [];
  for (const d of (window.Bokeh ? Bokeh.documents : [])) {
    const s = d.get_model_by_name('task_util') || d.get_model_by_name('store_nodes');
    if (s) out.push(JSON.stringify(s.data).length);
  }
  return out;
}"""

_STREAM_RANGE = """() => {
  const out = [];
  for (const d of (window.Bokeh ? Bokeh.documents : [])) {
    const x = d.get_model_by_name('task_x_range'), s = d.get_model_by_name('task_stream');
    if (x && s && s.data.end.length) out.push({start: x.start, end: x.end, newest: Math.max(...s.data.end),
                                               interactive: x.have_updated_interactively});
  }
  return out;
}"""


def _lost_comms(lines: list[str], kernel_comms: list[str]) -> list[str]:
    """The "No such comm: <id>" lines about comms the kernel opened (the
    displays'): a message that reached the kernel after it closed one.
    Not the widget manager's own probe: when the notebook opens it opens a
    "jupyter.widget.control" comm, which a kernel that has not imported
    ipywidgets yet refuses ("No such comm target registered") and then does
    not know (that is any Jupyter kernel, and the browser's comm, not ours)."""
    return [ln for ln in lines if "No such comm:" in ln and any(c in ln for c in kernel_comms)]


@pytest.mark.timeout(420)
def test_monitoring_notebook_in_jupyterlab_leaves_live_displays_and_no_comm_errors(tmp_path):
    kernel_comms: list[str] = []
    with lab_session(tmp_path, viewport=(1280, 1000), failure_shot="monitoring_failure.png") as lab:
        server, page = lab.server, lab.page
        nb = json.loads(NOTEBOOK.read_text())
        nb["cells"].append({"cell_type": "code", "id": "close-race", "metadata": {}, "execution_count": None,
                            "outputs": [], "source": CLOSE_RACE})
        _api(server.url + "api/contents/05_monitoring.ipynb", server.token, "PUT",
             {"type": "notebook", "format": "json", "content": nb})
        # Every cell's output in the DOM (no windowing), so the displays can be looked for.
        tracker = server.root.parent / "settings" / "@jupyterlab" / "notebook-extension"
        tracker.mkdir(parents=True)
        (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
        page.set_default_timeout(TIMEOUT_MS)

        page.goto(f"{server.url}lab/tree/05_monitoring.ipynb?token={server.token}")
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell")
        page.locator(".jp-Notebook .jp-Cell").first.wait_for()
        page.wait_for_function(f"() => {{ const s = ({_RUN_STATE})(); return s && s.idle; }}")
        # Everything the kernel writes, cell or not: what reaches no cell goes to Lab's log
        # console (the kernel handles a widget's message outside any cell).
        page.evaluate(
            "() => { window.jrayStreams = [];"
            " const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;"
            " window.jrayKernelComms = [];"
            " k.iopubMessage.connect((_, m) => { if (m.header.msg_type === 'stream')"
            " window.jrayStreams.push(m.content.text);"
            " if (m.header.msg_type === 'comm_open') window.jrayKernelComms.push(m.content.comm_id); }); }")
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        page.wait_for_function(
            f"() => {{ const s = ({_RUN_STATE})(); return s && s.idle && (s.done || s.errors.length); }}",
            polling=500)
        state = page.evaluate(_RUN_STATE)
        assert not state["errors"], state["errors"]
        race = page.locator(".jp-OutputArea-output", has_text="closed 5").inner_text()
        print(race)
        # The displays are still on the page: the monitor's node panel, the two Bokeh views.
        page.locator(".jp-OutputArea-output", has_text="workers:").first.wait_for()
        assert page.locator(".jp-OutputArea-output canvas").count() > 0
        # ...and still live: their sources keep changing after the run ended.
        before = page.evaluate(_BOKEH_UPDATES)
        assert len(before) >= 2, before
        page.wait_for_function(f"() => JSON.stringify(({_BOKEH_UPDATES})()) !== {json.dumps(json.dumps(before))}",
                               polling=500)
        # The inline task stream slides too: its x range ends at the newest data.
        ranges = page.evaluate(_STREAM_RANGE)
        assert ranges and all(r["end"] >= r["newest"] and r["end"] - r["start"] == 60_000 for r in ranges)
        streams = page.evaluate("() => window.jrayStreams")
        kernel_comms.extend(page.evaluate("() => window.jrayKernelComms"))
        assert kernel_comms, "the run opened no comm from the kernel: the displays are missing"
        assert not _lost_comms(streams, kernel_comms), [t for t in streams if "comm" in t][:5]
        page.locator(".jp-OutputArea-output canvas").first.scroll_into_view_if_needed()
        lab.screenshot("monitoring_notebook.png")
    log = lab.server.log_path.read_text(errors="replace")
    assert not _lost_comms(log.splitlines(), kernel_comms), [ln for ln in log.splitlines() if "No such comm" in ln][:5]
