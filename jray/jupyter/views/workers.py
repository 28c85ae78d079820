"""What each worker process is doing, for the nodes view and the logs page:
the actor it hosts or the task it runs, from the state API only.

``WorkerActivity.update()`` reads ``list_workers`` (each raylet's workers:
pid, state, resident memory, log file), ``list_actors`` (class names) and
the task rows that changed since its last call (``task_changes``: the
newest ``max_tasks`` at first), keeping only the tasks RUNNING now, by
(node, worker pid). A GCS restart (a lower ``seq``) or evicted records
start the task table over.
"""

from __future__ import annotations

from typing import Any

from jray.util import state


class WorkerActivity:
    def __init__(self, state_kwargs: dict[str, Any], max_tasks: int = 2000) -> None:
        self.state_kwargs = state_kwargs
        self.max_tasks = max_tasks
        self.seq = 0
        self.dropped = 0
        self.running: dict[str, dict[str, Any]] = {}  # task_id -> its row, while RUNNING

    def _poll_tasks(self) -> None:
        changes = state.task_changes(since=self.seq, limit=self.max_tasks if not self.seq else 0,
                                     **self.state_kwargs)
        if changes["seq"] < self.seq or changes["dropped"] > self.dropped and self.seq:
            self.seq, self.dropped, self.running = 0, 0, {}  # the GCS restarted or evicted: start over
            changes = state.task_changes(limit=self.max_tasks, **self.state_kwargs)
        self.seq, self.dropped = changes["seq"], changes["dropped"]
        for t in changes["tasks"]:
            if t["state"] == "RUNNING":
                self.running[t["task_id"]] = t
            else:
                self.running.pop(t["task_id"], None)

    def update(self) -> list[dict[str, Any]]:
        """``list_workers`` rows of the live nodes' workers (not drivers), each
        with ``what`` ("task f", "actor Counter", or ""), ``task_id``,
        ``task_name`` and ``actor_class``."""
        self._poll_tasks()
        workers = [w for w in state.list_workers(limit=0, detail=True, **self.state_kwargs)
                   if w["worker_type"] == "WORKER"]
        actors = {a["actor_id"]: a for a in state.list_actors(limit=0, detail=True, **self.state_kwargs)}
        by_worker: dict[tuple[str, int], dict[str, Any]] = {}
        for t in self.running.values():
            if t["node_id"] and t["worker_pid"]:
                by_worker[(t["node_id"], int(t["worker_pid"]))] = t
        for w in workers:
            task = by_worker.get((w["node_id"], int(w["pid"])))
            actor = actors.get(w["actor_id"] or "")
            w["actor_class"] = actor["class_name"] if actor else None
            w["task_id"] = task["task_id"] if task else None
            w["task_name"] = (task["name"] or task["func_or_class_name"]) if task else None
            if actor is not None:
                w["what"] = f"actor {actor['class_name']}" + (f" ({actor['name']})" if actor.get("name") else "")
                if task and task["type"] == "ACTOR_TASK":
                    w["what"] += f": {w['task_name']}"
            elif task is not None:
                w["what"] = f"task {w['task_name']}"
            else:
                w["what"] = ""
        return workers
