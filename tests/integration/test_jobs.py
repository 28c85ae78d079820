"""Jobs on separate "machines": the head on host a (with its job agent and
the jobs API), a second node on host b, and host c, which runs no node and
submits: network namespaces with private /tmp and /dev/shm (see
``jray/_private/virtual_hosts.py``), so a working_dir written on c exists
only there and reaches the cluster through the upload.

Covered: ``jray job submit`` from c with a working_dir that exists only on
c (its code imported by the entrypoint on a and by tasks on b, env_vars
applied), following the logs to the end and the exit code; the time from
submit to the entrypoint's first line (SDK, printed); ``jray job logs
--follow``; stop of a running job ends its driver, its tasks and its actor
on b (processes gone within 10 s) but not a detached actor; a failing
entrypoint (FAILED, exit code in the message, CLI exit 1); an entrypoint
that cannot start; bad input (duplicate id, unknown id, missing
working_dir) refused with nothing created; the token check on every REST
path; the SDK (submit, info, status, list, logs, async tail, stop, delete);
submission ids in ``jray list jobs`` and the state API; a job running
while the GCS is killed and restarted by its supervisor ends SUCCEEDED and
the records are still in the GCS's KV; ``jray stop`` stops the agent.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import time

import pytest

from jray._private import virtual_hosts as vh

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def hosts():
    reason = vh.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with vh.VirtualHosts() as v:
        a, b, c = v.add_host("a"), v.add_host("b"), v.add_host("c")
        address, token = vh.start_head(a, num_cpus=2, extra_args=["--resources", '{"host_a": 4}'])
        vh.start_node(b, address, token, num_cpus=2, extra_args=["--resources", '{"host_b": 4}'])
        yield v, a, b, c, address, token
        res = vh.stop_jray(a)
        assert res.returncode == 0, res.stderr
        vh.stop_jray(b)
    assert v.leftovers() == []


def _cli(host: vh.Host, address: str, token: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return host.run([*vh.CLI, *args], env=vh.jray_env(host, JRAY_ADDRESS=address, JRAY_TOKEN=token), timeout=timeout)


PROJECT = textwrap.dedent("""
    import os
    os.makedirs("/tmp/proj", exist_ok=True)
    with open("/tmp/proj/helper.py", "w") as f:
        f.write("WHERE = 'written on c'\\n")
    with open("/tmp/proj/main.py", "w") as f:
        f.write('''
    import os, socket, sys
    print("first line from", socket.gethostname(), flush=True)
    import jray
    jray.init()
    @jray.remote(resources={"host_b": 1})
    def on_b():
        import helper
        return socket.gethostname(), helper.WHERE, os.environ.get("GREETING")
    import helper
    print("driver:", helper.WHERE, os.environ.get("GREETING"))
    print("task:", *jray.get(on_b.remote()))
    sys.exit(int(os.environ.get("EXIT_WITH", "0")))
    ''')
""")


def test_submit_from_a_client_with_a_local_working_dir(hosts):
    _v, _a, _b, c, address, token = hosts
    vh.run_driver(c, PROJECT, address, token)
    res = _cli(c, address, token, "job", "submit", "--submission-id", "cli-1", "--working-dir", "/tmp/proj",
               "--runtime-env-json", '{"env_vars": {"GREETING": "hello"}}', "--metadata-json", '{"owner": "c"}',
               "--", "python", "main.py")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Job 'cli-1' submitted successfully" in res.stderr
    assert "first line from a" in res.stdout  # the entrypoint ran on the head
    assert "driver: written on c hello" in res.stdout
    assert "task: b written on c hello" in res.stdout  # a task on b: the job's working_dir and env_vars
    assert "Job 'cli-1' succeeded" in res.stderr
    st = _cli(c, address, token, "job", "status", "cli-1")
    assert "SUCCEEDED" in st.stdout, st.stdout + st.stderr
    logs = _cli(c, address, token, "job", "logs", "cli-1")
    assert "task: b written on c hello" in logs.stdout
    lst = _cli(c, address, token, "job", "list")
    assert "cli-1" in lst.stdout and "SUCCEEDED" in lst.stdout
    rows = json.loads(_cli(c, address, token, "list", "jobs", "--format", "json").stdout)
    row = next(r for r in rows if r["submission_id"] == "cli-1")
    assert row["type"] == "SUBMISSION" and row["status"] == "SUCCEEDED" and row["job_id"]
    assert row["entrypoint"] == "python main.py"


def test_failing_entrypoints(hosts):
    _v, _a, _b, c, address, token = hosts
    vh.run_driver(c, PROJECT, address, token)
    res = _cli(c, address, token, "job", "submit", "--submission-id", "fail-3", "--working-dir", "/tmp/proj",
               "--runtime-env-json", '{"env_vars": {"EXIT_WITH": "3"}}', "--", "python", "main.py")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "exit code 3" in res.stderr
    st = _cli(c, address, token, "job", "status", "fail-3")
    assert "FAILED" in st.stdout and "exit code 3" in st.stdout
    assert "task: b written on c" in st.stdout  # the log's end is in the message
    res = _cli(c, address, token, "job", "submit", "--submission-id", "nostart", "--", "no-such-program-xyz")
    assert res.returncode == 1
    assert "exit code 127" in res.stderr and "not found" in res.stdout
    # bad input: clear errors, nothing created
    dup = _cli(c, address, token, "job", "submit", "--submission-id", "cli-1", "--no-wait", "--", "true")
    assert dup.returncode == 1 and "already exists" in dup.stderr
    missing = _cli(c, address, token, "job", "submit", "--submission-id", "nowd", "--working-dir", "/tmp/nope",
                   "--", "true")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    unknown = _cli(c, address, token, "job", "status", "nowd")
    assert unknown.returncode == 1 and "does not exist" in unknown.stderr
    bad_id = _cli(c, address, token, "job", "submit", "--submission-id", "a b", "--", "true")
    assert bad_id.returncode == 1 and "submission_id" in bad_id.stderr


SDK = textwrap.dedent("""
    import asyncio, json, os, time
    from jray.job_submission import JobSubmissionClient, JobStatus
    import jray as ray  # Ray's import path works too
    assert ray.job_submission.JobSubmissionClient is JobSubmissionClient

    os.makedirs("/tmp/sdkproj", exist_ok=True)
    with open("/tmp/sdkproj/hello.py", "w") as f:
        f.write("print('hello from the job', flush=True)\\nimport time\\nfor i in range(3):\\n"
                "    print('tick', i, flush=True); time.sleep(0.2)\\n")
    with open("/tmp/sdkproj/attach.py", "w") as f:
        f.write("import jray\\njray.init()\\nprint('attached', flush=True)\\n")
    client = JobSubmissionClient()
    out = {"address": client.address}
    firsts = []
    for i in range(3):  # submit to first line, three times
        t0 = time.perf_counter()
        sid = client.submit_job(entrypoint="python hello.py", runtime_env={"working_dir": "/tmp/sdkproj"},
                                submission_id=f"sdk-{i}", metadata={"i": str(i)})
        off = 0
        while True:
            r = client._tail_once(sid, off, 5.0)
            off = r["offset"]
            if "hello from the job" in r["logs"]:
                firsts.append(time.perf_counter() - t0)
                break
            assert not r["terminal"], r
    out["first_line_s"] = firsts
    attached = []  # submit to a line printed after the entrypoint's jray.init() attached
    for i in range(3):
        t0 = time.perf_counter()
        sid = client.submit_job(entrypoint="python attach.py", runtime_env={"working_dir": "/tmp/sdkproj"},
                                submission_id=f"init-{i}")
        off = 0
        while True:
            r = client._tail_once(sid, off, 5.0)
            off = r["offset"]
            if "attached" in r["logs"]:
                attached.append(time.perf_counter() - t0)
                break
            assert not r["terminal"], (r, client.get_job_info(sid))
    out["attached_s"] = attached

    async def tail(sid):
        return "".join([t async for t in client.tail_job_logs(sid)])

    out["tail"] = asyncio.run(tail("sdk-0"))
    info = client.get_job_info("sdk-0")
    out["info"] = [info.submission_id, info.status.value, info.entrypoint, info.metadata, info.driver_exit_code,
                   info.start_time is not None, info.end_time is not None]
    out["status"] = client.get_job_status("sdk-0") == JobStatus.SUCCEEDED
    out["listed"] = sorted(j.submission_id for j in client.list_jobs() if j.submission_id.startswith("sdk-"))
    for sid in ("sdk-1", "sdk-2"):
        client.wait_until_status(sid, ["SUCCEEDED", "FAILED", "STOPPED"], timeout=60)
    out["logs"] = client.get_job_logs("sdk-1")
    out["stop_ended"] = client.stop_job("sdk-1")
    out["deleted"] = client.delete_job("sdk-2")
    try:
        client.get_job_info("sdk-2")
        out["after_delete"] = "still there"
    except RuntimeError as e:
        out["after_delete"] = str(e)
    print(json.dumps(out))
""")


def test_sdk_from_a_client(hosts):
    _v, _a, _b, c, address, token = hosts
    out = vh.run_driver_json(c, SDK, address, token, timeout=120)
    assert out["address"].startswith("http://") and out["address"].endswith(":8265")
    print(f"\nsubmit -> first line of the entrypoint (SDK, client host): {[round(x, 3) for x in out['first_line_s']]} s;"
          f" -> a line after its jray.init(): {[round(x, 3) for x in out['attached_s']]} s")
    assert "hello from the job" in out["tail"] and "tick 2" in out["tail"]
    assert out["info"] == ["sdk-0", "SUCCEEDED", "python hello.py", {"i": "0"}, 0, True, True]
    assert out["status"] is True
    assert out["listed"] == ["sdk-0", "sdk-1", "sdk-2"]
    assert max(out["first_line_s"][1:]) < 5 and max(out["attached_s"]) < 10
    assert "hello from the job" in out["logs"]
    assert out["stop_ended"] is False  # it had ended already
    assert out["deleted"] is True
    assert "404" in out["after_delete"] and "does not exist" in out["after_delete"]


REMOTE_STOP = textwrap.dedent("""
    import json, time
    from jray.job_submission import JobSubmissionClient
    client = JobSubmissionClient()
    sid = client.submit_job(entrypoint="python -u -c \\"import socket, time; print('up on', socket.gethostname()); "
                                       "time.sleep(600)\\"", entrypoint_resources={"host_b": 1},
                            submission_id="remote-long")
    deadline = time.time() + 60
    while "up on" not in client.get_job_logs(sid) and time.time() < deadline:
        time.sleep(0.1)
    logs = client.get_job_logs(sid)
    running = client.get_job_info(sid)
    t0 = time.time()
    stopped = client.stop_job(sid)
    client.wait_until_status(sid, {"STOPPED", "FAILED", "SUCCEEDED"}, timeout=30)
    print(json.dumps({"logs": logs, "running": running.status.value, "node": running.driver_node_ip,
                      "stopped": stopped, "status": client.get_job_status(sid).value,
                      "stop_s": time.time() - t0}))
""")


def test_entrypoint_resources_run_the_job_on_a_node_that_has_them(hosts):
    _v, a, b, c, address, token = hosts
    vh.run_driver(c, PROJECT, address, token)
    # host_b is only on b: the entrypoint runs there, with the working_dir uploaded from c and its env_vars.
    res = _cli(c, address, token, "job", "submit", "--submission-id", "on-b", "--working-dir", "/tmp/proj",
               "--runtime-env-json", '{"env_vars": {"GREETING": "hi from b"}}',
               "--entrypoint-resources", '{"host_b": 1}', "--", "python", "main.py")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "first line from b" in res.stdout  # not the head (a)
    assert "driver: written on c hi from b" in res.stdout and "task: b written on c hi from b" in res.stdout
    rows = json.loads(_cli(c, address, token, "list", "jobs", "--format", "json").stdout)
    assert next(r for r in rows if r["submission_id"] == "on-b")["status"] == "SUCCEEDED"
    # No node has it and no autoscaler runs: refused at once, nothing created.
    bad = _cli(c, address, token, "job", "submit", "--submission-id", "nowhere",
               "--entrypoint-resources", '{"nowhere": 1}', "--", "true")
    assert bad.returncode != 0 and "no node of the cluster has the requested entrypoint resources" in \
        bad.stdout + bad.stderr
    assert "nowhere" not in _cli(c, address, token, "job", "list").stdout
    # Stopping a job that runs on b ends its process there.
    out = vh.run_driver_json(c, REMOTE_STOP, address, token, timeout=120)
    assert "up on b" in out["logs"] and out["running"] == "RUNNING" and out["node"] == b.ip
    assert out["stopped"] is True and out["status"] == "STOPPED" and out["stop_s"] < 15
    ps = b.run(["ps", "-eo", "args"], timeout=30).stdout
    assert "up on" not in ps and "time.sleep(600)" not in ps


LONG = textwrap.dedent("""
    import os
    os.makedirs("/tmp/longproj", exist_ok=True)
    with open("/tmp/longproj/long.py", "w") as f:
        f.write('''
    import os, socket, time
    import jray
    jray.init()
    @jray.remote(resources={"host_b": 1})
    class Holder:
        def where(self): return socket.gethostname(), os.getpid()
    @jray.remote(resources={"host_b": 1})
    def forever(path):
        with open(path, "w") as f:
            f.write(str(os.getpid()))
        time.sleep(600)
    h = Holder.remote()
    keeper = Holder.options(name="keeper", namespace="jobs-test", lifetime="detached").remote()
    host, pid = jray.get(h.where.remote())
    _, keeper_pid = jray.get(keeper.where.remote())
    @jray.remote(resources={"host_b": 1})
    def read_pid(path):
        return open(path).read() if os.path.exists(path) else ""
    t = forever.remote("/tmp/forever.pid")
    task_pid = ""
    while not task_pid:
        task_pid = jray.get(read_pid.remote("/tmp/forever.pid"))
        time.sleep(0.05)
    print("PIDS", host, pid, keeper_pid, task_pid, flush=True)
    time.sleep(600)
    ''')
""")

CHECK_STOP = textwrap.dedent("""
    import json, sys, time
    from jray.job_submission import JobSubmissionClient
    client = JobSubmissionClient()
    sid = client.submit_job(entrypoint="python long.py", runtime_env={"working_dir": "/tmp/longproj"},
                            submission_id="long-1")
    deadline = time.time() + 60
    logs = ""
    while "PIDS" not in logs and time.time() < deadline:
        logs = client.get_job_logs(sid)
        time.sleep(0.1)
    assert "PIDS" in logs, (logs, client.get_job_info(sid))
    assert client.get_job_status(sid).value == "RUNNING"
    t0 = time.time()
    stopped = client.stop_job(sid)
    info = client.get_job_info(sid)
    print(json.dumps({"pids": logs.split("PIDS", 1)[1].split(), "stopped": stopped, "status": info.status.value,
                      "message": info.message, "stop_s": time.time() - t0, "job_id": info.job_id}))
""")

PIDS_ALIVE = "import json, os, sys\nprint(json.dumps([os.path.exists(f'/proc/{p}') for p in sys.argv[1:]]))"


def test_stop_ends_the_driver_its_tasks_and_actors(hosts):
    _v, _a, b, c, address, token = hosts
    vh.run_driver(c, LONG, address, token)
    out = vh.run_driver_json(c, CHECK_STOP, address, token, timeout=120)
    assert out["stopped"] is True and out["status"] == "STOPPED", out
    assert out["stop_s"] < 10
    host, actor_pid, keeper_pid, task_pid = out["pids"]
    assert host == "b"
    deadline = time.monotonic() + 10
    while True:
        alive = json.loads(b.run(["python3", "-c", PIDS_ALIVE, actor_pid, task_pid, keeper_pid]).stdout)
        if alive[:2] == [False, False] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert alive == [False, False, True], alive  # the job's actor and task are gone; the detached actor is not
    rows = json.loads(_cli(c, address, token, "list", "actors", "--format", "json", "--detail").stdout)
    states = {r.get("name") or "holder": r["state"] for r in rows if r.get("class_name") == "Holder"}
    assert states == {"holder": "DEAD", "keeper": "ALIVE"}, rows
    jobs = json.loads(_cli(c, address, token, "list", "jobs", "--format", "json").stdout)
    row = next(r for r in jobs if r["submission_id"] == "long-1")
    assert row["status"] == "STOPPED" and row["job_id"] == out["job_id"]
    # `jray job logs --follow` of an ended job prints it all and returns
    res = _cli(c, address, token, "job", "logs", "--follow", "long-1")
    assert res.returncode == 0 and "PIDS b" in res.stdout
    vh.run_driver(c, "import jray; jray.init(); jray.kill(jray.get_actor('keeper', namespace='jobs-test'))",
                  address, token)


TOKEN_CHECK = textwrap.dedent("""
    import json, sys, urllib.request, urllib.error
    from jray.job_submission import resolve_address
    base, token, _ = resolve_address(None)
    calls = [("GET", "/api/jobs/"), ("POST", "/api/jobs/"), ("GET", "/api/jobs/cli-1"),
             ("GET", "/api/jobs/cli-1/logs"), ("GET", "/api/jobs/cli-1/logs/tail"),
             ("POST", "/api/jobs/cli-1/stop"), ("DELETE", "/api/jobs/cli-1"), ("GET", "/api/version")]
    out = {}
    for auth in (None, "Bearer wrong", f"Bearer {token}"):
        codes = []
        for method, path in calls:
            body = json.dumps({"entrypoint": "true", "submission_id": "tok"}).encode() if method == "POST" else None
            req = urllib.request.Request(base + path, data=body, method=method)
            if auth:
                req.add_header("Authorization", auth)
            if method == "DELETE" and auth and "wrong" not in auth:
                codes.append("skipped")
                continue
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    codes.append(r.status)
            except urllib.error.HTTPError as e:
                codes.append(e.code)
        out[auth.split()[-1] if auth and "wrong" in auth else ("ok" if auth else "none")] = codes
    # The head listens on a network address without --dashboard: no dashboard pages.
    req = urllib.request.Request(base + "/", headers={"Authorization": f"Bearer {token}"})
    try:
        urllib.request.urlopen(req, timeout=30)
        out["dashboard"] = 200
    except urllib.error.HTTPError as e:
        out["dashboard"] = e.code
    print(json.dumps(out))
""")


def test_the_jobs_api_refuses_calls_without_the_token(hosts):
    _v, _a, _b, c, address, token = hosts
    out = vh.run_driver_json(c, TOKEN_CHECK, address, token)
    assert out["none"] == [401] * 8
    assert out["wrong"] == [401] * 8
    assert all(code in (200, "skipped") for code in out["ok"]), out["ok"]
    assert out["dashboard"] == 404  # off unless --dashboard (the head is not on loopback)


def test_job_records_ride_over_a_gcs_restart(hosts):
    _v, a, _b, c, address, token = hosts
    res = _cli(c, address, token, "job", "submit", "--submission-id", "across", "--no-wait", "--",
               "echo up; sleep 4; echo done")
    assert res.returncode == 0, res.stderr
    gcs_pid = json.loads(a.run(["sh", "-c", "cat /tmp/jray/session_*/cluster.json"]).stdout)["gcs_pid"]
    assert a.run(["kill", "-9", str(gcs_pid)]).returncode == 0  # its supervisor restarts it from its tables
    res = _cli(c, address, token, "job", "logs", "--follow", "across", timeout=120)
    assert res.returncode == 0 and "done" in res.stdout, res.stdout + res.stderr
    st = _cli(c, address, token, "job", "status", "across")
    assert "SUCCEEDED" in st.stdout, st.stdout + st.stderr
    assert json.loads(a.run(["sh", "-c", "cat /tmp/jray/session_*/cluster.json"]).stdout)["gcs_pid"] != gcs_pid
    rows = json.loads(_cli(c, address, token, "list", "jobs", "--format", "json").stdout)  # from the GCS's KV
    statuses = {r["submission_id"]: r["status"] for r in rows if r["submission_id"]}
    assert statuses.get("across") == "SUCCEEDED" and statuses.get("cli-1") == "SUCCEEDED", statuses


def test_jray_stop_stops_the_job_agent(hosts):
    _v, a, _b, c, address, token = hosts
    res = _cli(c, address, token, "job", "submit", "--submission-id", "sleeper", "--no-wait", "--", "sleep 300")
    assert res.returncode == 0, res.stderr
    agent_pid = json.loads(a.run(["sh", "-c", "cat /tmp/jray/session_*/job_agent.json"]).stdout)["pid"]
    deadline = time.monotonic() + 30
    while "sleep 300" not in a.run(["ps", "-eo", "pid,args"]).stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "sleep 300" in a.run(["ps", "-eo", "pid,args"]).stdout
    res = vh.stop_jray(a)
    assert res.returncode == 0, res.stderr
    ps = a.run(["ps", "-eo", "pid,args"]).stdout
    assert "sleep 300" not in ps and "jray._private.jobs" not in ps and f"{agent_pid} " not in ps, ps

