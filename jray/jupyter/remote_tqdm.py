"""tqdm bars in remote code, drawn as live bars in the submitting cell.

While a ``%%remote`` cell runs, ``tqdm.tqdm``, ``tqdm.auto.tqdm`` (and
``trange``) are a subclass that draws nothing on the worker: each refresh
sends the bar's state to the driver as a message on the log stream, where
the router shows it as one display that updates in place (an HTML bar in a
notebook, a ``\\r`` line in a terminal). Outside a remote cell tqdm is left
alone.
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import Iterator
from typing import Any

from jray.jupyter import wire

_cls: Any = None


class _Null:
    def write(self, s: str) -> int:
        return len(s)

    def flush(self) -> None:
        pass


def remote_tqdm_class() -> Any:
    """The tqdm subclass (built on first use: tqdm is optional)."""
    global _cls
    if _cls is not None:
        return _cls
    from tqdm.std import tqdm as std_tqdm

    class RemoteTqdm(std_tqdm):  # type: ignore[misc,valid-type]
        """A tqdm bar that reports to the notebook cell instead of drawing."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["file"] = _Null()
            kwargs.pop("display", None)  # tqdm.notebook's own keyword
            self._jray_id = uuid.uuid4().hex[:12]
            super().__init__(*args, **kwargs)

        def display(self, msg: str | None = None, pos: int | None = None) -> bool:
            if not self.disable:  # while closing, close() sends the final state itself
                self._jray_send(closed=False)
            return True

        def close(self) -> None:
            if self.disable:
                return
            super().close()
            self._jray_send(closed=True)

        def _jray_send(self, closed: bool) -> None:
            d = self.format_dict
            wire.emit({"kind": "progress", "id": self._jray_id, "n": d.get("n", 0), "total": d.get("total"),
                       "text": self.format_meter(**d), "closed": closed})

    def trange(*args: Any, **kwargs: Any) -> Any:
        return RemoteTqdm(range(*args), **kwargs)

    RemoteTqdm.trange = staticmethod(trange)  # type: ignore[attr-defined]
    _cls = RemoteTqdm
    return RemoteTqdm


_MODULES = ("tqdm", "tqdm.std", "tqdm.auto", "tqdm.autonotebook", "tqdm.notebook", "tqdm.asyncio")


@contextlib.contextmanager
def patched_tqdm(ns: dict[str, Any], source: str) -> Iterator[None]:
    """While the cell runs, tqdm's bars (imported or shipped) report to the notebook."""
    if "tqdm" not in source and not any(_is_tqdm(v) for v in ns.values()):
        yield
        return
    try:
        import tqdm
        import tqdm.auto  # noqa: F401 - imported now so the cell's import finds it patched
        from tqdm.std import tqdm as std_tqdm
    except ImportError:
        yield
        return
    cls = remote_tqdm_class()
    saved: list[tuple[Any, str, Any]] = []
    for modname in _MODULES:
        mod = sys.modules.get(modname)
        if mod is None or modname == "tqdm.std":
            continue
        for attr, new in (("tqdm", cls), ("trange", cls.trange)):
            if hasattr(mod, attr):
                saved.append((mod, attr, getattr(mod, attr)))
                setattr(mod, attr, new)
    swapped = {}
    for name, value in list(ns.items()):
        if isinstance(value, type) and issubclass(value, std_tqdm) and value is not cls:
            swapped[name] = value
            ns[name] = cls
        elif callable(value) and getattr(value, "__name__", "") == "trange" and \
                str(getattr(value, "__module__", "")).startswith("tqdm"):
            swapped[name] = value
            ns[name] = cls.trange
    try:
        yield
    finally:
        for mod, attr, value in saved:
            setattr(mod, attr, value)
        for name, value in swapped.items():
            if ns.get(name) in (cls, cls.trange):
                ns[name] = value


def _is_tqdm(value: Any) -> bool:
    return str(getattr(value, "__module__", "")).startswith("tqdm")
