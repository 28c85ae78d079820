"""Side-by-side report of a jray run and a Ray run: ratios, targets, Markdown.

Plain functions over the JSON that ``workloads.run_all`` returns; like
``workloads`` this module imports nothing from jray, so ``runner.py`` can
load it by file path under any interpreter.

A ratio is always jray/Ray of the figure as reported: for a rate (higher is
better) a ratio above 1 means jray is faster, for a time or a size (lower is
better) a ratio below 1 means jray is faster or smaller.

Figures that carry a ``table`` have tables of their own after the main one:
"stdlib" figures (the standard library's ``multiprocessing.Pool`` measured in
each runtime's process) are set against the runtime's Pool, and each scaling
workload (``scale_*``) gets a table with a row per size and both runtimes.
"""

from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    """jray/Ray ``op`` ``ratio``; op "true" means jray's yes/no check must say yes."""

    op: str  # "<=", ">=" or "true"
    ratio: float = 1.0

    def text(self) -> str:
        if self.op == "true":
            return "jray: yes"
        return f"{'≤' if self.op == '<=' else '≥'} {self.ratio:g}×"

    def met(self, ratio: float | None, jray_value: Any) -> bool | None:
        if self.op == "true":
            return None if jray_value is None else bool(jray_value)
        if ratio is None or math.isnan(ratio):
            return None
        return ratio <= self.ratio if self.op == "<=" else ratio >= self.ratio


TARGETS: dict[str, Target] = {
    # Issue 19's (the second wave); the first wave's were init <= 0.2x, idle
    # PSS <= 0.3x, tasks >= 1.5x, actor calls async >= 1.25x, creation >= 10x.
    "init_s": Target("<=", 0.1),
    "first_task_s": Target("<=", 1.0),
    "idle_pss_mb": Target("<=", 0.15),
    "task_rtt_ms": Target("<=", 0.7),
    "tasks_async": Target(">=", 6.0),
    "tasks_nested": Target(">=", 6.0),
    "actor_sync": Target(">=", 3.0),
    "actor_async": Target(">=", 3.0),
    "actor_create": Target(">=", 50.0),
    "put_1gb_first": Target(">=", 1.0),
    "shutdown_s": Target("<=", 0.5),
    "put_100mb": Target(">=", 1.0),
    "get_100mb_zero_copy": Target("true"),
    "task_arg_100mb": Target(">=", 1.0),
    "put_1gb": Target(">=", 1.0),
    "spill_gbps": Target(">=", 1.0),
    "restore_gbps": Target(">=", 1.0),
    # ray.util.multiprocessing.Pool against jray.util.multiprocessing.Pool
    "pool_apply": Target(">=", 1.5),
    "pool_map_small": Target(">=", 1.5),
    "pool_map_large": Target(">=", 1.5),
    # A driver connected as a client (Ray Client, ray://): at least as fast on every figure.
    "client_task_rtt_ms": Target("<=", 1.0),
    "client_tasks": Target(">=", 1.0),
    "client_put_100mb": Target(">=", 1.0),
    "client_get_100mb": Target(">=", 1.0),
    "client_put_get_100mb_ms": Target("<=", 1.0),
}


# jray's Pool against the standard library's, measured in the same process:
# jray/stdlib of the figure named, at least this.
STDLIB_TARGETS: dict[str, Target] = {
    "pool_apply": Target(">=", 0.5),
    "pool_map_small": Target(">=", 0.5),
    "pool_map_large": Target(">=", 0.5),
}


def value_of(metric: dict[str, Any] | None) -> Any:
    """The metric's value, or None when it is missing or failed."""
    if not metric or not metric.get("ok", False):
        return None
    return metric.get("value")


def ratio(jray_value: Any, ray_value: Any) -> float | None:
    """jray/Ray, or None when either side is missing, not a number, or Ray's is 0."""
    if isinstance(jray_value, bool) or isinstance(ray_value, bool):
        return None
    if not isinstance(jray_value, (int, float)) or not isinstance(ray_value, (int, float)):
        return None
    if ray_value == 0:
        return None
    return float(jray_value) / float(ray_value)


def fmt_number(x: float) -> str:
    """Three significant figures, thousands separated: 2,032 · 618 · 12.7 · 1.74 · 0.0183."""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if math.isinf(x) or math.isnan(x):
        return str(x)
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 1:
        return f"{x:.2f}"
    if ax == 0:
        return "0"
    return f"{x:.3g}"


def fmt_cell(metric: dict[str, Any] | None) -> str:
    """``median (min–max)``, ``yes``/``no``, ``failed`` or ``—`` (not measured)."""
    if not metric:
        return "—"
    if not metric.get("ok", False):
        return "failed"
    v = metric.get("value")
    if isinstance(v, bool):
        return "yes" if v else "no"
    lo, hi = metric.get("min"), metric.get("max")
    if v is None:
        return "—"
    if lo is None or hi is None or len(metric.get("samples", ())) < 2:
        return fmt_number(v)
    return f"{fmt_number(v)} ({fmt_number(lo)}–{fmt_number(hi)})"


def fmt_ratio(r: float | None) -> str:
    if r is None:
        return "—"
    return f"{r:.3g}×" if r < 10 else f"{r:.0f}×"


def row(
    name: str, jray_metric: dict[str, Any] | None, ray_metric: dict[str, Any] | None
) -> dict[str, str]:
    """One table row as strings: workload, unit, jray, Ray, ratio, better is, target, met."""
    spec = jray_metric or ray_metric or {}
    r = ratio(value_of(jray_metric), value_of(ray_metric))
    target = TARGETS.get(name)
    met = target.met(r, value_of(jray_metric)) if target else None
    better = {"true": "yes"}.get(spec.get("better", ""), spec.get("better", ""))
    return {
        "workload": spec.get("title", name),
        "unit": spec.get("unit", ""),
        "jray": fmt_cell(jray_metric),
        "ray": fmt_cell(ray_metric),
        "ratio": fmt_ratio(r),
        "better": better,
        "target": target.text() if target else "",
        "met": "" if target is None else {True: "met", False: "not met", None: "n/a"}[met],
    }


def metric_names(runs: dict[str, dict[str, Any]], table: str | None = "") -> list[str]:
    """The metrics of either run, in the order the runs report them (Ray's
    first): those of the main table (``table=""``), of one table, or all (None)."""
    names: list[str] = []
    for key in ("ray", "jray"):
        for n, m in (runs.get(key) or {}).get("metrics", {}).items():
            if n not in names and (table is None or m.get("table", "") == table):
                names.append(n)
    return names


def _metric(run: dict[str, Any], name: str) -> dict[str, Any] | None:
    return run.get("metrics", {}).get(name)


def stdlib_lines(runs: dict[str, dict[str, Any]]) -> list[str]:
    """The runtimes' Pool against the standard library's, measured in the same process."""
    jray_run, ray_run = runs.get("jray") or {}, runs.get("ray") or {}
    names = metric_names(runs, "stdlib")
    if not names:
        return []
    lines = [
        "",
        "## multiprocessing.Pool against the standard library's",
        "",
        "The standard library's `multiprocessing.Pool` (fork, 2 processes) measured in the same "
        "process as each runtime's Pool, one after the other: jray/stdlib in jray's process, "
        "Ray/stdlib in Ray's.",
        "",
        "| figure | unit | jray | stdlib (jray's process) | jray/stdlib | Ray "
        "| stdlib (Ray's process) | Ray/stdlib | target | met |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    n_met = n_targets = 0
    for std_name in names:
        spec = _metric(jray_run, std_name) or _metric(ray_run, std_name) or {}
        ref = spec.get("ref", "")
        jr, js = _metric(jray_run, ref), _metric(jray_run, std_name)
        rr, rs = _metric(ray_run, ref), _metric(ray_run, std_name)
        title = (jr or rr or {}).get("title", ref)
        j_ratio = ratio(value_of(jr), value_of(js))
        r_ratio = ratio(value_of(rr), value_of(rs))
        target = STDLIB_TARGETS.get(ref)
        met = target.met(j_ratio, value_of(jr)) if target else None
        if target:
            n_targets += 1
            n_met += met is True
        met_text = "" if target is None else {True: "met", False: "not met", None: "n/a"}[met]
        lines.append(
            f"| {title} | {spec.get('unit', '')} | {fmt_cell(jr)} | {fmt_cell(js)} | "
            f"{fmt_ratio(j_ratio)} | {fmt_cell(rr)} | {fmt_cell(rs)} | {fmt_ratio(r_ratio)} | "
            f"{target.text().replace('×', '× stdlib') if target else ''} | {met_text} |"
        )
    lines += ["", f"Targets met (jray/stdlib): {n_met} of {n_targets}."]
    return lines


def _scale_cell(jm: dict[str, Any] | None, rm: dict[str, Any] | None) -> str:
    """``jray / Ray (ratio)``, each side its value, ``failed: reason`` or ``—``."""

    def side(m: dict[str, Any] | None) -> str:
        if not m:
            return "—"
        if not m.get("ok", False):
            return f"failed: {m.get('reason') or 'error'}"
        v = m.get("value")
        return "—" if v is None else fmt_number(v)

    r = ratio(value_of(jm), value_of(rm))
    return f"{side(jm)} / {side(rm)}" + (f" ({fmt_ratio(r)})" if r is not None else "")


def scale_lines(runs: dict[str, dict[str, Any]]) -> list[str]:
    """A table per scaling workload: a row per size, a column per figure
    (jray / Ray (jray/Ray)); lower is better unless the column is marked ↑."""
    jray_run, ray_run = runs.get("jray") or {}, runs.get("ray") or {}
    tables: dict[str, list[tuple[int, str, dict[str, Any]]]] = {}
    for name in metric_names(runs, None):
        spec = _metric(jray_run, name) or _metric(ray_run, name) or {}
        table = spec.get("table", "")
        if table and table != "stdlib":
            tables.setdefault(table, []).append((int(spec.get("order", 0)), name, spec))
    lines: list[str] = []
    for table, entries in sorted(tables.items(), key=lambda kv: min(e[0] for e in kv[1])):
        entries.sort(key=lambda e: e[0])
        rows: list[str] = []
        cols: list[tuple[str, str]] = []
        cells: dict[tuple[str, str], str] = {}
        higher = {spec.get("column", name) for _, name, spec in entries
                  if spec.get("better") == "higher"}
        for _, name, spec in entries:
            row_key, col = spec.get("row", ""), (spec.get("column", name), spec.get("unit", ""))
            if row_key not in rows:
                rows.append(row_key)
            if col not in cols:
                cols.append(col)
            cells[(row_key, col[0])] = _scale_cell(_metric(jray_run, name), _metric(ray_run, name))
        lines += [
            "",
            f"## `{table}`",
            "",
            "Each cell: jray / Ray (jray/Ray); lower is better in every column, so a ratio below "
            "1 favours jray"
            + ("" if not higher else ", except in the columns marked ↑ (higher is better: a "
               "ratio above 1 favours jray)")
            + ". One run per round; with several rounds, the median.",
            "",
            "| size | " + " | ".join(f"{c} ({u}){' ↑' * (c in higher)}" for c, u in cols) + " |",
            "|---|" + "---:|" * len(cols),
        ]
        for row_key in rows:
            lines.append(
                f"| {row_key} | "
                + " | ".join(cells.get((row_key, c), "—") for c, _ in cols)
                + " |"
            )
    return lines


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory, OS and the date, for the report's header."""
    info: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    info["cpu"] = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info["cores"] = os.cpu_count()
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(ln for ln in f if ln.startswith("MemTotal")).split()[1])
        info["memory_gib"] = round(kb / 1024**2, 1)
    except (OSError, StopIteration, ValueError):
        info["memory_gib"] = None
    info["os"] = platform.platform()
    return info


def _run_line(key: str, run: dict[str, Any] | None) -> str:
    if not run:
        return f"- **{key}**: not run"
    if run.get("error"):
        return f"- **{key}**: run failed: {run['error'].splitlines()[0]}"
    parts = [
        f"{run.get('runtime', key)} {run.get('runtime_version')}",
        f"Python {run.get('python')}",
    ]
    if run.get("numpy"):
        parts.append(f"numpy {run['numpy']}")
    rounds = run.get("rounds", 1)
    per_round = f", in each of {rounds} alternating rounds (samples pooled)" if rounds > 1 else ""
    ran = list(run.get("workloads", {}))
    scaling = [w for w in ran if w.startswith("scale_")]
    if not ran or len(scaling) < len(ran):
        parts.append(f"{run.get('reps')} repetitions after {run.get('warmup')} warm-up" + per_round)
    if scaling:
        parts.append("scaling workloads: one run each, no warm-up" + per_round)
    if run.get("quick"):
        parts.append("quick")
    if run.get("seconds") is not None:
        parts.append(f"{run['seconds']:.0f} s")
    return f"- **{key}**: " + ", ".join(parts)


def markdown(results: dict[str, Any]) -> str:
    """The report: a header (machine, date, versions), the table, then the failures."""
    runs = results.get("runs", {})
    jray_run, ray_run = runs.get("jray") or {}, runs.get("ray") or {}
    m = results.get("machine", {})
    lines = [
        "# jray vs Ray microbenchmark",
        "",
        f"{m.get('date', '')} · {m.get('cpu', '?')} · {m.get('cores', '?')} cores · "
        f"{m.get('memory_gib', '?')} GiB · {m.get('os', '')}",
        "",
        _run_line("jray", runs.get("jray")),
        _run_line("Ray", runs.get("ray")),
    ]
    main = metric_names(runs)
    if main or not metric_names(runs, None):
        lines += [
            "",
            "Cells: median (min–max) over the repetitions. Ratio: jray/Ray, measured in this run; "
            "for figures where lower is better a ratio below 1 favours jray.",
            "",
            "| workload | unit | jray | Ray | jray/Ray | better is | target | met |",
            "|---|---|---:|---:|---:|---|---|---|",
        ]
    for name in main:
        r = row(name, jray_run.get("metrics", {}).get(name), ray_run.get("metrics", {}).get(name))
        lines.append(
            f"| {r['workload']} | {r['unit']} | {r['jray']} | {r['ray']} | {r['ratio']} | "
            f"{r['better']} | {r['target']} | {r['met']} |"
        )
    # The targets of the figures this run measured (either runtime); --only or
    # the workloads run apart (own_cluster) leave the others out.
    names = main
    met = [
        row(n, jray_run.get("metrics", {}).get(n), ray_run.get("metrics", {}).get(n))
        for n in TARGETS
        if n in names
    ]
    n_met = sum(r["met"] == "met" for r in met)
    rest = len(TARGETS) - len(met)
    if main:
        lines += ["", f"Targets met: {n_met} of {len(met)}"
                  + (f" ({rest} more not measured in this run)." if rest else ".")]
    lines += stdlib_lines(runs)
    lines += scale_lines(runs)
    failures = [
        (key, wname, w.get("error") or "")
        for key, run in (("jray", jray_run), ("Ray", ray_run))
        for wname, w in run.get("workloads", {}).items()
        if not w.get("ok", True)
    ]
    if failures:
        lines += ["", "## Failures", ""]
        for key, wname, err in failures:
            lines.append(f"- {key} `{wname}`: {err.splitlines()[0] if err else 'failed'}")
    return "\n".join(lines) + "\n"
