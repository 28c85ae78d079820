"""The logs page: the workers of every node, and the log of the one selected,
tailed and refreshed, with a search box that filters its lines.

A page of plain HTML and JavaScript (``html()``; no Bokeh: a list, a text
box and lines of text), registered with the Bokeh views in ``pages.py``, so
the JupyterLab sidebar lists it, opens it in a panel, and the head's
dashboard serves it, behind the same authentication. Its script polls the
data URL about once a second with what is selected::

    GET <data_url>?node_id=<id>&pid=<pid>&tail=<lines>     # a worker's log
    GET <data_url>?node_id=<id>&file=<name>&tail=<lines>   # another file of that node

and the server answers ``LogsPage.page_data(params)``, from the state API
only: per live node its workers (``list_workers``: pid, state, resident
memory; ``WorkerActivity``: the task or actor each runs), the workers that
exited (their logs are kept: ``list_log_files``) and the node's other log
files; and the last ``tail`` lines of the selected log (``get_log``). A
refused name (``..``, an absolute path) or an unknown worker comes back as
``log.error``, shown in place of the lines.

The search filters the lines in the browser (case-insensitive text, or a
regular expression written ``/like this/``), marks the matches and counts
them; it applies to each refresh as it arrives.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from jray._private.formatting import fmt_bytes
from jray.jupyter.views._base import PLAIN_PALETTE, View, short
from jray.jupyter.views.workers import WorkerActivity
from jray.util import state

DEFAULT_TAIL = 1000
MAX_TAIL = 20_000
EXITED_SHOWN = 20  # exited workers listed per node, newest first


class LogsPage(View):
    """Workers per node and the selected log's tail (a ``PLAIN_HTML`` page)."""

    PLAIN_HTML = True
    SOURCES: dict[str, Any] = {}

    def __init__(self, *, address: str | None = None, token: str | None = None) -> None:
        super().__init__(address=address, token=token)
        self.activity = WorkerActivity(self.state_kwargs)

    def compute(self) -> dict[str, Any]:
        return {}  # no Bokeh sources: page_data() answers the polls

    def page_data(self, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        params = params or {}
        with self._updating:  # the task table kept between polls is shared by every tab
            workers = self.activity.update()
        nodes = [n for n in state.list_nodes(limit=0, detail=True, **self.state_kwargs) if n["state"] == "ALIVE"]
        files = state.list_log_files(**self.state_kwargs)
        return {"nodes": _nodes(nodes, workers, files), "log": self._log(params)}

    def _log(self, params: Mapping[str, str]) -> dict[str, Any] | None:
        node_id, pid, filename = params.get("node_id") or None, params.get("pid") or None, params.get("file") or None
        if not (pid or filename):
            return None
        try:
            tail = min(max(int(params.get("tail") or DEFAULT_TAIL), 0), MAX_TAIL)
        except ValueError:
            tail = DEFAULT_TAIL
        out: dict[str, Any] = {"node_id": node_id, "pid": pid, "file": filename, "tail": tail, "lines": [],
                               "error": None}
        try:
            if pid is not None:
                out["lines"] = list(state.get_log(node_id=node_id, pid=int(pid), tail=tail, errors="replace",
                                                  **self.state_kwargs))
            else:
                out["lines"] = list(state.get_log(node_id=node_id, filename=filename, tail=tail, errors="replace",
                                                  **self.state_kwargs))
        except (ValueError, FileNotFoundError) as e:
            out["error"] = str(e)
        return out

    def html(self, data_url: str, title: str) -> str:
        return (_HTML.replace("__TITLE__", _html_escape(title))
                .replace("__DATA_URL__", _js(data_url))
                .replace("__DEFAULT_TAIL__", str(DEFAULT_TAIL))
                .replace("__PALETTE__", PLAIN_PALETTE))


def _nodes(nodes: list[dict[str, Any]], workers: list[dict[str, Any]],
           files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for n in sorted(nodes, key=lambda n: (not n["is_head_node"], n["node_ip"], n["node_id"])):
        nid = n["node_id"]
        mine = sorted((w for w in workers if w["node_id"] == nid), key=lambda w: w["pid"])
        live = {w["pid"] for w in mine}
        node_files = [f for f in files if f["node_id"] == nid]
        exited = sorted((f for f in node_files if f["pid"] and not f["worker_alive"] and f["pid"] not in live),
                        key=lambda f: -f["mtime"])[:EXITED_SHOWN]
        other = [f for f in node_files if f["group"] != "worker"]
        out.append({
            "node_id": nid, "label": short(nid, 12), "node_ip": n["node_ip"], "is_head": n["is_head_node"],
            "workers": [{"pid": w["pid"], "worker_id": w["worker_id"], "state": w["state"], "what": w["what"],
                         "rss_text": fmt_bytes(w["rss_bytes"]) if w["rss_bytes"] else "", "cpu_percent": w["cpu_percent"],
                         "log_file": w["log_file"]} for w in mine],
            "exited": [{"pid": f["pid"], "worker_id": f["worker_id"], "log_file": f["filename"],
                        "size_text": fmt_bytes(f["size"])} for f in exited],
            "files": [{"file": f["filename"], "group": f["group"], "size_text": fmt_bytes(f["size"])}
                      for f in other],
        })
    return out


def _js(value: Any) -> str:
    """A JSON literal safe inside a <script> element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _html_escape(text: str) -> str:
    import html

    return html.escape(text)


_HTML = r"""<!doctype html>
<html><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
__PALETTE__
body { margin: 0; display: flex; height: 100vh; overflow: hidden; }
#jray-side { width: 390px; min-width: 260px; overflow: auto; border-right: 1px solid var(--line); padding: 6px 8px;
             box-sizing: border-box; }
#jray-main { flex: 1; display: flex; flex-direction: column; min-width: 0; }
#jray-bar { padding: 6px 8px; border-bottom: 1px solid var(--line); display: flex; gap: 8px; align-items: center;
            flex-wrap: wrap; }
#jray-log-search { flex: 1; min-width: 160px; padding: 3px 6px; }
#jray-log { flex: 1; margin: 0; padding: 6px 8px; overflow: auto; font: 12px ui-monospace, monospace;
            white-space: pre-wrap; word-break: break-all; background: var(--panel); color: var(--fg); }
#jray-log .jray-error { color: var(--bad); white-space: pre-wrap; }
#jray-log mark { background: var(--mark); color: var(--mark-fg); }
h3 { margin: 4px 0 6px; font-size: 14px; }
.jray-node h4 { margin: 10px 0 3px; font-size: 12px; color: var(--muted); }
table { border-collapse: collapse; width: 100%; }
td { padding: 2px 4px; border-bottom: 1px solid var(--line); white-space: nowrap; overflow: hidden;
     text-overflow: ellipsis; max-width: 160px; }
tr.jray-pick { cursor: pointer; }
tr.jray-pick:hover { background: var(--hover); }
tr.jray-selected, tr.jray-selected:hover { background: var(--select); }
.jray-exited td { color: var(--muted); }
.jray-state { font-size: 11px; color: var(--muted); }
.jray-LEASED, .jray-ACTOR { color: var(--accent); }
#jray-status, #jray-log-count { font-size: 11px; color: var(--muted); }
#jray-log-title { font-weight: 600; }
details summary { cursor: pointer; font-size: 12px; color: var(--muted); margin-top: 4px; }
</style></head>
<body>
<div id="jray-side"><h3>Workers</h3><div id="jray-workers"><i>loading...</i></div>
<div id="jray-status"></div></div>
<div id="jray-main">
  <div id="jray-bar">
    <span id="jray-log-title">select a worker</span>
    <input id="jray-log-search" type="search" placeholder="filter lines: text, or /regex/" autocomplete="off">
    <label>last <select id="jray-log-tail"><option>200</option><option selected>__DEFAULT_TAIL__</option>
      <option>5000</option><option>20000</option></select> lines</label>
    <label><input id="jray-log-follow" type="checkbox" checked> follow</label>
    <span id="jray-log-count"></span>
  </div>
  <pre id="jray-log"></pre>
</div>
<script type="text/javascript">
(function () {
  const url = __DATA_URL__, period = 1000;
  const $ = (id) => document.getElementById(id);
  const search = $("jray-log-search"), tailSel = $("jray-log-tail"), follow = $("jray-log-follow");
  const pre = $("jray-log");
  let sel = null, lines = [], error = null, busy = false, updates = 0;

  // The selection lives in the URL's hash, so a reload (or a link) shows the same log.
  function readHash() {
    const h = new URLSearchParams(location.hash.slice(1));
    if (h.get("pid") || h.get("file")) sel = {node_id: h.get("node_id") || "", pid: h.get("pid") || "",
                                              file: h.get("file") || "", title: h.get("title") || ""};
    if (h.get("q")) search.value = h.get("q");
  }
  function writeHash() {
    const h = new URLSearchParams();
    if (sel) { h.set("node_id", sel.node_id); if (sel.pid) h.set("pid", sel.pid); if (sel.file) h.set("file", sel.file);
               h.set("title", sel.title); }
    if (search.value) h.set("q", search.value);
    history.replaceState(null, "", "#" + h.toString());
  }
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function pick(s) { sel = s; lines = []; error = null; writeHash(); render(); tick(true); }
  function row(cells, s, cls) {
    const tr = el("tr", "jray-pick " + (cls || ""));
    for (const c of cells) tr.appendChild(c instanceof Node ? c : el("td", "", c));
    tr.dataset.node = s.node_id; tr.dataset.pid = s.pid || ""; tr.dataset.file = s.file || "";
    if (sel && sel.node_id === s.node_id && (sel.pid || "") === (s.pid || "") && (sel.file || "") === (s.file || ""))
      tr.classList.add("jray-selected");
    tr.addEventListener("click", () => pick(s));
    return tr;
  }
  function renderWorkers(nodes) {
    const box = $("jray-workers"), keep = box.scrollTop;
    box.textContent = "";
    for (const n of nodes) {
      const d = el("div", "jray-node");
      d.dataset.node = n.node_id;
      d.appendChild(el("h4", "", "node " + n.label + " " + n.node_ip + (n.is_head ? " (head)" : "")));
      const t = el("table", "jray-worker-table");
      for (const w of n.workers) {
        const st = el("td", "jray-state jray-" + w.state, w.state);
        t.appendChild(row(["pid " + w.pid, st, w.what || "", w.rss_text],
                          {node_id: n.node_id, pid: String(w.pid),
                           title: "worker pid " + w.pid + " on " + n.node_ip + (w.what ? " (" + w.what + ")" : "")},
                          "jray-worker"));
      }
      if (!n.workers.length) { const tr = el("tr"); tr.appendChild(el("td", "", "no workers")); t.appendChild(tr); }
      d.appendChild(t);
      if (n.exited.length) {
        const det = el("details"); det.appendChild(el("summary", "", n.exited.length + " exited worker(s)"));
        if (sel && n.exited.some(w => String(w.pid) === sel.pid && sel.node_id === n.node_id)) det.open = true;
        const te = el("table");
        for (const w of n.exited)
          te.appendChild(row(["pid " + w.pid, el("td", "jray-state", "exited"), w.log_file, w.size_text],
                             {node_id: n.node_id, pid: String(w.pid),
                              title: "exited worker pid " + w.pid + " on " + n.node_ip}, "jray-worker-exited jray-exited"));
        det.appendChild(te); d.appendChild(det);
      }
      if (n.files.length) {
        const det = el("details"); det.appendChild(el("summary", "", "node log files (" + n.files.length + ")"));
        if (sel && sel.file && sel.node_id === n.node_id) det.open = true;
        const tf = el("table");
        for (const f of n.files)
          tf.appendChild(row([f.file, f.group, f.size_text],
                             {node_id: n.node_id, file: f.file, title: f.file + " on " + n.node_ip}, "jray-file"));
        det.appendChild(tf); d.appendChild(det);
      }
      box.appendChild(d);
    }
    box.scrollTop = keep;
  }
  function matcher() {
    const q = search.value;
    if (!q) return null;
    const m = /^\/(.+)\/([a-z]*)$/.exec(q);
    try {
      if (m) return new RegExp(m[1], (m[2].includes("i") ? "i" : "") + "g");
    } catch (e) { return {bad: String(e)}; }
    return new RegExp(q.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "gi");
  }
  function render() {
    $("jray-log-title").textContent = sel ? sel.title || ("pid " + sel.pid) : "select a worker";
    const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 30;
    pre.textContent = "";
    if (error) { pre.appendChild(el("div", "jray-error", error)); $("jray-log-count").textContent = ""; return; }
    const re = matcher();
    if (re && re.bad) { $("jray-log-count").textContent = "bad pattern: " + re.bad; return; }
    const frag = document.createDocumentFragment();
    let shown = 0;
    for (const line of lines) {
      if (re) { re.lastIndex = 0; if (!re.test(line)) continue; }
      shown += 1;
      const div = el("div", "jray-line");
      if (re) {
        let last = 0; re.lastIndex = 0;
        for (let m = re.exec(line); m; m = re.exec(line)) {
          if (!m[0].length) { re.lastIndex += 1; continue; }
          div.appendChild(document.createTextNode(line.slice(last, m.index)));
          div.appendChild(el("mark", "", m[0]));
          last = m.index + m[0].length;
        }
        div.appendChild(document.createTextNode(line.slice(last)));
      } else {
        div.textContent = line || "\u200b";
      }
      frag.appendChild(div);
    }
    pre.appendChild(frag);
    $("jray-log-count").textContent = sel ? (re ? shown + " of " + lines.length + " lines match"
                                                : lines.length + " lines") : "";
    document.body.dataset.jrayShown = String(shown);
    if (atBottom) pre.scrollTop = pre.scrollHeight;  // following the end, unless scrolled up
  }
  async function tick(force) {
    if (busy) return;
    if (!force && !follow.checked && updates > 0) return;
    busy = true;
    const q = new URLSearchParams();
    if (sel) { q.set("node_id", sel.node_id); if (sel.pid) q.set("pid", sel.pid); if (sel.file) q.set("file", sel.file);
               q.set("tail", tailSel.value); }
    const key = q.toString();
    try {
      const r = await fetch(url + (url.includes("?") ? "&" : "?") + key,
                            {credentials: "same-origin", cache: "no-store", headers: {"Accept": "application/json"}});
      if (!r.ok) { $("jray-status").textContent = "update failed: HTTP " + r.status; return; }
      const d = await r.json();
      renderWorkers(d.nodes || []);
      const now = new URLSearchParams();
      if (sel) { now.set("node_id", sel.node_id); if (sel.pid) now.set("pid", sel.pid); if (sel.file) now.set("file", sel.file);
                 now.set("tail", tailSel.value); }
      if (now.toString() === key) {  // not an answer for an older selection
        lines = d.log ? d.log.lines : []; error = d.log ? d.log.error : null;
        render();
      }
      updates += 1;
      document.body.dataset.jrayUpdates = String(updates);
      $("jray-status").textContent = "updated " + new Date().toLocaleTimeString();
    } catch (e) {
      $("jray-status").textContent = "update failed: " + e;
    } finally {
      busy = false;
    }
  }
  readHash();
  search.addEventListener("input", () => { writeHash(); render(); });
  tailSel.addEventListener("change", () => tick(true));
  follow.addEventListener("change", () => tick(true));
  setInterval(() => tick(false), period);
  tick(true);
})();
</script>
</body></html>
"""
