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
import logging
import os
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
                 send: Callable[[list[gpb.TaskEvent]], Awaitable[object]] | None = None) -> None:
        self.me = me
        self.send = send
        self.events: collections.deque = collections.deque(maxlen=MAX_BUFFERED)
        self.dropped = 0
        self.enabled = os.environ.get("JRAY_TASK_EVENTS", "1") != "0"
        self._templates: dict[tuple, dict[str, Any]] = {}
        # task id -> (spec, start time): running here, RUNNING not reported yet
        self._running: dict[bytes, tuple[cpb.TaskSpec, float]] = {}

    def record(self, spec: cpb.TaskSpec, state: str, error: str = "",
               where: tuple[bytes, bytes, int, float] | None = None) -> None:
        """Note that ``spec`` reached ``state`` (any thread; cheap). ``where``:
        (worker id, node id, pid, start time) of the run, from the reply of
        a task whose worker left RUNNING to its owner."""
        if self.enabled:
            events = self.events
            if len(events) == MAX_BUFFERED:  # the deque drops its oldest: count it
                self.dropped += 1
            events.append((spec, state, time.time(), spec.attempt, error, where))

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

    def _template(self, spec: cpb.TaskSpec) -> dict[str, Any]:
        """What describes a task, shared by many (every call of one
        function or method): built once per kind, as constructor fields."""
        key = (spec.job_id, spec.name, spec.type, spec.actor_id, spec.actor_creation.actor_id,
               spec.parent_task_id, spec.function.qualname, spec.method_name)
        tmpl = self._templates.get(key)
        if tmpl is None:
            name = task_name(spec)
            tmpl = {"job_id": spec.job_id, "name": name, "type": _TYPES.get(spec.type, "NORMAL_TASK"),
                    "actor_id": spec.actor_id or spec.actor_creation.actor_id,
                    "parent_task_id": spec.parent_task_id,
                    "func_name": name if spec.type == cpb.ACTOR_TASK else spec.function.qualname or name}
            if len(self._templates) > 10_000:
                self._templates.clear()
            self._templates[key] = tmpl
        return tmpl

    def take(self) -> list[gpb.TaskEvent]:
        """The buffered events as protos, one per task: its states' first
        times, its latest state (by attempt, then the states' order: the
        GCS's merge rules), its error, and where it ran (a RUNNING event's
        worker). Merged in plain Python first, so each proto is built once."""
        merged: dict[bytes, list[Any]] = {}
        events = self.events
        running = self._running
        if running:  # still running: reported now (once; pops race end_running, atomically)
            for tid, (spec, t) in list(running.items()):
                if running.pop(tid, None) is not None:
                    events.append((spec, "RUNNING", t, spec.attempt, "", None))
        rank = RANK.get
        while events:
            spec, state, t, attempt, error, where = events.popleft()
            tid = spec.task_id
            m = merged.get(tid)
            if m is None:
                m = merged[tid] = [spec, state, t, attempt, error, {state: t}, None, None]
            else:
                times = m[5]
                first = times.get(state)
                if first is None or t < first:
                    times[state] = t
                newer = (attempt, rank(state, -1)) >= (m[3], rank(m[1], -1))
                if newer:  # (the latest attempt's spec says whether it is a rebuild)
                    m[0], m[1], m[2], m[3] = spec, state, t, attempt
                if error and (newer or not m[4]):
                    m[4] = error
            if state == "RUNNING":
                m[6] = spec
            if where is not None:  # the run its worker left to us to report: RUNNING at its start
                times = m[5]
                first = times.get("RUNNING")
                if first is None or where[3] < first:
                    times["RUNNING"] = where[3]
                m[7] = where
        out = []
        me = self.me
        pid = os.getpid()
        for tid, (spec, state, t, attempt, error, times, running, where) in merged.items():
            ev = gpb.TaskEvent(task_id=tid, state=state, time=t, attempt=attempt, state_times=times,
                               **self._template(spec))
            if spec.reconstruction:
                ev.reconstruction = True
            if error:
                ev.error = error[:4000]
            if running is not None:
                ev.worker_id, ev.node_id, ev.pid = me.worker_id, me.node_id, pid
                ev.resources.update(running.resources)
            elif where is not None:
                ev.worker_id, ev.node_id, ev.pid = where[0], where[1], where[2]
                ev.resources.update(spec.resources)
            out.append(ev)
        return out

    async def flush(self) -> None:
        if (not self.events and not self._running) or self.send is None:
            return
        batch = self.take()
        try:
            await self.send(batch)
        except Exception as e:  # noqa: BLE001 - events are best effort
            self.dropped += len(batch)
            logger.debug("dropped %d task events: %s", len(batch), e)

    async def flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self.flush()


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
