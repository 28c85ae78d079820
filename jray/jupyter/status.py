"""``%jray status``, ``%jray nodes``, ``%jray dashboard``: the cluster at a glance.

Each returns an object with a text ``repr`` (terminals) and ``_repr_html_``
(notebooks), built from the GCS node table (the same state API every view
reads).
"""

from __future__ import annotations

import html
from typing import Any


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


class Table:
    """A titled table that renders as text and as HTML."""

    def __init__(self, title: str, header: list[str], rows: list[list[str]], note: str = "") -> None:
        self.title = title
        self.header = header
        self.rows = rows
        self.note = note

    def __repr__(self) -> str:
        cols = [self.header] + self.rows
        widths = [max(len(r[i]) for r in cols) for i in range(len(self.header))]
        lines = [self.title]
        for r in cols:
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        th = "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in self.header)
        trs = "".join("<tr>" + "".join(f"<td style='text-align:left'>{html.escape(c)}</td>" for c in r) + "</tr>"
                      for r in self.rows)
        note = f"<div><i>{html.escape(self.note)}</i></div>" if self.note else ""
        return (f"<div class='jray-view'><b>{html.escape(self.title)}</b><table><tr>{th}</tr>{trs}</table>"
                f"{note}</div>")


def _nodes() -> list[Any]:
    from jray import api

    return api._node_infos()


def status() -> Table:
    nodes = _nodes()
    alive = [n for n in nodes if n.alive]
    total: dict[str, float] = {}
    avail: dict[str, float] = {}
    for n in alive:
        for k, v in n.resources_total.items():
            total[k] = total.get(k, 0.0) + v
        for k, v in n.resources_available.items():
            avail[k] = avail.get(k, 0.0) + v
    rows = [["nodes", f"{len(alive)} alive" + (f", {len(nodes) - len(alive)} dead" if len(nodes) > len(alive) else "")]]
    for k in sorted(total, key=lambda k: (k not in ("CPU", "GPU", "memory"), k)):
        used = total[k] - avail.get(k, 0.0)
        if k == "memory":
            rows.append([k, f"{_gib(used)} of {_gib(total[k])} in use"])
        else:
            rows.append([k, f"{used:g} of {total[k]:g} in use"])
    store = sum(n.object_store_memory for n in alive)
    used_store = sum(n.store_used for n in alive)
    rows.append(["object store", f"{_gib(used_store)} of {_gib(store)} in use"])
    spilled = sum(n.spilled_bytes for n in alive)
    if spilled:
        rows.append(["spilled", _gib(spilled)])
    busy, idle = sum(n.num_leased_workers for n in alive), sum(n.num_idle_workers for n in alive)
    rows.append(["workers", f"{sum(n.num_workers for n in alive)} ({busy} busy, {idle} idle)"])
    rows.append(["objects", str(sum(n.num_objects for n in alive))])
    rows.append(["pending leases", str(sum(n.pending_leases for n in alive))])
    from jray import api

    ctx = api._context
    address = ctx.address_info.get("gcs_address", "") if ctx is not None else ""
    return Table(f"jray cluster at {address}", ["", ""], rows)


def node_table() -> Table:
    rows = []
    for n in _nodes():
        res = n.resources_total
        av = n.resources_available
        cpu = f"{res.get('CPU', 0) - av.get('CPU', 0):g}/{res.get('CPU', 0):g}"
        gpu = f"{res.get('GPU', 0) - av.get('GPU', 0):g}/{res.get('GPU', 0):g}" if res.get("GPU") else "-"
        rows.append([n.node_id.hex()[:12], n.ip, "head" if n.is_head else "", "alive" if n.alive else "dead",
                     cpu, gpu, f"{_gib(n.store_used)}/{_gib(n.object_store_memory)}", str(n.num_workers)])
    return Table("jray nodes", ["node", "ip", "", "state", "CPU used", "GPU used", "object store", "workers"], rows)


PAGES = {"task_stream": "task stream", "object_store": "object store"}


class Dashboard:
    """Links to the dashboard pages. ``url`` is the pages' folder: under the
    Jupyter server's base URL when its jray extension serves them (a path such
    as ``/user/me/jray/views/``, resolved against the notebook's own origin)."""

    def __init__(self, url: str | None) -> None:
        self.url = url

    def pages(self) -> dict[str, str]:
        if not self.url:
            return {}
        base = self.url if self.url.endswith("/") else self.url + "/"
        return {title: base + name for name, title in PAGES.items()}

    def __repr__(self) -> str:
        if self.url:
            return "jray dashboard: " + ", ".join(f"{t} {u}" for t, u in self.pages().items())
        return ("jray has no dashboard pages running for this cluster (they come with the Jupyter server "
                "extension); %jray status and %jray nodes show the cluster here.")

    def _repr_html_(self) -> str:
        if self.url:
            links = " · ".join(f"<a href='{html.escape(u)}' target='_blank'>{html.escape(t)}</a>"
                               for t, u in self.pages().items())
            return f"<div class='jray-view'><b>jray dashboard</b>: {links}</div>"
        return f"<i>{html.escape(repr(self))}</i>"


def dashboard_url() -> str | None:
    """The pages of this driver's cluster: the context's, else those the Jupyter
    server extension announces to its kernels (``JRAY_DASHBOARD_URL``) when the
    driver is attached to that server's cluster (``JRAY_ADDRESS``)."""
    import os

    from jray import api

    ctx = api._context
    url = getattr(ctx, "dashboard_url", None) if ctx is not None else None
    if url:
        return str(url)
    served = os.environ.get("JRAY_DASHBOARD_URL")
    address = ctx.address_info.get("gcs_address") if ctx is not None else None
    if served and (address is None or address == os.environ.get("JRAY_ADDRESS")):
        return served
    return None


def dashboard() -> Dashboard:
    return Dashboard(dashboard_url())
