"""``jray.views.tables()`` / ``logs()`` inline (issue 18): where the kernel
finds the extension's pages, the error where none serves it, and the frame's
HTML (no cluster, no server: the browser side is
tests/serverext/test_browser_inline.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import jray.views
from jray.exceptions import DashboardUnavailableError, RayError
from jray.jupyter.serverext.cluster import HeadOptions, ServerCluster
from jray.jupyter.views import inline


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("JRAY_CLUSTER_FILE", "JRAY_DASHBOARD_URL", "JRAY_ADDRESS"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(inline, "_driver_address", lambda: "")


def _served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str = "/user/me/jray/views/",
            address: str = "10.0.0.5:6380") -> None:
    path = tmp_path / "jray-cluster.json"
    path.write_text(json.dumps({"env": {"JRAY_ADDRESS": address, "JRAY_TOKEN": "secret-token"}, "stopped": "",
                                "dashboard_url": url}))
    monkeypatch.setenv("JRAY_CLUSTER_FILE", str(path))


def test_no_jupyter_server_is_a_clear_error(no_server: None) -> None:
    for show in (jray.views.tables, jray.views.logs):
        with pytest.raises(DashboardUnavailableError) as e:
            show()
        assert isinstance(e.value, RayError) and isinstance(e.value, RuntimeError)
        assert "no such server started this process" in str(e.value)
        assert "jray.views.progress()" in str(e.value)  # what works instead


def test_the_frame_is_the_servers_page_by_path_without_the_token(no_server: None, monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    _served(monkeypatch, tmp_path)
    frame = jray.views.tables("actors", "state=ALIVE name=Keeper", height=400)
    assert frame.url == "/user/me/jray/views/tables"
    assert frame.src == "/user/me/jray/views/tables#tab=actors&q=state%3DALIVE+name%3DKeeper"
    html = frame._repr_html_()
    assert '<iframe src="/user/me/jray/views/tables#tab=actors&amp;q=state%3DALIVE+name%3DKeeper"' in html
    assert "height:400px" in html and "secret-token" not in html
    assert "jray: tasks, actors, jobs page at /user/me/jray/views/tables" in repr(frame)
    logs = jray.views.logs(pid=4242, node_id="ab" * 16, search="/err(or)?/")
    assert logs.src == "/user/me/jray/views/logs#node_id=" + "ab" * 16 + "&pid=4242&q=%2Ferr%28or%29%3F%2F"
    assert jray.views.logs().src == "/user/me/jray/views/logs"  # the worker list, nothing selected
    with pytest.raises(ValueError, match="tasks, actors or jobs"):
        jray.views.tables("nodes")


def test_the_environment_is_the_fallback_of_the_cluster_file(no_server: None,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JRAY_DASHBOARD_URL", "/base/jray/views")
    assert jray.views.tables().url == "/base/jray/views/tables"


def test_a_driver_of_another_cluster_is_told(no_server: None, monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    _served(monkeypatch, tmp_path, address="10.0.0.5:6380")
    monkeypatch.setattr(inline, "_driver_address", lambda: "127.0.0.1:7000")
    with pytest.raises(DashboardUnavailableError, match=r"server's jray cluster \(10.0.0.5:6380\).*127.0.0.1:7000"):
        jray.views.tables()
    monkeypatch.setattr(inline, "_driver_address", lambda: "10.0.0.5:6380")
    assert jray.views.tables().url.endswith("/tables")  # the same cluster: fine


def test_the_server_writes_the_pages_folder_into_the_kernels_cluster_file(tmp_path: Path) -> None:
    path = tmp_path / "cluster.json"
    ServerCluster(HeadOptions(), dashboard_url="/hub/user/me/jray/views/", cluster_file=str(path)).write_cluster_file()
    assert json.loads(path.read_text())["dashboard_url"] == "/hub/user/me/jray/views/"


def test_logs_of_a_pid_finds_its_node(no_server: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A worker on another node: the page is opened on that node (its raylet
    serves the log); a pid found on two machines, or nowhere, leaves the
    choice to the page (the head)."""
    _served(monkeypatch, tmp_path)
    rows = [{"pid": 4242, "node_id": "cd" * 16}, {"pid": 77, "node_id": "ab" * 16},
            {"pid": 77, "node_id": "ef" * 16}]
    monkeypatch.setattr(inline, "_workers", lambda: rows)
    assert jray.views.logs(pid=4242).src == "/user/me/jray/views/logs#node_id=" + "cd" * 16 + "&pid=4242"
    assert jray.views.logs(pid=77).src == "/user/me/jray/views/logs#pid=77"
    assert jray.views.logs(pid=5).src == "/user/me/jray/views/logs#pid=5"
    # given, the node is kept
    assert jray.views.logs(pid=4242, node_id="ab" * 16).src.startswith("/user/me/jray/views/logs#node_id=" + "ab" * 16)

