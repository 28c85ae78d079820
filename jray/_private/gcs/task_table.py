"""The GCS's task table: task events merged into one record per task.

Owners report SUBMITTED / PENDING_ARGS / SCHEDULED (pushed to a leased
worker) / FINISHED / FAILED, raylets PENDING_NODE_ASSIGNMENT (a lease request
for the task arrived) and SCHEDULED (granted on that node), executors RUNNING
(worker, node, pid, resources) for tasks still running at their flush, and
FAILED with the error text; a task that ended before its executor's flush
has its run (RUNNING's time, worker, node, pid) in its owner's event. Each in
batches and from different processes, so events arrive out of order: a
record's state is the event with the highest (attempt, rank). The table is
bounded: past ``max_tasks`` the oldest finished records go first (the oldest
of any state when none has finished), and ``dropped`` counts them.

For live views polling it, every change bumps ``seq`` and ``changed_since``
returns only the records changed after a given ``seq`` (a poll serializes
what changed, not the whole table); ``counts`` counts records per current
state. Both scan the table when asked, so ``add`` (the hot path) only
stamps each record with its ``seq``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from jray._private.protocol import gcs_pb2 as gpb

RANK = {"SUBMITTED": 0, "PENDING_ARGS": 1, "PENDING_NODE_ASSIGNMENT": 2, "SCHEDULED": 3, "RUNNING": 4,
        "FINISHED": 5, "FAILED": 5}
TERMINAL = ("FINISHED", "FAILED")
_DESCRIPTION = ("job_id", "name", "func_name", "type", "actor_id", "parent_task_id", "worker_id", "node_id", "pid")
_WHERE = ("worker_id", "node_id", "pid")


class TaskTable:
    def __init__(self, max_tasks: int = 100_000) -> None:
        self.max_tasks = max_tasks
        self.records: dict[bytes, gpb.TaskEvent] = {}  # insertion order = first seen
        self.dropped = 0
        self.seq = 0
        self._seqs: dict[bytes, int] = {}  # task -> seq of its last change

    def add(self, events: Iterable[gpb.TaskEvent]) -> None:
        records, seqs, seq = self.records, self._seqs, self.seq
        for ev in events:
            tid = ev.task_id
            rec = records.get(tid)
            if rec is None:  # first news of this task: the event is the record
                # (kept as it is, not copied: the records of one batch share
                # its request's memory, ~0.2 KB each instead of a proto's ~1.2)
                rec = records[tid] = ev
                if ev.state and ev.state not in rec.state_times:
                    rec.state_times[ev.state] = ev.time
            else:
                _merge(rec, ev)
            seq += 1
            seqs[tid] = seq
        self.seq = seq
        if len(self.records) > self.max_tasks:
            self._evict(len(self.records) - self.max_tasks)

    def _evict(self, n: int) -> None:
        victims = [tid for tid, r in self.records.items() if r.state in TERMINAL][:n]
        if len(victims) < n:
            chosen = set(victims)
            victims += [tid for tid in self.records if tid not in chosen][: n - len(victims)]
        for tid in victims:
            del self.records[tid]
            self._seqs.pop(tid, None)
        self.dropped += len(victims)

    def query(self, job_id: bytes = b"", limit: int = 0) -> list[gpb.TaskEvent]:
        recs = [r for r in self.records.values() if not job_id or r.job_id == job_id]
        return recs[-limit:] if limit else recs

    def changed_since(self, since: int, job_id: bytes = b"") -> list[gpb.TaskEvent]:
        """Records changed after ``seq`` == ``since``, oldest first."""
        seqs = self._seqs
        return [r for tid, r in self.records.items()
                if seqs.get(tid, 0) > since and (not job_id or r.job_id == job_id)]

    def end_job(self, job_id: bytes, why: str, now: float) -> int:
        """The job ended: its tasks not seen to finish are FAILED with ``why``
        (their owner is gone, no event of theirs will come; a live view must
        not show them running forever). Returns how many."""
        n = 0
        for tid, rec in self.records.items():
            if rec.job_id == job_id and rec.state not in TERMINAL:
                rec.state, rec.time = "FAILED", now
                rec.state_times["FAILED"] = now
                if not rec.error:
                    rec.error = why
                self.seq += 1
                self._seqs[tid] = self.seq
                n += 1
        return n

    def counts(self) -> dict[str, int]:
        """Records per current state."""
        return dict(Counter(r.state for r in self.records.values()))


def _merge(rec: gpb.TaskEvent, ev: gpb.TaskEvent) -> None:
    """Fold one event into its task's record."""
    # The earliest time per state: reporters flush independently (a raylet's
    # late lease grant can arrive before the owner's earlier push).
    times = rec.state_times
    if ev.state and (ev.state not in times or ev.time < times[ev.state]):
        times[ev.state] = ev.time
    for state, t in ev.state_times.items():  # a reporter's batch merged per task
        if state not in times or t < times[state]:
            times[state] = t
    newer = (ev.attempt, RANK.get(ev.state, -1)) >= (rec.attempt, RANK.get(rec.state, -1))
    if newer and ev.state:
        if ev.attempt != rec.attempt:
            rec.reconstruction = False  # a new attempt: what it is for comes with its events
        rec.state, rec.time, rec.attempt = ev.state, ev.time, ev.attempt
    if ev.reconstruction and ev.attempt == rec.attempt:
        rec.reconstruction = True
    for field in _DESCRIPTION:
        if field in _WHERE:
            continue
        value = getattr(ev, field)
        if value and (newer or not getattr(rec, field)):
            setattr(rec, field, value)
    # Where it ran: the worker's own report (RUNNING, with its worker id)
    # wins over the raylets' (a raylet that took the lease request may have
    # spilled it back to another node), in whatever order they arrive.
    if ev.worker_id and ev.attempt >= rec.attempt:
        rec.worker_id, rec.node_id, rec.pid = ev.worker_id, ev.node_id, ev.pid
    elif not rec.worker_id or ev.attempt > rec.attempt:
        for field in ("node_id", "pid"):
            value = getattr(ev, field)
            if value and (newer or not getattr(rec, field)):
                setattr(rec, field, value)
    if ev.error and (newer or not rec.error):
        rec.error = ev.error
    if ev.resources:
        rec.resources.clear()
        rec.resources.update(ev.resources)
