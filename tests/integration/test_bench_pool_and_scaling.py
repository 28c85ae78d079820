"""The ``pool`` and scaling workloads of the benchmark run and report, at tiny sizes.

Each run is a fresh interpreter that loads jray/bench/workloads.py by file
path (as the runner's child does), shrinks the counts and calls ``run_all``
against jray, and against Ray where .venv-ray exists. No timing is checked:
only that every figure is there, positive, and lands in the report's tables.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RAY_PYTHON = ROOT / ".venv-ray" / "bin" / "python"
WORKLOADS = ROOT / "jray" / "bench" / "workloads.py"

TINY = """
import importlib, importlib.util, json, sys
spec = importlib.util.spec_from_file_location("jray_bench_workloads", {workloads!r})
w = sys.modules["jray_bench_workloads"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(w)
w.POOL_COUNTS.update(apply=(40, 40), items=(3000, 3000), large=(3, 3))
w.POOL_LARGE_BYTES = 1024 * 1024
s = w._scaling
s.TASKS.update({{"10k": 200, "100k": 400}})
s.ACTORS.update({{"100": 3, "300": 4}})
s.OBJECTS.update({{"10k": 300}})
s.BIG_OBJECTS.update(count=10)
s.NODES.update({{"4": 2}})
s.NODE_RUN.update(idle_s=1.0, noop=50, spread=5)
s.DRIVERS.update({{"4": 2}})
s.DRIVER_TASKS.update(tasks=100)
{extra}
rt = importlib.import_module({runtime!r})
result = w.run_all(rt, quick=True, reps=1, only={only!r})
with open({out!r}, "w") as f:
    json.dump(result, f)
"""

SCALING = {
    "scale_tasks": {"10k", "100k"},
    "scale_actors": {"100", "300"},
    "scale_objects": {"10k", "1mb"},
}


def _run(python: str, runtime: str, only: list[str], tmp: Path, extra: str = "") -> dict[str, Any]:
    out = tmp / f"{runtime}.json"
    code = TINY.format(workloads=str(WORKLOADS), runtime=runtime, only=only, out=str(out),
                       extra=textwrap.dedent(extra))
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    if runtime == "ray":  # as bench/run.py runs Ray: without the repo on its path
        env.pop("PYTHONPATH", None)
    r = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=600, env=env,
                       cwd=tmp)
    assert r.returncode == 0, r.stderr[-3000:]
    return dict(json.loads(out.read_text()))


def _check(result: dict[str, Any]) -> None:
    for name in ["pool", *SCALING]:
        w = result["workloads"][name]
        assert w["ok"], (name, w["error"])
    metrics = result["metrics"]
    for k in ("pool_apply", "pool_map_small", "pool_map_large", "pool_apply_stdlib",
              "pool_map_small_stdlib", "pool_map_large_stdlib"):
        assert metrics[k]["ok"] and metrics[k]["value"] > 0, k
    for table, sizes in SCALING.items():
        got = {k for k in metrics if k.startswith(table + "_")}
        assert got, table
        assert {k[len(table) + 1 :].split("_")[0] for k in got} == sizes  # quick: those sizes
        for k in got:
            assert metrics[k]["ok"], (k, metrics[k])
            assert metrics[k]["value"] >= 0 and metrics[k]["table"] == table
    # the time figures are positive; the memory ones may be 0 at these sizes
    for k in ("scale_tasks_10k_us", "scale_actors_100_ms", "scale_actors_100_kill_ms",
              "scale_objects_10k_put_us", "scale_objects_1mb_get_us"):
        assert metrics[k]["value"] > 0, k
    assert metrics["scale_actors_300_pss_mb"]["value"] > 0  # an actor's process costs memory
    assert result["workloads"]["scale_tasks"]["notes"]["100k"]["tasks"] == 400


ONLY = ["pool", "scale_tasks", "scale_actors", "scale_objects"]


@pytest.fixture(scope="module")
def jray_result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _run(sys.executable, "jray", ONLY, tmp_path_factory.mktemp("jray"))


def test_pool_and_scaling_workloads_run_on_jray(jray_result: dict[str, Any]) -> None:
    _check(jray_result)
    assert jray_result["workloads"]["pool"]["notes"]["processes"] == 2


def test_report_has_the_stdlib_and_scaling_tables(jray_result: dict[str, Any], tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("_bench_report_it", ROOT / "jray/bench/report.py")
    assert spec and spec.loader
    report = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    md = report.markdown({"machine": {}, "runs": {"jray": jray_result}})
    assert "## multiprocessing.Pool against the standard library's" in md
    for table in SCALING:
        assert f"## `{table}`" in md
    assert "| 1,000 × 1 MB |" in md and "| 100,000 |" in md  # the rows keep the real sizes' names


def test_a_size_stops_when_memory_runs_low(tmp_path: Path) -> None:
    # A floor above any machine's memory: the first size stops at once, is
    # reported as failed: memory, the next as skipped, the workload itself ok.
    result = _run(sys.executable, "jray", ["scale_actors", "scale_tasks", "scale_nodes"], tmp_path,
                  extra="s.MEMORY_FLOOR = 1 << 60")
    m = result["metrics"]
    for k in ("scale_actors_100_ms", "scale_actors_100_pss_mb", "scale_tasks_10k_us",
              "scale_nodes_1_reg_ms", "scale_nodes_1_noop_tps"):
        assert m[k]["ok"] is False and m[k]["reason"] == "memory", k
    assert m["scale_actors_300_ms"]["reason"] == "skipped: memory"
    assert m["scale_nodes_4_gcs_cpu_ms"]["reason"] == "skipped: memory"
    assert result["workloads"]["scale_nodes"]["ok"]
    assert "0 of 1 raylets started" in result["workloads"]["scale_nodes"]["notes"]["1_failed"]
    assert "scale_actors_1000_ms" not in m  # not planned in a quick run
    assert result["workloads"]["scale_actors"]["ok"]
    assert "available memory fell" in result["workloads"]["scale_actors"]["notes"]["100_failed"]


@pytest.mark.skipif(not RAY_PYTHON.exists(), reason="no .venv-ray (bash bench/setup_ray_venv.sh)")
def test_pool_and_scaling_workloads_run_on_ray(tmp_path: Path) -> None:
    _check(_run(str(RAY_PYTHON), "ray", ONLY, tmp_path))


# scale_nodes and scale_drivers at tiny sizes: 1 and 2 raylets, 1 and 2 drivers
# (the rows keep the names of 1 and 4).
NODE_KEYS = ("reg_ms", "gcs_cpu_ms", "others_cpu_ms", "noop_tps", "spread_tps", "spread_nodes")
DRIVER_KEYS = ("agg_tps", "per_tps", "ready_s")


def _check_nodes(result: dict[str, Any]) -> None:
    w = result["workloads"]["scale_nodes"]
    assert w["ok"], w["error"]
    m = result["metrics"]
    for size, nodes in (("1", 1), ("4", 2)):
        for key in NODE_KEYS:
            k = f"scale_nodes_{size}_{key}"
            assert m[k]["ok"] and m[k]["table"] == "scale_nodes", (k, m[k])
            # idle CPU may read 0 over a 1 s window (10 ms ticks); the rest is positive
            assert m[k]["value"] >= 0 if "cpu" in key else m[k]["value"] > 0, k
        assert w["notes"][size]["nodes"] == nodes and w["notes"][size]["gcs_pid"] > 0
        assert 1 <= m[f"scale_nodes_{size}_spread_nodes"]["value"] <= nodes
    assert "scale_nodes_16_reg_ms" not in m  # not planned in a quick run


def _check_drivers(result: dict[str, Any]) -> None:
    w = result["workloads"]["scale_drivers"]
    assert w["ok"], w["error"]
    m = result["metrics"]
    for size, drivers in (("1", 1), ("4", 2)):
        for key in DRIVER_KEYS:
            k = f"scale_drivers_{size}_{key}"
            assert m[k]["ok"] and m[k]["value"] > 0 and m[k]["table"] == "scale_drivers", k
        notes = w["notes"][size]
        assert notes["drivers"] == drivers and notes["tasks_per_driver"] == 100
        # the drivers were this run's processes: counted by the memory watch
        assert notes["processes"] >= 1


def _leftover_drivers() -> list[int]:
    """Processes still running scale_drivers' driver script (the run that
    started them has exited: none may be left)."""
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"BENCH ready" in f.read():
                        out.append(int(pid))
            except OSError:
                pass
    return out


def test_nodes_and_drivers_workloads_run_on_jray(tmp_path: Path) -> None:
    result = _run(sys.executable, "jray", ["scale_nodes", "scale_drivers"], tmp_path)
    _check_nodes(result)
    _check_drivers(result)
    assert not _leftover_drivers()
    spec = importlib.util.spec_from_file_location("_bench_report_nd", ROOT / "jray/bench/report.py")
    assert spec and spec.loader
    report = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    md = report.markdown({"machine": {}, "runs": {"jray": result}})
    assert "## `scale_nodes`" in md and "## `scale_drivers`" in md
    assert "| 4 |" in md and "↑" in md


@pytest.mark.skipif(not RAY_PYTHON.exists(), reason="no .venv-ray (bash bench/setup_ray_venv.sh)")
def test_nodes_workload_runs_on_ray(tmp_path: Path) -> None:
    _check_nodes(_run(str(RAY_PYTHON), "ray", ["scale_nodes"], tmp_path))


@pytest.mark.skipif(not RAY_PYTHON.exists(), reason="no .venv-ray (bash bench/setup_ray_venv.sh)")
def test_drivers_workload_runs_on_ray(tmp_path: Path) -> None:
    _check_drivers(_run(str(RAY_PYTHON), "ray", ["scale_drivers"], tmp_path))
    assert not _leftover_drivers()
