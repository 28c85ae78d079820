"""Views shown live inside a notebook.

Bokeh's ``push_notebook`` does not reach JupyterLab, so the layout goes
into a ``jupyter_bokeh.BokehModel`` widget: changes to the Bokeh document
travel over the widget's comm (BokehJS itself is put into the page first,
inlined: ``load_bokehjs``). A daemon thread calls the view's
``update()`` every ``period`` seconds (a thread, not the kernel's loop, so
the view moves while a cell blocks in ``jray.get``); ``close()`` stops it
and joins it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from jupyter_bokeh import BokehModel

from jray.jupyter.views._base import View

logger = logging.getLogger(__name__)
BOKEHJS_COMPONENTS: list[Any] = ["bokeh", "bokeh-widgets", "bokeh-tables"]


def load_bokehjs() -> None:
    """Put BokehJS into the notebook page: the ``BokehModel`` view uses the
    page's ``window.Bokeh`` (otherwise: "Could not create a view for model").
    Inlined, so it works offline (Binder, a locked-down hub); the browser
    skips it when the page has it already. Outside a kernel: nothing."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    ip = get_ipython()
    if ip is None or getattr(ip, "kernel", None) is None:
        return
    from bokeh.io import output_notebook
    from bokeh.resources import Resources

    # Only what the views draw with (no MathJax, no WebGL): ~2 MB instead of ~4 MB of output.
    output_notebook(resources=Resources(mode="inline", components=BOKEHJS_COMPONENTS), hide_banner=True)


class LiveView(BokehModel):  # type: ignore[misc]  # untyped ipywidgets base
    """A ``BokehModel`` widget whose view refreshes itself until ``close()``."""

    def __init__(self, view: View, period: float = 1.0, **kwargs: Any) -> None:
        view.update()
        load_bokehjs()
        super().__init__(view.layout(), **kwargs)
        self.view = view
        self.period = period
        self._stop = threading.Event()
        self._thread: threading.Thread | None = threading.Thread(
            target=self._run, name=f"jray-{type(view).__name__}", daemon=True)
        self._thread.start()

    def _sync_model(self, model: Any, content: dict[str, Any], buffers: list[Any]) -> None:
        """A change from the browser (pan, zoom, selection): applied to the Bokeh
        document under the view's lock, as the poller thread's updates are."""
        view = getattr(self, "view", None)
        if view is None:
            super()._sync_model(model, content, buffers)
            return
        with view._lock:
            super()._sync_model(model, content, buffers)

    def _run(self) -> None:
        failures = 0
        while not self._stop.wait(self.period * (1 + min(failures, 10))):
            try:
                self.view.update()
                failures = 0
            except Exception as e:  # noqa: BLE001 - keep polling: the cluster may come back
                failures += 1
                logger.debug("view update failed: %s", e)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling (the widget stays, frozen)."""
        stop = getattr(self, "_stop", None)  # None: __init__ failed before it (close from __del__)
        if stop is None:
            return
        stop.set()
        t, self._thread = self._thread, None
        if t is not None and t is not threading.current_thread():
            t.join(timeout)

    def close(self) -> None:
        """Stop polling and close the widget (again: nothing; ipywidgets calls it from ``__del__``
        too, and ``BokehModel.close`` fails the second time).

        The browser keeps sending until it gets the close: every update the
        kernel pushes makes BokehJS recompute the ranges and send them back.
        Those messages would find no comm in the kernel ("No such comm" in the
        server's log), so the comm id stays registered for a while after the
        close, to a stand-in that drops them (``_ClosedComm``)."""
        self.stop()
        if getattr(self, "_closed", False):
            return
        self._closed = True
        comm = getattr(self, "comm", None)
        super().close()
        _ClosedComm.stand_in_for(comm)


class _ClosedComm:
    """What the kernel's comm manager finds for a comm the kernel closed in the
    last ``GRACE_S`` seconds: messages the frontend sent before it learned of
    the close are dropped quietly; then the id is forgotten."""

    GRACE_S = 30.0
    dropped = 0  # messages dropped so far, all stand-ins together
    # ipykernel's comm_info_request reads every registered comm's target_name:
    # a stand-in answers with a target no frontend opens, so a widget
    # manager restoring its widgets (after a reconnect) never asks for it.
    target_name = "jray.closed"

    def __init__(self, comm_id: str) -> None:
        self.comm_id = comm_id
        self._closed = True

    def handle_msg(self, msg: dict[str, Any]) -> None:
        type(self).dropped += 1
        logger.debug("dropped a message for closed comm %s", self.comm_id)

    def handle_close(self, msg: dict[str, Any]) -> None:
        pass

    @classmethod
    def stand_in_for(cls, comm: Any) -> None:
        """Register a stand-in under ``comm``'s id in the comm manager it was
        registered with (a kernel's; not a test's dummy comm), for ``GRACE_S``."""
        comm_id = getattr(comm, "comm_id", None)
        if comm_id is None:
            return
        try:
            from comm import get_comm_manager

            manager = get_comm_manager()
        except Exception:  # noqa: BLE001 - no comm machinery here: nothing to guard
            return
        comms = getattr(manager, "comms", None)
        if not isinstance(comms, dict) or comm_id in comms:  # not closed there, or never registered
            return
        if getattr(comm, "kernel", None) is None or not getattr(comm, "_closed", False):
            return
        stand_in = comms[comm_id] = cls(comm_id)

        def forget() -> None:
            if comms.get(comm_id) is stand_in:
                del comms[comm_id]

        timer = threading.Timer(cls.GRACE_S, forget)
        timer.daemon = True
        timer.start()
