"""``ray.util.metrics`` (issue 20), as Ray documents it: Counter, Gauge and
Histogram with tags, recorded in tasks, actors and the driver; each node
serves them in Prometheus's format on its metrics port (``ray_<name>``, a
``NodeAddress`` label); ``list_metrics`` / ``jray metrics`` gather every
node's. Two raylets on one machine (jray.testing.Cluster)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import pytest

import jray
from jray.testing import Cluster
from jray.util.metrics import Counter, Gauge, Histogram
from jray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from jray.util.state import list_metrics, metrics_prometheus


@pytest.fixture(scope="module")
def cluster():
    jray.shutdown()
    with Cluster(head_node_args={"num_cpus": 1}) as c:
        other = c.add_node(num_cpus=1, resources={"other": 1})
        jray.init(address=c.address)
        try:
            yield c, other
        finally:
            jray.shutdown()


def _poll(fn, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        out = fn()
        if out or time.monotonic() > deadline:
            return out
        time.sleep(0.3)


def test_metrics_from_tasks_actors_and_the_driver_reach_every_view(cluster):
    c, other = cluster

    @jray.remote
    def handle(route):
        requests = Counter("requests", description="requests served", tag_keys=("route",))
        requests.inc(tags={"route": route})
        Histogram("latency_s", boundaries=[0.1, 1.0], tag_keys=("route",)).observe(0.5, tags={"route": route})
        return route

    @jray.remote(resources={"other": 1})
    class Queue:
        def __init__(self):
            self.depth = Gauge("queue_depth", description="items waiting")

        def put(self, n):
            self.depth.set(n)
            return n

    # on the head (the driver's node): its endpoint then holds all three /a points, whichever
    # worker ran them (left free, a task may go to the other node's idle worker)
    on_head = handle.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        jray.get_runtime_context().get_node_id(), soft=False))
    jray.get([on_head.remote("/a") for _ in range(3)] + [on_head.remote("/b")], timeout=60)
    q = Queue.remote()
    jray.get([q.put.remote(5), q.put.remote(7)], timeout=60)
    Counter("driver_events").inc(2)

    def gathered():
        rows = list_metrics()
        by = {(r["name"], tuple(sorted(r["tags"].items()))): r for r in rows}
        want = [("requests", (("route", "/a"),)), ("queue_depth", ()), ("driver_events", ()),
                ("latency_s", (("route", "/a"),))]
        if not all(k in by for k in want):
            return None
        a = sum(r["value"] for r in rows if r["name"] == "requests" and r["tags"] == {"route": "/a"})
        # every point reported: a worker may report between a call's counter and its histogram
        hist = by[("latency_s", (("route", "/a"),))]
        return by if a == 3 and by[("queue_depth", ())]["value"] == 7 and hist.get("count") == 3 else None

    by = _poll(gathered)
    assert by, list_metrics()
    assert by[("driver_events", ())]["value"] == 2 and by[("driver_events", ())]["kind"] == "counter"
    hist = by[("latency_s", (("route", "/a"),))]
    assert hist["kind"] == "histogram" and hist["count"] == 3 and hist["bucket_counts"] == [0, 3, 0]
    assert by[("queue_depth", ())]["node_id"] == other.node_id  # the actor's node

    # each node's own endpoint, in Prometheus's format
    ports = {n["NodeManagerAddress"] + ":" + str(n["MetricsExportPort"]) for n in jray.nodes() if n["Alive"]}
    assert all(not p.endswith(":0") for p in ports)
    texts = [urllib.request.urlopen(f"http://{p}/metrics", timeout=10).read().decode() for p in ports]
    joined = "".join(texts)
    assert 'ray_requests_total{NodeAddress="127.0.0.1",route="/a"}' in joined
    assert "ray_queue_depth" in joined
    assert 'ray_latency_s_bucket{NodeAddress="127.0.0.1",le="1.0",route="/a"} 3.0' in joined
    assert "ray_queue_depth" in metrics_prometheus()

    # the CLI gathers them too
    res = subprocess.run([sys.executable, "-m", "jray.scripts", "metrics", "--address", c.address],
                         capture_output=True, text=True, timeout=60, env={**os.environ, "JRAY_TOKEN": c.handle.token})
    assert res.returncode == 0, res.stderr
    assert "queue_depth" in res.stdout and "requests" in res.stdout


def test_bad_metrics_are_refused_as_ray_does():
    with pytest.raises(ValueError, match="Empty name"):
        Counter("")
    with pytest.raises(TypeError, match="tag_keys should be a tuple"):
        Counter("c", tag_keys=["route"])  # type: ignore[arg-type]
    c = Counter("c", tag_keys=("route",))
    with pytest.raises(ValueError, match="Missing value for tag key"):
        c.inc()
    with pytest.raises(ValueError, match="Unrecognized tag key"):
        c.inc(tags={"route": "/", "other": "x"})
    with pytest.raises(ValueError, match="value must be > 0"):
        c.set_default_tags({"route": "/"}).inc(0)
    with pytest.raises(ValueError, match="positive values"):
        Histogram("h", boundaries=[0, 1])
    with pytest.raises(ValueError, match="strictly increasing"):
        Histogram("h", boundaries=[2, 1])
    assert Histogram("h", boundaries=[1, 2]).info["boundaries"] == [1.0, 2.0]


def test_the_metrics_view_plots_them_over_time(cluster):
    pytest.importorskip("bokeh")
    from jray.jupyter.views import MetricsView
    from jray.jupyter.views.pages import page_data, page_html

    g = Gauge("view_gauge", tag_keys=("kind",))
    view = MetricsView(names=["view_gauge"])
    for v in (1, 5, 3):
        g.set(v, tags={"kind": "x"})
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            view.update()
            latest = view.data()["metric_latest"]
            if latest["value"] and latest["value"][-1] == f"{v:g}":
                break
            time.sleep(0.3)
    series = view.data()["metric_series"]
    assert series["key"] == ["view_gauge{kind=x}@127.0.0.1"]
    ys = series["ys"][0]
    assert ys[-1] == 3 and 5 in ys and len(series["xs"][0]) == len(ys) >= 3  # the history, sampled
    assert "metric_series" in page_html("metrics", data_url="metrics/data")
    assert "metric_latest" in page_data("metrics", {})
