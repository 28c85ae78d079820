"""``jray.progress(refs)``: a live bar over ObjectRefs completing.

In a notebook the bar is an ipywidgets progress bar (an HTML bar updated in
place when ipywidgets is missing), in a terminal a text bar on stderr. It
advances in the background as the refs' tasks finish; iterating over it
yields the refs in the order they complete::

    for ref in jray.progress(refs):
        print(jray.get(ref))

Readiness is watched on the driver's loop (``frontend.watch_ready``: no
thread or poll per ref, no value fetched);
the bar is redrawn at most ten times a second.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from jray import api
from jray._private import frontend
from jray.jupyter import session
from jray.jupyter.routing import progress_bundle
from jray.object_ref import ObjectRef

REDRAW_EVERY = 0.1


class Progress:
    """A progress bar over refs; iterate to get them as they complete."""

    def __init__(self, refs: Iterable[ObjectRef], desc: str = "") -> None:
        self.refs = list(refs)
        for r in self.refs:
            if not isinstance(r, ObjectRef):
                raise TypeError(f"jray.progress expects ObjectRefs, got a {type(r).__name__}")
        self.desc = desc
        self.total = len(self.refs)
        self.n = 0
        self.failed = 0
        self.start = time.monotonic()
        self._done_q: queue.Queue[ObjectRef | None] = queue.Queue()
        self._changed = threading.Event()
        self._finished = threading.Event()
        self._bar = _make_bar(self)
        self._bar.show()
        self._watch()
        threading.Thread(target=self._redraw_loop, name="jray-progress", daemon=True).start()

    # -- watching (loop thread) ----------------------------------------------------------
    def _watch(self) -> None:
        if not api.is_initialized():
            raise RuntimeError("jray is not initialized: call jray.init() first.")
        if not self.refs:
            self._finish()
            return
        frontend.watch_ready(self.refs, self._one_ready)

    def _one_ready(self, ref: ObjectRef, failed: bool) -> None:
        """The driver's loop: ``ref`` is ready (``failed``: an error or lost)."""
        self.n += 1
        self.failed += failed
        self._done_q.put(ref)
        self._changed.set()
        if self.n == self.total:
            self._finish()

    def _finish(self) -> None:
        self._finished.set()
        self._changed.set()
        self._done_q.put(None)

    def _redraw_loop(self) -> None:
        while True:
            self._changed.wait(timeout=1.0)
            self._changed.clear()
            finished = self._finished.is_set()
            try:
                self._bar.update(finished)
            except Exception:  # noqa: BLE001 - a closed front end must not raise here
                return
            if finished:
                return
            time.sleep(REDRAW_EVERY)

    # -- the public side ------------------------------------------------------------------
    def __iter__(self) -> Iterator[ObjectRef]:
        while True:
            ref = self._done_q.get()
            if ref is None:
                return
            yield ref

    def __len__(self) -> int:
        return self.total

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every ref is ready (True) or ``timeout`` passes (False)."""
        return self._finished.wait(timeout)

    def text(self) -> str:
        elapsed = time.monotonic() - self.start
        pct = 100.0 * self.n / self.total if self.total else 100.0
        failed = f", {self.failed} failed" if self.failed else ""
        desc = f"{self.desc}: " if self.desc else ""
        return f"{desc}{self.n}/{self.total} ({pct:.0f}%{failed}) {elapsed:.1f}s"

    def __repr__(self) -> str:
        return f"<jray.progress {self.text()}>"

    def _ipython_display_(self) -> None:
        """Already on screen: showing the return value again would draw a second bar."""


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _make_bar(p: Progress) -> Any:
    if not _in_notebook():
        return _TextBar(p)
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return _HtmlBar(p)
    return _WidgetBar(p)


class _TextBar:
    WIDTH = 30

    def __init__(self, p: Progress) -> None:
        self.p = p

    def show(self) -> None:
        self.update(False)

    def update(self, finished: bool) -> None:
        p = self.p
        filled = int(self.WIDTH * p.n / p.total) if p.total else self.WIDTH
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {p.text()}" + ("\n" if finished else ""))
        sys.stderr.flush()


class _WidgetBar:
    def __init__(self, p: Progress) -> None:
        import ipywidgets as widgets

        self.p = p
        self.bar = widgets.IntProgress(value=0, min=0, max=max(p.total, 1), description=p.desc[:20])
        self.label = widgets.Label(value=p.text())
        self.box = widgets.HBox([self.bar, self.label])

    def show(self) -> None:
        from IPython.display import display

        display(self.box)

    def update(self, finished: bool) -> None:
        p = self.p
        self.bar.value = p.n
        if finished:
            self.bar.bar_style = "danger" if p.failed else "success"
        self.label.value = p.text()


class _HtmlBar:
    def __init__(self, p: Progress) -> None:
        self.p = p
        self.handle: Any = None
        s = session.current()
        self.router = s.router if s is not None else None
        self.parent = self.router._current_parent() if self.router is not None else None

    def _bundle(self) -> dict[str, str]:
        return progress_bundle(self.p.n, self.p.total or 1, self.p.text(), bool(self.p.failed))

    def show(self) -> None:
        from IPython.display import display

        self.handle = display(self._bundle(), raw=True, display_id=True)

    def update(self, finished: bool) -> None:
        if self.router is not None and self.parent is not None and self.handle is not None:
            self.router.publish(self.parent, self._bundle(), {}, {"display_id": self.handle.display_id}, True)
        elif self.handle is not None:
            self.handle.update(self._bundle(), raw=True)


def progress(refs: Any, desc: str = "") -> Progress:
    if isinstance(refs, ObjectRef):
        refs = [refs]
    return Progress(refs, desc=desc)
