"""How the task stream reads (issue 18): tasks of a millisecond still show,
the x axis is a sliding window over the newest data, a legend names the
functions (none of them red), failures are drawn and named apart, the hover
says which function, task, worker and node and how long, lane labels sit
beside the bars, not on them, and the queue legend covers no data.

A real cluster runs real tasks (very short ones, longer ones, a failing
one); the view's sources and Bokeh figures are checked in Python, then the
real page (``pages.page_html`` polling ``pages.page_data``, served here by a
small HTTP server) is drawn by headless Chromium at 1280 px and saved to
``tests/output/task_stream_page.png``."""

from __future__ import annotations

import colorsys
import contextlib
import json
import os
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from bokeh.core.property.vectorization import Field, Value
from bokeh.models import CustomJSTickFormatter, DataRange1d, HoverTool, LabelSet, Legend

import jray
from jray.views import TaskStreamView
from jray.views._base import PALETTE
from jray.views.pages import page_data, page_html
from jray.views.task_stream import FAILED_HATCH, FAILED_OUTLINE, MIN_BAR_FRACTION
from tests.polling import poll
from tests.serverext.test_browser import CHROMIUM, CHROMIUM_ARGS, OUTPUT


@jray.remote
def blink(i):
    return i


@jray.remote
def nap(x):
    time.sleep(0.3)
    return x


@jray.remote
def crunch(x):
    time.sleep(0.1)
    return x


@jray.remote
def crash():
    raise ValueError("stream boom")


@pytest.fixture(scope="module")
def ran(jray_cluster):
    assert jray.get([blink.remote(i) for i in range(40)], timeout=60) == list(range(40))
    assert jray.get([nap.remote(i) for i in range(6)] + [crunch.remote(i) for i in range(8)], timeout=60)
    with pytest.raises(jray.exceptions.RayTaskError):
        jray.get(crash.remote(), timeout=60)
    return jray_cluster


def _done(data: dict[str, list]) -> bool:
    names = data["name"]
    return (names.count("blink") >= 40 and names.count("nap") >= 6 and names.count("crunch") >= 8
            and ("crash", "FAILED") in set(zip(names, data["state"], strict=True))
            and all(s in ("FINISHED", "FAILED") for s in data["state"]))


def _updated(view: TaskStreamView) -> dict[str, list]:
    view.update()
    return view.data()["task_stream"]


def _is_reddish(color: str) -> bool:
    r, g, b = (int(color[i:i + 2], 16) / 255 for i in (1, 3, 5))
    h, s, _ = colorsys.rgb_to_hsv(r, g, b)
    return s > 0.15 and (h * 360 < 35 or h * 360 > 320)  # reds, pinks, oranges, red-browns


def _fields(spec: Any) -> Any:
    return spec.field if isinstance(spec, Field) else spec


def test_short_tasks_show_and_failures_stand_apart(ran):
    view = TaskStreamView()
    data = poll(lambda: _updated(view), _done, "every task in the stream")
    min_ms = 60_000 * MIN_BAR_FRACTION
    blinks = [i for i, n in enumerate(data["name"]) if n == "blink"]
    assert min(data["duration_ms"][i] for i in blinks) < min_ms  # really shorter than the minimum
    for i in range(len(data["task_id"])):
        assert data["right"][i] - data["start"][i] >= min_ms - 1e-6  # drawn at least the minimum
        assert data["end"][i] - data["start"][i] == pytest.approx(data["duration_ms"][i])  # true end kept
        assert data["line_color"][i] != "white" and data["line_width"][i] >= 1
    (c,) = [i for i, n in enumerate(data["name"]) if n == "crash"]
    assert data["line_color"][c] == FAILED_OUTLINE and data["hatch"][c] == FAILED_HATCH
    assert all(data["hatch"][i] == " " and data["line_color"][i] != FAILED_OUTLINE
               for i in range(len(data["name"])) if i != c)
    fails = view.data()["task_failures"]
    assert fails["task_id"] == [data["task_id"][c]] and fails["end"] == [data["end"][c]]
    assert "stream boom" in fails["error"][0] and fails["lane"] == [data["lane"][c]]
    # No function colour is a red: red means failed.
    assert _is_reddish(FAILED_OUTLINE) and not any(_is_reddish(col) for col in PALETTE)
    assert not any(_is_reddish(col) for col in set(data["color"]))
    assert len({data["color"][i] for i in blinks}) == 1


def test_figures_window_legend_hover_and_lane_labels(ran):
    view = TaskStreamView()
    poll(lambda: _updated(view), _done, "every task in the stream")
    stream, queue, util = view.layout().children
    # A sliding window over the newest data, shared by the three figures.
    x = stream.x_range
    assert isinstance(x, DataRange1d) and x.follow == "end" and x.follow_interval == 60_000
    assert queue.x_range is x and util.x_range is x
    assert "xpan" in str(stream.toolbar.tools) or any(type(t).__name__ == "PanTool" for t in stream.toolbar.tools)
    assert TaskStreamView(window_s=15).layout().children[0].x_range.follow_interval == 15_000
    whole = TaskStreamView(window_s=None).layout().children[0].x_range
    assert whole.follow is None and whole.follow_interval is None
    with pytest.raises(ValueError, match="window_s"):
        TaskStreamView(window_s=0)
    # Bars: outlined in a shade of their own colour, never white; failures marked by a red x too.
    (bars,) = stream.select(name="task_bars")
    g = bars.glyph
    assert (_fields(g.left), _fields(g.right), _fields(g.line_color)) == ("start", "right", "line_color")
    assert _fields(g.hatch_pattern) == "hatch" and g.hatch_color == FAILED_OUTLINE
    (marks,) = stream.select(name="task_failure_marks")
    assert marks.data_source is view.sources["task_failures"] and marks.glyph.line_color == FAILED_OUTLINE
    # A legend of functions (one entry per name in the data) and "failed", outside the frame.
    (legend,) = [r for r in stream.right if isinstance(r, Legend)]
    assert not [r for r in stream.center if isinstance(r, Legend)]
    labels = {(type(it.label).__name__, it.label.field if isinstance(it.label, Field) else it.label.value):
              it.renderers for it in legend.items}
    assert labels[("Field", "name")] == [bars] and labels[("Value", "failed")] == [marks]
    assert isinstance(legend.items[1].label, Value)
    # The queue legend sits right of the frame, so it covers no data, new or old.
    assert [r for r in queue.right if isinstance(r, Legend)]
    assert not [r for r in queue.center if isinstance(r, Legend)]
    # Hover: function, task, worker, node, duration; every field is a column of both sources.
    (hover,) = [t for t in stream.toolbar.tools if isinstance(t, HoverTool) and t.name == "task_hover"]
    assert set(hover.renderers) == {bars, marks}
    tips = dict(hover.tooltips)
    assert {"function", "task", "worker", "node", "duration"} <= set(tips)
    for name in ("task_stream", "task_failures"):
        cols = set(view.SOURCES[name])
        for _, spec in hover.tooltips:
            assert spec.split("{")[0].strip().lstrip("@") in cols | {"duration_ms"}, (name, spec)
    assert {"task_id", "worker", "node_id", "duration_ms", "name"} <= set(view.SOURCES["task_failures"])
    # Lane labels are y-axis tick labels beside the frame, not labels drawn over the bars.
    fmt = stream.yaxis[0].formatter
    assert isinstance(fmt, CustomJSTickFormatter) and fmt.args["lanes"] is view.sources["task_lanes"]
    assert stream.yaxis[0].visible is not False
    assert not stream.select(type=LabelSet)
    assert stream.min_border_left == queue.min_border_left == util.min_border_left  # x axes line up


_RANGE_JS = ("() => { const x = Bokeh.documents[0].get_model_by_name('task_x_range');"
             " return {start: x.start, end: x.end}; }")


class _DataServer:
    """Serves the page and its data from this driver, as the server extension does."""

    def __init__(self) -> None:
        state: dict[str, Any] = {}
        html = page_html("task_stream", "data").encode()
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path.endswith("/data"):
                    with lock:
                        body = json.dumps(page_data("task_stream", state)).encode()
                    kind = "application/json"
                else:
                    body, kind = html, "text/html"
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/task_stream/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


@pytest.mark.timeout(240)
def test_the_page_in_chromium_at_1280px(ran, tmp_path):
    assert os.path.exists(CHROMIUM), "Debian's chromium is needed at /usr/bin/chromium (CI installs it)"
    from playwright.sync_api import sync_playwright

    poll(lambda: _updated(TaskStreamView()), _done, "every task in the stream")
    server = _DataServer()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
                                         timeout=90_000)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.set_default_timeout(90_000)
                page.goto(server.url)
                page.wait_for_function("() => Number(document.body.dataset.jrayUpdates || 0) >= 2")
                # The x range shows the last 60 s and ends at the newest data (now: the curves run to now).
                info = page.evaluate(
                    "() => { const d = Bokeh.documents[0], x = d.get_model_by_name('task_x_range'),"
                    " s = d.get_model_by_name('task_stream').data;"
                    " return {start: x.start, end: x.end, last: Math.max(...s.end), n: s.name.length,"
                    " failed: d.get_model_by_name('task_failures').data.task_id.length}; }")
                assert info["end"] - info["start"] == pytest.approx(60_000, abs=1)
                assert info["end"] >= info["last"] and info["n"] >= 55 and info["failed"] >= 1
                page.wait_for_timeout(500)
                page.screenshot(path=str(tmp_path / "task_stream_page.png"), full_page=True)
                # Dragging the stream pans back in time, and the range then stays where the user put it.
                box = page.locator("canvas").first.bounding_box()
                assert box is not None
                y = box["y"] + 150
                page.mouse.move(box["x"] + 500, y)
                page.mouse.down()
                page.mouse.move(box["x"] + 600, y, steps=5)
                page.mouse.move(box["x"] + 700, y, steps=5)
                page.mouse.up()
                panned = page.evaluate(_RANGE_JS)
                assert panned["end"] < info["end"] - 5_000
                updates = int(page.evaluate("() => document.body.dataset.jrayUpdates"))
                page.wait_for_function(f"() => Number(document.body.dataset.jrayUpdates) >= {updates + 2}")
                assert page.evaluate(_RANGE_JS) == panned  # new data did not pull it back
                OUTPUT.mkdir(exist_ok=True)
                shutil.copy(tmp_path / "task_stream_page.png", OUTPUT / "task_stream_page.png")
                assert not errors, errors
            finally:
                with contextlib.suppress(Exception):
                    browser.close()
    finally:
        server.close()
