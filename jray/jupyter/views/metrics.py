"""The metrics view: ``ray.util.metrics`` values over time.

``update()`` takes one ``jray.util.state.list_metrics()`` (every node's
points, aggregated over its processes) and appends a sample per series to
the view's own history (the nodes keep current values only, as Prometheus
endpoints do): one series per metric, tag set and node; a histogram's
series is its mean (sum / count).

- ``metric_series``: one line per series (``xs``/``ys`` lists, for ``multi_line``).
- ``metric_latest``: the latest value of each series (name, kind, tags, node).

``names``: plot only these metrics (default: every one recorded).
"""

from __future__ import annotations

import collections
import time
from typing import Any

from bokeh.layouts import column
from bokeh.models import HoverTool, LayoutDOM
from bokeh.models.widgets.tables import DataTable, StringFormatter, TableColumn
from bokeh.plotting import figure

from jray.jupyter.views._base import Columns, View, color_for
from jray.util import state


class MetricsView(View):
    """``ray.util.metrics`` over time (``max_samples`` kept per series)."""

    SOURCES = {
        "metric_series": ("key", "label", "color", "xs", "ys"),
        "metric_latest": ("key", "name", "kind", "tags", "node_ip", "value"),
    }

    def __init__(self, *, address: str | None = None, token: str | None = None,
                 names: list[str] | None = None, max_samples: int = 600) -> None:
        super().__init__(address=address, token=token)
        self.names = set(names) if names else None
        self.max_samples = max_samples
        self.history: dict[str, collections.deque] = {}

    def compute(self) -> dict[str, Columns]:
        rows = state.list_metrics(**self.state_kwargs)
        now = time.time() * 1000
        latest: Columns = {c: [] for c in self.SOURCES["metric_latest"]}
        seen = set()
        for r in sorted(rows, key=lambda r: (r["name"], r["node_ip"], sorted(r["tags"].items()))):
            if self.names is not None and r["name"] not in self.names:
                continue
            tags = ",".join(f"{k}={v}" for k, v in sorted(r["tags"].items()))
            key = f"{r['name']}{{{tags}}}@{r['node_ip']}"
            value = _value(r)
            seen.add(key)
            h = self.history.setdefault(key, collections.deque(maxlen=self.max_samples))
            h.append((now, value))
            for c, v in (("key", key), ("name", r["name"]), ("kind", r["kind"]), ("tags", tags),
                         ("node_ip", r["node_ip"]), ("value", f"{value:g}")):
                latest[c].append(v)
        for gone in [k for k in self.history if k not in seen]:
            del self.history[gone]
        series: Columns = {c: [] for c in self.SOURCES["metric_series"]}
        for key, h in sorted(self.history.items()):
            series["key"].append(key)
            series["label"].append(key)
            series["color"].append(color_for(key))
            series["xs"].append([s[0] for s in h])
            series["ys"].append([s[1] for s in h])
        return {"metric_series": series, "metric_latest": latest}

    def build(self) -> LayoutDOM:
        s = self.sources
        fig = figure(title="ray.util.metrics (counters: totals; gauges: values; histograms: means)",
                     x_axis_type="datetime", height=280, sizing_mode="stretch_width",
                     tools="xpan,xwheel_zoom,box_zoom,reset,save", name="metric_series_figure")
        lines = fig.multi_line(xs="xs", ys="ys", line_color="color", line_width=2, source=s["metric_series"])
        fig.add_tools(HoverTool(renderers=[lines], tooltips=[("series", "@label")]))
        table = DataTable(source=s["metric_latest"], height=220, sizing_mode="stretch_width", index_position=None,
                          columns=[TableColumn(field=f, title=t, formatter=StringFormatter())
                                   for f, t in (("name", "metric"), ("kind", "kind"), ("tags", "tags"),
                                                ("node_ip", "node"), ("value", "value"))])
        return column(fig, table, sizing_mode="stretch_width")


def _value(r: dict[str, Any]) -> float:
    if r["kind"] == "histogram":
        return float(r["sum"]) / r["count"] if r.get("count") else 0.0
    return float(r["value"])
