"""Run the microbenchmark suite against Ray or jray, or both side by side.

    python bench/run.py --runtime ray            # Ray, under .venv-ray/bin/python
    python bench/run.py --runtime jray           # jray, under this interpreter
    python bench/run.py --both                   # both, then bench/out/results.{json,md}
    python bench/compare.py [--render JRAY_JSON RAY_JSON]   # compare_main below

Each runtime runs in a child process (its own process group, killed as a
whole if it outlives ``--timeout``): this file run as a script with
``--child``, which loads ``workloads.py`` beside it by file path, imports the
runtime and calls ``run_all``. The Ray child runs without the repo on its
path, so neither it nor the workloads can lean on jray; for the same reason
this module imports only the standard library and loads its siblings by
path (``load``), whether it was imported as ``jray.bench.runner`` or loaded
by path from ``bench/run.py``.

It runs from a checkout: results go to ``bench/out/``, Ray's interpreter is
``.venv-ray/bin/python`` (``bash bench/setup_ray_venv.sh``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent  # jray/bench/
ROOT = HERE.parents[1]  # the checkout
OUT_DIR = ROOT / "bench" / "out"
RAY_PYTHON = ROOT / ".venv-ray" / "bin" / "python"

RUN_HELP = """Run the microbenchmark suite against Ray or jray, or both side by side.

    python bench/run.py --runtime ray            # Ray, under .venv-ray/bin/python
    python bench/run.py --runtime jray           # jray, under this interpreter
    python bench/run.py --both                   # both, then bench/out/results.{json,md}

Each runtime runs in a child process (its own process group, killed as a
whole if it outlives ``--timeout``) that loads jray/bench/workloads.py
by file path, imports the runtime and calls ``run_all``. The Ray child runs
without the repo on its path, so the workloads cannot lean on jray.
"""

COMPARE_HELP = """Run jray and Ray in one invocation and write bench/out/results.{json,md}.

    python bench/compare.py [--quick] [--large] [--scale] [--reps N] [--only a,b]
    python bench/compare.py --render bench/out/jray.json bench/out/ray.json

The first form is ``bench/run.py --both``. ``--render`` builds the report
from two runs made earlier with ``bench/run.py --runtime ...`` (their ratios
are then across runs, so noisier than within one invocation).
"""


def load(path: Path, name: str) -> ModuleType:
    """Import a file by path under ``name``, without importing its package."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def say(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def child(args: argparse.Namespace) -> int:
    """In the runtime's interpreter: run the suite and write its JSON."""
    workloads = load(HERE / "workloads.py", "jray_bench_workloads")
    rt = importlib.import_module(args.runtime)
    only = args.only.split(",") if args.only else None
    result = workloads.run_all(
        rt, quick=args.quick, large=args.large, reps=args.reps, progress=say, only=only,
        scale=args.scale, deadlines=parse_deadlines(args.deadline),
    )
    Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


def parse_deadlines(text: str | None) -> dict[str, float]:
    """``"scale_tasks=3600,pool=300"`` -> {"scale_tasks": 3600.0, "pool": 300.0}."""
    out: dict[str, float] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, seconds = part.partition("=")
        if not sep:
            raise ValueError(f"--deadline wants NAME=SECONDS, not {part!r}")
        out[name.strip()] = float(seconds)
    return out


def runtime_timeout(args: argparse.Namespace) -> float:
    """``--timeout``, or by default an hour plus the deadlines of the scaling
    workloads this run includes (each runs under a deadline of its own)."""
    if args.timeout is not None:
        return float(args.timeout)
    workloads = load(HERE / "workloads.py", "jray_bench_workloads")
    only = args.only.split(",") if args.only else None
    deadlines = parse_deadlines(args.deadline)
    chosen = workloads.selected(only, large=args.large, scale=args.scale)
    return 3600.0 + sum(deadlines.get(w.name, w.timeout_s) + 60 for w in chosen if w.scale)


def python_for(runtime: str, given: str | None) -> str:
    if given:
        return given
    if runtime == "ray":
        if not RAY_PYTHON.exists():
            sys.exit(f"{RAY_PYTHON} is missing: run `bash bench/setup_ray_venv.sh` first")
        return str(RAY_PYTHON)
    return sys.executable


def run_runtime(runtime: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one runtime's suite in a child process group; its results, or why there are none."""
    python = python_for(runtime, args.python)
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1")
    paths = [
        p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() != ROOT
    ]
    if runtime == "jray":
        paths.insert(0, str(ROOT))
        # Bytecode as a wheel install has it (pip compiles on install; Ray's
        # site-packages has it): an editable checkout under
        # PYTHONDONTWRITEBYTECODE would recompile jray in every process.
        subprocess.run([python, "-m", "compileall", "-q", str(ROOT / "jray")], check=False,
                       stdout=subprocess.DEVNULL, timeout=300)
    env["PYTHONPATH"] = os.pathsep.join(paths)
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        out = Path(tmp.name)
    cmd = [
        python,
        str(Path(__file__).resolve()),
        "--child",
        "--runtime",
        runtime,
        "--out",
        str(out),
    ]
    cmd += ["--quick"] * args.quick + ["--large"] * args.large
    cmd += ["--reps", str(args.reps)] if args.reps else []
    cmd += ["--only", args.only] if args.only else []
    cmd += ["--scale"] * args.scale
    cmd += ["--deadline", args.deadline] if args.deadline else []
    timeout = runtime_timeout(args)
    say(f"[{runtime}] {python}")
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True)
    error = None
    try:
        rc = proc.wait(timeout=timeout)
        if rc != 0:
            error = f"the {runtime} run exited with status {rc}"
    except subprocess.TimeoutExpired:
        error = f"the {runtime} run ran past --timeout {timeout:.0f} s and was killed"
    finally:
        # Whatever the run left in its process group is ours to stop.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
                time.sleep(1)
        proc.wait()
    try:
        result = json.loads(out.read_text())
    except (OSError, ValueError):
        result = {"runtime": runtime, "metrics": {}, "workloads": {}}
        error = error or f"the {runtime} run wrote no results"
    finally:
        out.unlink(missing_ok=True)
    if error:
        result["error"] = error
        say(f"[{runtime}] {error}")
    return result


def main(argv: list[str] | None = None) -> int:
    """``bench/run.py``: one runtime (``--runtime``), or both (``--both``)."""
    p = argparse.ArgumentParser(
        description=RUN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--runtime", choices=("ray", "jray"))
    p.add_argument(
        "--both", action="store_true", help="run jray and Ray, write results.json and results.md"
    )
    p.add_argument(
        "--python",
        help="interpreter for --runtime (default: .venv-ray's for ray, this one for jray)",
    )
    p.add_argument(
        "--out", help="JSON file (default: bench/out/<runtime>.json, or results.json for --both)"
    )
    p.add_argument("--quick", action="store_true", help="fewer repetitions and smaller counts")
    p.add_argument("--large", action="store_true", help="add the 1 GB put")
    p.add_argument("--reps", type=int, help="repetitions per workload (default 5, quick 2)")
    p.add_argument("--only", help="comma-separated workload names, e.g. task_rtt,put_100mb")
    p.add_argument(
        "--scale",
        action="store_true",
        help="add the scaling workloads (scale_tasks, scale_actors, scale_objects, scale_nodes,"
        " scale_drivers: long)",
    )
    p.add_argument(
        "--deadline",
        help="per-workload deadlines in seconds, e.g. scale_tasks=3600,pool=300"
        " (default: the workload's own)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="with --both: run each runtime this many times, alternating (jray, Ray, Ray, jray, ...),"
        " and pool the samples, so drift of a shared machine weighs on both alike",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds allowed per runtime (default 3600, plus the deadlines of the scaling"
        " workloads included)",
    )
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    try:
        parse_deadlines(args.deadline)
    except ValueError as e:
        p.error(str(e))
    if args.child:
        return child(args)
    if args.both:
        return both(args)
    if not args.runtime:
        p.error("give --runtime ray|jray, or --both")
    result = run_runtime(args.runtime, args)
    out = Path(args.out) if args.out else OUT_DIR / f"{args.runtime}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    report = load(HERE / "report.py", "jray_bench_report")
    runs = {args.runtime: result}
    print(report.markdown({"machine": report.machine_info(), "runs": runs}))
    say(f"wrote {out}")
    return 1 if result.get("error") else 0


def compare_main(argv: list[str] | None = None) -> int:
    """``bench/compare.py``: ``main(["--both", ...])``, or with ``--render`` the
    report of two earlier runs."""
    p = argparse.ArgumentParser(
        description=COMPARE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--render", nargs=2, metavar=("JRAY_JSON", "RAY_JSON"), help="report two earlier runs"
    )
    p.add_argument(
        "--out", help="JSON file (default: bench/out/results.json); the .md goes beside it"
    )
    args, rest = p.parse_known_args(argv)
    if not args.render:
        return main(["--both", *(["--out", args.out] if args.out else []), *rest])
    report = load(HERE / "report.py", "jray_bench_report")
    runs = {
        key: json.loads(Path(f).read_text())
        for key, f in zip(("jray", "ray"), args.render, strict=True)
    }
    results = {"machine": report.machine_info(), "runs": runs}
    out = Path(args.out) if args.out else OUT_DIR / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    md = report.markdown(results)
    out.with_suffix(".md").write_text(md)
    print(md)
    return 0


def both(args: argparse.Namespace) -> int:
    report = load(HERE / "report.py", "jray_bench_report")
    machine = report.machine_info()
    order: list[str] = []
    for i in range(max(1, args.rounds)):
        order += ["jray", "ray"] if i % 2 == 0 else ["ray", "jray"]
    done: dict[str, list[dict[str, Any]]] = {"jray": [], "ray": []}
    for rt in order:
        done[rt].append(run_runtime(rt, args))
    runs = {rt: pool_rounds(rs) for rt, rs in done.items()}
    results = {"machine": machine, "runs": runs}
    out = Path(args.out) if args.out else OUT_DIR / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    md = report.markdown(results)
    out.with_suffix(".md").write_text(md)
    print(md)
    say(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


def pool_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One runtime's runs merged: each metric's samples pooled, then summarised again."""
    if len(rounds) == 1:
        return rounds[0]
    workloads = load(HERE / "workloads.py", "jray_bench_workloads")
    merged = dict(rounds[0])
    merged["rounds"] = len(rounds)
    merged["seconds"] = round(sum(r.get("seconds", 0) for r in rounds), 3)
    errors = [r["error"] for r in rounds if r.get("error")]
    if errors:
        merged["error"] = "; ".join(errors)
    metrics: dict[str, Any] = {}
    for r in rounds:
        for k, m in r.get("metrics", {}).items():
            if k not in metrics or not metrics[k].get("ok"):
                metrics[k] = dict(m, samples=list(m.get("samples", [])))
            elif m.get("ok"):
                metrics[k]["samples"] += m.get("samples", [])
    for k, m in metrics.items():
        if m.get("ok") and m["samples"] and k in workloads.METRIC_BY_NAME:
            metrics[k] = workloads.summarize(m["samples"], workloads.METRIC_BY_NAME[k])
    merged["metrics"] = metrics
    wl: dict[str, Any] = {}
    for r in rounds:
        for k, w in r.get("workloads", {}).items():
            if k not in wl:
                wl[k] = dict(w)
            else:
                wl[k]["ok"] = wl[k]["ok"] and w["ok"]
                wl[k]["error"] = wl[k]["error"] or w["error"]
                wl[k]["seconds"] = round(wl[k]["seconds"] + w["seconds"], 3)
    merged["workloads"] = wl
    return merged


if __name__ == "__main__":
    sys.exit(main())
