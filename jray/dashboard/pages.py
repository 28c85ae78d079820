"""The head's dashboard: jray's pages on the jobs API's port, for a cluster
used without Jupyter (jobs, SLURM batch runs), as Ray's head serves its
dashboard.

The same pages the Jupyter server extension serves, from the same code
(``jray.jupyter.views.pages``: the Bokeh task stream, object store,
metrics and nodes pages polling their JSON, and the logs page), plus an overview (nodes, jobs) and a page
per job with its log following live:

    GET  /                      overview: nodes, jobs (links), the live views
    GET  /login, POST /login    the token form; a right token sets a cookie
    GET  /views/<name>          a live view page (BokehJS inlined)
    GET  /api/views/<name>      its data (JSON), polled by the page (the logs page: ?node_id=&pid=&tail=)
    GET  /jobs/<id>             a job's details and its log (polls /api/jobs/<id>/logs/tail)

Behind the cluster token as the REST API: a request carries it (``Bearer``)
or the cookie the login page set (an HMAC of the token, ``HttpOnly``,
``SameSite=Strict``); pages without either redirect to ``/login``.

Off unless ``jray start --head --dashboard``, or the head listens on
loopback only (then it is on: nothing off this machine reaches it).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import urllib.parse
from typing import Any

from jray._private.jobs.http_api import HttpError, Response

COOKIE = "jray_dashboard"


def cookie_value(token: str) -> str:
    return hmac.new(token.encode(), b"jray-dashboard-v1", hashlib.sha256).hexdigest()


def cookie_of(headers: dict[str, str]) -> str:
    for part in headers.get("cookie", "").split(";"):
        k, _, v = part.strip().partition("=")
        if k == COOKIE:
            return v
    return ""


def is_page(method: str, path: str) -> bool:
    """Paths the dashboard answers (the rest is the jobs REST API)."""
    parts = [p for p in path.split("/") if p]
    return (not parts or parts[0] in ("login", "views", "jobs") or parts[:2] == ["api", "views"]) and \
        method in ("GET", "POST")


def _page(title: str, body: str, refresh: str = "") -> Response:
    style = ("body{font:14px system-ui,sans-serif;margin:16px 24px;color:#222}table{border-collapse:collapse}"
             "td,th{padding:3px 10px;text-align:left;border-bottom:1px solid #ddd}th{background:#f4f4f4}"
             "a{color:#0645ad}code{font-size:13px}.FAILED{color:#c00}.SUCCEEDED{color:#080}.RUNNING{color:#06c}"
             ".STOPPED{color:#a60}pre{background:#f6f6f6;padding:8px;max-height:70vh;overflow:auto}")
    doc = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{refresh}"
           f"<style>{style}</style></head><body>{body}</body></html>")
    return Response(200, doc.encode())


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


class Dashboard:
    """The pages of one head (one per job agent)."""

    def __init__(self, manager: Any, token: str, gcs_address: str) -> None:
        self.manager, self.token, self.gcs_address = manager, token, gcs_address
        self._views: dict[str, dict[str, Any]] = {}
        self._lock = asyncio.Lock()

    def handles(self, method: str, path: str) -> bool:
        return is_page(method, path)

    def authorized(self, headers: dict[str, str]) -> bool:
        c = cookie_of(headers)
        return bool(c) and hmac.compare_digest(c.encode(), cookie_value(self.token).encode())

    async def route(self, method: str, path: str, authorized: bool, form: dict[str, list[str]]) -> Response | Any:
        parts = [urllib.parse.unquote(p) for p in path.split("/") if p]
        if parts == ["login"]:
            return self._login(method, form)
        if not authorized:
            if parts[:1] == ["api"]:
                raise HttpError(401, "missing or wrong cluster token (log in at /login)")
            return Response(303, b"", headers={"Location": "/login"})
        if not parts:
            return await self._index()
        if parts[0] == "views" and len(parts) == 2:
            return self._view_page(parts[1], (form.get("theme") or [""])[0] or None)
        if parts[:2] == ["api", "views"] and len(parts) == 3:
            return await self._view_data(parts[2], {k: v[0] for k, v in form.items() if v})
        if parts[0] == "jobs" and len(parts) == 2:
            return self._job_page(parts[1])
        return _page("not found", f"<p>No page {html.escape(path)}. <a href='/'>Overview</a></p>")

    # -- login ------------------------------------------------------------------------
    def _login(self, method: str, form: dict[str, list[str]]) -> Response:
        error = ""
        if method == "POST":
            given = (form.get("token") or [""])[0].strip()
            if given and hmac.compare_digest(given.encode(), self.token.encode()):
                return Response(303, b"", headers={
                    "Location": "/",
                    "Set-Cookie": f"{COOKIE}={cookie_value(self.token)}; HttpOnly; SameSite=Strict; Path=/"})
            error = "<p style='color:#c00'>That is not this cluster's token.</p>"
        body = ("<h2>jray dashboard</h2><p>The cluster's token (<code>JRAY_TOKEN</code>, printed by "
                "<code>jray start --head</code>):</p>" + error +
                "<form method='post' action='/login'><input type='password' name='token' size='50' autofocus> "
                "<button type='submit'>Log in</button></form>")
        page = _page("jray: log in", body)
        if error:
            page.status = 401
        return page

    # -- pages -------------------------------------------------------------------------
    async def _index(self) -> Response:
        from jray.util.state import list_nodes

        try:
            nodes = await asyncio.to_thread(lambda: list_nodes(detail=True, limit=0, address=self.gcs_address,
                                                               token=self.token))
            err = ""
        except Exception as e:  # noqa: BLE001 - show the rest of the page
            nodes, err = [], f"<p style='color:#c00'>nodes: {html.escape(str(e))}</p>"
        rows = "".join(
            f"<tr><td><code>{html.escape(n['node_id'][:12])}</code></td><td>{html.escape(n['node_ip'])}</td>"
            f"<td>{'head' if n['is_head_node'] else ''}</td><td>{html.escape(n['state'])}</td>"
            f"<td>{n['resources_total'].get('CPU', 0) - n['resources_available'].get('CPU', 0):g} / "
            f"{n['resources_total'].get('CPU', 0):g}</td>"
            f"<td>{_bytes(n.get('object_store_used', 0))} / {_bytes(n.get('object_store_memory', 0))}</td>"
            f"<td>{n.get('num_workers', 0)}</td></tr>" for n in nodes)
        jobs = sorted(await self.manager.list_jobs(), key=lambda j: -(j.get("start_time") or 0))
        jrows = "".join(
            f"<tr><td><a href='/jobs/{urllib.parse.quote(j['submission_id'])}'>{html.escape(j['submission_id'])}"
            f"</a></td><td class='{j['status']}'>{j['status']}</td><td><code>{html.escape(j['entrypoint'][:80])}"
            f"</code></td><td>{html.escape((j.get('message') or '').splitlines()[0][:100] if j.get('message') else '')}"
            f"</td></tr>" for j in jobs) or "<tr><td colspan='4'><i>no jobs yet</i></td></tr>"
        try:
            from jray.jupyter.views import pages

            views = "".join(f"<li><a href='/views/{n}'>{html.escape(pages.TITLES.get(n, n))}</a></li>"
                            for n in pages.VIEWS)
        except ImportError:
            views = "<li><i>the live views need Bokeh: pip install 'jray[notebook]' on the head</i></li>"
        body = (f"<h2>jray cluster at {html.escape(self.gcs_address)}</h2>{err}"
                "<h3>Nodes</h3><table><tr><th>node</th><th>ip</th><th></th><th>state</th><th>CPU in use</th>"
                f"<th>object store</th><th>workers</th></tr>{rows}</table>"
                "<h3>Jobs</h3><table><tr><th>submission id</th><th>status</th><th>entrypoint</th><th>message</th>"
                f"</tr>{jrows}</table><h3>Live views</h3><ul>{views}</ul>")
        return _page("jray dashboard", body, "<meta http-equiv='refresh' content='5'>")

    def _view_page(self, name: str, theme: str | None = None) -> Response:
        try:
            from jray.jupyter.views import pages
        except ImportError:
            return _page("jray", "<p>The live views need Bokeh: pip install 'jray[notebook]' on the head.</p>")
        if name not in pages.VIEWS:
            return Response(404, f"no view {name!r}".encode(), "text/plain; charset=utf-8")
        try:
            return Response(200, pages.page_html(name, f"/api/views/{name}", theme=theme).encode())
        except ValueError as e:
            return Response(400, str(e).encode(), "text/plain; charset=utf-8")

    async def _view_data(self, name: str, params: dict[str, str]) -> Any:
        try:
            from jray.jupyter.views import pages
        except ImportError:
            raise HttpError(404, "the live views need Bokeh on the head") from None
        if name not in pages.VIEWS:
            raise HttpError(404, f"no view {name!r}")
        async with self._lock:  # one update at a time per head: views keep history
            state = self._views.setdefault(name, {"address": self.gcs_address, "token": self.token})
            return await asyncio.to_thread(lambda: pages.page_data(name, state, params=params))

    def _job_page(self, sid: str) -> Response:
        rec = self.manager.records.get(sid)
        if rec is None:
            return _page("jray: no such job", f"<p>No job {html.escape(sid)}. <a href='/'>Overview</a></p>")
        meta = "".join(f"<tr><th>{k}</th><td>{html.escape(str(rec.get(k)))}</td></tr>"
                       for k in ("submission_id", "job_id", "entrypoint", "driver_node_ip", "metadata"))
        url = json.dumps(f"/api/jobs/{urllib.parse.quote(sid)}/logs/tail")
        script = ("<script>(async function(){let off=0;const pre=document.getElementById('log'),"
                  "st=document.getElementById('status'),msg=document.getElementById('message');"
                  "for(;;){try{const r=await fetch(" + url + "+'?offset='+off+'&wait=10',"
                  "{credentials:'same-origin'});if(!r.ok){st.textContent='HTTP '+r.status;return;}"
                  "const d=await r.json();pre.textContent+=d.logs;off=d.offset;st.textContent=d.status;"
                  "st.className=d.status;if(d.terminal){document.body.dataset.jrayDone='1';return;}}"
                  "catch(e){st.textContent=String(e);await new Promise(f=>setTimeout(f,2000));}}})();</script>")
        stop = (f"<form method='post' action='/api/jobs/{urllib.parse.quote(sid)}/stop' "
                "onsubmit=\"fetch(this.action,{method:'POST',credentials:'same-origin'});return false;\">"
                "<button type='submit'>Stop</button></form>")
        body = (f"<p><a href='/'>Overview</a></p><h2>job {html.escape(sid)}: <span id='status' "
                f"class='{rec['status']}'>{rec['status']}</span></h2><table>{meta}</table>"
                f"<p id='message'>{html.escape(rec.get('message') or '')}</p>{stop}<h3>Log</h3><pre id='log'></pre>"
                + script)
        return _page(f"jray job {sid}", body)
