"""What a user sees when a task or actor method raises, on a real cluster:
exceptions that cannot be rebuilt on the caller, and actor methods that ask
to be retried on exceptions."""

from __future__ import annotations

import pytest

import jray
from jray import exceptions


class PairError(Exception):
    """Its __init__ takes two arguments, its args hold one message."""

    def __init__(self, a, b):
        super().__init__(f"pair {a}+{b} rejected")


@jray.remote
def raise_pair():
    raise PairError(1, 2)


def test_an_exception_that_cannot_be_rebuilt_keeps_type_message_and_traceback(jray_cluster):
    with pytest.raises(exceptions.RayTaskError) as info:
        jray.get(raise_pair.remote(), timeout=30)
    err = info.value
    assert isinstance(err, exceptions.UnserializableException)
    assert err.cause.type_name.endswith("PairError")
    text = str(err)
    assert "PairError in raise_pair()" in text
    assert "pair 1+2 rejected" in text
    assert ", in raise_pair" in text  # the remote traceback
    # the cluster goes on
    assert jray.get(jray.remote(lambda: 5).remote(), timeout=30) == 5


@jray.remote(max_task_retries=2)
class Flaky:
    def __init__(self):
        self.calls = 0

    @jray.method(retry_exceptions=True)
    def twice_then_ok(self):
        self.calls += 1
        if self.calls < 3:
            raise ValueError(f"attempt {self.calls}")
        return self.calls

    @jray.method(retry_exceptions=[KeyError])
    def only_key_errors(self):
        self.calls += 1
        raise ValueError("not retried")

    def no_retry(self):
        self.calls += 1
        raise ValueError("plain")

    def count(self):
        return self.calls


def test_actor_method_retry_exceptions(jray_cluster):
    a = Flaky.remote()
    assert jray.get(a.twice_then_ok.remote(), timeout=30) == 3
    before = jray.get(a.count.remote(), timeout=30)
    with pytest.raises(ValueError, match="not retried"):
        jray.get(a.only_key_errors.remote(), timeout=30)
    with pytest.raises(ValueError, match="plain"):
        jray.get(a.no_retry.remote(), timeout=30)
    assert jray.get(a.count.remote(), timeout=30) == before + 2  # each ran once


def test_actor_method_retries_run_out(jray_cluster):
    a = Flaky.options(max_task_retries=1).remote()
    with pytest.raises(ValueError, match="attempt 2"):
        jray.get(a.twice_then_ok.remote(), timeout=30)
    assert jray.get(a.count.remote(), timeout=30) == 2


@jray.remote
def fails_here():
    raise KeyError("look here")  # the line the traceback must point at


def test_remote_tracebacks_name_the_file_and_line_of_the_function(jray_cluster):
    import inspect

    line = next(i for i, text in enumerate(inspect.getsource(fails_here._function).splitlines())
                if "look here" in text) + fails_here._function.__code__.co_firstlineno
    with pytest.raises(exceptions.RayTaskError) as info:
        jray.get(fails_here.remote(), timeout=30)
    text = str(info.value)
    assert f'File "{__file__}", line {line}, in fails_here' in text
    assert "<dynamic-code>" not in text
