"""The serializer's fast path for plain atoms (None, bool, int, float, short
str and bytes): the same bytes the cloudpickle pickler writes, so a value
reads back the same everywhere; anything else (a subclass, a long string, a
value with a custom serializer) takes the full path."""

from __future__ import annotations

import io
import pickle

import pytest

from jray._private import serialization


def _full(value: object) -> bytes:
    f = io.BytesIO()
    serialization._Pickler(f, protocol=5, buffer_callback=lambda pb: True).dump(value)
    return f.getvalue()


@pytest.mark.parametrize("value", [None, True, False, 0, -1, 2**70, -(2**200), 1.5, float("inf"), "", "ascii",
                                   "ünïcödé ✓", "x" * serialization._ATOM_MAX_LEN, b"", b"\x00\xff" * 100])
def test_atoms_take_the_fast_path_and_match_the_full_pickler(value: object) -> None:
    ser = serialization.serialize(value)
    assert ser.meta == _full(value)
    assert ser.buffers == [] and ser.nested_refs == [] and ser.flags == 0
    back = serialization.deserialize(ser.to_bytes())
    assert back == value and type(back) is type(value)


def test_error_flag_is_kept_on_the_fast_path() -> None:
    ser = serialization.serialize("boom", error=True)
    assert serialization.is_error(ser.to_bytes())


class MyInt(int):
    pass


def test_subclasses_and_long_values_take_the_full_path(monkeypatch) -> None:
    calls = []
    real = serialization._Pickler

    class Spy(real):  # type: ignore[misc, valid-type]
        def dump(self, obj):  # noqa: ANN001, ANN202
            calls.append(obj)
            return super().dump(obj)

    monkeypatch.setattr(serialization, "_Pickler", Spy)
    long_text = "y" * (serialization._ATOM_MAX_LEN + 1)
    for value in (MyInt(3), long_text, (1, 2), [None]):
        back = serialization.deserialize(serialization.serialize(value).to_bytes())
        assert back == value and type(back) is type(value)
    assert [type(c) for c in calls] == [MyInt, str, tuple, list]
    assert serialization.serialize(5).meta == pickle.dumps(5, 5)
    assert len(calls) == 4  # the atom did not build a pickler


def test_a_custom_serializer_of_a_subclass_still_applies() -> None:
    serialization.register_serializer(MyInt, serializer=lambda v: int(v) * 10, deserializer=lambda s: MyInt(s + 1))
    try:
        back = serialization.deserialize(serialization.serialize(MyInt(4)).to_bytes())
    finally:
        serialization.deregister_serializer(MyInt)
    assert back == 41 and type(back) is MyInt
