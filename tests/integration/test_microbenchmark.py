"""``jray microbenchmark`` runs the suite's workloads against jray."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_microbenchmark_runs_a_workload_and_writes_json(tmp_path):
    out = tmp_path / "mb.json"
    r = subprocess.run(
        [sys.executable, "-m", "jray.scripts", "microbenchmark", "--quick", "--reps", "1",
         "--only", "task_rtt", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    assert data["workloads"]["task_rtt"]["ok"]
    rtt = [m for k, m in data["metrics"].items() if k.startswith("task_rtt")]
    assert rtt and all(m["ok"] and m["value"] > 0 for m in rtt)
    assert "round trip" in r.stdout.lower() or "rtt" in r.stdout.lower()


def test_microbenchmark_rejects_unknown_workload():
    r = subprocess.run([sys.executable, "-m", "jray.scripts", "microbenchmark", "--only", "nope"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "nope" in r.stderr


CLIENT_METRICS = {"client_task_rtt_ms", "client_tasks", "client_put_100mb", "client_get_100mb",
                  "client_put_get_100mb_ms"}


def test_client_workload_runs_jray_as_a_client(tmp_path):
    # `client` starts a head of its own with `jray start --head` (in a private
    # JRAY_TMPDIR here) and connects this driver as a client (JRAY_CLIENT_MODE).
    out = tmp_path / "mb.json"
    env = dict(os.environ, JRAY_TMPDIR=str(tmp_path / "jray-tmp"))
    r = subprocess.run(
        [sys.executable, "-m", "jray.scripts", "microbenchmark", "--quick", "--reps", "1",
         "--only", "client", "--json", str(out)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    w = data["workloads"]["client"]
    assert w["ok"], w["error"]
    assert w["notes"]["client"] is True and w["notes"]["store_mapped"] is False
    assert all(data["metrics"][k]["ok"] and data["metrics"][k]["value"] > 0 for k in CLIENT_METRICS)
    # the workload stopped the head it started
    stopped = subprocess.run([sys.executable, "-m", "jray.scripts", "status"], capture_output=True,
                             text=True, timeout=60, env=env)
    assert stopped.returncode != 0


RAY_PYTHON = Path(__file__).resolve().parents[2] / ".venv-ray" / "bin" / "python"


@pytest.mark.skipif(not RAY_PYTHON.exists(), reason="no .venv-ray (bash bench/setup_ray_venv.sh)")
def test_client_workload_runs_on_ray_client(tmp_path):
    # The Ray side of the same workload: `ray start --head --ray-client-server-port`
    # and ray.init("ray://..."), in .venv-ray as bench/run.py runs it.
    out = tmp_path / "ray.json"
    r = subprocess.run(
        [sys.executable, str(RAY_PYTHON.parents[2] / "bench" / "run.py"), "--runtime", "ray",
         "--only", "client", "--quick", "--reps", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads(out.read_text())
    w = data["workloads"]["client"]
    assert w["ok"], w["error"]
    assert w["notes"]["ray_client_connected"] is True
    assert all(data["metrics"][k]["ok"] and data["metrics"][k]["value"] > 0 for k in CLIENT_METRICS)
