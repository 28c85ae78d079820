"""The plain-HTML pages (tables, logs) inline in a notebook cell.

``jray.views.tables()`` and ``jray.views.logs()`` return a ``PageFrame``: its
``_repr_html_`` is an ``<iframe>`` of the page the Jupyter server's jray
extension serves (``<base_url>jray/views/tables``), the same page the
sidebar opens as a Lab panel. The pages are their own HTML and script,
polling their data URL behind Jupyter's auth; nothing runs in the kernel
after the call (the Bokeh views, by contrast, are widgets the kernel feeds).

Where the page is, and why the kernel says it: the extension gives every
kernel its server starts ``JRAY_CLUSTER_FILE``, a file it rewrites as its
cluster starts and stops, which names the pages' folder under the server's
base URL (``dashboard_url``, e.g. ``/user/me/jray/views/`` behind
JupyterHub) and the server's cluster. So the kernel knows, when the call is
made, whether a jray extension serves pages for it at all, and for which
cluster; it fails then with ``DashboardUnavailableError`` (plain IPython, a
script, a kernel of a server without jray, or a driver attached to another
cluster than the one the pages show), instead of leaving an empty frame.
The browser's own ``jupyter-config-data`` (its ``baseUrl``) would give the
same path, but only to a script, and scripts do not run in an output
reopened from a saved, untrusted notebook; the kernel's path is in the
``src`` itself, so such an output still shows the page.

The ``src`` is a path, no host: the notebook page and the jray page come
from the same server, so the browser sends the server's own login cookie
(set when Lab was opened with ``?token=`` or a login form; JupyterHub's
cookie behind a hub), as for the sidebar's panels. No token is written into
the output (it is saved in the ``.ipynb``).

Where scripts run (a cell just executed in JupyterLab or Notebook 7), a
small script beside the frame opens the page in Lab's theme
(``?theme=dark|light``, following later theme changes) and checks what
loaded: a frame that is not a jray page (another origin, as in an editor's
notebook view; a 404 or a login page) is replaced by a message saying why.

The head's own dashboard (``jray start --head``'s, behind the cluster
token) serves the same pages, but is not embedded: its login cookie is
``SameSite=Strict``, which a frame inside a notebook of another site does
not get; the error names its page's address to open in a tab instead.
"""

from __future__ import annotations

import html
import json
import os
import secrets
from typing import Any
from urllib.parse import urlencode

from jray import exceptions

#: What each inline page is called (the extension's pages) and its default height.
PAGES = {"tables": "jray: tasks, actors, jobs", "logs": "jray: logs"}
DEFAULT_HEIGHT = 520


def server_pages() -> tuple[str, str]:
    """``(pages_folder, server_cluster_address)`` from the Jupyter server that
    started this process (``JRAY_CLUSTER_FILE``, else ``JRAY_DASHBOARD_URL``):
    the folder is a path under the server's base URL ending in ``/``; the
    address is "" while that server runs no cluster. ("", "") without one."""
    path = os.environ.get("JRAY_CLUSTER_FILE")
    if path:
        try:
            with open(path) as f:
                record = json.load(f)
            url = str(record.get("dashboard_url") or "")
            address = str((record.get("env") or {}).get("JRAY_ADDRESS") or "")
            if url:
                return (url if url.endswith("/") else url + "/"), address
        except (OSError, ValueError, AttributeError, TypeError):
            pass
    url = os.environ.get("JRAY_DASHBOARD_URL", "")
    if url:
        return (url if url.endswith("/") else url + "/"), os.environ.get("JRAY_ADDRESS", "")
    return "", ""


def _driver_address() -> str:
    """The GCS address this process's driver is attached to ("" if none)."""
    from jray import api

    ctx = api._context
    if ctx is None or not api.is_initialized():
        return ""
    return str(ctx.address_info.get("gcs_address") or "")


def _head_page(name: str, gcs_address: str) -> str:
    """The head dashboard's address of page ``name`` for the cluster at ``gcs_address`` ("" if unknown)."""
    from jray.job_submission import resolve_address

    try:
        url, _, _ = resolve_address(gcs_address)
    except Exception:  # noqa: BLE001 - only a hint in an error message
        return ""
    return f"{url}/views/{name}"


def page_url(name: str) -> str:
    """The path of the extension's page ``name`` for this kernel; raises
    ``DashboardUnavailableError`` saying why there is none."""
    if name not in PAGES:
        raise ValueError(f"no inline page {name!r}; there are {sorted(PAGES)}")
    folder, server_address = server_pages()
    driver = _driver_address()
    if not folder:
        head = _head_page(name, driver) if driver else ""
        where = (f" This cluster's head serves the page too: open {head} in a browser tab (its login takes the "
                 "cluster token).") if head else ""
        raise exceptions.DashboardUnavailableError(
            f"jray.views.{name}() shows the {name} page of the jray Jupyter server extension inside the cell, and "
            "no such server started this process (plain IPython or Python, or a kernel of a Jupyter server "
            "without jray: no JRAY_CLUSTER_FILE or JRAY_DASHBOARD_URL). Run the notebook in a JupyterLab or "
            "Notebook with jray installed (its server extension is enabled on install); the Bokeh views "
            f"(jray.views.progress(), task_stream(), ...) work everywhere.{where}")
    if driver and server_address and driver != server_address:
        raise exceptions.DashboardUnavailableError(
            f"The {name} page shows the Jupyter server's jray cluster ({server_address}), and this kernel's "
            f"driver is attached to another one ({driver}). Use the server's cluster (jray.shutdown(); "
            "jray.init()), or the Bokeh views, which show the driver's (jray.views.progress(), ...).")
    return folder + name


class PageFrame:
    """A page of the Jupyter server extension, shown in a notebook cell as an
    iframe (``_repr_html_``); its text ``repr`` names the page's path."""

    def __init__(self, name: str, url: str, *, fragment: dict[str, str] | None = None,
                 height: int = DEFAULT_HEIGHT) -> None:
        self.name = name
        self.url = url
        self.fragment = {k: v for k, v in (fragment or {}).items() if v}
        self.height = int(height)

    @property
    def src(self) -> str:
        """The page's path with its state (tab, filter, selected worker) in the hash."""
        return self.url + (("#" + urlencode(self.fragment)) if self.fragment else "")

    def __repr__(self) -> str:
        return f"<{PAGES.get(self.name, self.name)} page at {self.src}: shown inline in a notebook>"

    def _repr_html_(self) -> str:
        box = f"jray-page-{secrets.token_hex(6)}"
        title = PAGES.get(self.name, self.name)
        return _HTML % {
            "id": box, "name": html.escape(self.name, quote=True), "src": html.escape(self.src, quote=True),
            "title": html.escape(title, quote=True), "height": self.height, "box_js": _js(box),
            "url_js": _js(self.url), "hash_js": _js(self.src[len(self.url):]), "title_js": _js(title)}


def _js(value: Any) -> str:
    """A JSON literal safe inside a <script> element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def tables(tab: str = "tasks", filter: str = "", *, height: int = DEFAULT_HEIGHT) -> PageFrame:  # noqa: A002
    if tab not in ("tasks", "actors", "jobs"):
        raise ValueError(f"tab must be tasks, actors or jobs, got {tab!r}")
    return PageFrame("tables", page_url("tables"), fragment={"tab": tab, "q": filter}, height=height)


def _workers() -> list[dict]:
    """The cluster's worker rows (the state API), or none without a driver."""
    try:
        from jray.util.state import list_workers

        return list(list_workers())
    except Exception:  # noqa: BLE001 - no driver, or the cluster is gone: the page picks the head
        return []


def _node_of_pid(pid: int | str) -> str:
    """The node of the one worker with this pid (pids repeat across
    machines: several, or none, and the page looks on the head)."""
    nodes = {str(w.get("node_id") or "") for w in _workers() if str(w.get("pid")) == str(pid)}
    nodes.discard("")
    return nodes.pop() if len(nodes) == 1 else ""


def logs(pid: int | str | None = None, node_id: str = "", search: str = "", *,
         height: int = DEFAULT_HEIGHT) -> PageFrame:
    if pid is not None and not node_id:  # a worker on another node: find which
        node_id = _node_of_pid(pid)
    fragment = {"node_id": node_id, "pid": str(pid) if pid is not None else "", "q": search}
    return PageFrame("logs", page_url("logs"), fragment=fragment, height=height)


# The frame, and the script that themes it and checks what loaded (run where
# outputs' scripts run; without it the frame shows the page all the same).
_HTML = """<div id="%(id)s" class="jray-inline-page" data-jray-page="%(name)s" style="width:100%%">
<iframe src="%(src)s" title="%(title)s" class="jray-inline-frame"
 style="width:100%%; height:%(height)dpx; border:1px solid var(--jp-border-color2, #ddd); border-radius:2px;
 box-sizing:border-box; display:block; background:transparent"></iframe>
<div class="jray-inline-error" role="alert" style="display:none; padding:8px 10px; border-left:3px solid
 var(--jp-error-color1, #d32f2f); background:var(--jp-layout-color2, #f5f5f5); color:var(--jp-ui-font-color1, #222);
 font:13px var(--jp-ui-font-family, sans-serif)"></div>
<script type="text/javascript">
(function () {
  const box = document.getElementById(%(box_js)s);
  if (!box) return;
  const frame = box.querySelector("iframe"), err = box.querySelector(".jray-inline-error");
  const url = %(url_js)s, hash = %(hash_js)s, title = %(title_js)s;
  const theme = () => { const l = document.body.dataset.jpThemeLight;
                        return l === "true" ? "light" : l === "false" ? "dark" : null; };
  const srcFor = (t) => url + (t ? "?theme=" + t : "") + hash;
  let shown = theme();
  if (shown) frame.src = srcFor(shown);
  const fail = (why) => {
    frame.style.display = "none"; err.style.display = "block";
    err.textContent = title + " could not be shown here (" + why + "): the page is served by the jray extension " +
      "of the Jupyter server that runs this kernel, at " + url + ", and this notebook page does not reach it " +
      "(a notebook opened from another server or an editor, or a server without jray).";
  };
  frame.addEventListener("load", () => {
    let doc = null;
    try { doc = frame.contentDocument; } catch (e) { doc = null; }
    if (!doc) { fail("the frame is from another origin"); return; }
    if (!doc.location.href.startsWith("about:") && !/^jray/.test(doc.title || "")) {
      fail(/\\/login/.test(doc.location.pathname) ? "not logged in to the Jupyter server" :
           "got '" + (doc.title || doc.location.pathname) + "' instead of the page");
    } else if (doc.title) {
      frame.style.display = "block"; err.style.display = "none"; box.dataset.jrayLoaded = "1";
    }
  });
  const watch = new MutationObserver(() => {
    if (!box.isConnected) { watch.disconnect(); return; }
    const t = theme();
    if (!t || t === shown) return;
    shown = t;
    let now = hash;  // the page's own state (tab, filter, selected log) lives in its hash: kept
    try { now = frame.contentWindow.location.hash || hash; } catch (e) { now = hash; }
    frame.src = url + "?theme=" + t + now;
  });
  watch.observe(document.body, {attributes: true, attributeFilter: ["data-jp-theme-light"]});
})();
</script></div>"""
