"""Worker logs and per-node machine stats on a real cluster (issue 18):
``jray.util.state.list_logs``/``get_log`` (a task's output in its worker's
log, tails, following until the worker exits, refused names), ``jray logs``
and ``jray status``, node CPU/memory and worker RSS in the state API, the
nodes view and the logs page's data. Stats travel in heartbeats and are
sampled at most once a second, so checks poll with a deadline."""

from __future__ import annotations

import queue
import threading
import uuid

import numpy as np
import pytest

import jray
from jray._private.worker import global_state
from jray.scripts import main as cli_main
from jray.util.state import get_log, list_logs, list_nodes, list_workers
from tests.polling import poll

MB = 2**20


@jray.remote
def chatty(tag: str) -> int:
    import os
    import sys

    print(f"task says {tag}")
    print(f"task warns {tag}", file=sys.stderr)
    return os.getpid()


@jray.remote
class Holder:
    def __init__(self) -> None:
        self.arrays: list[np.ndarray] = []

    def say(self, *lines: str) -> int:
        import os

        for line in lines:
            print(line)
        return os.getpid()

    def grow(self, mb: int) -> int:
        self.arrays.append(np.ones(mb * MB // 8))  # written: resident
        return sum(a.nbytes for a in self.arrays)


@pytest.fixture(scope="module")
def cluster(jray_cluster):
    return jray_cluster


def _address(ctx) -> str:
    return ctx.address_info["gcs_address"]


def test_a_tasks_output_is_in_its_workers_log(cluster):
    tag = uuid.uuid4().hex[:8]
    ref = chatty.remote(tag)
    pid = jray.get(ref, timeout=60)
    tid = ref.task_id().hex()
    # The task row (with its worker) reaches the GCS in a batch.
    lines = poll(lambda: _try_log(task_id=tid), lambda ls: ls is not None and f"task says {tag}" in ls,
                 "the task's output through get_log(task_id=...)")
    assert f"task warns {tag}" in lines  # stdout and stderr: one file
    assert f"task says {tag}" in list(get_log(pid=pid))
    node = list_nodes()[0]["node_id"]
    assert f"task says {tag}" in list(get_log(node_id=node, pid=pid, tail=50))
    groups = list_logs()
    assert {"worker", "raylet", "gcs_server"} <= set(groups)
    mine = [w for w in list_workers(detail=True) if w["pid"] == pid][0]
    assert mine["log_file"] in groups["worker"]
    assert f"task says {tag}" in list(get_log(filename=mine["log_file"]))
    assert list_logs(glob_filter="worker-*") == {"worker": groups["worker"]}
    assert any("registered" in line for line in get_log(filename="gcs.log", tail=100))


def _try_log(**kw):
    try:
        return list(get_log(**kw))
    except FileNotFoundError:
        return None


def test_tail_and_follow_an_actors_log(cluster):
    h = Holder.remote()
    try:
        pid = jray.get(h.say.remote(*(f"line {i}" for i in range(10))), timeout=60)
        aid = h._actor_id.hex()
        assert list(get_log(actor_id=aid, tail=3)) == ["line 7", "line 8", "line 9"]
        assert list(get_log(actor_id=aid, tail=0)) == []
        assert list(get_log(pid=pid))[-10:] == [f"line {i}" for i in range(10)]

        got: queue.Queue = queue.Queue()

        def follow() -> None:
            try:
                for line in get_log(actor_id=aid, tail=1, follow=True, _interval=0.1):
                    got.put(line)
            except Exception as e:  # noqa: BLE001 - reported below
                got.put(e)
            got.put(None)  # the end: the worker exited

        t = threading.Thread(target=follow, daemon=True)
        t.start()
        assert got.get(timeout=30) == "line 9"
        jray.get(h.say.remote("later 1", "later 2"), timeout=60)
        assert [got.get(timeout=30), got.get(timeout=30)] == ["later 1", "later 2"]
    finally:
        jray.kill(h)
    # Following a worker's log ends once the worker has exited.
    t.join(30)
    assert not t.is_alive(), "get_log(follow=True) did not end after the worker exited"
    rest = []
    while not got.empty():
        rest.append(got.get())
    assert rest[-1] is None and not any(isinstance(x, Exception) for x in rest), rest
    assert "later 2" in list(get_log(pid=pid))  # an exited worker's log is still there


@pytest.mark.parametrize("name, message", [
    ("../cluster.json", "'..' is not allowed"),
    ("/etc/passwd", "an absolute path"),
    ("logs/../../cluster.json", "'..' is not allowed"),
])
def test_bad_file_names_are_refused(cluster, name, message):
    with pytest.raises(ValueError, match=message):
        list(get_log(filename=name))


def test_unknown_logs_say_what_is_missing(cluster):
    with pytest.raises(FileNotFoundError, match="no log file 'nope.log'"):
        list(get_log(filename="nope.log"))
    with pytest.raises(FileNotFoundError, match="no task"):
        list(get_log(task_id="ab" * 24))
    with pytest.raises(FileNotFoundError, match="no node of the cluster started a worker with pid 1"):
        list(get_log(pid=1))
    with pytest.raises(FileNotFoundError, match="no live node"):
        list(get_log(node_id="ffffffff", filename="gcs.log"))
    with pytest.raises(ValueError, match="exactly one of"):
        list(get_log(filename="gcs.log", pid=1))
    with pytest.raises(ValueError, match="exactly one of"):
        list(get_log())


def test_jray_logs_command(cluster, capsys, monkeypatch):
    monkeypatch.setenv("JRAY_TOKEN", global_state.worker.token)
    addr = _address(cluster)
    tag = uuid.uuid4().hex[:8]
    ref = chatty.remote(tag)
    pid = jray.get(ref, timeout=60)
    assert cli_main(["logs", "--address", addr]) == 0
    out = capsys.readouterr().out
    assert "=== worker ===" in out and "=== raylet ===" in out and f"worker pid {pid}" in out
    assert cli_main(["logs", "worker", "--pid", str(pid), "--address", addr]) == 0
    assert f"task says {tag}" in capsys.readouterr().out
    tid = ref.task_id().hex()
    poll(lambda: (cli_main(["logs", "task", "--id", tid, "--address", addr]), capsys.readouterr())[1],
         lambda r: f"task says {tag}" in r.out, "jray logs task --id")
    assert cli_main(["logs", "worker", "--task-id", tid, "--tail", "1", "--address", addr]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"task warns {tag}"
    assert cli_main(["logs", "gcs.log", "--tail", "2", "--address", addr]) == 0  # one match: printed
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert cli_main(["logs", "../cluster.json", "--address", addr]) == 1
    assert "'..' is not allowed" in capsys.readouterr().err
    assert cli_main(["logs", "worker", "--address", addr]) == 1
    assert "needs one of --pid" in capsys.readouterr().err


def test_node_cpu_memory_and_worker_rss(cluster):
    n = poll(lambda: list_nodes(detail=True)[0], lambda n: n["memory_total"] > 0, "node memory")
    assert 0 < n["memory_used"] <= n["memory_total"]
    assert 0.0 <= n["cpu_percent"] <= 100.0
    h = Holder.remote()
    try:
        pid = jray.get(h.say.remote(), timeout=60)

        def row() -> dict:
            return next(w for w in list_workers(detail=True) if w["pid"] == pid)

        before = poll(row, lambda w: (w["rss_bytes"] or 0) > 0, "the actor worker's RSS")
        assert before["state"] == "ACTOR" and before["actor_id"] == h._actor_id.hex()
        assert jray.get(h.grow.remote(50), timeout=60) == 50 * MB
        after = poll(row, lambda w: w["rss_bytes"] >= before["rss_bytes"] + 40 * MB,
                     "RSS grown by the 50 MB array")
        assert after["rss_bytes"] > 10 * MB
        assert 0.0 <= after["cpu_percent"]
        brief = [w for w in list_workers() if w["pid"] == pid][0]
        assert {"state", "rss_bytes"} <= set(brief)
    finally:
        jray.kill(h)


def test_jray_status_shows_node_memory(cluster, capsys, monkeypatch):
    monkeypatch.setenv("JRAY_TOKEN", global_state.worker.token)
    poll(lambda: list_nodes(detail=True)[0], lambda n: n["memory_total"] > 0, "node memory")
    assert cli_main(["status", "--address", _address(cluster)]) == 0
    out = capsys.readouterr().out
    assert "MEMORY used" in out and "HOST CPU" in out
    n = list_nodes(detail=True)[0]
    from jray._private.formatting import fmt_bytes

    assert f"/ {fmt_bytes(n['memory_total'])} (" in out


def test_nodes_view_has_samples_and_worker_memory(cluster):
    from jray.views import NodesView
    from jray.views.pages import page_html

    h = Holder.remote()
    try:
        pid = jray.get(h.say.remote(), timeout=60)
        jray.get(h.grow.remote(50), timeout=60)
        view = NodesView(window_s=60)

        def data() -> dict:
            view.update()
            return view.data()

        def ready(d: dict) -> bool:
            w = d["worker_memory"]
            return len(d["node_series"]["xs"][0]) >= 2 and pid in w["pid"] and w["rss"][w["pid"].index(pid)] >= 50 * MB

        d = poll(data, ready, "two samples and the actor's bar, with its 50 MB")
        s = d["node_series"]
        assert all(0 <= c <= 100 for c in s["cpu"][0]) and all(0 < m <= s["memory_total"][0] for m in s["memory"][0])
        assert s["store_capacity"][0] == 256 * MB
        w = d["worker_memory"]
        i = w["pid"].index(pid)
        assert w["rss"][i] >= 50 * MB and w["rss_text"][i].endswith("MiB") and "actor Holder" in w["label"][i]
        assert w["y"] == list(range(len(w["y"]))) and w["rss"] == sorted(w["rss"], reverse=True)
        assert "/" in d["node_latest"]["memory_text"][0]
        layout = view.layout()
        from bokeh.models import Plot

        names = {m.name for m in layout.select({"type": Plot})}
        assert {"node_cpu_figure", "node_memory_figure", "node_store_figure", "worker_memory_figure"} <= names
        html = page_html("nodes", "/data")
        assert "worker_memory" in html and "node_series" in html
    finally:
        jray.kill(h)


def test_logs_page_data(cluster):
    from jray.views.pages import page_data, page_html

    h = Holder.remote()
    try:
        tag = uuid.uuid4().hex[:8]
        pid = jray.get(h.say.remote(f"hello {tag}", f"bye {tag}"), timeout=60)
        st: dict = {}

        def mine(d: dict) -> dict | None:
            return next((w for w in d["nodes"][0]["workers"] if w["pid"] == pid and w["rss_text"]), None)

        d = poll(lambda: page_data("logs", st), mine, "the actor's worker with its memory")
        assert d["log"] is None
        (node,) = d["nodes"]
        w = mine(d)
        assert w is not None
        assert w["state"] == "ACTOR" and w["what"].startswith("actor Holder") and w["rss_text"].endswith("MiB")
        assert any(f["file"] == "gcs.log" for f in node["files"])
        d = page_data("logs", st, params={"node_id": node["node_id"], "pid": str(pid), "tail": "2"})
        assert d["log"]["lines"] == [f"hello {tag}", f"bye {tag}"] and d["log"]["error"] is None
        d = page_data("logs", st, params={"node_id": node["node_id"], "file": "../cluster.json"})
        assert "'..' is not allowed" in d["log"]["error"] and d["log"]["lines"] == []
        d = page_data("logs", st, params={"node_id": node["node_id"], "pid": "1"})
        assert "no worker with pid 1" in d["log"]["error"]
        html = page_html("logs", "/jray/api/views/logs")
        assert 'id="jray-log-search"' in html and '"/jray/api/views/logs"' in html and "<script src" not in html
    finally:
        jray.kill(h)
    # The exited worker stays listed, its log readable.
    d = poll(lambda: page_data("logs", st), lambda d: any(x["pid"] == pid for x in d["nodes"][0]["exited"]),
             "the actor's worker among the exited")
    node_id = d["nodes"][0]["node_id"]
    d = page_data("logs", st, params={"node_id": node_id, "pid": str(pid), "tail": "5"})
    assert d["log"]["lines"][-1] == f"bye {tag}"
