"""The server extension attached to a cluster on another machine.

The cluster runs on a virtual host ``a`` (its own network namespace, /tmp
and /dev/shm: ``jray._private.virtual_hosts``); the Jupyter server runs in
the test process, on a "machine" with no node of that cluster. Covered: the
address and token from the extension's config (``c.JrayExtension``) or from
the sidebar's connect form (``POST jray/api/attach``); a wrong token, an
address that does not answer or is not one answer 4xx with jray's message
and leave the server as it was; the status and nodes of the remote cluster
(state API with explicit address and token); the server's kernels'
bare ``jray.init()`` connects as a client (no store mapped); ``POST
jray/api/detach`` gives kernels the environment the server had before.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time

import psutil
import pytest
import tornado.httpclient

from jray._private import virtual_hosts as vh
from tests.serverext.conftest import EXT
from tests.serverext.test_lifecycle import run_in_kernel

pytest_plugins = ["pytest_jupyter.jupyter_server"]

KERNEL_CODE = """
import json, socket
import jray
from jray._private.worker import global_state
jray.init()

@jray.remote
def where():
    return socket.gethostname()

w = global_state.worker
host = jray.get(where.remote(), timeout=60)
shm = [ln for ln in open("/proc/self/maps") if "/dev/shm" in ln]
print("RESULT", json.dumps({"host": host, "client": bool(w.client), "gcs": w.gcs_address, "shm": shm}))
jray.shutdown()
"""


@pytest.fixture(scope="module")
def remote():
    """(host a, its GCS address, its token): a 2-CPU head on another machine."""
    reason = vh.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with vh.VirtualHosts() as v:
        a = v.add_host("a")
        address, token = vh.start_head(a, num_cpus=2, object_store_memory=64 * 1024 * 1024)
        yield a, address, token
    assert v.leftovers() == []


@pytest.fixture
def previous_env(monkeypatch):
    """What the server's environment names before it attaches (put back at detach)."""
    monkeypatch.setenv("JRAY_ADDRESS", "127.0.0.1:1")
    monkeypatch.setenv("JRAY_TOKEN", "the-previous-token")
    monkeypatch.delenv("JRAY_DASHBOARD_URL", raising=False)
    return {"JRAY_ADDRESS": "127.0.0.1:1", "JRAY_TOKEN": "the-previous-token"}


async def api(jp_fetch, *path, method="GET", body=None):
    kw = {} if method == "GET" else {"body": json.dumps(body).encode() if body is not None else b""}
    r = await jp_fetch("jray", "api", *path, method=method, **kw)
    return r.code, json.loads(r.body) if r.body else None


async def api_error(jp_fetch, *path, body=None) -> tuple[int, str]:
    with pytest.raises(tornado.httpclient.HTTPClientError) as e:
        await api(jp_fetch, *path, method="POST", body=body)
    return e.value.code, json.loads(e.value.response.body)["message"]


async def until(fn, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not await fn():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.3)


async def run_kernel(jp_serverapp, code: str = KERNEL_CODE) -> tuple[dict, dict]:
    """(what KERNEL_CODE printed, the kernel's environment) for a fresh kernel of the server."""
    mkm = jp_serverapp.kernel_manager
    kid = await mkm.start_kernel(kernel_name="python3")
    try:
        km = mkm.get_kernel(kid)
        env = psutil.Process(km.provisioner.pid).environ()
        out = await run_in_kernel(km, code, timeout=120)
        line = [ln for ln in out.splitlines() if ln.startswith("RESULT ")][-1]
        return json.loads(line.removeprefix("RESULT ")), env
    finally:
        await mkm.shutdown_kernel(kid, now=True)


class TestFromConfig:
    @pytest.fixture
    def jp_server_config(self, remote, previous_env):
        _, address, token = remote
        return {"ServerApp": {"jpserver_extensions": {EXT: True}},
                "JrayExtension": {"mode": "attach", "address": address, "token": token}}

    async def test_kernels_connect_as_clients(self, jp_serverapp, jp_fetch, remote):
        a, address, token = remote
        code, st = await api(jp_fetch, "status")
        assert st["state"] == "running" and st["mode"] == "attach" and not st["owned"]
        assert st["address"] == address and st["remote"] is True
        assert st["nodes_alive"] == 1 and st["resources_total"]["CPU"] == 2.0
        _, nodes = await api(jp_fetch, "nodes")
        assert [(n["node_ip"], n["is_head_node"]) for n in nodes["nodes"]] == [(a.ip, True)]
        assert (os.environ["JRAY_ADDRESS"], os.environ["JRAY_TOKEN"]) == (address, token)

        got, env = await run_kernel(jp_serverapp)
        assert env["JRAY_ADDRESS"] == address and env["JRAY_TOKEN"] == token
        assert got == {"host": "a", "client": True, "gcs": address, "shm": []}

        async def counted():
            _, t = await api(jp_fetch, "tasks")
            return t["cluster"]["summary"].get("where", {}).get("state_counts", {}).get("FINISHED", 0) >= 1

        await until(counted, "the kernel's task in jray/api/tasks")
        _, data = await api(jp_fetch, "views", "object_store")
        assert data  # the pages' data from the remote cluster

        code, st = await api(jp_fetch, "detach", method="POST")
        assert code == 200 and not st["running"]
        assert os.environ["JRAY_ADDRESS"] == "127.0.0.1:1" and os.environ["JRAY_TOKEN"] == "the-previous-token"
        assert "JRAY_DASHBOARD_URL" not in os.environ
        a_procs = a.processes()
        assert a_procs  # the remote cluster is left running


    async def test_a_restarted_client_kernel_finds_its_detached_actor(self, jp_serverapp, remote):
        mkm = jp_serverapp.kernel_manager
        kid = await mkm.start_kernel(kernel_name="python3")
        try:
            out = await run_in_kernel(mkm.get_kernel(kid), """
import jray
jray.init()  # the server's namespace (JRAY_NAMESPACE=jupyter)

@jray.remote
class Keeper:
    def __init__(self):
        self.v = 0
    def add(self, n):
        self.v += n
        return self.v

k = Keeper.options(name="remote-keeper", lifetime="detached").remote()
print("v", jray.get(k.add.remote(41)))
""", timeout=120)
            assert "v 41" in out
            await mkm.restart_kernel(kid)  # the old client dies without a goodbye
            out = await run_in_kernel(mkm.get_kernel(kid), """
import jray
jray.init()
k = jray.get_actor("remote-keeper")
print("again", jray.get(k.add.remote(1)))
jray.kill(k)
""", timeout=120)
            assert "again 42" in out
        finally:
            await mkm.shutdown_kernel(kid, now=True)


class TestConfiguredWrongToken:
    @pytest.fixture
    def jp_server_config(self, remote, previous_env):
        _, address, _ = remote
        return {"ServerApp": {"jpserver_extensions": {EXT: True}},
                "JrayExtension": {"mode": "attach", "address": address, "token": "not-the-token"}}

    async def test_the_server_starts_and_says_why(self, jp_serverapp, jp_fetch, remote, previous_env):
        _, st = await api(jp_fetch, "status")
        assert st["state"] == "stopped" and not st["running"]
        assert "refused this token" in st["error"] and st["configured_address"] == remote[1]
        for k, v in previous_env.items():  # kernels keep the server's environment
            assert os.environ[k] == v


class TestConnectForm:
    @pytest.fixture
    def jp_server_config(self, previous_env):
        return {"ServerApp": {"jpserver_extensions": {EXT: True}}, "JrayExtension": {"mode": "none"}}

    async def test_bad_input_is_4xx_with_jrays_message(self, jp_serverapp, jp_fetch, remote, previous_env):
        a, address, token = remote
        code, msg = await api_error(jp_fetch, "attach", body={"address": address, "token": "wrong"})
        assert code == 403 and "refused this token" in msg and "JRAY_TOKEN" in msg
        with socket.socket() as s:  # a port nothing listens on, on the cluster's machine
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        code, msg = await api_error(jp_fetch, "attach", body={"address": f"{a.ip}:{port}", "token": token})
        assert code == 400 and f"{a.ip}:{port}" in msg and "could not be reached" in msg
        code, msg = await api_error(jp_fetch, "attach", body={"address": "no such host", "token": token})
        assert code == 400 and "not a cluster address" in msg
        code, msg = await api_error(jp_fetch, "attach", body={"address": "", "token": token})
        assert code == 400 and "no address" in msg
        with pytest.raises(tornado.httpclient.HTTPClientError) as e:
            await jp_fetch("jray", "api", "attach", method="POST", body=b"not json")
        assert e.value.code == 400
        code, msg = await api_error(jp_fetch, "detach")
        assert code == 409
        # Nothing changed, and the server answers as before.
        _, st = await api(jp_fetch, "status")
        assert st["state"] == "stopped" and not st["running"] and "error" not in st
        for k, v in previous_env.items():
            assert os.environ[k] == v

    async def test_attach_use_detach(self, jp_serverapp, jp_fetch, remote, previous_env):
        a, address, token = remote
        code, st = await api(jp_fetch, "attach", method="POST", body={"address": f"jray://{address}",
                                                                       "token": token})
        assert code == 201 and st["running"] and st["address"] == address and not st["owned"]
        _, st = await api(jp_fetch, "status")
        assert st["state"] == "running" and st["remote"] is True and st["resources_total"]["CPU"] == 2.0
        _, nodes = await api(jp_fetch, "nodes")
        assert [n["node_ip"] for n in nodes["nodes"]] == [a.ip]
        assert os.environ["JRAY_ADDRESS"] == address and os.environ["JRAY_DASHBOARD_URL"].endswith("/jray/views/")

        got, env = await run_kernel(jp_serverapp)
        assert got == {"host": "a", "client": True, "gcs": address, "shm": []}
        assert env["JRAY_ADDRESS"] == address and env["JRAY_TOKEN"] == token

        # A second connect replaces the first (here: the same cluster again).
        code, st = await api(jp_fetch, "attach", method="POST", body={"address": address, "token": token})
        assert code == 201 and st["address"] == address
        # A wrong token while attached changes nothing.
        code, _ = await api_error(jp_fetch, "attach", body={"address": address, "token": "wrong"})
        assert code == 403 and os.environ["JRAY_ADDRESS"] == address
        with pytest.raises(tornado.httpclient.HTTPClientError) as e:  # not started here: not stopped here
            await api(jp_fetch, "stop", method="POST")
        assert e.value.code == 409

        code, st = await api(jp_fetch, "detach", method="POST")
        assert code == 200 and not st["running"]
        for k, v in previous_env.items():
            assert os.environ[k] == v
        assert "JRAY_DASHBOARD_URL" not in os.environ
        _, st = await api(jp_fetch, "status")
        assert st["state"] == "stopped"
        _, env = await _kernel_env(jp_serverapp)
        assert env["JRAY_ADDRESS"] == "127.0.0.1:1" and env["JRAY_TOKEN"] == "the-previous-token"
        assert a.processes()  # the remote cluster runs on


async def _kernel_env(jp_serverapp) -> tuple[str, dict]:
    mkm = jp_serverapp.kernel_manager
    kid = await mkm.start_kernel(kernel_name="python3")
    try:
        return kid, psutil.Process(mkm.get_kernel(kid).provisioner.pid).environ()
    finally:
        await mkm.shutdown_kernel(kid, now=True)


@pytest.fixture(scope="module")
def remote_tls(tmp_path_factory):
    """(host, address, token, a copy of its TLS directory here): a head with --tls on another machine."""
    reason = vh.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    import shutil

    with vh.VirtualHosts() as v:
        a = v.add_host("a")
        address, token = vh.start_head(a, num_cpus=1, object_store_memory=64 * 1024 * 1024, extra_args=["--tls"])
        copy = str(tmp_path_factory.mktemp("tls") / "cluster-tls")
        shutil.copytree(a.fs_path("/tmp/jray/tls"), copy)
        yield a, address, token, copy
    assert v.leftovers() == []


@pytest.fixture
def no_tls_env(monkeypatch):
    for k in ("JRAY_TLS_DIR", "JRAY_USE_TLS", "JRAY_TLS_CA_CERT", "JRAY_TLS_SERVER_CERT", "JRAY_TLS_SERVER_KEY"):
        monkeypatch.setenv(k, "")  # set, then deleted: what the extension writes is undone at teardown
        monkeypatch.delenv(k)


class TestTLSCluster:
    @pytest.fixture
    def jp_server_config(self, remote_tls, previous_env, no_tls_env):
        _, address, token, copy = remote_tls
        return {"ServerApp": {"jpserver_extensions": {EXT: True}},
                "JrayExtension": {"mode": "attach", "address": address, "token": token, "tls_dir": copy}}

    async def test_tls_dir_from_config_attaches_server_and_kernels(self, jp_serverapp, jp_fetch, remote_tls):
        a, address, token, copy = remote_tls
        _, st = await api(jp_fetch, "status")
        assert st["state"] == "running" and st["address"] == address and st["nodes_alive"] == 1, st
        got, env = await run_kernel(jp_serverapp)
        assert env["JRAY_TLS_DIR"] == copy
        assert got["host"] == "a" and got["client"] is True


class TestTLSClusterWithoutTheCertificates:
    @pytest.fixture
    def jp_server_config(self, remote_tls, previous_env, no_tls_env):
        _, address, token, _ = remote_tls
        return {"ServerApp": {"jpserver_extensions": {EXT: True}},
                "JrayExtension": {"mode": "attach", "address": address, "token": token}}

    async def test_the_server_says_the_cluster_uses_tls(self, jp_serverapp, jp_fetch, remote_tls):
        _, st = await api(jp_fetch, "status")
        assert st["state"] == "stopped" and "uses TLS" in st["error"] and "JRAY_TLS_DIR" in st["error"], st

