"""The autoscaler's monitor process with ``provider: {type: slurm}`` on a
real SLURM: a task no node can run makes it submit a SLURM job whose node
joins and runs the task; once the node is idle past idle_timeout_minutes
the job is cancelled and its machine left clean (prints the time from
demand to a joined node and the scale-down time). A job sbatch refuses is
reported with sbatch's message and retried with back-off, not in a tight
loop; a job that runs but never joins is cancelled after node_start_wait_s."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

from jray._private import gcs_client
from jray.autoscaler import sdk
from jray.autoscaler.node_provider import PROVIDER_NODE_ID_LABEL

IDLE_MINUTES = 0.1  # 6 s


def _config(slurm, node_config: dict | None = None, min_workers: int = 0, **provider) -> dict:
    return {
        "cluster_name": "auto",
        "max_workers": 2,
        "idle_timeout_minutes": IDLE_MINUTES,
        "provider": {"type": "slurm", "log_dir": os.path.join(slurm.base, "jobs", "auto"), **provider},
        "head_node_type": "head",
        "available_node_types": {
            "head": {"resources": {"CPU": 0}, "node_config": {}},
            "cpu2": {"resources": {"CPU": 2}, "min_workers": min_workers, "max_workers": 2,
                     "node_config": {"time": "10:00", **(node_config or {})}},
        },
    }


@contextlib.contextmanager
def _monitor(slurm, head, cfg: dict, **env: str) -> Iterator[str]:
    """The autoscaler's process for ``cfg``; yields its log's path. Stopped
    (SIGTERM) at the end, and every SLURM job left is cancelled."""
    cfg_path = os.path.join(slurm.base, "jobs", f"auto-{time.monotonic_ns()}.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    log_path = cfg_path.replace(".json", ".log")
    with open(log_path, "w") as log:
        monitor = subprocess.Popen([sys.executable, "-m", "jray.autoscaler._private.monitor", "--config", cfg_path,
                                    "--address", head.gcs_address, "--interval", "0.5"],
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env={**os.environ, "JRAY_TOKEN": head.token, "SLURM_CONF": slurm.conf, **env})
    try:
        yield log_path
    finally:
        monitor.send_signal(signal.SIGTERM)
        try:
            monitor.wait(timeout=15)
        except subprocess.TimeoutExpired:
            monitor.kill()
            monitor.wait(timeout=5)
        left = list(slurm.jobs())
        if left:
            slurm.run(["scancel", *left], check=False)
            for j in left:
                slurm.wait_job_gone(j, timeout=30)


def _slurm_nodes(head) -> list[str]:
    return [n.labels[PROVIDER_NODE_ID_LABEL] for n in gcs_client.alive_nodes_at(head.gcs_address, head.token)
            if PROVIDER_NODE_ID_LABEL in n.labels]


def test_scale_up_from_demand_and_down_after_idle(slurm, head):

    with _monitor(slurm, head, _config(slurm)) as log_path:
        _scale_up_and_down(slurm, head, log_path)


def _scale_up_and_down(slurm, head, log_path: str) -> None:
    import jray

    jray.init(address=head.gcs_address)
    try:
        @jray.remote(num_cpus=2)
        def where():
            import socket

            return socket.gethostname()

        t0 = time.monotonic()
        ref = where.remote()  # the head has no CPU: only a new node can run it
        while not _slurm_nodes(head):
            assert time.monotonic() - t0 < 60, open(log_path).read()
            time.sleep(0.1)
        joined = time.monotonic() - t0
        host = jray.get(ref, timeout=60)
        ran = time.monotonic() - t0
        assert host in slurm.node_names
        jobs = slurm.jobs()
        assert len(jobs) == 1, jobs  # one node for one task
        job = next(iter(jobs))
        assert _slurm_nodes(head) == [job]

        t1 = time.monotonic()
        while job in slurm.jobs():
            assert time.monotonic() - t1 < 60, open(log_path).read()
            time.sleep(0.2)
        down = time.monotonic() - t1
        deadline = time.monotonic() + 20  # its raylet has left the cluster, its machine is clean
        while _slurm_nodes(head) or slurm.node_processes(host) or slurm.node_shm(host):
            assert time.monotonic() < deadline, (_slurm_nodes(head), slurm.node_processes(host),
                                                 slurm.node_shm(host))
            time.sleep(0.2)
        log = open(log_path).read()
        assert "launch 1 cpu2" in log and "terminate 1 cpu2" in log and "idle for more than" in log, log
        print(f"\nautoscaler on SLURM: demand -> node joined {joined:.1f} s, task done {ran:.1f} s; "
              f"task done -> job cancelled {down:.1f} s (idle_timeout {IDLE_MINUTES * 60:.0f} s)")
    finally:
        jray.shutdown()


def test_sbatch_refusal_is_reported_and_retried_with_backoff(slurm, head):
    cfg = _config(slurm, {"partition": "nosuch"}, min_workers=1)
    with _monitor(slurm, head, cfg, JRAY_AUTOSCALER_BACKOFF_BASE_S="1") as log_path:
        time.sleep(8)
        status = sdk.get_status(head.gcs_address, head.token)
        log = open(log_path).read()
    assert status is not None and status["failures"], status
    assert "Invalid partition" in status["failures"][-1]["message"], status["failures"]
    tries = log.count("launching a cpu2 node failed")
    # every 0.5 s without back-off (16); with 1, 2, 4 s between tries: 3 or 4
    assert 2 <= tries <= 5, log
    assert not slurm.jobs()


def test_node_that_never_joins_is_cancelled(slurm, head):
    cfg = _config(slurm, {"setup": ["sleep 600"]}, min_workers=1, node_start_wait_s=3)
    with _monitor(slurm, head, cfg, JRAY_AUTOSCALER_BACKOFF_BASE_S="30") as log_path:
        deadline = time.monotonic() + 30
        while not slurm.jobs():
            assert time.monotonic() < deadline, open(log_path).read()
            time.sleep(0.2)
        first = next(iter(slurm.jobs()))
        slurm.wait_job_gone(first, timeout=30)  # cancelled by the autoscaler
        log = open(log_path).read()
    assert "did not join within 3 s" in log, log
