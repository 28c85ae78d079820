"""No stale state after drivers leave (issue 18, item 5): a driver that
ends (cleanly, with tasks still running or queued) leaves no task shown
running or scheduled forever, and the objects it owned leave the store."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

import jray
from jray.testing import Cluster
from jray.util.state import list_objects, list_tasks

DRIVER = textwrap.dedent("""
    import time
    import numpy as np
    import jray
    jray.init()

    @jray.remote
    def forever():
        time.sleep(600)

    refs = [forever.remote() for _ in range(3)]   # one runs (1 CPU), two wait
    kept = jray.put(np.ones(5_000_000, dtype=np.uint8))  # 5 MB in the store, never read
    print(kept.hex(), flush=True)
    time.sleep(2)
    jray.shutdown()
""")


@pytest.fixture
def cluster():
    jray.shutdown()
    with Cluster(head_node_args={"num_cpus": 1}) as c:
        yield c


def _poll(fn, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        out = fn()
        if out or time.monotonic() > deadline:
            return out
        time.sleep(0.3)


def test_a_finished_driver_leaves_no_running_tasks_nor_objects(cluster):
    env = {**os.environ, "JRAY_ADDRESS": cluster.address, "JRAY_TOKEN": cluster.handle.token}
    res = subprocess.run([sys.executable, "-c", DRIVER], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    oid = res.stdout.strip().splitlines()[-1]
    kw = {"address": cluster.address, "token": cluster.handle.token}

    def settled():
        rows = [t for t in list_tasks(detail=True, **kw) if t["name"] == "forever"]
        return rows if len(rows) == 3 and all(t["state"] == "FAILED" for t in rows) else None

    rows = _poll(settled)
    assert rows, list_tasks(detail=True, **kw)
    assert all("job ended" in (t["error_message"] or "") for t in rows)
    assert _poll(lambda: oid not in {o["object_id"] for o in list_objects(**kw)}), list_objects(**kw)
