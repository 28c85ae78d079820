"""This node's object store as its raylet serves it: the store calls of local
workers and drivers (create, seal, get, release, free) and the transfer of
objects between nodes.

A get for an object that lives on another node *pulls* it: this node asks
that node's raylet to stream it (``ReadObject``) in chunks of
``config.OBJECT_CHUNK_BYTES`` and writes them into its own store, or into a
spill file of its own when the object does not fit in memory, as a local put
would. Both ends handle each chunk as the raw bytes of its ``ObjectChunk``
message (``ReadObjectRaw``, a method the proto does not name: the same
request, replies that are ``ObjectChunk`` messages serialized by
:func:`encode_chunk` and read by :func:`split_chunk`). The data is then
copied once on each side (store to message, message to store), where
protobuf copies it three times to send (``bytes()``, the field, the
serialization) and twice more to receive (the parse, ``chunk.data``): the
copies had made the raylets' CPU the limit of a transfer between machines
(measured with ``bench/network.py``). Concurrent gets of one object share one pull. The serving side
(:meth:`ObjectManager.read`) waits briefly for an object not sealed yet (a
writer seals without waiting, so its location can reach a puller first) and
reads a spilled object from its file without restoring it.

The raylet servicer (``server.py``) composes one :class:`ObjectManager` and
its store RPCs (gRPC, and the direct transport's ``CreateObject``,
``GetObject``, ``AbortObject``) delegate here. The manager reaches other
raylets only through the ``raylet_stub(address)`` factory it is given (and,
for pulls, ``read_object(address)``: ``ReadObjectRaw`` on that raylet).

Between raylets without TLS a pull first tries the bulk path (``bulk.py``):
one plain TCP connection, the sender's store memory sent as is and received
straight into the memory allocated here, no gRPC. ``bulk_peer(address)``
says where that node's bulk listener is (None: it has none, and the pull
goes over gRPC at once). Any failure there (a refused token, a short read,
the sender without the object in memory) aborts what was allocated and the
pull goes on over gRPC, so a half-written object is never sealed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from jray._private import config, tls
from jray._private.ids import is_put_id
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import raylet_pb2 as rpb
from jray._private.raylet import bulk

logger = logging.getLogger(__name__)

# ObjectChunk's field numbers (raylet.proto): total_size, offset, data, found.
_TOTAL, _OFFSET, _DATA, _FOUND = 1, 2, 3, 4


def _varint(b: memoryview, i: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        byte = b[i]
        i += 1
        v |= (byte & 0x7F) << shift
        if byte < 0x80:
            return v, i
        shift += 7


def _encode_varint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def encode_chunk(found: bool, total: int = 0, offset: int = 0, data: bytes | memoryview = b"") -> bytes:
    """A serialized ``ObjectChunk`` (what ``SerializeToString`` would give),
    ``data`` copied once, straight into the message."""
    head = b""
    if total:
        head += b"\x08" + _encode_varint(total)
    if offset:
        head += b"\x10" + _encode_varint(offset)
    if len(data):
        head += b"\x1a" + _encode_varint(len(data))
    return b"".join((head, data, b"\x20\x01" if found else b""))


def split_chunk(raw: bytes | memoryview) -> tuple[bool, int, int, memoryview]:
    """``(found, total_size, offset, data)`` of a serialized ``ObjectChunk``,
    ``data`` a view into ``raw`` (no copy). Fields it does not know are
    skipped, as protobuf does; a malformed message raises ValueError."""
    b = memoryview(raw)
    found, total, offset, data = False, 0, 0, b[0:0]
    i, n = 0, len(b)
    try:
        while i < n:
            key, i = _varint(b, i)
            field, wire = key >> 3, key & 7
            if wire == 0:
                v, i = _varint(b, i)
                if field == _TOTAL:
                    total = v
                elif field == _OFFSET:
                    offset = v
                elif field == _FOUND:
                    found = bool(v)
            elif wire == 2:
                length, i = _varint(b, i)
                if i + length > n:
                    raise ValueError("a field runs past the end of the message")
                if field == _DATA:
                    data = b[i:i + length]
                i += length
            elif wire in (1, 5):
                i += 8 if wire == 1 else 4
            else:
                raise ValueError(f"wire type {wire}")
    except IndexError:
        raise ValueError("truncated ObjectChunk") from None
    if i != n:
        raise ValueError("truncated ObjectChunk")
    return found, total, offset, data


class ObjectManager:
    """Serves ``store`` (a ``LocalObjectStore`` over ``arena``) to this node's
    clients and pulls objects from other nodes into it."""

    def __init__(self, *, store: Any, arena: Any, node_id: bytes, raylet_stub: Callable[[str], Any],
                 read_object: Callable[[str], Callable[[rpb.ReadObjectRequest], AsyncIterator[bytes]]] | None
                 = None, bulk_peer: Callable[[str], tuple[str, int] | None] | None = None,
                 token: str = "") -> None:
        """``raylet_stub(address)``: a RayletService stub for another raylet's
        ``ip:port``; ``read_object(address)``: that raylet's ``ReadObject``
        yielding each reply's raw bytes (without it, pulls use the stub's
        parsed messages); ``bulk_peer(address)``: that raylet's bulk
        listener ``(ip, port)`` or None, ``token`` the cluster's, shown to it."""
        self.store = store
        self.arena = arena
        self.node_id = node_id
        self.raylet_stub = raylet_stub
        self.read_object = read_object
        self.bulk_peer = bulk_peer
        self.token = token
        self.num_pulls = 0  # transfers started from other nodes (GetNodeStats)
        self.num_bulk_pulls = 0  # ... of them over the bulk path
        self.num_bulk_fallbacks = 0  # ... that tried it and went on over gRPC
        self._bulk_readers = itertools.count()
        self._pulls: dict[bytes, asyncio.Future[str]] = {}
        self._seal_waiters: dict[bytes, list[asyncio.Future[None]]] = {}

    # -- local clients -----------------------------------------------------------
    def create(self, request: rpb.CreateObjectRequest) -> rpb.CreateObjectReply:
        from jray._private.object_store import ObjectExistsError
        from jray.exceptions import ObjectStoreFullError

        # A put: pinned for its writer, which may read it back at once without
        # asking (it releases the pin shortly unless it does).
        pin_for = request.owner.worker_id if is_put_id(request.object_id) and request.owner.worker_id else None
        try:
            offset = self.store.create(request.object_id, request.size, owner=request.owner,
                                       primary=request.primary, pin_for=pin_for)
        except ObjectExistsError:
            return rpb.CreateObjectReply(ok=False, exists=True)
        except ObjectStoreFullError as e:
            if not request.primary or self.store.spill_dir is None:
                return rpb.CreateObjectReply(ok=False, full=True, error=str(e))
            # No room in memory (too big, or the rest is pinned): the writer
            # puts the object straight into a spill file.
            try:
                path = self.store.create_spilled(request.object_id, request.size, owner=request.owner)
            except (OSError, ObjectStoreFullError) as e2:
                return rpb.CreateObjectReply(ok=False, full=True, error=f"{e} Writing it to disk failed too: {e2}")
            return rpb.CreateObjectReply(ok=True, spill_path=path)
        return rpb.CreateObjectReply(ok=True, offset=offset)

    def seal(self, oid: bytes) -> None:
        self.store.seal(oid)
        for fut in self._seal_waiters.pop(oid, ()):
            if not fut.done():
                fut.set_result(None)

    def abort(self, oid: bytes) -> None:
        self.store.abort(oid)

    async def get(self, request: rpb.GetObjectRequest) -> rpb.GetObjectReply:
        """Where the object is in this node's store (pulled first from the
        node named in the request, or waited for until sealed here)."""
        from jray.exceptions import ObjectStoreFullError

        oid = request.object_id
        if not self.store.contains(oid):
            if request.from_port and request.from_node_id != self.node_id:
                err = await self.pull(oid, f"{request.from_ip}:{request.from_port}")
                if err:
                    return rpb.GetObjectReply(found=False, error=err)
            elif not await self._wait_sealed(oid, request.timeout or 10):
                return rpb.GetObjectReply(found=False, error="the object is not in this node's store")
        try:
            loc = self.store.get(oid, request.client_id)
        except (ObjectStoreFullError, OSError) as e:
            # No room to restore it: the reader reads the spill file itself,
            # pinned for it (the file outlives a free until the reader
            # releases it, as ReleaseObjects does for memory).
            spilled = self.store.pin_spilled(oid, request.client_id)
            if spilled is not None:
                return rpb.GetObjectReply(found=True, size=spilled[1], spill_path=spilled[0])
            return rpb.GetObjectReply(found=False, full=True, error=f"it could not be restored from disk: {e}")
        if loc is None:
            return rpb.GetObjectReply(found=False, error="the object is not in this node's store")
        return rpb.GetObjectReply(found=True, offset=loc[0], size=loc[1])

    def release(self, oids: Any, client_id: bytes) -> None:
        for oid in oids:
            self.store.release(oid, client_id)

    def free(self, oids: Any) -> None:
        for oid in oids:
            self.store.free(oid)

    def forget_client(self, worker_id: bytes) -> None:
        """A worker died: drop its pins, and free what it put (its owner is
        gone, so nobody can free it later); task returns it wrote belong to
        their callers and stay."""
        self.store.release_client(worker_id)
        for o in self.store.list_objects():
            owner, oid = o["owner"], o["object_id"]
            if isinstance(owner, cpb.Address) and owner.worker_id == worker_id and is_put_id(oid):
                self.store.free(oid)

    def forget_owner(self, worker_id: bytes) -> int:
        """An owner died (anywhere in the cluster): nobody can get or free
        its objects any more, so the copies here go (Ray's ownership: objects
        share their owner's fate). The number freed."""
        n = 0
        for o in self.store.list_objects():
            owner = o["owner"]
            if isinstance(owner, cpb.Address) and owner.worker_id == worker_id:
                self.store.free(o["object_id"])
                n += 1
        return n

    async def write(self, chunks: Any) -> rpb.WriteObjectReply:
        """A client's put (a driver with no store of its own): the object
        streamed in, written into this store (or a spill file when memory
        has no room), sealed, held as the primary copy for its owner."""
        from jray._private.object_store import ObjectExistsError
        from jray.exceptions import ObjectStoreFullError

        view = file = None
        oid = b""
        size = written = 0
        try:
            async for chunk in chunks:
                if not oid:
                    oid, size = chunk.object_id, chunk.total_size
                    if not oid or size < 0:
                        return rpb.WriteObjectReply(ok=False, error="the first chunk must name the object and its size")
                    try:
                        offset = self.store.create(oid, size, owner=chunk.owner, primary=True)
                    except ObjectExistsError:
                        return rpb.WriteObjectReply(ok=False, exists=True)
                    except ObjectStoreFullError as e:
                        if self.store.spill_dir is None:
                            return rpb.WriteObjectReply(ok=False, error=str(e))
                        path = self.store.create_spilled(oid, size, owner=chunk.owner)
                        file = open(path, "r+b")  # noqa: SIM115 - closed below
                    else:
                        view = self.arena.write_view(offset, size)
                n = len(chunk.data)
                if chunk.offset < 0 or chunk.offset + n > size:
                    raise ValueError(f"chunk at {chunk.offset} (+{n}) is outside the object's {size} bytes")
                if file is not None:
                    file.seek(chunk.offset)
                    file.write(chunk.data)
                elif view is not None:
                    view[chunk.offset: chunk.offset + n] = chunk.data
                written += n
            if not oid:
                return rpb.WriteObjectReply(ok=False, error="empty write")
            if written != size:
                raise ValueError(f"{written} of {size} bytes arrived")
            if file is not None:
                file.close()
                file = None
            if view is not None:
                view.release()
                view = None
            self.seal(oid)
            return rpb.WriteObjectReply(ok=True)
        except BaseException as e:  # the writer's stream broke or lied, or the writer cancelled it
            # (Ctrl-C in a client's put: the handler is cancelled, a
            # CancelledError): the half-written object must not stay allocated.
            if file is not None:
                file.close()
            if view is not None:
                view.release()
            if oid:
                self.store.abort(oid)
            if not isinstance(e, Exception):
                raise
            return rpb.WriteObjectReply(ok=False, error=f"writing object {oid.hex()} failed: {e}")

    def object_infos(self) -> list[rpb.StoreObjectInfo]:
        """Every object in the store, for GetNodeStats."""
        out = []
        for o in self.store.list_objects():
            owner = o.get("owner")
            out.append(rpb.StoreObjectInfo(
                object_id=o["object_id"], size=o["size"], sealed=o["sealed"], primary=o["primary"],
                pins=o["pins"], spilled=o["spilled"], owner=owner if isinstance(owner, cpb.Address) else None))
        return out

    async def _wait_sealed(self, oid: bytes, timeout: float) -> bool:
        """Wait up to ``timeout`` for ``oid`` to be sealed here; False on timeout."""
        fut = asyncio.get_running_loop().create_future()
        self._seal_waiters.setdefault(oid, []).append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            return False
        return True

    # -- transfers between nodes -------------------------------------------------
    async def pull(self, oid: bytes, address: str) -> str:
        """Copy ``oid`` from the raylet at ``address`` into this store: '' or
        why it failed. Concurrent pulls of one object share one transfer."""
        fut = self._pulls.get(oid)
        if fut is None:
            fut = self._pulls[oid] = asyncio.ensure_future(self._do_pull(oid, address))
            fut.add_done_callback(lambda _f: self._pulls.pop(oid, None))
        return await asyncio.shield(fut)

    async def _do_pull(self, oid: bytes, address: str) -> str:
        """Copy an object from another node's store, chunk by chunk, into
        ours; when it does not fit in memory (larger than our store, or the
        rest is pinned), into a spill file of ours, as a local put would."""
        from jray._private.object_store import ObjectExistsError
        from jray.exceptions import ObjectStoreFullError

        self.num_pulls += 1
        peer = self.bulk_peer(address) if self.bulk_peer is not None else None
        if peer is not None and tls.current() is None:
            done = await self._bulk_pull(oid, peer)
            if done is not None:
                return done
            self.num_bulk_fallbacks += 1
        view = None
        file = None
        created = False
        request = rpb.ReadObjectRequest(object_id=oid, chunk_size=config.OBJECT_CHUNK_BYTES)
        try:
            stream = (self.read_object(address)(request) if self.read_object is not None
                      else self.raylet_stub(address).ReadObject(request))
            async for msg in stream:
                if isinstance(msg, (bytes, memoryview)):
                    found, total, pos, data = split_chunk(msg)
                else:
                    found, total, pos, data = msg.found, msg.total_size, msg.offset, msg.data
                if not found:
                    return f"the object is not on node {address}"
                if view is None and file is None:
                    try:
                        offset = self.store.create(oid, total, primary=False)
                    except ObjectExistsError:
                        return ""
                    except ObjectStoreFullError as e:
                        if self.store.spill_dir is None:
                            return f"no room for it in this node's store: {e}"
                        path = self.store.create_spilled(oid, total, primary=False)
                        created = True
                        file = open(path, "r+b")  # noqa: SIM115 - closed below
                    else:
                        created = True
                        view = self.arena.write_view(offset, total)
                if pos < 0 or pos + len(data) > total:
                    raise ValueError(f"chunk at {pos} (+{len(data)}) is outside the object's {total} bytes")
                if file is not None:
                    file.seek(pos)
                    file.write(data)
                elif view is not None:
                    view[pos: pos + len(data)] = data
            if file is not None:
                file.close()
            elif view is not None:
                view.release()
            else:
                return "empty transfer"
            self.store.seal(oid)
            return ""
        except Exception as e:  # noqa: BLE001
            if file is not None:
                file.close()
            if created:
                self.store.abort(oid)
            return f"transfer from {address} failed: {e}"

    async def _bulk_pull(self, oid: bytes, peer: tuple[str, int]) -> str | None:
        """The pull over the bulk path: '' when the object is here now, None
        when it must go over gRPC (nothing of it left allocated)."""
        from jray._private.object_store import ObjectExistsError
        from jray.exceptions import ObjectStoreFullError

        host, port = peer
        try:
            got = await asyncio.shield(bulk.in_thread(bulk.request, host, port, self.token, oid))
        except Exception as e:  # noqa: BLE001 - any failure: gRPC
            logger.info("bulk pull of %s from %s:%d failed (%s); over gRPC", oid.hex(), host, port, e)
            return None
        if got is None:
            return None  # not in the sender's memory (spilled), or it is busy
        sock, size = got
        try:
            offset = self.store.create(oid, size, primary=False)
        except ObjectExistsError:
            sock.close()
            return ""
        except ObjectStoreFullError:
            sock.close()
            return None  # the gRPC path writes it to a spill file
        except BaseException:
            sock.close()
            raise
        view = self.arena.write_view(offset, size)
        received = bulk.in_thread(bulk.recv_into, sock, view)
        try:
            # shield: on cancel the thread still writes into the view; the
            # object is aborted only once it has stopped.
            await asyncio.shield(received)
        except asyncio.CancelledError:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

            def after(f: asyncio.Future[Any]) -> None:
                if not f.cancelled():
                    f.exception()
                view.release()
                sock.close()
                self.store.abort(oid)

            received.add_done_callback(after)
            raise
        except Exception as e:  # noqa: BLE001 - the sender died or lied: nothing sealed, gRPC
            view.release()
            sock.close()
            self.store.abort(oid)
            logger.warning("bulk pull of %s from %s:%d broke off (%s); over gRPC", oid.hex(), host, port, e)
            return None
        view.release()
        sock.close()
        self.store.seal(oid)
        self.num_bulk_pulls += 1
        return ""

    async def bulk_acquire(self, oid: bytes) -> bulk.Pinned | None:
        """For the bulk server: ``oid`` pinned, as a read-only view of its
        memory and the call that unpins it; None when it is not sealed here
        within a while or lives only on disk (the puller uses gRPC)."""
        if not self.store.contains(oid):
            await self._wait_sealed(oid, 10)  # as _chunks: the seal may be on its way
        reader = b"\x00bulk-%d" % next(self._bulk_readers)
        loc = self.store.pin_in_memory(oid, reader)
        if loc is None:
            return None
        offset, size = loc
        try:
            view = self.arena.write_view(offset, size).toreadonly()
        except BaseException:
            self.store.release(oid, reader)
            raise
        fd = self.arena.fileno()
        # Its own descriptor: the send never reads a file that took the arena's number after a close.
        return bulk.Pinned(view, lambda: self.store.release(oid, reader), os.dup(fd) if fd >= 0 else -1, offset)

    async def read(self, request: rpb.ReadObjectRequest) -> AsyncGenerator[rpb.ObjectChunk, None]:
        """Stream ``request.object_id`` to another node in chunks; one
        ``found=False`` chunk when it is not here."""
        async for found, total, pos, data in self._chunks(request):
            yield rpb.ObjectChunk(found=found, total_size=total, offset=pos, data=bytes(data))

    async def read_raw(self, request: rpb.ReadObjectRequest) -> AsyncGenerator[bytes, None]:
        """:meth:`read`, each chunk already serialized (:func:`encode_chunk`)."""
        async for found, total, pos, data in self._chunks(request):
            yield encode_chunk(found, total, pos, data)

    async def _chunks(self, request: rpb.ReadObjectRequest) -> AsyncGenerator[tuple[bool, int, int, Any], None]:
        oid = request.object_id
        if not self.store.contains(oid):
            # Writers seal without waiting: the location can reach a puller
            # before the seal reaches us. Wait for it a little.
            await self._wait_sealed(oid, 10)
            if not self.store.contains(oid):
                yield False, 0, 0, b""
                return
        chunk = request.chunk_size or config.OBJECT_CHUNK_BYTES
        # read_chunks pins the object while it runs and reads a spilled one
        # from its file (no restore, which could fail for lack of room).
        total = self.store.object_size(oid) or 0
        pos = 0
        for data in self.store.read_chunks(oid, chunk):
            yield True, total, pos, data
            pos += len(data)
