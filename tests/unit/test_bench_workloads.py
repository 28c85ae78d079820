"""The benchmark's workload module stays runtime-agnostic; its report does the right sums.

No timing here: the numbers are synthetic. The modules are loaded by file
path, the way jray/bench/runner.py loads them inside Ray's virtualenv.
"""

from __future__ import annotations

import importlib.util
import json
import mmap
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PERF = ROOT / "jray" / "bench"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", PERF / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def report() -> ModuleType:
    return load("report")


@pytest.fixture(scope="module")
def workloads() -> ModuleType:
    return load("workloads")


@pytest.mark.parametrize(
    "name", ["workloads", "clusters", "scaling", "report", "coldstart", "runner"]
)
def test_module_imports_without_jray_numpy_or_psutil(name: str) -> None:
    # A fresh interpreter, so nothing imported by this test session counts.
    code = textwrap.dedent(f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("m", {str(PERF / (name + ".py"))!r})
        m = sys.modules["m"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(m)
        bad = sorted(k for k in sys.modules if k.split(".")[0] in ("jray", "ray", "numpy", "psutil"))
        print(bad)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_every_workload_metric_is_declared(workloads: ModuleType) -> None:
    declared = {m.name for m in workloads.METRICS}
    reported = {k for w in workloads.WORKLOADS for k in w.metrics}
    assert reported == declared
    assert {m.better for m in workloads.METRICS} <= {"higher", "lower", "true"}
    assert callable(workloads.run_all)


def test_own_cluster_workloads_come_from_clusters_py_and_run_last(workloads: ModuleType) -> None:
    # clusters.py (loaded by workloads.py by path) holds the workloads that start
    # a head with the CLI; `jray microbenchmark` runs them only when named.
    own = [w for w in workloads.WORKLOADS if w.own_cluster]
    assert [w.name for w in own] == ["runtime_env", "client"]
    assert workloads.WORKLOADS[-len(own):] == tuple(own)
    assert all(not w.in_process for w in own)
    assert {m.name for m in workloads.METRICS if m.name.startswith("client_")} == set(own[1].metrics)


def test_init_kwargs(workloads: ModuleType) -> None:
    assert workloads.init_kwargs("ray") == {"num_cpus": 2, "include_dashboard": False}
    assert workloads.init_kwargs("jray") == {"num_cpus": 2}


def test_summarize(workloads: ModuleType) -> None:
    spec = workloads.METRIC_BY_NAME
    s = workloads.summarize([3.0, 1.0, 2.0, 10.0], spec["tasks_async"])
    assert (s["value"], s["min"], s["max"], s["ok"]) == (2.5, 1.0, 10.0, True)
    assert workloads.summarize([True, False], spec["get_100mb_zero_copy"])["value"] is False


def test_zero_copy_check_sees_a_private_copy(workloads: ModuleType) -> None:
    np = pytest.importorskip("numpy")
    arr = np.ones(1 << 20, dtype=np.uint8)
    arr.flags.writeable = False
    zero_copy, seen = workloads.zero_copy_check(arr)
    assert zero_copy is False and seen["readonly"] is True and seen["mapping"] is None


def test_zero_copy_check_sees_shared_memory(workloads: ModuleType, tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    shm_dir = Path("/dev/shm")
    if not shm_dir.is_dir():
        pytest.skip("no /dev/shm")
    # A shared mapping of a /dev/shm file, like an object store's (and no resource
    # tracker process, which multiprocessing.shared_memory would leave running).
    with tempfile.NamedTemporaryFile(dir=shm_dir, prefix="jray-test-bench-") as f:
        f.truncate(1 << 20)
        with mmap.mmap(f.fileno(), 1 << 20, access=mmap.ACCESS_READ) as buf:
            arr = np.frombuffer(buf, dtype=np.uint8)
            zero_copy, seen = workloads.zero_copy_check(arr)
            del arr
    assert zero_copy is True, seen
    assert "/dev/shm/jray-test-bench-" in seen["mapping"]


def metric(
    value: Any, lo: Any = None, hi: Any = None, better: str = "higher", unit: str = "x/s"
) -> dict:
    m = {
        "title": "t",
        "unit": unit,
        "better": better,
        "ok": True,
        "value": value,
        "samples": [value],
    }
    if lo is not None:
        m.update(min=lo, max=hi, samples=[lo, value, hi])
    return m


def test_ratio(report: ModuleType) -> None:
    assert report.ratio(3.0, 2.0) == 1.5
    assert report.ratio(None, 2.0) is None
    assert report.ratio(1.0, 0) is None
    assert report.ratio(True, True) is None


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (2032.4, "2,032"),
        (618.2, "618"),
        (12.71, "12.7"),
        (1.744, "1.74"),
        (0.01834, "0.0183"),
        (0, "0"),
    ],
)
def test_fmt_number(report: ModuleType, x: float, text: str) -> None:
    assert report.fmt_number(x) == text


def test_fmt_cell(report: ModuleType) -> None:
    assert report.fmt_cell(metric(2.48, 2.1, 4.1)) == "2.48 (2.10–4.10)"
    assert report.fmt_cell(metric(4.0)) == "4.00"
    assert report.fmt_cell(metric(True, better="true")) == "yes"
    assert report.fmt_cell({"ok": False, "error": "boom"}) == "failed"
    assert report.fmt_cell(None) == "—"


def test_targets_in_both_directions(report: ModuleType) -> None:
    # lower is better: init 0.2 s vs 2.5 s is 0.08×, under the 0.1× target
    r = report.row("init_s", metric(0.2, better="lower"), metric(2.5, better="lower"))
    assert (r["ratio"], r["target"], r["met"], r["better"]) == ("0.08×", "≤ 0.1×", "met", "lower")
    r = report.row("init_s", metric(0.4, better="lower"), metric(2.5, better="lower"))
    assert r["met"] == "not met"
    # higher is better: 12,000 vs 2,000 tasks/s is 6×, exactly the target
    r = report.row("tasks_async", metric(12000.0), metric(2000.0))
    assert (r["ratio"], r["met"]) == ("6×", "met")
    r = report.row("actor_create", metric(220.0), metric(4.0))
    assert (r["ratio"], r["met"]) == ("55×", "met")
    r = report.row("tasks_async", metric(11999.0), metric(2000.0))
    assert r["met"] == "not met"


def test_untargeted_failed_and_boolean_rows(report: ModuleType) -> None:
    r = report.row("actor_nn", metric(900.0), metric(1000.0))
    assert (r["ratio"], r["target"], r["met"]) == ("0.9×", "", "")
    r = report.row(
        "tasks_async", {"title": "t", "unit": "u", "better": "higher", "ok": False}, metric(2.0)
    )
    assert (r["jray"], r["ratio"], r["met"]) == ("failed", "—", "n/a")
    yes, no = metric(True, better="true"), metric(False, better="true")
    assert report.row("get_100mb_zero_copy", yes, yes)["met"] == "met"
    assert report.row("get_100mb_zero_copy", no, yes)["met"] == "not met"
    assert report.row("get_100mb_zero_copy", no, yes)["ratio"] == "—"


def test_markdown(report: ModuleType) -> None:
    def run(name: str, rate: float, ok: bool = True) -> dict:
        return {
            "runtime": name,
            "runtime_version": "9.9",
            "python": "3.11.7",
            "reps": 3,
            "warmup": 1,
            "seconds": 12.0,
            "metrics": {"task_rtt_ms": metric(rate, rate - 0.1, rate + 0.1, unit="ms", better="lower")},
            "workloads": {
                "task_rtt": {"ok": True},
                "wait_1k": {"ok": ok, "error": "TimeoutError: slow\nmore"},
            },
        }

    results = {
        "machine": {"date": "2026-01-01 00:00 UTC", "cpu": "CPU X", "cores": 2, "memory_gib": 23.5},
        "runs": {"jray": run("jray", 1.2, ok=False), "ray": run("ray", 2.0)},
    }
    md = report.markdown(results)
    assert "CPU X · 2 cores · 23.5 GiB" in md
    assert "- **jray**: jray 9.9, Python 3.11.7, 3 repetitions after 1 warm-up, 12 s" in md
    assert "| workload | unit | jray | Ray | jray/Ray | better is | target | met |" in md
    assert (
        "| t | ms | 1.20 (1.10–1.30) | 2.00 (1.90–2.10) | 0.6× | lower | ≤ 0.7× | met |"
        in md
    )
    assert "Targets met: 1 of 1 (24 more not measured in this run)." in md
    assert "- jray `wait_1k`: TimeoutError: slow" in md
    assert "Ray `wait_1k`" not in md


def test_alternating_rounds_pool_their_samples(workloads: ModuleType) -> None:
    run = load("runner")
    m = workloads.METRIC_BY_NAME["tasks_async"]

    def one(samples: list[float], ok: bool = True) -> dict[str, Any]:
        return {
            "runtime": "jray",
            "reps": len(samples),
            "seconds": 10.0,
            "metrics": {"tasks_async": workloads.summarize(samples, m)},
            "workloads": {"tasks_async": {"ok": ok, "error": None if ok else "boom", "seconds": 5.0}},
        }

    pooled = run.pool_rounds([one([1.0, 2.0, 3.0]), one([10.0, 11.0], ok=False)])
    got = pooled["metrics"]["tasks_async"]
    assert got["samples"] == [1.0, 2.0, 3.0, 10.0, 11.0]
    assert (got["value"], got["min"], got["max"]) == (3.0, 1.0, 11.0)
    assert pooled["rounds"] == 2 and pooled["seconds"] == 20.0
    assert pooled["workloads"]["tasks_async"] == {"ok": False, "error": "boom", "seconds": 10.0}
    assert run.pool_rounds([one([4.0])])["metrics"]["tasks_async"]["value"] == 4.0


def _fake_run(name: str, rate: float) -> dict[str, Any]:
    return {
        "runtime": name,
        "runtime_version": "9.9",
        "python": "3.11.7",
        "reps": 1,
        "warmup": 1,
        "seconds": 1.0,
        "metrics": {"tasks_async": metric(rate, rate, rate, unit="tasks/s")},
        "workloads": {"tasks_async": {"ok": True}},
    }


def test_compare_script_renders_two_earlier_runs(tmp_path: Path) -> None:
    # bench/compare.py is a thin entry into jray/bench/runner.py; it needs no jray.
    (tmp_path / "jray.json").write_text(json.dumps(_fake_run("jray", 3000.0)))
    (tmp_path / "ray.json").write_text(json.dumps(_fake_run("ray", 2000.0)))
    out = tmp_path / "out" / "results.json"
    r = subprocess.run(
        [sys.executable, "-I", str(ROOT / "bench" / "compare.py"), "--render",
         str(tmp_path / "jray.json"), str(tmp_path / "ray.json"), "--out", str(out)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert set(json.loads(out.read_text())["runs"]) == {"jray", "ray"}
    md = out.with_suffix(".md").read_text()
    assert "| 1.5× |" in md and md.strip() in r.stdout


def test_run_script_usage() -> None:
    r = subprocess.run([sys.executable, "-I", str(ROOT / "bench" / "run.py")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "give --runtime ray|jray, or --both" in r.stderr
    r = subprocess.run([sys.executable, "-I", str(ROOT / "bench" / "run.py"), "--help"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--rounds" in r.stdout


FAKE_RAY = """
import json, os, sys
__version__ = "0.0-fake"
def init(**kwargs):
    with open(os.environ["FAKE_RAY_REPORT"], "w") as f:
        json.dump({"jray": sorted(m for m in sys.modules if m.split(".")[0] == "jray"),
                   "pythonpath": os.environ.get("PYTHONPATH", "")}, f)
    raise RuntimeError("a fake runtime: no cluster here")
def shutdown():
    pass
"""


def test_ray_child_runs_without_jray(tmp_path: Path) -> None:
    # The Ray side of bench/run.py: its child runs jray/bench/runner.py with the
    # repo taken off PYTHONPATH, imports "ray" (a fake here, whose init records
    # what the child had loaded and fails) and still writes its results.
    (tmp_path / "ray.py").write_text(FAKE_RAY)
    report = tmp_path / "report.json"
    out = tmp_path / "ray-result.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]),
               FAKE_RAY_REPORT=str(report))
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--runtime", "ray", "--python",
         sys.executable, "--only", "task_rtt", "--reps", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert r.returncode == 0, r.stderr
    seen = json.loads(report.read_text())
    assert seen["jray"] == []
    # (sys.path itself may hold the repo through an editable install's .pth:
    # what run.py controls is PYTHONPATH)
    assert str(ROOT) not in [os.path.abspath(p) for p in seen["pythonpath"].split(os.pathsep) if p]
    result = json.loads(out.read_text())
    assert result["runtime"] == "ray" and "error" not in result
    assert result["workloads"]["task_rtt"]["ok"] is False
    assert "a fake runtime" in result["workloads"]["task_rtt"]["error"]


# --------------------------------------------------------------------------
# pool and the scaling workloads (issue 19): selection, metrics, report
# --------------------------------------------------------------------------


def test_scaling_workloads_are_opt_in_and_run_alone(workloads: ModuleType) -> None:
    names = lambda ws: [w.name for w in ws]  # noqa: E731
    scaling = ["scale_tasks", "scale_actors", "scale_objects", "scale_nodes", "scale_drivers"]
    default = names(workloads.selected())
    assert "pool" in default and not set(scaling) & set(default)
    assert "put_1gb" not in default and "put_1gb" in names(workloads.selected(large=True))
    assert set(scaling) <= set(names(workloads.selected(scale=True)))
    assert names(workloads.selected(["scale_actors", "pool"])) == ["pool", "scale_actors"]
    # `jray microbenchmark` leaves out what starts a cluster of its own unless named
    assert "client" not in names(workloads.selected(own_cluster=False))
    assert names(workloads.selected(["client"], own_cluster=False)) == ["client"]
    for w in workloads.WORKLOADS:
        if w.name in scaling:
            assert w.scale and w.fresh_session and (w.reps, w.warmup) == (1, 0)
            assert w.timeout_s >= 900  # generous deadlines of their own
            # scale_nodes starts clusters of its own: not in the suite's session
            assert w.in_process is (w.name != "scale_nodes")


def test_scaling_metrics_have_a_row_per_size(workloads: ModuleType) -> None:
    scaling = workloads._scaling
    by_table: dict[str, set[str]] = {}
    for m in workloads.METRICS:
        if m.table.startswith("scale_"):
            rate = m.unit in ("tasks/s", "nodes")  # higher is better only for these
            assert m.better == ("higher" if rate else "lower") and m.row and m.column
            by_table.setdefault(m.table, set()).add(m.row)
    assert by_table == {
        "scale_tasks": {"10,000", "100,000", "1,000,000"},
        "scale_actors": {"100", "300", "1,000"},
        "scale_objects": {"10,000", "100,000", "1,000 × 1 MB"},
        "scale_nodes": {"1", "4", "16", "32"},
        "scale_drivers": {"1", "4", "16"},
    }
    assert set(scaling.NODES_QUICK) == {"1", "4"} and set(scaling.DRIVERS_QUICK) == {"1", "4"}
    assert workloads.METRIC_BY_NAME["scale_nodes_32_gcs_cpu_ms"].unit == "ms/s"
    assert workloads.METRIC_BY_NAME["scale_drivers_16_agg_tps"].better == "higher"
    assert set(scaling.TASKS_QUICK) == {"10k", "100k"}
    assert "scale_tasks_1M_us" in workloads.METRIC_BY_NAME
    head = workloads.METRIC_BY_NAME["scale_actors_1000_pss_mb"].head()
    assert head["table"] == "scale_actors" and head["row"] == "1,000" and head["unit"] == "MB"
    std = workloads.METRIC_BY_NAME["pool_apply_stdlib"].head()
    assert std["table"] == "stdlib" and std["ref"] == "pool_apply"
    assert "table" not in workloads.METRIC_BY_NAME["pool_apply"].head()


def test_scaling_memory_readers(workloads: ModuleType) -> None:
    scaling = workloads._scaling
    assert scaling.rss() > 1 << 20
    assert 0 < scaling.status_bytes("RssAnon") <= scaling.status_bytes("VmRSS")
    assert scaling.pss(os.getpid()) > 0
    assert scaling.rss(2**22 + 12345) == 0  # no such process
    assert scaling.available_memory() > 0


def test_stdlib_pool_helpers_pickle_by_reference(workloads: ModuleType) -> None:
    # the standard library's Pool pickles its functions by reference: they must be
    # module-level; the runtime's Pool gets closures, which cloudpickle ships by value
    import pickle

    for fn in (workloads._stdlib_noop, workloads._stdlib_double, workloads._stdlib_touch):
        assert pickle.loads(pickle.dumps(fn)) is fn
    noop, double, touch = workloads._pool_fns()
    assert "<locals>" in double.__qualname__ and double(21) == 42 and noop() is None


def test_deadlines_and_runtime_timeout() -> None:
    run = load("runner")
    assert run.parse_deadlines("scale_tasks=3600, pool=30") == {"scale_tasks": 3600.0, "pool": 30.0}
    assert run.parse_deadlines(None) == {}
    with pytest.raises(ValueError):
        run.parse_deadlines("scale_tasks")

    def args(**kw: Any) -> Any:
        base = dict(timeout=None, only=None, deadline=None, scale=False, large=False)
        return type("Args", (), {**base, **kw})()

    assert run.runtime_timeout(args()) == 3600.0
    assert run.runtime_timeout(args(timeout=10)) == 10.0
    assert run.runtime_timeout(args(only="scale_tasks")) == 3600.0 + 2400 + 60
    assert run.runtime_timeout(args(only="scale_tasks", deadline="scale_tasks=100")) == 3760.0
    assert run.runtime_timeout(args(scale=True)) > 3600.0 + 2400 + 1800


def _scale_metric(workloads: ModuleType, name: str, value: float | None, reason: str = "") -> dict:
    head = workloads.METRIC_BY_NAME[name].head()
    if value is None:
        return dict(head, ok=False, reason=reason, error=f"failed: {reason}")
    return workloads.summarize([value], workloads.METRIC_BY_NAME[name])


def test_report_pool_against_the_stdlib(report: ModuleType, workloads: ModuleType) -> None:
    def run(name: str, pool: float, stdlib: float) -> dict:
        m = workloads.METRIC_BY_NAME
        return {
            "runtime": name, "reps": 1, "warmup": 1,
            "metrics": {
                "pool_apply": workloads.summarize([pool], m["pool_apply"]),
                "pool_apply_stdlib": workloads.summarize([stdlib], m["pool_apply_stdlib"]),
            },
            "workloads": {"pool": {"ok": True}},
        }

    md = report.markdown({"machine": {}, "runs": {"jray": run("jray", 3000.0, 5000.0),
                                                  "ray": run("ray", 1000.0, 4000.0)}})
    main, _, rest = md.partition("## multiprocessing.Pool against the standard library's")
    # the jray/Ray row in the main table, with its target; the stdlib figure only below
    assert "| Pool: 5,000 `apply_async` (no-op), then get all | calls/s | 3,000 | 1,000 | 3× |" in main
    assert "stdlib Pool" not in main
    assert "Targets met: 1 of 1 (24 more not measured in this run)." in main
    assert (
        "| Pool: 5,000 `apply_async` (no-op), then get all | calls/s | 3,000 | 5,000 | 0.6× | "
        "1,000 | 4,000 | 0.25× | ≥ 0.5× stdlib | met |" in rest
    )
    assert "Targets met (jray/stdlib): 1 of 1." in rest


def test_report_scaling_tables(report: ModuleType, workloads: ModuleType) -> None:
    def run(name: str, us: float, failed_1m: str | None) -> dict:
        metrics = {
            "scale_tasks_10k_us": _scale_metric(workloads, "scale_tasks_10k_us", us),
            "scale_tasks_10k_driver_kb": _scale_metric(workloads, "scale_tasks_10k_driver_kb", 2.0),
        }
        if failed_1m:
            metrics["scale_tasks_1M_us"] = _scale_metric(workloads, "scale_tasks_1M_us", None,
                                                         failed_1m)
        return {"runtime": name, "runtime_version": "?", "python": "?", "reps": 1, "warmup": 0,
                "metrics": metrics,
                "workloads": {"scale_tasks": {"ok": True}}}

    runs = {"jray": run("jray", 200.0, "memory"), "ray": run("ray", 800.0, None)}
    md = report.markdown({"machine": {}, "runs": runs})
    # only scaling figures: no main table, a table per scaling workload
    assert "| workload | unit |" not in md and "Targets met" not in md
    assert "- **jray**: jray ?, Python ?, scaling workloads: one run each, no warm-up" in md
    assert "## `scale_tasks`" in md
    assert ("| size | time per task (µs) | driver: peak RSS growth per queued task (KB) |"
            in md)
    assert "| 10,000 | 200 / 800 (0.25×) | 2.00 / 2.00 (1×) |" in md
    assert "| 1,000,000 | failed: memory / — | — |" in md
    assert md.index("| 10,000 |") < md.index("| 1,000,000 |")
    assert "↑" not in md  # no higher-is-better column in this table


def test_report_marks_higher_is_better_columns(report: ModuleType, workloads: ModuleType) -> None:
    def run(name: str, tps: float) -> dict:
        metrics = {k: _scale_metric(workloads, k, v) for k, v in (
            ("scale_nodes_4_reg_ms", 300.0), ("scale_nodes_4_spread_tps", tps))}
        return {"runtime": name, "reps": 1, "warmup": 0, "metrics": metrics,
                "workloads": {"scale_nodes": {"ok": True}}}

    md = report.markdown({"machine": {}, "runs": {"jray": run("jray", 400.0),
                                                  "ray": run("ray", 200.0)}})
    assert "## `scale_nodes`" in md and "except in the columns marked ↑" in md
    assert ("| size | registration per node (start until the GCS sees all alive) (ms) | "
            "10 ms tasks (num_cpus=1), ideal 100/s × nodes (tasks/s) ↑ |") in md
    assert "| 4 | 300 / 300 (1×) | 400 / 200 (2×) |" in md


def test_cpu_seconds_reads_proc() -> None:
    scaling = load("scaling")
    t0 = scaling.cpu_seconds(os.getpid())
    end = time.process_time() + 0.05
    while time.process_time() < end:
        pass
    assert scaling.cpu_seconds(os.getpid()) > t0 >= 0
    assert scaling.cpu_seconds(2**22 + 12345) == 0.0  # no such process
