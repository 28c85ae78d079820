"""Starting and stopping the job agent (``jray start --head``, ``jray stop``)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from typing import Any

from jray._private import config
from jray._private.jobs import common as C


def agent_file(session_dir: str) -> str:
    return os.path.join(session_dir, "job_agent.json")


def start_agent(*, session_dir: str, gcs_address: str, token: str, host: str, port: int | None,
                watch_pid: int, dashboard: bool | None = None) -> dict[str, Any]:
    """Start the job agent of the cluster whose GCS is at ``gcs_address``;
    ``port`` None: 8265, or a free port when that one is taken.
    ``dashboard``: serve the head's dashboard pages too (None: when ``host``
    is loopback, where nothing off this machine reaches them). Returns its
    ready line: ``{"port", "pid", "http_address"}``; RuntimeError if it did
    not start."""
    from jray._private.node import _read_ready

    log = os.path.join(session_dir, "logs", "job_agent.log")
    cmd = [sys.executable, "-m", "jray.dashboard.agent", "--session-dir", session_dir, "--gcs-address", gcs_address,
           "--host", host, "--port", str(C.DEFAULT_HTTP_PORT if port is None else port),
           "--parent-pid", str(watch_pid), "--log", log]
    if port is None:
        cmd.append("--port-fallback")
    if dashboard or (dashboard is None and (host.startswith("127.") or host in ("localhost", "::1"))):
        cmd.append("--dashboard")
    proc = subprocess.Popen(cmd, env=dict(os.environ, JRAY_TOKEN=token), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        return _read_ready(proc, "job agent", log, config.STARTUP_TIMEOUT)
    except BaseException:
        with contextlib.suppress(OSError):
            proc.kill()
        raise


def agent_process(session_dir: str) -> Any:
    """The live job agent of ``session_dir`` (a psutil.Process), or None."""
    from jray._private.node import _is_daemon_of

    try:
        with open(agent_file(session_dir)) as f:
            pid = int(json.load(f)["pid"])
    except (OSError, ValueError, KeyError):
        return None
    return _is_daemon_of(pid, "jray.dashboard.agent", session_dir)


def stop_agent(session_dir: str, grace: float = 15.0) -> int:
    """SIGTERM the session's job agent (it stops its running jobs), SIGKILL
    after ``grace``; its pid, 0 if none ran."""
    import psutil

    p = agent_process(session_dir)
    if p is None:
        return 0
    with contextlib.suppress(psutil.Error):
        p.terminate()
        try:
            p.wait(grace)
        except psutil.TimeoutExpired:
            p.kill()
            p.wait(5)
    return int(p.pid)
