"""Debugging tasks where they run (Ray's ``ray.util.rpdb`` / ``ray.util.pdb``).

``breakpoint()`` in a task or actor method pauses it and opens pdb on its
frame, over the network, in the cell or script whose ``get``/``wait``
waits on that work (commands are read with ``input()``: a Jupyter input
box, or the terminal). ``c`` lets the task go on, ``q`` fails it with
``BdbQuit``. Nothing waiting? ``%jray debug`` in the notebook, or ``jray
debug`` in a terminal on any machine that has the cluster's address and
token, attaches later.

After a task raised, its worker keeps the failure's frames for a while
(``JRAY_DEBUG_POST_MORTEM_SECONDS``, default 300 s, the last 3 failures per
worker; ``JRAY_DEBUG_POST_MORTEM=0`` keeps none), so::

    try:
        jray.get(f.remote())
    except jray.exceptions.RayTaskError as e:
        jray.util.rpdb.post_mortem(e)      # pdb on the remote frames

or ``%jray debug`` after a cell failed with a task's error, as ``%debug``
does for local code.

Under the hood (``jray._private.debugger``): each worker runs one small
TCP listener on its node's address; a client sends the cluster token
first. Paused breakpoints are listed in the GCS KV (``list_breakpoints``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jray._private import debugger
from jray._private.debugger import DebuggerError
from jray._private.state.client import StateClient

__all__ = ["DebuggerError", "attach", "list_breakpoints", "post_mortem", "set_trace"]


def set_trace(breakpoint_uuid: Any = None) -> None:
    """Pause here (in a task: until a debugger attaches; in a driver: the
    ordinary pdb). Ray's ``ray.util.pdb.set_trace()``; ``breakpoint()``
    does the same in tasks."""
    import sys

    debugger.set_trace(sys._getframe().f_back)


def post_mortem(err: BaseException | None = None, *, commands: list[str] | None = None) -> list[str] | None:
    """pdb on the frames of the task that raised ``err`` (default: the
    exception being handled, or the last one a notebook cell raised).
    ``commands``: play these pdb commands instead of reading input (then
    ``continue``) and return the transcript."""
    import sys

    if err is None:
        err = sys.exc_info()[1] or getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if err is None:
        raise DebuggerError("no error to debug: pass the RayTaskError caught from jray.get")
    if commands is None:
        debugger.post_mortem(err)
        return None
    read, write, transcript = debugger.scripted(commands)
    debugger.post_mortem(err, read=read, write=write)
    return transcript


def list_breakpoints(*, address: str | None = None, token: str | None = None) -> list[dict[str, Any]]:
    """Tasks paused at ``breakpoint()`` anywhere in the cluster, oldest
    first: session, function, where (file:line), pid, node_ip, task_id,
    job_id, address (of the worker's debug listener), time."""
    return debugger.list_sessions(_gcs_call(address, token))


def attach(session: str | dict[str, Any], *, address: str | None = None, token: str | None = None,
           commands: list[str] | None = None) -> list[str] | None:
    """Attach to a paused task (a ``list_breakpoints`` row or its session
    id). ``commands``: play them (then ``continue``) and return the
    transcript; otherwise read commands with ``input()``."""
    if isinstance(session, str):
        rows = [r for r in list_breakpoints(address=address, token=token) if r.get("session") == session]
        if not rows:
            raise DebuggerError(f"no task is paused at a breakpoint with session {session!r}")
        info = rows[0]
    else:
        info = session
    tok = token if token is not None else _token(address, token)
    if commands is None:
        if not debugger.open_session(info, tok):
            raise DebuggerError(f"the task paused in {info.get('where')} is no longer waiting for a debugger")
        return None
    read, write, transcript = debugger.scripted(commands)
    if not debugger.open_session(info, tok, read=read, write=write):
        raise DebuggerError(f"the task paused in {info.get('where')} is no longer waiting for a debugger: "
                            + "".join(transcript).strip())
    return transcript


def _token(address: str | None, token: str | None) -> str:
    if token is not None:
        return token
    client = StateClient(address, token)
    if client.worker is not None:
        return str(client.worker.token or "")
    return client.token or ""


def _gcs_call(address: str | None, token: str | None) -> Callable[[Any], Any]:
    client = StateClient(address, token)

    def call(factory: Callable[[Any], Any]) -> Any:
        return client.run(lambda gcs, _raylet: factory(gcs))

    return call
