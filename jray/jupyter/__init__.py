"""jray in Jupyter: the driver inside a kernel, magics, progress bars.

- ``session.py``: hooks ``jray.init()`` into the running IPython shell
  (output routed to the submitting cell, Ctrl-C cancels, fresh code after
  re-running cells).
- ``routing.py``: worker output -> the cell that caused it.
- ``magics.py``: ``%load_ext jray`` -> ``%%remote`` and ``%jray``.
- ``remote_cell.py``: what runs a ``%%remote`` cell on a worker.
- ``progress.py``: ``jray.progress(refs)``.

Importing this package is cheap (workers import it to run remote cells):
IPython and ipywidgets are imported only where needed.
"""

from __future__ import annotations

from typing import Any


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jray``: register the ``%%remote`` and ``%jray`` magics."""
    from jray.jupyter.magics import JrayMagics

    ipython.register_magics(JrayMagics(ipython))


def unload_ipython_extension(ipython: Any) -> None:
    from jray.jupyter import autoremote

    autoremote.disable(ipython)


def progress(refs: Any, desc: str = "") -> Any:
    """A live progress bar over ``refs`` completing; iterate it to get refs as they finish."""
    from jray.jupyter.progress import progress as _progress

    return _progress(refs, desc=desc)


__all__ = ["load_ipython_extension", "unload_ipython_extension", "progress"]
