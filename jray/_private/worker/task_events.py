"""Task events from a CoreWorker, reported to the GCS in batches.

The hot path (``record``) appends a small tuple to a deque from any thread;
``flush_loop`` on the CoreWorker's loop turns them into ``TaskEvent`` protos,
one per task per flush (its states' times in ``state_times``, the task's
description once), and sends one ``AddTaskEvents`` every ``FLUSH_SECONDS``.
The buffer is bounded: when the GCS is slow or gone the oldest events go and
are counted.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable

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
        self._templates: dict[tuple, gpb.TaskEvent] = {}

    def record(self, spec: cpb.TaskSpec, state: str, error: str = "") -> None:
        """Note that ``spec`` reached ``state`` (any thread; cheap)."""
        if self.enabled:
            events = self.events
            if len(events) == MAX_BUFFERED:  # the deque drops its oldest: count it
                self.dropped += 1
            events.append((spec, state, time.time(), spec.attempt, error))

    def _build(self, spec: cpb.TaskSpec, state: str, t: float, attempt: int, error: str) -> gpb.TaskEvent:
        # What describes a task is shared by many (every call of one method):
        # copy it from a template, then set what is this task's own.
        key = (spec.job_id, spec.name, spec.type, spec.actor_id, spec.actor_creation.actor_id,
               spec.parent_task_id, spec.function.qualname, spec.method_name)
        tmpl = self._templates.get(key)
        if tmpl is None:
            tmpl = gpb.TaskEvent(
                job_id=spec.job_id, name=task_name(spec), type=_TYPES.get(spec.type, "NORMAL_TASK"),
                actor_id=spec.actor_id or spec.actor_creation.actor_id, parent_task_id=spec.parent_task_id,
            )
            tmpl.func_name = tmpl.name if spec.type == cpb.ACTOR_TASK else spec.function.qualname or tmpl.name
            if len(self._templates) > 10_000:
                self._templates.clear()
            self._templates[key] = tmpl
        ev = gpb.TaskEvent()
        ev.CopyFrom(tmpl)
        ev.task_id, ev.state, ev.time, ev.attempt = spec.task_id, state, t, attempt
        if spec.reconstruction:
            ev.reconstruction = True
        if error:
            ev.error = error[:4000]
        ev.state_times[state] = t
        if state == "RUNNING":
            self._running(ev, spec)
        return ev

    def _running(self, ev: gpb.TaskEvent, spec: cpb.TaskSpec) -> None:
        me = self.me
        ev.worker_id, ev.node_id, ev.pid = me.worker_id, me.node_id, os.getpid()
        ev.resources.update(spec.resources)

    def _fold(self, ev: gpb.TaskEvent, spec: cpb.TaskSpec, state: str, t: float, attempt: int, error: str) -> None:
        """Another state of a task already in this batch (the GCS's merge rules)."""
        times = ev.state_times
        if state not in times or t < times[state]:
            times[state] = t
        newer = (attempt, RANK.get(state, -1)) >= (ev.attempt, RANK.get(ev.state, -1))
        if newer:
            ev.state, ev.time, ev.attempt = state, t, attempt
        if error and (newer or not ev.error):
            ev.error = error[:4000]
        if state == "RUNNING":
            self._running(ev, spec)

    def take(self) -> list[gpb.TaskEvent]:
        """The buffered events as protos, merged per task."""
        merged: dict[bytes, gpb.TaskEvent] = {}
        events = self.events
        while events:
            spec, state, t, attempt, error = events.popleft()
            ev = merged.get(spec.task_id)
            if ev is None:
                merged[spec.task_id] = self._build(spec, state, t, attempt, error)
            else:
                self._fold(ev, spec, state, t, attempt, error)
        return list(merged.values())

    async def flush(self) -> None:
        if not self.events or self.send is None:
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
