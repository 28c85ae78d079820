"""``%%remote`` and ``%jray``: the cell magics (``%load_ext jray``).

``%%remote`` runs a cell as a task on the cluster: the globals it reads are
shipped, its output streams back into the cell, the names it assigns come
back into the notebook. ``--actor NAME`` runs it in a persistent remote
namespace, ``--all-nodes`` once on every node. ``--working-dir DIR``,
``--pip REQ``, ``--env KEY=VALUE`` and ``--runtime-env JSON`` give the
cell a runtime_env (a local directory is uploaded from the notebook's
machine, which need not be a node). ``%jray`` holds the line
commands: status, nodes, dashboard, actors, drop, autoremote.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from jray import api, exceptions
from jray.jupyter import autoremote, cell_source, namespaces, routing, session, shipping, status
from jray.jupyter.remote_cell import CellRequest, CellResult, run_cell
from jray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

_run_cell_remote: Any = None


def _remote_fn() -> Any:
    global _run_cell_remote
    if _run_cell_remote is None:
        # A cell is not retried behind the user's back: side effects could run twice.
        _run_cell_remote = api.remote(max_retries=0)(run_cell)
    return _run_cell_remote


@magics_class
class JrayMagics(Magics):
    """The magics of ``%load_ext jray``."""

    shell: Any  # set by IPython when the magics are registered

    @magic_arguments()
    @argument("--num-cpus", type=float, default=None, help="CPUs the cell's task holds (default 1).")
    @argument("--num-gpus", type=float, default=None, help="GPUs the cell's task holds.")
    @argument("--resources", type=str, default=None, metavar="JSON",
              help='Custom resources as JSON, e.g. \'{"accelerator": 1}\'.')
    @argument("--name", type=str, default=None, help="The task's name (shown in the state API).")
    @argument("--node", type=str, default=None, metavar="NODE_ID",
              help="Run on this node (its id, a unique prefix of it, or its IP address).")
    @argument("-o", "--outputs", type=str, default=None, metavar="a,b",
              help="Names to copy back into the notebook (default: every name the cell assigns).")
    @argument("--no-block", type=str, default=None, metavar="VAR",
              help="Return at once; the cell's ObjectRef is stored in VAR (jray.get(VAR) gives a CellResult).")
    @argument("--actor", type=str, default=None, metavar="NAME",
              help="Run inside the persistent remote namespace NAME (created on first use).")
    @argument("--all-nodes", action="store_true", help="Run once on every node; outputs grouped by node.")
    @argument("--working-dir", type=str, default=None, metavar="DIR",
              help="Ship DIR (on this machine) with the cell: it runs there, with DIR importable.")
    @argument("--pip", type=str, action="append", default=None, metavar="REQ",
              help="A pip requirement the cell needs (repeatable); installed once per node in a cached venv.")
    @argument("--env", type=str, action="append", default=None, metavar="KEY=VALUE",
              help="An environment variable for the cell (repeatable).")
    @argument("--runtime-env", type=str, default=None, metavar="JSON",
              help="Any other runtime_env fields as JSON (the options above are merged over it).")
    @argument("--from-autoremote", action="store_true", help=argparse.SUPPRESS)
    @cell_magic
    def remote(self, line: str, cell: str) -> Any:
        """Run this cell on the cluster."""
        args = parse_argstring(self.remote, line)
        opts = _task_options(args)
        if args.actor is not None and args.all_nodes:
            raise UsageError("%%remote: --actor and --all-nodes cannot be combined.")
        if args.node is not None and args.all_nodes:
            raise UsageError("%%remote: --node and --all-nodes cannot be combined.")
        if args.no_block is not None and not args.no_block.isidentifier():
            raise UsageError(f"%%remote: --no-block needs a variable name, got {args.no_block!r}.")
        outputs = _parse_outputs(args.outputs)
        if not cell.strip():
            return None
        if not api.is_initialized():
            api.init()
        remote_names = namespaces.remote_names(args.actor) if args.actor is not None else None
        req = self._request(cell, outputs, 1 if args.from_autoremote else 2, remote_names)
        if args.node is not None:
            opts["scheduling_strategy"] = _node_strategy(args.node)
        if not args.all_nodes:
            _warn_if_no_node_fits(opts, default_cpus=0 if args.actor is not None else 1)
        if args.all_nodes:
            return self._run_all_nodes(req, opts, args)
        if args.actor is not None:
            ref = self._submit_actor(req, args.actor, opts, args)
        else:
            ref = self._submit_task(req, opts)
        if args.no_block is not None:
            self.shell.user_ns[args.no_block] = ref
            return None
        return self._finish(ref, args.actor)

    # -- building and submitting -----------------------------------------------------
    def _request(self, cell: str, outputs: list[str] | None, first_line: int,
                 remote_names: set[str] | None) -> CellRequest:
        count = running_cell_number(self.shell)
        filename = f"<jray-remote-cell-{count}-{id(cell):x}>"
        try:
            tree = cell_source.parse(cell, filename, first_line)
        except SyntaxError as e:
            e.filename = f"Cell In[{count}]"
            raise
        names = cell_source.names_of(tree)
        shipped = shipping.globals_for(names, self.shell.user_ns, remote_names)
        return CellRequest(source=cell, filename=filename, label=f"Cell In[{count}]", first_line=first_line,
                           globals=shipped, outputs=outputs)

    def _submit_task(self, req: CellRequest, opts: dict[str, Any]) -> Any:
        opts.setdefault("name", "remote")
        try:
            ref = _remote_fn().options(**opts).remote(req)
        except TypeError as e:
            raise _explain_send_failure(req, e) from None
        self._quiet_prefix(ref)
        return ref

    def _submit_actor(self, req: CellRequest, name: str, opts: dict[str, Any], args: Any) -> Any:
        handle = namespaces.get_or_create(name, opts)
        try:
            ref = handle.run.remote(req)
        except TypeError as e:
            raise _explain_send_failure(req, e) from None
        s = session.current()
        if s is not None:
            s.actor_calls[ref.task_id().binary()] = handle._actor_id
        self._quiet_prefix(ref)
        return ref

    def _quiet_prefix(self, ref: Any) -> None:
        s = session.current()
        if s is not None:  # a %%remote cell prints like a local one: no "(name pid=N)" prefix
            s.router.label(ref.task_id().binary(), routing.NO_PREFIX)

    def _finish(self, ref: Any, actor: str | None) -> Any:
        try:
            result: CellResult = api.get(ref)
        except exceptions.RemoteCellError as e:
            raise _plain_cell_error(e) from None
        finally:
            s = session.current()
            if s is not None:
                s.router.forget(ref.task_id().binary())
        if actor is not None:
            namespaces.remember(actor, result.owned)
        return self._apply(result)

    def _apply(self, result: CellResult) -> Any:
        self.shell.user_ns.update(result.outputs)
        if result.skipped:
            why = "; ".join(f"{k}: {v}" for k, v in result.skipped.items())
            sys.stderr.write(f"[jray] not copied back from the cluster: {why}\n")
        return result.value if result.has_value else None

    # -- --all-nodes -------------------------------------------------------------------
    def _run_all_nodes(self, req: CellRequest, opts: dict[str, Any], args: Any) -> Any:
        alive = [n for n in api.nodes() if n["Alive"]]
        s = session.current()
        runs = []
        for n in alive:
            o = dict(opts, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
            o.setdefault("name", "remote")
            try:
                ref = _remote_fn().options(**o).remote(req)
            except TypeError as e:
                raise _explain_send_failure(req, e) from None
            captured = s.router.capture(ref.task_id().binary()) if s is not None else []
            runs.append((n, ref, captured))
        if args.no_block is not None:
            self.shell.user_ns[args.no_block] = [ref for _, ref, _ in runs]
            return None
        results: list[CellResult | None] = []
        errors: list[tuple[str, exceptions.RemoteCellError]] = []
        try:
            refs = [ref for _, ref, _ in runs]
            api.wait(refs, num_returns=len(refs))  # Ctrl-C here cancels every node's run
            for n, ref, captured in runs:
                head = f"[node {n['NodeID'][:8]} {n['NodeManagerAddress']}]"
                try:
                    results.append(api.get(ref))
                except exceptions.RemoteCellError as e:
                    results.append(None)
                    errors.append((head, _plain_cell_error(e)))
                print(head)
                routing.print_entries(captured, self._show_here)
                if errors and errors[-1][0] == head:
                    sys.stderr.write("\n".join(errors[-1][1]._render_traceback_()) + "\n")
        finally:
            if s is not None:
                for _, ref, _ in runs:
                    s.router.forget(ref.task_id().binary())
        if errors:
            head, err = errors[0]
            raise exceptions.RemoteCellError(err.ename, err.evalue, [
                f"{err.ename}: {err.evalue} (the cell raised on {len(errors)} of {len(runs)} nodes; first: {head})"])
        names: dict[str, list[Any]] = {}
        for r in results:
            assert r is not None
            for k in r.outputs:
                names.setdefault(k, [])
        for k in names:
            self.shell.user_ns[k] = [r.outputs.get(k) if r is not None else None for r in results]
        values = [r.value for r in results if r is not None]
        return values if any(r is not None and r.has_value for r in results) else None

    def _show_here(self, msg: dict[str, Any]) -> None:
        s = session.current()
        if s is not None:
            s.router.show(s.router._current_parent(), msg)

    # -- %jray ------------------------------------------------------------------------------
    @line_magic
    def jray(self, line: str) -> Any:
        """%jray status | nodes | jobs | stack | profile ID [S] | debug | dashboard | actors | drop NAME | autoremote on|off"""
        words = line.split()
        if not words:
            raise UsageError(_JRAY_USAGE)
        cmd, rest = words[0], words[1:]
        if cmd == "autoremote":
            if rest not in (["on"], ["off"]):
                raise UsageError("usage: %jray autoremote on|off")
            (autoremote.enable if rest == ["on"] else autoremote.disable)(self.shell)
            print(f"autoremote {rest[0]}: " + ("every following cell runs as %%remote (%jray autoremote off "
                                               "to stop)" if rest == ["on"] else "cells run locally again"))
            return None
        if cmd == "drop":
            if len(rest) != 1:
                raise UsageError("usage: %jray drop NAME")
            _require_init()
            namespaces.drop(rest[0])
            return None
        if cmd == "profile":
            return _profile(rest)
        if cmd == "debug":
            return _debug(rest)
        if rest:
            raise UsageError(f"%jray {cmd} takes no arguments.\n{_JRAY_USAGE}")
        if cmd == "stack":
            _require_init()
            from jray.util.stacks import dump_stacks, format_stacks

            print(format_stacks(dump_stacks()))
            return None
        if cmd == "jobs":  # the jobs API is the head's: no jray.init() needed
            from jray.jupyter import jobs

            try:
                return jobs.job_table()
            except ConnectionError as e:
                raise UsageError(f"%jray jobs: {e}") from None
        if cmd not in ("status", "nodes", "dashboard", "actors"):
            raise UsageError(f"unknown command {cmd!r}.\n{_JRAY_USAGE}")
        _require_init()
        if cmd == "status":
            return status.status()
        if cmd == "nodes":
            return status.node_table()
        if cmd == "dashboard":
            return status.dashboard()
        return namespaces.listing()


_JRAY_USAGE = """usage: %jray COMMAND
  status            the cluster: nodes, CPUs/GPUs in use, object store, tasks
  nodes             one row per node
  jobs              the submitted jobs (jray job submit): status, entrypoint, times
  stack             the stack of every worker on this machine and the task it runs
  profile ID [S]    a flame graph of S seconds (5) of an actor's, task's or pid's CPU
  debug [--list]    pdb on a task paused at breakpoint(), else on the frames of the
                    task whose error the last cell raised (post-mortem, as %debug)
  dashboard         where the dashboard pages are
  actors            the remote namespaces of %%remote --actor
  drop NAME         end the remote namespace NAME
  autoremote on|off run every following cell as %%remote (or stop)"""


def _debug(args: list[str]) -> None:
    """``%jray debug``: attach to the tasks of this kernel paused at
    ``breakpoint()`` (announced here, or listed for this job); without one,
    a post-mortem of the task whose error the last cell raised.
    ``--list``: the paused tasks of the whole cluster."""
    if args not in ([], ["--list"]):
        raise UsageError("usage: %jray debug [--list]")
    _require_init()
    import sys

    from jray._private import debugger
    from jray.util import rpdb

    if args == ["--list"]:
        from jray.cli.debug import _table

        rows = rpdb.list_breakpoints()
        print(_table(rows) if rows else "No task is paused at a breakpoint.")
        return
    if debugger.open_announced():
        return
    job = jray_job_id()
    mine = [r for r in rpdb.list_breakpoints() if r.get("job_id") == job]
    opened = sum(debugger.open_session(r) for r in mine)
    if opened:
        return
    err = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if err is None or not getattr(err, "debug_address", ""):
        raise UsageError("%jray debug: no task of this kernel is paused at a breakpoint, and the last error "
                         "was not raised by a task's code (for a local error, use %debug)")
    try:
        debugger.post_mortem(err)
    except debugger.DebuggerError as e:
        raise UsageError(f"%jray debug: {e}") from None


def jray_job_id() -> str:
    import jray

    return str(jray.get_runtime_context().get_job_id())


def _profile(args: list[str]) -> Any:
    """``%jray profile ACTOR_ID|TASK_ID|PID [SECONDS]``: the flame graph in the cell."""
    if not 1 <= len(args) <= 2:
        raise UsageError("usage: %jray profile ACTOR_ID|TASK_ID|PID [SECONDS]")
    _require_init()
    from jray.util.profiling import profile

    try:
        seconds = float(args[1]) if len(args) == 2 else 5.0
    except ValueError:
        raise UsageError(f"%jray profile: SECONDS must be a number, got {args[1]!r}") from None
    who = args[0]
    try:
        if who.isdigit():
            return profile(pid=int(who), duration=seconds)
        from jray.util.state import list_actors

        if list_actors(filters=[("actor_id", "=", who)], limit=1):
            return profile(actor_id=who, duration=seconds)
        return profile(task_id=who, duration=seconds)
    except (ValueError, TimeoutError) as e:
        raise UsageError(f"%jray profile: {e}") from None


def _require_init() -> None:
    if not api.is_initialized():
        raise UsageError("jray is not initialized: call jray.init() first.")


def _task_options(args: Any) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if args.num_cpus is not None:
        if args.num_cpus < 0:
            raise UsageError("%%remote: --num-cpus must be >= 0.")
        opts["num_cpus"] = args.num_cpus
    if args.num_gpus is not None:
        if args.num_gpus < 0:
            raise UsageError("%%remote: --num-gpus must be >= 0.")
        opts["num_gpus"] = args.num_gpus
    if args.resources is not None:
        try:
            res = json.loads(_unquote(args.resources))
        except ValueError as e:
            raise UsageError(f"%%remote: --resources is not valid JSON ({e}): {args.resources!r}") from None
        if not isinstance(res, dict) or not all(isinstance(v, (int, float)) for v in res.values()):
            raise UsageError('%%remote: --resources must be a JSON object of numbers, e.g. \'{"custom": 1}\'.')
        opts["resources"] = res
    if args.name is not None:
        opts["name"] = args.name
    env = _runtime_env(args)
    if env:
        opts["runtime_env"] = env
    return opts


def _runtime_env(args: Any) -> dict[str, Any]:
    """The cell's runtime_env from --runtime-env/--working-dir/--pip/--env,
    checked here (a bad one is a UsageError, and nothing is sent)."""
    from jray._private.runtime_env.validation import validate

    env: dict[str, Any] = {}
    if args.runtime_env is not None:
        try:
            env = json.loads(_unquote(args.runtime_env))
        except ValueError as e:
            raise UsageError(f"%%remote: --runtime-env is not valid JSON ({e}): {args.runtime_env!r}") from None
        if not isinstance(env, dict):
            raise UsageError("%%remote: --runtime-env must be a JSON object, e.g. '{\"pip\": [\"requests\"]}'.")
    if args.working_dir is not None:
        env["working_dir"] = os.path.expanduser(_unquote(args.working_dir))
    if args.pip:
        env["pip"] = [_unquote(p) for p in args.pip]
    if args.env:
        env_vars = dict(env.get("env_vars") or {})
        for item in args.env:
            k, sep, v = _unquote(item).partition("=")
            if not sep or not k:
                raise UsageError(f"%%remote: --env takes KEY=VALUE, got {item!r}.")
            env_vars[k] = v
        env["env_vars"] = env_vars
    if not env:
        return {}
    try:
        return validate(env)
    except (TypeError, ValueError) as e:
        raise UsageError(f"%%remote: {e}") from None


def _unquote(text: str) -> str:
    """IPython keeps the quotes around a magic's argument ('{"pip": [...]}')."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _parse_outputs(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if not n.isidentifier()]
    if bad or not names:
        raise UsageError(f"%%remote: -o/--outputs takes names separated by commas, got {text!r}.")
    return names


def _node_strategy(spec: str) -> Any:
    alive = [n for n in api.nodes() if n["Alive"]]
    by_ip = [n for n in alive if n["NodeManagerAddress"] == spec]
    matches = by_ip or [n for n in alive if n["NodeID"].startswith(spec.lower())]
    if len(matches) != 1:
        known = ", ".join(f"{n['NodeID'][:12]} ({n['NodeManagerAddress']})" for n in alive)
        what = "no live node" if not matches else f"{len(matches)} nodes"
        raise UsageError(f"%%remote: --node {spec!r} matches {what}; live nodes: {known}")
    return NodeAffinitySchedulingStrategy(matches[0]["NodeID"], soft=False)


def _warn_if_no_node_fits(opts: dict[str, Any], default_cpus: float) -> None:
    """Say so when no live node can ever run the cell (it would wait for one to join)."""
    demand = dict(opts.get("resources") or {})
    demand["CPU"] = opts.get("num_cpus", default_cpus)
    demand["GPU"] = opts.get("num_gpus", 0)
    demand = {k: v for k, v in demand.items() if v > 0}
    strategy = opts.get("scheduling_strategy")
    pinned = getattr(strategy, "node_id", None)
    nodes = [n for n in api.nodes() if n["Alive"] and (pinned is None or n["NodeID"] == pinned)]
    if any(all(n["Resources"].get(k, 0.0) >= v for k, v in demand.items()) for n in nodes):
        return
    need = ", ".join(f"{k}={v:g}" for k, v in demand.items())
    sys.stderr.write(f"[jray] no live node{' (of those allowed)' if pinned else ''} has {need}: the cell waits "
                     "until such a node joins (interrupt the kernel to cancel it).\n")


def _explain_send_failure(req: CellRequest, e: TypeError) -> Exception:
    """A TypeError while sending: name the variable that does not pickle, when one does not."""
    for name, value in req.globals.items():
        why = shipping._why_unpicklable(value)
        if why:
            return shipping.UnpicklableGlobalError(name, value, why)
    return e


def _plain_cell_error(e: exceptions.RemoteCellError) -> exceptions.RemoteCellError:
    # get() raises a RayTaskError that is also a RemoteCellError; show the cell's own traceback.
    cause = getattr(e, "cause", None)
    if isinstance(cause, exceptions.RemoteCellError):
        return cause
    return exceptions.RemoteCellError(e.ename, e.evalue, e.traceback_lines)


def running_cell_number(shell: Any) -> int:
    """The ``In[n]`` of the cell running now. IPython stores a cell's input in
    its history before running it, and (since 8.x) counts it before running
    it too, so ``execution_count`` is one ahead during the run on recent
    versions and not on older ones: the history's last entry is right on
    both."""
    hist = getattr(getattr(shell, "history_manager", None), "input_hist_raw", None)
    if hist and len(hist) > 1:
        return len(hist) - 1
    return int(getattr(shell, "execution_count", 0) or 0)

