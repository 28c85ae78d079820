"""The one human-readable byte size of every jray surface: the CLI's tables,
the notebook widgets, the live views (the JupyterLab sidebar's ``bytes()``
in extension/src/sidebar.ts follows the same rule)."""

from __future__ import annotations


def fmt_bytes(n: float) -> str:
    """``1536`` -> ``1.5 KiB`` (whole bytes below 1 KiB; binary units, one decimal)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
