"""jray in Jupyter: the driver inside a kernel, magics, progress bars.

- ``session.py``: hooks ``jray.init()`` into the running IPython shell
  (output routed to the submitting cell, Ctrl-C cancels, fresh code after
  re-running cells).
- ``routing.py``: worker output -> the cell that caused it.
- ``magics.py``: ``%load_ext jray`` -> ``%%remote`` and ``%jray``.
- ``remote_cell.py``: what runs a ``%%remote`` cell on a worker.
- ``progress.py``: ``jray.progress(refs)``.
- ``remote_tqdm.py``: tqdm bars in remote code drawn live in the cell
  (``jray.jupyter.tqdm`` in any task; plain tqdm in ``%%remote`` cells).

Importing this package is cheap (workers import it to run remote cells):
IPython and ipywidgets are imported only where needed.

The layer sits on the core and talks to it through the public API, the state
API and ``jray._private.frontend``. ``jray.init()`` knows nothing of it: on
import this package registers :func:`_on_connect` as a connect hook
(``jray._private.hooks``), and ``import jray`` imports this package, so a
bare ``jray.init()`` in a Jupyter kernel attaches the kernel.
"""

from __future__ import annotations

import sys
from typing import Any

from jray._private import frontend, hooks


def _on_connect() -> None:
    """After ``jray.init()``: in an IPython shell (a Jupyter kernel, a terminal),
    route worker output to the submitting cell and make Ctrl-C cancel."""
    if "IPython" in sys.modules:  # IPython is never imported here just to ask
        from jray.jupyter import session

        session.attach()


hooks.on_connect(_on_connect)


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


def tqdm(*args: Any, **kwargs: Any) -> Any:
    """A tqdm bar for remote functions: inside a task it is drawn live in the cell that
    submitted the task (``%%remote`` cells get this for plain tqdm too); elsewhere it is
    ``tqdm.auto.tqdm``."""
    if frontend.in_worker():
        from jray.jupyter.remote_tqdm import remote_tqdm_class

        return remote_tqdm_class()(*args, **kwargs)
    from tqdm.auto import tqdm as auto_tqdm

    return auto_tqdm(*args, **kwargs)


def trange(*args: Any, **kwargs: Any) -> Any:
    """``tqdm(range(*args), **kwargs)`` with :func:`tqdm`'s remote behaviour."""
    return tqdm(range(*args), **kwargs)


__all__ = ["load_ipython_extension", "unload_ipython_extension", "progress", "tqdm", "trange"]
