"""What a ``%%remote`` cell reads and assigns, found from its syntax tree.

The driver ships the values of the names a cell reads (so a missing name
is a NameError before anything is sent) and copies back the names it
assigns at top level.
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass, field


@dataclass
class CellNames:
    reads: list[str] = field(default_factory=list)         # every name loaded anywhere, first use first
    bound: set[str] = field(default_factory=set)           # every name bound anywhere (any scope)
    assigned: list[str] = field(default_factory=list)      # names bound at the cell's top level, in order
    imported: set[str] = field(default_factory=set)        # top-level names bound by import statements


# Names an IPython namespace holds for its own bookkeeping: never shipped.
IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "_oh", "_ih", "_dh", "_sh", "_", "__", "___"}


def is_ipython_internal(name: str) -> bool:
    if name in IPYTHON_NAMES or name in ("_i", "_ii", "_iii"):
        return True
    if name.startswith("_i") and name[2:].isdigit():  # _i5: the input of cell 5
        return True
    return name.startswith("_") and name[1:].isdigit()  # _5: the output of cell 5


def parse(source: str, filename: str, first_line: int = 1) -> ast.Module:
    """Parse ``source`` with line numbers as they appear in the cell (``first_line`` = its first line)."""
    try:
        tree = ast.parse(source, filename=filename, mode="exec")
    except SyntaxError as e:
        if e.lineno is not None:
            e.lineno += first_line - 1
        if getattr(e, "end_lineno", None) is not None:
            e.end_lineno += first_line - 1  # type: ignore[operator]
        raise
    if first_line != 1:
        ast.increment_lineno(tree, first_line - 1)
    return tree


def names_of(tree: ast.Module) -> CellNames:
    out = CellNames()
    seen: set[str] = set()
    # ``x += 1`` reads x as well as binding it
    aug = {id(n.target) for n in ast.walk(tree) if isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Name)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, (ast.Load, ast.Del)) or id(node) in aug:
                if node.id not in seen:
                    seen.add(node.id)
                    out.reads.append(node.id)
            if not isinstance(node.ctx, (ast.Load, ast.Del)):
                out.bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.bound.add(node.name)
        elif isinstance(node, ast.arg):
            out.bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            out.bound.update(_import_names(node))
        elif isinstance(node, ast.ExceptHandler) and node.name:
            out.bound.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            out.bound.update(node.names)
        elif isinstance(node, ast.MatchAs) and node.name:
            out.bound.add(node.name)
        elif isinstance(node, ast.MatchStar) and node.name:
            out.bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            out.bound.add(node.rest)
    # reads in ast.walk order are breadth-first; sort by position for stable messages
    pos: dict[str, tuple[int, int]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and (isinstance(node.ctx, (ast.Load, ast.Del)) or id(node) in aug):
            p = (node.lineno, node.col_offset)
            if node.id not in pos or p < pos[node.id]:
                pos[node.id] = p
    out.reads.sort(key=lambda n: pos.get(n, (0, 0)))
    _top_level(tree.body, out)
    return out


def _import_names(node: ast.Import | ast.ImportFrom) -> list[str]:
    names = []
    for alias in node.names:
        if alias.name == "*":
            continue
        names.append(alias.asname or alias.name.split(".")[0])
    return names


def _top_level(body: list[ast.stmt], out: CellNames) -> None:
    """Names bound by the cell's own statements (not inside functions or classes)."""
    def add(name: str) -> None:
        if name not in out.assigned:
            out.assigned.append(name)

    def targets(t: ast.AST) -> None:
        for n in ast.walk(t):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                add(n.id)

    for stmt in body:
        # walrus targets in the statement's own expressions (not in nested bodies)
        exprs = [stmt.test] if isinstance(stmt, (ast.If, ast.While)) else \
            [stmt] if isinstance(stmt, (ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign)) else []
        for e in exprs:
            for n in ast.walk(e):
                if isinstance(n, ast.NamedExpr) and isinstance(n.target, ast.Name):
                    add(n.target.id)
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            add(stmt.name)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            for name in _import_names(stmt):
                add(name)
                out.imported.add(name)
        elif isinstance(stmt, ast.Assign):
            for t in stmt.targets:
                targets(t)
        elif isinstance(stmt, (ast.AugAssign, ast.AnnAssign)):
            targets(stmt.target)
        elif isinstance(stmt, (ast.For, ast.AsyncFor)):
            targets(stmt.target)
            _top_level(stmt.body, out)
            _top_level(stmt.orelse, out)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            for item in stmt.items:
                if item.optional_vars is not None:
                    targets(item.optional_vars)
            _top_level(stmt.body, out)
        elif isinstance(stmt, (ast.If, ast.While)):
            _top_level(stmt.body, out)
            _top_level(stmt.orelse, out)
        elif isinstance(stmt, ast.Try) or type(stmt).__name__ == "TryStar":
            _top_level(stmt.body, out)  # type: ignore[attr-defined]
            for h in stmt.handlers:  # type: ignore[attr-defined]
                _top_level(h.body, out)
            _top_level(stmt.orelse, out)  # type: ignore[attr-defined]
            _top_level(stmt.finalbody, out)  # type: ignore[attr-defined]
        elif isinstance(stmt, ast.Match):
            for case in stmt.cases:
                _top_level(case.body, out)


def is_builtin(name: str) -> bool:
    return hasattr(builtins, name)
