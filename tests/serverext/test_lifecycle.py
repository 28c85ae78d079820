"""A server in mode 'start' owns its cluster: kernels inherit the address, the
cluster outlives kernel restarts, stops with the server; POST stop/start."""

from __future__ import annotations

import json
import os
import sys

import psutil
import pytest

from jray._private import node as _node
from tests.serverext.conftest import EXT, STORE

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {EXT: True}},
            "JrayExtension": {"mode": "start", "num_cpus": 1, "num_gpus": 0, "object_store_memory": STORE}}


def ext_of(app):
    return app.web_app.settings["jray_extension"]


async def run_in_kernel(km, code: str, timeout: float = 60) -> str:
    """Execute ``code`` in the server's kernel ``km``; its stdout (fails on an error)."""
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=timeout)
        out: list[str] = []

        def hook(msg):
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                out.append("\n".join(msg["content"]["traceback"]))

        try:
            reply = await kc.execute_interactive(code, timeout=timeout, output_hook=hook)
        except TimeoutError:
            raise AssertionError(f"cell still running after {timeout} s; output so far:\n{''.join(out)}") from None
        assert reply["content"]["status"] == "ok", "".join(out)
        return "".join(out)
    finally:
        kc.stop_channels()


async def test_kernels_attach_and_outlive_restarts(jp_serverapp, jp_fetch):
    ext = ext_of(jp_serverapp)
    c = ext.cluster
    assert c.running and c.owned
    r = await jp_fetch("jray", "api", "status")
    st = json.loads(r.body)
    assert st["state"] == "running" and st["owned"] and st["resources_total"]["CPU"] == 1.0
    assert os.environ["JRAY_ADDRESS"] == c.address
    assert os.environ["JRAY_DASHBOARD_URL"].endswith("/jray/views/")

    mkm = jp_serverapp.kernel_manager
    kid = await mkm.start_kernel(kernel_name="python3")
    try:
        km = mkm.get_kernel(kid)
        env = psutil.Process(km.provisioner.pid).environ()
        assert env["JRAY_ADDRESS"] == c.address and env["JRAY_TOKEN"] == c.token
        assert env["JRAY_NAMESPACE"] == "jupyter"
        # `jray` on a Lab terminal's PATH (and a kernel's `!jray`): this Python's bin dir first.
        assert env["PATH"].split(os.pathsep)[0] == os.path.dirname(sys.executable)
        with open(env["JRAY_CLUSTER_FILE"]) as f:  # what a running kernel re-reads as the cluster changes
            assert json.load(f)["env"] == {"JRAY_ADDRESS": c.address, "JRAY_TOKEN": c.token}
        out = await run_in_kernel(km, """
import jray
ctx = jray.init()  # the server's namespace (JRAY_NAMESPACE)

@jray.remote
class Keeper:
    def __init__(self):
        self.v = 0
    def add(self, n):
        self.v += n
        return self.v

k = Keeper.options(name="keeper", lifetime="detached").remote()
print("v", jray.get(k.add.remote(41)), ctx.address_info["gcs_address"])
""")
        assert f"v 41 {c.address}" in out
        await mkm.restart_kernel(kid)
        out = await run_in_kernel(mkm.get_kernel(kid), """
import jray
jray.init()
print("again", jray.get(jray.get_actor("keeper").add.remote(1)))
jray.kill(jray.get_actor("keeper"))
from jray.jupyter import status
print(repr(status.dashboard()))
""")
        assert "again 42" in out
        assert "task stream /a%40b/jray/views/task_stream" in out  # %jray dashboard links the pages
    finally:
        await mkm.shutdown_kernel(kid, now=True)


async def test_cluster_stops_with_the_server(jp_serverapp, jp_fetch):
    c = ext_of(jp_serverapp).cluster
    info = {"session_dir": c.handle.session_dir, "gcs_pid": c.handle.gcs_pid,
            "nodes": [{"raylet_pid": n.raylet_pid, "store_path": n.store_path} for n in c.handle.nodes]}
    r = await jp_fetch("jray", "api", "nodes", method="POST", body=b"")
    assert r.code == 201
    info["nodes"] += [{"raylet_pid": n.raylet_pid, "store_path": n.store_path} for n in c.workers]
    assert len(_node.session_processes(info)) >= 3  # gcs, head raylet, worker raylet
    # The head has a jobs API, as `jray start --head`'s: kernels can submit and watch jobs.
    from jray._private.jobs import process
    from jray.job_submission import JobSubmissionClient

    agent = process.agent_process(c.handle.session_dir)
    assert agent is not None
    assert JobSubmissionClient(c.address).list_jobs() == []
    await jp_serverapp.cleanup_extensions()  # what the server runs when it shuts down
    assert not agent.is_running() or agent.status() == psutil.STATUS_ZOMBIE
    assert _node.session_processes(info) == []
    assert _node.session_store_files(info) == []
    assert "JRAY_ADDRESS" not in os.environ and "JRAY_NAMESPACE" not in os.environ and not c.running


async def test_stop_and_start_over_rest(jp_serverapp, jp_fetch):
    c = ext_of(jp_serverapp).cluster
    first_token = c.token
    mkm = jp_serverapp.kernel_manager
    # A notebook's kernel from before the cluster's restart, started as Lab does
    # (a session: jupyter_server hands it the environment, kept for restarts).
    r = await jp_fetch("api", "sessions", method="POST", body=json.dumps(
        {"path": "nb.ipynb", "type": "notebook", "name": "nb.ipynb", "kernel": {"name": "python3"}}))
    kid = json.loads(r.body)["kernel"]["id"]
    r = await jp_fetch("jray", "api", "stop", method="POST", body=b"")
    assert r.code == 200 and not json.loads(r.body)["running"]
    st = json.loads((await jp_fetch("jray", "api", "status")).body)
    assert st["state"] == "stopped" and "JRAY_ADDRESS" not in os.environ
    r = await jp_fetch("jray", "api", "start", method="POST", body=b"")
    assert r.code == 201
    st = json.loads((await jp_fetch("jray", "api", "status")).body)
    # A new cluster (its own token; its GCS may get the freed port again: port 0 is the kernel's pick).
    assert st["state"] == "running" and st["owned"] and st["address"] and c.token != first_token
    assert os.environ["JRAY_ADDRESS"] == st["address"]
    try:
        await mkm.restart_kernel(kid)  # restarts get the new cluster, not the env the kernel began with
        env = psutil.Process(mkm.get_kernel(kid).provisioner.pid).environ()
        assert env["JRAY_ADDRESS"] == st["address"] and env["JRAY_TOKEN"] == c.token
    finally:
        await mkm.shutdown_kernel(kid, now=True)


@pytest.mark.parametrize("jp_server_config", [
    {"ServerApp": {"jpserver_extensions": {EXT: True}}, "JrayExtension": {"mode": "none"}}])
async def test_mode_none_starts_nothing(jp_serverapp, jp_fetch):
    st = json.loads((await jp_fetch("jray", "api", "status")).body)
    assert st["mode"] == "none" and st["state"] == "stopped" and not st["running"]
    assert "JRAY_ADDRESS" not in os.environ
    with pytest.raises(Exception) as e:
        await jp_fetch("jray", "api", "nodes")
    assert getattr(e.value, "code", None) == 409




@pytest.mark.parametrize("jp_server_config", [
    {"ServerApp": {"jpserver_extensions": {EXT: True}},
     "JrayExtension": {"mode": "start", "resources": {"CPU": 1.0}}}])
async def test_a_failed_start_leaves_the_server_up_and_says_why(jp_serverapp, jp_fetch):
    st = json.loads((await jp_fetch("jray", "api", "status")).body)
    assert st["state"] == "stopped" and "num_cpus" in st["error"]


async def test_a_kernel_follows_its_cluster_through_stop_and_start(jp_serverapp, jp_fetch):
    """Issue 18: Stop strands no kernel. A get in flight when the cluster is
    stopped fails with one ClusterLostError (not after its timeout, no line
    per retry); new work says the server's cluster is stopped; once Start made
    a new one, the same kernel (no restart) runs on it."""
    import asyncio

    c = ext_of(jp_serverapp).cluster
    first = c.address
    mkm = jp_serverapp.kernel_manager
    r = await jp_fetch("api", "sessions", method="POST", body=json.dumps(
        {"path": "follow.ipynb", "type": "notebook", "name": "follow.ipynb", "kernel": {"name": "python3"}}))
    kid = json.loads(r.body)["kernel"]["id"]
    km = mkm.get_kernel(kid)
    try:
        out = await run_in_kernel(km, """
import time, jray
jray.init()

@jray.remote
def slow():
    time.sleep(300)

@jray.remote(num_cpus=0)  # the head's one CPU is slow's
def where():
    return jray.get_runtime_context().gcs_address

pending = slow.remote()
print("on", jray.get(where.remote()))
""")
        assert f"on {first}" in out
        waiting = asyncio.ensure_future(run_in_kernel(km, """
try:
    jray.get(pending, timeout=240)
except Exception as e:
    print("raised", type(e).__name__, e)
""", timeout=120))
        await asyncio.sleep(1.0)  # the get is waiting (nothing times on it)
        r = await jp_fetch("jray", "api", "stop", method="POST", body=b"")
        assert r.code == 200
        out = await waiting
        assert "raised ClusterLostError" in out and first in out and "jray.init() again" in out, out
        assert "lease request failed" not in out and len(out.strip().splitlines()) <= 2, out
        out = await run_in_kernel(km, """
try:
    where.remote()
except Exception as e:
    print("raised", type(e).__name__, e)
""")
        assert "raised ConnectionError" in out and "was stopped" in out and first in out, out
        assert len(out.strip().splitlines()) <= 2, out

        r = await jp_fetch("jray", "api", "start", method="POST", body=b"")
        assert r.code == 201 and c.address != first
        out = await run_in_kernel(km, 'print("now on", jray.get(where.remote()))')  # the next call connects
        assert f"now on {c.address}" in out, out
        out = await run_in_kernel(km, 'jray.shutdown(); jray.init(); print("again on", jray.get(where.remote()))')
        assert f"again on {c.address}" in out, out
    finally:
        await mkm.shutdown_kernel(kid, now=True)
