"""The tables page (the Ray dashboard's task, actor and job tables): one tab
each, filtered, sorted and linked.

A ``PLAIN_HTML`` page (as the logs page): its script polls the data URL
about once a second for the tab shown::

    GET <data_url>?tab=tasks|actors|jobs

and ``TablesPage.page_data(params)`` answers from the state API only: the
newest ``MAX_ROWS`` tasks (``list_tasks``), every actor, every job (the
drivers, with the submission id of a submitted job), each row cut to what
the table shows, plus the count of each tab's rows by state.

In the page, the filter box takes words that must all match somewhere in
a row, and ``column=value`` (or ``column!=value``) for one column
(``state=FAILED``, ``name=train``, ``job_id=02000000``); a state menu
narrows further; a click on a header sorts by it. Links: a task's or an
actor's worker opens its log on the logs page (``logs#node_id=..&pid=..``),
a task's actor and an actor's tasks switch tabs with the filter set, a
job's tasks likewise. The filter and tab live in the URL's hash, so a link
or a reload shows the same rows.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import Any

from jray.jupyter.views._base import PLAIN_PALETTE, View
from jray.util import state

MAX_ROWS = 2000  # newest tasks shown; the GCS keeps up to 100,000

# What a reader looks for first comes first: at 1280 px the columns past the
# panel's width are a scroll away (the error used to be the last of twelve).
TASK_COLUMNS = ("task_id", "name", "state", "duration_ms", "start_time_ms", "worker_pid", "error", "actor_id",
                "job_id", "node_id", "attempt", "type")
ACTOR_COLUMNS = ("actor_id", "class_name", "name", "state", "job_id", "node_id", "pid", "num_restarts",
                 "death_cause")
JOB_COLUMNS = ("job_id", "submission_id", "status", "type", "entrypoint", "driver_pid", "start_time", "end_time",
               "message")


class TablesPage(View):
    """Tasks, actors and jobs as filterable tables (a ``PLAIN_HTML`` page)."""

    PLAIN_HTML = True
    SOURCES: dict[str, Any] = {}

    def compute(self) -> dict[str, Any]:
        return {}  # no Bokeh sources: page_data() answers the polls

    def page_data(self, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        tab = (params or {}).get("tab") or "tasks"
        kw = self.state_kwargs
        if tab == "actors":
            rows = [_actor(a) for a in state.list_actors(limit=0, detail=True, **kw)]
        elif tab == "jobs":
            rows = [_job(j) for j in state.list_jobs(limit=0, detail=True, **kw)]
        elif tab == "tasks":
            rows = [_task(t) for t in state.list_tasks(limit=MAX_ROWS, detail=True, **kw)]
            rows.reverse()  # newest first
        else:
            return {"tab": tab, "error": f"no tab {tab!r}: tasks, actors or jobs", "rows": []}
        return {"tab": tab, "rows": rows, "max_rows": MAX_ROWS, "error": None}

    def html(self, data_url: str, title: str) -> str:
        return (_HTML.replace("__TITLE__", html.escape(title))
                .replace("__PALETTE__", PLAIN_PALETTE)
                .replace("__DATA_URL__", _js(data_url))
                .replace("__COLUMNS__", _js({"tasks": TASK_COLUMNS, "actors": ACTOR_COLUMNS, "jobs": JOB_COLUMNS})))


def _task(t: dict[str, Any]) -> dict[str, Any]:
    start, end = t.get("start_time_ms") or 0, t.get("end_time_ms") or 0
    err = t.get("error_message") or ""
    return {"task_id": t["task_id"], "name": t.get("name") or t.get("func_or_class_name") or "",
            "state": t["state"], "type": t.get("type", ""), "actor_id": t.get("actor_id") or "",
            "job_id": t.get("job_id") or "", "node_id": t.get("node_id") or "", "worker_pid": t.get("worker_pid") or "",
            "attempt": t.get("attempt_number", 0), "duration_ms": (end - start) if start and end else "",
            "start_time_ms": start or "", "error": err.strip().splitlines()[-1][:300] if err.strip() else ""}


def _actor(a: dict[str, Any]) -> dict[str, Any]:
    cause = a.get("death_cause")
    if isinstance(cause, dict):
        cause = cause.get("message") or json.dumps(cause)
    return {"actor_id": a["actor_id"], "class_name": a.get("class_name", ""), "name": a.get("name") or "",
            "state": a["state"], "job_id": a.get("job_id") or "", "node_id": a.get("node_id") or "",
            "pid": a.get("pid") or "", "num_restarts": a.get("num_restarts", 0), "death_cause": str(cause or "")[:300]}


def _job(j: dict[str, Any]) -> dict[str, Any]:
    return {"job_id": j.get("job_id") or "", "submission_id": j.get("submission_id") or "",
            "status": j.get("status", ""), "type": j.get("type", ""), "entrypoint": j.get("entrypoint") or "",
            "driver_pid": j.get("driver_pid") or "", "start_time": j.get("start_time") or "",
            "end_time": j.get("end_time") or "", "message": str(j.get("message") or "")[:300]}


def _js(value: Any) -> str:
    """A JSON literal safe inside a <script> element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_HTML = r"""<!doctype html>
<html><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
__PALETTE__
body { margin: 0; }
#jray-bar { position: sticky; top: 0; background: var(--bg); padding: 6px 8px; border-bottom: 1px solid var(--line);
            display: flex; gap: 8px; align-items: center; flex-wrap: wrap; z-index: 1; }
.jray-tab { border: 1px solid var(--line); background: var(--input); color: var(--fg); padding: 3px 10px;
            border-radius: 4px; cursor: pointer; font: inherit; }
.jray-tab.jray-on { border-color: var(--accent); color: var(--accent); font-weight: 600; }
#jray-filter { flex: 1; min-width: 200px; padding: 3px 6px; }
#jray-count, #jray-status { font-size: 11px; color: var(--muted); }
table { border-collapse: collapse; width: 100%; }
th { text-align: left; font-weight: 600; padding: 4px 6px; border-bottom: 2px solid var(--line); cursor: pointer;
     white-space: nowrap; position: sticky; top: 37px; background: var(--bg); }
th.jray-sorted::after { content: " \25BE"; }
th.jray-sorted.jray-asc::after { content: " \25B4"; }
td { padding: 3px 6px; border-bottom: 1px solid var(--line); white-space: nowrap; overflow: hidden;
     text-overflow: ellipsis; max-width: 260px; }
td.jray-num { text-align: right; font-variant-numeric: tabular-nums; }
td.jray-id { max-width: 130px; font-family: ui-monospace, monospace; font-size: 12px; }
tr:hover td { background: var(--hover); }
a { color: var(--accent); text-decoration: none; cursor: pointer; }
a:hover { text-decoration: underline; }
.jray-FAILED, .jray-DEAD { color: var(--bad); font-weight: 600; }
.jray-FINISHED, .jray-SUCCEEDED, .jray-ALIVE { color: var(--ok); }
.jray-RUNNING { color: var(--run); font-weight: 600; }
#jray-error { color: var(--bad); padding: 6px 8px; }
</style></head>
<body>
<div id="jray-bar">
  <button class="jray-tab" data-tab="tasks">Tasks</button>
  <button class="jray-tab" data-tab="actors">Actors</button>
  <button class="jray-tab" data-tab="jobs">Jobs</button>
  <input id="jray-filter" type="search" autocomplete="off"
         placeholder="filter: words, column=value, column!=value" title="e.g. state=FAILED name=train">
  <select id="jray-state"><option value="">every state</option></select>
  <span id="jray-count"></span><span id="jray-status"></span>
</div>
<div id="jray-error"></div>
<table><thead id="jray-head"></thead><tbody id="jray-body"></tbody></table>
<script type="text/javascript">
(function () {
  const url = __DATA_URL__, COLUMNS = __COLUMNS__, period = 1000;
  const STATE = {tasks: "state", actors: "state", jobs: "status"};
  const NUMERIC = new Set(["worker_pid", "pid", "attempt", "duration_ms", "num_restarts", "driver_pid"]);
  const TIMES = new Set(["start_time_ms", "start_time", "end_time"]);
  const IDS = new Set(["task_id", "actor_id", "node_id", "job_id"]);
  const LABELS = {duration_ms: "duration", start_time_ms: "started", start_time: "started", end_time: "ended",
                  num_restarts: "restarts", worker_pid: "worker pid", submission_id: "submission"};
  const $ = (id) => document.getElementById(id);
  const filter = $("jray-filter"), stateSel = $("jray-state");
  let tab = "tasks", rows = [], sortKey = null, asc = false, busy = false, updates = 0, maxRows = 0;

  function readHash() {
    const h = new URLSearchParams(location.hash.slice(1));
    if (COLUMNS[h.get("tab")]) tab = h.get("tab");
    filter.value = h.get("q") || "";
  }
  function writeHash() {
    const h = new URLSearchParams();
    h.set("tab", tab);
    if (filter.value) h.set("q", filter.value);
    history.replaceState(null, "", "#" + h.toString());
  }
  function show(newTab, q) {
    if (newTab !== tab) {  // another table, other columns: its own filter (a link sets one)
      tab = newTab; rows = []; sortKey = null; stateSel.value = ""; filter.value = "";
    }
    if (q !== undefined) filter.value = q;
    writeHash(); render(); tick();
  }
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function link(text, onclick, href) {
    const a = el("a", "", text);
    if (href) { a.href = href; a.target = "_blank"; } else a.addEventListener("click", onclick);
    return a;
  }
  function fmt(key, v) {
    if (v === "" || v === null || v === undefined) return "";
    if (TIMES.has(key)) return new Date(Number(v)).toLocaleTimeString();
    if (key === "duration_ms") return Number(v) >= 1000 ? (Number(v) / 1000).toFixed(2) + " s" : v + " ms";
    if (key === "actor_id" || key === "node_id") return String(v).slice(0, 12);
    return String(v);
  }
  function matches(row) {
    const words = filter.value.trim().split(/\s+/).filter(Boolean);
    for (const w of words) {
      const m = w.match(/^([a-z_]+)(!?=)(.*)$/);
      if (m && COLUMNS[tab].includes(m[1])) {
        const have = String(row[m[1]] ?? "").toLowerCase(), want = m[3].toLowerCase();
        const hit = have === want || (IDS.has(m[1]) && want && have.startsWith(want));
        if ((m[2] === "=") !== hit) return false;
      } else {
        const lw = w.toLowerCase();
        if (!COLUMNS[tab].some((c) => String(row[c] ?? "").toLowerCase().includes(lw))) return false;
      }
    }
    return !stateSel.value || row[STATE[tab]] === stateSel.value;
  }
  function cell(key, row) {
    const td = el("td", NUMERIC.has(key) ? "jray-num" : IDS.has(key) ? "jray-id" : "");
    const v = row[key];
    if (key === "state" || key === "status") { td.appendChild(el("span", "jray-" + v, v)); return td; }
    const pid = key === "worker_pid" || key === "pid" || key === "driver_pid";
    if (pid && v && row.node_id !== undefined) {
      const h = new URLSearchParams({node_id: row.node_id || "", pid: String(v),
                                     title: (row.name || row.class_name || "worker") + " (pid " + v + ")"});
      td.appendChild(link(String(v), null, "logs#" + h.toString()));
    } else if (key === "actor_id" && v && tab === "tasks") {
      td.appendChild(link(fmt(key, v), () => show("actors", "actor_id=" + v)));
    } else if (key === "actor_id" && v && tab === "actors") {
      td.appendChild(link(fmt(key, v), () => show("tasks", "actor_id=" + v)));
    } else if (key === "job_id" && v && tab === "jobs") {
      td.appendChild(link(String(v), () => show("tasks", "job_id=" + v)));
    } else {
      td.textContent = fmt(key, v);
    }
    if (v !== "" && v !== null && v !== undefined) td.title = String(v);
    return td;
  }
  function render() {
    for (const b of document.querySelectorAll(".jray-tab")) b.classList.toggle("jray-on", b.dataset.tab === tab);
    const cols = COLUMNS[tab];
    const head = $("jray-head"), body = $("jray-body");
    head.replaceChildren();
    const tr = el("tr");
    for (const c of cols) {
      const th = el("th", c === sortKey ? "jray-sorted" + (asc ? " jray-asc" : "") : "",
                    LABELS[c] || c.replace(/_/g, " "));
      th.addEventListener("click", () => { asc = sortKey === c ? !asc : NUMERIC.has(c) ? false : true;
                                           sortKey = c; render(); });
      tr.appendChild(th);
    }
    head.appendChild(tr);
    const states = [...new Set(rows.map((r) => r[STATE[tab]]))].sort();
    const keep = stateSel.value;
    stateSel.replaceChildren(el("option", "", "every state"));
    stateSel.firstChild.value = "";
    for (const s of states) { const o = el("option", "", s); o.value = s; stateSel.appendChild(o); }
    stateSel.value = states.includes(keep) ? keep : "";
    let shown = rows.filter(matches);
    if (sortKey) {
      const k = sortKey, num = NUMERIC.has(k) || TIMES.has(k);
      shown = shown.slice().sort((a, b) => {
        const x = a[k], y = b[k];
        const d = num ? (Number(x) || 0) - (Number(y) || 0) : String(x ?? "").localeCompare(String(y ?? ""));
        return asc ? d : -d;
      });
    }
    body.replaceChildren(...shown.slice(0, 1000).map((r) => {
      const row = el("tr");
      row.dataset.id = r.task_id || r.actor_id || r.job_id || "";
      for (const c of cols) row.appendChild(cell(c, r));
      return row;
    }));
    const capped = tab === "tasks" && rows.length >= maxRows ? " (the newest " + maxRows + ")" : "";
    $("jray-count").textContent = shown.length + " of " + rows.length + " " + tab + capped +
      (shown.length > 1000 ? ", the first 1000 shown" : "");
  }
  async function tick() {
    if (busy) return;
    busy = true;
    const want = tab;
    try {
      const r = await fetch(url + (url.includes("?") ? "&" : "?") + "tab=" + encodeURIComponent(want),
                            {credentials: "same-origin", cache: "no-store", headers: {"Accept": "application/json"}});
      if (!r.ok) { $("jray-status").textContent = "update failed: HTTP " + r.status; return; }
      const data = await r.json();
      if (data.tab !== tab) return;
      $("jray-error").textContent = data.error || "";
      rows = data.rows || []; maxRows = data.max_rows || 0;
      render();
      updates += 1;
      document.body.dataset.jrayUpdates = String(updates);
      $("jray-status").textContent = "updated " + new Date().toLocaleTimeString();
    } catch (e) {
      $("jray-status").textContent = "update failed: " + e;
    } finally {
      busy = false;
    }
  }
  for (const b of document.querySelectorAll(".jray-tab")) b.addEventListener("click", () => show(b.dataset.tab));
  filter.addEventListener("input", () => { writeHash(); render(); });
  stateSel.addEventListener("change", render);
  window.addEventListener("hashchange", () => { const t = tab; readHash(); if (t !== tab) rows = []; render(); tick(); });
  readHash(); render(); tick();
  setInterval(tick, period);
})();
</script>
</body></html>
"""
