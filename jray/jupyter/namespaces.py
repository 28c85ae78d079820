"""Remote namespaces: the named actors behind ``%%remote --actor NAME``.

Each is a :class:`~jray.jupyter.remote_cell.RemoteNamespace` actor named
``remote-ns:NAME`` in the driver's namespace, created on first use; its
state lives until ``%jray drop NAME`` or the end of the driver's job.
"""

from __future__ import annotations

import html
from typing import Any

import jray
from jray.jupyter.remote_cell import RemoteNamespace

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
    """The handle of namespace ``name``; resource options apply when it is created."""
    handle = _handles.get(name)
    if handle is not None and _alive(handle):
        return handle
    o: dict[str, Any] = {k: v for k, v in opts.items() if k in ("num_cpus", "num_gpus", "resources",
                                                                 "scheduling_strategy")}
    o.setdefault("num_cpus", 0)
    handle = jray.remote(RemoteNamespace).options(name=actor_name(name), get_if_exists=True, **o).remote()
    _handles[name] = handle
    _owned.pop(name, None)  # a new actor, or one made elsewhere: learn its names from its first result
    return handle


def _alive(handle: Any) -> bool:
    from jray._private.protocol import gcs_pb2 as gpb
    from jray._private.worker import global_state

    w = global_state.require_worker()

    async def call() -> Any:
        return await w.gcs.GetActorInfo(gpb.GetActorInfoRequest(actor_id=handle._actor_id))

    reply = w.run_sync(call(), timeout=10)
    return bool(reply.found) and gpb.ActorState.Name(reply.actor.state) != "DEAD"


def _infos() -> list[Any]:
    from jray._private.protocol import gcs_pb2 as gpb
    from jray._private.worker import global_state

    w = global_state.require_worker()

    async def call() -> Any:
        return await w.gcs.ListActors(gpb.ListActorsRequest(namespace=w.namespace, named_only=True))

    actors = w.run_sync(call(), timeout=10).actors
    return [a for a in actors if a.name.startswith(PREFIX) and gpb.ActorState.Name(a.state) != "DEAD"]


def drop(name: str) -> None:
    from IPython.core.error import UsageError

    try:
        handle = jray.get_actor(actor_name(name))
    except ValueError:
        known = ", ".join(a.name[len(PREFIX):] for a in _infos()) or "none"
        raise UsageError(f"no remote namespace named {name!r} (live ones: {known})") from None
    jray.kill(handle)
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
    from jray._private.protocol import gcs_pb2 as gpb

    rows = [(a.name[len(PREFIX):], gpb.ActorState.Name(a.state), a.node_id.hex()[:8], a.pid) for a in _infos()]
    return Listing(sorted(rows))
