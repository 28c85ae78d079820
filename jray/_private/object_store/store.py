"""The raylet's view of its node's object store: what lives where, who pins it.

The bytes live in the :class:`~jray._private.object_store.arena.Arena`;
this module only decides offsets and lifetimes:

* ``create`` reserves space and returns an offset; the writer (a worker, the
  driver, or the raylet itself when pulling from another node) writes there
  and calls ``seal``, or ``abort`` to give the space back.
* ``get`` pins a sealed object for a client and returns ``(offset, size)``;
  the client maps it zero-copy and calls ``release`` when its views die.
  ``release_client`` drops all pins of a dead client.
* ``free`` (from the owner: nobody references the object any more) deletes
  it at once, or when its last pin is released.

When ``create`` finds no hole big enough it makes room, in this order:

1. evict sealed, unpinned *secondary* copies (copies pulled from another
   node, which can be pulled again), least recently used first;
2. spill sealed, unpinned *primary* copies to ``spill_dir`` (one file per
   object), least recently used first; ``get`` restores them transparently.
   Primaries whose spill file is still there (restored ones) go first: they
   cost no write, like clean pages in a page cache;
3. raise :class:`~jray.exceptions.ObjectStoreFullError` with the sizes.

Nothing is evicted or spilled when that could not make enough room anyway.

Spill files are kept until the object is freed: objects are immutable, so a
restored object that must leave memory again is simply dropped (no second
write), and a read from disk (``read_chunks``) needs no restore.

An object larger than the whole store can never be created in memory:
``create`` raises ObjectStoreFullError for it. When ``spill_dir`` is set the
caller may instead call :meth:`LocalObjectStore.create_spilled`, write the
bytes into the file path it returns, and ``seal``; such an object is served
by ``read_chunks`` (and ``pin_spilled``, for a reader that reads the file
itself), while ``get`` raises ObjectStoreFullError since it cannot be
mapped. A copy pulled from another node that finds no room is written the
same way (a secondary on disk).

Spilled objects are private to the user running the node: a spill directory
the store creates is 0700 and every spill file is created 0600 (with
``O_EXCL | O_NOFOLLOW``: a file or link someone else planted under that name
in a shared directory is never written through). A directory the user chose
and that already exists keeps its own mode.

Threading: not thread-safe, by design. The raylet calls it from its single
asyncio thread; clients' ``on_release`` callbacks (which run on arbitrary
threads in *other* processes) reach it as RPCs on that thread.
"""

from __future__ import annotations

import errno
import logging
import os
import tempfile
from collections import OrderedDict
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from itertools import count

from jray._private.object_store.allocator import Allocator
from jray._private.object_store.arena import Arena
from jray.exceptions import ObjectStoreFullError

logger = logging.getLogger(__name__)

_SPILL_BUF = 8 << 20  # bytes per write/read when spilling and restoring


class ObjectExistsError(Exception):
    """Raised by ``create`` when the object is already sealed or being created."""


@dataclass
class _Entry:
    object_id: bytes
    size: int
    owner: object
    primary: bool
    offset: int | None = None  # None when the object is not in memory
    sealed: bool = False
    spill_path: str | None = None  # a complete copy on disk (or being written, if unsealed)
    pins: dict[bytes, int] = field(default_factory=dict)  # client id -> count
    num_pins: int = 0
    freed: bool = False  # the owner freed it; delete when the last pin goes

    @property
    def in_memory(self) -> bool:
        return self.offset is not None


class LocalObjectStore:
    """Objects of one node: allocation, pins, LRU eviction and spilling.

    ``capacity`` (default: the arena's) bounds how much of the arena is used;
    ``spill_dir`` (created if missing) enables spilling primary copies.
    """

    def __init__(
        self, arena: Arena, capacity: int | None = None, spill_dir: str | None = None
    ) -> None:
        if capacity is None:
            capacity = arena.capacity
        if not 0 < capacity <= arena.capacity:
            raise ValueError(
                f"capacity {capacity} must be in (0, {arena.capacity}] (the arena's size)"
            )
        self._arena = arena
        self._alloc = Allocator(capacity)
        self._spill_dir = spill_dir
        self._made_spill_dir = False
        if spill_dir is not None:
            self._made_spill_dir = _check_writable_dir(spill_dir)
        self._objects: dict[bytes, _Entry] = {}
        # Sealed objects in memory, least recently used first.
        self._lru: OrderedDict[bytes, None] = OrderedDict()
        self._client_pins: dict[bytes, set[bytes]] = {}  # client id -> object ids it pins
        self._spill_files: set[str] = set()
        self._reader_ids = count()
        self._pinned_bytes = 0
        self._spilled_bytes = 0
        self._counters = dict.fromkeys(
            (
                "evicted_count",
                "evicted_bytes",
                "spill_count",
                "spilled_bytes_total",
                "restore_count",
                "restored_bytes_total",
            ),
            0,
        )

    # -- introspection ------------------------------------------------------------
    @property
    def arena(self) -> Arena:
        return self._arena

    @property
    def capacity(self) -> int:
        return self._alloc.capacity

    @property
    def used(self) -> int:
        """Arena bytes allocated (objects in memory, sealed or being written)."""
        return self._alloc.used

    @property
    def num_objects(self) -> int:
        """Objects known here: sealed or being written, in memory or spilled."""
        return len(self._objects)

    @property
    def spilled_bytes(self) -> int:
        """Bytes of objects that have a copy in a spill file."""
        return self._spilled_bytes

    @property
    def pinned_bytes(self) -> int:
        """Arena bytes of objects pinned by at least one client."""
        return self._pinned_bytes

    @property
    def spill_dir(self) -> str | None:
        return self._spill_dir

    def stats(self) -> dict[str, int]:
        return {
            "capacity": self.capacity,
            "used": self.used,
            "pinned_bytes": self._pinned_bytes,
            "num_objects": len(self._objects),
            "num_in_memory": len(self._lru),
            "num_spilled": sum(1 for e in self._objects.values() if e.spill_path and e.sealed),
            "spilled_bytes": self._spilled_bytes,
            "largest_free": self._alloc.largest_free,
            **self._counters,
        }

    def list_objects(self) -> list[dict[str, object]]:
        return [
            {
                "object_id": e.object_id,
                "size": e.size,
                "sealed": e.sealed,
                "primary": e.primary,
                "pins": e.num_pins,
                "spilled": e.spill_path is not None,
                "in_memory": e.in_memory,
                "offset": e.offset,
                "owner": e.owner,
            }
            for e in self._objects.values()
        ]

    def contains(self, object_id: bytes) -> bool:
        """True when the object is sealed here (in memory or spilled) and not freed."""
        e = self._objects.get(object_id)
        return e is not None and e.sealed and not e.freed

    def object_size(self, object_id: bytes) -> int | None:
        """Size of a sealed object (in memory or spilled), else None. No pin, no restore."""
        e = self._objects.get(object_id)
        return e.size if e is not None and e.sealed else None

    def spill_path(self, object_id: bytes) -> str | None:
        """The spill file holding a sealed copy of the object, if any."""
        e = self._objects.get(object_id)
        return e.spill_path if e is not None and e.sealed else None

    # -- writing ------------------------------------------------------------------
    def create(
        self,
        object_id: bytes,
        size: int,
        owner: object = None,
        primary: bool = True,
        pin_for: bytes | None = None,
    ) -> int:
        """Reserve ``size`` bytes for a new object and return their offset.

        Evicts or spills other objects when needed (see the module doc).
        ``pin_for``: pin it for that client already (its writer, which can
        then read it back without a ``get``; ``release`` as for ``get``).
        Raises ObjectExistsError if the object is here already, and
        ObjectStoreFullError when no room can be made.
        """
        if size < 0:
            raise ValueError(f"object size must be >= 0, got {size}")
        if object_id in self._objects:
            raise ObjectExistsError(f"object {object_id.hex()} already exists in this store")
        offset = self._make_room(object_id, size)
        e = self._objects[object_id] = _Entry(object_id, size, owner, primary, offset=offset)
        if pin_for is not None:
            self._pin(e, pin_for)
        return offset

    def create_spilled(
        self, object_id: bytes, size: int, owner: object = None, primary: bool = True
    ) -> str:
        """Create an object straight on disk; return the file to write.

        For objects that do not fit in memory (a put larger than the store,
        or a copy pulled from another node into a full store). The file
        exists, ``size`` bytes long; write into it (``open(path, "r+b")``)
        and call ``seal``.
        """
        if self._spill_dir is None:
            raise ObjectStoreFullError(
                f"cannot create object {object_id.hex()} on disk: spilling is disabled"
            )
        if object_id in self._objects:
            raise ObjectExistsError(f"object {object_id.hex()} already exists in this store")
        path = self._spill_file(object_id)
        with os.fdopen(_create_private(path), "wb") as f:
            f.truncate(size)
        self._spill_files.add(path)
        self._objects[object_id] = _Entry(object_id, size, owner, primary, spill_path=path)
        return path

    def seal(self, object_id: bytes) -> None:
        """Mark a created object complete and readable. Sealing twice is a no-op."""
        e = self._objects.get(object_id)
        if e is None:
            raise KeyError(
                f"cannot seal object {object_id.hex()}: it was never created (or was aborted)"
            )
        if e.sealed:
            return
        e.sealed = True
        if e.spill_path is not None:
            self._spilled_bytes += e.size
        if e.in_memory:
            self._lru[object_id] = None
        if e.freed and not e.num_pins:
            self._delete(e)

    def abort(self, object_id: bytes) -> None:
        """Drop an unsealed object and its space. Sealed or unknown: no-op."""
        e = self._objects.get(object_id)
        if e is None or e.sealed:
            if e is not None:
                logger.debug("abort of sealed object %s ignored", object_id.hex())
            return
        self._delete(e)

    # -- reading ------------------------------------------------------------------
    def get(self, object_id: bytes, client_id: bytes) -> tuple[int, int] | None:
        """Pin the object for ``client_id`` and return ``(offset, size)``.

        A spilled object is first restored into memory (which may evict or
        spill others; ObjectStoreFullError if it cannot fit). None for an
        object that is unknown, unsealed or freed.
        """
        e = self._objects.get(object_id)
        if e is None or not e.sealed or e.freed:
            return None
        if not e.in_memory:
            self._restore(e)
        self._pin(e, client_id)
        self._lru.move_to_end(object_id)
        assert e.offset is not None
        return e.offset, e.size

    def pin_in_memory(self, object_id: bytes, client_id: bytes) -> tuple[int, int] | None:
        """``get`` without the restore: pin a sealed object that is in memory
        for ``client_id`` and return ``(offset, size)``; None when it is
        unknown, unsealed, freed or only on disk."""
        e = self._objects.get(object_id)
        if e is None or not e.sealed or e.freed or e.offset is None:
            return None
        self._pin(e, client_id)
        self._lru.move_to_end(object_id)
        return e.offset, e.size

    def pin_spilled(self, object_id: bytes, client_id: bytes) -> tuple[str, int] | None:
        """Pin a sealed object's spill file for ``client_id``, which reads it
        itself (when it cannot be restored into memory), and return
        ``(path, size)``; None when it has no spill file. The file outlives a
        ``free`` until the pin is released (like ``get``'s pins)."""
        e = self._objects.get(object_id)
        if e is None or not e.sealed or e.freed or e.spill_path is None:
            return None
        self._pin(e, client_id)
        return e.spill_path, e.size

    def release(self, object_id: bytes, client_id: bytes) -> None:
        """Drop one pin of ``client_id`` on the object (unknown pins are ignored)."""
        e = self._objects.get(object_id)
        if e is None or client_id not in e.pins:
            logger.debug(
                "release of unpinned object %s by %s ignored", object_id.hex(), client_id.hex()
            )
            return
        left = e.pins[client_id] - 1
        if left:
            e.pins[client_id] = left
        else:
            del e.pins[client_id]
            objs = self._client_pins.get(client_id)
            if objs is not None:
                objs.discard(object_id)
                if not objs:
                    del self._client_pins[client_id]
        self._unpin(e, 1)

    def release_client(self, client_id: bytes) -> None:
        """Drop every pin of a client (a worker that died or disconnected)."""
        for object_id in self._client_pins.pop(client_id, set()):
            e = self._objects.get(object_id)
            if e is not None:
                self._unpin(e, e.pins.pop(client_id, 0))

    def read_chunks(
        self, object_id: bytes, chunk_size: int
    ) -> Generator[memoryview | bytes, None, None]:
        """Yield the sealed object's bytes in chunks, from memory or from disk.

        The object stays pinned while the iterator is alive. Memory chunks
        are views into the arena: use (or copy) each before asking for the
        next, and do not keep them past the end of the iteration. A spilled
        object is read from its file, not restored. KeyError if the object
        is not sealed here.
        """
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be > 0, got {chunk_size}")
        e = self._objects.get(object_id)
        if e is None or not e.sealed:
            raise KeyError(f"object {object_id.hex()} is not sealed in this store")
        return self._iter_chunks(e, chunk_size)

    def _iter_chunks(self, e: _Entry, chunk_size: int) -> Generator[memoryview | bytes, None, None]:
        # A generator body runs at the first next(): check the object is
        # still here, then pin it (pinning eagerly would leak the pin of an
        # iterator that is never started, as its finally would never run).
        if self._objects.get(e.object_id) is not e:
            raise KeyError(f"object {e.object_id.hex()} was deleted before it was read")
        reader = b"\x00read_chunks-%d" % next(self._reader_ids)
        self._pin(e, reader)
        try:
            if e.offset is not None:
                view = self._arena.write_view(e.offset, e.size).toreadonly()
                try:
                    for pos in range(0, e.size, chunk_size):
                        yield view[pos : pos + chunk_size]
                finally:
                    view.release()
            else:
                assert e.spill_path is not None
                with open(e.spill_path, "rb") as f:
                    while chunk := f.read(chunk_size):
                        yield chunk
        finally:
            self.release(e.object_id, reader)

    # -- deleting -----------------------------------------------------------------
    def free(self, object_id: bytes) -> None:
        """The owner no longer references the object: delete it (and its spill
        file) now, or when its last pin is released / when it is sealed."""
        e = self._objects.get(object_id)
        if e is None:
            return
        e.freed = True
        if not e.num_pins and e.sealed:
            self._delete(e)

    def close(self) -> None:
        """Forget every object and remove the spill files this store wrote."""
        for path in list(self._spill_files):
            _remove(path)
        self._spill_files.clear()
        if self._made_spill_dir and self._spill_dir is not None:
            try:
                os.rmdir(self._spill_dir)
            except OSError:
                pass
        self._objects.clear()
        self._lru.clear()
        self._client_pins.clear()

    # -- internals ----------------------------------------------------------------
    def _pin(self, e: _Entry, client_id: bytes) -> None:
        n = e.pins.get(client_id, 0)
        e.pins[client_id] = n + 1
        if not n:
            self._client_pins.setdefault(client_id, set()).add(e.object_id)
        if not e.num_pins and e.offset is not None:
            self._pinned_bytes += self._alloc.allocation_size(e.offset)
        e.num_pins += 1

    def _unpin(self, e: _Entry, n: int) -> None:
        if not n:
            return
        e.num_pins -= n
        if e.num_pins:
            return
        if e.offset is not None:
            self._pinned_bytes -= self._alloc.allocation_size(e.offset)
        if e.freed:
            self._delete(e)

    def _delete(self, e: _Entry) -> None:
        self._objects.pop(e.object_id, None)
        self._drop_memory(e)
        if e.spill_path is not None:
            if e.sealed:
                self._spilled_bytes -= e.size
            _remove(e.spill_path)
            self._spill_files.discard(e.spill_path)
            e.spill_path = None
        for client_id in e.pins:
            objs = self._client_pins.get(client_id)
            if objs is not None:
                objs.discard(e.object_id)
                if not objs:
                    del self._client_pins[client_id]

    def _drop_memory(self, e: _Entry) -> None:
        if e.offset is None:
            return
        if e.num_pins:
            self._pinned_bytes -= self._alloc.allocation_size(e.offset)
        self._alloc.free(e.offset)
        e.offset = None
        self._lru.pop(e.object_id, None)

    def _make_room(self, object_id: bytes, size: int) -> int:
        offset = self._alloc.allocate(size)
        if offset is not None:
            return offset
        need = self._alloc.rounded_size(size)
        secondaries = [e for e in self._unpinned_lru() if not e.primary]
        primaries = [e for e in self._unpinned_lru() if e.primary] if self._spill_dir else []
        primaries.sort(key=lambda e: e.spill_path is None)  # stable: LRU within each group
        reclaimable = sum(
            self._alloc.allocation_size(e.offset)
            for e in secondaries + primaries
            if e.offset is not None
        )
        if need <= self.capacity and self._alloc.free_bytes + reclaimable >= need:
            for e in secondaries:
                self._evict(e)
                offset = self._alloc.allocate(size)
                if offset is not None:
                    return offset
            for e in primaries:
                self._spill(e)
                offset = self._alloc.allocate(size)
                if offset is not None:
                    return offset
        raise ObjectStoreFullError(self._full_message(object_id, size))

    def _unpinned_lru(self) -> Iterator[_Entry]:
        for object_id in self._lru:
            e = self._objects[object_id]
            if not e.num_pins:
                yield e

    def _evict(self, e: _Entry) -> None:
        logger.debug("evicting secondary copy of %s (%d bytes)", e.object_id.hex(), e.size)
        self._counters["evicted_count"] += 1
        self._counters["evicted_bytes"] += e.size
        self._delete(e)

    def _spill(self, e: _Entry) -> None:
        assert self._spill_dir is not None and e.offset is not None
        if e.spill_path is None:  # else the file from an earlier spill is still valid
            path = self._spill_file(e.object_id)
            tmp = path + ".tmp"
            try:
                with os.fdopen(_create_private(tmp), "wb") as f:
                    if not self._arena.copy_out(e.offset, e.size, f.fileno()):
                        view = self._arena.write_view(e.offset, e.size)
                        try:
                            for pos in range(0, e.size, _SPILL_BUF):
                                f.write(view[pos : pos + _SPILL_BUF])
                        finally:
                            view.release()
                os.replace(tmp, path)
            except OSError as err:
                _remove(tmp)
                raise ObjectStoreFullError(
                    f"cannot spill object {e.object_id.hex()} ({e.size} bytes) to {path}: {err}"
                ) from err
            e.spill_path = path
            self._spill_files.add(path)
            self._spilled_bytes += e.size
            self._counters["spill_count"] += 1
            self._counters["spilled_bytes_total"] += e.size
            logger.debug("spilled %s (%d bytes) to %s", e.object_id.hex(), e.size, path)
        self._drop_memory(e)

    def _restore(self, e: _Entry) -> None:
        assert e.spill_path is not None
        offset = self._make_room(e.object_id, e.size)
        try:
            with open(e.spill_path, "rb") as f:
                if os.fstat(f.fileno()).st_size < e.size:
                    raise OSError(errno.EIO, f"spill file {e.spill_path} is shorter than {e.size} bytes")
                if not self._arena.copy_in(offset, e.size, f.fileno()):
                    view = self._arena.write_view(offset, e.size)
                    try:
                        pos = 0
                        while pos < e.size:
                            n = f.readinto(view[pos : pos + _SPILL_BUF])
                            if not n:
                                raise OSError(
                                    errno.EIO, f"spill file {e.spill_path} is shorter than {e.size} bytes"
                                )
                            pos += n
                    finally:
                        view.release()
        except BaseException:
            self._alloc.free(offset)
            raise
        e.offset = offset
        if e.num_pins:  # a read_chunks reader pinned it while it was on disk
            self._pinned_bytes += self._alloc.allocation_size(offset)
        self._lru[e.object_id] = None
        self._counters["restore_count"] += 1
        self._counters["restored_bytes_total"] += e.size
        logger.debug("restored %s (%d bytes) from %s", e.object_id.hex(), e.size, e.spill_path)

    def _spill_file(self, object_id: bytes) -> str:
        assert self._spill_dir is not None
        return os.path.join(self._spill_dir, object_id.hex())

    def _full_message(self, object_id: bytes, size: int) -> str:
        creating = sum(
            self._alloc.allocation_size(e.offset)
            for e in self._objects.values()
            if e.offset is not None and not e.sealed
        )
        if size > self.capacity:
            why = "it is larger than the whole store" + (
                "; write it to disk with create_spilled" if self._spill_dir else ""
            )
        elif self._spill_dir is None:
            why = "spilling is disabled (no spill directory)"
        else:
            why = "everything else is pinned or being written"
        return (
            f"Cannot create object {object_id.hex()} of {size} bytes in the object store: "
            f"capacity {self.capacity} bytes, {self.used} used, {self._pinned_bytes} pinned by readers, "
            f"{creating} being written, largest free block {self._alloc.largest_free} bytes; {why}."
        )


def _check_writable_dir(path: str) -> bool:
    """Create ``path`` if needed and prove a file can be written in it.

    Returns whether the directory was created here. Raises OSError naming the
    directory otherwise (``os.access`` is no proof: root passes it anyway).
    """
    made = False
    try:
        if not os.path.isdir(path):
            os.makedirs(path, mode=0o700, exist_ok=True)  # (parents it makes get the default mode)
            made = True
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OSError(
            e.errno, f"object spill directory {path!r} is not writable: {e.strerror}"
        ) from e
    return made


def _create_private(path: str) -> int:
    """A new file at ``path``, mode 0600, open for writing. A file already
    there (left by a crash) is replaced: removed, then created anew; a link is
    never followed."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(path, flags, 0o600)
    except FileExistsError:
        os.unlink(path)
        return os.open(path, flags, 0o600)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        logger.warning("could not remove spill file %s: %s", path, e)
