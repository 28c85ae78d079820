"""Chaos (issue 15): 10,000 tasks and 2,000 actor calls on three "machines"
(network namespaces with private /tmp and /dev/shm) while a worker is
SIGKILLed every 2 s, one machine dies silently and comes back, the network
to another is delayed and lossy for 20 s (``tc netem``, or jray's
userspace delay line where the kernel has no netem), and the
GCS is killed once. Every result must be correct, nothing may hang, and no
process or /dev/shm file may be left after ``jray stop``."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from jray._private import virtual_hosts as vh

pytestmark = pytest.mark.timeout(400)

DRIVER = textwrap.dedent("""
    import json, sys, time
    import jray
    jray.init()

    @jray.remote(max_retries=-1)
    def square(i):
        time.sleep(0.01)  # the run lasts through the chaos plan (about 30 s)
        return i * i

    @jray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0)
    class Doubler:
        def double(self, x):
            time.sleep(0.002)
            return 2 * x

    t0 = time.monotonic()
    actors = [Doubler.remote() for _ in range(4)]
    jray.get([a.double.remote(0) for a in actors], timeout=120)
    print("ready", flush=True)
    bad, done_tasks, done_calls = [], 0, 0
    for start in range(0, 10_000, 500):
        refs = [square.remote(i) for i in range(start, start + 500)]
        calls = [actors[j % 4].double.remote(j) for j in range(start // 5, start // 5 + 100)]
        got = jray.get(refs, timeout=240)
        bad += [i for i, v in zip(range(start, start + 500), got) if v != i * i]
        done_tasks += len(got)
        doubled = jray.get(calls, timeout=240)
        bad += [j for j, v in zip(range(start // 5, start // 5 + 100), doubled) if v != 2 * j]
        done_calls += len(doubled)
    print(json.dumps({"tasks": done_tasks, "calls": done_calls, "bad": bad[:20],
                      "seconds": time.monotonic() - t0}), flush=True)
""")


def _workers(host: vh.Host) -> list[int]:
    """The host's worker processes (root-namespace pids): those the raylet
    started, and those its zygote forked (they carry the zygote's cmdline)."""
    procs: dict[int, tuple[int, str]] = {}
    for pid in host.processes():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        procs[pid] = (ppid, cmd)
    zygotes = {pid for pid, (_pp, cmd) in procs.items() if "zygote" in cmd and procs.get(_pp, (0, ""))[1].find(
        "jray._private.raylet") >= 0}
    return [pid for pid, (ppid, cmd) in procs.items()
            if pid not in zygotes and (ppid in zygotes or ("jray._private.worker" in cmd and "zygote" not in cmd))]


def test_chaos_every_result_correct_nothing_left():
    reason = vh.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    netem_reason = vh.delay_unavailable_reason()
    events: list[str] = []
    with vh.VirtualHosts() as v:
        a, b, c = v.add_host("a"), v.add_host("b"), v.add_host("c")
        address, token = vh.start_head(a, num_cpus=2)
        vh.start_node(b, address, token, num_cpus=2)
        vh.start_node(c, address, token, num_cpus=2)
        drv = a.popen([sys.executable, "-c", DRIVER], env=vh.jray_env(a, JRAY_ADDRESS=address, JRAY_TOKEN=token),
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stop = threading.Event()

        def chaos() -> None:
            rng = random.Random(7)
            t0 = time.monotonic()
            plan = {2.0: "c dies", 4.0: "gcs dies", 5.0: "b netem", 12.0: "c back", 25.0: "b netem off"}
            tick = 0
            while not stop.wait(1.0):
                tick += 1
                now = time.monotonic() - t0
                for at in sorted(k for k in plan if k <= now):
                    what = plan.pop(at)
                    if what == "c dies":
                        c.link_down()  # silent: no reset reaches anyone
                        c.kill_all()
                    elif what == "c back":
                        c.link_up()
                        vh.start_node(c, address, token, num_cpus=2)
                    elif what == "gcs dies":
                        with open(a.fs_path("/tmp/jray/jray_current_cluster")) as f:
                            session = json.load(f)["session_dir"]
                        with open(a.fs_path(os.path.join(session, "cluster.json"))) as f:
                            gcs_pid = json.load(f)["gcs_pid"]  # inside a's pid namespace
                        a.run(["kill", "-9", str(gcs_pid)])  # its supervisor restarts it
                    elif what.startswith("b netem"):
                        if netem_reason is not None:
                            what += f" skipped ({netem_reason})"
                        elif what == "b netem":
                            b.netem(delay_ms=100, loss_pct=2)
                        else:
                            b.netem()
                    events.append(f"{now:5.1f}s {what}")
                hosts = [h for h in (a, b, c) if _workers(h)]
                if hosts and tick % 2 == 0:  # a worker SIGKILLed every 2 s
                    h = rng.choice(hosts)
                    pid = rng.choice(_workers(h))
                    try:
                        os.kill(pid, signal.SIGKILL)
                        events.append(f"{now:5.1f}s SIGKILL worker {pid} on {h.name}")
                    except ProcessLookupError:
                        pass

        try:
            assert drv.stdout is not None
            assert drv.stdout.readline().strip() == "ready", drv.stderr.read()[-3000:] if drv.stderr else ""
            t = threading.Thread(target=chaos, daemon=True)
            t.start()
            try:
                out, err = drv.communicate(timeout=300)
            finally:
                stop.set()
                t.join(30)
                if netem_reason is None:
                    b.netem()
        finally:
            if drv.poll() is None:
                drv.kill()
                drv.communicate()
        print("\n".join(events))
        assert drv.returncode == 0, err[-4000:]
        res = json.loads(out.strip().splitlines()[-1])
        print(f"chaos run: {res}")
        assert res["tasks"] == 10_000 and res["calls"] == 2_000 and res["bad"] == []
        assert any("SIGKILL worker" in e for e in events) and any("gcs dies" in e for e in events)
        for h in (c, b, a):
            vh.stop_jray(h)
        for h in (a, b, c):
            assert os.listdir(h.fs_path("/dev/shm")) == [], h.name
    assert v.leftovers() == []
