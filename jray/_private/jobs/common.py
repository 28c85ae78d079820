"""What the job agent, the SDK and the state API share."""

from __future__ import annotations

import re
from typing import Any

from jray._private.config import _env

KV_NS = "jobs"
RECORD_PREFIX = "job/"  # job/<submission id> -> the record (JSON)
DRIVER_PREFIX = "driver/"  # driver/<job id hex>/<submission id> -> b"" (written by the job's driver)
AGENT_ADDRESS_KEY = "agent_address"  # "host:port" of the jobs HTTP API

DEFAULT_HTTP_PORT = 8265  # Ray's dashboard port
# The entrypoint's log: past this size the file is rotated (one old file is
# kept), so a job's logs on disk stay under about twice this.
LOG_MAX_BYTES = int(_env("JOB_LOG_MAX_BYTES", 16 * 1024 * 1024))
# Finished jobs kept (records and logs); the oldest finished go first.
MAX_FINISHED_JOBS = int(_env("JOB_MAX_FINISHED", 200))
# stop: SIGTERM, then SIGKILL after this long (Ray's RAY_JOB_STOP_WAIT_TIME_S).
STOP_GRACE_SECONDS = _env("JOB_STOP_GRACE_SECONDS", 3.0)
ENTRYPOINT_MAX_CHARS = 64 * 1024
LOG_TAIL_IN_MESSAGE = 1000  # characters of the log's end in a FAILED job's message

PENDING, RUNNING, STOPPED, SUCCEEDED, FAILED = "PENDING", "RUNNING", "STOPPED", "SUCCEEDED", "FAILED"
TERMINAL = frozenset({STOPPED, SUCCEEDED, FAILED})

_SUBMISSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


class BadRequest(ValueError):
    """Input the agent refuses (HTTP 400)."""


class NotFound(KeyError):
    """An unknown submission id (HTTP 404)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


def check_submission_id(sid: Any) -> str:
    if not isinstance(sid, str) or not _SUBMISSION_ID.match(sid):
        raise BadRequest(f"submission_id must be 1-128 characters of letters, digits, '_', '-' and '.' "
                         f"(starting with a letter or digit), got {sid!r}")
    return sid


def check_submit(body: Any) -> dict[str, Any]:
    """The POST /api/jobs/ body, checked; BadRequest says what is wrong."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    known = {"entrypoint", "submission_id", "job_id", "runtime_env", "metadata", "entrypoint_num_cpus",
             "entrypoint_num_gpus", "entrypoint_memory", "entrypoint_resources"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise BadRequest(f"unknown field(s) {unknown}; known: {sorted(known)}")
    ep = body.get("entrypoint")
    if not isinstance(ep, str) or not ep.strip():
        raise BadRequest("entrypoint must be a non-empty string (the shell command to run)")
    if len(ep) > ENTRYPOINT_MAX_CHARS:
        raise BadRequest(f"entrypoint is longer than {ENTRYPOINT_MAX_CHARS} characters")
    out: dict[str, Any] = {"entrypoint": ep}
    sid = body.get("submission_id") or body.get("job_id")
    out["submission_id"] = check_submission_id(sid) if sid is not None else None
    env = body.get("runtime_env") or {}
    if not isinstance(env, dict):
        raise BadRequest("runtime_env must be a JSON object")
    for field in ("working_dir", "py_modules"):
        v = env.get(field)
        vals = v if isinstance(v, list) else [v] if v else []
        for x in vals:
            if isinstance(x, str) and "://" not in x:
                raise BadRequest(f"runtime_env {field} {x!r} is a local path: the submitting client uploads "
                                 "it first (jray job submit and JobSubmissionClient do)")
    out["runtime_env"] = env
    md = body.get("metadata") or {}
    if not isinstance(md, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in md.items()):
        raise BadRequest("metadata must be a JSON object of strings to strings")
    out["metadata"] = md
    for field in ("entrypoint_num_cpus", "entrypoint_num_gpus", "entrypoint_memory"):
        v = body.get(field)
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0):
            raise BadRequest(f"{field} must be a number >= 0, got {v!r}")
        out[field] = v or 0
    res = body.get("entrypoint_resources") or {}
    if not isinstance(res, dict) or not all(isinstance(k, str) and isinstance(v, (int, float)) and v >= 0
                                            for k, v in res.items()):
        raise BadRequest("entrypoint_resources must be a JSON object of resource names to numbers >= 0")
    if any(k in ("CPU", "GPU", "memory") for k in res):
        raise BadRequest("entrypoint_resources: use entrypoint_num_cpus/entrypoint_num_gpus/entrypoint_memory "
                         "for CPU, GPU and memory")
    out["entrypoint_resources"] = res
    return out


class RuntimeEnvSetupFailed(Exception):
    """A job's runtime_env could not be set up where its entrypoint runs."""


RUNNER_NAMESPACE = "_jray_jobs"  # the agent's driver and its EntrypointRunner actors


def wants_resources(req: dict[str, Any]) -> bool:
    return bool(req.get("entrypoint_num_cpus") or req.get("entrypoint_num_gpus") or req.get("entrypoint_memory")
                or any(req.get("entrypoint_resources", {}).values()))


def utf8_safe_end(data: bytes) -> int:
    """The length of ``data``'s longest prefix that does not end inside a
    UTF-8 sequence (so a chunk of a log decodes without a broken character)."""
    n = len(data)
    for back in range(1, min(4, n) + 1):
        b = data[n - back]
        if b < 0x80:
            return n
        if b >= 0xC0:  # a lead byte: complete only if its sequence is all here
            need = 2 if b < 0xE0 else 3 if b < 0xF0 else 4
            return n if back >= need else n - back
    return n
