"""The node's shared-memory file, mapped into every process on the node.

The raylet :meth:`Arena.create`\\ s one file under ``/dev/shm`` per node; the
driver and the workers :meth:`Arena.attach` it. All of them then read and
write objects in place at the offsets the raylet's store hands out, so a
``get`` on the same node copies nothing.

The file is sparse (``ftruncate``): a page costs memory only once it is
written. Beware that writing a page when ``/dev/shm`` has no room left kills
the writer with SIGBUS, which is why :meth:`Arena.create` checks the free
space up front.

Read views and pins
-------------------
:meth:`Arena.read_view` returns a read-only memoryview whose buffer is
exported by a fresh ctypes array laid over the shared mapping. Every object
derived from the view (slices, ``numpy.frombuffer`` arrays, pickle-5
``PickleBuffer``\\ s and the arrays ``pickle.loads(..., buffers=...)`` builds
from them) keeps that exporter alive through the buffer protocol, so a
``weakref.finalize`` on it fires exactly when the last of them is collected.
That is when the reader may drop its pin on the object.

Why not one ``mmap`` per read, the other classic exporter: on Python < 3.13
every ``mmap.mmap`` object ``dup``\\ s the file descriptor (there is no
``trackfd=False``), so a process holding a few thousand arrays from the store
would run out of descriptors; and a new mapping page-faults every page again
(measured: ~9 ms per 100 MB read versus ~0.3 ms through the shared mapping).

Closing with live views: ``mmap.close()`` refuses (BufferError) while buffers
are exported. :meth:`Arena.close` then just drops its own reference; the
mapping is unmapped by the kernel when the last view is collected, and live
views stay valid until then. Closing never raises because of readers.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import mmap
import os
import weakref
from collections.abc import Callable

logger = logging.getLogger(__name__)

SHM_DIR = "/dev/shm"


class Arena:
    """A shared-memory file mapped read/write into this process."""

    def __init__(self, path: str, fd: int, capacity: int, mm: mmap.mmap, owner: bool) -> None:
        # Use Arena.create / Arena.attach.
        self._path = path
        self._fd = fd
        self._capacity = capacity
        self._mm: mmap.mmap | None = mm
        self._owner = owner
        self._closed = False

    # -- construction -----------------------------------------------------------
    @classmethod
    def create(cls, path: str, capacity: int) -> Arena:
        """Create a new sparse shared-memory file of ``capacity`` bytes.

        A bare name is placed under ``/dev/shm``. Raises FileExistsError if
        the file exists, and OSError (ENOSPC) naming the path and the sizes
        when its filesystem has less than ``capacity`` bytes free.
        """
        if capacity <= 0:
            raise ValueError(f"arena capacity must be > 0 bytes, got {capacity}")
        path = _full_path(path)
        directory = os.path.dirname(path) or "."
        try:
            st = os.statvfs(directory)
        except OSError as e:
            raise OSError(e.errno, f"cannot create object store file {path}: {e.strerror}") from e
        avail = st.f_bavail * st.f_frsize
        if avail < capacity:
            raise OSError(
                errno.ENOSPC,
                f"cannot create object store file {path} of {capacity} bytes "
                f"({capacity / 2**30:.2f} GiB): {directory} has only {avail} bytes "
                f"({avail / 2**30:.2f} GiB) free; lower object_store_memory or enlarge {directory}",
            )
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, capacity)
            mm = mmap.mmap(
                fd, capacity, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE
            )
        except OSError as e:
            os.close(fd)
            os.unlink(path)
            raise OSError(
                e.errno, f"cannot create object store file {path} of {capacity} bytes: {e.strerror}"
            ) from e
        logger.debug("created arena %s (%d bytes)", path, capacity)
        return cls(path, fd, capacity, mm, owner=True)

    @classmethod
    def attach(cls, path: str) -> Arena:
        """Map an existing arena (created by the node's raylet) read/write."""
        path = _full_path(path)
        fd = os.open(path, os.O_RDWR)
        try:
            capacity = os.fstat(fd).st_size
            if capacity <= 0:
                raise OSError(errno.EINVAL, f"object store file {path} is empty")
            mm = mmap.mmap(
                fd, capacity, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE
            )
        except BaseException:
            os.close(fd)
            raise
        logger.debug("attached arena %s (%d bytes)", path, capacity)
        return cls(path, fd, capacity, mm, owner=False)

    # -- properties -------------------------------------------------------------
    @property
    def path(self) -> str:
        return self._path

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def closed(self) -> bool:
        return self._closed

    def fileno(self) -> int:
        """The open file behind the mapping (for ``sendfile``); -1 once closed."""
        return -1 if self._closed else self._fd

    def copy_out(self, offset: int, size: int, out_fd: int) -> bool:
        """Write ``[offset, offset + size)`` to ``out_fd`` at its position,
        copied in the kernel (``sendfile``). False where the kernel cannot
        (nothing written then): the caller copies through a view."""
        return _kernel_copy(out_fd, self.fileno(), offset, size)

    def copy_in(self, offset: int, size: int, in_fd: int) -> bool:
        """Fill ``[offset, offset + size)`` from ``in_fd`` (from its start),
        copied in the kernel: no page of the range is mapped into this
        process on the way (writing a fresh page through the mapping costs a
        page fault per 4 KB: restoring a spilled object copied at ~1-2 GB/s
        that way). False where the kernel cannot (nothing written then)."""
        if self._closed:
            return False
        try:
            out = os.open(self._path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return False
        try:
            os.lseek(out, offset, os.SEEK_SET)
            return _kernel_copy(out, in_fd, 0, size)
        finally:
            os.close(out)

    # -- views ------------------------------------------------------------------
    def write_view(self, offset: int, size: int) -> memoryview:
        """A writable view of ``[offset, offset + size)``.

        Release it (``view.release()``) or drop it when done writing.
        """
        mm = self._mapping(offset, size)
        return memoryview(mm)[offset : offset + size]

    def read_view(
        self, offset: int, size: int, on_release: Callable[[], None] | None = None
    ) -> memoryview:
        """A read-only, zero-copy view of ``[offset, offset + size)``.

        ``on_release`` is called once, from whichever thread drops the last
        reference, after the view and everything derived from it are gone.
        It is not called at interpreter exit (the raylet releases a dead
        client's pins itself). Keep it short and thread-safe: hand the work
        to your event loop (``loop.call_soon_threadsafe``).
        """
        mm = self._mapping(offset, size)
        exporter = (ctypes.c_ubyte * size).from_buffer(mm, offset)
        view = memoryview(exporter).cast("B").toreadonly()
        if on_release is not None:
            fin = weakref.finalize(exporter, _call_quietly, on_release)
            fin.atexit = False
        return view

    def _mapping(self, offset: int, size: int) -> mmap.mmap:
        if self._mm is None:
            raise ValueError(f"arena {self._path} is closed")
        if offset < 0 or size < 0 or offset + size > self._capacity:
            raise ValueError(
                f"range [{offset}, {offset + size}) is outside arena {self._path} of {self._capacity} bytes"
            )
        return self._mm

    # -- teardown ---------------------------------------------------------------
    def close(self) -> None:
        """Unmap and close. Idempotent; live views stay valid (see module doc)."""
        if self._closed:
            return
        self._closed = True
        mm, self._mm = self._mm, None
        if mm is not None:
            try:
                mm.close()
            except BufferError:
                # Views are still alive: the mapping goes away with the last one.
                logger.debug("arena %s closed with live views; unmapping deferred", self._path)
        try:
            os.close(self._fd)
        except OSError:
            pass

    def unlink(self) -> None:
        """Remove the file; mappings stay valid until closed. Missing is fine."""
        try:
            os.unlink(self._path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> Arena:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"Arena({self._path!r}, capacity={self._capacity}, {state})"


def _full_path(path: str) -> str:
    return path if os.sep in path else os.path.join(SHM_DIR, path)


def _call_quietly(fn: Callable[[], None]) -> None:
    # Runs inside garbage collection: an exception here would only be printed
    # as "Exception ignored in ...", so log it properly instead.
    try:
        fn()
    except Exception:
        logger.exception("object store on_release callback failed")


_KERNEL_COPY_SLICE = 64 << 20


def _kernel_copy(out_fd: int, in_fd: int, in_offset: int, size: int) -> bool:
    """``size`` bytes from ``in_fd`` at ``in_offset`` to ``out_fd`` at its
    position, by ``sendfile``. False, before anything was written, where
    ``sendfile`` does not take these files; an error after the first bytes
    (a full disk) is raised."""
    if in_fd < 0 or not hasattr(os, "sendfile"):
        return False
    done = 0
    while done < size:
        try:
            n = os.sendfile(out_fd, in_fd, in_offset + done, min(size - done, _KERNEL_COPY_SLICE))
        except OSError as e:
            if done == 0 and e.errno in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ESPIPE):
                return False
            raise
        if n == 0:
            raise OSError(errno.EIO, f"short copy: {done} of {size} bytes")
        done += n
    return True
