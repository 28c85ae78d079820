"""Worker side of ``%%remote``: run a notebook cell's source on the cluster.

The driver sends a :class:`CellRequest` (the source, the values of the
globals it reads, where its first line sits in the notebook cell) and gets a
:class:`CellResult` back (the names the cell assigned, the value of a final
expression). While the cell runs, its prints travel on the worker's log
stream as usual, and ``display(...)``, matplotlib figures and tqdm bars
travel on the same stream as messages (``wire.py``), so they all reach the
cell in order, live. An exception becomes a ``RemoteCellError`` whose
traceback shows the cell's own line numbers and source.

Workers import this module by reference (it is part of jray), so it must
import quickly and never need IPython: IPython's formatters are used when
installed, plain ``repr`` otherwise.
"""

from __future__ import annotations

import ast
import base64
import builtins
import contextlib
import linecache
import os
import sys
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from jray import exceptions
from jray._private import frontend
from jray.jupyter import cell_source, wire
from jray.jupyter.remote_tqdm import patched_tqdm


@dataclass
class CellRequest:
    source: str
    filename: str                     # a unique name for tracebacks and linecache
    label: str                        # how tracebacks name the cell: "Cell In[5]"
    first_line: int = 1               # the notebook cell's line of the source's first line
    globals: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] | None = None  # names to send back; None: every name assigned (imports aside)


@dataclass
class CellResult:
    """What a ``%%remote`` cell sends back (``jray.get`` of a ``--no-block`` ref)."""

    outputs: dict[str, Any] = field(default_factory=dict)
    value: Any = None
    has_value: bool = False
    skipped: dict[str, str] = field(default_factory=dict)  # name -> why it was not sent back
    owned: list[str] = field(default_factory=list)  # a remote namespace's own names (assigned there)
    node_id: str = ""
    pid: int = 0

    def __repr__(self) -> str:
        names = ", ".join(self.outputs) or "no names"
        return f"CellResult({names}{'; a value' if self.has_value else ''}; node {self.node_id[:8]} pid {self.pid})"


def run_cell(req: CellRequest) -> CellResult:
    """The ``%%remote`` task: run the cell in a fresh namespace."""
    return execute(req, {"__name__": "__main__", "__builtins__": builtins})


class RemoteNamespace:
    """``%%remote --actor NAME``: a persistent namespace on the cluster (a small remote kernel)."""

    # Cancelling a cell interrupts it (KeyboardInterrupt), as a kernel interrupt
    # would; other actors' running calls are only flagged (Ray's semantics).
    __jray_interruptible__ = True

    def __init__(self) -> None:
        self.ns: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        # Names the cells assigned here: the namespace's state, which values shipped
        # from the notebook never overwrite (the notebook may hold stale copies).
        self.owned: set[str] = set()

    def run(self, req: CellRequest) -> CellResult:
        return execute(req, self.ns, self.owned)

    def names(self) -> list[str]:
        return sorted(k for k in self.ns if not k.startswith("__"))


def execute(req: CellRequest, ns: dict[str, Any], owned: set[str] | None = None) -> CellResult:
    frontend.bare_output(True)
    try:
        return _execute(req, ns, owned)
    finally:
        for stream in (sys.stdout, sys.stderr):  # a last line without its newline goes bare too
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - a closed or odd stream
                pass
        frontend.bare_output(False)


def _execute(req: CellRequest, ns: dict[str, Any], owned: set[str] | None = None) -> CellResult:
    result = CellResult(node_id=frontend.node_id_hex(), pid=os.getpid())
    tree = cell_source.parse(req.source, req.filename, req.first_line)
    _register_source(req)
    last: ast.Expr | None = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None  # type: ignore[assignment]
    ns.update(req.globals if owned is None else {k: v for k, v in req.globals.items() if k not in owned})
    names = cell_source.names_of(tree)
    wire.active_spec = frontend.current_task_context()
    try:
        with _display_hooks(ns, req.source), patched_tqdm(ns, req.source), _figures(req.source):
            try:
                exec(compile(tree, req.filename, "exec"), ns)
                if last is not None:
                    result.value = eval(compile(ast.Expression(last.value), req.filename, "eval"), ns)
                    result.has_value = result.value is not None
            except Exception as e:  # noqa: BLE001 - the cell's own error, shown in the notebook
                raise cell_error(e, req, result) from None
    finally:
        wire.active_spec = None
        if owned is not None:
            owned.update(n for n in names.assigned if n in ns)
            result.owned = sorted(owned)
    wanted = req.outputs
    if wanted is None:
        # Imports are the notebook's business (it may lack the package): not copied back by default.
        wanted = [n for n in names.assigned if n in ns and n not in names.imported and not _is_module(ns[n])]
    for name in wanted:
        if name not in ns:
            result.skipped[name] = "not assigned by the cell"
            continue
        why = unpicklable(ns[name])
        if why:
            result.skipped[name] = why
        else:
            result.outputs[name] = ns[name]
    if result.has_value and unpicklable(result.value):
        result.skipped["<value>"] = unpicklable(result.value) or ""
        result.value, result.has_value = None, False
    return result


def unpicklable(value: Any) -> str:
    """Why ``value`` cannot be sent (empty when it can); big buffers are not copied to check."""
    import cloudpickle

    try:
        cloudpickle.dumps(value, protocol=5, buffer_callback=lambda _b: False)
    except Exception as e:  # noqa: BLE001
        return f"{type(value).__module__}.{type(value).__qualname__} cannot be pickled ({e})"
    return ""


def _is_module(value: Any) -> bool:
    return type(value).__name__ == "module"


# -- errors ----------------------------------------------------------------------------
def cell_error(e: BaseException, req: CellRequest, result: CellResult) -> exceptions.RemoteCellError:
    """The cell's exception with its traceback cut to the cell's frames (and deeper)."""
    te = traceback.TracebackException.from_exception(e)
    frames = list(te.stack)
    start = next((i for i, f in enumerate(frames) if f.filename == req.filename), 0)
    te.stack = traceback.StackSummary.from_list(frames[start:])
    body = "".join(te.format()).replace(f'File "{req.filename}"', req.label)
    lines = body.rstrip("\n").split("\n")
    header = f"Traceback (most recent call last), on node {result.node_id[:8]} pid {result.pid}:"
    if lines and lines[0].startswith("Traceback"):
        lines[0] = header
    evalue = str(e)
    return exceptions.RemoteCellError(type(e).__name__, evalue, lines)


def _register_source(req: CellRequest) -> None:
    # Tracebacks read source lines through linecache; pad so numbers match the cell.
    lines = ["\n"] * (req.first_line - 1) + [ln + "\n" for ln in req.source.split("\n")]
    linecache.cache[req.filename] = (len(req.source), None, lines, req.filename)


# -- rich output -------------------------------------------------------------------------
_formatter: Any = None


def format_bundle(obj: Any, include: Any = None, exclude: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """``obj``'s mime bundle, JSON-ready (binary data base64-encoded)."""
    global _formatter
    try:
        if _formatter is None:
            from IPython.core.formatters import DisplayFormatter

            _formatter = DisplayFormatter()
        data, md = _formatter.format(obj, include=include, exclude=exclude)
    except ImportError:
        data, md = {"text/plain": repr(obj)}, {}
    return jsonable(data), dict(md or {})


def jsonable(data: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for mime, v in data.items():
        out[mime] = base64.b64encode(v).decode("ascii") if isinstance(v, (bytes, bytearray)) else v
    return out


def remote_display(*objs: Any, include: Any = None, exclude: Any = None, metadata: Any = None,
                   transient: Any = None, display_id: Any = None, raw: bool = False, clear: bool = False,
                   update: bool = False, **kwargs: Any) -> Any:
    """``IPython.display.display`` for remote cells: the outputs go to the notebook cell."""
    if display_id is True:
        display_id = uuid.uuid4().hex
    if transient and transient.get("display_id"):
        display_id = transient["display_id"]
    for obj in objs:
        if raw:
            data, md = jsonable(dict(obj)), dict(metadata or {})
        else:
            data, md = format_bundle(obj, include, exclude)
            if metadata:
                md.update(metadata)
        if data:
            wire.emit({"kind": "display", "data": data, "metadata": md, "display_id": display_id,
                       "update": bool(update)})
    if display_id and not update:
        try:
            from IPython.display import DisplayHandle

            return DisplayHandle(display_id)
        except ImportError:
            return None
    return None


@contextlib.contextmanager
def _display_hooks(ns: dict[str, Any], source: str) -> Iterator[None]:
    """``display`` in the cell (IPython's builtin) and IPython's own functions send to the notebook."""
    ns.setdefault("display", remote_display)
    if ns.get("display") is not remote_display and getattr(ns["display"], "__name__", "") == "display":
        ns["display"] = remote_display  # the notebook's IPython display, shipped by reference
    saved: list[tuple[Any, str, Any]] = []
    if "IPython" in sys.modules or "IPython" in source:
        try:
            import IPython.core.display_functions as df
            import IPython.display as ipd

            for mod in (ipd, df):
                saved.append((mod, "display", getattr(mod, "display")))  # noqa: B009 - untyped re-export
                setattr(mod, "display", remote_display)  # noqa: B010
        except ImportError:
            pass
    try:
        yield
    finally:
        for mod, name, value in saved:
            setattr(mod, name, value)


@contextlib.contextmanager
def _figures(source: str) -> Iterator[None]:
    """matplotlib figures made by the cell are shown as PNG images (at ``plt.show()`` and at the end)."""
    uses_mpl = "matplotlib" in source or "plt" in source or "matplotlib.pyplot" in sys.modules
    if not uses_mpl:
        yield
        return
    if "matplotlib" not in sys.modules:
        os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        yield
        return
    original_show = plt.show

    def show(*args: Any, **kwargs: Any) -> None:
        _flush_figures(plt)

    plt.show = show
    try:
        yield
        _flush_figures(plt)
    finally:
        plt.show = original_show
        plt.close("all")


def _flush_figures(plt: Any) -> None:
    import io

    for num in plt.get_fignums():
        fig = plt.figure(num)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
        w, h = fig.get_size_inches() * fig.dpi
        data = {"image/png": base64.b64encode(buf.getvalue()).decode("ascii"),
                "text/plain": f"<Figure size {w:g}x{h:g} with {len(fig.axes)} Axes>"}
        wire.emit({"kind": "display", "data": data, "metadata": {}})
        plt.close(fig)
