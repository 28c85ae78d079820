"""The SLURM provider's pure parts, no SLURM needed: the #SBATCH options and
jray start arguments of a node type, the batch script (valid bash, the
token only in its own line), node_config checks; a missing sbatch is a
NodeLaunchError. The real thing runs in tests/slurm/."""

from __future__ import annotations

import json
import subprocess

import pytest

from jray.autoscaler._private import slurm
from jray.autoscaler.node_provider import NodeLaunchError


def test_sbatch_options_ask_for_the_node_types_resources():
    opts = slurm.sbatch_options({"partition": "gpu", "account": "proj", "time": "1:00:00",
                                 "sbatch_args": ["--constraint=a100"]},
                                {"CPU": 8, "GPU": 2, "memory": 3 * 2**30 + 1})
    assert opts == ["--nodes=1", "--ntasks=1", "--no-requeue", "--cpus-per-task=8", "--mem=3073M",
                    "--gres=gpu:2", "--partition=gpu", "--account=proj", "--time=1:00:00",
                    "--constraint=a100"]


def test_start_args_offer_the_same():
    args = slurm.start_args({"CPU": 4, "memory": 2**30, "fast_disk": 1}, {"object_store_memory": 10**9})
    assert args == ["--num-cpus", "4", "--memory", str(2**30), "--num-gpus", "0",
                    "--resources", json.dumps({"fast_disk": 1}), "--object-store-memory", str(10**9)]


def test_batch_script_runs_jray_start_with_the_labels_and_resources(tmp_path):
    fake = tmp_path / "python"  # stands for the interpreter: records what jray start was given
    fake.write_text(f"#!/bin/bash\nprintf '%s\\n' \"$@\" > {tmp_path}/argv\necho \"$JRAY_TOKEN\" > {tmp_path}/token\n")
    fake.chmod(0o755)
    script = slurm.batch_script({"setup": ["export FROM_SETUP=1"], "env": {"A": "x y"}, "python": str(fake)},
                                {"CPU": 2}, gcs_address="127.0.0.1:6379", token="s3cret",
                                labels={"zone": 'a"$(touch /tmp/pwned)`x`'})
    assert script.startswith("#!/bin/bash\n")
    assert "#SBATCH --cpus-per-task=2" in script
    assert [line for line in script.splitlines() if "s3cret" in line] == ["export JRAY_TOKEN=s3cret"]
    res = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30,
                         env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "SLURM_JOB_ID": "7", "TMPDIR": str(tmp_path)})
    assert res.returncode == 0, res.stderr
    argv = (tmp_path / "argv").read_text().splitlines()
    assert argv[:5] == ["-m", "jray.cli", "start", "--address", "127.0.0.1:6379"]
    labels = json.loads(argv[argv.index("--labels") + 1])
    assert labels == {"jray.io/provider-node-id": "7", "zone": 'a"$(touch /tmp/pwned)`x`'}
    assert argv[argv.index("--num-cpus") + 1] == "2" and "--block" in argv
    assert (tmp_path / "token").read_text() == "s3cret\n"
    assert not (tmp_path / "jray-7").exists()  # the node's session directory is removed at the end


def test_node_config_keys_are_checked():
    with pytest.raises(NodeLaunchError, match="node_config.partiton is not a key of the slurm provider"):
        slurm.check_node_config({"partiton": "x"})
    with pytest.raises(NodeLaunchError, match="node_config.env must be a mapping"):
        slurm.check_node_config({"env": ["A=1"]})


def test_unknown_provider_key_is_logged(caplog):
    slurm.SlurmNodeProvider({"type": "slurm", "partition": "x", "node_start_wait_s": 5}, "c")
    assert [r.getMessage() for r in caplog.records] == [
        "provider.partition is not a key of the slurm provider (its keys: log_dir)"]


def test_missing_sbatch_is_a_launch_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("JRAY_TOKEN", "t")
    p = slurm.SlurmNodeProvider({"type": "slurm", "log_dir": str(tmp_path / "logs")}, "c")
    with pytest.raises(NodeLaunchError, match="sbatch not found"):
        p.create_node({}, {}, 1, gcs_address="10.0.0.1:6379", resources={"CPU": 1})
