"""SlurmNodeProvider against a real SLURM of three nodes: nodes as jobs
(create, list, tags recovered by a fresh provider, terminate, idempotent),
the raylets that join carry their job id as provider node id, the token
stays out of what squeue/scontrol show, sbatch's errors become
NodeLaunchError, and a job cancelled under a running task gets the task
retried on another node."""

from __future__ import annotations

import json
import os
import time

import pytest

from jray._private import gcs_client
from jray.autoscaler.node_provider import (
    PROVIDER_NODE_ID_LABEL,
    TAG_CLUSTER_NAME,
    TAG_NODE_KIND,
    TAG_NODE_STATUS,
    NodeLaunchError,
)


def _provider(slurm, cluster: str = "demo"):
    from jray.autoscaler._private.slurm import SlurmNodeProvider

    return SlurmNodeProvider({"type": "slurm", "log_dir": os.path.join(slurm.base, "jobs", cluster)}, cluster)


def _joined(head, want: set[str], timeout: float = 60) -> dict[str, str]:
    """Wait until raylets labelled with each provider id in ``want`` are
    alive; provider id -> node id."""
    deadline = time.monotonic() + timeout
    while True:
        nodes = gcs_client.alive_nodes_at(head.gcs_address, head.token, timeout=5)
        seen = {n.labels.get(PROVIDER_NODE_ID_LABEL): n.node_id.hex() for n in nodes}
        if want <= set(seen):
            return {k: v for k, v in seen.items() if k in want}
        if time.monotonic() > deadline:
            raise TimeoutError(f"provider nodes {sorted(want - set(seen))} did not join within {timeout} s")
        time.sleep(0.1)


def _wait(cond, timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.1)


def test_create_list_tags_terminate(slurm, head):
    p = _provider(slurm)
    t0 = time.monotonic()
    ids = p.create_node({"time": "10:00"}, {TAG_NODE_KIND: "worker", TAG_NODE_STATUS: "launching"}, 2,
                        gcs_address=head.gcs_address, resources={"CPU": 2, "memory": 300 * 2**20})
    assert len(ids) == 2 and all(i.isdigit() for i in ids)
    assert p.non_terminated_nodes({TAG_NODE_KIND: "worker"}) == ids
    joined = _joined(head, set(ids))
    took = time.monotonic() - t0
    print(f"\nsbatch -> 2 SLURM nodes joined the cluster: {took:.1f} s")
    assert p.node_tags(ids[0])[TAG_CLUSTER_NAME] == "demo"

    # What an autoscaler that restarts sees: the jobs, their tags, nothing of other clusters.
    p.set_node_tags(ids[0], {TAG_NODE_STATUS: "up"})
    fresh = _provider(slurm)
    _wait(lambda: fresh.non_terminated_nodes({TAG_NODE_STATUS: "up"}) == [ids[0]], 10, "tags from squeue")
    assert fresh.non_terminated_nodes({}) == ids
    assert fresh.node_tags(ids[1])[TAG_NODE_STATUS] == "launching"
    assert _provider(slurm, "other").non_terminated_nodes({}) == []
    assert "slurm job" in fresh.describe_node(ids[0]) and "RUNNING on n" in fresh.describe_node(ids[0])

    # The node offers the type's resources; SLURM gave the job the same.
    nodes = {n.node_id.hex(): n for n in gcs_client.alive_nodes_at(head.gcs_address, head.token)}
    assert dict(nodes[joined[ids[0]]].resources_total)["CPU"] == 2
    job = slurm.run(["scontrol", "show", "job", ids[0]]).stdout
    assert "NumCPUs=2" in job and "MinMemoryNode=300M" in job, job

    # The token is in none of what other users can read of the job.
    shown = (slurm.run(["squeue", "-o", "%all"]).stdout + slurm.run(["scontrol", "show", "job", "-dd"]).stdout
             + slurm.run(["scontrol", "show", "step"], check=False).stdout)
    assert head.token not in shown

    # Terminate: the job ends, its raylet leaves the cluster, its machine is clean; again is no error.
    host = fresh.describe_node(ids[0]).split(" on ")[1].split(")")[0]
    fresh.terminate_node(ids[0])
    fresh.terminate_node(ids[0])
    slurm.wait_job_gone(ids[0], timeout=30)
    _wait(lambda: joined[ids[0]] not in {n.node_id.hex() for n in gcs_client.alive_nodes_at(
        head.gcs_address, head.token)}, 20, "the raylet of the cancelled job is still alive")
    _wait(lambda: not slurm.node_processes(host) and not slurm.node_shm(host), 20,
          f"left on {host}: {slurm.node_processes(host)} {slurm.node_shm(host)}")
    assert p.non_terminated_nodes({}) == [ids[1]]
    p.terminate_nodes([ids[1]])
    slurm.wait_job_gone(ids[1], timeout=30)
    assert p.non_terminated_nodes({}) == []


def test_bad_partition_is_sbatchs_message(slurm, head):
    p = _provider(slurm)
    with pytest.raises(NodeLaunchError, match="sbatch failed: .*[Ii]nvalid partition"):
        p.create_node({"partition": "nosuch"}, {}, 1, gcs_address=head.gcs_address, resources={"CPU": 1})
    with pytest.raises(NodeLaunchError, match="node_config.partiton is not a key"):
        p.create_node({"partiton": "debug"}, {}, 1, gcs_address=head.gcs_address, resources={"CPU": 1})
    assert p.non_terminated_nodes({}) == []


def test_cancelled_job_retries_its_task_elsewhere(slurm, head):
    import jray

    p = _provider(slurm, "retry")
    ids = p.create_node({}, {TAG_NODE_KIND: "worker"}, 2, gcs_address=head.gcs_address, resources={"CPU": 2})
    _joined(head, set(ids))
    marks = os.path.join(slurm.base, "jobs", "marks")
    os.makedirs(marks, exist_ok=True)
    jray.init(address=head.gcs_address)
    try:
        @jray.remote(num_cpus=2, max_retries=3)
        def work(marks):
            import socket
            import time as t

            host = socket.gethostname()
            open(os.path.join(marks, f"{host}-{t.time()}"), "w").close()
            t.sleep(3)
            return host

        ref = work.remote(marks)
        _wait(lambda: os.listdir(marks), 30, "the task did not start")
        first = os.listdir(marks)[0].split("-")[0]
        where = {json.dumps(p.describe_node(i)): i for i in p.non_terminated_nodes({})}
        victim = next(i for d, i in where.items() if f"on {first})" in d)
        t0 = time.monotonic()
        p.terminate_node(victim)
        assert jray.get(ref, timeout=60) != first  # retried on the other node
        print(f"\nscancel of a running node -> its task's result from the other node: {time.monotonic() - t0:.1f} s")
    finally:
        jray.shutdown()
        p.terminate_nodes(p.non_terminated_nodes({}))
    for i in ids:
        slurm.wait_job_gone(i, timeout=30)
