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

SUBMITTED and SCHEDULED wait the same way on the owner (``submitted``,
``scheduled``, ``ended``): the call keeps their times and the buffer keeps
the call until it ends (its end's event carries them) or a flush reports it. So most tasks
are one event per flush on both sides, encoded from its tuple as it stands;
only a task with several events in one flush is merged. The request is
encoded by hand and sent as bytes.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import itertools
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
    """``send(request)`` delivers a batch to the GCS (a serialized
    ``AddTaskEventsRequest``); ``me`` says which worker and node ran the
    tasks recorded RUNNING here."""

    def __init__(self, me: Identity, send: Callable[[bytes], Awaitable[object]] | None = None) -> None:
        self.me = me
        self.send = send
        self.events: collections.deque = collections.deque(maxlen=MAX_BUFFERED)
        self.dropped = 0
        self.enabled = os.environ.get("JRAY_TASK_EVENTS", "1") != "0"
        self._templates: dict[tuple, bytes] = {}
        # task id -> (spec, start time): running here, RUNNING not reported yet
        self._running: dict[bytes, tuple[cpb.TaskSpec, float]] = {}
        self._where_fields: dict[tuple[bytes, bytes, int], bytes] = {}  # (worker, node, pid) -> its fields
        # task id -> its PendingCall: submitted, SUBMITTED not reported yet (``submitted``)
        self._unreported: dict[bytes, Any] = {}

    def record(self, spec: cpb.TaskSpec, state: str, error: str = "",
               where: tuple[bytes, bytes, int, float] | None = None, desc: bytes | None = None,
               early: tuple[float, float] | None = None) -> None:
        """Note that ``spec`` reached ``state`` (any thread; cheap). ``where``:
        (worker id, node id, pid, start time) of the run, from the reply of
        a task whose worker left RUNNING to its owner. ``desc``: the spec's
        :meth:`describe`, where the caller kept it (else worked out here).
        ``early``: (SUBMITTED, SCHEDULED) times no event reported yet (0.0
        for one not reached), from :meth:`ended`."""
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
                           spec.reconstruction, early))

    def submitted(self, call: Any, spec: cpb.TaskSpec) -> None:
        """``call`` (a PendingCall) was submitted (any thread). Its SUBMITTED
        state waits with the call (``call.submitted_at``): most calls end
        before the next flush, and their end's event carries it (``ended``),
        one event per call and nothing to merge; a flush reports the calls
        still waiting. A retry or a rebuild is recorded as before."""
        if not self.enabled:
            return
        if spec.attempt or spec.reconstruction:
            self.record(spec, "SUBMITTED", "", None, call.desc)
            return
        if call.desc is None:
            call.desc = self._template(spec)
        call.submitted_at = time.time()
        self._unreported[call.task_id] = call

    def scheduled(self, call: Any, spec: cpb.TaskSpec) -> None:
        """``call`` was pushed to a leased worker (the loop): its SCHEDULED
        waits with it, as SUBMITTED does, while that is not reported."""
        if not self.enabled:
            return
        if spec.attempt or call.task_id not in self._unreported:
            self.record(spec, "SCHEDULED", "", None, call.desc)
            return
        call.scheduled_at = time.time()

    def ended(self, call: Any) -> tuple[float, float] | None:
        """The call's (SUBMITTED, SCHEDULED) times where no event reported
        them yet (its end's ``record(..., early=)``), else None."""
        if self._unreported.pop(call.task_id, None) is None:
            return None
        return (call.submitted_at, call.scheduled_at)

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
        """The buffered events as one request (see :meth:`take_bytes`)."""
        return gpb.AddTaskEventsRequest.FromString(self.take_bytes()[0])

    def take_bytes(self) -> tuple[bytes, int]:
        """The buffered events as one serialized ``AddTaskEventsRequest``
        and its number of events: one event per task, with its states'
        first times, its latest state (by attempt, then the states' order:
        the GCS's merge rules), its error, and where it ran (a RUNNING
        event's worker). Encoded by hand (the description once per kind of
        task), sent as it is (no parse into a proto and back: ~1 us a task).

        Most tasks have one event here (their end, carrying SUBMITTED, and
        RUNNING where their worker left it to the owner): it is encoded from
        its tuple as it stands. Only a task with several is merged, into a
        list; a list and a dict per task was ~10 us of the owner's loop per
        call, most of it the garbage collector's passes over them."""
        events = self.events
        # Held states reported now, once (pops race ended() and end_running(),
        # atomically): the deque is bounded and drops its oldest, these are not
        # events waiting in it.
        held: list[tuple] = []
        unreported = self._unreported
        if unreported:  # submitted, not ended: reported in its latest state with the earlier times
            for tid, call in list(unreported.items()):
                if unreported.pop(tid, None) is not None:
                    sched = call.scheduled_at
                    if sched:
                        held.append((tid, call.desc, "SCHEDULED", sched, 0, "", None, None, False,
                                     (call.submitted_at, 0.0)))
                    else:
                        held.append((tid, call.desc, "SUBMITTED", call.submitted_at, 0, "", None, None, False, None))
        running = self._running
        if running:  # still running here
            for tid, (spec, t) in list(running.items()):
                if running.pop(tid, None) is not None:
                    held.append((tid, self._template(spec), "RUNNING", t, spec.attempt, "", None,
                                 _resources(spec), spec.reconstruction, None))
        seen: dict[bytes, int] = {}
        rows: list[Any] = []  # an event's tuple, or a task's events merged (a list)

        # (events recorded meanwhile by other threads wait for the next flush)
        waiting = [events.popleft() for _ in range(len(events))]
        for ev in itertools.chain(waiting, held):
            i = seen.get(ev[0])
            if i is None:
                seen[ev[0]] = len(rows)
                rows.append(ev)
            else:
                rows[i] = _merge(rows[i], ev)
        out: list[bytes] = []
        me = self.me
        here = _ld(b"\x32", me.worker_id) + _ld(b"\x3a", me.node_id) + b"\x68" + _varint(os.getpid())
        pack = _DOUBLE.pack
        states = _STATE_FIELDS
        prefixes = _TIME_PREFIXES
        submitted_prefix = prefixes.get("SUBMITTED") or _time_prefix("SUBMITTED")
        scheduled_prefix = prefixes.get("SCHEDULED") or _time_prefix("SCHEDULED")
        running_prefix = prefixes.get("RUNNING") or _time_prefix("RUNNING")
        wheres = self._where_fields
        for row in rows:
            if type(row) is tuple:
                tid, desc, state, t, attempt, error, where, res, rebuild, early = row
                run_res = res if state == "RUNNING" else None
                times = None
            else:
                tid, desc, state, t, attempt, error, times, run_res, where, rebuild, res = row
            parts = [b"\x0a" + _len(tid) + tid, desc, states.get(state) or _state_field(state), b"\x29", pack(t)]
            if attempt:
                parts += (b"\x48", _varint(attempt))
            if error:
                parts.append(_ld(b"\x52", error[:4000].encode()))
            if run_res is not None:
                parts += (here, run_res)
            elif where is not None:
                wf = wheres.get(where[:3])
                if wf is None:
                    if len(wheres) > 4096:
                        wheres.clear()
                    wf = wheres[where[:3]] = (_ld(b"\x32", where[0]) + _ld(b"\x3a", where[1]) + b"\x68"
                                              + _varint(where[2]))
                parts += (wf, res)
            if times is None:  # one event: its own state's time, SUBMITTED's and RUNNING's where known
                parts += (prefixes.get(state) or _time_prefix(state), pack(t))
                if early is not None:
                    sub, sched = early
                    if sub and state != "SUBMITTED":
                        parts += (submitted_prefix, pack(sub))
                    if sched and state != "SCHEDULED":
                        parts += (scheduled_prefix, pack(sched))
                if where is not None and state != "RUNNING":
                    parts += (running_prefix, pack(where[3]))
            else:
                for st, v in times.items():
                    parts += (prefixes.get(st) or _time_prefix(st), pack(v))
            if rebuild:
                parts.append(b"\x88\x01\x01")
            ev = b"".join(parts)
            out += (b"\x0a", _len(ev), ev)
        return b"".join(out), len(rows)

    async def flush(self) -> None:
        if (not self.events and not self._running and not self._unreported) or self.send is None:
            return
        batch, n = self.take_bytes()
        try:
            await self.send(batch)
        except Exception as e:  # noqa: BLE001 - events are best effort
            self.dropped += n
            logger.debug("dropped %d task events: %s", n, e)

    async def flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self.flush()


def _merge(row: Any, ev: tuple) -> list[Any]:
    """A task's events so far (an event's tuple, or a merged list) with one
    more: [desc, state, t, attempt, error, {state: first time}, RUNNING's
    resources, where, rebuild, where's resources]."""
    if type(row) is tuple:
        tid, desc, state, t, attempt, error, where, res, rebuild, early = row
        times = {state: t}
        m = [tid, desc, state, t, attempt, error, times, res if state == "RUNNING" else None, None, rebuild, None]
        row = m
        _add_times(times, early, where)
        if where is not None:
            m[8], m[10] = where, res
    tid, desc, state, t, attempt, error, where, res, rebuild, early = ev
    m = row
    times = m[6]
    first = times.get(state)
    if first is None or t < first:
        times[state] = t
    rank = RANK.get
    newer = (attempt, rank(state, -1)) >= (m[4], rank(m[2], -1))
    if newer:  # (the latest attempt says whether it is a rebuild)
        m[1], m[2], m[3], m[4], m[9] = desc, state, t, attempt, rebuild
    if error and (newer or not m[5]):
        m[5] = error
    if state == "RUNNING":
        m[7] = res
    _add_times(times, early, where)
    if where is not None:  # the run its worker left to us to report: RUNNING at its start
        m[8], m[10] = where, res
    return m


def _add_times(times: dict[str, float], early: tuple[float, float] | None, where: tuple | None) -> None:
    if early is not None:
        for st, v in zip(("SUBMITTED", "SCHEDULED"), early, strict=True):
            if v:
                first = times.get(st)
                if first is None or v < first:
                    times[st] = v
    if where is not None:
        first = times.get("RUNNING")
        if first is None or where[3] < first:
            times["RUNNING"] = where[3]


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
