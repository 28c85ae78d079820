"""The driver's side of remote debugging that sits on the hot path: a
paused task's announcement (``notify``, from the log stream) and the main
thread's ``get``/``wait`` that it wakes (``wakeable``, ``DebugWake``). Kept
apart from ``debugger`` (pdb, sockets) so the engine imports nothing heavy
for it; see ``debugger``'s docstring for the whole picture.
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any


# ======================================================================================
class DebugWake(BaseException):
    """Cut a main-thread ``get``/``wait`` short: a task paused at a
    breakpoint (``jray.api`` attaches and waits again)."""


class Wake:
    """One main-thread wait's stake in announcements: ``woken`` turns true
    when one cut the wait short."""

    __slots__ = ("wake", "woken")

    def __init__(self, wake: Callable[[], object]) -> None:
        self.wake, self.woken = wake, False


_announced: collections.deque[dict[str, Any]] = collections.deque()
_seen: set[str] = set()
_state_lock = threading.Lock()
_current: Wake | None = None
_NO_WAKE = Wake(lambda: None)


def interactive() -> bool:
    """Can this driver take debugger commands while it waits: a Jupyter
    kernel (its input box) or a terminal on stdin. ``JRAY_DEBUG_IN_DRIVER``
    = 1/0 forces it either way. A driver that cannot (a batch script, a
    submitted job) leaves paused tasks to ``jray debug``."""
    import os
    import sys

    forced = os.environ.get("JRAY_DEBUG_IN_DRIVER", "").strip().lower()
    if forced in ("1", "true", "yes", "on"):
        return True
    if forced in ("0", "false", "no", "off"):
        return False
    if "ipykernel" in sys.modules:
        try:
            from IPython import get_ipython

            ip = get_ipython()
            kernel = getattr(ip, "kernel", None)
            if kernel is not None:
                return True
        except Exception:  # noqa: BLE001
            pass
    try:
        return bool(sys.stdin is not None and sys.stdin.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def notify(info: dict[str, Any]) -> None:
    """The log stream brought a paused task's announcement (loop thread)."""
    session = str(info.get("session", ""))
    with _state_lock:
        if not session or session in _seen:
            return
        _seen.add(session)
    if not interactive():
        return
    with _state_lock:
        _announced.append(info)
        cur = _current
        if cur is not None:
            cur.woken = True
    if cur is not None:
        cur.wake()


def forget(session: str) -> None:
    """``session`` is being attached by other means (``jray.util.rpdb.attach``)."""
    with _state_lock:
        _seen.add(session)
        for info in [i for i in _announced if i.get("session") == session]:
            _announced.remove(info)


def take_announced() -> list[dict[str, Any]]:
    with _state_lock:
        out = list(_announced)
        _announced.clear()
        return out


def has_announced() -> bool:
    return bool(_announced)


@contextlib.contextmanager
def wakeable(wake: Callable[[], object]) -> Iterator[Wake]:
    """Around a blocking wait: on the main thread, an announcement calls
    ``wake`` (which must end the wait) and sets the yielded ``Wake``'s
    ``woken``; the caller then raises ``DebugWake``. A wait that starts
    with announcements already queued is woken at once."""
    global _current
    if threading.current_thread() is not threading.main_thread():
        yield _NO_WAKE
        return
    wk = Wake(wake)
    with _state_lock:
        _current = wk
        wk.woken = bool(_announced)
    if wk.woken:
        wake()
    try:
        yield wk
    finally:
        with _state_lock:
            _current = None
