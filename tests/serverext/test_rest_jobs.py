"""The server extension's jobs endpoints (issue 16: the Lab sidebar's Jobs
section), through jupyter_server's pytest plugin: ``GET jray/api/jobs``,
``GET jray/api/jobs/<id>/logs?offset=N``, ``POST jray/api/jobs/<id>/stop``,
on a server attached to a head this module starts with its job agent (as
``jray start --head`` does). Errors answer JSON with a status: 404 for an
unknown id, 400 for a bad offset, 409 with no cluster, 503 with the agent
down (the last test: it stops the agent)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import pytest
import tornado.httpclient

from jray._private import node as _node
from jray._private.jobs import process
from jray.job_submission import JobStatus, JobSubmissionClient
from tests.serverext.conftest import EXT, STORE

pytest_plugins = ["pytest_jupyter.jupyter_server"]

PY = sys.executable
TICKER = f"{PY} -u -c \"import time\nfor i in range(1000):\n print('tick', i, flush=True); time.sleep(0.1)\""


@pytest.fixture(scope="module")
def jobs_head():
    """A 1-CPU head with its job agent on a free port; both stopped with the module."""
    h = _node.start_head(num_cpus=1, num_gpus=0, object_store_memory=STORE)
    try:
        process.start_agent(session_dir=h.session_dir, gcs_address=h.gcs_address, token=h.token,
                            host="127.0.0.1", port=0, watch_pid=os.getpid())
        yield h
    finally:
        process.stop_agent(h.session_dir)
        _node.stop_cluster(h)


@pytest.fixture
def jp_server_config(jobs_head):
    return {"ServerApp": {"jpserver_extensions": {EXT: True}},
            "JrayExtension": {"mode": "attach", "address": jobs_head.gcs_address, "token": jobs_head.token}}


@pytest.fixture
def sdk(jobs_head, jp_serverapp):
    """The SDK on the same cluster (the attached server set JRAY_TOKEN)."""
    return JobSubmissionClient(jobs_head.gcs_address)


async def get_json(jp_fetch, *path, method="GET", **kw):
    if method == "POST" and "body" not in kw:
        kw["body"] = b""
    r = await jp_fetch("jray", "api", *path, method=method, **kw)
    return r.code, json.loads(r.body) if r.body else None


async def error_of(jp_fetch, *path, method="GET", **kw) -> tuple[int, str]:
    """The status and the JSON message of a request that must fail."""
    with pytest.raises(tornado.httpclient.HTTPClientError) as e:
        await get_json(jp_fetch, *path, method=method, **kw)
    assert e.value.response is not None
    body = json.loads(e.value.response.body or b"{}")
    return e.value.code, str(body.get("message", ""))


async def until(fn, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        got = await fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.3)


async def job_row(jp_fetch, sid):
    _, body = await get_json(jp_fetch, "jobs")
    rows = [j for j in body["jobs"] if j["submission_id"] == sid]
    return rows[0] if rows else None


async def test_list_follow_logs_and_stop(jp_fetch, sdk):
    sid = await asyncio.to_thread(sdk.submit_job, entrypoint=TICKER, submission_id="rest-ticker")

    async def running():
        row = await job_row(jp_fetch, sid)
        return row if row and row["status"] == "RUNNING" else None

    row = await until(running, "the job RUNNING in jray/api/jobs")
    assert row["entrypoint"] == TICKER and row["start_time"] and row["end_time"] is None
    assert "runtime_env" not in row  # its env_vars may hold secrets
    code, body = await get_json(jp_fetch, "jobs")
    assert code == 200 and body["address"].startswith("http://") and abs(body["now"] - time.time() * 1000) < 60_000
    code, one = await get_json(jp_fetch, "jobs", sid)
    assert code == 200 and one["submission_id"] == sid and one["status"] == "RUNNING"

    # Incremental reads: each from the offset the last one returned, no line twice.
    seen, offset = "", 0

    async def ticks(n):
        nonlocal seen, offset
        code, chunk = await get_json(jp_fetch, "jobs", sid, "logs", params={"offset": offset})
        assert code == 200 and chunk["offset"] >= offset and not chunk["truncated"]
        seen += chunk["logs"]
        offset = chunk["offset"]
        return seen.count("\n") >= n

    await until(lambda: ticks(3), "3 lines of the job's log")
    await until(lambda: ticks(10), "10 lines of the job's log")
    lines = seen.splitlines()
    assert lines[:10] == [f"tick {i}" for i in range(10)], lines[:12]
    assert offset == len(seen.encode())

    # Stop: STOPPED right away in the reply and the list; the log's end is then terminal.
    code, stopped = await get_json(jp_fetch, "jobs", sid, "stop", method="POST")
    assert code == 200 and stopped["stopped"] is True and stopped["job"]["status"] == "STOPPED"
    assert (await job_row(jp_fetch, sid))["status"] == "STOPPED"

    async def terminal():
        return await ticks(0) and (await get_json(jp_fetch, "jobs", sid, "logs", params={"offset": offset}))[1][
            "terminal"]

    await until(terminal, "the stopped job's log to end")
    code, again = await get_json(jp_fetch, "jobs", sid, "stop", method="POST")
    assert code == 200 and again["stopped"] is False and again["job"]["status"] == "STOPPED"


async def test_failed_job(jp_fetch, sdk):
    sid = await asyncio.to_thread(
        sdk.submit_job, entrypoint=f"{PY} -c \"import sys; print('about to fail'); sys.exit(3)\"",
        submission_id="rest-fails")
    await asyncio.to_thread(sdk.wait_until_status, sid, {JobStatus.FAILED}, 60)
    row = await job_row(jp_fetch, sid)
    assert row["status"] == "FAILED" and "exit code 3" in row["message"] and row["end_time"]
    code, chunk = await get_json(jp_fetch, "jobs", sid, "logs")
    assert code == 200 and chunk["logs"] == "about to fail\n" and chunk["terminal"] and chunk["status"] == "FAILED"


async def test_long_log_answers_its_end(jp_fetch, sdk):
    """A log longer than max_bytes: the last max_bytes characters, marked
    truncated, and the offset of the end (the next read has nothing new)."""
    sid = await asyncio.to_thread(
        sdk.submit_job, entrypoint=f"{PY} -c \"[print('line %06d' % i + 'x' * 90) for i in range(4000)]\"",
        submission_id="rest-long")
    await asyncio.to_thread(sdk.wait_until_status, sid, {JobStatus.SUCCEEDED}, 60)
    code, chunk = await get_json(jp_fetch, "jobs", sid, "logs", params={"max_bytes": 10_000})
    assert code == 200 and chunk["truncated"] and len(chunk["logs"]) == 10_000
    assert chunk["logs"].endswith("line 003999" + "x" * 90 + "\n")
    assert chunk["offset"] == 4000 * 102 and chunk["terminal"]
    _, rest = await get_json(jp_fetch, "jobs", sid, "logs", params={"offset": chunk["offset"]})
    assert rest["logs"] == "" and rest["terminal"] and not rest["truncated"]
    _, whole = await get_json(jp_fetch, "jobs", sid, "logs")  # default: the last 64 KiB
    assert len(whole["logs"]) == 64 * 1024 and whole["truncated"]


async def test_unknown_job_and_bad_requests(jp_fetch, sdk):
    for path, method in ((("jobs", "nope"), "GET"), (("jobs", "nope", "logs"), "GET"),
                         (("jobs", "nope", "stop"), "POST")):
        code, msg = await error_of(jp_fetch, *path, method=method)
        assert code == 404 and "nope" in msg and "does not exist" in msg, (path, code, msg)
    for params in ({"offset": "x"}, {"offset": -1}, {"max_bytes": 0}, {"max_bytes": 2 << 20}):
        code, msg = await error_of(jp_fetch, "jobs", "nope", "logs", params=params)
        assert code == 400 and "offset" in msg, (params, msg)


async def test_auth_required(jp_fetch):
    no_auth = {"Authorization": ""}
    for path in (("jobs",), ("jobs", "x"), ("jobs", "x", "logs")):
        with pytest.raises(tornado.httpclient.HTTPClientError) as e:
            await jp_fetch("jray", "api", *path, headers=no_auth)
        assert e.value.code in (401, 403), path
    with pytest.raises(tornado.httpclient.HTTPClientError) as e:
        await jp_fetch("jray", "api", "jobs", "x", "stop", method="POST", body=b"", headers=no_auth)
    assert e.value.code in (401, 403)


async def test_no_cluster_is_409(jp_fetch):
    await get_json(jp_fetch, "detach", method="POST")  # this server forgets the cluster (left running)
    for path, method in ((("jobs",), "GET"), (("jobs", "x", "logs"), "GET"), (("jobs", "x", "stop"), "POST")):
        code, msg = await error_of(jp_fetch, *path, method=method)
        assert code == 409 and "no jray cluster is running" in msg, (path, code, msg)


async def test_agent_down_is_503(jp_fetch, jobs_head):
    """Last: the agent is stopped (the module's head keeps running)."""
    code, _ = await get_json(jp_fetch, "jobs")  # a client is cached for the agent...
    assert code == 200
    assert await asyncio.to_thread(process.stop_agent, jobs_head.session_dir)
    for _ in range(2):  # ...then fails to reach it; made again, it finds none (the KV still names its port)
        code, msg = await error_of(jp_fetch, "jobs")
        assert code == 503 and "jobs API" in msg, msg
    code, msg = await error_of(jp_fetch, "jobs", "x", "stop", method="POST")
    assert code == 503 and "jobs API" in msg, msg
