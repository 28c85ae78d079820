"""deploy/slurm/jray.sbatch on a real SLURM of three nodes: the driver sees
every node and runs tasks on each; every daemon stops when the driver ends
and when the job is cancelled mid-run, leaving no process, /dev/shm file or
session directory on any node."""

from __future__ import annotations

import os
import re
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SBATCH = os.path.join(ROOT, "deploy", "slurm", "jray.sbatch")

DRIVER = """
import json, socket, time
import jray
from jray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

start = time.time()
jray.init()   # bare: JRAY_ADDRESS / JRAY_TOKEN from the script
nodes = [n for n in jray.nodes() if n["Alive"]]

@jray.remote(num_cpus=1)
def where():
    return socket.gethostname()

refs = [where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote()
        for n in nodes]
hosts = jray.get(refs, timeout=60)
print("RESULT " + json.dumps({"nodes": len(nodes), "hosts": sorted(hosts), "started": start,
                              "cpus": jray.cluster_resources().get("CPU")}), flush=True)
"""

SLEEPER = """
import jray, time
jray.init()

@jray.remote
def nap():
    time.sleep(600)

ref = nap.remote()
print("READY", flush=True)
time.sleep(600)
"""


def _submit(slurm, script: str, *args: str) -> tuple[str, str]:
    jobs = os.path.join(slurm.base, "jobs")
    driver = os.path.join(jobs, f"driver-{time.monotonic_ns()}.py")
    with open(driver, "w") as f:
        f.write(script)
    res = slurm.run(["sbatch", "-N", "3", "--mem=600", "-D", jobs, "-o", os.path.join(jobs, "%j.out"), *args,
                     SBATCH, sys.executable, driver])
    job = res.stdout.split()[-1]
    return job, os.path.join(jobs, f"{job}.out")


def _read(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def _assert_nodes_clean(slurm, out: str) -> None:
    # The checkout and its virtualenv, where they live under /tmp (a fresh clone there), are
    # bound into each host's /tmp by the harness: not something the job left.
    from jray._private.virtual_hosts import _kept_under_tmp

    kept = {p.split("/")[2] for p in _kept_under_tmp()}
    deadline = time.monotonic() + 10
    while True:
        left = {n: (slurm.node_processes(n), slurm.node_shm(n),
                    [e for e in os.listdir(slurm.host(n).fs_path("/tmp")) if e not in kept])
                for n in slurm.node_names}
        if all(not any(v) for v in left.values()):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"left on the nodes (processes, /dev/shm, /tmp): {left}\njob output:\n{out}")
        time.sleep(0.2)


def test_sbatch_three_nodes(slurm):
    t0 = time.time()
    job, out_path = _submit(slurm, DRIVER)
    slurm.wait_job_gone(job, timeout=90)
    took = time.time() - t0
    out = _read(out_path)
    m = re.search(r"^RESULT (.*)$", out, re.M)
    assert m, out
    import json

    res = json.loads(m.group(1))
    assert res["nodes"] == 3, out
    assert res["hosts"] == ["n1", "n2", "n3"], out  # a task ran on every node
    assert res["cpus"] == 6, out  # SLURM_CPUS_ON_NODE (2) on each node
    assert "the command exited with 0" in out, out
    joined = re.search(r"all 3 node\(s\) joined after (\d+)s", out)
    assert joined, out
    print(f"\nsbatch -> driver attached to 3 joined nodes: {res['started'] - t0:.1f} s; whole job {took:.1f} s")
    _assert_nodes_clean(slurm, out)


KILL_A_NODE = """
import os, signal, time
import jray, psutil
from jray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

jray.init()
me = jray.get_runtime_context().get_node_id()
other = next(n["NodeID"] for n in jray.nodes() if n["Alive"] and n["NodeID"] != me)
on_other = NodeAffinitySchedulingStrategy(other, soft=False)

@jray.remote(num_cpus=0)
def left_there():
    tmp = os.environ["JRAY_TMPDIR"]
    return sorted(os.listdir(tmp)), sorted(f for f in os.listdir("/dev/shm") if f.startswith("jray-"))

@jray.remote(num_cpus=0)
def kill_the_node():
    # The raylet, the `jray start --block` above it and the node script's shell: SIGKILL, as a
    # machine's OOM killer would; nothing of that node gets to clean up after itself.
    ps = psutil.Process().parents()
    raylet = next(p for p in ps if "jray._private.raylet" in p.cmdline())
    chain = [raylet] + raylet.parents()[:2]
    assert "bash" in chain[-1].name(), [p.cmdline() for p in chain]
    for p in reversed(chain):
        p.kill()

print("BEFORE", jray.get(left_there.options(scheduling_strategy=on_other).remote(), timeout=60), flush=True)
kill_the_node.options(scheduling_strategy=on_other).remote()
deadline = time.monotonic() + 60
while any(n["NodeID"] == other and n["Alive"] for n in jray.nodes()):
    assert time.monotonic() < deadline, "the killed node is still alive"
    time.sleep(0.5)
print("KILLED", flush=True)
"""


def test_a_node_killed_mid_job_leaves_nothing(slurm):
    """A node that cannot stop itself (SIGKILLed) leaves its session directory
    and store file: the job's end removes them with a step of its own."""
    job, out_path = _submit(slurm, KILL_A_NODE)
    slurm.wait_job_gone(job, timeout=120)
    out = _read(out_path)
    m = re.search(r"^BEFORE (.*)$", out, re.M)
    assert m and "KILLED" in out, out
    import ast

    tmp, shm = ast.literal_eval(m.group(1))
    assert any(e.startswith("session_") for e in tmp) and shm, out  # there was something to leave
    assert "the command exited with 0" in out, out
    assert "a node did not stop cleanly" in out, out
    _assert_nodes_clean(slurm, out)


def test_sbatch_exit_code(slurm):
    jobs = os.path.join(slurm.base, "jobs")
    res = slurm.run(["sbatch", "-N", "1", "--mem=600", "-D", jobs, "-o", os.path.join(jobs, "%j.out"),
                     SBATCH, sys.executable, "-c", "import jray; jray.init(); raise SystemExit(3)"])
    job = res.stdout.split()[-1]
    slurm.wait_job_gone(job, timeout=60)
    out = _read(os.path.join(jobs, f"{job}.out"))
    assert "the command exited with 3" in out, out
    state = slurm.run(["scontrol", "show", "job", job], check=False).stdout
    assert "ExitCode=3:0" in state, state
    _assert_nodes_clean(slurm, out)


def test_scancel_stops_every_daemon(slurm):
    job, out_path = _submit(slurm, SLEEPER)
    deadline = time.monotonic() + 60
    while "READY" not in _read(out_path):
        assert time.monotonic() < deadline, _read(out_path)
        assert job in slurm.jobs(), _read(out_path)
        time.sleep(0.2)
    assert all(slurm.node_processes(n) for n in slurm.node_names)  # daemons on every node
    t0 = time.monotonic()
    slurm.run(["scancel", job])
    slurm.wait_job_gone(job, timeout=60)
    stopped = time.monotonic() - t0
    out = _read(out_path)
    _assert_nodes_clean(slurm, out)
    assert "got SIGTERM" in out, out
    # Stopped by the script's trap and jray start --block, before SLURM's SIGKILL (KillWait=15 s here).
    assert stopped < 15, (stopped, out)
    print(f"\nscancel -> job gone, every daemon stopped: {stopped:.1f} s")



def _start_serving(slurm, nodes: int = 2, *args: str) -> tuple[str, str, dict[str, str]]:
    """A job with no command (the cluster serves until cancelled); its id,
    output path and the environment its 0600 env file gives."""
    jobs = os.path.join(slurm.base, "jobs")
    res = slurm.run(["sbatch", "-N", str(nodes), "--mem=600", "-D", jobs, "-o", os.path.join(jobs, "%j.out"),
                     *args, SBATCH])
    job = res.stdout.split()[-1]
    out_path = os.path.join(jobs, f"{job}.out")
    env_file = os.path.join(jobs, f"jray-{job}.env")
    deadline = time.monotonic() + 60
    while not os.path.exists(env_file):
        assert time.monotonic() < deadline and job in slurm.jobs(), _read(out_path)
        time.sleep(0.2)
    assert os.stat(env_file).st_mode & 0o777 == 0o600
    env = slurm.env()
    for line in _read(env_file).splitlines():
        key, value = line.removeprefix("export ").split("=", 1)
        env[key] = value
    return job, out_path, env


def test_no_command_serves_a_login_node_driver(slurm):
    """Without a command the cluster stays up; a driver on the login node
    (no jray node there) connects with the job's env file."""
    job, out_path, env = _start_serving(slurm)
    probe = ("import jray; jray.init(); f = jray.remote(lambda: 41 + 1); "
             "print('ANSWER', jray.get(f.remote(), timeout=30), len(jray.nodes()))")
    res = slurm.run([sys.executable, "-c", probe], env=env, timeout=60)
    assert "ANSWER 42 2" in res.stdout, res.stdout + res.stderr
    # The token is only in the 0600 env file: not in the job's output, nor in what squeue/scontrol show.
    shown = (_read(out_path) + slurm.run(["squeue", "-o", "%all"]).stdout
             + slurm.run(["scontrol", "show", "job", "-dd", job]).stdout
             + slurm.run(["scontrol", "show", "step", "-dd"], check=False).stdout)
    assert env["JRAY_TOKEN"] not in shown
    slurm.run(["scancel", job])
    slurm.wait_job_gone(job, timeout=60)
    out = _read(out_path)
    assert not os.path.exists(out_path.replace(f"{job}.out", f"jray-{job}.env")), out
    _assert_nodes_clean(slurm, out)


@pytest.mark.skipif(os.environ.get("JRAY_SLURM_TIME_LIMIT_TEST") != "1",
                    reason="about 90 s (SLURM's time limits are whole minutes, checked every 30 s); "
                           "JRAY_SLURM_TIME_LIMIT_TEST=1 runs it")
@pytest.mark.timeout(200)
def test_time_limit_stops_every_daemon(slurm):
    job, out_path, _ = _start_serving(slurm, 2, "--time=1")
    slurm.wait_job_gone(job, timeout=150)
    out = _read(out_path)
    assert "got SIGTERM" in out, out
    _assert_nodes_clean(slurm, out)
