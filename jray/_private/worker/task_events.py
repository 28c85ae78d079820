"""Task events from a CoreWorker, reported to the GCS in batches.

The hot path (``record``) appends a small tuple to a deque from any thread;
``flush_loop`` on the CoreWorker's loop turns them into ``TaskEvent`` protos,
one per task per flush (its states' times in ``state_times``, the task's
description once), and sends one ``AddTaskEvents`` every ``FLUSH_SECONDS``.
The buffer is bounded: when the GCS is slow or gone the oldest events go and
are counted.

RUNNING waits (``start_running``): a flush reports the tasks still running
then, and a task that ends before the next flush has its worker, node, pid
and start time put in its reply instead (``end_running``), for its owner to
report with the task's end (``record(..., where=...)``). Most tasks end
within a flush period, so a task costs one event, its owner's, instead of
two (the GCS took ~26 µs of CPU per task merging them, the workers ~17).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import os
import struct
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from jray._private.gcs.task_table import RANK
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import gcs_pb2 as gpb
from jray._private.worker.identity import Identity

logger = logging.getLogger(__name__)
FLUSH_SECONDS = 0.5
MAX_BUFFERED = 50_000
_TYPES = {cpb.NORMAL_TASK: "NORMAL_TASK", cpb.ACTOR_CREATION_TASK: "ACTOR_CREATION_TASK",
          cpb.ACTOR_TASK: "ACTOR_TASK"}


class TaskEventBuffer:
    """``send(events)`` delivers a batch to the GCS; ``me`` says which worker
    and node ran the tasks recorded RUNNING here."""

    def __init__(self, me: Identity,
                 send: Callable[[gpb.AddTaskEventsRequest], Awaitable[object]] | None = None) -> None:
        self.me = me
        self.send = send
        self.events: collections.deque = collections.deque(maxlen=MAX_BUFFERED)
        self.dropped = 0
        self.enabled = os.environ.get("JRAY_TASK_EVENTS", "1") != "0"
        self._templates: dict[tuple, bytes] = {}
        # task id -> (spec, start time): running here, RUNNING not reported yet
        self._running: dict[bytes, tuple[cpb.TaskSpec, float]] = {}
        self._where_fields: dict[tuple[bytes, bytes, int], bytes] = {}  # (worker, node, pid) -> its fields

    def record(self, spec: cpb.TaskSpec, state: str, error: str = "",
               where: tuple[bytes, bytes, int, float] | None = None, desc: bytes | None = None) -> None:
        """Note that ``spec`` reached ``state`` (any thread; cheap). ``where``:
        (worker id, node id, pid, start time) of the run, from the reply of
        a task whose worker left RUNNING to its owner. ``desc``: the spec's
        :meth:`describe`, where the caller kept it (else worked out here)."""
        if self.enabled:
            if desc is None:
                desc = self._template(spec)
            events = self.events
            if len(events) == MAX_BUFFERED:  # the deque drops its oldest: count it
                self.dropped += 1
            # Only bytes, numbers and strings, not the spec: the collector
            # untracks such a tuple at its first pass, so events waiting for
            # a flush are not promoted to the oldest generation (with a spec
            # they were, and a million queued tasks paid in full collections).
            events.append((spec.task_id, desc, state, time.time(), spec.attempt, error, where,
                           _resources(spec) if where is not None or state == "RUNNING" else None,
                           spec.reconstruction))

    def start_running(self, spec: cpb.TaskSpec) -> bool:
        """The task starts here (its thread). False: events are off."""
        if not self.enabled:
            return False
        self._running[spec.task_id] = (spec, time.time())
        return True

    def end_running(self, task_id: bytes) -> float | None:
        """The task ended: its start time when no flush reported it running
        (its owner reports where and when it ran), else None."""
        entry = self._running.pop(task_id, None)
        return None if entry is None else entry[1]

    def describe(self, spec: cpb.TaskSpec) -> bytes | None:
        """What describes ``spec``'s task in its events (None: events are
        off): owners keep it with a pending call, so its second event does
        not work it out again (~2 µs)."""
        return self._template(spec) if self.enabled else None

    def _template(self, spec: cpb.TaskSpec) -> bytes:
        """What describes a task, shared by many (every call of one
        function or method): encoded once per kind, as TaskEvent fields."""
        key = (spec.job_id, spec.name, spec.type, spec.actor_id, spec.actor_creation.actor_id,
               spec.parent_task_id, spec.function.qualname, spec.method_name)
        tmpl = self._templates.get(key)
        if tmpl is None:
            name = task_name(spec)
            tmpl = gpb.TaskEvent(job_id=spec.job_id, name=name, type=_TYPES.get(spec.type, "NORMAL_TASK"),
                                 actor_id=spec.actor_id or spec.actor_creation.actor_id,
                                 parent_task_id=spec.parent_task_id,
                                 func_name=name if spec.type == cpb.ACTOR_TASK else spec.function.qualname or name,
                                 ).SerializeToString()
            if len(self._templates) > 10_000:
                self._templates.clear()
            self._templates[key] = tmpl
        return tmpl

    def take(self) -> list[gpb.TaskEvent]:
        """The buffered events as protos (see :meth:`take_request`)."""
        return list(self.take_request().events)

    def take_request(self) -> gpb.AddTaskEventsRequest:
        """The buffered events as one request, one event per task: its
        states' first times, its latest state (by attempt, then the states'
        order: the GCS's merge rules), its error, and where it ran (a
        RUNNING event's worker). Merged in plain Python, then encoded by
        hand (the description once per kind of task) and parsed in one C
        call: building a TaskEvent proto per task took ~13-19 µs of the
        driver's CPU per task, this ~4."""
        merged: dict[bytes, list[Any]] = {}
        events = self.events
        running = self._running
        if running:  # still running: reported now (once; pops race end_running, atomically)
            for tid, (spec, t) in list(running.items()):
                if running.pop(tid, None) is not None:
                    events.append((tid, self._template(spec), "RUNNING", t, spec.attempt, "", None,
                                   _resources(spec), spec.reconstruction))
        rank = RANK.get
        while events:
            tid, desc, state, t, attempt, error, where, res, rebuild = events.popleft()
            m = merged.get(tid)
            if m is None:
                m = merged[tid] = [desc, state, t, attempt, error, {state: t}, None, None, rebuild, res]
            else:
                times = m[5]
                first = times.get(state)
                if first is None or t < first:
                    times[state] = t
                newer = (attempt, rank(state, -1)) >= (m[3], rank(m[1], -1))
                if newer:  # (the latest attempt says whether it is a rebuild)
                    m[0], m[1], m[2], m[3], m[8] = desc, state, t, attempt, rebuild
                if error and (newer or not m[4]):
                    m[4] = error
            if state == "RUNNING":
                m[6] = res
            if where is not None:  # the run its worker left to us to report: RUNNING at its start
                times = m[5]
                first = times.get("RUNNING")
                if first is None or where[3] < first:
                    times["RUNNING"] = where[3]
                m[7] = where
                m[9] = res
        out: list[bytes] = []
        me = self.me
        here = _ld(b"\x32", me.worker_id) + _ld(b"\x3a", me.node_id) + b"\x68" + _varint(os.getpid())
        pack = _DOUBLE.pack
        states = _STATE_FIELDS
        prefixes = _TIME_PREFIXES
        wheres = self._where_fields
        for tid, (desc, state, t, attempt, error, times, running, where, rebuild, res) in merged.items():
            parts = [b"\x0a" + _len(tid) + tid, desc, states.get(state) or _state_field(state), b"\x29", pack(t)]
            if attempt:
                parts += (b"\x48", _varint(attempt))
            if error:
                parts.append(_ld(b"\x52", error[:4000].encode()))
            if running is not None:
                parts += (here, running)
            elif where is not None:
                wf = wheres.get(where[:3])
                if wf is None:
                    if len(wheres) > 4096:
                        wheres.clear()
                    wf = wheres[where[:3]] = (_ld(b"\x32", where[0]) + _ld(b"\x3a", where[1]) + b"\x68"
                                              + _varint(where[2]))
                parts += (wf, res)
            for st, v in times.items():
                parts += (prefixes.get(st) or _time_prefix(st), pack(v))
            if rebuild:
                parts.append(b"\x88\x01\x01")
            ev = b"".join(parts)
            out += (b"\x0a", _len(ev), ev)
        return gpb.AddTaskEventsRequest.FromString(b"".join(out))

    async def flush(self) -> None:
        if (not self.events and not self._running) or self.send is None:
            return
        batch = self.take_request()
        try:
            await self.send(batch)
        except Exception as e:  # noqa: BLE001 - events are best effort
            self.dropped += len(batch.events)
            logger.debug("dropped %d task events: %s", len(batch.events), e)

    async def flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self.flush()


# -- TaskEvent fields encoded by hand (protobuf wire format; gcs.proto's field numbers) --
_DOUBLE = struct.Struct("<d")


def _varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    n &= (1 << 64) - 1  # negative int32s go out as 10-byte varints, as protobuf's
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _ld(tag: bytes, data: bytes) -> bytes:
    """A length-delimited field (bytes, string, message)."""
    return tag + _varint(len(data)) + data


def _len(data: bytes) -> bytes:
    """The varint length prefix of ``data`` (two bytes cover 16 KB)."""
    n = len(data)
    if n < 0x80:
        return bytes((n,))
    if n < 0x4000:
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    return _varint(n)


_TIME_PREFIXES: dict[str, bytes] = {}
_STATE_FIELDS: dict[str, bytes] = {}


def _time_prefix(state: str) -> bytes:
    """A ``state_times`` (14) map entry up to its double: key (1), value (2)."""
    key = state.encode()
    out = b"\x72" + _varint(2 + len(key) + 9) + _ld(b"\x0a", key) + b"\x11"
    if len(_TIME_PREFIXES) < 64:
        _TIME_PREFIXES[state] = out
    return out


def _state_field(state: str) -> bytes:
    """``state`` (4)."""
    out = _ld(b"\x22", state.encode())
    if len(_STATE_FIELDS) < 64:
        _STATE_FIELDS[state] = out
    return out


def _resources(spec: cpb.TaskSpec) -> bytes:
    """``resources`` (11), a map<string, double>."""
    res = spec.resources
    if len(res) == 1:  # the common case, without iterating the map in Python
        cpu = res.get("CPU")
        if cpu is not None:
            return _resources_of((("CPU", cpu),))
    return _resources_of(tuple(res.items()))


@functools.lru_cache(maxsize=256)
def _resources_of(items: tuple[tuple[str, float], ...]) -> bytes:
    out = []
    for k, v in items:
        entry = _ld(b"\x0a", k.encode()) + b"\x11" + _DOUBLE.pack(v)
        out.append(_ld(b"\x5a", entry))
    return b"".join(out)


def task_name(spec: cpb.TaskSpec) -> str:
    """Ray's task name: ``f`` for a function, ``Class.method`` for an actor call."""
    if spec.name:
        return spec.name
    if spec.type == cpb.ACTOR_TASK and spec.function.qualname:
        return spec.function.qualname
    return spec.function.qualname or spec.method_name


def error_text(err: BaseException) -> str:
    """The one line a task listing shows for an error."""
    return f"{type(err).__name__}: {err}"


def any_error(returns: Iterable[cpb.ReturnObject]) -> bool:
    """Whether a reply's returns hold an error (a loop, not any() over a
    generator: this runs once per task on the owner)."""
    for r in returns:
        if r.is_error:
            return True
    return False
