"""Full-page views for the Jupyter server extension's dashboard handlers.

The handler serves two URLs per page: the page itself and its data.

::

    from jray.jupyter.views.pages import VIEWS, page_html, page_data

    # GET .../jray/views/task_stream  -> the page (static: no cluster call)
    html = page_html("task_stream", data_url="task_stream/data")

    # GET .../jray/views/task_stream/data  -> JSON the page polls every second
    state = {}                          # keep one per page (or per browser) for history
    payload = page_data("task_stream", state, address=gcs_address, token=token)

``page_html`` returns a standalone HTML document with BokehJS inlined (no
CDN: pages work offline and behind JupyterHub/Binder) and the view's layout,
its ColumnDataSources named after the keys of the data. A small script GETs
``data_url`` (same origin, cookies sent) about once a second and assigns
each ``{source_name: {column: [...]}}`` entry of the reply to the source
found by ``Bokeh.documents[0].get_model_by_name(source_name)``; it counts
successful updates in ``document.body.dataset.jrayUpdates`` and shows the
last error in ``#jray-status``.

``page_data(name, state)`` builds the JSON from a fresh ``update()``. Pass
the same ``state`` dict on every call for a page: it keeps the view
instance (``state["view"]``), so views that sample over time (store use per
node) accumulate history. Equivalent, by hand::

    view = VIEWS[name](address=..., token=...)   # once per page
    view.update(); view.data()                   # per request

Not every page is Bokeh: a view with ``PLAIN_HTML`` (the logs page,
``logs.py``; the tables page, ``tables.py``) renders its own HTML (``view.html(data_url, title)``) and
answers its polls with its own JSON for what the poll's query selects
(``page_data(name, state, params={"node_id": ..., "pid": ...})``, as
``view.page_data(params)``); it is listed, served and authenticated as the
others.

Without ``address``/``token`` the calling process must be a driver
(``jray.init(address=...)``); with them it need not be (as in
``jray.util.state``). ``address`` is the GCS address (``HOST:PORT``).
"""

from __future__ import annotations

import json
from typing import Any

from bokeh.embed import file_html
from bokeh.resources import INLINE

from jray.jupyter.views._base import View
from jray.jupyter.views.logs import LogsPage
from jray.jupyter.views.metrics import MetricsView
from jray.jupyter.views.nodes import NodesView
from jray.jupyter.views.object_store import ObjectStoreView
from jray.jupyter.views.progress import ProgressView
from jray.jupyter.views.tables import TablesPage
from jray.jupyter.views.task_stream import TaskStreamView

__all__ = ["VIEWS", "TITLES", "make_view", "page_data", "page_html"]

VIEWS: dict[str, type[View]] = {"task_stream": TaskStreamView, "object_store": ObjectStoreView,
                                "metrics": MetricsView, "nodes": NodesView, "logs": LogsPage, "progress": ProgressView,
                                "tables": TablesPage}
TITLES = {"task_stream": "jray: task stream", "object_store": "jray: object store", "metrics": "jray: metrics",
          "nodes": "jray: nodes", "logs": "jray: logs",
          "progress": "jray: progress", "tables": "jray: tasks, actors, jobs"}
POLL_MS = 1000

_POLL = """
<div id="jray-status" style="font: 11px sans-serif; color: #888; padding: 2px 8px"></div>
<script type="text/javascript">
(function () {
  const url = %(url)s, names = %(names)s, period = %(period)d;
  let busy = false, updates = 0;
  const status = (text) => { const el = document.getElementById("jray-status"); if (el) el.textContent = text; };
  async function tick() {
    if (busy || !window.Bokeh || !Bokeh.documents || !Bokeh.documents.length) return;
    busy = true;
    try {
      const r = await fetch(url, {credentials: "same-origin", cache: "no-store",
                                  headers: {"Accept": "application/json"}});
      if (!r.ok) { status("update failed: HTTP " + r.status); return; }
      const payload = await r.json(), doc = Bokeh.documents[0];
      for (const name of names) {
        const source = doc.get_model_by_name(name);
        if (source && payload[name]) source.data = payload[name];
      }
      updates += 1;
      document.body.dataset.jrayUpdates = String(updates);
      status("updated " + new Date().toLocaleTimeString());
    } catch (e) {
      status("update failed: " + e);
    } finally {
      busy = false;
    }
  }
  setInterval(tick, period);
  window.addEventListener("load", tick);
})();
</script>
"""


def make_view(name: str, *, address: str | None = None, token: str | None = None) -> View:
    """A new view for page ``name`` (KeyError names the pages there are)."""
    try:
        cls = VIEWS[name]
    except KeyError:
        raise KeyError(f"no view named {name!r}; there are {sorted(VIEWS)}") from None
    return cls(address=address, token=token)


THEMES = ("light", "dark")
# The page around a dark Bokeh theme (dark_minimal's own border colour), and
# the plain pages' colours, when the Lab theme is dark.
_DARK_PAGE = ("<style>html, body { background: #15191C; color: #E0E0E0; } "
              "#jray-status { color: #9aa0a6 !important; }</style>")


def check_theme(theme: str | None) -> str | None:
    """``theme`` as a page takes it (``light``, ``dark``, or None: the
    page's own); ValueError names the choices."""
    if theme in (None, ""):
        return None
    if theme not in THEMES:
        raise ValueError(f"theme must be one of {', '.join(THEMES)}, got {theme!r}")
    return theme


def page_html(name: str, data_url: str, title: str | None = None, theme: str | None = None) -> str:
    """A standalone HTML page for view ``name`` that polls ``data_url`` for
    its data; ``theme="dark"`` draws it for a dark JupyterLab theme (Bokeh's
    ``dark_minimal``), ``"light"`` forces light, None leaves it to the page
    (the plain pages follow the browser's colour scheme)."""
    theme = check_theme(theme)
    view = make_view(name)
    title = title or TITLES.get(name, name)
    if view.PLAIN_HTML:  # a page of its own (the logs page), no Bokeh
        html = view.html(data_url, title)
        if theme is not None:
            html = html.replace("<html>", f"<html data-jray-theme='{theme}'>", 1)
            if theme == "dark":
                html = html.replace("</head>", _DARK_PAGE + "</head>", 1)
        return html
    if theme == "dark":
        from bokeh.themes import built_in_themes

        html = file_html(view.layout(), resources=INLINE, title=title, theme=built_in_themes["dark_minimal"])
        html = html.replace("</head>", _DARK_PAGE + "</head>", 1)
    else:
        html = file_html(view.layout(), resources=INLINE, title=title)
    script = _POLL % {"url": _js(data_url), "names": _js(sorted(view.SOURCES)), "period": POLL_MS}
    head, sep, tail = html.rpartition("</body>")
    return head + script + sep + tail if sep else html + script


def _js(value: Any) -> str:
    """A JSON literal safe inside a <script> element (no "</script>" in it)."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page_data(name: str, state: dict[str, Any] | None = None, *, address: str | None = None,
              token: str | None = None, params: dict[str, str] | None = None) -> dict[str, Any]:
    """``{source_name: {column: [...]}}`` for page ``name`` after a fresh ``update()``
    (the logs page: its own JSON, for what ``params``, the poll's query, selects).

    ``state``: a dict kept by the caller per page; the view lives in
    ``state["view"]`` between calls (``address``/``token`` may also be given
    there as ``state["address"]``/``state["token"]``).
    """
    if state is None:
        state = {}
    view = state.get("view")
    if not isinstance(view, View) or type(view) is not VIEWS.get(name):
        view = state["view"] = make_view(name, address=address or state.get("address"),
                                         token=token or state.get("token"))
    return view.page_data(params or {})
