"""The progress view (dask's "progress" page): one bar per function.

Each function (or actor method, ``Class.method``) that has work now, or had
some in the last ``keep_s`` seconds, gets a row: a bar as long as the tasks
of its current *run* (every task submitted since it last went idle for
``keep_s``), filled left to right with the failed (red), the finished (the
function's colour) and the running (a lighter shade) tasks; the rest of the
bar is work still waiting. Beside it: ``done / total`` and the failures.
A function that went quiet stays ``keep_s`` seconds, then leaves, so the
page shows what is going on now, as dask's does.

Data: the state API's task changes (``task_changes``: only the tasks that
changed since the last update), folded into a table task id → (function,
state, submitted at); the GCS keeps the newest 100,000 task records, so a
run of more tasks than that counts those it still has.

- ``progress_bars``: one row per function, ``y`` its row (0 at the top),
  ``failed``/``done``/``running`` the ends of each segment along a bar
  whose full length is ``total`` (normalised to 1), its label and counts.
"""

from __future__ import annotations

import time
from typing import Any

from bokeh.models import HoverTool, LayoutDOM, Range1d
from bokeh.plotting import figure

from jray.jupyter.views._base import Columns, View, color_for
from jray.util import state

FAILED = "#d62728"
WAITING = "#e8e8e8"
DONE_STATES = {"FINISHED"}
FAILED_STATES = {"FAILED"}
RUNNING_STATES = {"RUNNING"}


def _lighter(hex_color: str, amount: float = 0.55) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    mix = [round(c + (255 - c) * amount) for c in (r, g, b)]
    return "#{:02x}{:02x}{:02x}".format(*mix)


class ProgressView(View):
    """Per-function progress bars (``max_rows`` functions, most active first)."""

    SOURCES = {
        "progress_bars": ("name", "y", "total", "done", "failed", "running", "waiting",
                          "failed_end", "done_end", "running_end", "color", "running_color",
                          "label", "counts", "label_y"),
    }

    def __init__(self, *, address: str | None = None, token: str | None = None, keep_s: float = 60.0,
                 max_rows: int = 12) -> None:
        super().__init__(address=address, token=token)
        self.keep_s = keep_s
        self.max_rows = max_rows
        self._seq = 0
        # task id -> (function, state, submitted at in ms)
        self._tasks: dict[str, tuple[str, str, float]] = {}
        # function -> (start of its current run in ms, last change seen in ms)
        self._runs: dict[str, list[float]] = {}

    def _fetch(self) -> None:
        kw = self.state_kwargs
        changes = state.task_changes(since=self._seq, limit=0, **kw)
        if self._seq and changes["seq"] < self._seq:  # the GCS restarted: start over
            self._tasks.clear()
            self._runs.clear()
            changes = state.task_changes(limit=0, **kw)
        now = time.time() * 1000
        for row in changes["tasks"]:
            if row.get("type") == "ACTOR_CREATION_TASK":
                continue
            name = row.get("func_or_class_name") or row.get("name") or "?"
            times = [float(t) for t in (row.get("state_times_ms") or {}).values() if t]
            known = self._tasks.get(row["task_id"])
            # When the task was first seen (its submission may reach the GCS
            # after its start): kept once known, so a task never moves to
            # another run.
            submitted = known[2] if known is not None else float(row.get("creation_time_ms") or min(times, default=now))
            run = self._runs.get(name)
            if run is None:
                run = self._runs[name] = [submitted, submitted]
            elif known is None and submitted > run[1] + self.keep_s * 1000:
                run[0] = submitted  # a new run after a quiet spell: count from here
            elif known is None and run[0] - self.keep_s * 1000 <= submitted < run[0]:
                run[0] = submitted  # rows come in any order: an earlier task of this run
            run[1] = max(run[1], max(times, default=submitted))
            self._tasks[row["task_id"]] = (name, row["state"], submitted)
        self._seq = changes["seq"]

    def compute(self) -> dict[str, Columns]:
        self._fetch()
        now = time.time() * 1000
        counts: dict[str, dict[str, int]] = {}
        for tid, (name, st, submitted) in list(self._tasks.items()):
            run = self._runs.get(name)
            if run is None or submitted < run[0]:
                if run is None or st in DONE_STATES | FAILED_STATES:
                    del self._tasks[tid]  # from an earlier run: forget it
                continue
            c = counts.setdefault(name, {"total": 0, "done": 0, "failed": 0, "running": 0})
            c["total"] += 1
            if st in DONE_STATES:
                c["done"] += 1
            elif st in FAILED_STATES:
                c["failed"] += 1
            elif st in RUNNING_STATES:
                c["running"] += 1
        rows = []
        for name, c in counts.items():
            active = c["done"] + c["failed"] < c["total"]
            last = self._runs[name][1]
            if active or now - last <= self.keep_s * 1000:
                rows.append((not active, -last, name, c))
        for name in [n for n in self._runs if n not in counts]:
            del self._runs[name]
        rows.sort()
        out: Columns = {c: [] for c in self.SOURCES["progress_bars"]}
        for i, (_idle, _last, name, c) in enumerate(rows[: self.max_rows]):
            total = max(1, c["total"])
            f_end = c["failed"] / total
            d_end = f_end + c["done"] / total
            r_end = d_end + c["running"] / total
            color = color_for(name)
            waiting = c["total"] - c["done"] - c["failed"] - c["running"]
            extra = []
            if c["failed"]:
                extra.append(f"{c['failed']} failed")
            if c["running"]:
                extra.append(f"{c['running']} running")
            if waiting:
                extra.append(f"{waiting} waiting")
            for col, v in (("name", name), ("y", -i), ("total", c["total"]), ("done", c["done"]),
                           ("failed", c["failed"]), ("running", c["running"]), ("waiting", waiting),
                           ("failed_end", f_end), ("done_end", d_end), ("running_end", r_end),
                           ("color", color), ("running_color", _lighter(color)), ("label", name),
                           ("counts", f"{c['done']} / {c['total']}" + (f"  ({', '.join(extra)})" if extra else "")),
                           ("label_y", -i + 0.28)):
                out[col].append(v)
        return {"progress_bars": out}

    def build(self) -> LayoutDOM:
        src = self.sources["progress_bars"]
        fig = figure(title=f"Progress per function (failed | done | running | waiting; quiet functions leave "
                           f"after {self.keep_s:g} s)",
                     height=60 + 36 * self.max_rows, sizing_mode="stretch_width", x_range=Range1d(start=-0.01, end=1.45),
                     y_range=Range1d(start=-self.max_rows + 0.5, end=0.9),
                     tools="save", toolbar_location="above", name="progress_figure")
        fig.hbar(y="y", left=0, right=1, height=0.42, fill_color=WAITING, line_color="#bdbdbd", source=src)
        fig.hbar(y="y", left=0, right="failed_end", height=0.42, fill_color=FAILED, line_color=None, source=src)
        done = fig.hbar(y="y", left="failed_end", right="done_end", height=0.42, fill_color="color",
                        line_color=None, source=src)
        fig.hbar(y="y", left="done_end", right="running_end", height=0.42, fill_color="running_color",
                 line_color=None, source=src)
        fig.text(x=0, y="label_y", text="label", text_font_size="12px", text_baseline="bottom",
                  text_color="#808080", source=src)
        fig.text(x=1.02, y="y", text="counts", text_font_size="11px", text_baseline="middle",
                  text_color="#808080", source=src)
        fig.add_tools(HoverTool(renderers=[done], tooltips=[("function", "@name"), ("done", "@done / @total"),
                                                           ("failed", "@failed"), ("running", "@running"),
                                                           ("waiting", "@waiting")]))
        fig.axis.visible = False
        fig.grid.visible = False
        fig.outline_line_color = None
        return fig


def summary(view: ProgressView) -> list[dict[str, Any]]:
    """The rows as dicts (tests, text output)."""
    d = view.data()["progress_bars"]
    keys = ("name", "total", "done", "failed", "running", "waiting")
    return [{k: d[k][i] for k in keys} for i in range(len(d["name"]))]
