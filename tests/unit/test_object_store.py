"""Unit tests of the shared-memory object store: allocator, arena, store.

No cluster, no gRPC: the arena is a real /dev/shm file (named
``jray-test-<random>``; the ``shm_clean`` fixture fails a test that leaves
one behind) and a second process is a plain ``subprocess``.
"""

from __future__ import annotations

import gc
import os
import pickle
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from itertools import pairwise

import pytest

from jray._private.object_store import Allocator, Arena, LocalObjectStore, ObjectExistsError
from jray.exceptions import ObjectStoreFullError

np = pytest.importorskip("numpy")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KiB = 1 << 10
MiB = 1 << 20


def _test_shm_files() -> set[str]:
    return {f for f in os.listdir("/dev/shm") if f.startswith("jray-test-")}


@pytest.fixture(autouse=True)
def shm_clean() -> Iterator[None]:
    """Fail any test that leaves a /dev/shm/jray-test-* file behind."""
    before = _test_shm_files()
    yield
    left = _test_shm_files() - before
    for name in left:  # clean up, then fail
        os.unlink(os.path.join("/dev/shm", name))
    assert not left, f"test left shm files behind: {sorted(left)}"


@pytest.fixture
def arena_path() -> str:
    return f"/dev/shm/jray-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def arena(arena_path: str) -> Iterator[Arena]:
    a = Arena.create(arena_path, 8 * MiB)
    yield a
    a.close()
    a.unlink()


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``cond`` (collecting garbage) until true or ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        gc.collect()
        if cond():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


def oid(n: int) -> bytes:
    return n.to_bytes(4, "big") * 7  # 28 bytes, like a real object id


# -- allocator ---------------------------------------------------------------------


def _alloc(a: Allocator, size: int) -> int:
    off = a.allocate(size)
    assert off is not None
    return off


def test_allocator_basics() -> None:
    a = Allocator(1024)
    assert (a.capacity, a.used, a.largest_free) == (1024, 0, 1024)
    x = a.allocate(100)
    y = a.allocate(0)
    assert x == 0 and y == 128  # 100 rounds up to 128; size 0 still takes 64 bytes
    assert a.used == 192 and a.largest_free == 1024 - 192
    assert a.allocate(1024) is None
    with pytest.raises(KeyError):
        a.free(5)
    a.free(x)
    with pytest.raises(KeyError):
        a.free(x)
    with pytest.raises(ValueError):
        a.allocate(-1)
    a.free(y)
    assert a.holes() == [(0, 1024)] and a.used == 0
    a.check()


def test_allocator_prefers_freed_space_lowest_first() -> None:
    a = Allocator(1 << 20)
    offs = [_alloc(a, 1000) for _ in range(6)]
    assert offs == [i * 1024 for i in range(6)]
    a.free(offs[4])
    a.free(offs[1])
    # Both holes fit: the lowest one wins, before the untouched space on top.
    assert a.allocate(900) == offs[1]
    assert a.allocate(1024) == offs[4]
    assert a.allocate(10) == offs[1] + 960  # the 64 bytes left over by the 900
    assert a.allocate(10) == 6 * 1024
    a.check()


def test_allocator_large_allocations_are_page_aligned() -> None:
    a = Allocator(64 * MiB)
    small = a.allocate(100)
    big = a.allocate(MiB)
    assert small == 0 and big == 4096
    a.check()
    assert a.holes()[0] == (128, 4096 - 128)  # the padding stays usable
    assert a.allocate(64) == 128


def test_allocator_unaligned_capacity() -> None:
    a = Allocator(1000)
    assert a.allocate(1000) is None
    x = a.allocate(960)
    assert x == 0 and a.largest_free == 40
    assert a.allocate(1) is None  # 40 bytes left: less than one aligned unit
    a.free(x)
    assert a.holes() == [(0, 1000)]
    a.check()


def test_allocator_full_coalescing_any_order() -> None:
    for seed in range(5):
        rng = random.Random(seed)
        a = Allocator(1 << 20)
        offs = []
        while (o := a.allocate(rng.randrange(0, 3000))) is not None:
            offs.append(o)
        assert a.largest_free < 3000
        rng.shuffle(offs)
        for o in offs:
            a.free(o)
        assert a.holes() == [(0, 1 << 20)] and a.used == 0
        a.check()


def test_allocator_random_against_model() -> None:
    """Random alloc/free sequences, many holes (block splits), checked each step."""
    for seed in range(6):
        rng = random.Random(seed)
        cap = rng.choice([1 << 16, 1 << 22, 3 * MiB + 100])
        a = Allocator(cap)
        live: dict[int, int] = {}  # offset -> requested size
        for step in range(3000):
            if live and rng.random() < 0.45:
                off = rng.choice(list(live))
                del live[off]
                a.free(off)
            else:
                size = rng.choice(
                    [0, 1, 63, 64, 65, rng.randrange(1, 5000), rng.randrange(1, 2 * MiB)]
                )
                off_or_none = a.allocate(size)
                if off_or_none is None:
                    assert a.largest_free < size + 4096
                    continue
                off = off_or_none
                assert off % 64 == 0 and off + size <= cap
                if size >= MiB:
                    assert off % 4096 == 0
                spans = sorted(
                    [*((o, o + max(s, 1)) for o, s in live.items()), (off, off + max(size, 1))]
                )
                assert all(e1 <= s2 for (_, e1), (s2, _) in pairwise(spans)), "overlap"
                live[off] = size
            if step % 50 == 0:
                a.check()
            assert a.used + sum(n for _, n in a.holes()) == cap
        a.check()
        for off in list(live):
            a.free(off)
        assert a.holes() == [(0, cap)] and a.used == 0


def test_allocator_many_holes_first_fit() -> None:
    a = Allocator(1 << 20)
    offs = [_alloc(a, 64) for _ in range(2000)]
    for o in offs[::2]:
        a.free(o)
    a.check()
    assert a.num_holes == 1001  # 1000 freed singles + the tail
    assert a.allocate(64) == 0
    assert a.allocate(128) == 2000 * 64  # no interior hole is big enough
    a.free(offs[1001])  # merges 1000..1002 into a 192-byte hole
    assert a.allocate(192) == 1000 * 64
    a.check()


# -- arena -----------------------------------------------------------------------


def test_arena_create_attach_same_bytes(arena: Arena) -> None:
    other = Arena.attach(arena.path)
    try:
        assert other.capacity == arena.capacity == 8 * MiB
        arena.write_view(4096, 5)[:] = b"hello"
        assert bytes(other.read_view(4096, 5)) == b"hello"
    finally:
        other.close()


def test_arena_second_process_sees_same_bytes(arena: Arena) -> None:
    arena.write_view(64, 11)[:] = b"from parent"
    code = (
        "import sys\n"
        "from jray._private.object_store import Arena\n"
        "a = Arena.attach(sys.argv[1])\n"
        "assert bytes(a.read_view(64, 11)) == b'from parent', bytes(a.read_view(64, 11))\n"
        "a.write_view(8 * 1024 * 1024 - 10, 10)[:] = b'from child'\n"
        "a.close()\n"
    )
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-c", code, arena.path], env=env, capture_output=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert bytes(arena.read_view(8 * MiB - 10, 10)) == b"from child"


def test_arena_create_errors(arena: Arena, arena_path: str) -> None:
    with pytest.raises(FileExistsError):
        Arena.create(arena_path, MiB)
    huge = 1 << 50
    missing = f"/dev/shm/jray-test-{uuid.uuid4().hex[:12]}"
    with pytest.raises(OSError) as info:
        Arena.create(missing, huge)
    assert missing in str(info.value) and str(huge) in str(info.value)
    assert not os.path.exists(missing)
    with pytest.raises(FileNotFoundError):
        Arena.attach(missing)
    with pytest.raises(ValueError):
        Arena.create(missing, 0)


def test_arena_views_bounds_and_readonly(arena: Arena) -> None:
    view = arena.read_view(0, 16)
    assert view.readonly and len(view) == 16
    with pytest.raises(TypeError):
        view[0] = 1  # type: ignore[index]
    with pytest.raises(ValueError):
        arena.write_view(arena.capacity - 1, 2)
    with pytest.raises(ValueError):
        arena.read_view(-1, 2)
    assert len(arena.read_view(arena.capacity, 0)) == 0


def _pickle_into(arena: Arena, offset: int, value: object) -> tuple[bytes, list[tuple[int, int]]]:
    """Pickle ``value`` with protocol 5, writing its buffers into the arena."""
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    spans = []
    for buf in buffers:
        raw = buf.raw()
        arena.write_view(offset, raw.nbytes)[:] = raw
        spans.append((offset, raw.nbytes))
        offset += -(-raw.nbytes // 64) * 64
    return data, spans


def test_arena_zero_copy_numpy_round_trip(arena: Arena) -> None:
    original = np.arange(100_000, dtype=np.float64)
    data, [(off, n)] = _pickle_into(arena, 4096, original)
    view = arena.read_view(4096, n)
    arr = pickle.loads(data, buffers=[view[0:n]])
    del view
    assert np.array_equal(arr, original)
    assert not arr.flags.writeable
    # Shares memory with the arena: a write through the arena shows up.
    np.frombuffer(arena.write_view(off, n), dtype=np.float64)[7] = -1.0
    assert arr[7] == -1.0
    writer = np.frombuffer(arena.write_view(off, n), dtype=np.float64)
    assert np.shares_memory(arr, writer)


def test_arena_on_release_fires_once_after_all_derived_objects(arena: Arena) -> None:
    calls: list[str] = []
    original = np.arange(1000, dtype=np.int64)
    data, [(off, n)] = _pickle_into(arena, 0, original)
    view = arena.read_view(off, n, on_release=lambda: calls.append(threading.current_thread().name))
    part = view[8:64]
    flat = np.frombuffer(view, dtype=np.int64)
    pb = pickle.PickleBuffer(view[0:n])
    rebuilt = pickle.loads(data, buffers=[pb])
    derived: list[object] = [view, part, flat, pb]
    del view, part, flat, pb
    for i in range(len(derived)):
        derived[i] = None
        assert not wait_for(lambda: bool(calls), timeout=0.05), (
            f"released while object {i + 1} was alive"
        )
    assert np.array_equal(rebuilt, original)
    sub = rebuilt[10:20]
    del rebuilt
    assert not wait_for(lambda: bool(calls), timeout=0.05), "released while a slice was alive"
    assert int(sub[0]) == 10

    def drop() -> None:
        nonlocal sub
        del sub

    t = threading.Thread(target=drop, name="dropper")
    t.start()
    t.join(timeout=10)
    assert wait_for(lambda: bool(calls))
    time.sleep(0.05)
    gc.collect()
    assert calls == ["dropper"]  # once, on the thread that dropped the last reference


def test_arena_on_release_errors_are_logged(arena: Arena, caplog: pytest.LogCaptureFixture) -> None:
    def boom() -> None:
        raise RuntimeError("boom")

    view = arena.read_view(0, 8, on_release=boom)
    del view
    assert wait_for(lambda: "on_release callback failed" in caplog.text)


def test_arena_close_with_live_views(arena_path: str) -> None:
    a = Arena.create(arena_path, MiB)
    a.write_view(0, 4)[:] = b"live"
    released: list[bool] = []
    view = a.read_view(0, 4, on_release=lambda: released.append(True))
    arr = np.frombuffer(view, dtype=np.uint8)
    writer = a.write_view(8, 4)
    a.close()  # must not raise although views are exported
    a.close()
    a.unlink()
    assert a.closed and not os.path.exists(arena_path)
    with pytest.raises(ValueError):
        a.read_view(0, 4)
    assert bytes(view) == b"live" and bytes(arr) == b"live"  # still mapped
    writer[:] = b"ok!!"
    del view, arr, writer
    assert wait_for(lambda: released == [True])


# -- store -----------------------------------------------------------------------


def _put(store: LocalObjectStore, object_id: bytes, data: bytes, primary: bool = True) -> int:
    off = store.create(object_id, len(data), owner="me", primary=primary)
    store.arena.write_view(off, len(data))[:] = data
    store.seal(object_id)
    return off


def _read(store: LocalObjectStore, object_id: bytes, client: bytes = b"c") -> bytes:
    loc = store.get(object_id, client)
    assert loc is not None
    try:
        return bytes(store.arena.read_view(*loc))
    finally:
        store.release(object_id, client)


def _check_pinned_bytes(store: LocalObjectStore) -> None:
    objs = store.list_objects()
    sizes = [o["size"] for o in objs if o["pins"] and o["in_memory"]]
    expected = sum(-(-max(n, 1) // 64) * 64 for n in sizes if isinstance(n, int))
    assert store.stats()["pinned_bytes"] == expected


@pytest.fixture
def store(arena: Arena) -> Iterator[LocalObjectStore]:
    s = LocalObjectStore(arena, 64 * KiB)
    yield s
    s.close()


@pytest.fixture
def spill_store(arena: Arena, tmp_path: object) -> Iterator[LocalObjectStore]:
    s = LocalObjectStore(arena, 64 * KiB, spill_dir=os.path.join(str(tmp_path), "spill"))
    yield s
    s.close()


def test_store_create_seal_get_release(store: LocalObjectStore) -> None:
    assert store.capacity == 64 * KiB
    off = store.create(oid(1), 100, owner="alice")
    assert off % 64 == 0 and not store.contains(oid(1))
    assert store.get(oid(1), b"c") is None  # unsealed
    with pytest.raises(ObjectExistsError):
        store.create(oid(1), 100)
    store.arena.write_view(off, 100)[:] = bytes(range(100))
    store.seal(oid(1))
    store.seal(oid(1))  # idempotent
    with pytest.raises(ObjectExistsError):
        store.create(oid(1), 100)
    assert store.contains(oid(1)) and store.num_objects == 1 and store.used == 128
    assert store.get(oid(1), b"c") == (off, 100)
    assert bytes(store.arena.read_view(off, 100)) == bytes(range(100))
    assert store.get(oid(2), b"c") is None
    [info] = store.list_objects()
    assert (
        info["object_id"] == oid(1) and info["size"] == 100 and info["sealed"] and info["primary"]
    )
    assert info["pins"] == 1 and not info["spilled"] and info["owner"] == "alice"
    assert store.stats()["pinned_bytes"] == 128
    store.release(oid(1), b"c")
    store.release(oid(1), b"c")  # extra release: ignored
    assert store.stats()["pinned_bytes"] == 0
    with pytest.raises(KeyError):
        store.seal(oid(9))


def test_store_abort_frees_space(store: LocalObjectStore) -> None:
    store.create(oid(1), 4000)
    assert store.used == 4032
    store.abort(oid(1))
    assert store.used == 0 and store.num_objects == 0 and not store.contains(oid(1))
    store.create(oid(1), 10)  # the id is free again
    store.seal(oid(1))
    store.abort(oid(1))  # sealed: no-op
    assert store.contains(oid(1))
    store.abort(oid(5))  # unknown: no-op


def test_store_pins_are_counted_per_client(store: LocalObjectStore) -> None:
    _put(store, oid(1), b"x" * 10)
    _put(store, oid(2), b"y" * 10)
    for _ in range(3):
        store.get(oid(1), b"w1")
    store.get(oid(1), b"w2")
    store.get(oid(2), b"w1")
    assert {o["object_id"]: o["pins"] for o in store.list_objects()} == {oid(1): 4, oid(2): 1}
    store.release(oid(1), b"w1")
    store.free(oid(1))
    assert store.num_objects == 2 and not store.contains(oid(1))  # freed, still pinned
    assert store.get(oid(1), b"w3") is None
    store.release_client(b"w1")
    assert store.num_objects == 2  # w2 still pins oid(1)
    assert {o["object_id"]: o["pins"] for o in store.list_objects()} == {oid(1): 1, oid(2): 0}
    store.release_client(b"w2")
    assert store.num_objects == 1 and store.used == 64
    store.release_client(b"nobody")
    _check_pinned_bytes(store)


def test_store_free_while_pinned_defers(store: LocalObjectStore) -> None:
    _put(store, oid(1), b"a" * 1000)
    loc = store.get(oid(1), b"c")
    assert loc is not None
    store.free(oid(1))
    assert store.used == 1024  # still there for the reader
    assert bytes(store.arena.read_view(*loc)) == b"a" * 1000
    store.release(oid(1), b"c")
    assert store.used == 0 and store.num_objects == 0
    # Freed while being written: deleted when sealed.
    store.create(oid(2), 10)
    store.free(oid(2))
    assert store.num_objects == 1
    store.seal(oid(2))
    assert store.num_objects == 0 and store.used == 0
    store.free(oid(3))  # unknown: no-op


def test_store_evicts_secondaries_in_lru_order(store: LocalObjectStore) -> None:
    size = 16 * KiB - 64
    for i in range(4):  # 4 x 16 KiB fills the 64 KiB store
        _put(store, oid(i), bytes([i]) * size, primary=False)
    assert store.used == 4 * size
    _read(store, oid(0))  # oid(0) is now the most recently used
    _put(store, oid(10), b"n" * size, primary=False)
    assert not store.contains(oid(1)) and store.contains(oid(0))
    _put(store, oid(11), b"n" * size)
    assert not store.contains(oid(2))
    loc = store.get(oid(3), b"c")  # pinned: skipped
    _put(store, oid(12), b"n" * size)
    assert store.contains(oid(3)) and not store.contains(oid(0))
    assert store.stats()["evicted_count"] == 3
    _put(store, oid(13), b"n" * size, primary=False)  # oid(10) is older than oid(12)
    assert not store.contains(oid(10)) and store.contains(oid(12))
    assert store.stats()["evicted_count"] == 4
    assert loc is not None and bytes(store.arena.read_view(*loc)) == bytes([3]) * size
    store.release(oid(3), b"c")
    _check_pinned_bytes(store)


def test_store_full_error_names_sizes(store: LocalObjectStore) -> None:
    for i in range(4):
        _put(store, oid(i), b"z" * (16 * KiB))
    store.get(oid(0), b"c")
    with pytest.raises(ObjectStoreFullError) as info:
        store.create(oid(9), 5000)
    msg = str(info.value)
    assert "5000" in msg and str(64 * KiB) in msg  # requested size, capacity
    assert f"{64 * KiB} used" in msg and f"{16 * KiB} pinned" in msg
    assert "spilling is disabled" in msg
    assert store.num_objects == 4  # nothing was evicted for nothing
    with pytest.raises(ObjectStoreFullError, match="larger than the whole store"):
        store.create(oid(10), 65 * KiB)


def test_store_spills_and_restores_transparently(spill_store: LocalObjectStore) -> None:
    store = spill_store
    rng = random.Random(0)
    size = 16 * KiB - 64
    blobs = {i: rng.randbytes(size) for i in range(8)}
    for i in range(4):
        _put(store, oid(i), blobs[i])
    _put(store, oid(100), b"s" * size, primary=False)  # spills oid(0), the LRU primary
    assert store.stats()["spill_count"] == 1 and store.spilled_bytes == size
    assert store.contains(oid(0))
    path = store.spill_path(oid(0))
    assert path is not None and os.path.getsize(path) == size
    _put(store, oid(4), blobs[4])  # evicts the secondary first, spills nothing
    assert not store.contains(oid(100)) and store.stats()["spill_count"] == 1
    # Get the spilled one back: restored (spilling oid(1) to make room).
    assert _read(store, oid(0)) == blobs[0]
    stats = store.stats()
    assert stats["restore_count"] == 1 and stats["spill_count"] == 2
    assert stats["num_spilled"] == 2
    # Memory holds 4 objects: each read of a spilled one restores it and
    # pushes one out, first one whose file is still there (no second write):
    # reading oid(1) drops the restored oid(0), reading oid(0) drops oid(1).
    for i in (1, 2, 3, 4, 0):
        assert _read(store, oid(i)) == blobs[i]
    stats = store.stats()
    assert stats["restore_count"] == 3 and stats["spill_count"] == 2
    assert stats["num_spilled"] == 2 and store.spilled_bytes == 2 * size
    info = {o["object_id"]: o for o in store.list_objects()}
    assert info[oid(0)]["spilled"] and info[oid(0)]["in_memory"]
    assert not info[oid(1)]["in_memory"]
    assert all(info[oid(i)]["in_memory"] and not info[oid(i)]["spilled"] for i in (2, 3, 4))
    store.free(oid(0))
    assert store.spilled_bytes == size
    assert not os.path.exists(path)
    _check_pinned_bytes(store)


def test_store_pinned_primaries_are_not_spilled(spill_store: LocalObjectStore) -> None:
    for i in range(4):
        _put(spill_store, oid(i), b"p" * (16 * KiB))
        spill_store.get(oid(i), b"c")
    with pytest.raises(ObjectStoreFullError, match=f"{64 * KiB} pinned"):
        spill_store.create(oid(9), 100)
    assert spill_store.stats()["spill_count"] == 0
    spill_store.release_client(b"c")
    spill_store.create(oid(9), 100)
    assert spill_store.stats()["spill_count"] == 1


def test_store_object_larger_than_capacity_goes_to_disk(spill_store: LocalObjectStore) -> None:
    store = spill_store
    data = os.urandom(100 * KiB)
    with pytest.raises(ObjectStoreFullError, match="create_spilled"):
        store.create(oid(1), len(data))
    path = store.create_spilled(oid(1), len(data), owner="me")
    assert not store.contains(oid(1))
    with pytest.raises(ObjectExistsError):
        store.create(oid(1), 10)
    with open(path, "r+b") as f:
        f.write(data)
    store.seal(oid(1))
    assert store.contains(oid(1)) and store.spilled_bytes == len(data) and store.used == 0
    assert b"".join(bytes(c) for c in store.read_chunks(oid(1), 30000)) == data
    assert store.object_size(oid(1)) == len(data) and store.object_size(oid(2)) is None
    with pytest.raises(ObjectStoreFullError):
        store.get(oid(1), b"c")  # cannot be mapped
    store.free(oid(1))
    assert not os.path.exists(path) and store.num_objects == 0 and store.spilled_bytes == 0
    # Aborting an unsealed on-disk object removes its file.
    path = store.create_spilled(oid(2), 10)
    store.abort(oid(2))
    assert not os.path.exists(path)


def test_store_create_can_pin_for_the_writer(spill_store: LocalObjectStore) -> None:
    store = spill_store
    _put(store, oid(1), b"w" * (16 * KiB))
    off = store.create(oid(2), 16 * KiB, pin_for=b"writer")
    store.seal(oid(2))
    store.free(oid(2))  # freed while its writer still holds the pin
    assert {o["object_id"]: o["pins"] for o in store.list_objects()}[oid(2)] == 1
    for i in range(3, 6):  # pressure spills oid(1), never the pinned one
        _put(store, oid(i), b"x" * (16 * KiB))
    assert store.spill_path(oid(1)) is not None and oid(2) in {o["object_id"] for o in store.list_objects()}
    assert off == {o["object_id"]: o["offset"] for o in store.list_objects()}[oid(2)]
    store.release(oid(2), b"writer")
    assert oid(2) not in {o["object_id"] for o in store.list_objects()}
    _check_pinned_bytes(store)


def test_store_spill_file_read_by_a_client_outlives_free_until_released(spill_store: LocalObjectStore) -> None:
    store = spill_store
    data = os.urandom(100 * KiB)  # larger than the store: on disk only
    path = store.create_spilled(oid(1), len(data))
    with open(path, "r+b") as f:
        f.write(data)
    store.seal(oid(1))
    assert store.pin_spilled(oid(2), b"c") is None  # unknown
    assert store.pin_spilled(oid(1), b"c") == (path, len(data))
    store.free(oid(1))  # the owner lets go while the client reads
    assert os.path.exists(path) and not store.contains(oid(1))
    assert store.pin_spilled(oid(1), b"d") is None  # freed: no new readers
    with open(path, "rb") as f:
        assert f.read() == data
    store.release(oid(1), b"c")
    assert not os.path.exists(path) and store.num_objects == 0 and store.spilled_bytes == 0
    # A dead client's pin goes with it.
    path = store.create_spilled(oid(3), 10)
    store.seal(oid(3))
    store.pin_spilled(oid(3), b"c")
    store.free(oid(3))
    store.release_client(b"c")
    assert not os.path.exists(path)


def test_store_pulled_copy_too_big_for_memory_is_a_secondary_on_disk(spill_store: LocalObjectStore) -> None:
    path = spill_store.create_spilled(oid(1), 100 * KiB, primary=False)
    spill_store.seal(oid(1))
    [info] = spill_store.list_objects()
    assert not info["primary"] and info["spilled"] and not info["in_memory"]
    spill_store.free(oid(1))
    assert not os.path.exists(path)


def test_store_read_chunks_pins_while_iterating(spill_store: LocalObjectStore) -> None:
    store = spill_store
    blobs = [os.urandom(16 * KiB - 64) for _ in range(5)]
    _put(store, oid(0), blobs[0])
    it = store.read_chunks(oid(0), 5000)
    first = bytes(next(it))
    for i in range(1, 5):  # would spill oid(0) if it were not pinned
        _put(store, oid(i), blobs[i])
    info = {o["object_id"]: o for o in store.list_objects()}
    assert info[oid(0)]["in_memory"] and info[oid(0)]["pins"] == 1
    assert first + b"".join(bytes(c) for c in it) == blobs[0]
    assert {o["object_id"]: o["pins"] for o in store.list_objects()}[oid(0)] == 0
    # oid(1) was spilled to make room: it is streamed from its file, not restored.
    assert not {o["object_id"]: o for o in store.list_objects()}[oid(1)]["in_memory"]
    chunks = list(store.read_chunks(oid(1), 4096))
    assert all(isinstance(c, bytes) for c in chunks) and b"".join(chunks) == blobs[1]
    assert store.stats()["restore_count"] == 0
    # An abandoned iterator releases its pin when closed.
    it = store.read_chunks(oid(2), 100)
    next(it)
    it.close()
    _check_pinned_bytes(store)
    assert store.stats()["pinned_bytes"] == 0
    with pytest.raises(KeyError):
        store.read_chunks(oid(99), 100)


def test_store_unwritable_spill_dir(arena: Arena, tmp_path: object) -> None:
    blocker = os.path.join(str(tmp_path), "a-file")
    with open(blocker, "w") as f:
        f.write("not a directory")
    bad = os.path.join(blocker, "spill")
    with pytest.raises(OSError, match="spill directory") as info:
        LocalObjectStore(arena, spill_dir=bad)
    assert bad in str(info.value)
    if os.geteuid() != 0:  # root may write anywhere
        ro = os.path.join(str(tmp_path), "ro")
        os.mkdir(ro, 0o500)
        with pytest.raises(OSError, match="not writable"):
            LocalObjectStore(arena, spill_dir=ro)


def test_store_close_removes_spill_files(arena: Arena, tmp_path: object) -> None:
    spill = os.path.join(str(tmp_path), "spill")
    store = LocalObjectStore(arena, 32 * KiB, spill_dir=spill)
    for i in range(6):
        _put(store, oid(i), os.urandom(8 * KiB))
    assert store.stats()["num_spilled"] == 2 and len(os.listdir(spill)) == 2
    store.close()
    assert not os.path.exists(spill)  # it made the directory, and removes it empty


def test_store_rejects_bad_capacity(arena: Arena) -> None:
    with pytest.raises(ValueError):
        LocalObjectStore(arena, arena.capacity + 1)
    assert LocalObjectStore(arena).capacity == arena.capacity


def test_store_random_operations_keep_accounting(spill_store: LocalObjectStore) -> None:
    store = spill_store
    rng = random.Random(1)
    contents: dict[bytes, bytes] = {}
    pins: list[tuple[bytes, bytes]] = []
    for step in range(600):
        op = rng.random()
        if op < 0.4 or not contents:
            object_id = oid(step)
            data = rng.randbytes(rng.choice([0, 10, 3000, 9000]))
            try:
                _put(store, object_id, data, primary=rng.random() < 0.6)
            except ObjectStoreFullError:
                store.abort(object_id)
                continue
            contents[object_id] = data
        elif op < 0.6:
            object_id = rng.choice(list(contents))
            client = b"w%d" % rng.randrange(3)
            try:
                loc = store.get(object_id, client)
            except ObjectStoreFullError:
                continue
            if loc is None:  # an evicted secondary
                del contents[object_id]
                continue
            assert bytes(store.arena.read_view(*loc)) == contents[object_id]
            if rng.random() < 0.5:
                store.release(object_id, client)
            else:
                pins.append((object_id, client))
        elif op < 0.75 and pins:
            store.release(*pins.pop(rng.randrange(len(pins))))
        elif op < 0.8:
            store.release_client(b"w%d" % rng.randrange(3))
            pins = [p for p in pins if store.contains(p[0])]
        else:
            object_id = rng.choice(list(contents))
            store.free(object_id)
            del contents[object_id]
        assert 0 <= store.used <= store.capacity
        _check_pinned_bytes(store)
    for object_id in contents:
        if store.contains(object_id):
            assert (
                b"".join(bytes(c) for c in store.read_chunks(object_id, 4096))
                == contents[object_id]
            )


def test_store_spill_and_restore_copy_through_views_where_sendfile_cannot(
        spill_store: LocalObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Spilling and restoring copy in the kernel (``sendfile``); where it
    refuses these files, through the mapping, with the same bytes."""
    import errno

    calls: list[int] = []

    def refuse(out_fd: int, in_fd: int, offset: int, count: int) -> int:
        calls.append(count)
        raise OSError(errno.EINVAL, "not here")

    monkeypatch.setattr(os, "sendfile", refuse)
    store = spill_store
    rng = random.Random(1)
    size = 16 * KiB - 64
    blobs = {i: rng.randbytes(size) for i in range(5)}
    for i in range(5):
        _put(store, oid(i), blobs[i])  # the fifth spills oid(0)
    assert store.stats()["spill_count"] == 1 and os.path.getsize(store.spill_path(oid(0)) or "") == size
    assert _read(store, oid(0)) == blobs[0]  # restored (spilling oid(1))
    assert _read(store, oid(1)) == blobs[1]
    assert store.stats()["restore_count"] == 2 and calls  # sendfile was tried, then the views
    _check_pinned_bytes(store)


def test_store_restore_of_a_cut_spill_file_fails_and_keeps_the_store_whole(spill_store: LocalObjectStore) -> None:
    store = spill_store
    size = 16 * KiB - 64
    for i in range(5):
        _put(store, oid(i), bytes([i]) * size)
    path = store.spill_path(oid(0))
    assert path is not None
    os.truncate(path, size // 2)
    with pytest.raises(OSError, match="shorter"):
        store.get(oid(0), b"c")
    # The room made for it is given back (the object spilled to make it stays on disk), and every other object reads whole.
    assert store.used <= 3 * store._alloc.rounded_size(size)
    for i in range(1, 5):
        assert _read(store, oid(i)) == bytes([i]) * size
    _check_pinned_bytes(store)
