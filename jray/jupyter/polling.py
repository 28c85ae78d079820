"""The refresh thread the live widgets share (``ClusterMonitor``, ``JobMonitor``).

A widget mixes in :class:`Polling`, sets ``period``, ``_stop``
(``threading.Event``), ``_thread`` (None) and ``_THREAD_NAME``, and defines
``update()`` and ``_poll_failed(exc)``. ``update()`` runs every ``period``
seconds in a daemon thread; after failures the wait grows (up to 11x) so an
unreachable cluster is not hammered, and shrinks back at the first success.
"""

from __future__ import annotations

import threading


class Polling:
    period: float
    _stop: threading.Event
    _thread: threading.Thread | None
    _THREAD_NAME = "jray-poll"

    def update(self) -> None:
        raise NotImplementedError

    def _poll_failed(self, exc: Exception) -> None:
        """Show that a refresh failed (the next one may succeed)."""

    def start(self) -> None:
        """Refresh every ``period`` seconds in a daemon thread (until ``stop``/``close``)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self._THREAD_NAME, daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        failures = 0
        while not self._stop.wait(self.period * (1 + min(failures, 10))):
            try:
                self.update()
                failures = 0
            except Exception as e:  # noqa: BLE001 - keep polling: the cluster may come back
                failures += 1
                if not self._stop.is_set():
                    self._poll_failed(e)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop refreshing (the widget stays as it was)."""
        self._stop.set()
        t, self._thread = self._thread, None
        if t is not None and t is not threading.current_thread():
            t.join(timeout)
