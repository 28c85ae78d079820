"""Remote debugging of tasks: ``breakpoint()`` in a task, post-mortem after
a task failed (``%jray debug``, ``jray debug``, ``jray.util.rpdb``).

How the parts fit:

- **In a worker**, one *debug listener* (a TCP socket on the node's IP, a
  daemon thread accepting, started the first time it is needed) serves
  pdb sessions over a connection. A client sends one JSON line first,
  ``{"token", "session"}`` (the cluster token, compared in constant time),
  then talks to pdb as to a terminal: pdb's prompt ``(Pdb) `` ends each
  reply.
- ``breakpoint()`` in a task (``sys.breakpointhook`` is set in workers;
  ``PYTHONBREAKPOINT`` set by the user wins) opens a *breakpoint session*:
  it is recorded in the GCS KV (namespace ``debugger``, key
  ``bp/<session>``), announced to the job's driver on the log stream (a
  ``kind: "debugger"`` message, next to a plain line saying where the task
  paused), and the task's thread waits there until a client connects; pdb
  then runs in that thread on the caller's frame (``n``, ``s``, ``p``,
  ``c``...). ``c`` (or a client that goes away) lets the task go on; ``q``
  fails it with ``BdbQuit`` as quitting pdb ends a local program.
- **Post-mortem**: when a task raises, its worker keeps the traceback (the
  last ``POST_MORTEM_KEEP`` per worker, ``JRAY_DEBUG_POST_MORTEM_SECONDS``,
  default 300; ``JRAY_DEBUG_POST_MORTEM=0`` keeps none) and the
  ``RayTaskError`` carries the task id and the listener's address, so the
  driver that caught it can open pdb on the remote frames
  (``jray.util.rpdb.post_mortem(err)``, ``%jray debug`` after the cell
  failed). Nothing blocks: the error reaches the driver at once, as without
  a debugger.
- **In the driver**, a paused task's announcement wakes a ``get``/``wait``
  that blocks the main thread (``wakeable``: the wait is cut short and
  raises ``DebugWake``, ``jray.api`` attaches, then waits again for the
  time left), so the debugger opens in the cell or script that waits on the
  work, reading commands with ``input()`` (a Jupyter input box, a
  terminal). Announcements that come while nothing waits stay queued for
  ``%jray debug`` / ``jray debug``.
"""

from __future__ import annotations

import asyncio
import bdb
import collections
import concurrent.futures
import contextlib
import hmac
import json
import logging
import os
import pdb
import select
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("jray.debugger")

KV_NS = "debugger"
PROMPT = "(Pdb) "
POST_MORTEM_KEEP = 3
CONNECT_TIMEOUT = 10.0


def post_mortem_seconds() -> float:
    if os.environ.get("JRAY_DEBUG_POST_MORTEM", "1").strip().lower() in ("0", "false", "no", "off"):
        return 0.0
    try:
        return max(0.0, float(os.environ.get("JRAY_DEBUG_POST_MORTEM_SECONDS", "300")))
    except ValueError:
        return 300.0


# ======================================================================================
# Worker side
# ======================================================================================
class _SocketPdb(pdb.Pdb):
    """pdb over a connection. ``c`` with no breakpoints left, or the
    client leaving (EOF), ends the session and closes the connection."""

    def __init__(self, conn: socket.socket) -> None:
        self._conn = conn
        self._file = conn.makefile("rw", encoding="utf-8", errors="replace", newline="\n")
        super().__init__(stdin=self._file, stdout=self._file, nosigint=True)
        self.prompt = PROMPT
        self.use_rawinput = False

    def close(self) -> None:
        for f in (self._file, self._conn):
            with contextlib.suppress(OSError):
                f.close()

    def do_continue(self, arg: str) -> bool | None:
        r = super().do_continue(arg)
        if not self.breaks:
            self.close()
        return r

    do_c = do_cont = do_continue

    def do_EOF(self, arg: str) -> bool | None:  # the client went away: let the task go on
        self.set_continue()
        self.close()
        return True

    def do_quit(self, arg: str) -> bool | None:
        r = super().do_quit(arg)
        self.close()
        return r

    do_q = do_exit = do_quit


class _Session:
    def __init__(self, session: str, info: dict[str, Any]) -> None:
        self.id = session
        self.info = info
        self.conn: socket.socket | None = None
        self.ready = threading.Event()


class _Listener:
    """The worker's debug listener (one per process)."""

    def __init__(self, ip: str, token: str) -> None:
        self.token = token
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((ip, 0))
        self.sock.listen(16)
        self.host, self.port = ip, self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.waiting: dict[str, _Session] = {}  # breakpoint sessions not attached yet
        self.post_mortems: collections.OrderedDict[str, tuple[float, BaseException, str]] = collections.OrderedDict()
        self._timer: threading.Timer | None = None
        threading.Thread(target=self._accept, name="jray-debug-listener", daemon=True).start()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), name="jray-debug-conn", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(CONNECT_TIMEOUT)
            hello = _read_line(conn)
            conn.settimeout(None)
            try:
                req = json.loads(hello)
                ok = isinstance(req, dict) and hmac.compare_digest(str(req.get("token", "")).encode(),
                                                                   self.token.encode())
            except ValueError:
                req, ok = {}, False
            if not ok:
                _send(conn, "jray debugger: refused (wrong cluster token)\n")
                conn.close()
                return
            session = str(req.get("session", ""))
            if session.startswith("pm:"):
                self._post_mortem(conn, session[3:])
                return
            with self.lock:  # the conn is handed over under the lock: a task leaving sees it (set_trace)
                s = self.waiting.pop(session, None)
                if s is not None:
                    s.conn = conn
            if s is None:
                _send(conn, "jray debugger: no such paused task here (it went on, or another debugger took it)\n")
                conn.close()
                return
            s.ready.set()
        except Exception:  # noqa: BLE001 - a bad client must not hurt the worker
            logger.debug("debug connection failed", exc_info=True)
            with contextlib.suppress(OSError):
                conn.close()

    # -- post-mortem ---------------------------------------------------------------
    def keep(self, task_id: str, err: BaseException, what: str) -> None:
        ttl = post_mortem_seconds()
        now = time.monotonic()
        with self.lock:
            self.post_mortems[task_id] = (now + ttl, err, what)
            self.post_mortems.move_to_end(task_id)
            while len(self.post_mortems) > POST_MORTEM_KEEP:
                self.post_mortems.popitem(last=False)
            self._prune(now)
            if self._timer is None:  # one timer at a time, however many tasks fail
                self._schedule_prune(ttl + 0.5)

    def _schedule_prune(self, delay: float) -> None:
        self._timer = threading.Timer(delay, self.prune)
        self._timer.daemon = True
        self._timer.start()

    def prune(self) -> None:
        """Drop expired failures (their frames and locals go with them)."""
        with self.lock:
            now = time.monotonic()
            self._prune(now)
            self._timer = None
            if self.post_mortems:
                self._schedule_prune(max(0.1, min(u for u, _, _ in self.post_mortems.values()) - now + 0.1))

    def _prune(self, now: float) -> None:
        for k in [k for k, (until, _, _) in self.post_mortems.items() if until <= now]:
            del self.post_mortems[k]

    def _post_mortem(self, conn: socket.socket, task_id: str) -> None:
        with self.lock:
            self._prune(time.monotonic())
            entry = self.post_mortems.get(task_id)
        if entry is None:
            _send(conn, f"jray debugger: task {task_id[:16]}'s failure is no longer kept by its worker "
                        f"(post-mortem state is kept {post_mortem_seconds():.0f} s, the last "
                        f"{POST_MORTEM_KEEP} failures per worker)\n")
            conn.close()
            return
        _, err, what = entry
        p = _SocketPdb(conn)
        try:
            p.message(f"post-mortem of {what}: {type(err).__name__}: {err}")
            p.reset()
            p.interaction(None, err.__traceback__)
        except (OSError, bdb.BdbQuit):
            pass
        finally:
            p.close()


_listener: _Listener | None = None
_listener_lock = threading.Lock()


def _worker() -> Any:
    from jray._private.worker import global_state

    w = global_state.worker
    if w is None or getattr(w, "executor", None) is None:
        return None
    return w


def listener() -> _Listener | None:
    """The worker's listener, started on first use; None outside a worker."""
    global _listener
    if _listener is not None:
        return _listener
    w = _worker()
    if w is None:
        return None
    with _listener_lock:
        if _listener is None:
            ip = w.ip if not getattr(w, "client", False) else "127.0.0.1"
            try:
                _listener = _Listener(ip, w.token or "")
            except OSError:
                _listener = _Listener("127.0.0.1", w.token or "")
    return _listener


def keep_post_mortem(task_id: bytes, name: str, err: BaseException) -> str:
    """A task failed with ``err``: keep its traceback for a post-mortem;
    the listener's address ("" when post-mortems are off)."""
    if post_mortem_seconds() <= 0 or err.__traceback__ is None:
        return ""
    try:
        lst = listener()
        if lst is None:
            return ""
        lst.keep(task_id.hex(), err, f"{name}()")
        return lst.address
    except Exception:  # noqa: BLE001 - a debugging nicety never fails the task's error path
        logger.debug("could not keep the post-mortem state", exc_info=True)
        return ""


def set_trace(frame: Any = None) -> None:
    """``breakpoint()`` in a task: pause it until a debugger attaches."""
    if frame is None:
        frame = sys._getframe().f_back
    w = _worker()
    if w is None:  # a driver: the ordinary pdb in this terminal or notebook
        pdb.Pdb().set_trace(frame)
        return
    from jray._private import output_wire
    from jray._private.worker.core_worker import current_task

    lst = listener()
    assert lst is not None
    spec = current_task.get(None)
    name = ""
    if spec is not None:
        name = spec.name or spec.function.qualname or spec.method_name
    where = f"{frame.f_code.co_filename}:{frame.f_lineno}"
    session = uuid.uuid4().hex
    info = {"kind": "debugger", "session": session, "address": lst.address, "pid": os.getpid(),
            "node_ip": lst.host, "task_id": spec.task_id.hex() if spec is not None else "",
            "job_id": spec.job_id.hex() if spec is not None else "", "function": name, "where": where,
            "time": time.time()}
    s = _Session(session, info)
    # The listing's entry is written and removed on the worker's loop, not
    # on this thread: a cancel (SIGINT) may land at any point from here on,
    # and neither the write nor the removal may be cut off by it (a
    # cancelled task must not stay listed as paused). The removal waits for
    # the write, so it can never come first.
    recorded: concurrent.futures.Future[None] | None = None
    try:
        with lst.lock:
            lst.waiting[session] = s
        recorded = _kv_put(w, f"bp/{session}", info)
        with contextlib.suppress(Exception):
            recorded.result(15)
        # The plain line tells whoever reads the output; the message lets
        # the driver's waiting get open the debugger.
        print(f"jray: {name or 'the task'} paused at breakpoint() in {where} (pid {os.getpid()}, {lst.host}): "
              "waiting for a debugger (it opens where a get waits on this work; otherwise run %jray debug "
              "in the notebook or `jray debug` in a terminal)", flush=True)
        print(output_wire.encode(info), flush=True)
        while not s.ready.wait(0.25):  # in slices: a cancel (KeyboardInterrupt) gets through
            pass
    except BaseException:
        with lst.lock:
            lst.waiting.pop(session, None)
            taken = s.conn
        if taken is not None:  # a debugger came just as the task was cancelled: tell it, do not leave it hanging
            with contextlib.suppress(OSError):
                _send(taken, "jray debugger: no such paused task here (it was cancelled)\n")
                taken.close()
        raise
    finally:
        with lst.lock:
            lst.waiting.pop(session, None)
        if recorded is not None:
            removed = _kv_del(w, f"bp/{session}", after=recorded)
            with contextlib.suppress(Exception):
                removed.result(15)
            # Freed now, not under pdb: the futures hold the loop's tasks,
            # whose WeakSet callbacks would be pdb's first stop.
            del removed
        recorded = None
    assert s.conn is not None
    p = _SocketPdb(s.conn)
    p.message(f"jray: attached to {name or 'the task'} (pid {os.getpid()}, {lst.host}), paused in {where}")
    p.set_trace(frame)


def install_breakpointhook() -> None:
    """Workers: ``breakpoint()`` opens a remote session (unless the user
    chose a hook with PYTHONBREAKPOINT)."""
    if os.environ.get("PYTHONBREAKPOINT"):
        return
    sys.breakpointhook = set_trace


def _kv_put(w: Any, key: str, info: dict[str, Any]) -> concurrent.futures.Future[None]:
    """Record a paused breakpoint in the KV (on the worker's loop; the
    listing is a nicety: the driver hears of the pause on the log stream)."""
    from jray._private.protocol import gcs_pb2 as gpb

    async def put() -> None:
        try:
            await w.gcs.KVPut(gpb.KVPutRequest(ns=KV_NS, key=key.encode(), value=json.dumps(info).encode(),
                                               overwrite=True), timeout=10)
        except Exception:  # noqa: BLE001
            logger.debug("could not record the breakpoint", exc_info=True)

    return asyncio.run_coroutine_threadsafe(put(), w.loop)


def _kv_del(w: Any, key: str, after: concurrent.futures.Future[None]) -> concurrent.futures.Future[None]:
    """Remove a breakpoint's KV entry once its write (``after``) is done."""
    from jray._private.protocol import gcs_pb2 as gpb

    async def delete() -> None:
        with contextlib.suppress(BaseException):
            await asyncio.wrap_future(after)
        for _ in range(3):  # a busy GCS: the entry must not outlive the pause
            try:
                await w.gcs.KVDel(gpb.KVDelRequest(ns=KV_NS, key=key.encode()), timeout=10)
                return
            except Exception:  # noqa: BLE001
                logger.debug("could not remove the breakpoint's entry", exc_info=True)
                await asyncio.sleep(0.5)

    return asyncio.run_coroutine_threadsafe(delete(), w.loop)


# ======================================================================================
# Client side (any process with the cluster token)
# ======================================================================================
class DebuggerError(RuntimeError):
    """The debugger could not attach (the task went on, its worker is gone,
    the token was refused)."""


def _read_line(conn: socket.socket, limit: int = 65536) -> str:
    buf = b""
    while not buf.endswith(b"\n") and len(buf) < limit:
        chunk = conn.recv(1)
        if not chunk:
            break
        buf += chunk
    return buf.decode(errors="replace")


def _send(conn: socket.socket, text: str) -> None:
    with contextlib.suppress(OSError):
        conn.sendall(text.encode())


def attach(address: str, session: str, token: str, *, read: Callable[[str], str] | None = None,
           write: Callable[[str], Any] | None = None) -> None:
    """Talk to the pdb session ``session`` at ``address`` (``HOST:PORT``)
    until it ends: what pdb says goes to ``write`` (default: stdout), each
    command comes from ``read(prompt)`` (default: ``input``). EOF or
    Ctrl-C from ``read`` lets the task go on (Ctrl-C is re-raised)."""
    read = read or input
    write = write or _write_stdout
    host, _, port = address.rpartition(":")
    try:
        conn = socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT)
    except (OSError, ValueError) as e:
        raise DebuggerError(f"cannot reach the debugger at {address} ({e}): the worker that held it has "
                            "exited") from None
    with conn:
        conn.settimeout(None)
        conn.sendall((json.dumps({"token": token, "session": session}) + "\n").encode())
        buf = ""
        first = True
        while True:
            chunk = _recv_some(conn)
            if chunk is None:  # closed: the session ended
                if first and buf.startswith("jray debugger:"):
                    raise DebuggerError(buf.strip()[len("jray debugger: "):])
                if buf:
                    write(buf)
                return
            buf += chunk
            if not buf.endswith(PROMPT) or _more_pending(conn):
                continue
            first = False
            write(buf[:-len(PROMPT)])
            buf = ""
            try:
                line = read(PROMPT)
            except (EOFError, OSError):  # no more input (or none to be had): the task goes on
                line = "continue"
            except KeyboardInterrupt:
                _send(conn, "continue\n")
                raise
            _send(conn, line.rstrip("\n") + "\n")


def _write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _recv_some(conn: socket.socket) -> str | None:
    try:
        data = conn.recv(65536)
    except OSError:
        return None
    return data.decode(errors="replace") if data else None


def _more_pending(conn: socket.socket) -> bool:
    r, _, _ = select.select([conn], [], [], 0.05)
    return bool(r)


def scripted(commands: list[str]) -> tuple[Callable[[str], str], Callable[[str], Any], list[str]]:
    """``read``/``write`` for ``attach`` that play ``commands`` and record
    what pdb said (tests, scripts); past the last command: ``continue``."""
    transcript: list[str] = []
    todo = list(commands)

    def read(prompt: str) -> str:
        cmd = todo.pop(0) if todo else "continue"
        transcript.append(prompt + cmd + "\n")
        return cmd

    return read, transcript.append, transcript


def list_sessions(gcs_call: Callable[[Any], Any]) -> list[dict[str, Any]]:
    """Paused breakpoints recorded in the KV, oldest first. ``gcs_call``
    runs a coroutine factory taking the GCS stub."""
    from jray._private.protocol import gcs_pb2 as gpb

    async def fetch(gcs: Any) -> list[dict[str, Any]]:
        keys = (await gcs.KVKeys(gpb.KVKeysRequest(ns=KV_NS, prefix=b"bp/"), timeout=10)).keys
        out = []
        for k in keys:
            r = await gcs.KVGet(gpb.KVGetRequest(ns=KV_NS, key=k), timeout=10)
            if r.found:
                with contextlib.suppress(ValueError):
                    out.append(json.loads(r.value))
        return out

    rows = gcs_call(fetch)
    return sorted(rows, key=lambda r: r.get("time", 0))


def forget_session(gcs_call: Callable[[Any], Any], session: str) -> None:
    from jray._private.protocol import gcs_pb2 as gpb

    async def delete(gcs: Any) -> None:
        await gcs.KVDel(gpb.KVDelRequest(ns=KV_NS, key=f"bp/{session}".encode()), timeout=10)

    with contextlib.suppress(Exception):
        gcs_call(delete)


# ======================================================================================
# The driver: open what was announced, post-mortem of a caught error
# ======================================================================================
def _driver_token() -> str:
    from jray._private.worker import global_state

    w = global_state.worker
    return (w.token or "") if w is not None else os.environ.get("JRAY_TOKEN", "")


def open_session(info: dict[str, Any], token: str | None = None, *, read: Callable[[str], str] | None = None,
                 write: Callable[[str], Any] | None = None, quiet: bool = False) -> bool:
    """Attach to one paused task (an announcement or a ``jray debug``
    listing row); False when it is no longer waiting (a note is written
    unless ``quiet``)."""
    from jray._private import debug_wake

    debug_wake.forget(str(info.get("session", "")))  # a waiting get need not open it again
    out = write or _write_stdout
    name = info.get("function") or "a task"
    header = [f"jray: debugging {name} (pid {info.get('pid')}, {info.get('node_ip')}), paused in "
              f"{info.get('where')}; pdb commands, `c` lets it go on\n"]

    def emit(text: str) -> None:  # the header once pdb answers (not for a task that went on)
        if header:
            out(header.pop())
        out(text)

    try:
        attach(str(info["address"]), str(info["session"]), _driver_token() if token is None else token,
               read=read, write=emit)
    except DebuggerError as e:
        if not quiet:
            out(f"jray: {e}\n")
        return False
    return True


def open_announced(*, read: Callable[[str], str] | None = None, write: Callable[[str], Any] | None = None) -> int:
    """Attach, one after the other, to every paused task announced to this
    driver so far; how many sessions ran."""
    from jray._private import debug_wake

    n = 0
    while True:
        todo = debug_wake.take_announced()
        if not todo:
            return n
        for info in todo:
            n += open_session(info, read=read, write=write, quiet=True)


def post_mortem(err: BaseException, token: str | None = None, *, read: Callable[[str], str] | None = None,
                write: Callable[[str], Any] | None = None) -> None:
    """pdb on the frames of the remote task that raised ``err`` (a
    ``RayTaskError`` caught from ``get``), in the worker that ran it."""
    address = getattr(err, "debug_address", "")
    task_id = getattr(err, "task_id", "")
    if not address or not task_id:
        raise DebuggerError("this error carries no post-mortem state: it was not raised by a task's own code, "
                            "or post-mortems are off (JRAY_DEBUG_POST_MORTEM=0)")
    attach(address, f"pm:{task_id}", _driver_token() if token is None else token, read=read, write=write)
