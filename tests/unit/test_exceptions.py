"""Task errors survive the trip to the caller even when the exception a task
raised cannot be rebuilt there (Ray's UnserializableException)."""

from __future__ import annotations

import traceback

import pytest

from jray import exceptions
from jray._private import serialization


class TwoArgs(Exception):
    """Its __init__ does not accept its own args: pickle cannot rebuild it."""

    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"bad pair {a}/{b}")
        self.a, self.b = a, b


class Unpicklable(Exception):
    def __reduce__(self) -> tuple:
        raise TypeError("no pickling for you")


def _task_error(fn: str, e: BaseException) -> exceptions.RayTaskError:
    """What a worker sends: the error with its real traceback text."""
    try:
        raise e
    except BaseException as raised:  # noqa: BLE001
        tb = "".join(traceback.format_exception(type(raised), raised, raised.__traceback__))
    return exceptions.RayTaskError(fn, tb, e)


def _round_trip(err: BaseException) -> BaseException:
    value = serialization.deserialize(serialization.serialize(err, error=True).to_bytes())
    assert isinstance(value, BaseException)
    return value


def test_a_rebuildable_cause_comes_back_as_itself() -> None:
    err = _round_trip(_task_error("f", ValueError("nope")))
    assert isinstance(err, exceptions.RayTaskError) and isinstance(err, ValueError)
    assert "ValueError in f()" in str(err) and "ValueError: nope" in str(err)


def test_a_cause_whose_init_rejects_its_args_becomes_a_stand_in() -> None:
    err = _round_trip(_task_error("f", TwoArgs(1, 2)))
    assert isinstance(err, exceptions.RayTaskError)
    assert isinstance(err, exceptions.UnserializableException)
    cause = err.cause
    assert isinstance(cause, exceptions.UnserializableException)
    assert cause.type_name.endswith("TwoArgs")
    assert cause.message == "bad pair 1/2"
    assert "raise e" in cause.original_stack_trace  # the remote traceback is kept
    text = str(err)
    assert text.startswith("TwoArgs in f()")
    assert "TwoArgs: bad pair 1/2" in text and "raise e" in text and "UnserializableException" in text


def test_an_unpicklable_cause_keeps_its_name_and_text() -> None:
    err = _round_trip(_task_error("g", Unpicklable("it broke")))
    assert isinstance(err.cause, exceptions.UnserializableException)
    assert err.cause.type_name.endswith("Unpicklable")
    assert "it broke" in str(err)


def test_the_stand_in_is_exported_and_raisable() -> None:
    import jray

    with pytest.raises(exceptions.RayError, match="could not be deserialized"):
        raise jray.exceptions.UnserializableException("m.E", "msg", "tb")
