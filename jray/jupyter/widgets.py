"""``jray.widgets.ClusterMonitor()``: the cluster at a glance, live, in a notebook.

::

    from jray.widgets import ClusterMonitor
    ClusterMonitor()            # or: jray.widgets.ClusterMonitor(period=2)

An ipywidgets box: a header (nodes, CPUs, tasks), the task counts by state,
and one panel per live node with a bar per resource (CPU, GPU, custom
resources: used of total; not the logical ``memory`` resource, see
``_shown``), its workers (busy/idle) and its object store (used of
capacity, objects, spilled). On a cluster with an autoscaler (``jray up``, ``jray.autoscaler.sdk.create_or_update_cluster``)
a line shows each worker node type's nodes, those still launching, pinned
counts, the work waiting for resources and the last decision, so a user
watches nodes arrive. Everything comes from the state
API (``jray.util.state.list_nodes`` rows, which carry the stats raylets send
with their heartbeats, and ``task_state_counts``), read by a daemon thread
every ``period`` seconds, so the monitor moves while a cell blocks in
``jray.get``. ``close()`` stops and joins the thread (and closes the
widgets). ``update()`` refreshes once, on the caller's thread.

This module imports ipywidgets; ``import jray`` does not import it (the
``jray.widgets`` attribute loads it on first use). ``jray.widgets`` is its
public name; ``jray/widgets.py`` is an alias of this module, its home before
it moved here beside the other notebook code.
"""

from __future__ import annotations

import html
import logging
import threading
from typing import Any

try:
    import ipywidgets as W
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError("jray.widgets needs ipywidgets: pip install 'jray[notebook]'") from e

from jray._private.formatting import fmt_bytes
from jray.jupyter.polling import Polling
from jray.util import state

logger = logging.getLogger(__name__)

__all__ = ["ClusterMonitor", "NodePanel"]

STATES = ("SUBMITTED", "PENDING_ARGS", "PENDING_NODE_ASSIGNMENT", "SCHEDULED", "RUNNING", "FINISHED", "FAILED")


_bytes = fmt_bytes  # the CLI's and the views' format


def _shown(resource: str) -> bool:
    """Resources worth a bar: not the per-node ``node:<ip>`` markers, nor
    ``memory``, which is what tasks reserve with ``memory=`` (almost always
    nothing, so its bar read "0 B / 16.1 GiB" whatever the node used: the
    machine's memory in use has a bar of its own, from the raylet's stats);
    the store has its own bar too."""
    return not resource.startswith("node:") and resource not in ("memory", "object_store_memory")


def _order(resource: str) -> tuple[int, str]:
    return ({"CPU": 0, "GPU": 1, "memory": 2}.get(resource, 3), resource)


class _Bar(W.HBox):  # type: ignore[misc]  # ipywidgets is untyped
    """A labelled bar: ``used`` of ``total``."""

    def __init__(self, name: str) -> None:
        self.progress = W.FloatProgress(value=0.0, min=0.0, max=1.0, description=name,
                                        layout=W.Layout(width="60%"))
        self.label = W.Label(value="")
        super().__init__([self.progress, self.label])

    def set(self, used: float, total: float, text: str) -> None:
        self.progress.max = max(float(total), 1e-9)
        self.progress.value = min(max(float(used), 0.0), self.progress.max)
        frac = used / total if total else 0.0
        self.progress.bar_style = "danger" if frac >= 0.95 else ("warning" if frac >= 0.75 else "")
        self.label.value = text

    def close(self) -> None:
        for w in (self.progress, self.label):
            w.close()
        super().close()


class NodePanel(W.VBox):  # type: ignore[misc]
    """One node: title, a bar per resource, workers, object store."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.title = W.HTML(value="")
        self.bars: dict[str, _Bar] = {}
        self.bars_box = W.VBox([])
        self.workers = W.Label(value="")
        self.memory = _Bar("memory")  # the machine's memory in use (every process, not only jray's)
        self.store = _Bar("store")
        super().__init__([self.title, self.bars_box, self.workers, self.memory, self.store],
                         layout=W.Layout(border="1px solid #ddd", padding="4px", margin="2px 0"))

    def show(self, row: dict[str, Any]) -> None:
        head = " (head)" if row.get("is_head_node") else ""
        self.title.value = (f"<b>node {html.escape(row['node_id'][:12])}</b> {html.escape(row['node_ip'])}"
                            f"{head}")
        total, avail = row["resources_total"], row["resources_available"]
        names = sorted((r for r in total if _shown(r)), key=_order)
        for r in names:
            bar = self.bars.get(r)
            if bar is None:
                bar = self.bars[r] = _Bar(r)
            used = total[r] - avail.get(r, 0.0)
            text = f"{used:g} / {total[r]:g}"
            bar.set(used, total[r], text)
        for r in [r for r in self.bars if r not in names]:
            self.bars.pop(r).close()
        children = tuple(self.bars[r] for r in names)
        if self.bars_box.children != children:
            self.bars_box.children = children
        busy, idle = row.get("num_busy_workers", 0), row.get("num_idle_workers", 0)
        pending = row.get("pending_leases", 0)
        self.workers.value = (f"workers: {row.get('num_workers', 0)} ({busy} busy, {idle} idle)"
                              + (f", {pending} lease requests waiting" if pending else ""))
        mem_used, mem_total = row.get("memory_used") or 0, row.get("memory_total") or 0
        self.memory.layout.display = "" if mem_total else "none"  # a raylet that reports none
        if mem_total:
            cpu = row.get("cpu_percent")
            self.memory.set(mem_used, mem_total, f"{_bytes(mem_used)} / {_bytes(mem_total)} used on the machine"
                            + (f", CPU {cpu:.0f}%" if cpu is not None else ""))
        used, cap = row.get("object_store_used", 0), row.get("object_store_memory", 0)
        spilled = row.get("spilled_bytes", 0)
        n = row.get("num_objects", 0)
        self.store.set(used, cap, f"{_bytes(used)} / {_bytes(cap)}, {n} object{'' if n == 1 else 's'}"
                       + (f", {_bytes(spilled)} spilled" if spilled else ""))

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        for w in (self.store, self.memory, self.workers, self.bars_box, self.title):
            w.close()
        super().close()


class ClusterMonitor(Polling, W.VBox):  # type: ignore[misc]
    """Live nodes, resources, workers, tasks by state and object-store use.

    ``period``: seconds between refreshes (``autostart=False``: no thread,
    call ``update()`` yourself). ``address``/``token``: a cluster this
    process is not attached to, as in ``jray.util.state``.
    """

    def __init__(self, period: float = 1.0, *, address: str | None = None, token: str | None = None,
                 autostart: bool = True) -> None:
        self.period = period
        self._kw: dict[str, Any] = {} if address is None else {"address": address, "token": token}
        self.header = W.HTML(value="")
        self.task_counts: dict[str, int] = {}
        self.tasks = W.HTML(value="")
        self.nodes_box = W.VBox([])
        self.panels: dict[str, NodePanel] = {}
        self.autoscaler = W.HTML(value="")
        self.autoscaler_status: dict[str, Any] | None = None
        self.error = W.HTML(value="")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        super().__init__([self.header, self.tasks, self.autoscaler, self.nodes_box, self.error])
        self.update()
        if autostart:
            self.start()

    # -- polling (jray.jupyter.polling.Polling) -----------------------------------------
    _THREAD_NAME = "jray-cluster-monitor"

    def _poll_failed(self, e: Exception) -> None:
        logger.debug("cluster monitor update failed: %s", e)
        with self._lock:  # not on a closed widget (the thread may fail as close() runs)
            if not self._closed:
                self.error.value = f"<i style='color:#b00'>cannot reach the cluster: {html.escape(str(e))}</i>"

    def close(self) -> None:
        self.stop()
        with self._lock:
            self._closed = True
            for p in self.panels.values():
                p.close()
            self.panels.clear()
            for w in (self.header, self.tasks, self.autoscaler, self.nodes_box, self.error):
                w.close()
        super().close()

    # -- one refresh ---------------------------------------------------------------
    def update(self) -> None:
        """Read the state API once and refresh every child widget."""
        nodes = state.list_nodes(limit=10_000, detail=True, **self._kw)
        counts = state.task_state_counts(**self._kw)  # counted by the GCS: cheap however many tasks
        scaler = self._read_autoscaler()
        with self._lock:
            if not self._closed:
                self._show(nodes, dict(counts))
                self._show_autoscaler(scaler)
                self.error.value = ""  # reachable again

    def _read_autoscaler(self) -> dict[str, Any] | None:
        """The autoscaler's published status (one KV read), None without one."""
        from jray._private import autoscaler_state

        try:
            if self._kw:
                return autoscaler_state.read_status_at(self._kw["address"], self._kw["token"] or "")
            return autoscaler_state.read_status()
        except Exception as e:  # noqa: BLE001 - the node table was read; this part is extra
            logger.debug("reading the autoscaler status failed: %s", e)
            return self.autoscaler_status

    def _show_autoscaler(self, st: dict[str, Any] | None) -> None:
        """Nodes on their way (launching, by type), pinned counts, pending
        demand and the last decision: what a user of an autoscaling cluster
        watches while nodes arrive."""
        self.autoscaler_status = st
        if not st:
            self.autoscaler.value = ""
            return
        nodes = st.get("nodes", {})
        launching = nodes.get("launching", {})
        parts = []
        for t, info in sorted((st.get("node_types") or {}).items()):
            run = nodes.get("running", {}).get(t, 0) + nodes.get("idle", {}).get(t, 0)
            txt = f"{html.escape(t)} {run}"
            if launching.get(t):
                txt += f" <b style='color:#b60'>+{launching[t]} launching</b>"
            if info.get("target") is not None:
                txt += f" (scaled to {info['target']})"
            parts.append(txt)
        demand = [d for d in st.get("demand", []) if d.get("kind") != "placement_group"]
        waiting = sum(int(d.get("count", 0)) for d in demand)
        line = (f"<b>autoscaler</b> ({html.escape(str(st.get('provider')))}"
                + ("" if st.get("running", True) else ", stopped") + "): "
                + (" &middot; ".join(parts) or "no worker node types"))
        if waiting:
            line += f" &middot; {waiting} waiting for resources"
        decisions = st.get("decisions") or []
        if decisions:
            d = decisions[-1]
            line += (f"<br><small>last: {html.escape(d['action'])} {d['count']} {html.escape(d['node_type'])}: "
                     f"{html.escape(d['reason'])}</small>")
        failures = st.get("failures") or []
        if failures:
            f = failures[-1]
            line += (f"<br><small style='color:#b00'>{html.escape(f['node_type'])} failed to launch: "
                     f"{html.escape(f['message'])} (retry in {f['retry_in_s']:.0f} s)</small>")
        self.autoscaler.value = line

    def _show(self, nodes: list[dict[str, Any]], counts: dict[str, int]) -> None:
        alive = [n for n in nodes if n["state"] == "ALIVE"]
        dead = len(nodes) - len(alive)
        cpus = sum(n["resources_total"].get("CPU", 0.0) for n in alive)
        used = cpus - sum(n["resources_available"].get("CPU", 0.0) for n in alive)
        workers = sum(n.get("num_workers", 0) for n in alive)
        self.header.value = (f"<b>jray cluster</b>: {len(alive)} node{'s' if len(alive) != 1 else ''} alive"
                             + (f", {dead} dead" if dead else "")
                             + f" &middot; CPU {used:g}/{cpus:g} in use &middot; {workers} workers")
        self.task_counts = {st: counts.get(st, 0) for st in STATES if counts.get(st)}
        extra = {k: v for k, v in counts.items() if k not in STATES}
        self.task_counts.update(extra)
        cells = "".join(f"<td style='padding:0 8px'>{html.escape(k)}<br><b>{v}</b></td>"
                        for k, v in self.task_counts.items())
        self.tasks.value = f"<table><tr><td><b>tasks</b></td>{cells}</tr></table>" if cells else \
            "<i>no tasks yet</i>"
        for n in alive:
            panel = self.panels.get(n["node_id"])
            if panel is None:
                panel = self.panels[n["node_id"]] = NodePanel(n["node_id"])
            panel.show(n)
        ids = {n["node_id"] for n in alive}
        for gone in [k for k in self.panels if k not in ids]:
            self.panels.pop(gone).close()
        children = tuple(self.panels[n["node_id"]] for n in alive)
        if self.nodes_box.children != children:
            self.nodes_box.children = children
        self.error.value = ""


from jray.jupyter.jobs import JobMonitor as JobMonitor  # noqa: E402  - jray.widgets.JobMonitor
