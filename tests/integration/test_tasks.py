"""Tasks on a real local cluster: options, returns, refs as arguments,
nested tasks, errors, retries, cancellation, resources."""

from __future__ import annotations

import os
import threading
import time

import pytest

import jray
from jray import exceptions


@jray.remote
def add(a, b=0):
    return a + b


def test_remote_and_get(jray_cluster):
    assert jray.get(add.remote(1, 2)) == 3
    assert jray.get(add.remote(1, b=5)) == 6
    assert jray.get([add.remote(i) for i in range(10)]) == list(range(10))


def test_options_and_num_returns(jray_cluster):
    @jray.remote(num_returns=3)
    def three():
        return 1, 2, 3

    a, b, c = three.remote()
    assert jray.get([a, b, c]) == [1, 2, 3]
    x, y = three.options(num_returns=2).remote.__self__._rf.options(num_returns=2).remote() if False else (None, None)
    two = jray.remote(num_returns=2)(lambda: (4, 5))
    assert jray.get(two.remote()) == [4, 5]
    assert three.options(num_returns=0).remote() is None


def test_wrong_number_of_returns_is_a_clear_error(jray_cluster):
    @jray.remote(num_returns=2)
    def one():
        return [1, 2, 3]

    a, _b = one.remote()
    with pytest.raises(ValueError, match="num_returns=2"):
        jray.get(a, timeout=30)


def test_refs_as_args_resolved_and_nested_refs_passed_as_refs(jray_cluster):
    r = add.remote(1, 1)

    @jray.remote
    def inspect_arg(x, nested):
        return type(x).__name__, type(nested[0]).__name__, jray.get(nested[0])

    assert jray.get(inspect_arg.remote(r, [r])) == ("int", "ObjectRef", 2)


def test_nested_tasks_do_not_deadlock_on_two_cpus(jray_cluster):
    @jray.remote
    def leaf(i):
        return i

    @jray.remote
    def parent(n):
        return sum(jray.get([leaf.remote(i) for i in range(n)]))

    assert jray.get([parent.remote(5) for _ in range(4)], timeout=60) == [10] * 4


def test_remote_exception_is_task_error_and_cause_type(jray_cluster):
    @jray.remote
    def boom():
        raise KeyError("missing-key")

    with pytest.raises(exceptions.RayTaskError) as ei:
        jray.get(boom.remote(), timeout=30)
    assert isinstance(ei.value, KeyError)
    text = str(ei.value)
    assert "missing-key" in text and "Traceback" in text and "boom" in text


def test_error_propagates_through_dependent_task(jray_cluster):
    @jray.remote
    def boom():
        raise ValueError("first")

    with pytest.raises(ValueError, match="first"):
        jray.get(add.remote(boom.remote(), 1), timeout=30)


def test_max_retries_reruns_task_whose_worker_died(jray_cluster, tmp_path):
    marker = tmp_path / "attempts"

    @jray.remote(max_retries=2)
    def flaky(path):
        with open(path, "a") as f:
            f.write("x")
        if len(open(path).read()) < 2:
            os._exit(1)
        return "ok"

    assert jray.get(flaky.remote(str(marker)), timeout=20) == "ok"
    assert marker.read_text() == "xx"


def test_worker_death_without_retries_raises_worker_crashed(jray_cluster):
    @jray.remote(max_retries=0)
    def die():
        os._exit(1)

    with pytest.raises(exceptions.WorkerCrashedError):
        jray.get(die.remote(), timeout=60)


def test_retry_exceptions(jray_cluster, tmp_path):
    marker = tmp_path / "n"

    @jray.remote(max_retries=3, retry_exceptions=[RuntimeError])
    def fails_twice(path):
        with open(path, "a") as f:
            f.write("x")
        if len(open(path).read()) < 3:
            raise RuntimeError("try again")
        return len(open(path).read())

    assert jray.get(fails_twice.remote(str(marker)), timeout=60) == 3

    @jray.remote(max_retries=3, retry_exceptions=[RuntimeError])
    def wrong_type():
        raise KeyError("not retried")

    with pytest.raises(KeyError):
        jray.get(wrong_type.remote(), timeout=30)


def test_cancel_cooperative_and_force(jray_cluster):
    @jray.remote
    def sleeper():
        time.sleep(30)
        return 1

    r = sleeper.remote()
    time.sleep(0.5)
    jray.cancel(r)
    with pytest.raises(exceptions.TaskCancelledError):
        jray.get(r, timeout=20)

    r2 = sleeper.remote()
    time.sleep(0.5)
    jray.cancel(r2, force=True)
    with pytest.raises(exceptions.TaskCancelledError):
        jray.get(r2, timeout=20)
    assert jray.get(add.remote(2, 2), timeout=30) == 4  # the cluster keeps working


def test_get_timeout(jray_cluster):
    @jray.remote
    def slow():
        time.sleep(2)
        return 1

    r = slow.remote()
    with pytest.raises(exceptions.GetTimeoutError):
        jray.get(r, timeout=0.2)
    assert jray.get(r, timeout=30) == 1


def test_fractional_cpus_and_custom_resources_pending_warning(jray_cluster, caplog):
    @jray.remote(num_cpus=0.5)
    def half():
        return jray.get_runtime_context().get_assigned_resources()

    assert jray.get(half.remote(), timeout=30) == {"CPU": 0.5}

    @jray.remote(resources={"unicorn": 1})
    def never():
        return 1

    r = never.remote()
    ready, not_ready = jray.wait([r], timeout=3)
    assert ready == [] and not_ready == [r]
    assert jray.get(add.remote(1, 1), timeout=30) == 2  # the cluster is not stuck
    assert any("unicorn" in rec.getMessage() for rec in caplog.records)
    jray.cancel(r)


def test_gpu_ids_in_cuda_visible_devices():
    jray.shutdown()
    jray.init(num_cpus=1, num_gpus=2)
    try:
        @jray.remote(num_gpus=1)
        def gpu():
            return jray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")

        ids, env = jray.get(gpu.remote(), timeout=30)
        assert len(ids) == 1 and env == str(ids[0])
        assert jray.cluster_resources()["GPU"] == 2
    finally:
        jray.shutdown()


def test_streaming_generator(jray_cluster):
    @jray.remote
    def gen(n):
        for i in range(n):
            yield i * 10

    assert [jray.get(r, timeout=30) for r in gen.remote(4)] == [0, 10, 20, 30]

    @jray.remote(num_returns="streaming")
    def fails_midway():
        yield 1
        raise ValueError("midway")

    it = fails_midway.remote()
    assert jray.get(next(it), timeout=30) == 1
    with pytest.raises(ValueError, match="midway"):
        jray.get(next(it), timeout=30)


def test_runtime_context_ids(jray_cluster):
    @jray.remote
    def ctx():
        c = jray.get_runtime_context()
        return c.get_job_id(), c.get_task_id(), c.get_node_id(), c.get_task_name()

    job, task, node, name = jray.get(ctx.options(name="named-task").remote(), timeout=30)
    assert job == jray.get_runtime_context().get_job_id()
    assert task and node == jray.get_runtime_context().get_node_id()
    assert name == "named-task"


def test_redefinition_uses_new_code(jray_cluster):
    @jray.remote
    def version():
        return 1

    assert jray.get(version.remote()) == 1

    @jray.remote
    def version():  # noqa: F811 - redefined on purpose, as a notebook cell would
        return 2

    assert jray.get(version.remote()) == 2


def test_closure_and_main_functions(jray_cluster):
    factor = 7

    def helper(x):
        return x * factor

    @jray.remote
    def use_helper(x):
        return helper(x)

    assert jray.get(use_helper.remote(3)) == 21


def test_worker_output_reaches_driver_with_prefix(jray_cluster, capfd):
    @jray.remote
    def talk():
        print("hello-from-worker")
        return os.getpid()

    pid = jray.get(talk.remote(), timeout=30)
    deadline = time.time() + 5
    out = ""
    while time.time() < deadline:
        out += capfd.readouterr().out
        if "hello-from-worker" in out:
            break
        time.sleep(0.05)
    assert f"(talk pid={pid}) hello-from-worker" in out


def test_bad_input_errors(jray_cluster):
    with pytest.raises(TypeError, match=r"\.remote\(\)"):
        add(1, 2)
    with pytest.raises(ValueError, match="num_cpus"):
        jray.remote(num_cpus=-1)(lambda: 1)
    with pytest.raises(ValueError, match="bogus"):
        add.options(bogus=1)
    with pytest.raises(TypeError, match="lock"):
        add.remote(threading.Lock())
    with pytest.raises(TypeError):
        jray.get(123)
    with pytest.raises(TypeError):
        jray.get([add.remote(1), 5])
    assert jray.get(add.remote(1, 1)) == 2


def test_no_task_waits_behind_another_functions_long_task(jray_cluster, tmp_path):
    """A task that may run long (its function never finished yet) holds its
    worker alone: short tasks of other functions submitted with it or after
    it all run on the other CPU while it runs (none queued behind it)."""
    @jray.remote
    def quick(i):
        return i

    @jray.remote
    def holds_until(path):
        while not os.path.exists(path):
            time.sleep(0.02)

    release = str(tmp_path / "go")
    jray.get([quick.remote(i) for i in range(40)], timeout=60)  # known short
    held = holds_until.remote(release)
    both = [quick.remote(i) for i in range(40)]  # submitted while it runs
    try:
        ready, _ = jray.wait(both, num_returns=len(both), timeout=30)
        assert len(ready) == len(both), f"{len(both) - len(ready)} short task(s) waited behind the long one"
    finally:
        open(release, "w").close()
    assert jray.get(held, timeout=30) is None


def test_short_tasks_are_pipelined_but_a_wrong_guess_is_taken_back(jray_cluster):
    """Tasks of a function that always ran short go several at a time to one
    worker; when such a window turns out long, the tasks not started yet are
    taken back and run on other workers (they still run in parallel)."""
    @jray.remote
    def nap(s):
        start = time.time()
        time.sleep(s)
        return start, time.time(), os.getpid()

    for _ in range(5):  # known short from now on
        jray.get([nap.remote(0) for _ in range(3)], timeout=30)
    spans = jray.get([nap.remote(1.5) for _ in range(2)], timeout=60)
    (s1, e1, p1), (s2, e2, p2) = sorted(spans)
    assert p1 != p2 and s2 < e1, f"the two long tasks ran one after the other: {spans}"
    # Its tasks now count as long: spread from the start.
    spans = jray.get([nap.remote(1.0) for _ in range(2)], timeout=60)
    (s1, e1, p1), (s2, e2, p2) = sorted(spans)
    assert p1 != p2 and s2 < e1


def test_repeated_calls_copy_their_spec_but_each_call_is_its_own(jray_cluster):
    """Top-level calls with the same options reuse one spec template: each
    still gets its own task id, arguments and name; other options, a
    redefined function and a runtime_env get a spec of their own."""
    from jray.util.state import list_tasks
    from tests.polling import poll

    @jray.remote
    def who(x):
        ctx = jray.get_runtime_context()
        return ctx.get_task_id(), x, os.environ.get("TEMPLATE_TEST", "")

    first = jray.get([who.remote(i) for i in range(5)])
    assert [x for _, x, _ in first] == list(range(5)) and len({t for t, _, _ in first}) == 5
    named = who.options(name="renamed", max_retries=0)
    assert jray.get(named.remote(7))[1:] == (7, "")
    assert jray.get(named.remote(8))[1:] == (8, "")  # the options wrapper's own template
    env = who.options(runtime_env={"env_vars": {"TEMPLATE_TEST": "yes"}})
    assert jray.get(env.remote(9))[1:] == (9, "yes")
    assert jray.get(who.remote(10))[1:] == (10, "")  # back to the plain template: not the env's

    @jray.remote
    def who(x):  # noqa: F811 - redefined, as in a notebook cell run again
        return "new", x

    assert jray.get(who.remote(11)) == ("new", 11)
    names = poll(lambda: list_tasks(filters=[("name", "=", "renamed")], detail=True),
                 lambda rows: len(rows) >= 2, "the two tasks named by options()", timeout=15)
    assert {t["attempt_number"] for t in names} == {0} and len({t["task_id"] for t in names}) == 2
