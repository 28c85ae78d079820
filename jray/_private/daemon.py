"""What every daemon (GCS, raylet, worker) does at start: log to a file,
announce readiness on stdout as one JSON line, and exit when the process
that started it is gone (so a killed driver leaks nothing)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import threading
import time
from typing import Any


def setup_logging(log_path: str | None, level: int = logging.DEBUG if os.environ.get("JRAY_DEBUG") else logging.INFO) -> None:
    handlers: list[logging.Handler] = []
    if log_path:
        handlers.append(logging.FileHandler(log_path))
    else:
        handlers.append(logging.StreamHandler(sys.stderr))
    logging.basicConfig(level=level, handlers=handlers,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def announce(info: dict[str, Any], log_path: str | None) -> None:
    """Print the ready line, then point fd 1/2 at the log file."""
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()
    if log_path:
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    else:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)


def watch_parent(parent_pid: int, on_gone: Any, interval: float = 0.5) -> None:
    """Call ``on_gone`` (from a thread) once ``parent_pid`` has exited."""
    if parent_pid <= 0:
        return

    def run() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent_pid and not _alive(parent_pid):
                on_gone()
                return

    threading.Thread(target=run, name="jray-parent-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped) is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def install_signal_handlers(loop: asyncio.AbstractEventLoop, stop: Any) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop)
        except (NotImplementedError, RuntimeError):
            pass
