"""What every view shares: where it reads the state API, named data sources,
stable colours.

A view owns plain column dicts (``data()``) computed by ``update()`` from
``jray.util.state`` only, and mirrors them into Bokeh ``ColumnDataSource``
objects named after their keys, so a page can find each source with
``Bokeh.documents[0].get_model_by_name(name)`` and swap its ``.data``.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from bokeh.models import ColumnDataSource
from bokeh.models.layouts import LayoutDOM

Columns = dict[str, list[Any]]


class View:
    """A view: named sources, ``update()`` from the state API, ``layout()``.

    ``address``/``token`` query a cluster this process is not attached to
    (as in ``jray.util.state``); without them the process must be a driver
    (``jray.init``).
    """

    #: Source names and their columns (empty at first).
    SOURCES: dict[str, Sequence[str]] = {}
    #: A page with HTML of its own (``html()``) rather than a Bokeh layout (the logs page).
    PLAIN_HTML = False

    def __init__(self, *, address: str | None = None, token: str | None = None) -> None:
        self.address = address
        self.token = token
        self._lock = threading.Lock()  # guards the published data
        self._updating = threading.Lock()  # one update at a time (a page may be polled from two tabs)
        self._data: dict[str, Columns] = {name: {c: [] for c in cols} for name, cols in self.SOURCES.items()}
        self.sources: dict[str, ColumnDataSource] = {
            name: ColumnDataSource(data={c: [] for c in cols}, name=name) for name, cols in self.SOURCES.items()}
        self._layout: LayoutDOM | None = None

    @property
    def state_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``jray.util.state`` functions."""
        if self.address is None:
            return {}
        return {"address": self.address, "token": self.token}

    def compute(self) -> dict[str, Columns]:
        """Read the state API and return new columns for every source."""
        raise NotImplementedError

    def update(self) -> None:
        """Read the state API once and refresh every source (thread-safe)."""
        with self._updating:
            new = self.compute()
            with self._lock:
                self._data = new
                for name, cols in new.items():
                    self.sources[name].data = dict(cols)

    def page_data(self, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """What the view's page gets on each poll: the sources after a fresh
        ``update()``. ``params``: the poll's query (what a page selected; the
        Bokeh views take none)."""
        self.update()
        return self.data()

    def html(self, data_url: str, title: str) -> str:
        """A ``PLAIN_HTML`` view's standalone page, polling ``data_url``."""
        raise NotImplementedError

    def data(self) -> dict[str, Columns]:
        """``{source_name: {column: [...]}}``, JSON-serialisable, as of the last ``update()``."""
        with self._lock:
            return {name: {c: list(v) for c, v in cols.items()} for name, cols in self._data.items()}

    def layout(self) -> LayoutDOM:
        """The Bokeh layout showing this view's sources (built once)."""
        if self._layout is None:
            self._layout = self.build()
        return self._layout

    def build(self) -> LayoutDOM:
        raise NotImplementedError


#: Colours for functions, nodes, series: Category20's and Category20b's blues,
#: greens, purples, cyans, olives, golds and greys, and none of their reds,
#: pinks, oranges or red-browns, so that red means only "failed".
PALETTE = (
    "#1f77b4", "#aec7e8", "#2ca02c", "#98df8a", "#9467bd", "#c5b0d5", "#17becf", "#9edae5",
    "#bcbd22", "#dbdb8d", "#7f7f7f", "#393b79", "#5254a3", "#6b6ecf", "#637939", "#8ca252",
    "#8c6d31", "#e7ba52", "#3182bd", "#31a354",
)


#: The plain-HTML pages' colours (tables, logs) as CSS variables, one set for
#: both so they look alike: light by default, dark under ``?theme=dark``
#: (``data-jray-theme``) or, with no theme asked, a dark browser. The dark
#: background is Bokeh's ``dark_minimal`` one, as on the Bokeh pages.
_LIGHT_VARS = ("--fg: #1f1f1f; --muted: #6b6b6b; --bg: #fff; --panel: #f7f7f7; --line: #e3e3e3; --hover: #eef4fb; "
               "--select: #d6e6f8; --accent: #1565c0; --bad: #c62828; --ok: #2e7d32; --run: #1565c0; "
               "--input: #fff; --mark: #ffe066; --mark-fg: #1f1f1f;")
_DARK_VARS = ("--fg: #e0e0e0; --muted: #a0a6ab; --bg: #15191c; --panel: #1d2226; --line: #353b40; "
              "--hover: #23303d; --select: #1f3a57; --accent: #6ab0f3; --bad: #ef6b67; --ok: #74c77a; "
              "--run: #6ab0f3; --input: #20262b; --mark: #8a6d00; --mark-fg: #fff;")
PLAIN_PALETTE = (f":root {{ {_LIGHT_VARS} color-scheme: light; }}\n"
                 f"@media (prefers-color-scheme: dark) {{ :root:not([data-jray-theme=light]) {{ {_DARK_VARS} "
                 "color-scheme: dark; } }\n"
                 f":root[data-jray-theme=dark] {{ {_DARK_VARS} color-scheme: dark; }}\n"
                 "body { font: 13px system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; "
                 "color: var(--fg); background: var(--bg); }\n"
                 "input, select, button { font: inherit; background: var(--input); color: var(--fg); "
                 "border: 1px solid var(--line); border-radius: 3px; }\n")


def color_for(name: str) -> str:
    """The same colour for the same function name, in every process and page (never a red)."""
    return PALETTE[zlib.crc32(name.encode()) % len(PALETTE)]


def short(hex_id: str | None, n: int = 8) -> str:
    return (hex_id or "")[:n]
