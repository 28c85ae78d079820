"""Logs on another machine (issue 18): two virtual hosts (network namespaces
with private /tmp: ``jray._private.virtual_hosts``), a task run on the
second; ``jray logs`` on the first reads its worker's log through the
second's raylet, though the file exists only on the second machine.
Skipped where namespaces cannot be made (not root, no ``ip``/``unshare``)."""

from __future__ import annotations

import os

import pytest

from jray._private import virtual_hosts as vh

DRIVER = """
import json, uuid
import jray

jray.init()

@jray.remote(resources={"host_b": 1})
def on_b(tag):
    import os, socket
    print("hello from", socket.gethostname(), tag)
    return os.getpid()

tag = uuid.uuid4().hex[:8]
ref = on_b.remote(tag)
pid = jray.get(ref, timeout=60)
print(json.dumps({"tag": tag, "pid": pid, "task_id": ref.task_id().hex()}))
"""


@pytest.fixture(autouse=True)
def _need_hosts():
    reason = vh.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


@pytest.mark.timeout(240)
def test_jray_logs_reads_another_machines_worker_log():
    with vh.VirtualHosts() as v:
        a, b = v.add_host("a"), v.add_host("b")
        address, token = vh.start_head(a, extra_args=["--resources", '{"host_a": 1}'])
        node_b = vh.start_node(b, address, token, extra_args=["--resources", '{"host_b": 1}'])
        out = vh.run_driver_json(a, DRIVER, address, token, timeout=120)
        env = vh.jray_env(a, JRAY_ADDRESS=address, JRAY_TOKEN=token)

        def logs(*args: str) -> str:
            r = a.run([*vh.CLI, "logs", *args], env=env, timeout=60)
            assert r.returncode == 0, r.stdout + r.stderr
            return r.stdout

        text = ""
        for _ in range(50):  # the task's row (its worker) reaches the GCS in a batch: bounded retries
            r = a.run([*vh.CLI, "logs", "task", "--id", out["task_id"]], env=env, timeout=60)
            text = r.stdout
            if f"hello from b {out['tag']}" in text:
                break
        assert f"hello from b {out['tag']}" in text, text + r.stderr
        assert f"hello from b {out['tag']}" in logs("worker", "--pid", str(out["pid"]))
        listing = logs("--node-ip", b.ip)  # b's files (a glob with one match would print it)
        assert node_b[:12] in listing and f"worker pid {out['pid']}" in listing
        name = next(line.split()[0] for line in listing.splitlines() if f"worker pid {out['pid']}" in line)
        assert f"hello from b {out['tag']}" in logs("--node-ip", b.ip, name)
        # The file is on b's disk only: a's /tmp is its own.
        session_files = [os.path.join(root, f) for root, _, fs in os.walk(b.fs_path("/tmp/jray")) for f in fs]
        assert any(p.endswith("/logs/" + name) for p in session_files)
        assert not any(f == name for _, _, fs in os.walk(a.fs_path("/tmp/jray")) for f in fs)
        assert vh.stop_jray(b).returncode == 0 and vh.stop_jray(a).returncode == 0
    assert v.leftovers() == []
