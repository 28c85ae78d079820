"""The job manager of the job agent: records, entrypoint processes, logs.

A record is a dict in Ray's ``JobDetails`` shape, kept in memory and
written to the GCS KV (``job/<submission id>``) on every change of status,
so ``list``/``get`` answer from memory and the records outlive the agent.
A job runs as ``/bin/sh -c ENTRYPOINT`` in a process group of its own,
its stdout and stderr piped through the agent into its log file (rotated
past ``LOG_MAX_BYTES``; one old file kept), so the agent knows each byte's
offset and can serve ``tail`` from any offset with a long poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from jray._private.jobs import common as C
from jray._private.protocol import gcs_pb2 as gpb

log = logging.getLogger("jray.jobs")


def _now_ms() -> int:
    return int(time.time() * 1000)


class JobLog:
    """One job's log: ``<path>`` and one rotated file ``<path>.1``. Offsets
    count every byte the job ever wrote; bytes rotated out twice are gone
    (a read from before them starts at the oldest kept)."""

    def __init__(self, path: str, max_bytes: int, base: int = 0) -> None:
        self.path, self.max_bytes = path, max(1024, max_bytes)
        self.old_start = base  # offset of the first byte of <path>.1 (or of <path> without one)
        old = self._size(self.old_path)
        self.cur_start = base + old
        self.end = self.cur_start + self._size(path)
        self.changed = asyncio.Event()
        self.closed = False

    @property
    def old_path(self) -> str:
        return self.path + ".1"

    @staticmethod
    def _size(p: str) -> int:
        try:
            return os.path.getsize(p)
        except OSError:
            return 0

    def write(self, data: bytes) -> bool:
        """Append; True when the file was rotated (the record's base moved)."""
        rotated = False
        if self.end - self.cur_start + len(data) > self.max_bytes // 2 and self.end > self.cur_start:
            with contextlib.suppress(OSError):
                os.replace(self.path, self.old_path)
            self.old_start, self.cur_start = self.cur_start, self.end
            rotated = True
        with open(self.path, "ab") as f:
            f.write(data)
        self.end += len(data)
        self.changed.set()
        self.changed = asyncio.Event()
        return rotated

    def close(self) -> None:
        self.closed = True
        self.changed.set()

    def read(self, offset: int, limit: int = 1 << 20) -> tuple[bytes, int]:
        """Up to ``limit`` bytes from ``offset`` (clamped to what is kept); (data, next offset)."""
        offset = max(offset, self.old_start)
        out = b""
        if offset < self.cur_start:
            with contextlib.suppress(OSError), open(self.old_path, "rb") as f:
                f.seek(offset - self.old_start)
                out = f.read(min(limit, self.cur_start - offset))
            if len(out) < self.cur_start - offset:  # the old file went missing
                out, offset = b"", self.cur_start
        if len(out) < limit and offset + len(out) >= self.cur_start:
            with contextlib.suppress(OSError), open(self.path, "rb") as f:
                f.seek(offset + len(out) - self.cur_start)
                out += f.read(limit - len(out))
        cut = C.utf8_safe_end(out) if len(out) == limit else len(out)
        return out[:cut], offset + cut

    def text(self) -> str:
        data, _ = self.read(0, limit=4 * self.max_bytes)
        return data.decode(errors="replace")

    def tail_text(self, chars: int) -> str:
        data, _ = self.read(max(0, self.end - 4 * chars), limit=4 * chars + 16)
        return data.decode(errors="replace")[-chars:]

    def remove(self) -> None:
        for p in (self.path, self.old_path):
            with contextlib.suppress(OSError):
                os.unlink(p)


@dataclass
class Running:
    proc: asyncio.subprocess.Process | None = None
    runner: Any = None  # the EntrypointRunner actor of a job with entrypoint resources
    stopping: bool = False
    task: asyncio.Task | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class JobManager:
    def __init__(self, *, gcs: Any, gcs_address: str, token: str, session_dir: str, node_ip: str,
                 env_agent: Any = None, log_max_bytes: int = C.LOG_MAX_BYTES,
                 max_finished: int = C.MAX_FINISHED_JOBS, extra_env: dict[str, str] | None = None,
                 runners: Any = None) -> None:
        """``runners``: what runs entrypoints that ask for resources
        (``jray.dashboard.entrypoints.ActorRunners``); without it such jobs
        are refused."""
        self.gcs, self.gcs_address, self.token = gcs, gcs_address, token
        self.session_dir, self.node_ip = session_dir, node_ip
        self.env_agent = env_agent
        self.log_max_bytes, self.max_finished = log_max_bytes, max_finished
        self.extra_env = extra_env or {}
        self.log_dir = os.path.join(session_dir, "logs", "jobs")
        os.makedirs(self.log_dir, mode=0o700, exist_ok=True)
        self.records: dict[str, dict[str, Any]] = {}
        self.logs: dict[str, JobLog] = {}
        self.running: dict[str, Running] = {}
        self._lock = asyncio.Lock()  # submit/delete: the id check and the record's creation are one step
        self.runners = runners

    # -- persistence -------------------------------------------------------------------
    async def _save(self, rec: dict[str, Any]) -> None:
        await self.gcs.KVPut(gpb.KVPutRequest(ns=C.KV_NS, key=(C.RECORD_PREFIX + rec["submission_id"]).encode(),
                                              value=json.dumps(rec).encode(), overwrite=True), timeout=30)

    async def load(self) -> None:
        """Read the records the KV holds (an agent started again); jobs that
        were running under an agent that is gone end as FAILED."""
        keys = (await self.gcs.KVKeys(gpb.KVKeysRequest(ns=C.KV_NS, prefix=C.RECORD_PREFIX.encode()),
                                      timeout=30)).keys
        for k in keys:
            r = await self.gcs.KVGet(gpb.KVGetRequest(ns=C.KV_NS, key=k), timeout=30)
            if not r.found:
                continue
            try:
                rec = json.loads(r.value)
            except ValueError:
                continue
            sid = rec["submission_id"]
            self.records[sid] = rec
            self.logs[sid] = JobLog(self._log_path(sid), self.log_max_bytes, int(rec.get("log_base", 0)))
            self.logs[sid].closed = True
            if rec["status"] not in C.TERMINAL:
                pid = int(rec.get("driver_pid") or 0)
                if pid > 0:  # a driver left by an agent that died: it runs unsupervised; end it
                    with contextlib.suppress(OSError):
                        os.killpg(pid, signal.SIGKILL)
                rec.update(status=C.FAILED, end_time=_now_ms(),
                           message="The job agent that supervised this job stopped while the job was running.")
                await self._save(rec)

    def _log_path(self, sid: str) -> str:
        return os.path.join(self.log_dir, f"job-driver-{sid}.log")

    # -- the API -----------------------------------------------------------------------
    async def submit(self, body: Any) -> dict[str, Any]:
        req = C.check_submit(body)
        async with self._lock:
            sid = req["submission_id"] or f"jraysubmit_{uuid.uuid4().hex[:16]}"
            if sid in self.records:
                raise C.BadRequest(f"Job with submission_id {sid!r} already exists. Please use a different "
                                   "submission_id.")
            await self._check_resources(req)
            rec = {
                "type": "SUBMISSION", "job_id": None, "submission_id": sid, "status": C.PENDING,
                "entrypoint": req["entrypoint"], "message": "Job has not started yet.", "error_type": None,
                "start_time": _now_ms(), "end_time": None, "metadata": req["metadata"],
                "runtime_env": req["runtime_env"], "driver_info": None, "driver_exit_code": None,
                "driver_pid": None, "driver_node_ip": self.node_ip,
                "entrypoint_num_cpus": req["entrypoint_num_cpus"], "entrypoint_num_gpus": req["entrypoint_num_gpus"],
                "entrypoint_memory": req["entrypoint_memory"], "entrypoint_resources": req["entrypoint_resources"],
                "log_base": 0,
            }
            await self._save(rec)  # first: a submit the KV refused leaves nothing behind
            self.records[sid] = rec
            self.logs[sid] = JobLog(self._log_path(sid), self.log_max_bytes)
            self.logs[sid].remove()  # a file left by a deleted job of the same id
            self.logs[sid] = JobLog(self._log_path(sid), self.log_max_bytes)
            run = self.running[sid] = Running()
            run.task = asyncio.ensure_future(self._run(sid, run))
        await self._retain()
        return {"submission_id": sid, "job_id": sid}

    async def _check_resources(self, req: dict[str, Any]) -> None:
        """Entrypoint resources: the job runs on a node that has them (see
        ``jray.dashboard.entrypoints``). One that no live node could ever hold is
        refused now, unless an autoscaler runs (it may add such a node; the
        job stays PENDING until then, as in Ray)."""
        if not C.wants_resources(req):
            return
        if self.runners is None:
            raise C.BadRequest("this job agent cannot run entrypoints with entrypoint resources (start it as "
                               "python -m jray.dashboard.agent)")
        nodes = (await self.gcs.GetAllNodeInfo(gpb.GetAllNodeInfoRequest(), timeout=30)).nodes
        want = {k: v for k, v in {"CPU": req["entrypoint_num_cpus"], "GPU": req["entrypoint_num_gpus"],
                                  "memory": req["entrypoint_memory"], **req["entrypoint_resources"]}.items() if v}
        if any(n.alive and all(n.resources_total.get(k, 0.0) >= v for k, v in want.items()) for n in nodes):
            return
        status = await self.gcs.KVGet(gpb.KVGetRequest(ns="autoscaler", key=b"status"), timeout=30)
        if status.found:
            with contextlib.suppress(ValueError):
                if json.loads(status.value).get("running"):
                    return
        most = {k: max((n.resources_total.get(k, 0.0) for n in nodes if n.alive), default=0.0) for k in want}
        raise C.BadRequest(f"no node of the cluster has the requested entrypoint resources {want} (the most any "
                           f"node has: {most}), and no autoscaler runs to add one")

    def get(self, sid: str) -> dict[str, Any]:
        rec = self.records.get(sid)
        if rec is None:
            raise C.NotFound(f"Job {sid!r} does not exist.")
        return rec

    async def info(self, sid: str) -> dict[str, Any]:
        rec = self.get(sid)
        if rec["job_id"] is None and rec["status"] != C.PENDING:
            await self._find_job_id(rec)
        return _public(rec)

    async def list_jobs(self) -> list[dict[str, Any]]:
        missing = [r for r in self.records.values() if r["job_id"] is None and r["status"] != C.PENDING]
        if missing:
            await self._find_job_ids(missing)
        return [_public(r) for r in sorted(self.records.values(), key=lambda r: r["start_time"])]

    async def _find_job_id(self, rec: dict[str, Any]) -> None:
        await self._find_job_ids([rec])

    async def _find_job_ids(self, recs: list[dict[str, Any]]) -> None:
        try:
            keys = (await self.gcs.KVKeys(gpb.KVKeysRequest(ns=C.KV_NS, prefix=C.DRIVER_PREFIX.encode()),
                                          timeout=10)).keys
        except Exception:  # noqa: BLE001 - the job id is a nicety
            return
        by_sid: dict[str, str] = {}
        for k in keys:
            parts = k.decode(errors="replace").split("/", 2)
            if len(parts) == 3:
                by_sid.setdefault(parts[2], parts[1])
        for rec in recs:
            if rec["submission_id"] in by_sid:
                rec["job_id"] = by_sid[rec["submission_id"]]

    def logs_text(self, sid: str) -> str:
        self.get(sid)
        return self.logs[sid].text()

    async def tail(self, sid: str, offset: int, wait: float) -> dict[str, Any]:
        """New log bytes from ``offset``, waiting up to ``wait`` s for some;
        ``terminal`` once the job has ended and everything was read."""
        self.get(sid)
        jl = self.logs[sid]
        if offset >= jl.end and not jl.closed and wait > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(jl.changed.wait(), timeout=min(wait, 30.0))
        data, nxt = jl.read(offset)
        done = jl.closed and nxt >= jl.end
        return {"logs": data.decode(errors="replace"), "offset": nxt, "terminal": done,
                "status": self.records[sid]["status"]}

    async def stop(self, sid: str) -> bool:
        rec = self.get(sid)
        run = self.running.get(sid)
        if rec["status"] in C.TERMINAL or run is None:
            return False
        run.stopping = True
        if run.runner is not None:
            return await self._stop_runner(run)
        if run.proc is None:  # still setting up its runtime_env: cancel that
            if run.task is not None:
                run.task.cancel()
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(run.done.wait(), 5)
            return True
        _signal_group(run.proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(run.done.wait(), C.STOP_GRACE_SECONDS)
        except asyncio.TimeoutError:
            _signal_group(run.proc.pid, signal.SIGKILL)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(run.done.wait(), 5)
        return True

    async def _stop_runner(self, run: Running) -> bool:
        """Stop an entrypoint that runs in a runner actor: SIGTERM to its
        process group, SIGKILL after the grace period; an actor not placed
        yet is killed (the job ends STOPPED)."""
        try:
            await asyncio.wait_for(self.runners.signal(run.runner, signal.SIGTERM), 5)
            await asyncio.wait_for(run.done.wait(), C.STOP_GRACE_SECONDS)
            return True
        except Exception:  # noqa: BLE001 - not placed yet, gone, or past the grace period
            pass
        with contextlib.suppress(Exception):
            self.runners.kill(run.runner)  # its process group dies with it (PR_SET_PDEATHSIG)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(run.done.wait(), 10)
        return True

    async def delete(self, sid: str) -> bool:
        rec = self.get(sid)
        if rec["status"] not in C.TERMINAL:
            raise C.BadRequest(f"Job {sid!r} is {rec['status']}: it can only be deleted once it has ended "
                               "(stop it first).")
        async with self._lock:
            await self._forget(sid)
        return True

    async def _forget(self, sid: str) -> None:
        await self.gcs.KVDel(gpb.KVDelRequest(ns=C.KV_NS, key=(C.RECORD_PREFIX + sid).encode()), timeout=30)
        self.records.pop(sid, None)
        jl = self.logs.pop(sid, None)
        if jl is not None:
            jl.remove()

    async def _retain(self) -> None:
        finished = sorted((r for r in self.records.values() if r["status"] in C.TERMINAL),
                          key=lambda r: r["end_time"] or 0)
        for rec in finished[:max(0, len(finished) - self.max_finished)]:
            with contextlib.suppress(Exception):
                async with self._lock:
                    await self._forget(rec["submission_id"])

    async def shutdown(self) -> None:
        """The agent is stopping (``jray stop``): stop every running job."""
        await asyncio.gather(*(self.stop(sid) for sid, r in list(self.records.items())
                               if r["status"] not in C.TERMINAL), return_exceptions=True)
        if self.runners is not None:
            await self.runners.shutdown()

    # -- running one job -----------------------------------------------------------------
    async def _set(self, rec: dict[str, Any], **changes: Any) -> None:
        rec.update(changes)
        try:
            await self._save(rec)
        except Exception as e:  # noqa: BLE001 - the GCS is away longer than its retries: keep going in memory
            log.warning("could not save job %s: %s", rec["submission_id"], e)

    async def _run(self, sid: str, run: Running) -> None:
        rec, jl = self.records[sid], self.logs[sid]
        try:
            if C.wants_resources(rec):
                await self._run_elsewhere(sid, run, rec, jl)
                return
            try:
                env, cwd = await self._environment(rec)
            except asyncio.CancelledError:
                await self._set(rec, status=C.STOPPED, end_time=_now_ms(),
                                message="Job was stopped while its runtime_env was being set up.")
                return
            except Exception as e:  # noqa: BLE001 - any set-up failure fails the job, with its cause
                await self._set(rec, status=C.FAILED, end_time=_now_ms(), error_type="RUNTIME_ENV_SETUP_FAILURE",
                                message=f"The job's runtime_env could not be set up: {e}")
                return
            if run.stopping:
                await self._set(rec, status=C.STOPPED, end_time=_now_ms(), message="Job was stopped before it started.")
                return
            try:
                proc = await asyncio.create_subprocess_exec(
                    "/bin/sh", "-c", rec["entrypoint"], stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=cwd, env=env,
                    start_new_session=True)
            except OSError as e:
                await self._set(rec, status=C.FAILED, end_time=_now_ms(), error_type="JOB_ENTRYPOINT_COMMAND_START_ERROR",
                                message=f"The entrypoint could not be started: {e}")
                return
            run.proc = proc
            await self._set(rec, status=C.RUNNING, driver_pid=proc.pid, message="Job is currently running.")
            assert proc.stdout is not None
            while True:
                chunk = await proc.stdout.read(65536)
                if not chunk:
                    break
                if jl.write(chunk):
                    await self._set(rec, log_base=jl.old_start)
            rc = await proc.wait()
            self._finish(rec, jl, run, rc)
            await self._set(rec)
        except Exception as e:  # noqa: BLE001 - never leave a job RUNNING because of a bug here
            log.exception("job %s", sid)
            if rec["status"] not in C.TERMINAL:
                await self._set(rec, status=C.FAILED, end_time=_now_ms(), message=f"The job agent failed: {e}")
        finally:
            jl.close()
            run.done.set()
            self.running.pop(sid, None)
            if rec["job_id"] is None:
                await self._find_job_id(rec)
                if rec["job_id"] is not None:
                    await self._set(rec)
            await self._retain()

    def _driver_env(self, rec: dict[str, Any]) -> dict[str, str]:
        """What an entrypoint's environment gets from the agent wherever it runs."""
        env = dict(self.extra_env)
        env.update(JRAY_ADDRESS=self.gcs_address, JRAY_TOKEN=self.token, PYTHONUNBUFFERED="1",
                   JRAY_JOB_SUBMISSION_ID=rec["submission_id"],
                   JRAY_JOB_CONFIG_JSON=json.dumps({"runtime_env": rec["runtime_env"] or {},
                                                    "submission_id": rec["submission_id"],
                                                    "metadata": rec["metadata"]}))
        return env

    async def _run_elsewhere(self, sid: str, run: Running, rec: dict[str, Any], jl: JobLog) -> None:
        """A job with entrypoint resources: its entrypoint in a runner actor
        holding them (``jray.dashboard.entrypoints``)."""
        runners = self.runners
        await runners.connect(self.gcs_address, self.token)
        renv = {k: v for k, v in (rec["runtime_env"] or {}).items() if k != "excludes"}
        opts: dict[str, Any] = {"num_cpus": rec["entrypoint_num_cpus"] or 0, "max_restarts": 0,
                                "max_concurrency": 4, "name": f"job-{sid}"}
        if rec["entrypoint_num_gpus"]:
            opts["num_gpus"] = rec["entrypoint_num_gpus"]
        if rec["entrypoint_memory"]:
            opts["memory"] = rec["entrypoint_memory"]
        if rec["entrypoint_resources"]:
            opts["resources"] = dict(rec["entrypoint_resources"])
        if renv:
            opts["runtime_env"] = renv
        if run.stopping:
            await self._set(rec, status=C.STOPPED, end_time=_now_ms(), message="Job was stopped before it started.")
            return
        runner = run.runner = runners.launch(rec["entrypoint"], self._driver_env(rec), opts)
        try:
            try:
                where = await runners.where(runner)  # once placed (PENDING until a node has room)
            except C.RuntimeEnvSetupFailed as e:
                await self._set(rec, status=C.FAILED, end_time=_now_ms(), error_type="RUNTIME_ENV_SETUP_FAILURE",
                                message=f"The job's runtime_env could not be set up: {e}")
                return
            except Exception as e:  # noqa: BLE001 - killed by stop before it was placed, or could not start
                if run.stopping:
                    await self._set(rec, status=C.STOPPED, end_time=_now_ms(), message="Job was stopped before "
                                    "it started.")
                else:
                    await self._set(rec, status=C.FAILED, end_time=_now_ms(),
                                    error_type="JOB_ENTRYPOINT_COMMAND_START_ERROR",
                                    message=f"The entrypoint could not be started: {e}")
                return
            await self._set(rec, status=C.RUNNING, driver_pid=where["pid"], driver_node_ip=where["node_ip"],
                            message=f"Job is currently running (on node {where['node_ip']}).")
            rc: int | None = None
            try:
                async for item in runners.output(runner):
                    if isinstance(item, int):
                        rc = item
                    elif jl.write(item):
                        await self._set(rec, log_base=jl.old_start)
            except Exception as e:  # noqa: BLE001 - its node or worker died under it
                if not run.stopping:
                    await self._set(rec, status=C.FAILED, end_time=_now_ms(), error_type="JOB_SUPERVISOR_ACTOR_DIED",
                                    message=f"The node running the job's entrypoint was lost: {e}")
                    return
            self._finish(rec, jl, run, rc if rc is not None else -signal.SIGKILL)
            await self._set(rec)
        finally:
            with contextlib.suppress(Exception):
                runners.kill(runner)

    def _finish(self, rec: dict[str, Any], jl: JobLog, run: Running, rc: int) -> None:
        """The record's end from the entrypoint's exit status."""
        if run.stopping:
            rec.update(status=C.STOPPED, end_time=_now_ms(), driver_exit_code=rc,
                       message="Job was intentionally stopped.")
        elif rc == 0:
            rec.update(status=C.SUCCEEDED, end_time=_now_ms(), driver_exit_code=0, message="Job finished successfully.")
        else:
            how = f"exit code {rc}" if rc > 0 else f"signal {-rc} ({_signame(-rc)})"
            rec.update(status=C.FAILED, end_time=_now_ms(), driver_exit_code=rc, error_type="JOB_ENTRYPOINT_COMMAND_ERROR",
                       message=f"Job entrypoint command failed with {how}. Last available logs "
                               f"(truncated to {C.LOG_TAIL_IN_MESSAGE} chars):\n" + jl.tail_text(C.LOG_TAIL_IN_MESSAGE))

    async def _environment(self, rec: dict[str, Any]) -> tuple[dict[str, str], str | None]:
        """The entrypoint's environment and cwd: this agent's environment,
        the cluster's address and token, the job's config, and the
        runtime_env as a node sets it up for a worker."""
        env = dict(os.environ)
        for k in ("JRAY_ADDRESS", "RAY_ADDRESS", "JRAY_NAMESPACE", "JRAY_JOB_CONFIG_JSON"):
            env.pop(k, None)
        renv = rec["runtime_env"] or {}
        env.update(self._driver_env(rec))
        py_dir = os.path.dirname(sys.executable)  # `python` is the cluster's interpreter, as for its workers
        cwd = None
        setup = {k: v for k, v in renv.items() if k not in ("config", "excludes")}
        if setup:
            if self.env_agent is None:
                raise RuntimeError("this job agent cannot set up runtime_envs")
            ctx = (await self.env_agent.get_or_create(json.dumps(renv, sort_keys=True))).context
            env.update(ctx.env_vars)
            cwd = ctx.cwd
            if ctx.py_executable:
                py_dir = os.path.dirname(ctx.py_executable)
                env["VIRTUAL_ENV"] = os.path.dirname(py_dir)
        env["PATH"] = py_dir + os.pathsep + env.get("PATH", os.defpath)
        return env, cwd


def _public(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rec.items() if k != "log_base"}


def _signal_group(pid: int, sig: int) -> None:
    if pid <= 0:
        return
    with contextlib.suppress(OSError):
        os.killpg(pid, sig)


def _signame(n: int) -> str:
    try:
        return signal.Signals(n).name
    except ValueError:
        return "?"
