"""A node's log files, served by its raylet (``ListLogs``, ``GetLog``).

Every process of a node writes into the session's ``logs/`` directory (nodes
started on one machine share it): the GCS (``gcs.log``), each raylet
(``raylet-<ns>.log``), the worker zygote, runtime_env set-ups, and each
worker ``worker-<ns>.log`` (its stdout and stderr: what its tasks print, its
warnings, stack dumps). The pool names a worker's file when it starts it
(``worker_pool.py``); ``WorkerLogs`` keeps which file belongs to which pid
and worker id, for workers that exited too (a bounded number), so a task's
or an actor's log is found from the worker its state row names.

Names are confined to the directory: a name must be relative, without
``..``, and resolve (symlinks followed) inside it; anything else is refused
with ``LogError`` saying why, before any file is opened.
"""

from __future__ import annotations

import fnmatch
import os
from collections import OrderedDict
from dataclasses import dataclass

MAX_BYTES = 4 * 1024 * 1024  # one reply's data at most
TAIL_SCAN_BLOCK = 64 * 1024
REMEMBERED_WORKERS = 10_000  # log names of workers kept (those alive, and the latest that exited)


class LogError(ValueError):
    """A request for a log that cannot be answered; ``not_found``: the file or
    worker is unknown (else the request itself is wrong)."""

    def __init__(self, message: str, not_found: bool = False) -> None:
        super().__init__(message)
        self.not_found = not_found


@dataclass
class WorkerLog:
    filename: str
    pid: int
    worker_id: bytes = b""
    alive: bool = True


class WorkerLogs:
    """Which log file is which worker's, by pid and by worker id."""

    def __init__(self, limit: int = REMEMBERED_WORKERS) -> None:
        self.limit = limit
        self.by_file: OrderedDict[str, WorkerLog] = OrderedDict()
        self.by_pid: dict[int, WorkerLog] = {}
        self.by_id: dict[bytes, WorkerLog] = {}

    def started(self, filename: str, pid: int) -> None:
        """A worker with ``pid`` writes ``filename`` (a pid reused later points at the newer file)."""
        rec = WorkerLog(os.path.basename(filename), pid)
        self.by_file[rec.filename] = rec
        self.by_pid[pid] = rec
        while len(self.by_file) > self.limit:
            _, old = self.by_file.popitem(last=False)
            if self.by_pid.get(old.pid) is old:
                del self.by_pid[old.pid]
            if old.worker_id and self.by_id.get(old.worker_id) is old:
                del self.by_id[old.worker_id]

    def registered(self, pid: int, worker_id: bytes) -> None:
        rec = self.by_pid.get(pid)
        if rec is None:  # registered before its start was noted here: its stdout is its log
            try:
                path = os.readlink(f"/proc/{pid}/fd/1")
            except OSError:
                path = ""
            if os.path.basename(path).startswith("worker-") and path.endswith(".log"):
                self.started(path, pid)
                rec = self.by_pid.get(pid)
        if rec is not None and worker_id:
            rec.worker_id = worker_id
            self.by_id[worker_id] = rec

    def exited(self, pid: int) -> None:
        rec = self.by_pid.get(pid)
        if rec is not None:
            rec.alive = False

    def find(self, pid: int = 0, worker_id: bytes = b"") -> WorkerLog | None:
        """By worker id first (pids are reused), else by pid."""
        if worker_id:
            rec = self.by_id.get(worker_id)
            if rec is not None or not pid:
                return rec
        return self.by_pid.get(pid) if pid else None


def check_name(filename: str) -> str:
    """``filename`` if it is a plain relative name; LogError otherwise."""
    if not filename:
        raise LogError("no log file named: give a filename (see list_logs), a pid, a task id or an actor id")
    if "\x00" in filename:
        raise LogError(f"bad log file name {filename!r}: it contains a NUL byte")
    if os.path.isabs(filename) or filename.startswith("~"):
        raise LogError(f"bad log file name {filename!r}: an absolute path; log files are named relative "
                       "to the node's logs directory (see list_logs)")
    if ".." in filename.replace("\\", "/").split("/"):
        raise LogError(f"bad log file name {filename!r}: '..' is not allowed; log files are named relative "
                       "to the node's logs directory (see list_logs)")
    return filename


class LogDir:
    """The files of one logs directory, read safely."""

    def __init__(self, path: str) -> None:
        self.path = os.path.realpath(path)

    def resolve(self, filename: str) -> str:
        """The file's path, checked to lie inside the directory (symlinks followed)."""
        path = os.path.realpath(os.path.join(self.path, check_name(filename)))
        if os.path.commonpath([path, self.path]) != self.path or path == self.path:
            raise LogError(f"bad log file name {filename!r}: it resolves outside the node's logs directory")
        if not os.path.isfile(path):
            raise LogError(f"no log file {filename!r} in {self.path} on this node (see list_logs)", not_found=True)
        return path

    def list(self, glob_filter: str = "") -> list[tuple[str, int, float]]:
        """(name relative to the directory, size, mtime) of the files whose name
        matches ``glob_filter`` (fnmatch; "" or "*": all), sorted by name."""
        pattern = glob_filter or "*"
        out = []
        for root, dirs, files in os.walk(self.path):
            dirs.sort()
            for f in files:
                full = os.path.join(root, f)
                rel = os.path.relpath(full, self.path)
                if not (fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(f, pattern)):
                    continue
                try:
                    st = os.stat(full)
                except OSError:
                    continue  # gone meanwhile
                out.append((rel, int(st.st_size), float(st.st_mtime)))
        return sorted(out)

    def read(self, filename: str, *, tail: int = -1, offset: int = -1,
             max_bytes: int = MAX_BYTES) -> tuple[bytes, int, int]:
        """(data, offset where it ends, file size): the last ``tail`` lines
        (``offset`` < 0; ``tail`` < 0: from the start), or the bytes from
        ``offset``; at most ``max_bytes`` (the newest of a tail)."""
        path = self.resolve(filename)
        max_bytes = max_bytes if 0 < max_bytes <= MAX_BYTES else MAX_BYTES
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if offset < 0 and tail >= 0:
                start = _tail_start(f, size, tail, max_bytes)
            else:
                start = min(max(offset, 0), size)
            end = min(size, start + max_bytes)
            f.seek(start)
            data = f.read(end - start)
        return data, start + len(data), size


def _tail_start(f: object, size: int, lines: int, max_bytes: int) -> int:
    """Where the last ``lines`` lines of a file of ``size`` bytes start (a
    last line without its newline counts), no further back than ``max_bytes``."""
    if lines == 0:
        return size
    floor = max(0, size - max_bytes)
    pos = size
    seen = 0
    skip_last_newline = True
    while pos > floor:
        step = min(TAIL_SCAN_BLOCK, pos - floor)
        pos -= step
        f.seek(pos)  # type: ignore[attr-defined]
        block = f.read(step)  # type: ignore[attr-defined]
        i = len(block)
        while True:
            i = block.rfind(b"\n", 0, i)
            if i < 0:
                break
            if skip_last_newline and pos + i == size - 1:
                skip_last_newline = False  # the file's final newline ends the last line
                continue
            skip_last_newline = False
            seen += 1
            if seen == lines:
                return pos + i + 1
        skip_last_newline = False
    return floor
