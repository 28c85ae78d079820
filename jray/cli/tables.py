"""Text output of the ``jray`` commands: aligned columns, byte sizes, numbers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jray._private.formatting import fmt_bytes

__all__ = ["fmt_bytes", "fmt_num", "table"]


def fmt_num(v: float) -> str:
    return f"{v:g}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """``header`` over ``rows``, columns padded to their widest cell."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    )


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Rows as aligned columns (the keys of the first row, upper-cased as the header)."""
    if not rows:
        return "(none)"
    keys = list(rows[0])
    cells = [[_cell(r.get(k)) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    lines = ["  ".join(k.upper().ljust(w) for k, w in zip(keys, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, dict):
        return ", ".join(f"{k}: {x:g}" if isinstance(x, float) else f"{k}: {x}" for k, x in v.items())
    return str(v)
