"""The stacks of the workers on this machine, on demand (Ray's ``ray stack``).

::

    jray stack                     # every worker of this machine: its task, then each thread's stack
    %jray stack                    # the same in a notebook
    from jray.util.stacks import dump_stacks
    for w in dump_stacks(): print(w["pid"], w["task"], w["stack"])

Each worker registered ``faulthandler`` on SIGUSR1 at start-up (its stacks
go to its log, ``<session>/logs/worker-*.log``). ``dump_stacks`` asks the
cluster which worker processes run on this machine (only registered workers
are signalled: a SIGUSR1 would end any other process), notes where each
one's log ends, sends the signal, and reads what was appended, with the task
each worker is running (``list_tasks``). Like ``ray stack`` (which uses
py-spy), it covers this machine's workers; run it on each node's machine
(``jray job submit -- jray stack`` reaches the head's).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from jray._private import node as _node


def _log_of(pid: int) -> str | None:
    try:
        path = os.readlink(f"/proc/{pid}/fd/2")
    except OSError:
        return None
    return path if os.path.isfile(path) else None


def dump_stacks(address: str | None = None, token: str | None = None, timeout: float = 3.0) -> list[dict[str, Any]]:
    """One entry per live worker process on this machine: ``pid``,
    ``worker_id``, ``task`` (the name of what it runs, "" when idle),
    ``task_id`` and ``stack`` (faulthandler's dump of every thread, most
    recent call first), or ``error`` when its stack could not be read."""
    from jray.util.state import list_tasks, list_workers

    local = _node.local_ip_addresses()
    workers = [w for w in list_workers(limit=0, detail=True, address=address, token=token)
               if w.get("is_alive") and w.get("worker_type") == "WORKER" and w.get("pid")
               and (w.get("ip") in local or str(w.get("ip", "")).startswith("127."))]
    running = {t.get("worker_pid"): t for t in list_tasks(filters=[("state", "=", "RUNNING")], limit=0,
                                                         detail=True, address=address, token=token)}
    out: list[dict[str, Any]] = []
    marks: dict[int, tuple[str, int]] = {}
    for w in workers:
        pid = int(w["pid"])
        t = running.get(pid) or {}
        entry = {"pid": pid, "worker_id": w.get("worker_id", ""), "task": t.get("func_or_class_name") or t.get("name")
                 or "", "task_id": t.get("task_id", ""), "stack": ""}
        out.append(entry)
        log = _log_of(pid)
        if log is None:
            entry["error"] = "its log cannot be read here (another user's process, or it has exited)"
            continue
        marks[pid] = (log, os.path.getsize(log))
        try:
            os.kill(pid, signal.SIGUSR1)
        except OSError as e:
            entry["error"] = f"could not signal it: {e}"
            marks.pop(pid)
    deadline = time.monotonic() + timeout
    pending = dict(marks)
    while pending and time.monotonic() < deadline:
        time.sleep(0.05)
        for pid, (log, start) in list(pending.items()):
            size = os.path.getsize(log)
            if size > start:
                time.sleep(0.05)  # let it finish writing every thread
                if os.path.getsize(log) == size:
                    pending.pop(pid)
    for entry in out:
        mark = marks.get(entry["pid"])
        if mark is None:
            continue
        log, start = mark
        with open(log, "rb") as f:
            f.seek(start)
            text = f.read(1 << 20).decode("utf-8", "replace")
        dump = text[text.find("Thread 0x"):] if "Thread 0x" in text else text
        if not dump.strip():
            entry["error"] = f"no stack dump within {timeout:g} s"
        entry["stack"] = dump.rstrip()
    return out


def format_stacks(entries: list[dict[str, Any]]) -> str:
    if not entries:
        return "No jray worker runs on this machine."
    parts = []
    for e in entries:
        what = f"running {e['task']} (task {e['task_id'][:16]})" if e["task"] else "idle"
        head = f"--- worker pid {e['pid']} ({what})"
        parts.append(head + "\n" + (e["stack"] or f"({e.get('error', 'no stack')})"))
    return "\n\n".join(parts)
