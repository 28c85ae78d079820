"""Rows of the state API (``jray.util.state``), built from GCS and raylet replies (Ray's field names)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

from jray._private.ids import task_id_of
from jray._private.protocol import gcs_pb2 as gpb
from jray._private.protocol import raylet_pb2 as rpb
from jray._private.state.client import TIMEOUT, StateClient

TASK_BRIEF = ("task_id", "attempt_number", "name", "state", "job_id", "actor_id", "type",
              "func_or_class_name", "node_id", "worker_id", "worker_pid", "error_message")
TASK_KEYS = TASK_BRIEF + ("parent_task_id", "creation_time_ms", "start_time_ms", "end_time_ms",
                          "required_resources", "state_times_ms", "is_reconstruction")
ACTOR_BRIEF = ("actor_id", "class_name", "state", "job_id", "name", "node_id", "pid", "ray_namespace")
ACTOR_KEYS = ACTOR_BRIEF + ("is_detached", "death_cause", "num_restarts", "max_restarts",
                            "required_resources", "ip", "port", "worker_id")
OBJECT_KEYS = ("object_id", "object_size", "node_id", "ip", "where", "primary", "sealed", "pins",
               "owner_address", "owner_worker_id", "pid", "task_id")
NODE_BRIEF = ("node_id", "node_ip", "is_head_node", "state", "resources_total", "resources_available",
              "num_workers", "object_store_used", "object_store_memory", "cpu_percent", "memory_used",
              "memory_total")
NODE_KEYS = NODE_BRIEF + ("labels", "start_time_ms", "raylet_port", "pid", "num_idle_workers",
                          "num_busy_workers", "num_objects", "spilled_bytes", "pending_leases")
WORKER_BRIEF = ("worker_id", "worker_type", "is_alive", "node_id", "ip", "pid", "state", "rss_bytes",
                "cpu_percent")
WORKER_KEYS = WORKER_BRIEF + ("actor_id", "log_file", "runtime_env_key", "worker_launch_time_ms")
JOB_KEYS = ("job_id", "submission_id", "type", "status", "message", "entrypoint", "driver_pid", "driver_ip",
            "namespace", "start_time", "end_time")
RUNTIME_ENV_BRIEF = ("runtime_env_key", "status", "success", "nodes", "size_bytes", "num_workers",
                     "setup_seconds", "runtime_env")
RUNTIME_ENV_KEYS = RUNTIME_ENV_BRIEF + ("node_ids", "creation_time_ms", "error", "logs")


def _ms(t: float) -> int | None:
    return int(t * 1000) if t else None


def tasks(client: StateClient, limit: int = 0) -> list[dict[str, Any]]:
    """Task rows, oldest first; with ``limit``, only the newest ``limit`` (cut by the GCS)."""
    return [_task_row(e) for e in task_events(client, gpb.GetTaskEventsRequest(limit=max(0, limit))).events]


def task_events(client: StateClient, request: gpb.GetTaskEventsRequest) -> Any:
    async def get(gcs: Any, _raylet: Any) -> Any:
        return await gcs.GetTaskEvents(request, timeout=TIMEOUT)

    return client.run(get)


def _task_row(e: gpb.TaskEvent) -> dict[str, Any]:
    times = dict(e.state_times)
    end = times.get("FINISHED") or times.get("FAILED") if e.state in ("FINISHED", "FAILED") else 0
    return {
        "task_id": e.task_id.hex(), "attempt_number": e.attempt, "name": e.name, "state": e.state,
        "job_id": e.job_id.hex(), "actor_id": e.actor_id.hex() or None, "type": e.type or "NORMAL_TASK",
        "func_or_class_name": e.func_name or e.name, "node_id": e.node_id.hex() or None,
        "worker_id": e.worker_id.hex() or None, "worker_pid": e.pid or None,
        "error_message": e.error or None, "parent_task_id": e.parent_task_id.hex() or None,
        "creation_time_ms": _ms(times.get("SUBMITTED", 0)), "start_time_ms": _ms(times.get("RUNNING", 0)),
        "end_time_ms": _ms(end or 0), "required_resources": dict(e.resources),
        "state_times_ms": {k: _ms(v) for k, v in times.items()},
        "is_reconstruction": e.reconstruction,
    }


def task_changes(client: StateClient, since: int, limit: int) -> dict[str, Any]:
    reply = task_events(client, gpb.GetTaskEventsRequest(since=max(0, since), limit=max(0, limit)))
    return {"seq": reply.seq, "dropped": reply.dropped, "total": reply.total,
            "state_counts": dict(reply.state_counts), "tasks": [_task_row(e) for e in reply.events]}


def task_state_counts(client: StateClient) -> dict[str, int]:
    return dict(task_events(client, gpb.GetTaskEventsRequest(counts_only=True)).state_counts)


def task_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, dict[str, Any]] = {}
    for r in rows:
        name = r["func_or_class_name"] or r["name"]
        s = summary.setdefault(name, {"func_or_class_name": name, "type": r["type"], "state_counts": Counter()})
        s["state_counts"][r["state"]] += 1
    for s in summary.values():
        s["state_counts"] = dict(s["state_counts"])
    return {"cluster": {
        "summary": summary,
        "total_tasks": sum(1 for r in rows if r["type"] == "NORMAL_TASK"),
        "total_actor_tasks": sum(1 for r in rows if r["type"] == "ACTOR_TASK"),
        "total_actor_scheduled": sum(1 for r in rows if r["type"] == "ACTOR_CREATION_TASK"),
    }}


def actor_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Actor counts by class and state, in Ray's shape."""
    summary: dict[str, dict[str, Any]] = {}
    for r in rows:
        s = summary.setdefault(r["class_name"], {"class_name": r["class_name"], "state_counts": Counter()})
        s["state_counts"][r["state"]] += 1
    for s in summary.values():
        s["state_counts"] = dict(s["state_counts"])
    return {"cluster": {"summary": summary, "total_actors": len(rows)}}


def object_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Objects in the stores by the task that made them (Ray groups by call
    site, which jray does not record: "disabled", as Ray without
    RAY_record_ref_creation_sites), with sizes, nodes and owners."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault("disabled", []).append(r)
    summary: dict[str, dict[str, Any]] = {}
    for site, objs in groups.items():
        summary[site] = {
            "total_objects": len(objs),
            "total_size_mb": sum(o["object_size"] or 0 for o in objs) / 2**20,
            "total_num_workers": len({o["owner_worker_id"] for o in objs if o["owner_worker_id"]}),
            "total_num_nodes": len({o["node_id"] for o in objs if o["node_id"]}),
            "task_state_counts": {},
            "ref_type_counts": {},
        }
    return {"cluster": {
        "summary": summary,
        "total_objects": len(rows),
        "total_size_mb": sum(r["object_size"] or 0 for r in rows) / 2**20,
        "callsite_enabled": False,
    }}


def actors(client: StateClient) -> list[dict[str, Any]]:
    async def get(gcs: Any, _raylet: Any) -> Any:
        return await gcs.ListActors(gpb.ListActorsRequest(all_namespaces=True), timeout=TIMEOUT)

    return [_actor_row(a) for a in client.run(get).actors]


def actor(client: StateClient, actor_id: bytes) -> dict[str, Any] | None:
    """The row of one actor, or None when the GCS does not know it."""
    async def get(gcs: Any, _raylet: Any) -> Any:
        return await gcs.GetActorInfo(gpb.GetActorInfoRequest(actor_id=actor_id), timeout=TIMEOUT)

    reply = client.run(get)
    return _actor_row(reply.actor) if reply.found else None


def _actor_row(a: gpb.ActorInfo) -> dict[str, Any]:
    return {
        "actor_id": a.actor_id.hex(), "class_name": a.class_name, "state": gpb.ActorState.Name(a.state),
        "job_id": a.job_id.hex(), "name": a.name, "node_id": a.node_id.hex() or None, "pid": a.pid or None,
        "ray_namespace": a.namespace, "is_detached": a.detached, "death_cause": a.death_cause or None,
        "num_restarts": a.num_restarts, "max_restarts": a.max_restarts,
        "required_resources": dict(a.resources), "ip": a.address.ip or None, "port": a.address.port or None,
        "worker_id": a.address.worker_id.hex() or None,
    }


def nodes(client: StateClient) -> list[dict[str, Any]]:
    return [_node_row(n) for n in _all_nodes(client)]


def _all_nodes(client: StateClient) -> list[gpb.NodeInfo]:
    async def get(gcs: Any, _raylet: Any) -> Any:
        return await gcs.GetAllNodeInfo(gpb.GetAllNodeInfoRequest(), timeout=TIMEOUT)

    return list(client.run(get).nodes)


def _node_row(n: gpb.NodeInfo) -> dict[str, Any]:
    return {
        "node_id": n.node_id.hex(), "node_ip": n.ip, "is_head_node": n.is_head,
        "state": "ALIVE" if n.alive else "DEAD", "resources_total": dict(n.resources_total),
        "resources_available": dict(n.resources_available), "labels": dict(n.labels),
        "start_time_ms": _ms(n.start_time), "raylet_port": n.raylet_port, "pid": n.pid,
        "object_store_memory": n.object_store_memory, "object_store_used": n.store_used,
        "num_workers": n.num_workers, "num_idle_workers": n.num_idle_workers,
        "num_busy_workers": n.num_leased_workers, "num_objects": n.num_objects, "spilled_bytes": n.spilled_bytes,
        "pending_leases": n.pending_leases, "cpu_percent": round(n.cpu_percent, 1),
        "memory_used": n.memory_used, "memory_total": n.memory_total,
    }


def metrics(client: StateClient) -> list[tuple[Any, list[Any]]]:
    """(node, its ``ray.util.metrics`` points aggregated over its processes) per live node."""
    live, stats, _jobs = _node_stats(client, False, include_metrics=True)
    return [(n, list(s.metrics)) for n, s in zip(live, stats, strict=True) if s is not None]


def metric_rows(per_node: list[tuple[Any, list[Any]]]) -> list[dict[str, Any]]:
    rows = []
    for n, points in per_node:
        for p in points:
            row: dict[str, Any] = {"name": p.name, "kind": p.kind, "tags": dict(p.tags), "value": p.value,
                                   "node_id": n.node_id.hex(), "node_ip": n.ip, "description": p.description}
            if p.kind == "histogram":
                row.update(count=p.count, sum=p.value, boundaries=list(p.boundaries),
                           bucket_counts=list(p.bucket_counts))
            rows.append(row)
    return rows


def _node_stats(client: StateClient, include_objects: bool,
                include_metrics: bool = False) -> tuple[list[Any], list[Any], list[Any]]:
    """(live nodes, their GetNodeStats replies or None where one failed, jobs)."""
    async def get(gcs: Any, raylet: Any) -> Any:
        nodes_reply, jobs_reply = await asyncio.gather(
            gcs.GetAllNodeInfo(gpb.GetAllNodeInfoRequest(), timeout=TIMEOUT),
            gcs.GetAllJobInfo(gpb.GetAllJobInfoRequest(), timeout=TIMEOUT))
        live = [n for n in nodes_reply.nodes if n.alive]
        stats = await asyncio.gather(*(
            raylet(f"{n.ip}:{n.raylet_port}").GetNodeStats(
                rpb.GetNodeStatsRequest(include_objects=include_objects, include_metrics=include_metrics),
                timeout=TIMEOUT)
            for n in live), return_exceptions=True)
        return live, [None if isinstance(s, BaseException) else s for s in stats], list(jobs_reply.jobs)

    result: tuple[list[Any], list[Any], list[Any]] = client.run(get)
    return result


def objects(client: StateClient) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(one row per object copy in a store, one row of store totals per node)."""
    live, stats, jobs_list = _node_stats(client, True)
    driver_pids = {j.driver.worker_id: j.driver_pid for j in jobs_list}
    rows, stores = [], []
    for n, s in zip(live, stats, strict=True):
        if s is None:
            continue
        stores.append({
            "node_id": n.node_id.hex(), "node_ip": n.ip, "store_capacity": s.store_capacity,
            "store_used": s.store_used, "num_objects": s.num_objects, "spilled_bytes": s.spilled_bytes,
        })
        for o in s.objects:
            owner = o.owner
            rows.append({
                "object_id": o.object_id.hex(), "object_size": o.size, "node_id": n.node_id.hex(), "ip": n.ip,
                "where": "spilled" if o.spilled else "shm", "primary": o.primary, "sealed": o.sealed,
                "pins": o.pins, "owner_address": f"{owner.ip}:{owner.port}" if owner.port else None,
                "owner_worker_id": owner.worker_id.hex() or None,
                "pid": driver_pids.get(owner.worker_id) or None,
                "task_id": task_id_of(o.object_id).hex(),
            })
    return rows, stores


def workers(client: StateClient) -> list[dict[str, Any]]:
    """Each live raylet's workers (pid, id, state, memory, CPU, log file), then the drivers."""
    live, stats, jobs_list = _node_stats(client, False)
    rows = []
    for n, s in zip(live, stats, strict=True):
        if s is None:
            continue
        node = n.node_id.hex()
        for w in s.workers:
            rows.append({"worker_id": w.worker_id.hex() or None, "worker_type": "WORKER", "is_alive": True,
                         "node_id": node, "ip": n.ip, "pid": w.pid, "state": w.state,
                         # None until the raylet's next sample (at most a second) has the new process
                         "rss_bytes": w.rss_bytes or None, "cpu_percent": round(w.cpu_percent, 1),
                         "actor_id": w.actor_id.hex() or None, "log_file": w.log_file or None,
                         "runtime_env_key": w.runtime_env_key or None,
                         "worker_launch_time_ms": _ms(w.start_time)})
    for j in jobs_list:
        rows.append({"worker_id": j.driver.worker_id.hex() or None, "worker_type": "DRIVER",
                     "is_alive": not j.is_dead, "node_id": j.driver.node_id.hex() or None,
                     "ip": j.driver.ip or None, "pid": j.driver_pid or None,
                     "state": "DEAD" if j.is_dead else "DRIVER", "rss_bytes": None, "cpu_percent": None,
                     "actor_id": None, "log_file": None, "runtime_env_key": None,
                     "worker_launch_time_ms": _ms(j.start_time)})
    return rows


def jobs(client: StateClient) -> list[dict[str, Any]]:
    """The GCS's jobs (every driver), each with the submission id of the
    submitted job it runs (``jray job submit``), whose status it shows; and
    the submitted jobs no driver of which has started (yet)."""
    from jray._private.jobs import common as jc

    async def get(gcs: Any, _raylet: Any) -> Any:
        info = await gcs.GetAllJobInfo(gpb.GetAllJobInfoRequest(), timeout=TIMEOUT)
        drivers = await gcs.KVKeys(gpb.KVKeysRequest(ns=jc.KV_NS, prefix=jc.DRIVER_PREFIX.encode()), timeout=TIMEOUT)
        keys = (await gcs.KVKeys(gpb.KVKeysRequest(ns=jc.KV_NS, prefix=jc.RECORD_PREFIX.encode()),
                                 timeout=TIMEOUT)).keys
        recs = await asyncio.gather(*(gcs.KVGet(gpb.KVGetRequest(ns=jc.KV_NS, key=k), timeout=TIMEOUT) for k in keys))
        return info.jobs, drivers.keys, [json.loads(r.value) for r in recs if r.found]

    gcs_jobs, driver_keys, records = client.run(get)
    sub_of: dict[str, str] = {}
    for k in driver_keys:
        parts = k.decode(errors="replace").split("/", 2)
        if len(parts) == 3:
            sub_of[parts[1]] = parts[2]
    by_sid = {r["submission_id"]: r for r in records}
    rows = []
    for j in gcs_jobs:
        jid = j.job_id.hex()
        sid = sub_of.get(jid)
        row = {
            "job_id": jid, "submission_id": sid, "type": "SUBMISSION" if sid else "DRIVER",
            "status": ("FAILED" if j.death_cause else "SUCCEEDED") if j.is_dead else "RUNNING",
            "message": j.death_cause or None,
            "entrypoint": j.entrypoint, "driver_pid": j.driver_pid or None,
            "driver_ip": j.driver_host or j.driver.ip or None,
            "namespace": j.namespace, "start_time": _ms(j.start_time), "end_time": _ms(j.end_time),
        }
        rec = by_sid.get(sid) if sid else None
        if rec is not None:  # the submission's status and command (the driver's is `python script.py`)
            row.update(status=rec["status"], message=rec.get("message"), entrypoint=rec["entrypoint"])
        rows.append(row)
    started = set(sub_of.values())
    for rec in records:
        if rec["submission_id"] not in started:
            rows.append({"job_id": None, "submission_id": rec["submission_id"], "type": "SUBMISSION",
                         "status": rec["status"], "message": rec.get("message"), "entrypoint": rec["entrypoint"],
                         "driver_pid": rec.get("driver_pid"), "driver_ip": rec.get("driver_node_ip"),
                         "namespace": None, "start_time": rec.get("start_time"), "end_time": rec.get("end_time")})
    return rows


def runtime_envs(client: StateClient) -> list[dict[str, Any]]:
    """One row per runtime_env that some live node has set up (or is setting
    up, or failed to): which nodes have it, its disk size on the largest of
    them, its live workers (all nodes), its status (FAILED where any node
    failed, PENDING where any is still building, READY otherwise), and
    per node the setup log."""
    live, stats, _jobs = _node_stats(client, False)
    by_key: dict[str, dict[str, Any]] = {}
    rank = {"READY": 0, "PENDING": 1, "FAILED": 2}
    for n, s in zip(live, stats, strict=True):
        if s is None:
            continue
        for e in s.runtime_envs:
            row = by_key.setdefault(e.key, {
                "runtime_env_key": e.key, "status": e.status, "success": True, "nodes": [], "size_bytes": 0,
                "num_workers": 0, "setup_seconds": 0.0, "runtime_env": e.runtime_env, "node_ids": [],
                "creation_time_ms": _ms(e.created_at), "error": None, "logs": {}})
            if rank.get(e.status, 0) > rank.get(row["status"], 0):
                row["status"] = e.status
            row["nodes"].append(n.ip)
            row["node_ids"].append(n.node_id.hex())
            row["size_bytes"] = max(row["size_bytes"], e.size_bytes)
            row["num_workers"] += e.num_workers
            row["setup_seconds"] = round(max(row["setup_seconds"], e.setup_seconds), 3)
            created = _ms(e.created_at)
            if created and (row["creation_time_ms"] is None or created < row["creation_time_ms"]):
                row["creation_time_ms"] = created
            if e.error and row["error"] is None:
                row["error"] = f"on {n.ip}: {e.error}"
            if e.log_path:
                row["logs"][n.ip] = e.log_path
    for row in by_key.values():
        row["success"] = row["status"] == "READY"
        row["nodes"] = ",".join(row["nodes"])
    return sorted(by_key.values(), key=lambda r: r["creation_time_ms"] or 0)
