"""Turning values into bytes and back, the same layout inline and in shm.

A serialized object is one contiguous blob::

    "JR" flags:u8 0:u8 nbuf:u32 meta_len:u64      16-byte header
    nbuf x (offset:u64, length:u64)               buffer table
    pickle stream (protocol 5, cloudpickle)
    out-of-band buffers, each at a 64-byte aligned offset

Out-of-band buffers (numpy arrays, bytes wrapped in PickleBuffer, ...) are
not copied into the pickle stream, so reading an object from shared memory
rebuilds numpy arrays as read-only views on that memory (zero copy).

ObjectRefs and ActorHandles found inside a value are recorded while
pickling (their ``__reduce__`` calls :func:`note_contained_ref`), so the
owner can count refs captured inside other objects.
"""

from __future__ import annotations

import io
import pickle
import struct
import threading
import types
from collections import ChainMap
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

_HEADER = struct.Struct("<2sBBIQ")
_ENTRY = struct.Struct("<QQ")
MAGIC = b"JR"
FLAG_ERROR = 1
ALIGN = 64

_local = threading.local()


class SerializationError(TypeError):
    """A value could not be pickled; the message names its type."""


def _align(n: int) -> int:
    return (n + ALIGN - 1) & ~(ALIGN - 1)


# Buffers this large are placed in the blob by where their source lies in
# memory (``_placed``); the store hands out page-aligned ranges from 1 MiB
# (object_store/allocator.py), so a buffer's offset in the blob is its
# offset in the page it is copied to.
PLACED_BUFFER_BYTES = 1 << 20
PAGE = 4096


def _address(b: memoryview) -> int | None:
    """Where a buffer's bytes start in this process (None: cannot tell)."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is optional
        return None
    try:
        return int(np.frombuffer(b, dtype=np.uint8).ctypes.data)
    except (TypeError, ValueError):
        return None


def _placed(pos: int, src: int | None) -> int:
    """The first 64-aligned offset from ``pos`` whose place in its page is
    half a page past the source's. A forward copy whose destination lies a
    few bytes to a few hundred bytes past its source within the page (4K
    aliasing: numpy's data sits 16 bytes into its pages, the blob's first
    buffer ~256 bytes in) runs at a third of the speed here (AMD EPYC, glibc
    memmove: 1 GiB in 4 GB/s against 13 GB/s); half a page away is as quick
    as the same place."""
    if src is None:
        return _align(pos)
    target = _align(src % PAGE + PAGE // 2) % PAGE
    off = pos - pos % PAGE + target
    return off if off >= pos else off + PAGE


@dataclass
class SerializedObject:
    meta: bytes
    buffers: list[memoryview]
    nested_refs: list[Any] = field(default_factory=list)
    flags: int = 0
    _layout_cache: tuple[int, list[int]] | None = field(default=None, init=False, repr=False, compare=False)

    def _layout(self) -> tuple[int, list[int]]:
        if self._layout_cache is not None:
            return self._layout_cache
        pos = _HEADER.size + _ENTRY.size * len(self.buffers) + len(self.meta)
        offsets = []
        for b in self.buffers:
            pos = _placed(pos, _address(b)) if b.nbytes >= PLACED_BUFFER_BYTES else _align(pos)
            offsets.append(pos)
            pos += b.nbytes
        self._layout_cache = (pos, offsets)
        return pos, offsets

    @property
    def total_size(self) -> int:
        return self._layout()[0]

    def write_to(self, out: memoryview) -> int:
        """Write the blob into ``out`` (at least ``total_size`` bytes)."""
        total, offsets = self._layout()
        _HEADER.pack_into(out, 0, MAGIC, self.flags, 0, len(self.buffers), len(self.meta))
        pos = _HEADER.size
        for off, b in zip(offsets, self.buffers, strict=True):
            _ENTRY.pack_into(out, pos, off, b.nbytes)
            pos += _ENTRY.size
        out[pos : pos + len(self.meta)] = self.meta
        for off, b in zip(offsets, self.buffers, strict=True):
            src = b.cast("B") if b.format != "B" or b.ndim != 1 else b
            if b.nbytes >= PARALLEL_COPY_BYTES:
                _parallel_copy(out[off : off + b.nbytes], src)
            else:
                out[off : off + b.nbytes] = src
        return total

    def iter_chunks(self, chunk_size: int) -> Iterator[bytes]:
        """The blob ``write_to`` makes, as consecutive pieces of at most
        ``chunk_size`` bytes, without building it whole (streaming a large
        value to a store on another machine)."""
        for pieces in self.iter_chunk_pieces(chunk_size):
            yield b"".join(pieces)

    def iter_chunk_pieces(self, chunk_size: int) -> Iterator[list[memoryview]]:
        """``iter_chunks`` without copying: each chunk as a list of views
        (of the header, the padding and the value's own buffers), to be
        joined where it is sent. The views are valid while this object and
        the value's buffers are."""
        total, offsets = self._layout()
        head_len = _HEADER.size + _ENTRY.size * len(self.buffers) + len(self.meta)
        head = bytearray(head_len)
        _HEADER.pack_into(head, 0, MAGIC, self.flags, 0, len(self.buffers), len(self.meta))
        pos = _HEADER.size
        for off, b in zip(offsets, self.buffers, strict=True):
            _ENTRY.pack_into(head, pos, off, b.nbytes)
            pos += _ENTRY.size
        head[pos:] = self.meta
        pieces: list[memoryview] = [memoryview(head)]
        at = head_len
        for off, b in zip(offsets, self.buffers, strict=True):
            if off > at:
                pieces.append(memoryview(bytes(off - at)))  # alignment padding
            pieces.append(b.cast("B") if b.format != "B" or b.ndim != 1 else b)
            at = off + b.nbytes
        out: list[memoryview] = []
        room = chunk_size
        for piece in pieces:
            i = 0
            while i < piece.nbytes:
                take = min(room, piece.nbytes - i)
                out.append(piece[i:i + take])
                i += take
                room -= take
                if room == 0:
                    yield out
                    out, room = [], chunk_size
        if out or total == 0:
            yield out

    def to_bytes(self) -> bytes:
        if not self.buffers:
            # Common small case: header + pickle, no copies beyond one join.
            return _HEADER.pack(MAGIC, self.flags, 0, 0, len(self.meta)) + self.meta
        buf = bytearray(self.total_size)
        self.write_to(memoryview(buf))
        return bytes(buf)


# Buffers from this size are copied by two threads: a put of 10 MB arrays
# went from 5.3 to 7.0 GB/s here (the hand-off costs ~50 us; a 4 MiB copy
# takes ~0.8 ms).
PARALLEL_COPY_BYTES = 4 * 1024 * 1024
_copy_pool: Any = None


def _parallel_copy(dst: memoryview, src: memoryview) -> None:
    """Copy a large buffer with two threads: ctypes.memmove releases the GIL,
    and one core alone does not saturate memory bandwidth (Ray does the same
    with several copy threads)."""
    global _copy_pool
    try:
        import ctypes

        import numpy as np
    except ImportError:  # pragma: no cover - numpy is optional
        dst[:] = src
        return
    d = np.frombuffer(dst, dtype=np.uint8).ctypes.data
    s = np.frombuffer(src, dtype=np.uint8).ctypes.data
    n = dst.nbytes
    if _copy_pool is None:
        import concurrent.futures

        _copy_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="jray-copy")
    half = (n // 2) & ~4095
    fut = _copy_pool.submit(ctypes.memmove, d + half, s + half, n - half)
    ctypes.memmove(d, s, half)
    fut.result()


class _Collect:
    def __init__(self) -> None:
        self.refs: list[Any] = []


def note_contained_ref(ref: Any) -> None:
    """Called by ObjectRef.__reduce__: record a ref being pickled."""
    c = getattr(_local, "collector", None)
    if c is not None:
        c.refs.append(ref)


# Custom serializers (``jray.util.register_serializer``): type -> (serializer,
# deserializer). The pickled form carries both functions (cloudpickle pickles
# them by value when they are not importable), so a worker that receives such
# a value needs no registration of its own, and registers the pair on first
# use so it can send the value on.
_custom: dict[type, tuple[Any, Any]] = {}


def register_serializer(cls: type, *, serializer: Any, deserializer: Any) -> None:
    if not isinstance(cls, type):
        raise TypeError(f"register_serializer needs a class, got {cls!r}")
    if not callable(serializer) or not callable(deserializer):
        raise TypeError("serializer and deserializer must be callables")
    _custom[cls] = (serializer, deserializer)


def deregister_serializer(cls: type) -> None:
    _custom.pop(cls, None)


def _rebuild_custom(cls: type, serializer: Any, deserializer: Any, state: Any) -> Any:
    _custom.setdefault(cls, (serializer, deserializer))
    return deserializer(state)


def _code_reduce_keeping_filename(code: types.CodeType) -> Any:
    """cloudpickle's code reducer, but the code keeps its file name (3.x
    writes "<dynamic-code>", so a remote traceback could not say where a
    function was defined; Ray's vendored cloudpickle keeps it too)."""
    assert _cloudpickle_code_reduce is not None  # (only registered when it exists)
    ctor, args = _cloudpickle_code_reduce(code)
    return ctor, tuple(code.co_filename if isinstance(a, str) and a == "<dynamic-code>" else a for a in args)


# cloudpickle's private reducer; without it (another version), its own behaviour stands.
_cloudpickle_code_reduce = getattr(getattr(cloudpickle, "cloudpickle", None), "_code_reduce", None)
_DISPATCH = (ChainMap({types.CodeType: _code_reduce_keeping_filename}, cloudpickle.Pickler.dispatch_table)
             if _cloudpickle_code_reduce is not None else cloudpickle.Pickler.dispatch_table)


class _Pickler(cloudpickle.CloudPickler):
    dispatch_table = _DISPATCH

    def reducer_override(self, obj: Any) -> Any:
        if _custom:
            entry = _custom.get(type(obj))
            if entry is not None:
                return _rebuild_custom, (type(obj), entry[0], entry[1], entry[0](obj))
        return super().reducer_override(obj)


class _FunctionPickler(cloudpickle.CloudPickler):
    dispatch_table = _DISPATCH


# Exact types the pickler writes with its own opcodes (it never calls
# reducer_override for them, so no custom serializer applies): the plain C
# pickler gives the same bytes as the cloudpickle one, without building a
# Pickler (a tenth of the time; a task that returns None pays this per call).
_ATOM_TYPES = frozenset({type(None), bool, int, float, str, bytes})
_ATOM_MAX_LEN = 4096


def serialize(value: Any, *, error: bool = False) -> SerializedObject:
    t = type(value)
    if t in _ATOM_TYPES and (t is not str and t is not bytes or len(value) <= _ATOM_MAX_LEN):
        return SerializedObject(pickle.dumps(value, 5), [], [], FLAG_ERROR if error else 0)
    buffers: list[memoryview] = []

    def cb(pb: pickle.PickleBuffer) -> bool:
        try:
            buffers.append(pb.raw())
        except BufferError:  # non-contiguous: let pickle copy it in-band
            return True
        return False

    prev = getattr(_local, "collector", None)
    col = _local.collector = _Collect()
    try:
        f = io.BytesIO()
        _Pickler(f, protocol=5, buffer_callback=cb).dump(value)
        meta = f.getvalue()
    except Exception as e:
        raise SerializationError(_describe_failure(value, e)) from e
    finally:
        _local.collector = prev
    if prev is not None:  # nested serialization (e.g. a ref's owner data)
        prev.refs.extend(col.refs)
    return SerializedObject(meta, buffers, col.refs, FLAG_ERROR if error else 0)


def _describe_failure(value: Any, e: BaseException) -> str:
    return f"Could not serialize a value of type {type(value).__module__}.{type(value).__qualname__}: {e}"


def is_error(data: bytes | memoryview) -> bool:
    return bool(data[2] & FLAG_ERROR) if len(data) >= _HEADER.size else False


def deserialize(data: bytes | memoryview) -> Any:
    """Rebuild a value. Out-of-band buffers become views on ``data``."""
    mv = data if isinstance(data, memoryview) else memoryview(data)
    magic, _flags, _r, nbuf, meta_len = _HEADER.unpack_from(mv, 0)
    if magic != MAGIC:
        raise ValueError("not a jray serialized object")
    pos = _HEADER.size
    bufs = []
    for _ in range(nbuf):
        off, ln = _ENTRY.unpack_from(mv, pos)
        pos += _ENTRY.size
        bufs.append(mv[off : off + ln])
    meta = mv[pos : pos + meta_len]
    return pickle.loads(meta, buffers=bufs)


def dumps_function(obj: Any) -> bytes:
    """Pickle a function or class by value when it is not importable."""
    try:
        f = io.BytesIO()
        _FunctionPickler(f, protocol=5).dump(obj)
        return f.getvalue()
    except Exception as e:
        raise SerializationError(
            f"Could not serialize {getattr(obj, '__qualname__', obj)!r}: {e}. "
            "Check the globals it captures (locks, sockets, open files cannot be sent)."
        ) from e
