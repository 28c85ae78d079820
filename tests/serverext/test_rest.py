"""The REST API and the dashboard pages of the server extension, through
jupyter_server's pytest plugin, on a server attached to a head the test owns."""

from __future__ import annotations

import asyncio
import json
import time

import psutil
import pytest
import tornado.httpclient

from tests.serverext.conftest import EXT, run_driver

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config(head):
    return {"ServerApp": {"jpserver_extensions": {EXT: True}},
            "JrayExtension": {"mode": "attach", "address": head.gcs_address, "token": head.token,
                              "worker_num_cpus": 1, "worker_object_store_memory": 64 * 1024 * 1024}}


async def get_json(jp_fetch, *path, method="GET", **kw):
    if method != "GET" and "body" not in kw:
        kw["body"] = b"" if method == "POST" else None
    r = await jp_fetch("jray", *path, method=method, **kw)
    return r.code, json.loads(r.body) if r.body else None


async def until(fn, what, timeout=30.0):
    """Poll the coroutine function ``fn`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        got = await fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.3)


async def test_status_and_nodes(jp_fetch, head):
    code, st = await get_json(jp_fetch, "api", "status")
    assert code == 200
    assert st["mode"] == "attach" and st["state"] == "running" and not st["owned"]
    assert st["address"] == head.gcs_address
    assert st["nodes_alive"] == 1 and st["resources_total"]["CPU"] == 1.0
    assert {"task_stream", "object_store", "metrics", "nodes", "logs", "progress", "tables"} <= set(st["views"])
    assert st["views"]["task_stream"].endswith("/jray/views/task_stream")
    assert "jray.init()" in st["snippet"]
    _, nodes = await get_json(jp_fetch, "api", "nodes")
    [n] = nodes["nodes"]
    assert n["is_head_node"] and n["state"] == "ALIVE" and not n["added_by_server"]
    assert n["node_id"] == head.head.node_id


async def test_tasks_summary_and_views(jp_fetch, head):
    await asyncio.to_thread(run_driver, head.gcs_address, head.token, """
        @jray.remote
        def square(x):
            return x * x
        assert jray.get([square.remote(i) for i in range(3)]) == [0, 1, 4]
    """)

    async def finished():
        _, s = await get_json(jp_fetch, "api", "tasks")
        return s if s["by_state"].get("FINISHED", 0) >= 3 else None

    summary = await until(finished, "3 finished tasks in jray/api/tasks")
    assert summary["cluster"]["summary"]["square"]["state_counts"]["FINISHED"] == 3

    page = await jp_fetch("jray", "views", "task_stream")
    html = page.body.decode()
    assert "Bokeh" in html and "/jray/api/views/task_stream" in html
    index = (await jp_fetch("jray", "views")).body.decode()
    assert "jray/views/object_store" in index
    for name in ("task_stream", "object_store"):
        code, data = await get_json(jp_fetch, "api", "views", name)
        assert code == 200 and isinstance(data, dict) and data

    async def bars():  # workers report when each task ran in their own batches, a little later
        _, data = await get_json(jp_fetch, "api", "views", "task_stream")
        return data["task_stream"]["name"].count("square") == 3

    await until(bars, "3 bars in the task-stream data")


async def test_auth_required(jp_fetch):
    no_auth = {"Authorization": ""}
    for path in (("api", "status"), ("api", "nodes"), ("api", "tasks"), ("api", "views", "task_stream")):
        with pytest.raises(tornado.httpclient.HTTPClientError) as e:
            await jp_fetch("jray", *path, headers=no_auth)
        assert e.value.code in (401, 403), path
    for path in (("api", "start"), ("api", "stop"), ("api", "nodes")):
        with pytest.raises(tornado.httpclient.HTTPClientError) as e:
            await jp_fetch("jray", *path, method="POST", body=b"", headers=no_auth)
        assert e.value.code in (401, 403), path
    # A page redirects to the login page instead of showing anything.
    with pytest.raises(tornado.httpclient.HTTPClientError) as e:
        await jp_fetch("jray", "views", "task_stream", headers=no_auth, follow_redirects=False)
    assert e.value.code in (302, 401, 403)


async def test_unknown_view_is_404(jp_fetch):
    for path in (("views", "nope"), ("api", "views", "nope")):
        with pytest.raises(tornado.httpclient.HTTPClientError) as e:
            await jp_fetch("jray", *path)
        assert e.value.code == 404


async def test_attached_cluster_is_not_stopped(jp_fetch, head):
    with pytest.raises(tornado.httpclient.HTTPClientError) as e:
        await get_json(jp_fetch, "api", "stop", method="POST")
    assert e.value.code == 409
    with pytest.raises(tornado.httpclient.HTTPClientError) as e:
        await get_json(jp_fetch, "api", "start", method="POST")
    assert e.value.code == 409
    _, st = await get_json(jp_fetch, "api", "status")
    assert st["state"] == "running"


async def test_add_and_remove_node(jp_fetch, head, jp_serverapp):
    for bad in (b'{"num_cpus": 0}', b'{"num_cpus": "two"}', b"not json"):
        with pytest.raises(tornado.httpclient.HTTPClientError) as e:
            await get_json(jp_fetch, "api", "nodes", method="POST", body=bad)
        assert e.value.code == 400
    # The sidebar's "Add node" sends the CPUs the user chose (not always worker_num_cpus' 1).
    code, added = await get_json(jp_fetch, "api", "nodes", method="POST", body=b'{"num_cpus": 2}')
    assert code == 201
    node_id = added["node_id"]

    async def two_alive():
        _, st = await get_json(jp_fetch, "api", "status")
        return st["nodes_alive"] == 2 and st["resources_total"]["CPU"] == 3.0

    await until(two_alive, "the added node to be alive")
    _, nodes = await get_json(jp_fetch, "api", "nodes")
    mine = [n for n in nodes["nodes"] if n["node_id"] == node_id]
    assert mine and mine[0]["added_by_server"] and not mine[0]["is_head_node"]

    code, removed = await get_json(jp_fetch, "api", "nodes", node_id, method="DELETE")
    assert code == 200 and removed == {"removed": node_id}

    async def back_to_one():
        _, st = await get_json(jp_fetch, "api", "status")
        return st["nodes_alive"] == 1

    await until(back_to_one, "the removed node to leave the cluster")
    with pytest.raises(tornado.httpclient.HTTPClientError) as e:
        await get_json(jp_fetch, "api", "nodes", method="DELETE")
    assert e.value.code == 409  # nothing left that this server added


async def test_added_nodes_stop_with_the_server(jp_fetch, head, jp_serverapp):
    await get_json(jp_fetch, "api", "nodes", method="POST")
    ext = jp_serverapp.web_app.settings["jray_extension"]
    [node] = ext.cluster.workers
    await jp_serverapp.cleanup_extensions()
    assert node.proc.poll() is not None
    assert ext.cluster.workers == []
    _, st = await get_json(jp_fetch, "api", "status")
    assert st["state"] == "stopped"
    gcs = psutil.Process(head.gcs_pid)
    assert gcs.status() != psutil.STATUS_ZOMBIE and head.head.proc.poll() is None  # the attached head runs on


async def test_pages_take_the_lab_theme(jp_fetch):
    dark = (await jp_fetch("jray", "views", "progress", params={"theme": "dark"})).body.decode()
    light = (await jp_fetch("jray", "views", "progress")).body.decode()
    assert "#20262B" in dark and "#15191C" in dark  # Bokeh's dark_minimal, on a page of its colour
    assert "#20262B" not in light
    plain = (await jp_fetch("jray", "views", "tables", params={"theme": "dark"})).body.decode()
    assert "data-jray-theme='dark'" in plain
    with pytest.raises(tornado.httpclient.HTTPClientError) as e:
        await jp_fetch("jray", "views", "progress", params={"theme": "purple"})
    assert e.value.code == 400
