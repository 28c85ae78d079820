"""Ray's DAG API: build a graph of tasks and actor calls with ``.bind()``,
run it with ``.execute()``.

::

    @jray.remote
    def add(a, b): return a + b

    with InputNode() as inp:
        dag = add.bind(add.bind(inp, 1), inp)
    jray.get(dag.execute(10))              # 21

``f.bind(...)`` is a :class:`FunctionNode`, ``A.bind(...)`` a
:class:`ClassNode` (the actor is created when the graph runs),
``node.method.bind(...)`` or ``handle.method.bind(...)`` a
:class:`ClassMethodNode`; :class:`InputNode` stands for the arguments of
``execute`` (``inp[0]``, ``inp.key`` pick one of several), and
:class:`MultiOutputNode` returns several results. Arguments may be nodes,
also inside lists, tuples and dicts; ``.options(...)`` applies to the task,
actor or call as in ``.remote``.

``execute`` submits every node once per run (a node used twice runs once),
in dependency order, passing ObjectRefs between them, so the graph runs as
the same tasks and calls would: it returns the output node's ObjectRef (a
list of them for a MultiOutputNode, the handle for a ClassNode).

``dag.experimental_compile()`` (Ray's compiled graphs) returns a
:class:`CompiledDAG` whose ``execute`` runs the graph the same way and whose
results ``jray.get`` reads; the actors a compiled graph names are created
once, at compile time, and reused by every ``execute`` (as Ray's are),
``teardown()`` ends them. No pre-allocated channels: the speed of Ray's
compiled graphs is not copied, their results are.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["ClassMethodNode", "ClassNode", "CompiledDAG", "DAGNode", "FunctionNode", "InputAttributeNode",
           "InputNode", "MultiOutputNode"]


class DAGNode:
    """A node of the graph: what to run, with which (possibly node) arguments."""

    def __init__(self, args: tuple = (), kwargs: dict[str, Any] | None = None,
                 options: dict[str, Any] | None = None) -> None:
        self._bound_args = tuple(args)
        self._bound_kwargs = dict(kwargs or {})
        self._bound_options = dict(options or {})

    # -- running ------------------------------------------------------------------
    def execute(self, *args: Any, **kwargs: Any) -> Any:
        """Run the graph ending here with ``args``/``kwargs`` as its input."""
        return _Run(args, kwargs).value(self)

    def experimental_compile(self, **_options: Any) -> CompiledDAG:
        return CompiledDAG(self)

    def _run(self, run: _Run) -> Any:  # pragma: no cover - every node kind overrides it
        raise TypeError(f"{type(self).__name__} is not a node that runs")

    def get_args(self) -> tuple:
        return self._bound_args

    def get_kwargs(self) -> dict[str, Any]:
        return dict(self._bound_kwargs)

    def get_options(self) -> dict[str, Any]:
        return dict(self._bound_options)

    def _children(self) -> list[DAGNode]:
        out: list[DAGNode] = []
        _walk((self._bound_args, self._bound_kwargs), out.append)
        return out


class FunctionNode(DAGNode):
    """``f.bind(...)``: a task."""

    def __init__(self, fn: Any, args: tuple, kwargs: dict[str, Any], options: dict[str, Any] | None = None) -> None:
        super().__init__(args, kwargs, options)
        self._fn = fn

    def options(self, **options: Any) -> FunctionNode:
        return FunctionNode(self._fn, self._bound_args, self._bound_kwargs, {**self._bound_options, **options})

    def _run(self, run: _Run) -> Any:
        args, kwargs = run.resolve(self._bound_args), run.resolve(self._bound_kwargs)
        target = self._fn.options(**self._bound_options) if self._bound_options else self._fn
        return target.remote(*args, **kwargs)

    def __repr__(self) -> str:
        return f"FunctionNode({getattr(self._fn, '__name__', self._fn)})"


class ClassNode(DAGNode):
    """``A.bind(...)``: an actor, created when the graph runs; its methods
    bind as ``node.method.bind(...)``."""

    def __init__(self, cls: Any, args: tuple, kwargs: dict[str, Any], options: dict[str, Any] | None = None) -> None:
        super().__init__(args, kwargs, options)
        self._cls = cls

    def options(self, **options: Any) -> ClassNode:
        return ClassNode(self._cls, self._bound_args, self._bound_kwargs, {**self._bound_options, **options})

    def __getattr__(self, name: str) -> _MethodBinder:
        if name.startswith("_"):
            raise AttributeError(name)
        return _MethodBinder(self, name)

    def _run(self, run: _Run) -> Any:
        pinned = run.actors.get(id(self))
        if pinned is not None:  # a compiled graph's actor, made once
            return pinned
        args, kwargs = run.resolve(self._bound_args), run.resolve(self._bound_kwargs)
        target = self._cls.options(**self._bound_options) if self._bound_options else self._cls
        return target.remote(*args, **kwargs)

    def __repr__(self) -> str:
        return f"ClassNode({getattr(self._cls, '__name__', self._cls)})"


class _MethodBinder:
    def __init__(self, parent: ClassNode | Any, name: str, options: dict[str, Any] | None = None) -> None:
        self._parent, self._name, self._options = parent, name, dict(options or {})

    def options(self, **options: Any) -> _MethodBinder:
        return _MethodBinder(self._parent, self._name, {**self._options, **options})

    def bind(self, *args: Any, **kwargs: Any) -> ClassMethodNode:
        return ClassMethodNode(self._parent, self._name, args, kwargs, self._options)


class ClassMethodNode(DAGNode):
    """``node.method.bind(...)`` or ``handle.method.bind(...)``: an actor call."""

    def __init__(self, actor: ClassNode | Any, method: str, args: tuple, kwargs: dict[str, Any],
                 options: dict[str, Any] | None = None) -> None:
        super().__init__(args, kwargs, options)
        self._actor = actor  # a ClassNode, or an ActorHandle of an actor that exists
        self._method = method

    def options(self, **options: Any) -> ClassMethodNode:
        return ClassMethodNode(self._actor, self._method, self._bound_args, self._bound_kwargs,
                               {**self._bound_options, **options})

    def _children(self) -> list[DAGNode]:
        out = super()._children()
        if isinstance(self._actor, DAGNode):
            out.append(self._actor)
        return out

    def _run(self, run: _Run) -> Any:
        handle = run.value(self._actor) if isinstance(self._actor, DAGNode) else self._actor
        args, kwargs = run.resolve(self._bound_args), run.resolve(self._bound_kwargs)
        method = getattr(handle, self._method)
        if self._bound_options:
            method = method.options(**self._bound_options)
        return method.remote(*args, **kwargs)

    def __repr__(self) -> str:
        return f"ClassMethodNode({self._method})"


_input_local = threading.local()


class InputNode(DAGNode):
    """The graph's input: ``execute(x)`` passes ``x`` where it is bound;
    ``inp[i]`` / ``inp.name`` pick one of several arguments. Used as a
    context manager (``with InputNode() as inp:``), as in Ray."""

    def __enter__(self) -> InputNode:
        _input_local.current = self
        return self

    def __exit__(self, *exc: Any) -> None:
        _input_local.current = None

    def __getitem__(self, key: int | str) -> InputAttributeNode:
        return InputAttributeNode(self, key, "item")

    def __getattr__(self, name: str) -> InputAttributeNode:
        if name.startswith("_"):
            raise AttributeError(name)
        return InputAttributeNode(self, name, "attr")

    def _run(self, run: _Run) -> Any:
        if len(run.args) == 1 and not run.kwargs:
            return run.args[0]
        if not run.args and not run.kwargs:
            raise ValueError("This graph has an InputNode: pass its input to execute(...).")
        return _Inputs(run.args, run.kwargs)

    def __repr__(self) -> str:
        return "InputNode()"


class _Inputs:
    """Several execute() arguments, for ``inp[i]`` and ``inp.key``."""

    def __init__(self, args: tuple, kwargs: dict[str, Any]) -> None:
        self.args, self.kwargs = args, kwargs


class InputAttributeNode(DAGNode):
    """``inp[key]`` or ``inp.key``: one part of the input."""

    def __init__(self, parent: InputNode, key: int | str, how: str) -> None:
        super().__init__()
        self._parent, self._key, self._how = parent, key, how

    def _children(self) -> list[DAGNode]:
        return [self._parent]

    def _run(self, run: _Run) -> Any:
        whole = run.value(self._parent)
        key = self._key
        if isinstance(whole, _Inputs):
            if isinstance(key, int):
                return whole.args[key]
            if key in whole.kwargs:
                return whole.kwargs[key]
            raise KeyError(f"execute() got no keyword argument {key!r} (the graph reads inp.{key})")
        if self._how == "attr" and not isinstance(whole, dict):
            return getattr(whole, str(key))
        return whole[key]

    def __repr__(self) -> str:
        return f"InputAttributeNode({self._key!r})"


class MultiOutputNode(DAGNode):
    """Several outputs: ``execute`` returns a list, one per node."""

    def __init__(self, nodes: list[DAGNode] | tuple[DAGNode, ...]) -> None:
        super().__init__((list(nodes),))
        self._nodes = list(nodes)

    def _run(self, run: _Run) -> Any:
        return [run.value(n) for n in self._nodes]

    def __repr__(self) -> str:
        return f"MultiOutputNode({len(self._nodes)})"


class _Run:
    """One execution: every node's result, computed once."""

    def __init__(self, args: tuple, kwargs: dict[str, Any], actors: dict[int, Any] | None = None) -> None:
        self.args, self.kwargs = args, kwargs
        self.results: dict[int, Any] = {}
        self.actors = actors or {}
        self._active: set[int] = set()

    def value(self, node: DAGNode) -> Any:
        key = id(node)
        if key in self.results:
            return self.results[key]
        if key in self._active:
            raise ValueError(f"the graph has a cycle through {node!r}")
        self._active.add(key)
        try:
            for child in node._children():  # dependencies first: submitted in order
                self.value(child)
            out = self.results[key] = node._run(self)
        finally:
            self._active.discard(key)
        return out

    def resolve(self, value: Any) -> Any:
        if isinstance(value, DAGNode):
            return self.value(value)
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.resolve(v) for v in value)
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        return value


def _walk(value: Any, visit: Callable[[DAGNode], None]) -> None:
    if isinstance(value, DAGNode):
        visit(value)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _walk(v, visit)
    elif isinstance(value, dict):
        for v in value.values():
            _walk(v, visit)


class CompiledDAG:
    """``dag.experimental_compile()``: the actors of the graph are created
    once here; each ``execute`` runs the graph's calls on them."""

    def __init__(self, root: DAGNode) -> None:
        self._root = root
        self._actors: dict[int, Any] = {}
        warm = _Run((), {})  # every ClassNode made once, in dependency order
        for node in _class_nodes(root):
            self._actors[id(node)] = warm.value(node)
        self._closed = False

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        if self._closed:
            raise RuntimeError("this compiled graph was torn down")
        return _Run(args, kwargs, self._actors).value(self._root)

    def teardown(self) -> None:
        """End the actors this compiled graph created."""
        from jray import api

        if self._closed:
            return
        self._closed = True
        for handle in self._actors.values():
            try:
                api.kill(handle)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self._actors.clear()


def _class_nodes(root: DAGNode) -> list[ClassNode]:
    out: list[ClassNode] = []
    seen: set[int] = set()

    def visit(node: DAGNode) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        for c in node._children():
            visit(c)
        if isinstance(node, ClassNode):
            out.append(node)

    visit(root)
    return out
