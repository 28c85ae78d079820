"""The scheduler view: task stream, queue depths, utilisation.

Everything comes from the state API: task rows with each task's
``state_times_ms`` (``task_changes``: the newest ``max_tasks`` at first,
then only the tasks that changed since the last update, merged into the
view's own table) and ``list_nodes`` for the CPU total. So a fresh view draws
the history the GCS task table still holds, and a poll costs what changed:

- ``task_stream``: one bar per task that ran (start → end, or → now while it
  runs), one lane per worker process (``task_lanes`` labels them on the
  y-axis), coloured by function name from a palette with no red in it (a
  legend names them). A bar is drawn at least ``window_s / 500`` wide
  (``right``; ``end`` is the true end) with an outline in a darker shade of
  its own colour, so a 1 ms task shows and back-to-back tasks stay apart.
  Failed tasks get a red outline and hatch, and a red ``x`` at the instant
  they failed (``task_failures``, "failed" in the legend), visible at any zoom.
- ``task_queue``: how many tasks sat in each pending state (SUBMITTED,
  PENDING_ARGS, PENDING_NODE_ASSIGNMENT, SCHEDULED) over time, rebuilt from
  the times each task entered each state: at each sample, the most at any
  instant until the next sample (so short waits between samples show).
- ``task_util``: tasks running and the CPUs they hold over the cluster's CPUs,
  averaged from each sample to the next (short tasks count for their time).

The three figures share one x range that follows the newest data over the
last ``window_s`` seconds (a ``DataRange1d`` with ``follow="end"``, computed
by BokehJS, so inline widgets and pages alike slide); panning or zooming
stops the following (the data, up to ``max_bars`` bars and ``history_s`` of
curves, is all there) and the reset tool starts it again. ``window_s=None``
shows the whole history.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from bokeh.layouts import column
from bokeh.models import (
    CustomJSTickFormatter,
    DataRange1d,
    HoverTool,
    LayoutDOM,
    Range1d,
    SingleIntervalTicker,
)
from bokeh.models.annotations import Legend
from bokeh.plotting import figure

from jray._private.gcs.task_table import RANK
from jray.jupyter.views._base import Columns, View, color_for, short
from jray.util import state

PENDING = ("SUBMITTED", "PENDING_ARGS", "PENDING_NODE_ASSIGNMENT", "SCHEDULED")
_PENDING_COLORS = ("#9e9e9e", "#ff9800", "#00897b", "#3f51b5")
FAILED_OUTLINE = "#d50000"
FAILED_HATCH = "/"
#: Room left of and right of every figure's frame: lane labels on the left,
#: legends on the right, the same for all three so their x axes line up.
BORDER_LEFT, BORDER_RIGHT = 120, 200
#: The narrowest bar, as a fraction of the window (~2 px at 1000 px).
MIN_BAR_FRACTION = 1 / 500
TOOLTIPS = [("function", "@name"), ("task", "@task_id"), ("state", "@state"), ("worker", "@worker"),
            ("node", "@node_id"), ("duration", "@duration_ms{0,0.0} ms"), ("error", "@error")]
_LANE_LABEL_JS = """
const i = lanes.data.lane.indexOf(tick);
return i < 0 ? "" : lanes.data.label[i];
"""


class TaskStreamView(View):
    """Task stream per worker, queue depths and utilisation.

    ``window_s``: the seconds shown, sliding with the newest data (None: all
    of it); ``history_s``: how far back the queue and utilisation curves go;
    ``max_tasks``: the most recent tasks read from the GCS per update;
    ``max_bars``: the most recent of those drawn in the stream;
    ``samples``: curve points in the window (half as many before it).
    """

    SOURCES = {
        "task_stream": ("task_id", "name", "state", "lane", "worker", "node_id", "worker_pid", "start", "end",
                        "right", "duration_ms", "color", "line_color", "line_width", "hatch", "failed",
                        "error"),
        "task_failures": ("task_id", "name", "state", "lane", "worker", "node_id", "end", "duration_ms",
                          "error"),
        "task_lanes": ("lane", "label"),
        "task_queue": ("time",) + PENDING,
        "task_util": ("time", "running", "cpus_used", "cpus", "utilisation"),
    }

    def __init__(self, *, address: str | None = None, token: str | None = None, window_s: float | None = 60.0,
                 history_s: float = 600.0, max_tasks: int = 20_000, max_bars: int = 2000,
                 samples: int = 200) -> None:
        super().__init__(address=address, token=token)
        if window_s is not None and window_s <= 0:
            raise ValueError(f"window_s must be > 0 or None, not {window_s!r}")
        self.window_s = window_s
        self.history_s = max(history_s, window_s or 0.0)
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
        out.update(_stream(tasks[-self.max_bars:], now, self.min_bar_ms(tasks, now)))
        times = _sample_times(tasks, now, self.window_s, self.history_s, self.samples)
        ivs = [_intervals(t, now) for t in tasks]  # once, for both curves
        out["task_queue"] = _queue(tasks, times, now, ivs)
        out["task_util"] = _util(tasks, times, now, cpus, ivs)
        return out

    def min_bar_ms(self, tasks: list[dict[str, Any]], now: float) -> float:
        """The narrowest bar drawn: a small fraction of what the x axis shows."""
        if self.window_s is not None:
            return self.window_s * 1000 * MIN_BAR_FRACTION
        starts = [float(t["start_time_ms"]) for t in tasks if t.get("start_time_ms")]
        return (now - min(starts)) * MIN_BAR_FRACTION if starts else 0.0

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

    def x_range(self) -> DataRange1d:
        """The shared x range: the last ``window_s`` seconds of the data, following its end."""
        if self.window_s is None:
            return DataRange1d(range_padding=0.02, name="task_x_range")
        return DataRange1d(follow="end", follow_interval=self.window_s * 1000, range_padding=0,
                           name="task_x_range")

    def build(self) -> LayoutDOM:
        s = self.sources
        x_range = self.x_range()
        shown = "whole history" if self.window_s is None else f"last {self.window_s:g} s"
        common: dict[str, Any] = {"x_axis_type": "datetime", "sizing_mode": "stretch_width", "x_range": x_range,
                                  "min_border_left": BORDER_LEFT, "min_border_right": BORDER_RIGHT}
        # No wheel zoom active by default: in a notebook the wheel scrolls the page.
        stream = figure(title=f"Task stream (one lane per worker; {shown}; drag to see earlier, "
                              "reset to follow again)", height=340,
                        tools="xpan,xwheel_zoom,box_zoom,reset,save",
                        name="task_stream_figure", **common)
        bars = stream.hbar(y="lane", left="start", right="right", height=0.8, source=s["task_stream"],
                           fill_color="color", line_color="line_color", line_width="line_width",
                           hatch_pattern="hatch", hatch_color=FAILED_OUTLINE, hatch_alpha=0.9, hatch_scale=8,
                           legend_field="name", name="task_bars")
        failures = stream.scatter(x="end", y="lane", source=s["task_failures"], marker="x", size=11,
                                  line_color=FAILED_OUTLINE, line_width=3, legend_label="failed",
                                  name="task_failure_marks")
        stream.add_tools(HoverTool(renderers=[bars, failures], tooltips=TOOLTIPS, name="task_hover"))
        stream.yaxis.ticker = SingleIntervalTicker(interval=1, num_minor_ticks=0)
        stream.yaxis.formatter = CustomJSTickFormatter(args={"lanes": s["task_lanes"]}, code=_LANE_LABEL_JS)
        stream.yaxis.major_label_text_font_size = "10px"
        stream.y_range = DataRange1d(range_padding=0.05, flipped=True)  # lane 0 on top
        stream.ygrid.grid_line_color = None
        legend = stream.legend[0]
        legend.title = "function"
        legend.label_text_font_size = "10px"
        legend.glyph_width = 14
        legend.spacing = 0
        legend.click_policy = "none"
        legend.name = "task_legend"
        # legend_field put it inside the frame, over the bars: move it out, to the right.
        stream.center = [r for r in stream.center if r is not legend]
        stream.add_layout(legend, "right")

        queue = figure(title="Queue depth (pending tasks by state)", height=200, tools="xpan,xwheel_zoom,reset",
                       name="task_queue_figure", **common)
        items: list[Any] = []
        for st, color in zip(PENDING, _PENDING_COLORS, strict=True):
            r = queue.step(x="time", y=st, source=s["task_queue"], color=color, line_width=2, mode="after")
            items.append((st, [r]))
        # Outside the frame, on the right: never over the newest data.
        queue.add_layout(Legend(items=items, label_text_font_size="10px", glyph_width=14, spacing=0,
                                name="task_queue_legend"), "right")

        util = figure(title="Utilisation (CPUs held by running tasks / cluster CPUs)", height=180,
                      y_range=Range1d(start=0, end=1.05), tools="xpan,xwheel_zoom,reset", name="task_util_figure",
                      **common)
        # (varea, not varea_step: with varea_step BokehJS 3.9 never finished drawing the page here)
        util.varea(x="time", y1=0, y2="utilisation", source=s["task_util"], fill_color="#4caf50", fill_alpha=0.5)
        util.add_tools(HoverTool(tooltips=[("running", "@running{0.0}"), ("CPUs", "@cpus_used{0.0} / @cpus")],
                                 mode="vline"))
        return column(stream, queue, util, sizing_mode="stretch_width")


def _darker(color: str, f: float = 0.7) -> str:
    """``color`` (#rrggbb) with its channels scaled by ``f``: the bar's own outline."""
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"#{int(r * f):02x}{int(g * f):02x}{int(b * f):02x}"


def _stream(tasks: list[dict[str, Any]], now: float, min_bar_ms: float = 0.0) -> dict[str, Columns]:
    ran = [t for t in tasks if t.get("start_time_ms") and t.get("worker_pid")]
    lanes = sorted({(t["node_id"] or "", t["worker_pid"]) for t in ran})
    index = {lane: i for i, lane in enumerate(lanes)}
    cols: Columns = {c: [] for c in TaskStreamView.SOURCES["task_stream"]}
    fails: Columns = {c: [] for c in TaskStreamView.SOURCES["task_failures"]}
    for t in ran:
        start = float(t["start_time_ms"])
        end = max(float(t["end_time_ms"] or 0) or now, start)
        failed = t["state"] == "FAILED"
        name = t["func_or_class_name"] or t["name"] or "?"
        node, pid = t["node_id"] or "", t["worker_pid"]
        color = color_for(name)
        row = {
            "task_id": t["task_id"], "name": name, "state": t["state"], "lane": index[(node, pid)],
            "worker": f"{short(node, 6)} pid {pid}", "node_id": node, "worker_pid": int(pid),
            "start": start, "end": end, "right": max(end, start + min_bar_ms), "duration_ms": end - start,
            "color": color, "line_color": FAILED_OUTLINE if failed else _darker(color),
            "line_width": 2 if failed else 1, "hatch": FAILED_HATCH if failed else " ", "failed": failed,
            "error": t.get("error_message") or "",
        }
        for c, v in row.items():
            cols[c].append(v)
        if failed:
            for c in fails:
                fails[c].append(row[c])
    return {"task_stream": cols, "task_failures": fails, "task_lanes": {
        "lane": list(range(len(lanes))), "label": [f"{short(n, 6)} pid {p}" for n, p in lanes]}}


def _sample_times(tasks: list[dict[str, Any]], now: float, window_s: float | None, history_s: float,
                  n: int) -> np.ndarray:
    """Sample times for the curves: ``n`` over the window, ``n // 2`` over the history before it.

    The samples cover the whole window even before any task, so the x range
    (which follows the data) always spans ``window_s``, ending now."""
    firsts = [min(v for v in t["state_times_ms"].values() if v) for t in tasks
              if any(t["state_times_ms"].values())]
    if window_s is not None:
        firsts.append(now - window_s * 1000)
    if not firsts:
        return np.zeros(0)
    start = max(min(firsts), now - history_s * 1000)
    if now <= start:
        return np.array([now])
    if window_s is None:
        return np.linspace(start, now, n)
    cut = max(start, now - window_s * 1000)
    recent = np.linspace(cut, now, n)
    if cut <= start:
        return recent
    return np.concatenate([np.linspace(start, cut, max(2, n // 2), endpoint=False), recent])


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
        cols[st] = _peak(per_state[st], times).tolist()
    return cols


def _peak(intervals: list[tuple[float, float]], times: np.ndarray) -> np.ndarray:
    """The most intervals covering any instant from each sample time to the next
    (the last: at it), so a state held for a millisecond between two samples
    still shows. A count only rises when an interval starts, so the peak of a
    step is at its start or at an interval start inside it."""
    if not intervals or not len(times):
        return np.zeros(len(times))
    enters = np.array([a for a, _ in intervals], dtype=float)
    points = np.union1d(times, enters[(enters > times[0]) & (enters < times[-1])])
    return np.asarray(np.maximum.reduceat(_count(intervals, points), np.searchsorted(points, times)))


def _mean(intervals: list[tuple[float, float]], times: np.ndarray,
          weights: list[float] | None = None) -> np.ndarray:
    """How many intervals (weighted) cover the time from each sample to the next,
    on average (the last sample: at it), so tasks shorter than a step count
    for the part of the step they ran."""
    if not intervals or not len(times):
        return np.zeros(len(times))
    w = np.ones(len(intervals)) if weights is None else np.asarray(weights, dtype=float)

    def area(edges: np.ndarray) -> np.ndarray:  # sum of w * (t - edge) over the edges <= each t
        order = np.argsort(edges, kind="stable")
        cw = np.concatenate([[0.0], np.cumsum(w[order])])
        cwe = np.concatenate([[0.0], np.cumsum(w[order] * edges[order])])
        k = np.searchsorted(edges[order], times, side="right")
        return np.asarray(times * cw[k] - cwe[k])

    covered = area(np.array([a for a, _ in intervals])) - area(np.array([b for _, b in intervals]))
    out = _count(intervals, times, weights)
    if len(times) > 1:
        out[:-1] = np.diff(covered) / np.diff(times)
    return out


def _util(tasks: list[dict[str, Any]], times: np.ndarray, now: float, cpus: float,
          ivs: list[dict[str, tuple[float, float]]] | None = None) -> Columns:
    running, weights = [], []
    for i, t in enumerate(tasks):
        iv = (ivs[i] if ivs is not None else _intervals(t, now)).get("RUNNING")
        if iv is not None:
            running.append(iv)
            weights.append(float((t.get("required_resources") or {}).get("CPU", 0.0)))
    n = _mean(running, times)
    used = _mean(running, times, weights)
    return {"time": times.tolist(), "running": n.tolist(), "cpus_used": used.tolist(),
            "cpus": [cpus] * len(times), "utilisation": (used / cpus if cpus else used * 0).tolist()}
