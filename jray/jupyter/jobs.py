"""Jobs in a notebook: ``%jray jobs`` (a table) and ``jray.widgets.JobMonitor``
(a live one, with each job's logs and a Stop button).

Both read the head's jobs API (``jray.job_submission.JobSubmissionClient``)
of the cluster this kernel uses: ``JRAY_ADDRESS``/``JRAY_TOKEN`` (what the
Jupyter server extension gives its kernels), else the cluster this process
is connected to, else the address file of this machine's cluster. A cluster
started by ``jray start --head`` or by the server extension has a jobs API;
one started by a bare ``jray.init()`` has none (the error says so).

::

    %jray jobs                       # submission id, status, entrypoint, start, duration, message
    from jray.widgets import JobMonitor
    JobMonitor()                     # refreshes every 2 s; Logs follows a job, Stop stops it

The Jupyter server extension's jobs endpoints (the Lab sidebar's Jobs
section) use the same helpers: ``client``, ``job_summary`` (a job as JSON
data), ``list_job_summaries`` and ``read_log`` (a log from a byte offset on,
its end kept).
"""

from __future__ import annotations

import datetime
import html
import logging
import os
import threading
import time
from typing import Any

from jray.jupyter.polling import Polling
from jray.jupyter.status import Table

logger = logging.getLogger(__name__)
LOG_TAIL_CHARS = 20_000


def client(address: str | None = None, timeout: float = 60.0) -> Any:
    """A ``JobSubmissionClient`` for this kernel's cluster (see the module docstring)."""
    from jray.job_submission import JobSubmissionClient

    if address is None and not os.environ.get("JRAY_ADDRESS"):
        from jray import api

        ctx = api._context
        if ctx is not None and ctx.address_info.get("gcs_address"):
            address = str(ctx.address_info["gcs_address"])
    return JobSubmissionClient(address, timeout=timeout)


def _when(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.datetime.fromtimestamp(ms / 1000).strftime("%H:%M:%S")


def _duration(job: Any, now_ms: float) -> str:
    if not job.start_time:
        return "-"
    end = job.end_time or now_ms
    s = max(0.0, (end - job.start_time) / 1000)
    return f"{s:.1f} s" if s < 60 else f"{int(s // 60)} min {int(s % 60)} s"


def _short(text: str, n: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _sorted(jobs: list[Any]) -> list[Any]:
    return sorted(jobs, key=lambda j: j.start_time or 0, reverse=True)


def job_summary(job: Any) -> dict[str, Any]:
    """One job as plain JSON data (what the Lab sidebar lists: no runtime_env,
    whose env_vars may hold secrets); times in ms since the epoch."""
    return {"submission_id": job.submission_id or job.job_id, "job_id": job.job_id, "status": str(job.status),
            "entrypoint": job.entrypoint, "message": job.message or "", "start_time": job.start_time,
            "end_time": job.end_time, "driver_exit_code": job.driver_exit_code, "metadata": dict(job.metadata or {})}


def list_job_summaries(c: Any) -> list[dict[str, Any]]:
    """The jobs of client ``c``'s cluster, newest first, as ``job_summary``."""
    return [job_summary(j) for j in _sorted(c.list_jobs())]


LOG_CATCH_UP_BYTES = 256 * 1024  # a read this long may have stopped at the API's 1 MiB: read on
LOG_CATCH_UP_READS = 64  # the API keeps at most 2 x 16 MiB of a job's log


def read_log(c: Any, submission_id: str, offset: int = 0, max_chars: int = LOG_TAIL_CHARS) -> dict[str, Any]:
    """The job's log from byte ``offset`` up to its end now, keeping only the
    last ``max_chars`` characters (a follower that opens a long log sees its
    end): ``{"logs", "offset"`` (the next read's), ``"terminal", "status",
    "truncated"}`` (``True`` when text before the returned part was left out)."""
    r = c.get_job_logs_from(submission_id, offset)
    parts, kept, truncated, reads = [str(r["logs"])], len(r["logs"]), False, 1
    # A long read may have stopped at the API's limit: read on until caught up.
    while int(r["offset"]) - offset >= LOG_CATCH_UP_BYTES and not r["terminal"] and reads < LOG_CATCH_UP_READS:
        offset = int(r["offset"])
        r = c.get_job_logs_from(submission_id, offset)
        reads += 1
        parts.append(str(r["logs"]))
        kept += len(r["logs"])
        while len(parts) > 1 and kept - len(parts[0]) >= max_chars:  # whole chunks nobody will see
            kept -= len(parts.pop(0))
            truncated = True
    text = "".join(parts)
    if len(text) > max_chars:
        text, truncated = text[-max_chars:], True
    return {"logs": text, "offset": int(r["offset"]), "terminal": bool(r["terminal"]), "status": str(r["status"]),
            "truncated": truncated}


def job_table(address: str | None = None) -> Table:
    """The cluster's submitted jobs, newest first (``%jray jobs``)."""
    c = client(address)
    now = time.time() * 1000
    rows = [[j.submission_id or j.job_id or "-", str(j.status), _short(j.entrypoint, 50), _when(j.start_time),
             _duration(j, now), _short((j.message or "").split("\n")[0], 60)]
            for j in _sorted(c.list_jobs())]
    note = "" if rows else "no jobs yet: jray job submit -- python script.py, or JobSubmissionClient().submit_job"
    return Table(f"jobs at {c.address}", ["submission id", "status", "entrypoint", "started", "duration",
                                          "message"], rows, note)


_COLOURS = {"PENDING": "#777", "RUNNING": "#06c", "SUCCEEDED": "#080", "FAILED": "#c00", "STOPPED": "#a60"}


def _widgets() -> Any:
    import ipywidgets as W

    return W


class JobMonitor(Polling, _widgets().VBox):  # type: ignore[misc]  # ipywidgets is untyped
    """The cluster's jobs, live: one row per job (status, id, entrypoint,
    start, duration, message) with **Logs** (show and follow that job's
    output below the table) and **Stop** (while it runs).

    ``period``: seconds between refreshes (``autostart=False``: call
    ``update()`` yourself). ``address``: as ``JobSubmissionClient``'s."""

    def __init__(self, period: float = 2.0, *, address: str | None = None, autostart: bool = True) -> None:
        W = _widgets()
        self.period = period
        self._client = client(address)
        self.header = W.HTML(value="")
        self.rows_box = W.VBox([])
        self.log_title = W.HTML(value="")
        self.log_view = W.HTML(value="")
        self.error = W.HTML(value="")
        self.following: str | None = None
        self.jobs: dict[str, Any] = {}
        self._rows: dict[str, tuple[Any, Any, Any, Any]] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        super().__init__([self.header, self.rows_box, self.log_title, self.log_view, self.error])
        self.update()
        if autostart:
            self.start()

    # -- polling (jray.jupyter.polling.Polling) -----------------------------------------
    _THREAD_NAME = "jray-job-monitor"

    def _poll_failed(self, e: Exception) -> None:
        with self._lock:
            if not self._closed:
                self.error.value = f"<i style='color:#b00'>cannot reach the jobs API: {html.escape(str(e))}</i>"

    def close(self) -> None:
        self.stop()
        with self._lock:
            self._closed = True
            for status, text, logs, stop in self._rows.values():
                for w in (status, text, logs, stop):
                    w.close()
            self._rows.clear()
            for w in (self.header, self.rows_box, self.log_title, self.log_view, self.error):
                w.close()
        super().close()

    # -- one refresh -----------------------------------------------------------------
    def update(self) -> None:
        """Read the jobs (and the followed job's logs) once and redraw."""
        jobs = _sorted(self._client.list_jobs())
        following = self.following
        logs = self._client.get_job_logs(following) if following else ""
        with self._lock:
            if self._closed:
                return
            self._show(jobs)
            if following is not None and following == self.following:
                self._show_logs(following, logs)
            self.error.value = ""

    def _row(self, sid: str) -> tuple[Any, Any, Any, Any]:
        W = _widgets()
        row = self._rows.get(sid)
        if row is None:
            status = W.HTML(layout=W.Layout(width="90px"))
            text = W.HTML(layout=W.Layout(flex="1 1 auto"))
            logs = W.Button(description="Logs", tooltip=f"follow the logs of {sid}",
                            layout=W.Layout(width="70px"))
            stop = W.Button(description="Stop", button_style="danger", tooltip=f"stop {sid}",
                            layout=W.Layout(width="70px"))
            logs.on_click(lambda _b, sid=sid: self.follow(sid))
            stop.on_click(lambda _b, sid=sid: self.stop_job(sid))
            row = self._rows[sid] = (status, text, logs, stop)
        return row

    def _show(self, jobs: list[Any]) -> None:
        W = _widgets()
        now = time.time() * 1000
        self.jobs = {j.submission_id or j.job_id: j for j in jobs}
        counts: dict[str, int] = {}
        for j in jobs:
            counts[str(j.status)] = counts.get(str(j.status), 0) + 1
        summary = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) or "no jobs yet"
        self.header.value = f"<b>jobs</b> at {html.escape(self._client.address)}: {summary}"
        children = []
        for sid, j in self.jobs.items():
            status, text, logs, stop = self._row(sid)
            st = str(j.status)
            status.value = f"<b style='color:{_COLOURS.get(st, '#000')}'>{st}</b>"
            text.value = (f"<code>{html.escape(sid)}</code> &middot; <code>{html.escape(_short(j.entrypoint, 60))}"
                          f"</code> &middot; {_when(j.start_time)}, {_duration(j, now)}"
                          f"<br><small>{html.escape(_short((j.message or '').split(chr(10))[0], 120))}</small>")
            stop.disabled = j.status.is_terminal()
            children.append(W.HBox([status, text, logs, stop]))
        for gone in [k for k in self._rows if k not in self.jobs]:
            for w in self._rows.pop(gone):
                w.close()
        self.rows_box.children = tuple(children)

    def _show_logs(self, sid: str, text: str) -> None:
        j = self.jobs.get(sid)
        state = f" ({j.status})" if j is not None else " (deleted)"
        self.log_title.value = f"<b>logs of {html.escape(sid)}</b>{state}"
        if len(text) > LOG_TAIL_CHARS:
            text = "…" + text[-LOG_TAIL_CHARS:]
        self.log_view.value = (f"<pre style='max-height:300px;overflow:auto;background:var(--jp-layout-color2,#f5f5f5);"
                               f"padding:4px'>{html.escape(text) or '<i>no output yet</i>'}</pre>")

    # -- actions -----------------------------------------------------------------------
    def follow(self, submission_id: str | None) -> None:
        """Show (and keep refreshing) a job's logs below the table; None hides them."""
        with self._lock:
            self.following = submission_id
            if submission_id is None:
                self.log_title.value = self.log_view.value = ""
                return
        try:
            self.update()
        except Exception as e:  # noqa: BLE001 - a button's action: say it, do not raise into the comm
            self.error.value = f"<i style='color:#b00'>{html.escape(str(e))}</i>"

    def stop_job(self, submission_id: str) -> bool:
        """Stop a job (as ``jray job stop``); its row shows STOPPED at the next refresh."""
        try:
            done = bool(self._client.stop_job(submission_id))
            self.update()
            return done
        except Exception as e:  # noqa: BLE001 - a button's action: say it, do not raise into the comm
            self.error.value = f"<i style='color:#b00'>stopping {html.escape(submission_id)} failed: " \
                               f"{html.escape(str(e))}</i>"
            return False
