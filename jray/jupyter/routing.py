"""Worker output into the output area of the cell that caused it.

Every cell run gets a token (``cell_started``); the driver's CoreWorker
stamps it on the tasks and actor calls submitted while that cell runs
(``root_task_override``), and workers carry it on every line they forward,
through nested tasks. The router keeps token -> the cell's parent message
and writes each line with that parent, so output printed after the cell
finished still lands in its own cell, never in the one running now
(ipykernel records parents per message; output sent with a parent lands in
that parent's cell).

Writing happens on the CoreWorker's loop thread. With ipykernel's
per-thread parents (``set_thread_parent`` on its streams and display
publisher) text goes through the kernel's own streams, in order with the
cell's local prints; with older kernels output for an earlier cell is sent
as a message directly, after flushing the streams.
"""

from __future__ import annotations

import html
import logging
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from jray.jupyter import wire

logger = logging.getLogger(__name__)

# Cells remembered for late output (oldest forgotten first).
MAX_CELLS = 2000
# Lines one cell's tasks may print before the rest is dropped (a flood of
# output freezes a notebook's front end).
MAX_LINES_PER_CELL = int(os.environ.get("JRAY_NOTEBOOK_MAX_LINES", "20000"))

NO_PREFIX = ""


class OutputRouter:
    """The CoreWorker's ``log_sink`` inside IPython."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.kernel = getattr(shell, "kernel", None)
        self._lock = threading.Lock()
        self._cells: OrderedDict[bytes, dict[str, Any] | None] = OrderedDict()
        self._lines: dict[bytes, int] = {}
        self._labels: dict[bytes, str] = {}
        self._captures: dict[bytes, list[tuple[str, Any]]] = {}
        self._bars: dict[str, str] = {}  # remote bar id -> display id
        self.current: bytes = b""
        # The kernel's own streams and display publisher: output for an earlier cell
        # bypasses whatever the running cell redirected (%%capture, redirect_stdout).
        self._kernel_out = {n: s for n in ("stdout", "stderr") if hasattr(s := getattr(sys, n), "pub_thread")}
        self._kernel_pub = getattr(shell, "display_pub", None)

    # -- cells -----------------------------------------------------------------
    def cell_started(self, token: bytes) -> None:
        """Main thread, before a cell runs: remember its parent message."""
        with self._lock:
            self._cells[token] = self._current_parent()
            self._lines[token] = 0
            while len(self._cells) > MAX_CELLS:
                old, _ = self._cells.popitem(last=False)
                self._lines.pop(old, None)
            self.current = token

    def _current_parent(self) -> dict[str, Any] | None:
        if self.kernel is None:
            return None
        get_parent = getattr(self.shell, "get_parent", None)
        parent = get_parent() if get_parent is not None else getattr(self.shell, "parent_header", None)
        return dict(parent) if parent else None

    # -- per task presentation ----------------------------------------------------
    def label(self, task_id: bytes, label: str) -> None:
        """Show ``task_id``'s lines as ``(label pid=N)``; ``NO_PREFIX`` prints them bare."""
        self._labels[task_id] = label

    def capture(self, task_id: bytes) -> list[tuple[str, Any]]:
        """Keep ``task_id``'s output instead of showing it (to show it grouped later)."""
        entries: list[tuple[str, Any]] = []
        self._captures[task_id] = entries
        return entries

    def forget(self, task_id: bytes) -> None:
        self._labels.pop(task_id, None)
        self._captures.pop(task_id, None)

    # -- the sink (CoreWorker loop thread) -------------------------------------------
    def __call__(self, batch: Any) -> None:
        try:
            self._route(batch)
        except Exception:  # noqa: BLE001 - output must never break the engine
            logger.debug("routing worker output failed", exc_info=True)

    def _route(self, batch: Any) -> None:
        out: list[tuple[dict[str, Any] | None, str, Any]] = []  # (parent, kind, payload)
        for line in batch.lines:
            msg = wire.decode(line.text)
            captured = self._captures.get(line.task_id)
            if captured is not None:
                captured.append(("msg", msg) if msg is not None else
                                ("stderr" if line.is_err else "stdout", line.text))
                continue
            root = line.root_task_id
            with self._lock:
                known = root in self._cells
                parent = self._cells[root] if known else self._cells.get(self.current)
                if msg is None and known:
                    n = self._lines[root] = self._lines[root] + 1
                    if n > MAX_LINES_PER_CELL:
                        if n == MAX_LINES_PER_CELL + 1:
                            out.append((parent, "stderr", f"[jray] more than {MAX_LINES_PER_CELL} lines of task "
                                        "output in this cell: the rest is dropped (JRAY_NOTEBOOK_MAX_LINES).\n"))
                        continue
            if msg is not None:
                out.append((parent, "msg", msg))
                continue
            label = self._labels.get(line.task_id)
            if label is None:
                label = line.prefix
            text = f"({label} pid={batch.pid}) {line.text}\n" if label else f"{line.text}\n"
            out.append((parent, "stderr" if line.is_err else "stdout", text))
        self._emit_all(out)

    def _emit_all(self, items: list[tuple[dict[str, Any] | None, str, Any]]) -> None:
        # Coalesce consecutive text for the same cell and stream into one message.
        pending: tuple[dict[str, Any] | None, str, list[str]] | None = None
        for parent, kind, payload in items:
            if kind != "msg" and pending is not None and pending[0] is parent and pending[1] == kind:
                pending[2].append(payload)
                continue
            if pending is not None:
                self.write(pending[0], pending[1], "".join(pending[2]))
                pending = None
            if kind == "msg":
                self.show(parent, payload)
            else:
                pending = (parent, kind, [payload])
        if pending is not None:
            self.write(pending[0], pending[1], "".join(pending[2]))

    # -- writing -----------------------------------------------------------------------
    def write(self, parent: dict[str, Any] | None, name: str, text: str) -> None:
        """Write text to stdout/stderr of the cell ``parent``."""
        if parent is None or self.kernel is None:
            stream = sys.stderr if name == "stderr" else sys.stdout
            stream.write(text)
            stream.flush()
            return
        running = parent is self._cells.get(self.current)
        stream = getattr(sys, name) if running else self._kernel_out.get(name)
        set_parent = getattr(stream, "set_thread_parent", None)
        if stream is not None and set_parent is not None:
            token = set_parent(parent)
            try:
                stream.write(text)
            finally:
                stream.reset_thread_parent(token)
        elif running and stream is not None:  # the running cell's own (maybe captured) stream
            stream.write(text)
        else:  # a kernel without per-thread parents: send the message ourselves
            self._flush_streams()
            self._send(parent, "stream", {"name": name, "text": text}, f"stream.{name}")

    def show(self, parent: dict[str, Any] | None, msg: dict[str, Any]) -> None:
        """Show a rich message from remote code (see ``wire``) in the cell ``parent``."""
        kind = msg.get("kind")
        if kind == "progress":
            self._show_progress(parent, msg)
            return
        if kind != "display":
            return
        data = msg.get("data") or {}
        if parent is None or self.kernel is None:
            text = data.get("text/plain")
            if text:
                self.write(None, "stdout", f"{text}\n")
            return
        transient = {"display_id": msg["display_id"]} if msg.get("display_id") else {}
        self.publish(parent, data, msg.get("metadata") or {}, transient, bool(msg.get("update")))

    def publish(self, parent: dict[str, Any], data: dict[str, Any], metadata: dict[str, Any],
                transient: dict[str, Any], update: bool) -> None:
        running = parent is self._cells.get(self.current)
        pub = self.shell.display_pub if running else self._kernel_pub
        set_parent = getattr(pub, "set_thread_parent", None)
        if pub is not None and set_parent is not None:
            token = set_parent(parent)
            try:
                pub.publish(data=data, metadata=metadata, transient=transient, update=update)
            finally:
                pub.reset_thread_parent(token)
        elif running and pub is not None:
            pub.publish(data=data, metadata=metadata, transient=transient, update=update)
        else:
            self._flush_streams()
            self._send(parent, "update_display_data" if update else "display_data",
                       {"data": data, "metadata": metadata, "transient": transient}, "display_data")

    def _flush_streams(self) -> None:
        # What the cells printed so far goes out before a message sent around the streams.
        for stream in self._kernel_out.values():
            stream.flush()

    def _send(self, parent: dict[str, Any], msg_type: str, content: dict[str, Any], topic: str) -> None:
        k: Any = self.kernel
        k.session.send(k.iopub_socket, msg_type, content, parent=parent, ident=topic.encode())

    def _show_progress(self, parent: dict[str, Any] | None, msg: dict[str, Any]) -> None:
        bar_id = str(msg.get("id"))
        text = str(msg.get("text", ""))
        closed = bool(msg.get("closed"))
        if parent is None or self.kernel is None:
            sys.stderr.write("\r" + text + ("\n" if closed else ""))
            sys.stderr.flush()
            return
        display_id = self._bars.get(bar_id)
        update = display_id is not None
        if display_id is None:
            display_id = self._bars[bar_id] = f"jray-bar-{bar_id}"
        if closed:
            self._bars.pop(bar_id, None)
        self.publish(parent, progress_bundle(msg.get("n", 0), msg.get("total"), text, msg.get("error", False)),
                     {}, {"display_id": display_id}, update)


def progress_bundle(n: float, total: float | None, text: str, error: bool = False) -> dict[str, str]:
    """A progress bar as a mime bundle (HTML for notebooks, text otherwise)."""
    value = f' value="{n}" max="{total}"' if total else ""
    color = "color:#b00;" if error else ""
    return {
        "text/plain": text,
        "text/html": (f"<div class='jray-progress' style='font-family:monospace;{color}'><progress{value} "
                      f"style='width:30em;vertical-align:middle'></progress> {html.escape(text)}</div>"),
    }


def print_entries(entries: list[tuple[str, Any]], show: Callable[[dict[str, Any]], None]) -> None:
    """Replay captured output (stdout/stderr lines and rich messages) in the current cell."""
    for kind, payload in entries:
        if kind == "msg":
            show(payload)
        else:
            stream = sys.stderr if kind == "stderr" else sys.stdout
            stream.write(payload + "\n")
