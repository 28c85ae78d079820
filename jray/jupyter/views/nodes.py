"""The nodes view: each node's CPU, memory and object store over time, and
the memory of every worker.

``update()`` reads ``list_nodes`` (each raylet samples its machine's CPU and
memory at most once a second and sends them with its heartbeats, with its
store use) and appends a sample per live node to the view's own history,
keeping the last ``window_s`` seconds (the x axes slide with it); and
``WorkerActivity`` (``workers.py``: ``list_workers`` with each worker's
resident memory, and the task or actor it runs).

- ``node_series``: one row per node, ``xs`` (ms) with ``cpu`` (%),
  ``memory`` and ``store`` (bytes), lists per row for ``multi_line``;
  ``memory_total``/``store_capacity`` the latest totals (and as lines,
  ``*_ys``, drawn dashed).
- ``node_window``: the two ends of the time shown (``x``), drawn invisibly
  so the x axes end now and span the history, at least ``MIN_SPAN_S``
  (a young history) and at most ``window_s`` (then sliding).
- ``node_latest``: the latest sample per node, readable (``*_text``).
- ``worker_memory``: the ``top`` workers by resident memory, one bar each
  (``y`` their rank, ``label`` the axis text: node, pid, task/actor),
  sizes readable in ``rss_text`` (jray's one byte format).
"""

from __future__ import annotations

import collections
import time
from typing import Any

from bokeh.layouts import column, row
from bokeh.models import (
    CustomJSTickFormatter,
    DataRange1d,
    DatetimeTickFormatter,
    HoverTool,
    LayoutDOM,
    NumeralTickFormatter,
    Range1d,
    SingleIntervalTicker,
)
from bokeh.models.widgets.tables import DataTable, StringFormatter, TableColumn
from bokeh.plotting import figure

from jray._private.formatting import fmt_bytes
from jray.jupyter.views._base import Columns, View, color_for, short
from jray.jupyter.views.workers import WorkerActivity
from jray.util import state

MIN_ROWS = 8  # the worker bar chart has room for this many bars at least
MIN_SPAN_S = 30.0  # the time axes span at least this much, however young the history
_WORKER_LABEL_JS = """
const i = src.data.y.indexOf(tick);
return i < 0 ? "" : src.data.label[i];
"""


class NodesView(View):
    """Per node CPU %, memory and store use over the last ``window_s`` seconds;
    the ``top`` workers by resident memory."""

    SOURCES = {
        "node_series": ("node_id", "label", "color", "xs", "cpu", "memory", "store", "memory_total",
                        "store_capacity", "memory_total_ys", "store_capacity_ys"),
        "node_window": ("x", "y"),
        "node_latest": ("node_id", "label", "node_ip", "cpu_text", "memory_text", "store_text", "workers"),
        "worker_memory": ("y", "label", "node_id", "node", "pid", "state", "what", "rss", "rss_text",
                          "cpu_percent", "color"),
    }

    def __init__(self, *, address: str | None = None, token: str | None = None, window_s: float = 300.0,
                 top: int = 25) -> None:
        super().__init__(address=address, token=token)
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, not {window_s!r}")
        self.window_s = window_s
        self.top = top
        self.history: dict[str, collections.deque] = {}
        self.activity = WorkerActivity(self.state_kwargs)

    def compute(self) -> dict[str, Columns]:
        nodes = [n for n in state.list_nodes(limit=0, detail=True, **self.state_kwargs) if n["state"] == "ALIVE"]
        now = time.time() * 1000
        for n in nodes:
            h = self.history.setdefault(n["node_id"], collections.deque())
            h.append((now, float(n["cpu_percent"]), float(n["memory_used"]), float(n["object_store_used"])))
            while h and h[0][0] < now - self.window_s * 1000:
                h.popleft()
        live = {n["node_id"]: n for n in nodes}
        for gone in [k for k in self.history if k not in live]:
            del self.history[gone]
        series: Columns = {c: [] for c in self.SOURCES["node_series"]}
        latest: Columns = {c: [] for c in self.SOURCES["node_latest"]}
        for node_id, h in sorted(self.history.items()):
            n = live[node_id]
            label = f"{short(node_id, 6)} {n['node_ip']}"
            for c, v in (("node_id", node_id), ("label", label), ("color", color_for(node_id)),
                         ("xs", [s[0] for s in h]), ("cpu", [s[1] for s in h]), ("memory", [s[2] for s in h]),
                         ("store", [s[3] for s in h]), ("memory_total", n["memory_total"]),
                         ("store_capacity", n["object_store_memory"]),
                         ("memory_total_ys", [float(n["memory_total"])] * len(h)),
                         ("store_capacity_ys", [float(n["object_store_memory"])] * len(h))):
                series[c].append(v)
            mem_pct = 100.0 * n["memory_used"] / n["memory_total"] if n["memory_total"] else 0.0
            store_pct = 100.0 * n["object_store_used"] / n["object_store_memory"] if n["object_store_memory"] else 0.0
            for c, v in (("node_id", node_id), ("label", label), ("node_ip", n["node_ip"]),
                         ("cpu_text", f"{n['cpu_percent']:.0f}%"),
                         ("memory_text", f"{fmt_bytes(n['memory_used'])} / {fmt_bytes(n['memory_total'])} "
                                         f"({mem_pct:.0f}%)"),
                         ("store_text", f"{fmt_bytes(n['object_store_used'])} / "
                                        f"{fmt_bytes(n['object_store_memory'])} ({store_pct:.0f}%)"),
                         ("workers", n["num_workers"])):
                latest[c].append(v)
        oldest = min((h[0][0] for h in self.history.values() if h), default=now)
        start = max(now - self.window_s * 1000, min(oldest, now - MIN_SPAN_S * 1000))
        return {"node_series": series, "node_latest": latest, "worker_memory": self._workers(),
                "node_window": {"x": [start, now], "y": [0.0, 0.0]}}

    def _workers(self) -> Columns:
        rows = sorted(self.activity.update(), key=lambda w: -(w["rss_bytes"] or 0))[: self.top]
        cols: Columns = {c: [] for c in self.SOURCES["worker_memory"]}
        for i, w in enumerate(rows):
            what = w["what"] or w["state"].lower()
            for c, v in (("y", i), ("label", f"{short(w['node_id'], 6)} pid {w['pid']} {what}"[:60]),
                         ("node_id", w["node_id"]), ("node", short(w["node_id"], 6)), ("pid", w["pid"]),
                         ("state", w["state"]), ("what", w["what"]), ("rss", w["rss_bytes"] or 0),
                         ("rss_text", fmt_bytes(w["rss_bytes"]) if w["rss_bytes"] else ""), ("cpu_percent", w["cpu_percent"] or 0.0),
                         ("color", color_for(w["node_id"]))):
                cols[c].append(v)
        return cols

    def build(self) -> LayoutDOM:
        s = self.sources
        x_range = DataRange1d(range_padding=0, name="node_x_range")  # spans node_window
        tools = "xpan,xwheel_zoom,box_zoom,reset,save"
        ticks = DatetimeTickFormatter(milliseconds="%H:%M:%S.%3N", seconds="%H:%M:%S", minsec="%H:%M:%S",
                                      minutes="%H:%M", hourmin="%H:%M", hours="%H:%M", context=None)

        def timeline(title: str, y: str, name: str, total: str | None = None, **kw: Any) -> Any:
            fig = figure(title=title, x_axis_type="datetime", x_range=x_range, height=230,
                         sizing_mode="stretch_width", tools=tools, name=name, **kw)
            lines = fig.multi_line(xs="xs", ys=y, line_color="color", line_width=2, source=s["node_series"],
                                   legend_field="label")
            if total is not None:  # the capacity, dashed: where the line would hit the ceiling
                fig.multi_line(xs="xs", ys=total, line_color="color", line_dash="dashed", line_alpha=0.6,
                               source=s["node_series"])
            fig.line(x="x", y="y", line_alpha=0, source=s["node_window"])  # the x range spans the window
            fig.add_tools(HoverTool(renderers=[lines], tooltips=[("node", "@label")]))
            fig.xaxis.formatter = ticks
            fig.xaxis.major_label_orientation = 0
            loose: Any = fig  # Bokeh's property types are too narrow for mypy here
            loose.xaxis.ticker.desired_num_ticks = 3  # three figures side by side: labels apart at 1280 px
            loose.title.text_font_size = "9pt"
            # Under the plot, not on the lines (a third of 1280 px has no room inside).
            loose.legend.orientation = "horizontal"
            loose.legend.label_text_font_size = "8pt"
            loose.legend.border_line_alpha = 0
            loose.legend.padding = 2
            loose.legend.margin = 2
            fig.add_layout(fig.legend[0], "below")
            return fig

        window = f"last {self.window_s / 60:g} min" if self.window_s >= 60 else f"last {self.window_s:g} s"
        cpu = timeline(f"CPU % of each node's machine ({window})", "cpu", "node_cpu_figure",
                       y_range=Range1d(start=0, end=105))
        mem = timeline("Memory in use (dashed: machine total)", "memory", "node_memory_figure",
                       total="memory_total_ys")
        mem.yaxis.formatter = NumeralTickFormatter(format="0.0 b")
        store = timeline("Object store (dashed: capacity)", "store", "node_store_figure",
                         total="store_capacity_ys")
        store.yaxis.formatter = NumeralTickFormatter(format="0.0 b")
        table = DataTable(source=s["node_latest"], height=90, sizing_mode="stretch_width", index_position=None,
                          columns=[TableColumn(field=f, title=t, formatter=StringFormatter())
                                   for f, t in (("label", "node"), ("cpu_text", "CPU"), ("memory_text", "memory"),
                                                ("store_text", "object store"), ("workers", "workers"))])
        src = s["worker_memory"]
        bars = figure(title=f"Worker memory (resident; the {self.top} largest)", height=320,
                      sizing_mode="stretch_width", tools="save", name="worker_memory_figure",
                      x_range=DataRange1d(start=0, range_padding=0.25),  # room for the label
                      y_range=DataRange1d(range_padding=0, flipped=True), min_border_left=260)
        hb = bars.hbar(y="y", right="rss", height=0.7, fill_color="color", line_color=None, source=src)
        bars.text(x="rss", y="y", text="rss_text", source=src, x_offset=4, text_baseline="middle",
                  text_font_size="9pt", text_color="#8a8f94")  # read on light and dark
        # Room for MIN_ROWS bars however few workers there are (a lone bar would fill the figure).
        bars.scatter(x=[0, 0], y=[-0.6, MIN_ROWS - 0.4], alpha=0)
        bars.add_tools(HoverTool(renderers=[hb], tooltips=[("worker", "@label"), ("state", "@state"),
                                                           ("resident", "@rss_text"), ("CPU", "@cpu_percent%")]))
        bars.xaxis.formatter = NumeralTickFormatter(format="0 b")
        bars.yaxis.ticker = SingleIntervalTicker(interval=1)
        bars.yaxis.formatter = CustomJSTickFormatter(args={"src": src}, code=_WORKER_LABEL_JS)
        bars.ygrid.grid_line_color = None
        return column(row(cpu, mem, store, sizing_mode="stretch_width"), table, bars, sizing_mode="stretch_width")
