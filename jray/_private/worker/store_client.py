"""The CoreWorker's object-store client: writing a value into this node's
store (``write``: create over the raylet's direct socket, copy, seal in
the background), reading one (``read``: a zero-copy view
of the shared arena, pulled to this node first when it lives elsewhere, or a
private copy from a spill file), and the pins behind those views (one raylet
pin per object per process, released in batches shortly after the last view
dies).

A client (a driver on a machine with no node: ``remote`` set) has no store
of its own: ``write`` streams the value in chunks to its home node's raylet
(``WriteObject``), which keeps the primary copy for it, and ``read``
streams an object from the node that holds it (``ReadObject``) into one
buffer of the object's size, which the value's arrays then view (a 1 GiB
result costs 1 GiB on the client, not 2).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from jray import exceptions
from jray._private import serialization
from jray._private.ids import is_put_id
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import raylet_pb2 as rpb
from jray._private.transport_error import TransportError
from jray._private.worker.event_loop import LoopThread
from jray._private.worker.identity import Identity

logger = logging.getLogger(__name__)


class StoreClient:
    """This process's client of its node's object store.

    ``raylet()`` is the local raylet's gRPC stub; ``raylet_of(node_id)``
    the (ip, port) of another node's raylet; ``closing()`` is true once the
    CoreWorker shuts down. ``arena`` (the mapped store) and ``direct`` (the
    raylet's blocking direct socket) are set when the CoreWorker connects.
    """

    def __init__(self, lt: LoopThread, me: Identity, raylet: Callable[[], Any],
                 raylet_of: Callable[[bytes], tuple[str, int]], closing: Callable[[], bool],
                 raylet_at: Callable[[str], Any] | None = None) -> None:
        self.lt = lt
        self.raylet_at = raylet_at or (lambda _address: raylet())
        self.me = me
        self.raylet = raylet
        self.raylet_of = raylet_of
        self.closing = closing
        self.arena: Any = None
        self.direct: Any = None  # direct.BlockingClient
        self._pins: dict[bytes, list[int]] = {}  # object id -> [offset, size, live views]
        self._pins_lock = threading.Lock()
        self._release_queue: list[bytes] = []
        # A client: the (ip, port) of its home node's raylet; no arena, no pins.
        self.remote: tuple[str, int] | None = None
        self._bulk: tuple[Any, Callable[[Any], Any]] | None = None  # (channel, WriteObject): _bulk_write

    @property
    def can_store(self) -> bool:
        """Whether values too big to travel inline can go into a store."""
        return self.arena is not None or self.remote is not None

    def write(self, object_id: bytes, ser: serialization.SerializedObject,
                       owner: cpb.Address | None = None) -> None:
        if self.remote is not None:
            self._write_remote(object_id, ser, owner)
            return
        size = ser.total_size
        reply = self._raylet_call("CreateObject", rpb.CreateObjectRequest(
            object_id=object_id, size=size, owner=owner if owner is not None and owner.port else self.me.address,
            primary=True))
        if not reply.ok:
            if reply.exists:
                return
            raise exceptions.ObjectStoreFullError(reply.error)
        try:
            if reply.spill_path:  # too big for memory: the raylet gave us a file
                _write_file(reply.spill_path, ser, size)
            else:
                view = self.arena.write_view(reply.offset, size)
                ser.write_to(view)
                view.release()
        except BaseException:
            self._raylet_call("AbortObject", rpb.AbortObjectRequest(object_id=object_id))
            raise
        if not reply.spill_path and is_put_id(object_id):
            # The raylet pinned a put for us: a get right after it maps it
            # without a round trip; unused, the pin goes with the next release batch.
            with self._pins_lock:
                fresh = object_id not in self._pins
                if fresh:
                    self._pins[object_id] = [reply.offset, size, 0]
            if fresh:
                self.lt.call_soon(self._queue_release, object_id)
            else:  # pragma: no cover - a put id is new
                self._release_pin_rpc([object_id])
        # Sealing need not be waited for: a reader's GetObject on this node
        # waits for the seal, so put() returns one round trip sooner. Over the
        # direct socket, posted (its reply read by the next call); over gRPC
        # where there is none (or it broke: then the seal goes that way).
        req = rpb.SealObjectRequest(object_id=object_id)
        if self.direct is not None:
            try:
                self.direct.post("SealObject", req)
                return
            except TransportError as e:
                logger.debug("sealing %s over the direct socket failed (%s); over gRPC", object_id.hex(), e)

        async def seal() -> None:
            try:
                await self.raylet().SealObject(req)
            except grpc.RpcError as e:
                logger.warning("sealing object %s failed: %s", object_id.hex(), e)

        lt = self.lt
        if lt.in_loop_thread():
            lt.spawn(seal())
        else:
            lt.post(lambda: lt.spawn(seal()))

    def _write_remote(self, object_id: bytes, ser: serialization.SerializedObject,
                      owner: cpb.Address | None) -> None:
        from jray._private import config

        assert self.remote is not None
        home = self.remote[0]
        size = ser.total_size
        who = owner if owner is not None and owner.port else self.me.address

        def frames() -> Iterator[bytes]:
            return _write_frames(object_id, who, ser, config.OBJECT_CHUNK_BYTES)

        async def call() -> Any:
            write = self._bulk_write()
            if write is None:  # no token to send on a channel of our own: the stub's method
                return await self.raylet().WriteObject(
                    _aiter(rpb.WriteObjectChunk.FromString(f) for f in frames()))
            return await write(_aiter(frames()))

        reply = self.lt.run_sync(call(), timeout=max(60.0, size / 20e6))
        if not reply.ok and not reply.exists:
            raise exceptions.ObjectStoreFullError(f"Object {object_id.hex()} ({size} bytes) could not be put into "
                                                  f"the store of node {home}: {reply.error}")

    def _bulk_write(self) -> Callable[[Any], Any] | None:
        """``WriteObject`` on the home raylet, taking messages already
        serialized (``_write_frames``), on a channel of its own: the stub's
        method would serialize each message itself, and a large put on a
        channel of its own does not hold up the small calls on the pool's.
        Called on the loop (aio channels belong to one)."""
        if self._bulk is None:
            from jray._private import rpc

            stub_call = self.raylet().WriteObject
            # The pool's stubs carry the cluster token as bound metadata (rpc._with_metadata).
            md = getattr(stub_call, "keywords", {}).get("metadata")
            if md is None:
                return None
            assert self.remote is not None
            channel = rpc.open_channel(f"{self.remote[0]}:{self.remote[1]}")
            service = rpb.DESCRIPTOR.services_by_name["RayletService"].full_name
            call = channel.stream_unary(f"/{service}/WriteObject", request_serializer=None,
                                        response_deserializer=rpb.WriteObjectReply.FromString)
            self._bulk = (channel, functools.partial(call, metadata=md))
        return self._bulk[1]

    def _read_remote(self, ret: cpb.ReturnObject) -> Any:
        from jray._private import config

        oid = ret.object_id
        if ret.node_id and ret.node_id != self.me.node_id:
            ip, port = self.raylet_of(ret.node_id)
        else:
            assert self.remote is not None
            ip, port = self.remote

        async def fetch() -> bytearray | None:
            buf: bytearray | None = None
            view: memoryview | None = None
            stub = self.raylet_at(f"{ip}:{port}")
            async for chunk in stub.ReadObject(rpb.ReadObjectRequest(object_id=oid,
                                                                     chunk_size=config.OBJECT_CHUNK_BYTES)):
                if not chunk.found:
                    return None
                if buf is None:
                    buf = bytearray(chunk.total_size)
                    view = memoryview(buf)
                assert view is not None
                view[chunk.offset:chunk.offset + len(chunk.data)] = chunk.data
            return buf

        try:
            data = self.lt.run_sync(fetch(), timeout=max(120.0, (ret.size or 0) / 20e6))
        except grpc.RpcError as e:
            raise exceptions.ObjectLostError(oid.hex(), f"Object {oid.hex()}: reading it from node {ip} "
                                             f"failed: {e.details() if hasattr(e, 'details') else e}") from None
        if data is None:
            raise exceptions.ObjectLostError(oid.hex(), f"Object {oid.hex()} is lost: no copy on node {ip}")
        # read-only, as values mapped from a store are (a get's arrays are not for writing)
        return serialization.deserialize(memoryview(data).toreadonly())

    def _raylet_call(self, method: str, request: Any) -> Any:
        async def call() -> Any:
            return await getattr(self.raylet(), method)(request)

        if self.lt.in_loop_thread():
            raise RuntimeError("raylet call from loop thread")
        if self.direct is not None:
            return self.direct.call(method, request)
        return self.lt.run_sync(call())

    def read(self, ret: cpb.ReturnObject) -> Any:
        """Map a value from this node's store (pulling it here first if needed).

        This process holds at most one raylet pin per object, counted locally
        over the views it handed out; the pin is released shortly after the
        last view dies, so repeated gets of one object cost no RPC."""
        if self.remote is not None:
            return self._read_remote(ret)
        oid = ret.object_id
        with self._pins_lock:
            pin = self._pins.get(oid)
            if pin is not None:
                pin[2] += 1
        if pin is None:
            req = rpb.GetObjectRequest(object_id=oid, client_id=self.me.worker_id, timeout=60.0)
            if ret.node_id and ret.node_id != self.me.node_id:
                req.from_node_id = ret.node_id
                ip, port = self.raylet_of(ret.node_id)
                req.from_ip, req.from_port = ip, port
            reply = self._raylet_call("GetObject", req)
            if not reply.found:
                if reply.full:
                    raise exceptions.ObjectStoreFullError(
                        f"Object {oid.hex()} ({ret.size} bytes) cannot be read: {reply.error}")
                raise exceptions.ObjectLostError(oid.hex(), f"Object {oid.hex()} is lost: {reply.error or 'no copy found'}")
            if reply.spill_path:  # no room in memory: read a private copy from disk
                return serialization.deserialize(memoryview(self._read_spill_file(oid, reply.spill_path, reply.size)))
            with self._pins_lock:
                pin = self._pins.get(oid)
                if pin is None:
                    pin = self._pins[oid] = [reply.offset, reply.size, 1]
                    extra = False
                else:  # another thread pinned it meanwhile: keep one raylet pin
                    pin[2] += 1
                    extra = True
            if extra:
                self._release_pin_rpc([oid])
        view = self.arena.read_view(pin[0], pin[1], on_release=lambda: self._release_pin(oid))
        return serialization.deserialize(view)

    def prefetch(self, rets: list[cpb.ReturnObject]) -> list[bytes]:
        """Pin many objects of this node's store in one pipelined exchange
        with the raylet (a ``get`` of a list of refs), so the ``read`` of each
        finds its pin and makes no call of its own. Returns the ids pinned
        here, each with no view yet: the caller hands them to ``unpin_unread``
        once it has read what it wanted (a pin no view took is released).
        Objects on other nodes, spilled or missing are left to ``read``."""
        if self.remote is not None or self.direct is None or len(rets) < 2:
            return []
        want: dict[bytes, cpb.ReturnObject] = {}
        with self._pins_lock:
            for ret in rets:
                oid = ret.object_id
                if oid not in self._pins and oid not in want and (not ret.node_id or ret.node_id == self.me.node_id):
                    want[oid] = ret
        if len(want) < 2:
            return []
        requests = [rpb.GetObjectRequest(object_id=oid, client_id=self.me.worker_id, timeout=60.0) for oid in want]
        replies = self.direct.call_many("GetObject", requests)
        pinned: list[bytes] = []
        extra: list[bytes] = []
        with self._pins_lock:
            for oid, reply in zip(want, replies, strict=True):
                if not reply.found:
                    continue
                if reply.spill_path or oid in self._pins:  # read() reads the spill file / another thread pinned it
                    extra.append(oid)
                    continue
                self._pins[oid] = [reply.offset, reply.size, 0]
                pinned.append(oid)
        if extra:
            self._release_pin_rpc(extra)
        return pinned

    def unpin_unread(self, ids: list[bytes]) -> None:
        """After a ``get`` that prefetched ``ids``: release the pins no view
        holds (those whose value was not read, e.g. an earlier one raised);
        the others go when their last view dies, as usual."""
        if not ids or self.closing():
            return
        try:
            self.lt.loop.call_soon_threadsafe(self._queue_releases, ids)
        except RuntimeError:  # loop closed
            pass

    def _queue_releases(self, ids: list[bytes]) -> None:
        for oid in ids:
            self._queue_release(oid)

    def _read_spill_file(self, oid: bytes, path: str, size: int) -> bytearray:
        """Read an object's spill file, which the raylet pinned for us (it is
        not deleted while we read), then release that pin."""
        try:
            data = bytearray(size)
            with open(path, "rb") as f, memoryview(data) as view:
                pos = 0
                while pos < size:
                    n = f.readinto(view[pos:])
                    if not n:
                        raise exceptions.ObjectLostError(oid.hex(), f"Object {oid.hex()}: its spill file {path} "
                                                         f"is shorter than {size} bytes")
                    pos += n
            return data
        finally:
            self._release_pin_rpc([oid])

    def _release_pin(self, object_id: bytes) -> None:
        """A view died (any thread, possibly inside the garbage collector)."""
        with self._pins_lock:
            pin = self._pins.get(object_id)
            if pin is None:
                return
            pin[2] -= 1
            if pin[2] > 0:
                return
        if self.closing():
            return
        try:
            self.lt.loop.call_soon_threadsafe(self._queue_release, object_id)
        except RuntimeError:  # loop closed
            pass

    def _queue_release(self, object_id: bytes) -> None:
        if not self._release_queue:
            self.lt.loop.call_later(0.005, self._flush_releases)
        self._release_queue.append(object_id)

    def _flush_releases(self) -> None:
        ids: list[bytes] = self._release_queue
        fresh: list[bytes] = []
        self._release_queue = fresh
        out = []
        with self._pins_lock:
            for oid in ids:
                pin = self._pins.get(oid)
                if pin is not None and pin[2] <= 0:  # not taken again meanwhile
                    del self._pins[oid]
                    out.append(oid)
        if out:
            self._release_pin_rpc(out)

    def _release_pin_rpc(self, ids: list[bytes]) -> None:
        async def send() -> None:
            if self.closing():
                return
            try:
                await self.raylet().ReleaseObjects(rpb.ReleaseObjectsRequest(object_ids=ids,
                                                                             client_id=self.me.worker_id))
            except grpc.RpcError:
                pass

        if self.lt.in_loop_thread():
            self.lt.spawn(send())
        else:
            asyncio.run_coroutine_threadsafe(send(), self.lt.loop)

    def close(self) -> None:
        self._bulk = None  # an aio channel closes when it is collected
        if self.arena is not None:
            try:
                self.arena.close()
            except Exception:  # noqa: BLE001 - best effort at shutdown
                pass


def _write_file(path: str, ser: serialization.SerializedObject, size: int) -> None:
    import mmap

    with open(path, "r+b") as f:
        if not size:
            return
        m = mmap.mmap(f.fileno(), size)
        try:
            view = memoryview(m)
            ser.write_to(view)
            view.release()
        finally:
            m.close()


def _write_frames(object_id: bytes, owner: cpb.Address, ser: serialization.SerializedObject,
                  chunk_bytes: int) -> Iterator[bytes]:
    """A client's put as ``WriteObject``'s messages, serialized here: each
    chunk's other fields, then its data field appended (protobuf merges
    fields in any order), the value's bytes copied once (in the join) rather
    than three times (into the chunk, the message, its serialization)."""
    size = ser.total_size
    first = True
    pos = 0
    for pieces in ser.iter_chunk_pieces(chunk_bytes):
        n = sum(p.nbytes for p in pieces)
        if first:
            head = rpb.WriteObjectChunk(object_id=object_id, owner=owner, total_size=size, offset=0)
            first = False
        else:
            head = rpb.WriteObjectChunk(offset=pos)
        yield b"".join((head.SerializeToString(), _DATA_TAG, _varint(n), *pieces))
        pos += n


_DATA_TAG = bytes([(5 << 3) | 2])  # WriteObjectChunk.data: field 5, length-delimited


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


async def _aiter(it: Any) -> Any:
    for x in it:
        yield x
