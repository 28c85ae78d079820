"""Live views on a real cluster: the Bokeh views' ``update()`` and data
sources, the full pages (``jray.views.pages``), the inline widget, and the
ClusterMonitor widget. Task events and store stats reach the GCS in
batches, so every check polls with a deadline."""

from __future__ import annotations

import json
import time
from typing import Any

import bokeh
import numpy as np
import pytest
from bokeh.models import DataTable

import jray
from jray._private.worker import global_state
from jray.views import ObjectStoreView, TaskStreamView
from jray.views.pages import VIEWS, page_data, page_html
from jray.views.task_stream import FAILED_OUTLINE
from tests.polling import poll


@jray.remote
def nap(x):
    time.sleep(0.05)
    return x


@jray.remote
def crash():
    raise ValueError("view boom")


@pytest.fixture(scope="module")
def ran(jray_cluster):
    assert jray.get([nap.remote(i) for i in range(4)], timeout=60) == [0, 1, 2, 3]
    with pytest.raises(jray.exceptions.RayTaskError):
        jray.get(crash.remote(), timeout=60)
    return jray_cluster


def _stream(view: TaskStreamView) -> dict[str, list]:
    view.update()
    return dict(view.sources["task_stream"].data)


def _done(data: dict[str, list]) -> bool:
    ours = [s for n, s in zip(data["name"], data["state"], strict=True) if n in ("nap", "crash")]
    # The crash's error line comes from its worker's own event, which may
    # reach the GCS a flush after its owner's (which says where it ran).
    errors = [e for n, e in zip(data["name"], data["error"], strict=True) if n == "crash"]
    return (len(ours) == 5 and data["name"].count("nap") == 4 and all(s in ("FINISHED", "FAILED") for s in ours)
            and all(errors))


def test_task_stream_has_a_bar_per_task_in_its_worker_lane(ran):
    view = TaskStreamView()
    data = poll(lambda: _stream(view), _done, "task stream bars")
    lanes = dict(view.sources["task_lanes"].data)
    assert lanes["lane"] == list(range(len(lanes["label"])))
    pids = {t["task_id"]: t["worker_pid"] for t in jray.util.state.list_tasks(limit=1000)}
    for i, tid in enumerate(data["task_id"]):
        if data["name"][i] not in ("nap", "crash"):
            continue
        assert data["end"][i] >= data["start"][i] > 0
        assert data["worker_pid"][i] == pids[tid]
        assert lanes["label"][data["lane"][i]].endswith(f"pid {pids[tid]}")  # the right lane
    naps = [i for i, n in enumerate(data["name"]) if n == "nap"]
    assert len({data["color"][i] for i in naps}) == 1  # coloured by function
    (c,) = [i for i, n in enumerate(data["name"]) if n == "crash"]
    assert data["failed"][c] and data["state"][c] == "FAILED" and "view boom" in data["error"][c]
    assert data["line_color"][c] == FAILED_OUTLINE and data["line_width"][c] > 1  # failed tasks are marked
    assert not any(data["failed"][i] or data["line_color"][i] == FAILED_OUTLINE for i in naps)


def test_task_stream_queue_and_utilisation(ran):
    view = TaskStreamView()
    poll(lambda: _stream(view), _done, "task stream bars")
    q = view.sources["task_queue"].data
    assert len(q["time"]) > 1 and set(q) >= {"SUBMITTED", "PENDING_ARGS", "PENDING_NODE_ASSIGNMENT", "SCHEDULED"}
    assert max(q["SUBMITTED"]) >= 1  # the tasks sat SUBMITTED at some sample
    u = view.sources["task_util"].data
    assert u["cpus"][0] == 2
    assert max(u["running"]) > 0 and 0 < max(u["utilisation"]) <= 1  # averaged over each step


def test_object_store_view_shows_use_and_largest_object(jray_cluster):
    view = ObjectStoreView()
    arr = np.ones(3_000_000)
    ref = jray.put(arr)
    view.update()
    nodes = view.sources["store_nodes"].data
    assert nodes["used"][0] >= arr.nbytes and nodes["capacity"][0] > nodes["used"][0]
    assert nodes["num_objects"][0] >= 1
    objs = view.sources["store_objects"].data
    assert objs["object_id"][0] == ref.hex() and objs["size"][0] >= arr.nbytes  # largest first
    assert objs["size_text"][0] == "22.9 MiB" and nodes["used_text"][0].endswith(" MiB")  # readable, as the CLI's
    table = next(m for m in view.layout().references() if isinstance(m, DataTable) and m.source is view.sources[
        "store_objects"])
    id_col = next(c for c in table.columns if c.field == "object_id")
    assert "user-select:all" in id_col.formatter.template  # the full id, one click selects it
    assert str(global_state.worker.port) in objs["owner"][0] and objs["owner_pid"][0] > 0
    view.update()
    usage = view.sources["store_usage"].data
    assert len(usage["xs"][0]) == 2 and usage["used"][0][-1] >= arr.nbytes  # history grows
    del ref


def test_page_html_inlines_bokehjs_and_names_the_sources():
    for name, cls in VIEWS.items():
        html = page_html(name, "/jray/views/data?x=1", title="T")
        if cls.PLAIN_HTML:  # the logs page: plain HTML and a script polling the same URL
            assert html.lstrip().lower().startswith("<!doctype html>") and "<title>T</title>" in html
            assert '"/jray/views/data?x=1"' in html and "<script src" not in html
            continue
        assert html.lstrip().lower().startswith("<!doctype html>")
        assert "<script src" not in html and "cdn.bokeh.org" not in html  # BokehJS inlined, no CDN
        assert bokeh.__version__ in html and "Bokeh.embed" in html
        assert '"/jray/views/data?x=1"' in html and "get_model_by_name" in html
        for source in cls.SOURCES:
            assert f'"{source}"' in html
        assert "<title>T</title>" in html


def test_page_data_round_trips_json(ran):
    state: dict = {}
    data = page_data("task_stream", state)
    assert set(data) == set(VIEWS["task_stream"].SOURCES)
    assert json.loads(json.dumps(data)) == data
    again = page_data("object_store", {})
    assert json.loads(json.dumps(again)) == again
    first = page_data("object_store", state)  # another page name in the same state: a new view
    assert isinstance(state["view"], VIEWS["object_store"])
    second = page_data("object_store", state)
    assert len(second["store_usage"]["xs"][0]) == len(first["store_usage"]["xs"][0]) + 1
    with pytest.raises(KeyError, match="task_stream"):
        page_data("nope")


def test_views_with_explicit_address_and_token(ran):
    w = global_state.worker
    data = page_data("object_store", address=jray_cluster_address(ran), token=w.token)
    assert data["store_nodes"]["node_id"]


def jray_cluster_address(ctx: Any) -> str:
    return ctx.address_info["gcs_address"]


# -- widgets with a mock comm (the widget cookiecutter's approach) -------------------------


class DummyComm:
    """Stands in for a kernel comm: records what the widget sends."""

    comm_id = "a-b-c-d"
    kernel = "Truthy"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.messages: list[tuple[Any, Any]] = []
        SENT.append(self)

    def open(self, *args: Any, **kwargs: Any) -> None:
        pass

    def on_msg(self, *args: Any, **kwargs: Any) -> None:
        pass

    def send(self, *args: Any, **kwargs: Any) -> None:
        self.messages.append((args, kwargs))

    def close(self, *args: Any, **kwargs: Any) -> None:
        pass


SENT: list[DummyComm] = []


@pytest.fixture
def mock_comm(monkeypatch):
    import comm

    SENT.clear()
    monkeypatch.setattr(comm, "create_comm", lambda *a, **kw: DummyComm(*a, **kw))
    yield SENT


def _threads(prefix: str) -> list[str]:
    import threading

    return [t.name for t in threading.enumerate() if t.name.startswith(prefix)]


def test_cluster_monitor_shows_nodes_tasks_and_store(ran, mock_comm):
    from jray.widgets import ClusterMonitor

    mon = ClusterMonitor(autostart=False)
    try:
        node_id = jray.util.state.list_nodes()[0]["node_id"]
        panel = mon.panels[node_id]
        # No bar for the logical `memory` resource (reservations, not use: it read "0 B / 16 GiB").
        assert "CPU" in panel.bars and "memory" not in panel.bars and panel.bars["CPU"].progress.max == 2
        assert "workers:" in panel.workers.value and "alive" in mon.header.value
        # The machine's memory in use, as the raylet samples it (not a reservation).
        poll(lambda: (mon.update(), panel.memory.progress.value)[1], lambda v: v > 0, "machine memory bar")
        assert 0 < panel.memory.progress.value <= panel.memory.progress.max
        assert "used on the machine" in panel.memory.label.value and "GiB" in panel.memory.label.value
        ref = jray.put(np.ones(1_000_000))
        poll(lambda: (mon.update(), panel.store.progress.value)[1], lambda v: v >= 8_000_000,
             "store bar after a put")
        assert "object" in panel.store.label.value
        assert panel.store.progress.max == 256 * 1024 * 1024
        poll(lambda: (mon.update(), mon.task_counts)[1],
             lambda c: c.get("FINISHED", 0) >= 4 and c.get("FAILED", 0) >= 1, "tasks by state")
        assert "FAILED" in mon.tasks.value
        assert any(m for c in mock_comm for m in c.messages)  # state went out over the comm
        del ref
    finally:
        mon.close()


def test_cluster_monitor_polls_until_closed(ran, mock_comm):
    from jray.widgets import ClusterMonitor

    mon = ClusterMonitor(period=0.1)
    assert mon.running and _threads("jray-cluster-monitor")
    panel = next(iter(mon.panels.values()))
    ref = jray.put(np.ones(1_500_000))
    poll(lambda: panel.store.progress.value, lambda v: v >= 12_000_000, "store bar moved by the poller")
    mon.close()
    assert not mon.running and not _threads("jray-cluster-monitor")
    assert mon.comm is None
    del ref


def test_cluster_monitor_shows_custom_resources(mock_comm):
    from jray.widgets import NodePanel

    panel = NodePanel("ab" * 16)
    panel.show({"node_id": "ab" * 16, "node_ip": "10.0.0.2", "is_head_node": False,
                "resources_total": {"CPU": 4.0, "GPU": 2.0, "gadget": 3.0, "node:10.0.0.2": 1.0},
                "resources_available": {"CPU": 1.0, "GPU": 1.5, "gadget": 3.0},
                "num_workers": 5, "num_busy_workers": 3, "num_idle_workers": 2, "object_store_used": 1024,
                "object_store_memory": 4096, "num_objects": 2, "spilled_bytes": 10, "pending_leases": 1})
    assert list(panel.bars) == ["CPU", "GPU", "gadget"]
    assert (panel.bars["CPU"].progress.value, panel.bars["CPU"].progress.max) == (3.0, 4.0)
    assert panel.bars["GPU"].progress.value == 0.5 and panel.bars["gadget"].label.value == "0 / 3"
    assert panel.workers.value.startswith("workers: 5 (3 busy, 2 idle)")
    assert "2 objects" in panel.store.label.value and "spilled" in panel.store.label.value
    assert panel.store.label.value.startswith("1.0 KiB / 4.0 KiB")  # the CLI's and sidebar's format
    panel.show({"node_id": "ab" * 16, "node_ip": "10.0.0.2", "resources_total": {"CPU": 1.0, "memory": 2.0**34},
                "resources_available": {"CPU": 1.0, "memory": 2.0**34}, "object_store_used": 368_947,
                "object_store_memory": int(7.06 * 2**30)})
    assert "memory" not in panel.bars and panel.store.label.value.startswith("360.3 KiB / 7.1 GiB")
    panel.close()


def test_inline_task_stream_updates_until_closed(ran, mock_comm):
    from jray.views import object_store, task_stream

    live = task_stream(period=0.1)
    try:
        assert live.running and _threads("jray-TaskStreamView")
        n = len(live.view.sources["task_stream"].data["task_id"])
        assert jray.get(nap.remote(99), timeout=60) == 99
        poll(lambda: len(live.view.sources["task_stream"].data["task_id"]), lambda k: k > n,
             "a new bar from the poller")
        assert any(m for c in mock_comm for m in c.messages)  # document changes went to the frontend
    finally:
        live.close()
    assert not live.running and not _threads("jray-TaskStreamView")
    live.close()  # again (ipywidgets does from __del__): nothing
    store = object_store(period=0.1)
    assert store.running
    store.close()
    assert not _threads("jray-ObjectStoreView")


def test_a_view_polled_from_several_threads(jray_cluster):
    import threading

    view = ObjectStoreView()
    errors: list[BaseException] = []

    def poll_it() -> None:
        try:
            for _ in range(3):
                view.update()
                json.dumps(view.data())
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=poll_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and not any(t.is_alive() for t in threads)
    assert len(view.data()["store_usage"]["xs"][0]) == 12


def test_page_html_data_url_cannot_close_its_script():
    html = page_html("task_stream", 'x"</script><img src=y onerror=alert(1)>')
    assert "</script><img" not in html and "\\u003c/script\\u003e" in html
