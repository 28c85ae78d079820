"""The notebook shape of fate-sharing: a kernel running long tasks on a
shared cluster is killed (as "Restart kernel" or the OOM killer does); the
next kernel attaching to the same cluster gets its work done at once,
instead of queueing behind the dead kernel's orphans."""

from __future__ import annotations

import os

import pytest

from jray.testing import Cluster
from tests.notebook.kernel_harness import Kernel

pytest.importorskip("ipykernel")
pytest.importorskip("jupyter_client")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

LONG_CELL = """\
import time
import jray
jray.init()

@jray.remote
def train():
    time.sleep(600)

runs = [train.remote() for _ in range(2)]   # every CPU of the cluster
time.sleep(1.0)
"""

NEXT_CELL = """\
import time
import jray
jray.init()

@jray.remote
def step(i):
    time.sleep(0.5)
    return i

print(jray.get([step.remote(i) for i in range(8)], timeout=30))
"""


def test_a_killed_kernels_tasks_do_not_hold_up_the_next_kernel(monkeypatch):
    cluster = Cluster(head_node_args={"num_cpus": 2})
    try:
        # As the server extension does: kernels inherit the cluster's address.
        monkeypatch.setenv("JRAY_ADDRESS", cluster.address)
        monkeypatch.setenv("JRAY_TOKEN", cluster.handle.token)
        first = Kernel(cwd=REPO)
        try:
            cell = first.run(LONG_CELL, timeout=60)
            assert cell.status == "ok", cell.reply
        finally:
            first.kc.stop_channels()
            first.km.shutdown_kernel(now=True)  # killed, not shut down: no goodbye to the cluster
        second = Kernel(cwd=REPO)
        try:
            cell = second.run(NEXT_CELL, timeout=90)
            assert cell.status == "ok", (cell.ename, cell.text())
            assert str(list(range(8))) in cell.text()
        finally:
            second.shutdown()
    finally:
        cluster.shutdown()
