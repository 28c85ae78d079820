"""Lineage reconstruction: an owner re-creates a task's output whose copy was
lost (its node died), by running the task again, as Ray does.

The owner keeps the spec of each finished normal task that put an output in
a store (``record``), oldest first, up to ``config.LINEAGE_MAX_BYTES`` of
specs (Ray's 1 GB default); past that the oldest go and their outputs can
no longer be rebuilt. Outputs of ``put`` (no task made them) and of actor
calls are not rebuilt, as in Ray.

``reconstruct(oid)`` runs on the owner's loop when someone found the
object's copy gone: the owner itself reading it, a borrower (which tells
the owner which node's copy it found gone, ``GetObjectStatusRequest.
lost_node_id``), or a task being rebuilt that needs this object as its
argument (recursion: an argument freed or lost is rebuilt the same way).
The object becomes pending again and the task is submitted again with its
remaining ``max_retries`` (each rebuild spends one); readers wait for it as
for any pending object. When it cannot be rebuilt its value becomes the
error saying why: ``ObjectLostError`` (made by ``put``),
``ObjectReconstructionFailedMaxAttemptsExceededError``,
``ObjectReconstructionFailedLineageEvictedError``.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from jray import exceptions
from jray._private import config
from jray._private.protocol import common_pb2 as cpb
from jray._private.worker.object_table import ObjectTable, error_return

logger = logging.getLogger(__name__)

@dataclass(eq=False)
class _Entry:
    spec: cpb.TaskSpec  # as submitted (arguments by ref where they were refs)
    return_ids: tuple[bytes, ...]
    retries_left: int
    size: int
    rebuilding: bool = False


class Lineage:
    """The owner's record of which task made each of its stored objects."""

    def __init__(self, table: ObjectTable, resubmit: Callable[[cpb.TaskSpec, Sequence[bytes], int], None],
                 max_bytes: int | None = None) -> None:
        self.table = table
        self.resubmit = resubmit  # (spec, return ids, retries left): run it again, outputs pending
        self.max_bytes = config.LINEAGE_MAX_BYTES if max_bytes is None else max_bytes
        self.entries: collections.OrderedDict[bytes, _Entry] = collections.OrderedDict()  # task id -> entry
        self.by_object: dict[bytes, bytes] = {}  # output id -> task id
        self.bytes = 0
        self.evicted: collections.OrderedDict[bytes, None] = collections.OrderedDict()  # outputs, bounded
        self.rebuilt = 0  # objects rebuilt so far (the state API, tests)

    # -- recording ----------------------------------------------------------------
    def record(self, spec: cpb.TaskSpec, return_ids: Sequence[bytes], retries_left: int) -> None:
        """A normal task finished with output in a store: keep how to make it again."""
        if spec.streaming or spec.dynamic_returns or self.max_bytes <= 0:
            return
        old = self.entries.pop(spec.task_id, None)
        if old is not None:
            self.bytes -= old.size
        pristine = cpb.TaskSpec()
        pristine.CopyFrom(spec)
        for arg in pristine.args:
            if arg.HasField("ref"):
                arg.ClearField("location")  # where it was then: asked again when rebuilt
        size = pristine.ByteSize() + 64
        self.entries[spec.task_id] = _Entry(pristine, tuple(return_ids), retries_left, size)
        for oid in return_ids:
            self.by_object[oid] = spec.task_id
        self.bytes += size
        while self.bytes > self.max_bytes and self.entries:
            _tid, e = self.entries.popitem(last=False)
            self.bytes -= e.size
            for oid in e.return_ids:
                self.by_object.pop(oid, None)
                self.evicted[oid] = None
            while len(self.evicted) > 100_000:
                self.evicted.popitem(last=False)

    def can_rebuild(self, oid: bytes) -> bool:
        return oid in self.by_object

    def rebuilding(self, oid: bytes) -> bool:
        tid = self.by_object.get(oid)
        e = self.entries.get(tid) if tid is not None else None
        return e is not None and e.rebuilding

    # -- rebuilding (loop thread) --------------------------------------------------
    def reconstruct(self, oid: bytes, lost_node_id: bytes = b"", why: str = "") -> None:
        """``oid`` (owned here) was found gone (``lost_node_id``: the node whose
        copy is gone; empty: unknown here any more). Afterwards it is pending
        (being rebuilt), or its value is the error saying why it cannot be."""
        table = self.table
        ret = table.objects.get(oid)
        if ret is not None and (not ret.in_store or (lost_node_id and ret.node_id != lost_node_id)):
            return  # stale news: it has a newer copy (or never was in a store)
        if oid in table.pending_owned:
            return  # being made (or rebuilt) already
        tid = self.by_object.get(oid)
        entry = self.entries.get(tid) if tid is not None else None
        where = f" (its copy on node {lost_node_id.hex()[:8]} is gone)" if lost_node_id else ""
        if entry is None:
            if oid in self.evicted:
                err: exceptions.RayError = exceptions.ObjectReconstructionFailedLineageEvictedError(
                    oid.hex(), f"Object {oid.hex()} is lost{where} and cannot be rebuilt: the record of the task "
                    f"that made it was evicted (more than {self.max_bytes} bytes of task specs are kept; "
                    "JRAY_LINEAGE_MAX_BYTES).")
            elif ret is None:
                return  # not ours to judge: the caller's "unknown to its owner" stands
            else:
                err = exceptions.ObjectLostError(
                    oid.hex(), f"Object {oid.hex()} is lost{where}: it was made by put (or an actor call), and "
                    "only the outputs of tasks can be rebuilt. Keep such objects on a node that stays, or make "
                    "them in a task.")
            self._settle_error(oid, err)
            return
        if entry.retries_left == 0:
            self._settle_error(oid, exceptions.ObjectReconstructionFailedMaxAttemptsExceededError(
                oid.hex(), f"Object {oid.hex()} is lost{where} and cannot be rebuilt: the task that made it "
                f"({entry.spec.name or entry.spec.function.qualname}) has no retries left (max_retries)."))
            return
        if entry.retries_left > 0:
            entry.retries_left -= 1
        entry.rebuilding = True
        # Its outputs whose copies are gone become pending; the others keep theirs.
        lost = []
        for rid in entry.return_ids:
            r = table.objects.get(rid)
            if rid == oid or r is None or (lost_node_id and r.in_store and r.node_id == lost_node_id):
                table.objects.pop(rid, None)
                if rid in table.refs:
                    table.pending_owned.add(rid)
                    lost.append(rid)
        self.rebuilt += 1
        logger.info("rebuilding %s: running %s again (%s)", oid.hex()[:12],
                    entry.spec.name or entry.spec.function.qualname, why or "its copy was lost")
        spec = cpb.TaskSpec()
        spec.CopyFrom(entry.spec)
        spec.attempt += 1
        entry.spec.attempt = spec.attempt
        # Arguments owned here that are gone (freed since, or lost too) are rebuilt first.
        for arg in spec.args:
            if arg.HasField("ref") and arg.ref.owner.worker_id == table.me.worker_id:
                aid = arg.ref.object_id
                if aid not in table.objects and aid not in table.pending_owned and aid in self.by_object:
                    table.refs.add_owned(aid)
                    self.reconstruct(aid, why=f"an argument of {spec.name or spec.function.qualname}")
        self.resubmit(spec, entry.return_ids, entry.retries_left)

    def done(self, task_id: bytes) -> None:
        e = self.entries.get(task_id)
        if e is not None:
            e.rebuilding = False

    def _settle_error(self, oid: bytes, err: BaseException) -> None:
        self.table.objects[oid] = error_return(oid, err)
        self.table.pending_owned.discard(oid)
        self.table.wake(oid)


def lineage_of(w: Any) -> Lineage | None:
    return getattr(getattr(w, "task_submitter", None), "lineage", None)
