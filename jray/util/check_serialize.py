"""``inspect_serializability``: why a value cannot be shipped to the cluster
(Ray's ``ray.util.inspect_serializability``).

jray pickles functions, classes and values with cloudpickle; when that
fails the error names the innermost type, not where it sits. This walks
the value instead: a function's closure and the globals it uses, an
object's attributes, a container's items, down to ``depth`` levels, and
reports the innermost members that fail on their own.
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass, field
from typing import IO, Any

import cloudpickle


@dataclass(eq=False)
class FailureTuple:
    """One member that cannot be serialized: the object, its name, and the
    object it was found in (None at the top)."""

    obj: Any
    name: str
    parent: Any = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"FailTuple({self.name} [obj={self.obj!r}, parent={self.parent!r}])"


def inspect_serializability(base_obj: Any, name: str | None = None, depth: int = 3,
                            print_file: IO[str] | None = None) -> tuple[bool, set[FailureTuple]]:
    """Whether ``base_obj`` serializes, and the members that do not.

    Prints a report (to ``print_file``, default stdout). Returns ``(True,
    set())`` when it serializes, else ``(False, failures)``.
    """
    out = print_file if print_file is not None else sys.stdout
    label = name or getattr(base_obj, "__qualname__", None) or type(base_obj).__name__
    failures: set[FailureTuple] = set()
    print("=" * 60, file=out)
    print(f"Checking Serializability of {base_obj!r}", file=out)
    print("=" * 60, file=out)
    ok = _inspect(base_obj, label, depth, None, failures, out, 0)
    if not ok:
        print("=" * 60, file=out)
        print("Variable: ", file=out)
        for f in failures:
            print(f"\t{f.name} [obj={f.obj!r}, parent={f.parent!r}]", file=out)
        print("was found to be non-serializable.", file=out)
        print("=" * 60, file=out)
    return ok, failures


def _serializes(obj: Any) -> BaseException | None:
    try:
        cloudpickle.dumps(obj)
    except Exception as e:  # noqa: BLE001 - any failure is the answer
        return e
    return None


def _members(obj: Any) -> list[tuple[str, Any]]:
    if inspect.isfunction(obj):
        try:
            cv = inspect.getclosurevars(obj)
        except (TypeError, ValueError):
            return []
        return list(cv.nonlocals.items()) + list(cv.globals.items())
    if inspect.ismethod(obj):
        return [("__self__", obj.__self__), ("__func__", obj.__func__)]
    if isinstance(obj, dict):
        return [(repr(k), v) for k, v in obj.items()]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [(f"[{i}]", v) for i, v in enumerate(obj)]
    if inspect.isclass(obj):
        return [(k, v) for k, v in vars(obj).items() if not (k.startswith("__") and k.endswith("__"))]
    try:
        return list(vars(obj).items())
    except TypeError:
        return []


def _inspect(obj: Any, name: str, depth: int, parent: Any, failures: set[FailureTuple], out: IO[str],
             level: int) -> bool:
    err = _serializes(obj)
    if err is None:
        return True
    indent = "    " * level
    print(f"{indent}!!! FAIL serialization: {err}", file=out)
    found = False
    if depth > 0:
        for member_name, member in _members(obj):
            if _serializes(member) is not None:
                print(f"{indent}Detected a non-serializable member {member_name!r} of {name}", file=out)
                _inspect(member, member_name, depth - 1, obj, failures, out, level + 1)
                found = True
    if not found:  # nothing inside it fails on its own: it is the culprit
        failures.add(FailureTuple(obj, name, parent))
    return False


__all__ = ["FailureTuple", "inspect_serializability"]
