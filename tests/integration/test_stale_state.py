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


QUICK_DRIVER = textwrap.dedent("""
    import os, sys
    import jray
    jray.init(log_to_driver=False)

    @jray.remote
    def small():
        return b"ok"

    refs = [small.remote() for _ in range(20)]
    if sys.argv[1] == "exit-now":  # its lease requests are still in flight
        os._exit(0)
    assert jray.get(refs, timeout=30) == [b"ok"] * 20
    jray.shutdown()
""")


def test_drivers_that_come_and_go_leave_every_cpu_free():
    """A driver's lease that was being granted (its worker still starting)
    when the driver ended was held for no one: the next drivers' tasks
    waited forever for a CPU (seen in the bench's scale_drivers)."""
    jray.shutdown()
    with Cluster(head_node_args={"num_cpus": 2}) as c:
        env = {**os.environ, "JRAY_ADDRESS": c.address, "JRAY_TOKEN": c.handle.token}

        def drivers(*modes):
            procs = [subprocess.Popen([sys.executable, "-c", QUICK_DRIVER, m], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for m in modes]
            for p in procs:
                _, err = p.communicate(timeout=60)
                assert p.returncode == 0, err[-3000:]

        for _ in range(4):
            drivers("get")                # its workers end with it (fate sharing) ...
            drivers("get", "get")         # ... while these ask for new ones
            drivers("exit-now", "get")    # one gone with its requests in flight
        c.connect()
        try:
            assert _poll(lambda: jray.available_resources().get("CPU") == 2.0, timeout=30), \
                jray.available_resources()
        finally:
            jray.shutdown()
