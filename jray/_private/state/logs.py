"""Log files of the cluster's nodes, read through each node's raylet
(``ListLogs``, ``GetLog``): what ``jray.util.state.list_logs``/``get_log``,
``jray logs`` and the logs page call.

Which node and which file: a ``filename`` on ``node_id``/``node_ip`` (the
head node when neither is given); a worker by ``pid`` (on the given node, or
whichever live node's raylet started it); a task or an actor by id, through
its state row (``list_tasks``/``get_actor``), which names the node and the
worker that ran it. Following (``follow=True``) reads again from the last
offset every ``interval`` seconds; a worker's log stops being followed once
the worker has exited and its last lines are read.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from jray._private.protocol import gcs_pb2 as gpb
from jray._private.protocol import raylet_pb2 as rpb
from jray._private.state import rows as _rows
from jray._private.state.client import TIMEOUT, StateClient

CHUNK_BYTES = 1024 * 1024
FOLLOW_INTERVAL = 0.5


class LogNotFoundError(FileNotFoundError):
    """No such log file, worker, task or actor (the message says which)."""


@dataclass(frozen=True)
class LogTarget:
    """One log on one node: a file by name, or a worker's (pid / worker id)."""

    node_id: str
    address: str  # the node's raylet, HOST:PORT
    node_ip: str
    filename: str = ""
    pid: int = 0
    worker_id: str = ""


def live_nodes(client: StateClient) -> list[gpb.NodeInfo]:
    async def get(gcs: Any, _raylet: Any) -> Any:
        return await gcs.GetAllNodeInfo(gpb.GetAllNodeInfoRequest(), timeout=TIMEOUT)

    return [n for n in client.run(get).nodes if n.alive]


def pick_node(client: StateClient, node_id: str | None = None, node_ip: str | None = None) -> gpb.NodeInfo:
    """The live node with ``node_id`` (a prefix will do) or ``node_ip``; the head without either."""
    live = live_nodes(client)
    if node_id:
        found = [n for n in live if n.node_id.hex().startswith(node_id.lower())]
        if len(found) != 1:
            known = ", ".join(n.node_id.hex()[:12] for n in live)
            raise LogNotFoundError(f"no live node {'matches' if not found else 'alone matches'} id "
                                   f"{node_id!r} (live nodes: {known})")
        return found[0]
    if node_ip:
        found = [n for n in live if n.ip == node_ip]
        if not found:
            raise LogNotFoundError(f"no live node at {node_ip} (live nodes at: "
                                   f"{', '.join(sorted({n.ip for n in live}))})")
        return found[0]
    heads = [n for n in live if n.is_head] or live
    if not heads:
        raise LogNotFoundError("the cluster has no live node")
    return heads[0]


def _address(n: gpb.NodeInfo) -> str:
    return f"{n.ip}:{n.raylet_port}"


def list_files(client: StateClient, node: gpb.NodeInfo, glob_filter: str | None) -> list[rpb.LogFileInfo]:
    _check_glob(glob_filter)

    async def get(_gcs: Any, raylet: Any) -> Any:
        return await raylet(_address(node)).ListLogs(rpb.ListLogsRequest(glob_filter=glob_filter or ""),
                                                     timeout=TIMEOUT)

    return list(client.run(get).files)


def list_files_of(client: StateClient, nodes: list[gpb.NodeInfo],
                  glob_filter: str | None) -> list[list[rpb.LogFileInfo] | None]:
    """``list_files`` of several nodes at once (None where a node did not answer)."""
    import asyncio

    _check_glob(glob_filter)

    async def get(_gcs: Any, raylet: Any) -> Any:
        return await asyncio.gather(*(
            raylet(_address(n)).ListLogs(rpb.ListLogsRequest(glob_filter=glob_filter or ""), timeout=TIMEOUT)
            for n in nodes), return_exceptions=True)

    return [None if isinstance(r, BaseException) else list(r.files) for r in client.run(get)]


def _check_glob(glob_filter: str | None) -> None:
    """A glob names files inside the logs directory, as a file name does (ValueError otherwise)."""
    if glob_filter:
        from jray._private.raylet.logs import check_name

        check_name(glob_filter)


def group_of(filename: str) -> str:
    """Ray's log groups, by file name: worker, raylet, gcs_server, ... (``list_logs``'s keys)."""
    base = filename.rsplit("/", 1)[-1]
    for prefix, group in (("worker-", "worker"), ("raylet", "raylet"), ("gcs", "gcs_server"),
                          ("zygote", "worker_zygote"), ("runtime_env", "runtime_env"), ("job-", "job"),
                          ("autoscaler", "autoscaler"), ("monitor", "autoscaler"), ("dashboard", "dashboard"),
                          ("jobs", "dashboard")):
        if base.startswith(prefix):
            return group
    return "internal"


def resolve(client: StateClient, *, node_id: str | None = None, node_ip: str | None = None,
            filename: str | None = None, actor_id: str | None = None, task_id: str | None = None,
            pid: int | None = None, attempt_number: int = 0) -> LogTarget:
    """The node and the file (or worker) a ``get_log`` call names."""
    given = [k for k, v in (("filename", filename), ("actor_id", actor_id), ("task_id", task_id),
                            ("pid", pid)) if v]
    if len(given) != 1:
        raise ValueError("get_log needs exactly one of filename, actor_id, task_id or pid"
                         + (f" (got {', '.join(given)})" if given else ""))
    if filename:
        from jray._private.raylet.logs import check_name

        check_name(filename)  # a clear ValueError before any call (the raylet checks again)
        n = pick_node(client, node_id, node_ip)
        return LogTarget(n.node_id.hex(), _address(n), n.ip, filename=filename)
    if task_id:
        return _task_target(client, task_id, attempt_number)
    if actor_id:
        return _actor_target(client, actor_id)
    assert pid is not None
    if node_id or node_ip:
        n = pick_node(client, node_id, node_ip)
        return LogTarget(n.node_id.hex(), _address(n), n.ip, pid=int(pid))
    for row in _rows.workers(client):
        if row["worker_type"] == "WORKER" and row["pid"] == int(pid):
            n = pick_node(client, row["node_id"])
            return LogTarget(n.node_id.hex(), _address(n), n.ip, pid=int(pid))
    # Exited workers are remembered by their raylet: ask each live node.
    for n in live_nodes(client):
        reply = _get(client, LogTarget(n.node_id.hex(), _address(n), n.ip, pid=int(pid)), tail=0)
        if not reply.error:
            return LogTarget(n.node_id.hex(), _address(n), n.ip, pid=int(pid))
    raise LogNotFoundError(f"no node of the cluster started a worker with pid {pid}")


def _task_target(client: StateClient, task_id: str, attempt_number: int) -> LogTarget:
    rows = [t for t in _rows.tasks(client) if t["task_id"] == task_id.lower()]
    if not rows:
        raise LogNotFoundError(f"no task {task_id} in the cluster's task table")
    attempts = [t for t in rows if t["attempt_number"] == attempt_number] or rows
    t = attempts[-1]
    if not t["node_id"] or not (t["worker_pid"] or t["worker_id"]):
        raise LogNotFoundError(f"task {task_id} (state {t['state']}) has not run on a worker yet")
    n = pick_node(client, t["node_id"])
    return LogTarget(n.node_id.hex(), _address(n), n.ip, pid=int(t["worker_pid"] or 0),
                     worker_id=t["worker_id"] or "")


def _actor_target(client: StateClient, actor_id: str) -> LogTarget:
    try:
        aid = bytes.fromhex(actor_id)
    except ValueError:
        raise ValueError(f"actor_id must be an actor id in hex, got {actor_id!r}") from None
    row = _rows.actor(client, aid)
    if row is None:
        raise LogNotFoundError(f"no actor {actor_id} in the cluster")
    if not row["node_id"] or not (row["pid"] or row["worker_id"]):
        raise LogNotFoundError(f"actor {actor_id} (state {row['state']}) has no worker yet")
    n = pick_node(client, row["node_id"])
    return LogTarget(n.node_id.hex(), _address(n), n.ip, pid=int(row["pid"] or 0), worker_id=row["worker_id"] or "")


def _get(client: StateClient, target: LogTarget, *, tail: int = -1, offset: int = -1,
         max_bytes: int = CHUNK_BYTES) -> rpb.GetLogReply:
    request = rpb.GetLogRequest(filename=target.filename, pid=target.pid,
                                worker_id=bytes.fromhex(target.worker_id) if target.worker_id else b"",
                                tail=tail, offset=offset, max_bytes=max_bytes)

    async def get(_gcs: Any, raylet: Any) -> Any:
        return await raylet(target.address).GetLog(request, timeout=TIMEOUT)

    reply: rpb.GetLogReply = client.run(get)
    return reply


def read(client: StateClient, target: LogTarget, *, tail: int = -1, offset: int = -1,
         max_bytes: int = CHUNK_BYTES) -> rpb.GetLogReply:
    """One read (see ``GetLogRequest``); the raylet's refusal raised as
    ``LogNotFoundError`` (unknown file or worker) or ``ValueError`` (a bad name)."""
    reply = _get(client, target, tail=tail, offset=offset, max_bytes=max_bytes)
    if reply.error:
        where = f" (node {target.node_id[:12]} at {target.node_ip})"
        if reply.not_found:
            raise LogNotFoundError(reply.error + where)
        raise ValueError(reply.error)
    return reply


def stream(client: StateClient, target: LogTarget, *, tail: int = -1, follow: bool = False,
           interval: float | None = None, encoding: str = "utf-8", errors: str = "strict") -> Iterator[str]:
    """The log's lines (without their newlines): the last ``tail`` (all when
    < 0), then, with ``follow``, new ones as they are written."""
    interval = FOLLOW_INTERVAL if interval is None else max(0.05, interval)
    pending = b""

    def lines(data: bytes, final: bool) -> Iterator[str]:
        nonlocal pending
        buf = pending + data
        *done, pending = buf.split(b"\n")
        if final and pending:
            done.append(pending)
            pending = b""
        for line in done:
            yield line.decode(encoding, errors)

    if tail >= 0:
        r = read(client, target, tail=tail)
        offset = r.offset
        yield from lines(r.data, final=not follow and r.offset >= r.size)
    else:
        offset = 0
        r = read(client, target, offset=0)
        offset = r.offset
        yield from lines(r.data, final=False)
    while not follow and offset < r.size:  # the rest of a file larger than a chunk
        r = read(client, target, offset=offset)
        offset = r.offset
        if not r.data:
            break
        yield from lines(r.data, final=False)
    if not follow:
        yield from lines(b"", final=True)
        return
    while True:
        r = read(client, target, offset=offset)
        offset = r.offset
        yield from lines(r.data, final=False)
        if r.offset < r.size:
            continue  # more to read now
        if target.pid or target.worker_id:
            if not r.worker_alive:
                yield from lines(b"", final=True)
                return
        time.sleep(interval)


def grouped(files: list[rpb.LogFileInfo], glob_filter: str | None) -> dict[str, list[str]]:
    """``{group: [filename, ...]}`` as Ray's ``list_logs`` returns."""
    out: dict[str, list[str]] = {}
    for f in files:
        if glob_filter and not (fnmatch.fnmatch(f.filename, glob_filter)
                                or fnmatch.fnmatch(f.filename.rsplit("/", 1)[-1], glob_filter)):
            continue
        out.setdefault(group_of(f.filename), []).append(f.filename)
    return out
