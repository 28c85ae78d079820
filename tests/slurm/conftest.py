"""A real SLURM for the tests of this folder (jray._private.slurm_testing):
slurmctld, munged and one slurmd per node, each node a virtual host of its
own. Skipped, saying why, when not root or SLURM is not installed."""

from __future__ import annotations

import pytest

from jray._private import slurm_testing


@pytest.fixture(scope="module")
def slurm():
    reason = slurm_testing.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with slurm_testing.SlurmCluster(nodes=3, cpus=2, memory_mb=2000, kill_wait=15) as cluster:
        yield cluster
