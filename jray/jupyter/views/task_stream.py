"""The scheduler view: task stream, queue depths, utilisation.

Everything comes from the state API: task rows with each task's
``state_times_ms`` (``task_changes``: the newest ``max_tasks`` at first,
then only the tasks that changed since the last update, merged into the
view's own table) and ``list_nodes`` for the CPU total. So a fresh view draws
the history the GCS task table still holds, and a poll costs what changed:

- ``task_stream``: one bar per task that ran (start → end, or → now while it
  runs), one lane per worker process (``task_lanes`` labels them), coloured
  by function name; failed tasks get a thick red outline (others a thin white one, so
  back-to-back tasks stay apart).
- ``task_queue``: how many tasks sat in each pending state (SUBMITTED,
  PENDING_ARGS, PENDING_NODE_ASSIGNMENT, SCHEDULED) over time, rebuilt from
  the times each task entered each state.
- ``task_util``: tasks running and the CPUs they hold over the cluster's CPUs.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from bokeh.layouts import column
from bokeh.models import HoverTool, LayoutDOM, Range1d
from bokeh.models.annotations import LabelSet, Legend
from bokeh.plotting import figure

from jray._private.gcs.task_table import RANK
from jray.jupyter.views._base import Columns, View, color_for, short
from jray.util import state

PENDING = ("SUBMITTED", "PENDING_ARGS", "PENDING_NODE_ASSIGNMENT", "SCHEDULED")
_PENDING_COLORS = ("#9e9e9e", "#ff9800", "#e91e63", "#3f51b5")
FAILED_OUTLINE = "#d50000"


class TaskStreamView(View):
    """Task stream per worker, queue depths and utilisation.

    ``window_s``: how far back the queue and utilisation curves go;
    ``max_tasks``: the most recent tasks read from the GCS per update;
    ``max_bars``: the most recent of those drawn in the stream.
    """

    SOURCES = {
        "task_stream": ("task_id", "name", "state", "lane", "worker", "node_id", "worker_pid", "start", "end",
                        "duration_ms", "color", "line_color", "line_width", "failed", "error"),
        "task_lanes": ("lane", "label"),
        "task_queue": ("time",) + PENDING,
        "task_util": ("time", "running", "cpus_used", "cpus", "utilisation"),
    }

    def __init__(self, *, address: str | None = None, token: str | None = None, window_s: float = 300.0,
                 max_tasks: int = 20_000, max_bars: int = 2000, samples: int = 200) -> None:
        super().__init__(address=address, token=token)
        self.window_s = window_s
        self.max_tasks = max_tasks
        self.max_bars = max_bars
        self.samples = samples
        self._tasks: dict[str, dict[str, Any]] = {}  # task_id -> row, first seen first
        self._seq = 0

    def compute(self) -> dict[str, Columns]:
        kw = self.state_kwargs
        tasks = self._fetch_tasks()
        nodes = state.list_nodes(limit=10_000, detail=True, **kw)
        cpus = sum(n["resources_total"].get("CPU", 0.0) for n in nodes if n["state"] == "ALIVE")
        now = time.time() * 1000
        out = {"task_stream": {}, "task_lanes": {}}  # type: dict[str, Columns]
        out.update(_stream(tasks[-self.max_bars:], now))
        times = _sample_times(tasks, now, self.window_s, self.samples)
        ivs = [_intervals(t, now) for t in tasks]  # once, for both curves
        out["task_queue"] = _queue(tasks, times, now, ivs)
        out["task_util"] = _util(tasks, times, now, cpus, ivs)
        return out

    def _fetch_tasks(self) -> list[dict[str, Any]]:
        kw = self.state_kwargs
        since = self._seq
        changes = state.task_changes(since=since, limit=0 if since else self.max_tasks, **kw)
        if since and changes["seq"] < since:  # the GCS restarted: start over
            self._tasks.clear()
            changes = state.task_changes(limit=self.max_tasks, **kw)
        rows = self._tasks
        for row in changes["tasks"]:
            rows[row["task_id"]] = row  # a known task keeps its place
        self._seq = changes["seq"]
        for old in list(rows)[: max(0, len(rows) - self.max_tasks)]:
            del rows[old]
        return list(rows.values())

    def build(self) -> LayoutDOM:
        s = self.sources
        stream = figure(title="Task stream (one lane per worker)", x_axis_type="datetime", height=320,
                        sizing_mode="stretch_width", tools="xpan,xwheel_zoom,box_zoom,reset,save",
                        name="task_stream_figure")
        bars = stream.hbar(y="lane", left="start", right="end", height=0.8, source=s["task_stream"],
                           fill_color="color", line_color="line_color", line_width="line_width")
        stream.add_tools(HoverTool(renderers=[bars], tooltips=[
            ("task", "@name"), ("state", "@state"), ("duration", "@duration_ms{0.0} ms"), ("worker", "@worker"),
            ("error", "@error")]))
        stream.add_layout(LabelSet(x=4, y="lane", x_units="screen", text="label", source=s["task_lanes"],
                                   text_font_size="9px", text_color="#333333", y_offset=-4,
                                   background_fill_color="white", background_fill_alpha=0.7))
        stream.yaxis.visible = False
        stream.ygrid.grid_line_color = None

        queue = figure(title="Queue depth (pending tasks by state)", x_axis_type="datetime", height=200,
                       sizing_mode="stretch_width", x_range=stream.x_range, tools="xpan,xwheel_zoom,reset",
                       name="task_queue_figure")
        items: list[Any] = []
        for st, color in zip(PENDING, _PENDING_COLORS, strict=True):
            r = queue.step(x="time", y=st, source=s["task_queue"], color=color, line_width=2, mode="after")
            items.append((st, [r]))
        queue.add_layout(Legend(items=items, location="top_right", label_text_font_size="9px", glyph_width=12,
                                spacing=0, background_fill_alpha=0.7))

        util = figure(title="Utilisation (CPUs held by running tasks / cluster CPUs)", x_axis_type="datetime",
                      height=180, sizing_mode="stretch_width", x_range=stream.x_range, y_range=Range1d(start=0, end=1.05),
                      tools="xpan,xwheel_zoom,reset", name="task_util_figure")
        util.varea(x="time", y1=0, y2="utilisation", source=s["task_util"], fill_color="#4caf50", fill_alpha=0.5)
        util.add_tools(HoverTool(tooltips=[("running", "@running"), ("CPUs", "@cpus_used / @cpus")],
                                 mode="vline"))
        return column(stream, queue, util, sizing_mode="stretch_width")


def _stream(tasks: list[dict[str, Any]], now: float) -> dict[str, Columns]:
    ran = [t for t in tasks if t.get("start_time_ms") and t.get("worker_pid")]
    lanes = sorted({(t["node_id"] or "", t["worker_pid"]) for t in ran})
    index = {lane: i for i, lane in enumerate(lanes)}
    cols: Columns = {c: [] for c in TaskStreamView.SOURCES["task_stream"]}
    for t in ran:
        start = float(t["start_time_ms"])
        end = float(t["end_time_ms"] or 0) or now
        failed = t["state"] == "FAILED"
        name = t["func_or_class_name"] or t["name"] or "?"
        node, pid = t["node_id"] or "", t["worker_pid"]
        row = {
            "task_id": t["task_id"], "name": name, "state": t["state"], "lane": index[(node, pid)],
            "worker": f"{short(node, 6)} pid {pid}", "node_id": node, "worker_pid": int(pid),
            "start": start, "end": max(end, start), "duration_ms": max(end, start) - start,
            "color": color_for(name), "line_color": FAILED_OUTLINE if failed else "white",
            "line_width": 3 if failed else 1, "failed": failed, "error": t.get("error_message") or "",
        }
        for c, v in row.items():
            cols[c].append(v)
    return {"task_stream": cols, "task_lanes": {
        "lane": list(range(len(lanes))), "label": [f"{short(n, 6)} pid {p}" for n, p in lanes]}}


def _sample_times(tasks: list[dict[str, Any]], now: float, window_s: float, n: int) -> np.ndarray:
    firsts = [min(v for v in t["state_times_ms"].values() if v) for t in tasks
              if any(t["state_times_ms"].values())]
    if not firsts:
        return np.zeros(0)
    start = max(min(firsts), now - window_s * 1000)
    return np.linspace(start, now, n) if now > start else np.array([now])


def _intervals(t: dict[str, Any], now: float) -> dict[str, tuple[float, float]]:
    """When the task entered and left each state it went through."""
    seen = sorted(((st, ms) for st, ms in t["state_times_ms"].items() if ms), key=lambda x: RANK.get(x[0], -1))
    out = {}
    # Walk back from the last state: a state lasts until the earliest later
    # one; the state a task is still in lasts past now (the last sample counts it).
    leave_at = now + 1
    for st, enter in reversed(seen):
        leave = enter if st in ("FINISHED", "FAILED") else leave_at
        out[st] = (float(enter), max(float(enter), float(leave)))
        leave_at = min(leave_at, enter)
    return out


def _count(intervals: list[tuple[float, float]], times: np.ndarray,
           weights: list[float] | None = None) -> np.ndarray:
    """How many intervals (weighted) cover each sample time: enter <= t < leave."""
    if not intervals or not len(times):
        return np.zeros(len(times))
    w = np.ones(len(intervals)) if weights is None else np.asarray(weights, dtype=float)

    def upto(edges: np.ndarray) -> np.ndarray:  # weight of the edges <= each time
        order = np.argsort(edges, kind="stable")
        cum = np.concatenate([[0.0], np.cumsum(w[order])])
        return cum[np.searchsorted(edges[order], times, side="right")]

    return np.asarray(upto(np.array([a for a, _ in intervals])) - upto(np.array([b for _, b in intervals])))


def _queue(tasks: list[dict[str, Any]], times: np.ndarray, now: float,
           ivs: list[dict[str, tuple[float, float]]] | None = None) -> Columns:
    per_state: dict[str, list[tuple[float, float]]] = {st: [] for st in PENDING}
    for task_ivs in ivs if ivs is not None else [_intervals(t, now) for t in tasks]:
        for st, iv in task_ivs.items():
            if st in per_state:
                per_state[st].append(iv)
    cols: Columns = {"time": times.tolist()}
    for st in PENDING:
        cols[st] = _count(per_state[st], times).tolist()
    return cols


def _util(tasks: list[dict[str, Any]], times: np.ndarray, now: float, cpus: float,
          ivs: list[dict[str, tuple[float, float]]] | None = None) -> Columns:
    running, weights = [], []
    for i, t in enumerate(tasks):
        iv = (ivs[i] if ivs is not None else _intervals(t, now)).get("RUNNING")
        if iv is not None:
            running.append(iv)
            weights.append(float((t.get("required_resources") or {}).get("CPU", 0.0)))
    n = _count(running, times)
    used = _count(running, times, weights)
    return {"time": times.tolist(), "running": n.tolist(), "cpus_used": used.tolist(),
            "cpus": [cpus] * len(times), "utilisation": (used / cpus if cpus else used * 0).tolist()}
