"""Measure the import graph of the ``jray`` package (no module is imported).

Parses every ``jray/**/*.py`` with :mod:`ast` and reports:

- module-level and function-local imports of ``jray`` modules (an import
  under ``if TYPE_CHECKING:`` is not counted: it never runs);
- the import cycles: strongly connected components of more than one module,
  of the module-level graph and of the graph with function-local imports
  added;
- how many function-local imports only exist to break a cycle: those whose
  target already reaches the importing module through module-level imports,
  so the import could not be hoisted to the top of the file; and how many
  sit inside a cycle of the full graph (both ends in one component), which
  is what holds a cycle together.

An edge goes to the module named (``from jray.x import y`` goes to
``jray.x.y`` when that is a module, else to ``jray.x``); the parent packages
Python also runs on the way are not edges, so ``jray/__init__.py`` does not
make every module one component (``--parents`` adds those edges too, as
Python runs them). The generated protocol stubs are left out.

Usage: ``python scripts/import_graph.py [--verbose]`` from the repository root.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "jray"
SKIP = ("jray._private.protocol",)


@dataclass(frozen=True)
class Import:
    importer: str
    target: str
    local: bool  # inside a function (or a method)
    line: int


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def discover() -> dict[str, Path]:
    mods = {}
    for p in sorted((ROOT / PACKAGE).rglob("*.py")):
        name = module_name(p)
        if not name.startswith(SKIP):
            mods[name] = p
    return mods


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, in_function: bool) -> Iterator[tuple[ast.AST, bool]]:
    """Import nodes under ``node`` with whether they sit in a function body."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for sub in child.orelse:
                yield from _walk_stmt(sub, in_function)
            continue
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, in_function
            continue
        inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        yield from _walk(child, inner)


def _walk_stmt(stmt: ast.stmt, in_function: bool) -> Iterator[tuple[ast.AST, bool]]:
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        yield stmt, in_function
    else:
        yield from _walk(stmt, in_function)


def _resolve_from(importer: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    if not is_pkg:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _nearest_module(name: str, mods: dict[str, Path]) -> str | None:
    while name:
        if name in mods:
            return name
        if name.startswith(SKIP):
            return None
        name = name.rpartition(".")[0]
    return None


def imports_of(name: str, path: Path, mods: dict[str, Path]) -> list[Import]:
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    out: list[Import] = []
    for node, local in _walk(tree, False):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_from(name, is_pkg, node)
            for a in node.names:
                sub = f"{base}.{a.name}"
                targets.append(sub if sub in mods else base)
        for t in targets:
            if t != PACKAGE and not t.startswith(PACKAGE + "."):
                continue
            m = _nearest_module(t, mods)
            if m is not None and m != name:
                out.append(Import(name, m, local, node.lineno))  # type: ignore[attr-defined]
    return out


def sccs(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative), those of 2+ nodes."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    advanced = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return sorted(out, key=len, reverse=True)


def reaches(graph: dict[str, set[str]], src: str, dst: str) -> bool:
    seen = {src}
    todo = [src]
    while todo:
        v = todo.pop()
        if v == dst:
            return True
        for w in graph[v]:
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return False


def with_parents(edges: list[Import], mods: dict[str, Path]) -> list[Import]:
    """``edges`` plus one to each package Python runs before the target."""
    out = list(edges)
    for e in edges:
        parent = e.target.rpartition(".")[0]
        while parent:
            if parent in mods and parent != e.importer:
                out.append(Import(e.importer, parent, e.local, e.line))
            parent = parent.rpartition(".")[0]
    return out


def measure(parents: bool = False) -> dict[str, object]:
    mods = discover()
    edges = [imp for n, p in mods.items() for imp in imports_of(n, p, mods)]
    if parents:
        edges = with_parents(edges, mods)
    top: dict[str, set[str]] = {m: set() for m in mods}
    full: dict[str, set[str]] = {m: set() for m in mods}
    for e in edges:
        full[e.importer].add(e.target)
        if not e.local:
            top[e.importer].add(e.target)
    local = [e for e in edges if e.local]
    breaking = [e for e in local if reaches(top, e.target, e.importer)]
    full_sccs = sccs(full)
    comp_of = {m: i for i, c in enumerate(full_sccs) for m in c}
    inside = [e for e in local if comp_of.get(e.importer, -1) == comp_of.get(e.target, -2)]
    return {"modules": len(mods), "module_level": sum(not e.local for e in edges), "local": local,
            "breaking": breaking, "inside": inside, "top_sccs": sccs(top), "full_sccs": full_sccs}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--verbose", "-v", action="store_true", help="list the components and the imports")
    ap.add_argument("--parents", action="store_true",
                    help="also count the parent packages Python runs before an imported module")
    args = ap.parse_args()
    m = measure(args.parents)
    local: list[Import] = m["local"]  # type: ignore[assignment]
    breaking: list[Import] = m["breaking"]  # type: ignore[assignment]
    inside: list[Import] = m["inside"]  # type: ignore[assignment]
    top: list[list[str]] = m["top_sccs"]  # type: ignore[assignment]
    full: list[list[str]] = m["full_sccs"]  # type: ignore[assignment]
    print(f"modules: {m['modules']}")
    print(f"module-level jray imports: {m['module_level']}")
    print(f"function-local jray imports: {len(local)}")
    print(f"  of which break a cycle (target reaches importer at module level): {len(breaking)}")
    print(f"  of which sit inside a cycle of all imports: {len(inside)}")
    print(f"cycles, module-level imports: {len(top)} component(s), sizes {[len(c) for c in top]}")
    print(f"cycles, all imports: {len(full)} component(s), sizes {[len(c) for c in full]}")
    if args.verbose:
        for title, comps in (("module-level", top), ("all imports", full)):
            for c in comps:
                print(f"\n[{title}] component of {len(c)}:\n  " + "\n  ".join(c))
        for title, found in (("cycle-breaking", breaking), ("inside a cycle", inside)):
            print(f"\n{title} function-local imports:")
            for e in sorted(found, key=lambda e: (e.importer, e.line)):
                print(f"  {e.importer}:{e.line} -> {e.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
