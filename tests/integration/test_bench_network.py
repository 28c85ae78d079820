"""The between-machines benchmark (``jray/bench/network.py``) runs and reports,
on jray alone at a tiny size: two virtual hosts, a 10 MB transfer, a few
remote tasks. No timing is checked: only that every figure is there and
sane, that the table has its rows, and that nothing is left behind."""

from __future__ import annotations

import math
import os

import pytest

from jray._private import virtual_hosts as vh
from jray.bench import network

pytestmark = pytest.mark.timeout(240)


def test_network_bench_jray_tiny() -> None:
    reason = vh.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    size = 10 * network.MB
    cfg = network.Config(sizes=[size], reps=2, rtt_n=10, async_n=40, task_reps=1, runtimes=["jray"])
    result = network.run(cfg)
    j = result["jray"]
    assert "error" not in j, j.get("error")

    link = result["raw_link"][str(size)]
    assert link["a_to_b"]["median"] > 0 and link["b_to_a"]["median"] > 0
    assert result["ping_ms"] > 0
    t = j["transfer"][str(size)]
    assert len(t["samples"]) == 2 and all(x > 0 for x in t["samples"])
    assert j["first"]["size"] == size and j["first"]["gbps"] > 0
    mem = j["memory"]
    assert mem["samples"] > 0 and math.isfinite(mem["extra_mib"])
    # the sampler saw the receiving node's store grow (the object landed there, in its /dev/shm)
    assert mem["shm_growth_mib"] > 0
    tasks = j["tasks"]["0"]
    assert tasks["rtt_ms"]["median"] > 0 and tasks["tasks_per_s"]["median"] > 0

    client = j["client"]["0"]  # a driver on a host with no node (a notebook off the cluster)
    assert client["rtt_ms"]["median"] > 0 and client["tasks_per_s"]["median"] > 0

    md = network.table(result)
    assert "client off the cluster: tasks/s, no shaping" in md
    assert "| transfer 10 MB A→B (GB/s) |" in md and "remote tasks/s, no shaping" in md
    if result["netem"] != "ok":
        assert "not run: " in md  # the netem rows say why they did not run
    else:
        assert set(j["tasks"]) == {"0", "1", "10"} and set(j["client"]) == {"0", "1", "10"}
        # the rows ran under the emulation (netem or jray's delay line) and say which
        assert j["tasks"]["10"]["ping_ms"] >= 10.0 and j["tasks"]["1"]["ping_ms"] >= 1.0
        assert j["client"]["10"]["ping_ms"] >= 10.0
        assert f"10 ms RTT ({result['emulation']})" in md
    # nothing of the hosts is left: namespaces, links (VirtualHosts.close in run())
    mine = f"jv{vh._b36(os.getpid(), 5)}"
    assert not [n for n in vh._netns_names() + vh._link_names() if n.startswith(mine)]
