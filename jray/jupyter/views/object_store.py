"""The object store view: use per node over time, largest objects, spilling.

``update()`` takes one ``jray.util.state.memory_summary()`` (each live
raylet's store totals and the objects it holds) and appends a sample to the
view's own history: the GCS keeps no history of store use, so the curves
start when the view does (a page handler keeps one view per page).

- ``store_usage``: one line per node, bytes in memory (``used``) and spilled
  to disk (``spilled``) at each sample (``xs``/``used``/``spilled`` are lists
  per row, for ``multi_line``).
- ``store_nodes``: the latest totals per node (used, capacity, objects,
  spilled; in bytes, and as ``*_text`` in jray's one readable format).
- ``store_objects``: the largest object copies, with their owner; ids shown
  in full (one click selects one for copying), sizes readable.
"""

from __future__ import annotations

import collections
import time
from typing import Any

from bokeh.layouts import column
from bokeh.models import ColumnDataSource, HoverTool, LayoutDOM, NumeralTickFormatter
from bokeh.models.widgets.tables import (
    DataTable,
    HTMLTemplateFormatter,
    NumberFormatter,
    StringFormatter,
    TableColumn,
)
from bokeh.plotting import figure

from jray._private.formatting import fmt_bytes
from jray.jupyter.views._base import Columns, View, color_for, short
from jray.util import state


class ObjectStoreView(View):
    """Store use per node over time (``max_samples`` kept), the ``top`` largest objects."""

    SOURCES = {
        "store_usage": ("node_id", "label", "color", "xs", "used", "spilled"),
        "store_nodes": ("node_id", "label", "node_ip", "used", "capacity", "used_pct", "num_objects",
                        "spilled_bytes", "used_text", "capacity_text", "spilled_text"),
        "store_objects": ("object_id", "size", "size_text", "node_id", "node", "where", "primary", "copy", "pins",
                          "owner", "owner_address", "owner_worker_id", "owner_pid"),
    }

    def __init__(self, *, address: str | None = None, token: str | None = None, top: int = 20,
                 max_samples: int = 600) -> None:
        super().__init__(address=address, token=token)
        self.top = top
        self.history: dict[str, collections.deque] = {}
        self.max_samples = max_samples

    def compute(self) -> dict[str, Columns]:
        summary = state.memory_summary(**self.state_kwargs)
        now = time.time() * 1000
        nodes = sorted(summary["nodes"], key=lambda n: n["node_id"])
        for n in nodes:
            h = self.history.setdefault(n["node_id"], collections.deque(maxlen=self.max_samples))
            h.append((now, float(n["store_used"]), float(n["spilled_bytes"])))
        live = {n["node_id"] for n in nodes}
        for gone in [k for k in self.history if k not in live]:
            del self.history[gone]
        usage: Columns = {c: [] for c in self.SOURCES["store_usage"]}
        for node_id, h in sorted(self.history.items()):
            usage["node_id"].append(node_id)
            usage["label"].append(short(node_id, 6))
            usage["color"].append(color_for(node_id))
            usage["xs"].append([s[0] for s in h])
            usage["used"].append([s[1] for s in h])
            usage["spilled"].append([s[2] for s in h])
        per_node: Columns = {c: [] for c in self.SOURCES["store_nodes"]}
        for n in nodes:
            cap = n["store_capacity"] or 0
            row = {"node_id": n["node_id"], "label": short(n["node_id"], 6), "node_ip": n["node_ip"],
                   "used": n["store_used"], "capacity": cap,
                   "used_pct": 100.0 * n["store_used"] / cap if cap else 0.0,
                   "num_objects": n["num_objects"], "spilled_bytes": n["spilled_bytes"],
                   "used_text": fmt_bytes(n["store_used"]), "capacity_text": fmt_bytes(cap),
                   "spilled_text": fmt_bytes(n["spilled_bytes"])}
            for c, v in row.items():
                per_node[c].append(v)
        objs: Columns = {c: [] for c in self.SOURCES["store_objects"]}
        for o in sorted(summary["objects"], key=lambda o: -o["object_size"])[: self.top]:
            for c, v in _object_row(o).items():
                objs[c].append(v)
        return {"store_usage": usage, "store_nodes": per_node, "store_objects": objs}

    def build(self) -> LayoutDOM:
        s = self.sources
        use = figure(title="Object store use per node (solid: in memory, dashed: spilled to disk)",
                     x_axis_type="datetime", height=260, sizing_mode="stretch_width",
                     tools="xpan,xwheel_zoom,box_zoom,reset,save", name="store_usage_figure")
        lines = use.multi_line(xs="xs", ys="used", line_color="color", line_width=2, source=s["store_usage"])
        use.multi_line(xs="xs", ys="spilled", line_color="color", line_dash="dashed", source=s["store_usage"])
        use.add_tools(HoverTool(renderers=[lines], tooltips=[("node", "@label")]))
        use.yaxis.formatter = NumeralTickFormatter(format="0.0 b")
        nodes = _table(s["store_nodes"], [("label", "node"), ("node_ip", "ip"), ("used_text", "used"),
                                          ("capacity_text", "capacity"), ("used_pct", "used %"),
                                          ("num_objects", "objects"), ("spilled_text", "spilled")], 120)
        objects = _table(s["store_objects"], [("object_id", "object (click to select, then copy)"),
                                              ("size_text", "size"), ("owner", "owner"), ("node", "node"),
                                              ("where", "where"), ("copy", "copy"), ("pins", "pins")], 280)
        return column(use, nodes, objects, sizing_mode="stretch_width")


def _object_row(o: dict[str, Any]) -> dict[str, Any]:
    pid = o.get("pid")
    addr = o.get("owner_address") or ""
    wid = o.get("owner_worker_id") or ""
    owner = f"driver pid {pid}" if pid else (f"worker {short(wid)}" if wid else "?")
    if addr:
        owner += f" @ {addr}"
    return {"object_id": o["object_id"], "size": o["object_size"], "size_text": fmt_bytes(o["object_size"]),
            "node_id": o["node_id"],
            "node": short(o["node_id"], 6), "where": o["where"], "primary": bool(o["primary"]),
            "copy": "primary" if o["primary"] else "secondary",
            "pins": o["pins"], "owner": owner, "owner_address": addr, "owner_worker_id": wid,
            "owner_pid": pid or 0}


# An object id in full, selected whole by one click so it can be copied.
_ID_CELL = '<code class="jray-object-id" title="<%= value %>" style="user-select:all;cursor:text"><%= value %></code>'


def _table(source: ColumnDataSource, cols: list[tuple[str, str]], height: int) -> DataTable:
    numeric = {"num_objects", "pins"}

    def fmt(f: str) -> Any:
        if f == "object_id":
            return HTMLTemplateFormatter(template=_ID_CELL)  # a model per table: one document each
        if f in numeric:
            return NumberFormatter(format="0,0")
        return NumberFormatter(format="0.0") if f == "used_pct" else StringFormatter()

    def width(f: str) -> int:
        return 430 if f == "object_id" else 90

    return DataTable(source=source, height=height, sizing_mode="stretch_width", index_position=None,
                     columns=[TableColumn(field=f, title=t, formatter=fmt(f), width=width(f)) for f, t in cols])
