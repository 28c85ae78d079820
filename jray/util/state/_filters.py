"""Ray-style filters: ``[("state", "=", "FAILED"), ("name", "!=", "f")]``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

PREDICATES = ("=", "!=")
Filter = tuple[str, str, Any]


def check(filters: Sequence[Filter] | None, keys: Iterable[str]) -> list[Filter]:
    """The filters as a list, or ValueError naming bad keys and predicates."""
    out = list(filters or ())
    known = set(keys)
    for f in out:
        if not isinstance(f, (tuple, list)) or len(f) != 3:
            raise ValueError(f"a filter is (key, predicate, value), got {f!r}")
        key, pred, _ = f
        if key not in known:
            raise ValueError(f"unknown filter key {key!r}; known keys: {sorted(known)}")
        if pred not in PREDICATES:
            raise ValueError(f"unsupported filter predicate {pred!r} for {key!r}; use one of {PREDICATES}")
    return out


def matches(row: dict[str, Any], filters: Sequence[Filter]) -> bool:
    for key, pred, value in filters:
        equal = _same(row.get(key), value)
        if equal != (pred == "="):
            return False
    return True


def _same(have: Any, want: Any) -> bool:
    if isinstance(have, str) and isinstance(want, str):
        return have.upper() == want.upper() if have.isupper() or want.isupper() else have == want
    if isinstance(have, bool) or isinstance(want, bool):
        return str(have).lower() == str(want).lower()
    if isinstance(have, (int, float)) and isinstance(want, str):
        try:
            return float(want) == have
        except ValueError:
            return False
    return bool(have == want)
