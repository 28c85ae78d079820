"""A client's put, streamed to its home raylet (``WriteObject``): the value
cut into chunks without copying (``SerializedObject.iter_chunk_pieces``) and
each chunk's message serialized by hand (``store_client._write_frames``),
which must read back as the ``WriteObjectChunk`` messages the raylet expects."""

from __future__ import annotations

import numpy as np
import pytest

from jray._private import serialization
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import raylet_pb2 as rpb
from jray._private.worker.store_client import _varint, _write_frames


def _value() -> dict:
    return {"a": np.arange(100_000, dtype=np.int64), "b": b"x" * 3000, "c": np.ones((7, 13))}


@pytest.mark.parametrize("chunk", [1, 1000, 4096, 65536, 1 << 22])
def test_chunk_pieces_are_the_blob_cut_in_chunks(chunk: int) -> None:
    ser = serialization.serialize(_value())
    whole = ser.to_bytes()
    chunks = [b"".join(p) for p in ser.iter_chunk_pieces(chunk)]
    assert b"".join(chunks) == whole
    assert all(len(c) == chunk for c in chunks[:-1]) and 0 < len(chunks[-1]) <= chunk
    assert list(ser.iter_chunks(chunk)) == chunks


def test_chunk_pieces_view_the_arrays_memory() -> None:
    arr = np.arange(1 << 20, dtype=np.uint8)
    ser = serialization.serialize(arr)
    pieces = [p for chunk in ser.iter_chunk_pieces(1 << 16) for p in chunk]
    big = [p for p in pieces if p.nbytes == 1 << 16]
    assert big and all(np.shares_memory(np.frombuffer(p, dtype=np.uint8), arr) for p in big)


def test_write_frames_read_back_as_write_object_chunks() -> None:
    ser = serialization.serialize(_value())
    owner = cpb.Address(worker_id=b"w" * 28, ip="10.0.0.1", port=1234)
    msgs = [rpb.WriteObjectChunk.FromString(f) for f in _write_frames(b"o" * 28, owner, ser, 65536)]
    assert (msgs[0].object_id, msgs[0].owner, msgs[0].total_size) == (b"o" * 28, owner, ser.total_size)
    assert all(not m.object_id and not m.total_size for m in msgs[1:])
    assert [m.offset for m in msgs] == list(range(0, ser.total_size, 65536))
    assert b"".join(m.data for m in msgs) == ser.to_bytes()


def test_varint() -> None:
    for n in (0, 1, 127, 128, 300, 1 << 22, (1 << 35) + 5):
        assert rpb.ObjectChunk.FromString(b"\x08" + _varint(n)).total_size == n
