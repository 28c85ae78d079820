"""The job agent's parts without a cluster: the log (offsets across
rotation, the size cap), request checks, the manager over an in-memory KV
(statuses, exit codes, stop, duplicates, delete, retention, records read
back by a new agent), and the HTTP server's token check and routes."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import time
from typing import Any

import pytest

from jray._private.jobs import common as C
from jray._private.jobs.http_api import JobsHttpServer
from jray._private.jobs.manager import JobLog, JobManager
from jray._private.protocol import gcs_pb2 as gpb

pytestmark = pytest.mark.timeout(60)


class FakeGcs:
    """The KV RPCs the manager uses, over a dict."""

    def __init__(self) -> None:
        self.kv: dict[tuple[str, bytes], bytes] = {}

    async def KVPut(self, r: Any, timeout: float = 0) -> Any:
        self.kv[(r.ns, r.key)] = r.value
        return gpb.KVPutReply(added=True)

    async def KVGet(self, r: Any, timeout: float = 0) -> Any:
        v = self.kv.get((r.ns, r.key))
        return gpb.KVGetReply(found=v is not None, value=v or b"")

    async def KVDel(self, r: Any, timeout: float = 0) -> Any:
        return gpb.KVDelReply(deleted=int(self.kv.pop((r.ns, r.key), None) is not None))

    async def KVKeys(self, r: Any, timeout: float = 0) -> Any:
        return gpb.KVKeysReply(keys=[k for ns, k in self.kv if ns == r.ns and k.startswith(r.prefix)])

    async def GetAllNodeInfo(self, r: Any, timeout: float = 0) -> Any:
        return gpb.GetAllNodeInfoReply(nodes=[gpb.NodeInfo(alive=True, is_head=True, resources_total={"CPU": 2.0})])


def _manager(tmp_path: Any, gcs: FakeGcs | None = None, **kw: Any) -> JobManager:
    return JobManager(gcs=gcs or FakeGcs(), gcs_address="127.0.0.1:1", token="tok", session_dir=str(tmp_path),
                      node_ip="127.0.0.1", **kw)


async def _until_ended(m: JobManager, sid: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while m.get(sid)["status"] not in C.TERMINAL:
        assert time.monotonic() < deadline, m.get(sid)
        await asyncio.sleep(0.02)
    return await m.info(sid)


# -- the log -----------------------------------------------------------------------------------
def test_log_offsets_survive_rotation_and_stay_bounded(tmp_path):
    async def run() -> None:
        jl = JobLog(str(tmp_path / "j.log"), max_bytes=2048)
        for i in range(300):
            jl.write(f"line {i:04d}\n".encode())  # 10 bytes each: 3000 bytes, rotated past 2048/2
        assert jl.end == 3000
        on_disk = os.path.getsize(jl.path) + os.path.getsize(jl.old_path)
        assert on_disk <= 2048
        data, nxt = jl.read(0)  # the start is gone: reading starts at the oldest byte kept
        assert nxt == 3000 and data.decode().endswith("line 0299\n")
        first_kept = jl.old_start
        assert first_kept > 0 and data.decode().startswith(f"line {first_kept // 10:04d}")
        data, nxt = jl.read(2990)
        assert data == b"line 0299\n" and nxt == 3000
        assert jl.read(3000) == (b"", 3000)
        again = JobLog(jl.path, 2048, base=jl.old_start)  # a new agent, from the record's log_base
        assert (again.old_start, again.cur_start, again.end) == (jl.old_start, jl.cur_start, jl.end)

    asyncio.run(run())


def test_utf8_safe_end():
    s = "aé€😀".encode()
    for cut in range(len(s) + 1):
        end = C.utf8_safe_end(s[:cut])
        s[:end].decode()  # never splits a character
        assert cut - end < 4


def test_check_submit_refuses_bad_input():
    ok = C.check_submit({"entrypoint": "python x.py", "submission_id": "a-1.b_2", "metadata": {"k": "v"}})
    assert ok["submission_id"] == "a-1.b_2" and ok["entrypoint_num_cpus"] == 0
    for body, msg in [
        ({}, "entrypoint"),
        ({"entrypoint": "  "}, "entrypoint"),
        ({"entrypoint": "x", "submission_id": "a b"}, "submission_id"),
        ({"entrypoint": "x", "runtime_env": {"working_dir": "/local/path"}}, "local path"),
        ({"entrypoint": "x", "metadata": {"k": 1}}, "metadata"),
        ({"entrypoint": "x", "entrypoint_num_cpus": -1}, "entrypoint_num_cpus"),
        ({"entrypoint": "x", "entrypoint_resources": {"CPU": 1}}, "entrypoint_num_cpus"),
        ({"entrypoint": "x", "bogus": 1}, "unknown field"),
        ([], "JSON object"),
    ]:
        with pytest.raises(C.BadRequest, match=msg):
            C.check_submit(body)


# -- the manager -------------------------------------------------------------------------------
def test_manager_runs_jobs_to_their_statuses(tmp_path):
    async def run() -> None:
        gcs = FakeGcs()
        m = _manager(tmp_path, gcs)
        sid = (await m.submit({"entrypoint": "echo hello; echo $JRAY_JOB_SUBMISSION_ID", "submission_id": "ok"}))[
            "submission_id"]
        info = await _until_ended(m, sid)
        assert info["status"] == C.SUCCEEDED and info["driver_exit_code"] == 0
        assert m.logs_text(sid) == "hello\nok\n"
        await m.submit({"entrypoint": "echo doomed; exit 3", "submission_id": "bad"})
        info = await _until_ended(m, "bad")
        assert info["status"] == C.FAILED and "exit code 3" in info["message"] and "doomed" in info["message"]
        assert info["error_type"] == "JOB_ENTRYPOINT_COMMAND_ERROR"
        await m.submit({"entrypoint": "no-such-command-xyz", "submission_id": "nostart"})
        info = await _until_ended(m, "nostart")
        assert info["status"] == C.FAILED and "exit code 127" in info["message"]
        with pytest.raises(C.BadRequest, match="already exists"):
            await m.submit({"entrypoint": "true", "submission_id": "ok"})
        with pytest.raises(C.NotFound):
            await m.info("unknown")
        with pytest.raises(C.BadRequest, match="entrypoint resources"):
            await m.submit({"entrypoint": "true", "submission_id": "big", "entrypoint_num_cpus": 64})
        assert "big" not in m.records and (C.KV_NS, b"job/big") not in gcs.kv  # nothing half-created
        # records are in the KV, as a new agent reads them
        stored = json.loads(gcs.kv[(C.KV_NS, b"job/bad")])
        assert stored["status"] == C.FAILED

    asyncio.run(run())


def test_manager_stop_tail_delete_and_retention(tmp_path):
    async def run() -> None:
        gcs = FakeGcs()
        m = _manager(tmp_path, gcs, max_finished=2)
        await m.submit({"entrypoint": "echo up; exec sleep 60", "submission_id": "long"})
        r = await m.tail("long", 0, 10)
        assert r["logs"] == "up\n" and not r["terminal"] and r["offset"] == 3
        with pytest.raises(C.BadRequest, match="RUNNING"):
            await m.delete("long")
        t0 = time.monotonic()
        assert await m.stop("long") is True
        assert time.monotonic() - t0 < 5
        info = await _until_ended(m, "long")
        assert info["status"] == C.STOPPED
        r = await m.tail("long", 3, 5)
        assert r["terminal"] and r["logs"] == ""
        assert await m.stop("long") is False  # ended already
        # a job that ignores SIGTERM is SIGKILLed after the grace period
        await m.submit({"entrypoint": "trap '' TERM; echo up; sleep 60 & wait; sleep 60",
                        "submission_id": "stubborn"})
        await m.tail("stubborn", 0, 10)
        assert await m.stop("stubborn") is True
        assert (await _until_ended(m, "stubborn"))["status"] == C.STOPPED
        for i in range(3):
            await m.submit({"entrypoint": "true", "submission_id": f"quick{i}"})
            await _until_ended(m, f"quick{i}")
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        kept = sorted(s for s, r in m.records.items() if r["status"] in C.TERMINAL)
        assert kept == ["quick1", "quick2"]  # the oldest finished went, with their logs
        assert not os.path.exists(m._log_path("long"))
        assert (C.KV_NS, b"job/long") not in gcs.kv
        assert await m.delete("quick1") is True
        assert "quick1" not in m.records and not os.path.exists(m._log_path("quick1"))

    asyncio.run(run())


def test_a_new_agent_reads_the_records_and_fails_orphans(tmp_path):
    async def run() -> None:
        gcs = FakeGcs()
        m = _manager(tmp_path, gcs)
        await m.submit({"entrypoint": "echo done", "submission_id": "done"})
        await _until_ended(m, "done")
        orphan = {**m.get("done"), "submission_id": "orphan", "status": C.RUNNING, "driver_pid": None}
        await gcs.KVPut(gpb.KVPutRequest(ns=C.KV_NS, key=b"job/orphan", value=json.dumps(orphan).encode()))
        m2 = _manager(tmp_path, gcs)
        await m2.load()
        assert (await m2.info("done"))["status"] == C.SUCCEEDED
        assert m2.logs_text("done") == "done\n"
        info = await m2.info("orphan")
        assert info["status"] == C.FAILED and "agent" in info["message"]

    asyncio.run(run())


# -- HTTP ----------------------------------------------------------------------------------------
def _http(port: int, method: str, path: str, token: str | None, body: Any = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    conn.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers=headers)
    r = conn.getresponse()
    out = r.status, json.loads(r.read())
    conn.close()
    return out


def test_http_api_token_and_routes(tmp_path):
    async def run() -> None:
        m = _manager(tmp_path)
        server = JobsHttpServer(m, "tok", {"version": "x"})
        port = await server.start("127.0.0.1", 0)
        try:
            call = lambda *a: asyncio.to_thread(_http, port, *a)  # noqa: E731
            for method, path in [("GET", "/api/jobs/"), ("POST", "/api/jobs/"), ("GET", "/api/jobs/x"),
                                 ("GET", "/api/jobs/x/logs"), ("POST", "/api/jobs/x/stop"), ("DELETE", "/api/jobs/x"),
                                 ("GET", "/api/version"), ("GET", "/nowhere")]:
                assert (await call(method, path, None))[0] == 401
                assert (await call(method, path, "wrong"))[0] == 401
            assert await call("GET", "/api/version", "tok") == (200, {"version": "x"})
            st, body = await call("POST", "/api/jobs/", "tok", {"entrypoint": "echo hi", "submission_id": "h"})
            assert st == 200 and body["submission_id"] == "h"
            await _until_ended(m, "h")
            st, body = await call("GET", "/api/jobs/h", "tok")
            assert st == 200 and body["status"] == "SUCCEEDED"
            assert (await call("GET", "/api/jobs/h/logs", "tok")) == (200, {"logs": "hi\n"})
            st, body = await call("GET", "/api/jobs/h/logs/tail?offset=0&wait=1", "tok")
            assert body["logs"] == "hi\n" and body["terminal"] is True
            assert (await call("GET", "/api/jobs/", "tok"))[1][0]["submission_id"] == "h"
            st, body = await call("POST", "/api/jobs/", "tok", {"entrypoint": "echo", "submission_id": "h"})
            assert st == 400 and "already exists" in body["error"]
            st, body = await call("GET", "/api/jobs/nope", "tok")
            assert st == 404 and "does not exist" in body["error"]
            assert (await call("POST", "/api/jobs/nope/stop", "tok"))[0] == 404
            assert (await call("DELETE", "/api/jobs/h", "tok")) == (200, {"deleted": True})
            assert (await call("GET", "/api/jobs/h", "tok"))[0] == 404
        finally:
            await server.close()

    asyncio.run(run())
