"""The bulk path between raylets: an object's bytes over one plain TCP
connection, straight from the sender's store memory into the receiver's.

Why: a pull over gRPC (``ReadObjectRaw``) costs the receiving raylet about
0.9 CPU-s per GiB in Python gRPC's receive (the C core's slices, a ``bytes``
per message, the hand-off to asyncio) and tops out near 1 GB/s, where the
link between two machines does 1.6-3 GB/s (``bench/RESULTS.md``, "Between
machines"). Here the sender's thread hands the object's pages of its arena
file to the socket with ``sendfile`` (no copy into the socket's buffers:
on a 2-core box the copies are what the two sides compete for; 1.3-1.5x
the throughput of ``sendall`` from the mapping, which remains for an object
without a file behind it) and the receiver's thread ``recv_into`` a view of
the object's allocated memory: one kernel copy in all, the GIL released.

Wire (one object per connection). The puller sends ``MAGIC``, ``<HH``
(token length, object id length), the cluster token, the object id. The
server checks the token (``hmac.compare_digest``, as ``direct.py`` does) and
closes a connection with a wrong one without a byte of reply; it then
answers ``<BQ`` (status, size): ``OK`` followed by exactly ``size`` bytes,
or ``NOT_HERE`` (unknown, not sealed within 10 s, only on disk, or too many
sends at once) and nothing more. Any failure on the puller's side (refused,
not here, a short read, a timeout) sends the pull back to gRPC; the puller
aborts the object it allocated, so a half-written object is never sealed.

The bulk path is plain TCP, so it is off when the cluster uses TLS
(``tls.current()``): the raylet starts no listener (its node advertises
``bulk_port`` 0) and pulls go over gRPC, TLS as everything else.

Threads: one accepting per raylet; one per connection on each side, for
the transfer only. At most ``MAX_SENDS`` sends run at once (more wait for a
slot, up to ``SLOT_WAIT_SECONDS``, then answer ``NOT_HERE``). The sender's
object is pinned through the raylet's event loop for the send and unpinned
after it, also when the puller goes away midway.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import select
import socket
import struct
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, NamedTuple

logger = logging.getLogger(__name__)

MAGIC = b"JRB1"
REQUEST = struct.Struct("<HH")
REPLY = struct.Struct("<BQ")
OK, NOT_HERE = 0, 1
MAX_TOKEN, MAX_OID = 1024, 64
MAX_SENDS = 4
MAX_CONNECTIONS = 64  # connection threads at once (past that, new ones are closed)
HANDSHAKE_SECONDS = 5.0
SLOT_WAIT_SECONDS = 30.0
IO_SECONDS = 30.0  # a send or receive that makes no progress this long fails
SOCKET_BUFFER = 4 << 20
SLICE = 16 << 20  # bytes per send/recv call (each call's timeout is IO_SECONDS)

class Pinned(NamedTuple):
    """What the server asks its event loop for (None: it cannot be sent from memory)."""

    view: memoryview  # the object's bytes, read-only
    unpin: Callable[[], None]  # called (on the loop) once the send is over
    fd: int = -1  # a file descriptor of the file the view maps, for sendfile, closed after; -1: send the view
    offset: int = 0  # where the object starts in that file


Acquire = Callable[[bytes], Coroutine[Any, Any, Pinned | None]]


class BulkError(Exception):
    """The bulk path could not move the object (the pull falls back to gRPC)."""


def _tune(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = s.recv_into(view[got:], n - got)
        if not k:
            raise BulkError(f"the connection closed after {got} of {n} bytes")
        got += k
    return bytes(buf)


class BulkServer:
    """A raylet's bulk listener: sends objects of its store to pullers that
    show the cluster token. ``acquire`` runs on ``loop``."""

    def __init__(self, token: str, loop: asyncio.AbstractEventLoop, acquire: Acquire) -> None:
        self.token = token.encode()
        self.loop = loop
        self.acquire = acquire
        self.port = 0
        self.num_sent = 0
        self.num_refused = 0
        self.num_failed = 0
        self._sock: socket.socket | None = None
        self._sends = threading.BoundedSemaphore(MAX_SENDS)
        self._conns = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._closed = False

    def start(self, host: str) -> int:
        self._sock = socket.create_server((host, 0), backlog=64)
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept_loop, name="jray-bulk-accept", daemon=True).start()
        return self.port

    def close(self) -> None:
        self._closed = True
        s, self._sock = self._sock, None
        if s is not None:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            s.close()

    def _accept_loop(self) -> None:
        while not self._closed:
            s = self._sock
            if s is None:
                return
            try:
                conn, _peer = s.accept()
            except OSError:
                if self._closed:
                    return
                continue
            if not self._conns.acquire(blocking=False):
                conn.close()
                continue
            threading.Thread(target=self._serve, args=(conn,), name="jray-bulk-send", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                self._serve_one(conn)
        except Exception as e:  # noqa: BLE001 - a puller gone midway, a bad request
            self.num_failed += 1
            logger.debug("bulk send failed: %s", e)
        finally:
            self._conns.release()

    def _serve_one(self, conn: socket.socket) -> None:
        conn.settimeout(HANDSHAKE_SECONDS)
        head = _recv_exactly(conn, len(MAGIC) + REQUEST.size)
        if head[:len(MAGIC)] != MAGIC:
            self.num_refused += 1
            return
        ntoken, noid = REQUEST.unpack_from(head, len(MAGIC))
        if ntoken > MAX_TOKEN or noid > MAX_OID:
            self.num_refused += 1
            return
        token = _recv_exactly(conn, ntoken)
        oid = _recv_exactly(conn, noid)
        if not hmac.compare_digest(token, self.token):
            self.num_refused += 1
            logger.warning("bulk connection with a wrong token refused")
            return
        _tune(conn)
        conn.settimeout(IO_SECONDS)
        if not self._sends.acquire(timeout=SLOT_WAIT_SECONDS):
            conn.sendall(REPLY.pack(NOT_HERE, 0))
            return
        try:
            got = self._pin(oid)
            if got is None:
                conn.sendall(REPLY.pack(NOT_HERE, 0))
                return
            try:
                size = len(got.view)
                conn.sendall(REPLY.pack(OK, size))
                if got.fd >= 0:
                    _sendfile(conn, got.fd, got.offset, size)
                else:
                    for pos in range(0, size, SLICE):
                        conn.sendall(got.view[pos:pos + SLICE])
                self.num_sent += 1
            finally:
                _close_fd(got.fd)
                got.view.release()
                self._on_loop(got.unpin)
        finally:
            self._sends.release()

    def _pin(self, oid: bytes) -> Pinned | None:
        fut: Future[Pinned | None] = asyncio.run_coroutine_threadsafe(self.acquire(oid), self.loop)
        try:
            return fut.result(timeout=SLOT_WAIT_SECONDS)
        except BaseException:
            # Too late (or the loop is going): whatever it pins later is unpinned at once.
            def undo(f: Future[Pinned | None]) -> None:
                got = None if f.cancelled() or f.exception() is not None else f.result()
                if got is not None:
                    _close_fd(got.fd)
                    got.view.release()
                    self._on_loop(got.unpin)
            fut.add_done_callback(undo)
            raise

    def _on_loop(self, fn: Callable[[], None]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the process is ending
            self.loop.call_soon_threadsafe(fn)


def _close_fd(fd: int) -> None:
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)


def _sendfile(conn: socket.socket, fd: int, offset: int, size: int) -> None:
    """``size`` bytes of file ``fd`` from ``offset`` onto ``conn`` (which has a
    timeout, so its fd is non-blocking: wait for room at most IO_SECONDS)."""
    sent, poller = 0, None
    while sent < size:
        try:
            k = os.sendfile(conn.fileno(), fd, offset + sent, min(size - sent, SLICE))
        except BlockingIOError:
            if poller is None:
                poller = select.poll()
                poller.register(conn.fileno(), select.POLLOUT)
            if not poller.poll(IO_SECONDS * 1000):
                raise BulkError(f"the send made no progress for {IO_SECONDS:.0f} s ({sent} of {size} bytes)") from None
            continue
        if k == 0:
            raise BulkError(f"the file ended after {sent} of {size} bytes")
        sent += k


def request(host: str, port: int, token: str, oid: bytes) -> tuple[socket.socket, int] | None:
    """Connect to a bulk server and ask for ``oid``: the connection, ready
    to read ``size`` bytes, and ``size``; None when the server does not
    have it in memory. BulkError (or OSError) on any other failure.
    Blocking: run it in a thread."""
    s = socket.create_connection((host, port), timeout=HANDSHAKE_SECONDS)
    try:
        _tune(s)
        t = token.encode()
        s.sendall(MAGIC + REQUEST.pack(len(t), len(oid)) + t + oid)
        s.settimeout(SLOT_WAIT_SECONDS + 15.0)  # the server may wait for the seal, or a slot
        status, size = REPLY.unpack(_recv_exactly(s, REPLY.size))
        if status != OK:
            s.close()
            return None
        s.settimeout(IO_SECONDS)
        return s, size
    except BaseException:
        s.close()
        raise


def recv_into(s: socket.socket, view: memoryview) -> None:
    """Fill ``view`` from ``s``: BulkError when the sender stops short."""
    n = len(view)
    got = 0
    while got < n:
        k = s.recv_into(view[got:], min(n - got, SLICE))
        if not k:
            raise BulkError(f"the sender closed the connection after {got} of {n} bytes")
        got += k


def in_thread(fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    """Run ``fn(*args)`` in a thread of its own; its result as a future of
    the running loop (not cancelled with its awaiter: shield it)."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()

    def done(result: Any, exc: BaseException | None) -> None:
        if fut.cancelled():
            return
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)

    def run() -> None:
        try:
            result = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the loop
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(done, None, e)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(done, result, None)

    threading.Thread(target=run, name="jray-bulk-recv", daemon=True).start()
    return fut
