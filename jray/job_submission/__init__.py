"""Ray's Jobs SDK: submit programs to a cluster and follow them from anywhere.

    from jray.job_submission import JobSubmissionClient, JobStatus

    client = JobSubmissionClient()          # the cluster jray.init() would find
    sid = client.submit_job(entrypoint="python train.py", runtime_env={"working_dir": "./"})
    async for lines in client.tail_job_logs(sid):
        print(lines, end="")
    assert client.get_job_status(sid) == JobStatus.SUCCEEDED

The client talks to the job agent's REST API on the head (``/api/jobs/``,
the cluster token as ``Authorization: Bearer``). ``address``: the jobs API
as ``http://HOST:PORT``; or a GCS address ``HOST:PORT`` (``jray://`` too),
whose jobs API the client looks up in the cluster's KV; or None: as
``jray.init()`` finds the cluster (``JRAY_ADDRESS``, else the address file of
``jray start --head`` on this machine). The token: ``JRAY_TOKEN``, else the
address file's. A local ``working_dir``/``py_modules`` is packed and
uploaded to the head's package store from this machine before the job is
submitted, so the submitting machine need not be part of the cluster.
"""

from __future__ import annotations

import asyncio
import enum
import http.client
import json
import os
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, fields
from typing import Any


class JobStatus(str, enum.Enum):
    """Ray's job statuses."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    def __str__(self) -> str:
        return f"{self.value}"

    def is_terminal(self) -> bool:
        return self in (JobStatus.STOPPED, JobStatus.SUCCEEDED, JobStatus.FAILED)


class JobType(str, enum.Enum):
    SUBMISSION = "SUBMISSION"
    DRIVER = "DRIVER"


@dataclass
class JobDetails:
    """One submitted job, as Ray's ``JobDetails`` (times in ms since the epoch)."""

    submission_id: str | None = None
    status: JobStatus = JobStatus.PENDING
    entrypoint: str = ""
    type: JobType = JobType.SUBMISSION
    job_id: str | None = None
    message: str | None = None
    error_type: str | None = None
    start_time: int | None = None
    end_time: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    runtime_env: dict[str, Any] = field(default_factory=dict)
    driver_info: Any = None
    driver_exit_code: int | None = None
    driver_pid: int | None = None
    driver_node_ip: str | None = None
    entrypoint_num_cpus: float | None = None
    entrypoint_num_gpus: float | None = None
    entrypoint_memory: int | None = None
    entrypoint_resources: dict[str, float] | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JobDetails:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        kw["status"] = JobStatus(kw.get("status", "PENDING"))
        kw["type"] = JobType(kw.get("type", "SUBMISSION"))
        return cls(**kw)

    def dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["status"], out["type"] = self.status.value, self.type.value
        return out


JobInfo = JobDetails  # Ray's older name


class JobRequestError(RuntimeError):
    """The jobs API answered an error (a ``RuntimeError``, as Ray's client
    raises): ``status_code`` is its HTTP status (404: no such job), ``reason``
    the API's own message."""

    def __init__(self, status_code: int, reason: str) -> None:
        super().__init__(f"Request failed with status code {status_code}: {reason}")
        self.status_code = status_code
        self.reason = reason


def _is_http(address: str) -> bool:
    return address.startswith(("http://", "https://"))


def resolve_address(address: str | None) -> tuple[str, str, str | None]:
    """(jobs API base URL, token, GCS address or None) of the cluster ``address`` names."""
    from jray._private import node as _node
    from jray._private import tls

    info = _node.read_address_file()
    if address is None:
        address = os.environ.get("JRAY_ADDRESS") or os.environ.get("RAY_ADDRESS") or None
    token = os.environ.get("JRAY_TOKEN")
    if address is None or address == "auto":
        if info is None:
            raise ConnectionError("No jray cluster found: start one with 'jray start --head', or set JRAY_ADDRESS "
                                  "and JRAY_TOKEN (printed by 'jray start --head'), or pass address=.")
        tls.adopt(info)
        address, token = info["gcs_address"], token or info["token"]
    address = address.strip().rstrip("/")
    if _is_http(address):
        if token is None and info is not None:
            token = info["token"]
        if token is None:
            raise ConnectionError(f"No token for the jobs API at {address}: set JRAY_TOKEN.")
        return address, token, None
    gcs = address.removeprefix("jray://").removeprefix("ray://")
    if info is not None and info.get("gcs_address") == gcs:
        tls.adopt(info)
        token = token or info["token"]
    token = token or _node.STARTED_HERE.get(gcs)
    if token is None:
        raise ConnectionError(f"No token for the cluster at {gcs}: set JRAY_TOKEN (printed by 'jray start --head').")
    from jray._private.jobs.client import agent_address

    scheme = "https://" if tls.current() is not None else "http://"  # the agent speaks TLS when the cluster does
    return scheme + agent_address(gcs, token), token, gcs


class JobSubmissionClient:
    """Submit jobs to a jray cluster and follow them (Ray's ``JobSubmissionClient``)."""

    def __init__(self, address: str | None = None, create_cluster_if_needed: bool = False,
                 cookies: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None,
                 headers: dict[str, Any] | None = None, verify: Any = None, *, timeout: float = 60.0) -> None:
        self._base, self._token, self._gcs = resolve_address(address)
        url = urllib.parse.urlsplit(self._base)
        self._https = url.scheme == "https"
        self._host, self._port = url.hostname or "127.0.0.1", url.port or (443 if self._https else 80)
        self._headers = {str(k): str(v) for k, v in (headers or {}).items()}
        self._default_metadata = {str(k): str(v) for k, v in (metadata or {}).items()}
        self._timeout = timeout
        self._version = self._request("GET", "/api/version")

    @property
    def address(self) -> str:
        return self._base

    # -- HTTP ---------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: Any = None, timeout: float | None = None) -> Any:
        if self._https:
            from jray._private import tls

            cfg = tls.current()
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout or self._timeout,
                context=tls.https_context(cfg) if cfg is not None else None)
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout or self._timeout)
        headers = {**self._headers, "Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except OSError as e:
            raise ConnectionError(f"Could not reach the jobs API at {self._base}: {e}") from None
        finally:
            conn.close()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = {"error": raw[:500].decode(errors="replace")}
        if resp.status != 200:
            msg = payload.get("error") if isinstance(payload, dict) else payload
            if resp.status == 401:
                raise PermissionError(f"The jobs API at {self._base} refused the request: {msg}")
            raise JobRequestError(resp.status, str(msg))
        return payload

    @staticmethod
    def _job_path(job_id: str, suffix: str = "") -> str:
        return f"/api/jobs/{urllib.parse.quote(job_id, safe='')}{suffix}"

    # -- the API ------------------------------------------------------------------------
    def submit_job(self, *, entrypoint: str, job_id: str | None = None, runtime_env: dict[str, Any] | None = None,
                   metadata: dict[str, str] | None = None, submission_id: str | None = None,
                   entrypoint_num_cpus: float | None = None, entrypoint_num_gpus: float | None = None,
                   entrypoint_memory: int | None = None, entrypoint_resources: dict[str, float] | None = None) -> str:
        """Submit ``entrypoint`` (a shell command); its submission id."""
        env = self._upload(runtime_env or {})
        body: dict[str, Any] = {"entrypoint": entrypoint, "runtime_env": env,
                                "metadata": {**self._default_metadata, **(metadata or {})}}
        if submission_id or job_id:
            body["submission_id"] = submission_id or job_id
        for k, v in (("entrypoint_num_cpus", entrypoint_num_cpus), ("entrypoint_num_gpus", entrypoint_num_gpus),
                     ("entrypoint_memory", entrypoint_memory), ("entrypoint_resources", entrypoint_resources)):
            if v is not None:
                body[k] = v
        return str(self._request("POST", "/api/jobs/", body)["submission_id"])

    def _upload(self, runtime_env: dict[str, Any]) -> dict[str, Any]:
        """``runtime_env`` with its local paths packed and uploaded to the head."""
        from jray._private.runtime_env import resolve
        from jray._private.runtime_env.validation import validate

        if not runtime_env:
            return {}
        env = validate(runtime_env)  # a missing or too large working_dir fails here, before anything is sent
        resolved, pkgs = resolve.package_local(env)
        if pkgs:
            gcs = self._gcs or str(self._version.get("gcs_address") or "")
            if not gcs:
                raise RuntimeError("the jobs API did not say where its cluster's GCS is; cannot upload packages")
            from jray._private.jobs.client import upload_packages

            upload_packages(gcs, self._token, pkgs)
        return resolved

    def get_job_info(self, job_id: str) -> JobDetails:
        return JobDetails.from_dict(self._request("GET", self._job_path(job_id)))

    def get_job_status(self, job_id: str) -> JobStatus:
        return self.get_job_info(job_id).status

    def list_jobs(self) -> list[JobDetails]:
        return [JobDetails.from_dict(d) for d in self._request("GET", "/api/jobs/")]

    def get_job_logs(self, job_id: str) -> str:
        return str(self._request("GET", self._job_path(job_id, "/logs"))["logs"])

    def stop_job(self, job_id: str) -> bool:
        return bool(self._request("POST", self._job_path(job_id, "/stop"), timeout=self._timeout + 30)["stopped"])

    def delete_job(self, job_id: str) -> bool:
        return bool(self._request("DELETE", self._job_path(job_id))["deleted"])

    def get_job_logs_from(self, job_id: str, offset: int = 0, wait: float = 0.0) -> dict[str, Any]:
        """jray's addition: the job's log text from byte ``offset`` on (at
        most 1 MiB a call), waiting up to ``wait`` s for some. ``{"logs",
        "offset"}`` (where the next read starts), ``"terminal"`` (the job has
        ended and everything was read) and ``"status"``. What a follower that
        polls calls (the Lab sidebar's log panel, through the server)."""
        path = self._job_path(job_id, f"/logs/tail?offset={int(offset)}&wait={wait}")
        return dict(self._request("GET", path, timeout=wait + self._timeout))

    def _tail_once(self, job_id: str, offset: int, wait: float) -> dict[str, Any]:
        return self.get_job_logs_from(job_id, offset, wait)

    def follow_logs(self, job_id: str, poll: float = 10.0) -> Iterator[str]:
        """The job's log text as it comes, until the job has ended (blocking)."""
        offset = 0
        while True:
            r = self._tail_once(job_id, offset, poll)
            offset = int(r["offset"])
            if r["logs"]:
                yield r["logs"]
            if r["terminal"]:
                return

    async def tail_job_logs(self, job_id: str) -> AsyncIterator[str]:
        """Ray's async iterator over the job's log text, until the job has ended."""
        offset = 0
        while True:
            r = await asyncio.to_thread(self._tail_once, job_id, offset, 10.0)
            offset = int(r["offset"])
            if r["logs"]:
                yield r["logs"]
            if r["terminal"]:
                return

    def wait_until_status(self, job_id: str, statuses: Any, timeout: float = 60.0) -> JobStatus:
        """Poll until the job is in one of ``statuses`` (a helper; Ray's tests have one like it)."""
        want = {JobStatus(s) for s in statuses}
        deadline = time.monotonic() + timeout
        while True:
            st = self.get_job_status(job_id)
            if st in want or time.monotonic() >= deadline:
                return st
            time.sleep(0.1)


__all__ = ["JobDetails", "JobInfo", "JobRequestError", "JobStatus", "JobSubmissionClient", "JobType"]
