"""``%jray autoremote on|off``: every following cell runs as ``%%remote``.

An input transformer (IPython's cleanup stage, before cell magics are
recognised) puts ``%%remote`` in front of each cell. Cells that start with a
magic (``%...``/``%%...``) or a shell escape (``!``) are left alone, so
``%jray autoremote off`` itself runs locally.
"""

from __future__ import annotations

from typing import Any


def _to_remote(lines: list[str]) -> list[str]:
    first = next((ln for ln in lines if ln.strip()), None)
    if first is None:
        return lines
    head = first.lstrip()
    if head.startswith(("%", "!")):
        return lines
    return ["%%remote --from-autoremote\n", *lines]


def enabled(shell: Any) -> bool:
    return _to_remote in shell.input_transformers_cleanup


def enable(shell: Any) -> None:
    if not enabled(shell):
        shell.input_transformers_cleanup.append(_to_remote)


def disable(shell: Any) -> None:
    while _to_remote in shell.input_transformers_cleanup:
        shell.input_transformers_cleanup.remove(_to_remote)
