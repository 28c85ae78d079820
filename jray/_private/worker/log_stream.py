"""Worker stdout/stderr forwarded to the driver, a line at a time.

``sys.stdout``/``sys.stderr`` of a worker are replaced by streams that tag
each line with the running task (its name for the ``(f pid=…)`` prefix, and
the driver's top-level task so the notebook layer can route late output to
the cell that submitted it), buffer it, and ship batches to the job's driver
over gRPC: at most every 20 ms, and always before a task's reply leaves.
Each line also goes into the worker's own log file (its stdout/stderr: the
raylet's ``worker-<ns>.log``), where ``jray logs`` and the logs page read
it; messages for the notebook (displays, progress bars) do not.
"""

from __future__ import annotations

import asyncio
import io
import os
import threading
from typing import TYPE_CHECKING, Any

import grpc

from jray._private.output_wire import MARK
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import core_worker_pb2 as wpb
from jray._private.protocol import core_worker_pb2_grpc as wgrpc

if TYPE_CHECKING:
    from jray._private.worker.core_worker import CoreWorker

_ctx = threading.local()


class _TaggedStream(io.TextIOBase):
    def __init__(self, fwd: LogForwarder, is_err: bool, fallback: Any) -> None:
        self._fwd = fwd
        self._is_err = is_err
        self._fallback = fallback
        self._partial: dict[int, str] = {}

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return int(self._fallback.fileno())

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        spec = getattr(_ctx, "spec", None) or self._fwd.default_spec
        if spec is None:
            self._fallback.write(s)
            return len(s)
        tid = threading.get_ident()
        buf = self._partial.get(tid, "") + s
        *lines, rest = buf.split("\n")
        self._partial[tid] = rest
        for line in lines:
            self._fwd.add(spec, line, self._is_err)
        self._to_file(lines)
        return len(s)

    def _to_file(self, lines: list[str]) -> None:
        """The lines into this worker's log file too (one unbuffered append)."""
        text = "".join(line + "\n" for line in lines if not line.startswith(MARK))
        if text:
            try:
                os.write(self._fallback.fileno(), text.encode("utf-8", "replace"))
            except (OSError, ValueError, AttributeError):
                pass

    def flush(self) -> None:
        tid = threading.get_ident()
        rest = self._partial.pop(tid, "")
        spec = getattr(_ctx, "spec", None) or self._fwd.default_spec
        if rest and spec is not None:
            self._fwd.add(spec, rest, self._is_err)
            self._to_file([rest])
        self._fwd.flush()


def set_bare(on: bool) -> None:
    """Lines this thread prints from now on carry no ``(name pid=N)`` prefix."""
    _ctx.bare = on


class LogForwarder:
    def __init__(self, worker: CoreWorker) -> None:
        self.w = worker
        self._lock = threading.Lock()
        self._pending: dict[str, list[wpb.LogLine]] = {}
        self._scheduled = False
        # Sends in progress (loop thread only). A batch the 20 ms timer took
        # is no longer pending but may not have arrived yet: a task's flush
        # waits for it too, or the task's reply could overtake its output.
        self._sending = 0
        self._send_lock: asyncio.Lock | None = None  # one batch at a time: lines keep their order
        self.default_spec: Any = None
        self.streams: list[_TaggedStream] = []

    def install(self) -> None:
        import sys

        out = _TaggedStream(self, False, sys.__stdout__)
        err = _TaggedStream(self, True, sys.__stderr__)
        self.streams = [out, err]
        sys.stdout = out  # type: ignore[assignment]
        sys.stderr = err  # type: ignore[assignment]

    def set_context(self, spec: Any) -> None:
        if spec is None:
            for s in self.streams:
                s.flush()
        _ctx.spec = spec
        if spec is not None and spec.type == cpb.ACTOR_CREATION_TASK:
            self.default_spec = spec  # actor: output between calls keeps its prefix

    def end_task(self) -> None:
        """The task on this thread ended: what it printed (a last line
        without its newline too) goes out now, before its reply, and the
        thread's output is no longer its. The same as ``flush()`` then
        ``set_context(None)``, with nothing to do (no lock) where the task
        printed nothing: this runs once per task."""
        for s in self.streams:
            if s._partial:
                s.flush()
        if self._pending or self._sending:
            self.flush()
        _ctx.spec = None

    def add(self, spec: Any, text: str, is_err: bool) -> None:
        if not spec.driver.port:
            return
        addr = f"{spec.driver.ip}:{spec.driver.port}"
        if spec.type == 0:
            prefix = spec.name or spec.function.qualname
        else:
            cls = spec.actor_creation.class_name or spec.function.qualname.split(".")[0]
            prefix = cls or spec.name
            if self.default_spec is not None and spec.type != 1:
                prefix = self.default_spec.actor_creation.class_name or prefix
        if getattr(_ctx, "bare", False):  # a %%remote cell prints like a local one
            prefix = ""
        line = wpb.LogLine(prefix=prefix, text=text, is_err=is_err, root_task_id=spec.root_task_id or spec.task_id,
                           task_id=spec.task_id)
        with self._lock:
            self._pending.setdefault(addr, []).append(line)
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self.w.loop.call_soon_threadsafe(lambda: self.w.loop.call_later(0.02, self._send))
        except RuntimeError:
            pass

    def _send(self) -> None:
        self.w.spawn(self._flush_async())

    def flush(self) -> None:
        """Send what is buffered now and wait for it (before a task replies)."""
        if not self._pending and not self._sending:  # (a line this thread added is seen here: no lock needed)
            return
        if self.w.in_loop_thread():
            self._send()
            return
        try:
            self.w.run_sync(self._flush_async(), timeout=5)
        except Exception:  # noqa: BLE001 - the driver may be gone
            pass

    async def drain(self) -> None:
        """What is buffered or on its way has arrived (an async actor's call,
        before its reply), awaited from any event loop: the sending runs on
        the CoreWorker's loop, an async actor's own loop waits without blocking."""
        if not self._pending and not self._sending:
            return
        if self.w.in_loop_thread():
            await self._flush_async()
            return
        try:
            await asyncio.wait_for(asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(self._flush_async(), self.w.loop)), timeout=5)
        except Exception:  # noqa: BLE001 - the driver may be gone
            pass

    async def _flush_async(self) -> None:
        """Send what is pending, after any send already under way (so a
        caller that awaits this knows every line added before it arrived)."""
        self._sending += 1
        try:
            if self._send_lock is None:
                self._send_lock = asyncio.Lock()
            async with self._send_lock:
                with self._lock:
                    batches, self._pending = self._pending, {}
                    self._scheduled = False
                for addr, lines in batches.items():
                    stub = self.w.pool.stub(addr, wgrpc.CoreWorkerServiceStub)
                    msg = wpb.LogBatch(pid=os.getpid(), ip=self.w.ip, job_id=self.w.job_id, lines=lines)
                    await _send_quietly(stub, msg)
        finally:
            self._sending -= 1


async def _send_quietly(stub: Any, msg: wpb.LogBatch) -> None:
    """One batch to the driver; a connection that failed under it (UNAVAILABLE:
    a relayed connection to a client closed, a driver's restart of its
    server) is tried once more before the lines are given up."""
    for attempt in range(2):
        try:
            await stub.PublishLogs(msg, timeout=10)
            return
        except grpc.aio.AioRpcError as e:
            if attempt or e.code() != grpc.StatusCode.UNAVAILABLE:
                return
            await asyncio.sleep(0.05)
        except Exception:  # noqa: BLE001 - the driver may be gone
            return
