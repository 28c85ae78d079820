"""Borrowers: the CoreWorker's side of Ray's distributed reference counting
between processes (``reference_counter.py`` keeps the counts).

A process that receives a ref it does not own registers with the owner as a
borrower and unregisters when its last copy goes (``on_borrow`` /
``_send_borrow``, ordered per object). Refs leaving in a task's return value
are handed off: the caller is registered as a borrower before the reply
leaves (``hand_off``, awaited through ``flush_borrows``). Owners ping their
borrowers and drop the borrows of dead ones (``probe_loop``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from jray._private import config
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import core_worker_pb2 as wpb
from jray._private.worker.event_loop import LoopThread
from jray._private.worker.identity import Identity
from jray._private.worker.object_table import ObjectTable, owner_key
from jray._private.worker.reference_counter import ReferenceCounter

logger = logging.getLogger(__name__)


class Borrowing:
    """Borrower registration, hand-off and probing for one CoreWorker.

    ``stub(address)`` gives the CoreWorker gRPC stub of the process at
    ``address``; ``drop_peer(address)`` forgets every connection to a
    process found dead; ``closing()`` is true once the CoreWorker shuts down.
    """

    def __init__(self, lt: LoopThread, me: Identity, refs: ReferenceCounter, table: ObjectTable,
                 stub: Callable[[str], Any], drop_peer: Callable[[str], None], closing: Callable[[], bool]) -> None:
        self.lt = lt
        self.me = me
        self.refs = refs
        self.table = table
        self.stub = stub
        self.drop_peer = drop_peer
        self.closing = closing
        self._borrow_rpcs: set[asyncio.Future] = set()
        self._borrow_last: dict[bytes, asyncio.Future] = {}  # object id -> its latest borrower update
        self._borrower_addrs: dict[bytes, str] = {}  # borrower id -> its address (to probe)
        self._borrower_misses: dict[bytes, int] = {}  # borrower id -> failed probes in a row

    def on_borrow(self, object_id: bytes, owner: Any, add: bool) -> None:
        """The reference counter's callback: we (stop to) borrow an object."""
        if owner is None or owner == self.me.owner_key or self.closing():
            return
        self.lt.call_soon(self._send_borrow, object_id, owner, add)

    def release_hand_off(self, ret: cpb.ReturnObject) -> None:
        """A return value nobody wants: give back the borrower registrations
        its worker made for us (``hand_off``)."""
        seen: set[bytes] = set()
        for r in ret.nested_refs:
            owner = owner_key(r.owner)
            if r.object_id not in seen and owner is not None:
                seen.add(r.object_id)
                self.on_borrow(r.object_id, owner, False)

    def _send_borrow(self, object_id: bytes, owner: tuple[str, bytes], add: bool,
                     borrower: cpb.Address | None = None, holding: bool = False) -> None:
        """Loop thread: (un)register ``borrower`` (default: this process) with
        the owner. Updates about one object reach its owner in the order they
        were made (each waits for the one before), so an unregistration never
        overtakes the registration it undoes. ``holding``: a ref count taken
        for this update, dropped once the owner has it."""
        if not add and borrower is None and object_id not in self.refs:  # we hold it no more
            self.table.objects.pop(object_id, None)
        stub = self.stub(owner[0])
        who = borrower if borrower is not None else self.me.address
        req = wpb.BorrowRequest(object_ids=[object_id], borrower_id=who.worker_id, add=add, borrower=who)
        fut = asyncio.ensure_future(self._borrow_rpc(stub, req, self._borrow_last.get(object_id)))
        self._borrow_last[object_id] = fut
        self._borrow_rpcs.add(fut)
        fut.add_done_callback(lambda f: self._borrow_done(object_id, f, holding))

    @staticmethod
    async def _borrow_rpc(stub: Any, req: wpb.BorrowRequest, before: asyncio.Future | None) -> None:
        if before is not None:
            await asyncio.wait([before])
        await stub.UpdateBorrowers(req)

    def _borrow_done(self, object_id: bytes, fut: asyncio.Future, holding: bool) -> None:
        self._borrow_rpcs.discard(fut)
        if self._borrow_last.get(object_id) is fut:
            del self._borrow_last[object_id]
        if not fut.cancelled() and fut.exception() is not None:
            logger.debug("borrower update failed: %s", fut.exception())
        if holding:
            self.refs.decr(object_id)

    def hand_off(self, refs: Sequence[Any], caller: cpb.Address) -> None:
        """Refs going out in a task's return value: register the caller as a
        borrower of each with its owner before the reply leaves (the caller
        counts them with ``registered=True``). Refs the caller owns need
        nothing; for refs this process owns it is a local count; for others
        an RPC to their owner, which the executor awaits (``flush_borrows``)
        before replying."""
        seen: set[bytes] = set()
        caller_id = caller.worker_id
        for r in refs:
            oid, owner = r.binary(), r.owner_address()
            if oid in seen or owner is None or owner[1] == caller_id:
                continue
            seen.add(oid)
            if owner == self.me.owner_key:
                if self.refs.add_borrower(oid, caller_id):
                    self.lt.call_soon(self.note_borrower, caller_id, caller)
                else:
                    logger.debug("hand-off of %s: not owned here any more", oid.hex())
            else:
                # Our own borrow must outlast the caller's registration: a
                # count held until the owner has it (a decrement queued
                # before the update reaches the loop could unregister us first).
                self.refs.incr(oid, owner)
                self.lt.call_soon(self._send_borrow, oid, owner, True, caller, True)

    def pending(self) -> bool:
        """Borrower registrations sent and not yet acknowledged."""
        return bool(self._borrow_rpcs)

    async def flush(self) -> None:
        """Wait until every borrower registration sent so far reached its owner."""
        if self._borrow_rpcs:
            await asyncio.gather(*list(self._borrow_rpcs), return_exceptions=True)

    def note_borrower(self, borrower_id: bytes, address: cpb.Address) -> None:
        """Loop thread: where a borrower of our objects listens."""
        if borrower_id != self.me.worker_id and address.port:
            self._borrower_addrs[borrower_id] = f"{address.ip}:{address.port}"

    async def probe_loop(self) -> None:
        """Drop the borrows of processes that died holding our objects (a
        borrower that dies never unregisters): each registered borrower is
        pinged every BORROWER_PROBE_SECONDS; two refused connections in a
        row mean it is gone. A slow or busy one counts as alive."""
        while not self.closing():
            await asyncio.sleep(config.BORROWER_PROBE_SECONDS)
            ids = self.refs.borrower_ids()
            for bid in [b for b in self._borrower_addrs if b not in ids]:
                del self._borrower_addrs[bid]
                self._borrower_misses.pop(bid, None)
            for bid in ids:
                addr = self._borrower_addrs.get(bid)
                if addr is None or await self._reachable(addr):
                    self._borrower_misses.pop(bid, None)
                    continue
                misses = self._borrower_misses[bid] = self._borrower_misses.get(bid, 0) + 1
                if misses >= 2:
                    logger.info("borrower %s at %s is gone: dropping its borrows", bid.hex(), addr)
                    self._borrower_addrs.pop(bid, None)
                    self._borrower_misses.pop(bid, None)
                    self.drop_peer(addr)
                    self.refs.remove_borrower_everywhere(bid)

    async def _reachable(self, addr: str) -> bool:
        stub = self.stub(addr)
        try:
            await stub.GetObjectStatus(wpb.GetObjectStatusRequest(object_id=b"", timeout=0.0), timeout=5)
        except grpc.RpcError as e:
            return e.code() != grpc.StatusCode.UNAVAILABLE if hasattr(e, "code") else True
        return True
