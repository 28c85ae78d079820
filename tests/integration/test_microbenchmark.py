"""``jray microbenchmark`` runs the suite's workloads against jray."""

import json
import subprocess
import sys


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
