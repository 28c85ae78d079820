"""deploy/slurm/jray.sbatch's pieces without SLURM: what each node offers
from SLURM's variables (CPUs, GPUs, memory split into store and `memory`),
and the refusal to run outside a job. The whole script runs on a real SLURM
in tests/slurm/test_sbatch.py."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

SBATCH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "deploy", "slurm", "jray.sbatch")


def _node_script() -> str:
    text = open(SBATCH).read()
    m = re.search(r"^read -r -d '' NODE_SCRIPT <<'EOF'\n(.*?)^EOF$", text, re.S | re.M)
    assert m, "NODE_SCRIPT not found in jray.sbatch"
    return m.group(1)


def _node_args(env: dict[str, str]) -> str:
    res = subprocess.run(["bash", "-c", _node_script() + "\nnode_args"], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", **env}, timeout=10)
    assert res.returncode == 0, res.stderr
    return " ".join(res.stdout.split())


MB = 1024 * 1024


@pytest.mark.parametrize("env, want", [
    ({}, "--num-cpus 1 --num-gpus 0"),
    ({"SLURM_CPUS_ON_NODE": "4", "SLURM_GPUS_ON_NODE": "2", "SLURM_MEM_PER_NODE": "1000"},
     f"--num-cpus 4 --num-gpus 2 --object-store-memory {1000 * MB * 3 // 10} --memory {1000 * MB - 1000 * MB * 3 // 10}"),
    ({"SLURM_CPUS_ON_NODE": "2", "CUDA_VISIBLE_DEVICES": "0,1,3"}, "--num-cpus 2 --num-gpus 3"),
    ({"SLURM_CPUS_ON_NODE": "2", "CUDA_VISIBLE_DEVICES": "NoDevFiles"}, "--num-cpus 2 --num-gpus 0"),
    ({"SLURM_CPUS_ON_NODE": "4", "SLURM_MEM_PER_CPU": "100"},
     f"--num-cpus 4 --num-gpus 0 --object-store-memory {400 * MB * 3 // 10} --memory {400 * MB - 400 * MB * 3 // 10}"),
])
def test_each_node_offers_what_slurm_gave(env, want):
    assert _node_args(env) == want


def test_outside_a_job_it_says_how_to_run_it():
    res = subprocess.run(["bash", SBATCH, "python", "x.py"], capture_output=True, text=True, timeout=10,
                         env={"PATH": os.environ["PATH"]})
    assert res.returncode == 2
    assert "run me with sbatch" in res.stderr
