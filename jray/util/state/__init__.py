"""The state API (Ray's ``ray.util.state``): what the cluster is doing.

::

    from jray.util.state import list_tasks, summarize_tasks
    list_tasks(filters=[("state", "=", "FAILED")])
    summarize_tasks()

Each ``list_*`` returns a list of dicts with Ray's field names where they
exist. ``filters`` are ``(key, "=" | "!=", value)`` tuples; a bad key or
predicate raises ValueError naming it. A task's ``state`` is one of
SUBMITTED, PENDING_ARGS (waiting for ref arguments), PENDING_NODE_ASSIGNMENT
(a raylet has its lease request), SCHEDULED (a lease granted / pushed to a
leased worker), RUNNING, FINISHED, FAILED. Task rows come from the GCS's task
table, which workers and raylets feed in batches (about every 0.5 s), so a
task shows up shortly after it is submitted. Node rows carry the stats each
raylet reports to the GCS (at once when they change, else every 2 s):
resources total/available, workers
(``num_workers``, ``num_idle_workers``, ``num_busy_workers``: leased),
``object_store_used``/``object_store_memory`` (capacity), ``num_objects``,
``spilled_bytes`` and ``pending_leases``, and the machine's ``cpu_percent``
(0-100) and ``memory_used``/``memory_total`` (bytes; sampled at most once a
second). Worker rows come from the raylets: ``state`` (STARTING, IDLE,
LEASED, ACTOR), resident memory ``rss_bytes``, ``cpu_percent`` (of one
core), the ``actor_id`` it hosts and its ``log_file``.

Logs (Ray's log API): ``list_logs(node_id=...)`` lists a node's log files by
group, ``get_log(...)`` yields the lines of one, named by file, or as the log
of a worker ``pid``, a ``task_id`` or an ``actor_id`` (the worker that ran
it), ``tail`` lines and, with ``follow``, new lines as they come. They are
read through each node's raylet, so logs on other machines are reached too.
Every function takes ``address``/``token`` to query a cluster this process
is not attached to (the CLI does).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from jray._private.state import logs as _logs
from jray._private.state import rows as _rows
from jray._private.state.client import StateClient
from jray.util.state._filters import Filter, check, matches

__all__ = [
    "get_actor", "get_log", "list_actors", "list_jobs", "list_log_files", "list_logs", "list_metrics", "list_nodes", "list_objects",
    "list_runtime_envs",
    "list_tasks", "list_workers", "metrics_prometheus",
    "summarize_actors", "summarize_objects", "summarize_tasks", "memory_summary", "task_changes",
    "task_state_counts",
]


def _select(rows: list[dict[str, Any]], keys: Sequence[str], filters: Sequence[Filter] | None,
            limit: int, detail: bool, brief: Sequence[str]) -> list[dict[str, Any]]:
    fs = check(filters, keys)
    out = [r for r in rows if matches(r, fs)]
    if limit and limit > 0:
        out = out[-limit:]
    if not detail:
        out = [{k: r[k] for k in brief if k in r} for r in out]
    return out


def list_tasks(filters: Sequence[Filter] | None = None, limit: int = 100, detail: bool = False, *,
               address: str | None = None, token: str | None = None) -> list[dict[str, Any]]:
    """Tasks (normal, actor creation, actor calls), oldest first, the last ``limit``."""
    # Without filters the GCS cuts the list (a live view polls this every second).
    rows = _rows.tasks(StateClient(address, token), limit if limit and limit > 0 and not filters else 0)
    return _select(rows, _rows.TASK_KEYS, filters, limit, detail, _rows.TASK_BRIEF)


def task_changes(since: int = 0, limit: int = 0, *, address: str | None = None,
                 token: str | None = None) -> dict[str, Any]:
    """Task rows (every field, as ``list_tasks(detail=True)``) changed since an
    earlier reply's ``seq``: what a live view polls, paying for what changed
    rather than for the whole table::

        first = task_changes(limit=20_000)          # the newest 20000 tasks
        later = task_changes(since=first["seq"])    # only those that changed since

    Returns ``{"seq", "dropped", "total", "state_counts", "tasks"}``. A ``seq``
    lower than the one passed means the GCS restarted, and a grown
    ``dropped`` that records were evicted: start over with ``since=0``.
    """
    return _rows.task_changes(StateClient(address, token), since, limit)


def task_state_counts(*, address: str | None = None, token: str | None = None) -> dict[str, int]:
    """How many tasks are in each state now (``{"FINISHED": 12, "RUNNING": 2}``), counted by the GCS."""
    return _rows.task_state_counts(StateClient(address, token))


def list_actors(filters: Sequence[Filter] | None = None, limit: int = 100, detail: bool = False, *,
                address: str | None = None, token: str | None = None) -> list[dict[str, Any]]:
    """Actors of every namespace, dead ones too."""
    rows = _rows.actors(StateClient(address, token))
    return _select(rows, _rows.ACTOR_KEYS, filters, limit, detail, _rows.ACTOR_BRIEF)


def get_actor(id: str, *, address: str | None = None, token: str | None = None) -> dict[str, Any] | None:
    """The row of the actor with hex id ``id`` (every field, as ``list_actors(detail=True)``),
    or None when the cluster does not know it (Ray's ``ray.util.state.get_actor``)."""
    try:
        actor_id = bytes.fromhex(id)
    except (TypeError, ValueError):
        raise ValueError(f"get_actor() expects an actor id in hex, got {id!r}") from None
    return _rows.actor(StateClient(address, token), actor_id)


def list_objects(filters: Sequence[Filter] | None = None, limit: int = 100, detail: bool = False, *,
                 address: str | None = None, token: str | None = None) -> list[dict[str, Any]]:
    """Objects in the nodes' stores (values small enough to travel inline live
    only in their owner's memory and are not listed)."""
    rows = _rows.objects(StateClient(address, token))[0]
    return _select(rows, _rows.OBJECT_KEYS, filters, limit, detail, _rows.OBJECT_KEYS)


def list_nodes(filters: Sequence[Filter] | None = None, limit: int = 100, detail: bool = False, *,
               address: str | None = None, token: str | None = None) -> list[dict[str, Any]]:
    rows = _rows.nodes(StateClient(address, token))
    return _select(rows, _rows.NODE_KEYS, filters, limit, detail, _rows.NODE_BRIEF)


def list_workers(filters: Sequence[Filter] | None = None, limit: int = 100, detail: bool = False, *,
                 address: str | None = None, token: str | None = None) -> list[dict[str, Any]]:
    """Worker processes of every live node (from the raylets) and the drivers."""
    rows = _rows.workers(StateClient(address, token))
    return _select(rows, _rows.WORKER_KEYS, filters, limit, detail, _rows.WORKER_BRIEF)


def list_jobs(filters: Sequence[Filter] | None = None, limit: int = 100, detail: bool = False, *,
              address: str | None = None, token: str | None = None) -> list[dict[str, Any]]:
    rows = _rows.jobs(StateClient(address, token))
    return _select(rows, _rows.JOB_KEYS, filters, limit, detail, _rows.JOB_KEYS)


def list_runtime_envs(filters: Sequence[Filter] | None = None, limit: int = 100, detail: bool = False, *,
                      address: str | None = None, token: str | None = None) -> list[dict[str, Any]]:
    """Runtime environments the live nodes have (one row per env): its key,
    status (PENDING, READY, FAILED), the node IPs that have it, size on disk,
    live workers, setup time, the env itself; with ``detail``, node ids,
    creation time, the error of a failed setup and each node's setup log."""
    rows = _rows.runtime_envs(StateClient(address, token))
    return _select(rows, _rows.RUNTIME_ENV_KEYS, filters, limit, detail, _rows.RUNTIME_ENV_BRIEF)


def list_metrics(filters: Sequence[Filter] | None = None, limit: int = 1000, *, address: str | None = None,
                 token: str | None = None) -> list[dict[str, Any]]:
    """``ray.util.metrics`` values gathered from every live node (one row per
    metric, tag set and node: name, kind, tags, value, node; histograms
    with count, sum, boundaries and bucket counts)."""
    rows = _rows.metric_rows(_rows.metrics(StateClient(address, token)))
    keys = ("name", "kind", "tags", "value", "node_id", "node_ip", "description", "count", "sum", "boundaries",
            "bucket_counts")
    return _select(rows, keys, filters, limit, True, keys)


def metrics_prometheus(*, address: str | None = None, token: str | None = None) -> str:
    """Every live node's ``ray.util.metrics`` in Prometheus's text format
    (what each node serves on its metrics port, gathered in one place)."""
    from jray._private.metrics import prometheus_text

    return "".join(prometheus_text(points, n.ip) for n, points in _rows.metrics(StateClient(address, token)))


def summarize_tasks(*, address: str | None = None, token: str | None = None) -> dict[str, Any]:
    """Task counts by function name and state, in Ray's shape::

        {"cluster": {"summary": {"f": {"func_or_class_name": "f", "type": "NORMAL_TASK",
                                       "state_counts": {"FINISHED": 3}}},
                     "total_tasks": 3, "total_actor_tasks": 0, "total_actor_scheduled": 0}}
    """
    return _rows.task_summary(_rows.tasks(StateClient(address, token)))


def memory_summary(*, address: str | None = None, token: str | None = None) -> dict[str, Any]:
    """``{"objects": [...], "nodes": [...per-node store totals...],
    "reconstructing": [...tasks running again to rebuild lost outputs...]}``
    (``jray memory``)."""
    client = StateClient(address, token)
    objects, stores = _rows.objects(client)
    rebuilding = [t for t in _rows.tasks(client)
                  if t.get("is_reconstruction") and t["state"] not in ("FINISHED", "FAILED")]
    return {"objects": objects, "nodes": stores, "reconstructing": rebuilding}


def summarize_actors(*, address: str | None = None, token: str | None = None) -> dict[str, Any]:
    """Actor counts by class and state, in Ray's shape::

        {"cluster": {"summary": {"Counter": {"class_name": "Counter", "state_counts": {"ALIVE": 2}}},
                     "total_actors": 2}}
    """
    return _rows.actor_summary(_rows.actors(StateClient(address, token)))


def summarize_objects(*, address: str | None = None, token: str | None = None) -> dict[str, Any]:
    """Objects in the nodes' stores, in Ray's shape (grouped by call site,
    which jray does not record: one group, "disabled", as Ray's default)."""
    return _rows.object_summary(_rows.objects(StateClient(address, token))[0])


def list_logs(address: str | None = None, node_id: str | None = None, node_ip: str | None = None,
              glob_filter: str | None = None, timeout: int = 30, *,
              token: str | None = None) -> dict[str, list[str]]:
    """The log files of one node (``node_id``, a prefix of it, or ``node_ip``;
    the head node without either), as Ray's: ``{group: [filename, ...]}``
    with groups such as ``worker``, ``raylet``, ``gcs_server``,
    ``worker_zygote``, ``runtime_env``. ``glob_filter``: only names that
    match it (``"worker-*"``). Names are relative to the node's logs
    directory, as ``get_log(filename=...)`` takes them. ``timeout`` is
    accepted for Ray's signature (each call has jray's own deadline)."""
    client = StateClient(address, token)
    node = _logs.pick_node(client, node_id, node_ip)
    return _logs.grouped(_logs.list_files(client, node, glob_filter), glob_filter)


def list_log_files(node_id: str | None = None, node_ip: str | None = None, glob_filter: str | None = None, *,
                   address: str | None = None, token: str | None = None) -> list[dict[str, Any]]:
    """jray's detailed ``list_logs``: one row per log file of one node
    (``node_id``/``node_ip``), or of every live node without either, with
    ``node_id``, ``node_ip``, ``filename``, ``group``, ``size``,
    ``mtime``, and for a worker's log its ``pid``, ``worker_id`` and
    ``worker_alive`` (exited workers' logs are kept, and so listed)."""
    client = StateClient(address, token)
    nodes = [_logs.pick_node(client, node_id, node_ip)] if node_id or node_ip else _logs.live_nodes(client)
    rows = []
    for n, files in zip(nodes, _logs.list_files_of(client, nodes, glob_filter), strict=True):
        for f in files or ():
            rows.append({"node_id": n.node_id.hex(), "node_ip": n.ip, "filename": f.filename,
                         "group": _logs.group_of(f.filename), "size": f.size, "mtime": f.mtime,
                         "pid": f.pid or None, "worker_id": f.worker_id.hex() or None,
                         "worker_alive": f.worker_alive if f.pid else None})
    return rows


def get_log(address: str | None = None, node_id: str | None = None, node_ip: str | None = None,
            filename: str | None = None, actor_id: str | None = None, task_id: str | None = None,
            pid: int | None = None, follow: bool = False, tail: int = -1, timeout: int = 30,
            suffix: str = "out", encoding: str | None = "utf-8", errors: str | None = "strict",
            attempt_number: int = 0, _interval: float | None = None, *,
            token: str | None = None) -> Iterator[str]:
    """The lines of one log file, as Ray's ``get_log`` (a generator of
    strings, one line each, without the newline). Name exactly one of:

    - ``filename``: a file of ``list_logs`` on ``node_id``/``node_ip`` (the
      head without either); an absolute path or ``..`` is refused
      (``ValueError``), as is anything outside the node's logs directory;
    - ``pid``: that worker's log (on ``node_id``/``node_ip``, else on the
      node whose raylet started it);
    - ``task_id`` (``attempt_number``): the log of the worker that ran the
      task: everything that worker printed, the task's lines among it;
    - ``actor_id``: the log of the actor's worker.

    ``tail``: only the last ``tail`` lines (-1: all). ``follow``: then keep
    yielding new lines as they are written (every ``_interval`` s, default
    0.5), until the worker exits (a worker's log) or the caller stops
    iterating. A worker writes stdout and stderr to one file, so ``suffix``
    ("out" or "err") names the same file. Unknown files, workers, tasks or
    actors raise ``FileNotFoundError`` saying which."""
    if suffix not in ("out", "err"):
        raise ValueError(f"suffix must be 'out' or 'err', got {suffix!r}")
    client = StateClient(address, token)
    target = _logs.resolve(client, node_id=node_id, node_ip=node_ip, filename=filename, actor_id=actor_id,
                           task_id=task_id, pid=pid, attempt_number=attempt_number)
    return _logs.stream(client, target, tail=tail, follow=follow, interval=_interval,
                        encoding=encoding or "utf-8", errors=errors or "strict")
