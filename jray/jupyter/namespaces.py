"""Remote namespaces: the named actors behind ``%%remote --actor NAME``.

Each is a :class:`~jray.jupyter.remote_cell.RemoteNamespace` actor named
``remote-ns:NAME`` in the driver's namespace, created on first use; its
state lives until ``%jray drop NAME`` or the end of the driver's job.
They are looked up with the state API (``jray.util.state``).
"""

from __future__ import annotations

import html
from typing import Any

from jray import api
from jray.jupyter.remote_cell import RemoteNamespace
from jray.util import state

PREFIX = "remote-ns:"
_handles: dict[str, Any] = {}
_owned: dict[str, set[str]] = {}  # namespace -> the names its cells assigned (kept there, not shipped)


def remote_names(name: str) -> set[str]:
    return _owned.setdefault(name, set())


def remember(name: str, owned: list[str]) -> None:
    _owned[name] = set(owned)


def actor_name(name: str) -> str:
    return PREFIX + name


def get_or_create(name: str, opts: dict[str, Any]) -> Any:
    """The handle of namespace ``name``; resource and runtime_env options
    apply when it is created (a running namespace keeps its own)."""
    handle = _handles.get(name)
    if handle is not None and _alive(handle):
        return handle
    o: dict[str, Any] = {k: v for k, v in opts.items() if k in ("num_cpus", "num_gpus", "resources",
                                                                 "scheduling_strategy", "runtime_env")}
    o.setdefault("num_cpus", 0)
    handle = api.remote(RemoteNamespace).options(name=actor_name(name), get_if_exists=True, **o).remote()
    _handles[name] = handle
    _owned.pop(name, None)  # a new actor, or one made elsewhere: learn its names from its first result
    return handle


def _alive(handle: Any) -> bool:
    row = state.get_actor(handle._actor_id_hex())
    return row is not None and row["state"] != "DEAD"


def _rows() -> list[dict[str, Any]]:
    """State API rows of the live remote namespaces of this driver's namespace."""
    ns = api.get_runtime_context().namespace
    rows = state.list_actors(filters=[("ray_namespace", "=", ns)], limit=0, detail=True)
    return [r for r in rows if r["name"].startswith(PREFIX) and r["state"] != "DEAD"]


def drop(name: str) -> None:
    from IPython.core.error import UsageError

    try:
        handle = api.get_actor(actor_name(name))
    except ValueError:
        known = ", ".join(r["name"][len(PREFIX):] for r in _rows()) or "none"
        raise UsageError(f"no remote namespace named {name!r} (live ones: {known})") from None
    api.kill(handle)
    _handles.pop(name, None)
    _owned.pop(name, None)
    print(f"dropped the remote namespace {name!r}")


class Listing:
    """``%jray actors``: the live remote namespaces."""

    def __init__(self, rows: list[tuple[str, str, str, int]]) -> None:
        self.rows = rows

    def __repr__(self) -> str:
        if not self.rows:
            return "no remote namespaces (create one with %%remote --actor NAME)"
        lines = [f"{'name':<20} {'state':<10} {'node':<10} pid"]
        lines += [f"{n:<20} {s:<10} {node:<10} {pid or '-'}" for n, s, node, pid in self.rows]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        if not self.rows:
            return f"<i>{html.escape(repr(self))}</i>"
        body = "".join(f"<tr><td>{html.escape(n)}</td><td>{s}</td><td><code>{node}</code></td><td>{pid or '-'}</td></tr>"
                       for n, s, node, pid in self.rows)
        return ("<table class='jray-actors'><tr><th>name</th><th>state</th><th>node</th><th>pid</th></tr>"
                f"{body}</table>")


def listing() -> Listing:
    rows = [(r["name"][len(PREFIX):], r["state"], (r["node_id"] or "")[:8], r["pid"] or 0) for r in _rows()]
    return Listing(sorted(rows))
