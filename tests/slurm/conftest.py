"""A real SLURM for the tests of this folder (jray._private.slurm_testing):
slurmctld, munged and one slurmd per node, each node a virtual host of its
own. Skipped, saying why, when not root or SLURM is not installed."""

from __future__ import annotations

import os

import pytest

from jray._private import node as _node
from jray._private import slurm_testing


@pytest.fixture(scope="module")
def slurm():
    reason = slurm_testing.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with slurm_testing.SlurmCluster(nodes=3, cpus=2, memory_mb=2000, kill_wait=15) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def head(slurm):
    """A jray head on the login node (no CPUs: work goes to SLURM's nodes),
    listening on the bridge so the nodes reach it; the environment a monitor
    process would have (SLURM_CONF, JRAY_TOKEN)."""
    handle = _node.start_head(num_cpus=0, ip=slurm.hosts.gateway, object_store_memory=64 * 2**20)
    saved = {k: os.environ.get(k) for k in ("SLURM_CONF", "JRAY_TOKEN")}
    os.environ.update(SLURM_CONF=slurm.conf, JRAY_TOKEN=handle.token)
    try:
        yield handle
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _node.stop_cluster(handle)
