"""init/shutdown lifecycle, leaks, the cluster token, malformed requests,
and Ray documentation examples run unchanged with ``import jray as ray``."""

from __future__ import annotations

import asyncio
import json
import os

import grpc
import psutil
import pytest

import jray


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE}


def test_init_twice_raises_unless_ignored_and_reinit_works():
    jray.shutdown()
    ctx = jray.init(num_cpus=1)
    try:
        with pytest.raises(RuntimeError, match="ignore_reinit_error"):
            jray.init(num_cpus=1)
        assert jray.init(ignore_reinit_error=True) is ctx
        assert "jray cluster" in ctx._repr_html_()
    finally:
        jray.shutdown()
    assert not jray.is_initialized()
    jray.init(num_cpus=1)
    try:
        assert jray.get(jray.put(5)) == 5
    finally:
        jray.shutdown()


def test_namespace_from_the_environment(monkeypatch):
    """JRAY_NAMESPACE (set by the Jupyter server extension for its kernels, or
    by hand) is the default namespace; without it each job gets its own."""
    jray.shutdown()
    monkeypatch.setenv("JRAY_NAMESPACE", "notebooks")
    jray.init(num_cpus=1)
    try:
        assert jray.get_runtime_context().namespace == "notebooks"
    finally:
        jray.shutdown()
    monkeypatch.delenv("JRAY_NAMESPACE")
    jray.init(num_cpus=1, namespace=None)
    try:
        assert jray.get_runtime_context().namespace.startswith("anonymous-")
    finally:
        jray.shutdown()


def test_shutdown_leaves_no_process_and_no_shm_file():
    jray.shutdown()
    before = _children()
    ctx = jray.init(num_cpus=2)
    store = jray.nodes()[0]["ObjectStoreSocketName"]
    assert os.path.exists(store)

    @jray.remote
    def f():
        return os.getpid()

    jray.get([f.remote() for _ in range(4)])
    assert _children() - before
    # A raylet that died after creating its store but before announcing it
    # leaves a file no node handle names; shutdown removes it by the session's name.
    orphan = store.rsplit("-", 1)[0] + "-0rphan0rphan"
    with open(orphan, "wb") as fh:
        fh.write(b"x")
    jray.shutdown()
    assert not os.path.exists(orphan)
    import time

    deadline = time.time() + 10
    while _children() - before and time.time() < deadline:
        time.sleep(0.05)
    assert not (_children() - before)
    assert not os.path.exists(store)
    assert ctx is not None


def test_unauthenticated_and_malformed_requests_are_rejected():
    jray.shutdown()
    ctx = jray.init(num_cpus=1)
    try:
        from jray._private.protocol import gcs_pb2 as gpb
        from jray._private.protocol import gcs_pb2_grpc as ggrpc

        addr = ctx["gcs_address"]

        async def probe() -> tuple:
            async with grpc.aio.insecure_channel(addr) as ch:
                stub = ggrpc.GcsServiceStub(ch)
                with pytest.raises(grpc.aio.AioRpcError) as no_token:
                    await stub.GetAllNodeInfo(gpb.GetAllNodeInfoRequest(), timeout=5)
                with pytest.raises(grpc.aio.AioRpcError) as bad_token:
                    await stub.GetAllNodeInfo(gpb.GetAllNodeInfoRequest(), timeout=5,
                                              metadata=(("jray-token", "wrong"),))
                token = jray.api._cluster.token
                raw = ch.unary_unary("/jray.protocol.GcsService/KVPut")
                with pytest.raises(grpc.aio.AioRpcError) as malformed:
                    await raw(b"\xff\xfe\x00garbage", timeout=5, metadata=(("jray-token", token),))
                return no_token.value.code(), bad_token.value.code(), malformed.value.code()

        async def probe_raylet_and_worker() -> list:
            from jray._private.protocol import core_worker_pb2 as wpb
            from jray._private.protocol import core_worker_pb2_grpc as wgrpc
            from jray._private.protocol import raylet_pb2 as rpb
            from jray._private.protocol import raylet_pb2_grpc as rgrpc

            w = jray._private.worker.global_state.worker
            codes = []
            for address, call in [
                (ctx["raylet_address"], lambda ch: rgrpc.RayletServiceStub(ch).GetNodeStats(
                    rpb.GetNodeStatsRequest(), timeout=5)),
                (f"127.0.0.1:{w.port}", lambda ch: wgrpc.CoreWorkerServiceStub(ch).GetObjectStatus(
                    wpb.GetObjectStatusRequest(object_id=b"x"), timeout=5)),
            ]:
                async with grpc.aio.insecure_channel(address) as ch:
                    with pytest.raises(grpc.aio.AioRpcError) as no_token:
                        await call(ch)
                    codes.append(no_token.value.code())
            return codes

        assert asyncio.run(probe_raylet_and_worker()) == [grpc.StatusCode.UNAUTHENTICATED] * 2
        codes = asyncio.run(probe())
        assert codes[0] == grpc.StatusCode.UNAUTHENTICATED
        assert codes[1] == grpc.StatusCode.UNAUTHENTICATED
        assert codes[2] != grpc.StatusCode.OK
        assert jray.get(jray.put("still serving")) == "still serving"
        assert len(jray.nodes()) == 1
    finally:
        jray.shutdown()


def test_ray_documentation_examples_run_unchanged():
    import jray as ray

    ray.shutdown()
    ray.init(num_cpus=2)
    try:
        # Tasks (Ray Core "Tasks" page)
        @ray.remote
        def square(x):
            return x * x

        futures = [square.remote(i) for i in range(4)]
        assert ray.get(futures) == [0, 1, 4, 9]

        # Actors (Ray Core "Actors" page)
        @ray.remote
        class Counter:
            def __init__(self):
                self.value = 0

            def increment(self):
                self.value += 1
                return self.value

            def get_counter(self):
                return self.value

        counter = Counter.remote()
        [counter.increment.remote() for _ in range(5)]
        assert ray.get(counter.get_counter.remote()) == 5

        # Objects (Ray Core "Objects" page)
        y_ref = ray.put(1)
        assert ray.get(y_ref) == 1
        assert ray.get([ray.put(i) for i in range(3)]) == [0, 1, 2]

        # Passing objects: a ref argument is resolved, a nested one is not.
        @ray.remote
        def echo_and_get(x_list):
            return ray.get(x_list)

        assert ray.get(echo_and_get.remote([ray.put(7)])) == [7]

        # ray.wait pattern: process results as they finish
        refs = [square.remote(i) for i in range(6)]
        got = []
        while refs:
            done, refs = ray.wait(refs, num_returns=1, timeout=30)
            got.extend(ray.get(done))
        assert sorted(got) == [0, 1, 4, 9, 16, 25]
    finally:
        ray.shutdown()


def test_log_to_driver_false_silences_worker_output(capfd):
    jray.shutdown()
    jray.init(num_cpus=1, log_to_driver=False)
    try:
        @jray.remote
        def talk():
            print("should-not-appear")
            return 1

        assert jray.get(talk.remote(), timeout=30) == 1
        import time

        time.sleep(0.5)
        assert "should-not-appear" not in capfd.readouterr().out
    finally:
        jray.shutdown()


def test_workers_forked_from_the_zygote_import_nothing_more(jray_cluster):
    """Every module an actor or a task needs (jray's, the standard library's:
    the 'idna' codec of a first connection by host name, too) is imported by
    the zygote before it forks, so starting an actor costs no imports (or
    compiles)."""
    import json
    import subprocess
    import sys

    # The raylet imports its own modules (and the GCS's it serves) before it
    # forks the zygote, which imports the rest (``warm``) after the fork.
    warm = json.loads(subprocess.run(
        [sys.executable, "-c", "import importlib, json, sys\n"
         "from jray._private.raylet import __main__ as raylet\n"
         "for name in raylet._RAYLET_MODULES + raylet._GCS_MODULES:\n"
         "    importlib.import_module(name)\n"
         "from jray._private.worker.zygote import warm\n"
         "warm()\n"
         "print(json.dumps(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True, timeout=60, env={**os.environ, "_JRAY_LEAN_IMPORT": "1"}).stdout)

    def loaded():
        import sys
        return sorted(sys.modules)

    @jray.remote
    class Probe:
        def modules(self):
            jray.get_runtime_context().get_actor_id()
            return loaded()

    a = Probe.remote()
    in_actor = set(jray.get(a.modules.remote(), timeout=60))
    in_task = set(jray.get(jray.remote(loaded).remote(), timeout=60))
    assert "jray._private.worker.core_worker" in in_actor
    # The raylet forks the zygote while ``python -m jray._private.raylet``
    # runs: that package's (empty) __init__ and runpy came with the fork, not an import.
    forked_with = {"jray._private.raylet", "runpy"}
    assert in_actor - set(warm) - forked_with == set()
    assert in_task - set(warm) - forked_with == set()


def test_init_returns_with_a_warm_worker_and_without_one_for_zero_cpus():
    """init() that starts its cluster returns once the node's first worker has
    registered, so the first task does not wait for a worker to start (issue
    19: first task after init as quick as the next); a node with no CPUs
    prestarts none, and init does not wait for one."""
    from jray._private import driver
    from jray.util.state import list_workers

    jray.shutdown()
    jray.init(num_cpus=1)
    try:
        # Asked right away, not after a wait: a worker process is registered.
        assert driver.wait_worker_ready(0) is True
        assert any(w["worker_type"] == "WORKER" and w["worker_id"] for w in list_workers())
    finally:
        jray.shutdown()
    jray.init(num_cpus=0)
    try:
        assert driver.wait_worker_ready(0) is False  # none prestarted: nothing to wait for
    finally:
        jray.shutdown()


def _workers_now() -> list[dict]:
    from jray.util.state import list_workers

    return [w for w in list_workers() if w["worker_type"] == "WORKER" and w.get("is_alive", True)]


def test_one_worker_is_prestarted_and_the_others_fork_when_work_comes(monkeypatch):
    """A node prestarts one worker (not one per CPU, as Ray does: idle
    workers are memory); two tasks at once still run at once, the second
    on a worker forked for it, which stays; JRAY_PRESTART_WORKERS=N
    prestarts N."""
    import time

    from jray._private import driver

    if jray.is_initialized():
        jray.shutdown()
    jray.init(num_cpus=2, object_store_memory=64 * 1024 * 1024)
    try:
        assert driver.wait_worker_ready(5) is True
        time.sleep(0.5)  # nothing else starts by itself
        assert len(_workers_now()) == 1

        @jray.remote
        def together(peer):
            # Each waits until the other has started: only two workers at once can finish this.
            import os as _os
            import time as _time

            jray.get(peer.arrive.remote())
            deadline = _time.monotonic() + 30
            while jray.get(peer.count.remote()) < 2:
                assert _time.monotonic() < deadline, "the other task never started"
                _time.sleep(0.01)
            return _os.getpid()

        @jray.remote(num_cpus=0)
        class Meet:
            def __init__(self):
                self.n = 0

            def arrive(self):
                self.n += 1

            def count(self):
                return self.n

        meet = Meet.remote()
        pids = jray.get([together.remote(meet), together.remote(meet)], timeout=60)
        assert len(set(pids)) == 2
        # The forked one stays (up to the node's CPUs), beside the actor's worker.
        assert {w["pid"] for w in _workers_now() if w["state"] != "ACTOR"} >= set(pids)
    finally:
        jray.shutdown()
    monkeypatch.setenv("JRAY_PRESTART_WORKERS", "2")
    jray.init(num_cpus=2, object_store_memory=64 * 1024 * 1024)
    try:
        deadline = time.monotonic() + 20
        while len(_workers_now()) < 2:
            assert time.monotonic() < deadline, _workers_now()
            time.sleep(0.1)
    finally:
        jray.shutdown()


def _raylet_zygote_worker() -> tuple[psutil.Process, psutil.Process, psutil.Process]:
    """A task's worker, the zygote that forked it and that zygote's parent."""
    worker = psutil.Process(jray.get(jray.remote(lambda: os.getpid()).remote(), timeout=60))
    zygote = worker.parent()
    assert zygote is not None
    raylet = zygote.parent()
    assert raylet is not None
    return raylet, zygote, worker


def test_the_raylet_forks_its_zygote_and_the_zygote_names_itself(jray_cluster):
    """The zygote is forked by the raylet (sharing its imported pages) and
    shows the zygote's command line, so ``ps`` and the tools tell it, and
    the workers it forks, from the raylet."""
    raylet, zygote, worker = _raylet_zygote_worker()
    assert zygote.cmdline()[1:] == ["-m", "jray._private.worker.zygote"]
    assert "jray._private.raylet" in " ".join(raylet.cmdline())
    assert worker.cmdline()[1:] == ["-m", "jray._private.worker.zygote"]
    # The raylet's memory and the zygote's are the same pages where nothing was written since the fork.
    assert zygote.memory_full_info().uss < zygote.memory_info().rss / 2


def test_a_zygote_of_its_own_where_forking_is_turned_off(monkeypatch):
    """``JRAY_ZYGOTE_FORK=0``: the raylet starts the zygote as an interpreter of
    its own (as before), and workers come from it the same way."""
    if jray.is_initialized():
        jray.shutdown()
    monkeypatch.setenv("JRAY_ZYGOTE_FORK", "0")
    jray.init(num_cpus=1, object_store_memory=64 * 1024 * 1024)
    try:
        raylet, zygote, _worker = _raylet_zygote_worker()
        assert "jray._private.raylet" in " ".join(raylet.cmdline())
        assert zygote.environ().get("JRAY_RAYLET_PID") == str(raylet.pid)  # set at its exec, not inherited
    finally:
        jray.shutdown()


def test_retitle_sets_the_command_line_others_read():
    import subprocess
    import sys

    code = ("import sys, time\n"
            "from jray._private.worker.zygote import retitle\n"
            "print(retitle(['python', '-m', 'some.module']), retitle(['x' * 5000]), flush=True)\n"
            "time.sleep(30)\n")
    p = subprocess.Popen([sys.executable, "-c", code, "padding-" * 20], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        assert p.stdout.readline().split() == ["True", "False"]  # the second is longer than the area
        assert psutil.Process(p.pid).cmdline() == ["python", "-m", "some.module"]
        with open(f"/proc/{p.pid}/cmdline", "rb") as f:
            assert f.read().split(b"\0")[0] == b"python -m some.module"
    finally:
        p.kill()
        p.wait(10)


def test_the_head_raylet_serves_the_gcs_from_its_own_process():
    """``jray.init`` starts one process, the head raylet, and it serves the
    GCS too (one Python process fewer): the GCS's pid is the raylet's, its
    records still go to ``gcs.log``, no process is taken for a GCS, and
    tasks, actors and the GCS's tables work; shutdown leaves nothing."""
    import time

    from jray import api
    from jray._private import node

    if jray.is_initialized():
        jray.shutdown()
    before = _children()
    jray.init(num_cpus=1, object_store_memory=64 * 1024 * 1024)
    try:
        handle = api._cluster
        assert handle is not None
        assert handle.gcs_pid == handle.head.raylet_pid
        assert psutil.Process(handle.gcs_pid).cmdline()[1:3] == ["-m", "jray._private.raylet"]
        assert [p for p in psutil.Process(handle.head.raylet_pid).children() if "jray._private.gcs" in p.cmdline()] == []
        with open(os.path.join(handle.session_dir, "logs", "gcs.log")) as f:
            assert "registered" in f.read()  # the GCS's own log, as from a process of its own

        @jray.remote
        class Counter:
            def __init__(self) -> None:
                self.n = 0

            def add(self) -> int:
                self.n += 1
                return self.n

        c = Counter.options(name="the-counter").remote()
        assert jray.get([c.add.remote() for _ in range(3)], timeout=60) == [1, 2, 3]
        assert jray.get(jray.get_actor("the-counter").add.remote(), timeout=60) == 4  # the GCS's name table
        assert jray.get(jray.remote(lambda: 41 + 1).remote(), timeout=60) == 42
        with open(os.path.join(handle.session_dir, "cluster.json")) as f:
            info = json.load(f)  # what the tools (jray stop/status, jray up) read
        roles = {role for role, p in node.session_processes(info) if p.pid == handle.gcs_pid}
        assert roles == {"raylet", "gcs"}, roles  # a GCS is seen running: the head raylet
    finally:
        jray.shutdown()
    deadline = time.time() + 10
    while _children() - before and time.time() < deadline:
        time.sleep(0.05)
    assert not (_children() - before)


def test_the_head_raylet_forks_its_gcs_which_names_itself_and_outlives_it(monkeypatch):
    """``JRAY_GCS_IN_PROCESS=0``: the head raylet forks the GCS from itself
    (sharing its imported pages): the GCS shows its own command line (the
    tools find it by that and by its session), is not taken for a worker,
    and stops with the cluster, leaving nothing."""
    import time

    from jray import api
    from jray._private import node

    if jray.is_initialized():
        jray.shutdown()
    monkeypatch.setenv("JRAY_GCS_IN_PROCESS", "0")
    before = _children()
    jray.init(num_cpus=1, object_store_memory=64 * 1024 * 1024)
    try:
        handle = api._cluster
        assert handle is not None
        gcs = psutil.Process(handle.gcs_pid)
        raylet = psutil.Process(handle.head.raylet_pid)
        assert gcs.parent() is not None and gcs.parent().pid == raylet.pid
        assert gcs.cmdline()[1:3] == ["-m", "jray._private.gcs"]
        assert handle.session_dir in gcs.cmdline()
        assert gcs.pid != raylet.pid and os.getsid(gcs.pid) == gcs.pid  # a session of its own, as before
        # What both imported is the same pages until written: most of the GCS is not its own.
        assert gcs.memory_full_info().uss < gcs.memory_info().rss / 2
        info = node.read_address_file() or {}
        if info.get("session_dir") == handle.session_dir:
            roles = {role for role, p in node.session_processes(info) if p.pid == gcs.pid}
            assert roles == {"gcs"}, roles
        assert jray.get(jray.remote(lambda: 41 + 1).remote(), timeout=60) == 42
    finally:
        jray.shutdown()
    deadline = time.time() + 10
    while _children() - before and time.time() < deadline:
        time.sleep(0.05)
    assert not (_children() - before)
    assert not gcs.is_running() or gcs.status() == psutil.STATUS_ZOMBIE


def test_a_gcs_of_its_own_where_forking_it_is_turned_off(monkeypatch):
    """``JRAY_GCS_FORK=0``: the GCS is an interpreter of its own beside the raylet, as before."""
    from jray import api

    if jray.is_initialized():
        jray.shutdown()
    monkeypatch.setenv("JRAY_GCS_FORK", "0")
    jray.init(num_cpus=1, object_store_memory=64 * 1024 * 1024)
    try:
        handle = api._cluster
        assert handle is not None
        gcs = psutil.Process(handle.gcs_pid)
        assert gcs.parent() is not None and gcs.parent().pid == os.getpid()
        assert jray.get(jray.remote(lambda: 41 + 1).remote(), timeout=60) == 42
    finally:
        jray.shutdown()


@pytest.mark.parametrize("in_process", ["1", "0"])
def test_a_gcs_that_cannot_start_fails_init_with_its_reason(tmp_path, monkeypatch, in_process):
    """The GCS fails at start-up (its port is taken), served by the head
    raylet or forked from it: ``start_head`` fails saying so, within its
    timeout, and leaves no process and no store file."""
    import socket

    from jray._private import node

    before = _children()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    monkeypatch.setenv("JRAY_TMPDIR", str(tmp_path))
    monkeypatch.setenv("JRAY_GCS_IN_PROCESS", in_process)
    reason = "the GCS did not start: .*[Bb]ind" if in_process == "1" else "GCS exited during start-up: .*[Bb]ind"
    try:
        with pytest.raises(RuntimeError, match=reason):
            node.start_head(num_cpus=0, port=taken.getsockname()[1], object_store_memory=64 * 1024 * 1024)
    finally:
        taken.close()
    assert not (_children() - before)
    sessions = [d for d in os.listdir(tmp_path) if d.startswith("session_")]
    assert sessions  # it got as far as making one
    assert not [f for f in os.listdir("/dev/shm") if any(f.startswith(f"jray-{s}-") for s in sessions)]
