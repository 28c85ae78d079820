"""bench floor (issue 19): the per-call CPU and system-call profile runs and
reports a figure per process role, and the plain-Python floor beside it."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from jray.bench import floor


def test_roles_from_command_lines():
    assert floor.role("/x/python -m jray._private.gcs --host 1") == "gcs"
    assert floor.role("/x/python -m jray._private.raylet --gcs-address -") == "raylet"
    assert floor.role("/x/python -m jray._private.worker.zygote") == "workers"
    assert floor.role("/r/ray/core/src/ray/gcs/gcs_server --redis_address=") == "gcs"
    assert floor.role("/r/ray/core/src/ray/raylet/raylet --raylet_socket_name=") == "raylet"
    assert floor.role("ray::IDLE") == "workers"
    assert floor.role("/x/python -m jray.dashboard.agent") == "other"


def test_floor_round_trips_cost_cpu_on_both_sides():
    out = floor.floor(calls=300, window=32)
    for mode in ("sync", "async"):
        f = out[mode]
        assert f["calls_per_s"] > 0 and f["total"] >= f["driver"] >= 0
    # pipelining a window of calls costs less per call than one at a time
    assert out["async"]["total"] <= out["sync"]["total"] + 1.0


def test_the_actor_creation_floor_forks_a_process_per_actor_and_leaves_none():
    before = set(floor._descendants(os.getpid()))
    out = floor.floor_create(actors=4, batch=2, repeats=1)
    assert out["actors_per_s"] > 0 and out["actors"] > 0 and out["zygote"] > 0
    assert out["total"] >= out["actors"] + out["zygote"]
    # the actors' processes and the zygote are gone (killed and reaped)
    deadline = time.monotonic() + 10
    while set(floor._descendants(os.getpid())) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not set(floor._descendants(os.getpid())) - before


@pytest.mark.timeout(240)
def test_jray_per_call_profile_names_every_role(tmp_path):
    import jray

    if jray.is_initialized():
        jray.shutdown()
    res = floor.measure_runtime(jray, use_strace=shutil.which("strace") is not None, scale=0.1, repeats=1)
    assert set(res) == {"tasks_async", "actor_sync", "actor_async", "actor_create"}
    for row in res.values():
        assert row["calls_per_s"] > 0
        # CPU is read in clock ticks (10 ms): a small run may show 0 for one role, never for all
        assert row["total"] > 0 and row["total"] >= row["driver"] + row["workers"] - 1e-6  # float sums
        if "syscalls" in row:
            assert row["syscalls"]["driver"] > 0
    assert res["tasks_async"]["driver"] > 0 and res["tasks_async"]["workers"] > 0
    assert not jray.is_initialized()
