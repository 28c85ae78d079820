"""``ray.experimental.tqdm_ray``: progress bars in tasks and actors, drawn by
the driver (as Ray's are), here in the cell or terminal that submitted the
work: jray relays each bar's state over the log stream (see
``jray.jupyter.remote_tqdm``) instead of Ray's magic-token lines.

``tqdm(iterable=None, desc=None, total=None, position=None,
flush_interval_s=1.0)`` with ``update``/``refresh``/``close`` as in Ray;
in the driver itself it is a plain ``tqdm.auto`` bar. ``safe_print`` prints
without tearing the bars. Needs the ``tqdm`` package (``jray[notebook]``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["safe_print", "tqdm"]


def tqdm(iterable: Any = None, desc: str | None = None, total: int | None = None, position: int | None = None,
         flush_interval_s: float = 1.0, **kwargs: Any) -> Any:
    """A progress bar over ``iterable`` (or updated by hand up to ``total``)."""
    from jray.jupyter import tqdm as relayed

    kwargs.setdefault("mininterval", flush_interval_s)
    return relayed(iterable, desc=desc, total=total, position=position, **kwargs)


def safe_print(*args: Any, **kwargs: Any) -> None:
    """``print`` that leaves the bars intact (tqdm's ``write``)."""
    try:
        from tqdm import tqdm as std
    except ImportError:  # pragma: no cover - tqdm is what draws the bars
        print(*args, **kwargs)
        return
    std.write(kwargs.get("sep", " ").join(str(a) for a in args), end=kwargs.get("end", "\n"))
