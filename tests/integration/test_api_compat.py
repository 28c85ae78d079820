"""Parts of Ray's Core API that programs reach for, with Ray's semantics:
auto-init on first use, node ids in every form Ray hands out, waiting on
streaming generators, ``cloudpickle``, accelerator types."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

import jray
from jray.util.scheduling_strategies import NodeAffinitySchedulingStrategy


def test_put_before_init_starts_a_cluster():
    code = ("import jray\n"
            "ref = jray.put({'a': 1})\n"
            "assert jray.is_initialized()\n"
            "print(jray.get(ref))\n"
            "jray.shutdown()\n")
    env = {k: v for k, v in os.environ.items() if k not in ("JRAY_ADDRESS", "RAY_ADDRESS", "JRAY_TOKEN")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "{'a': 1}"


def test_output_of_tasks_submitted_just_before_exit_reaches_the_program():
    code = ("import jray\n"
            "jray.init(num_cpus=1)\n"
            "@jray.remote\n"
            "def f(i):\n"
            "    print(f'line from task {i}')\n"
            "    return i\n"
            "refs = [f.remote(i) for i in range(3)]\n")  # and the program ends, as in Ray's docs
    env = {k: v for k, v in os.environ.items() if k not in ("JRAY_ADDRESS", "RAY_ADDRESS", "JRAY_TOKEN")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert all(f"line from task {i}" in out for i in range(3)), out


@jray.remote
def where():
    return jray.get_runtime_context().get_node_id()


def test_node_affinity_takes_every_form_of_node_id(jray_cluster):
    ctx_id = jray.get_runtime_context().node_id  # a NodeID object
    hex_id = jray.get_runtime_context().get_node_id()
    row_id = jray.nodes()[0]["NodeID"]
    for form in (ctx_id, hex_id, row_id, bytes.fromhex(hex_id)):
        strategy = NodeAffinitySchedulingStrategy(form, soft=False)
        assert jray.get(where.options(scheduling_strategy=strategy).remote(), timeout=30) == hex_id
    with pytest.raises(ValueError, match="hex id"):
        NodeAffinitySchedulingStrategy("not-hex", soft=False)
    with pytest.raises(ValueError, match="node id"):
        NodeAffinitySchedulingStrategy(3.5, soft=False)


@jray.remote(num_returns="streaming")
def slow_items(n, pause):
    for i in range(n):
        time.sleep(pause)
        yield i


@jray.remote
def slow(x, pause):
    time.sleep(pause)
    return x


def test_wait_accepts_streaming_generators(jray_cluster):
    gen = slow_items.remote(2, 0.3)
    late = slow.remote("late", 5)
    ready, not_ready = jray.wait([gen, late], num_returns=1, timeout=20)
    assert ready == [gen] and not_ready == [late]  # the generator's next item came first
    assert jray.get(next(gen), timeout=10) == 0
    ready, _ = jray.wait([gen], timeout=20)
    assert ready == [gen]
    assert jray.get(next(gen), timeout=10) == 1
    ready, _ = jray.wait([gen], timeout=20)  # ended: next() would not block either
    assert ready == [gen]
    with pytest.raises(StopIteration):
        next(gen)
    ready, not_ready = jray.wait([slow_items.remote(1, 5)], timeout=0.2)
    assert ready == [] and len(not_ready) == 1
    jray.cancel(late)


def test_cloudpickle_is_exported():
    import jray.cloudpickle as cp

    assert cp.loads(cp.dumps(lambda x: x + 1))(1) == 2
    assert callable(cp.register_pickle_by_value)


@jray.remote(num_returns="dynamic")
def squares(n):
    for i in range(n):
        yield i * i


def test_dynamic_returns_give_a_generator_of_refs(jray_cluster):
    ref = squares.remote(4)
    assert isinstance(ref, jray.ObjectRef)
    gen = jray.get(ref, timeout=30)
    assert isinstance(gen, jray.DynamicObjectRefGenerator) and len(gen) == 4
    refs = list(gen)
    assert all(isinstance(r, jray.ObjectRef) for r in refs)
    assert jray.get(refs, timeout=30) == [0, 1, 4, 9]
    del gen, ref
    assert jray.get(refs[3], timeout=30) == 9  # the item lives while a ref to it does


@jray.remote
class Busy:
    def plain(self, seconds):
        time.sleep(seconds)
        return "done"


def test_a_cancelled_running_actor_call_raises_task_cancelled(jray_cluster):
    a = Busy.remote()
    ref = a.plain.remote(1.0)
    time.sleep(0.3)
    jray.cancel(ref)  # a sync actor's call runs on (actor state is not interrupted) ...
    with pytest.raises(jray.exceptions.TaskCancelledError):  # ... but its result is TaskCancelledError, as in Ray
        jray.get(ref, timeout=30)
    assert jray.get(a.plain.remote(0), timeout=30) == "done"


def test_every_actor_has_ray_ready_and_terminate(jray_cluster):
    @jray.remote
    class Plain:
        def pid(self):
            return os.getpid()

    a = Plain.remote()
    assert jray.get(a.__ray_ready__.remote(), timeout=30) is True
    assert jray.get(a.pid.remote(), timeout=30) > 0
    a.__ray_terminate__.remote()
    with pytest.raises(jray.exceptions.RayActorError):
        for _ in range(50):  # calls after the terminate fail once it is gone
            jray.get(a.pid.remote(), timeout=30)
            time.sleep(0.1)


def test_accelerator_type_runs_only_where_that_accelerator_is():
    from jray.testing import Cluster
    from jray.util.accelerators import NVIDIA_TESLA_V100

    if jray.is_initialized():
        jray.shutdown()
    with Cluster(head_node_args={"num_cpus": 1}) as c:
        v100 = c.add_node(num_cpus=1, resources={f"accelerator_type:{NVIDIA_TESLA_V100}": 1})
        c.connect()
        try:
            @jray.remote(accelerator_type=NVIDIA_TESLA_V100)
            def on_v100():
                return jray.get_runtime_context().get_node_id()

            assert {jray.get(on_v100.remote(), timeout=30) for _ in range(4)} == {v100.node_id}
            ready, _ = jray.wait([on_v100.options(accelerator_type="H100").remote()], timeout=1.0)
            assert ready == []  # no node has one: it waits, as in Ray
        finally:
            jray.shutdown()
