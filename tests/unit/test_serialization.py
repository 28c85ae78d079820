"""The serializer's fast path for plain atoms (None, bool, int, float, short
str and bytes): the same bytes the cloudpickle pickler writes, so a value
reads back the same everywhere; anything else (a subclass, a long string, a
value with a custom serializer) takes the full path. And where large
buffers go in the blob: half a page from their source's place in its page
(a copy a few hundred bytes ahead of its source is 3x slower here)."""

from __future__ import annotations

import io
import pickle

import numpy as np
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


def _src(buf: memoryview) -> int:
    return int(np.frombuffer(buf, dtype=np.uint8).ctypes.data)


@pytest.mark.parametrize("shift", [0, 16, 64, 200, 2048, 4000])
def test_large_buffers_sit_half_a_page_from_their_source(shift: int) -> None:
    backing = np.ones((4 << 20) + 8192, dtype=np.uint8)
    first = backing[shift: shift + (2 << 20)]
    second = backing[shift + 7: shift + 7 + (1 << 20)]  # an odd address too
    value = {"a": first, "small": np.arange(10), "b": second}
    ser = serialization.serialize(value)
    total, offsets = ser._layout()
    big = [(off, b) for off, b in zip(offsets, ser.buffers, strict=True) if b.nbytes >= serialization.PLACED_BUFFER_BYTES]
    assert len(big) == 2
    for off, b in big:
        assert off % 64 == 0
        assert 2048 <= (off - _src(b)) % 4096 < 2048 + 64
    small = [off for off, b in zip(offsets, ser.buffers, strict=True) if b.nbytes < serialization.PLACED_BUFFER_BYTES]
    assert all(off % 64 == 0 for off in small)
    assert ser._layout() == (total, offsets) and ser.total_size == total  # one layout, however often asked
    # Written into page-aligned memory (the store's large ranges) and read back.
    dest = np.zeros(total + 4096, dtype=np.uint8)
    start = (-dest.ctypes.data) % 4096
    view = memoryview(dest)[start: start + total]
    assert ser.write_to(view) == total
    back = serialization.deserialize(view)
    assert set(back) == {"a", "small", "b"}
    assert np.array_equal(back["a"], first) and np.array_equal(back["b"], second)
    assert np.array_equal(back["small"], np.arange(10))
    assert serialization.deserialize(ser.to_bytes())["b"].nbytes == second.nbytes


@pytest.mark.parametrize("extra", [0, 1, 4095, 12345])
def test_buffers_copied_by_two_threads_arrive_whole(extra: int) -> None:
    """From PARALLEL_COPY_BYTES a buffer is copied in two halves by two
    threads: every byte lands, whatever the size's remainder."""
    n = serialization.PARALLEL_COPY_BYTES + extra
    rng = np.random.default_rng(extra)
    src = rng.integers(0, 256, n, dtype=np.uint8)
    ser = serialization.serialize(src)
    dest = np.zeros(ser.total_size + 4096, dtype=np.uint8)
    start = (-dest.ctypes.data) % 4096
    view = memoryview(dest)[start: start + ser.total_size]
    assert ser.write_to(view) == ser.total_size
    assert np.array_equal(serialization.deserialize(view), src)
