"""Driver side of ``%%remote``: what a cell needs from the notebook namespace.

A name the cell reads must exist before anything is sent (the cell defines
it, the notebook has it, or it is a builtin); its value must pickle. Both
failures are reported naming the variable, as errors IPython shows in one
line, not as a traceback through jray.
"""

from __future__ import annotations

from typing import Any

from jray.jupyter import cell_source


class CellNameError(NameError):
    """A ``%%remote`` cell reads a name that exists nowhere (nothing was sent)."""

    def _render_traceback_(self) -> list[str]:
        return [f"NameError: {self} (nothing was sent to the cluster)"]


class UnpicklableGlobalError(TypeError):
    """A ``%%remote`` cell reads a notebook variable that cannot be sent."""

    def __init__(self, name: str, value: Any, why: str) -> None:
        self.name = name
        self.type_name = f"{type(value).__module__}.{type(value).__qualname__}"
        super().__init__(f"cannot send the variable {name!r} (of type {self.type_name}) to the cluster: {why}")

    def _render_traceback_(self) -> list[str]:
        return [f"TypeError: {self}", "Define it inside the cell, or pass something that pickles."]


def globals_for(names: cell_source.CellNames, user_ns: dict[str, Any], remote_names: set[str] | None = None,
                ) -> dict[str, Any]:
    """The values to ship: every name the cell reads that the notebook holds.

    ``remote_names`` (a remote namespace's own names, or None for a fresh
    task) are neither shipped nor required: they live on the cluster."""
    shipped: dict[str, Any] = {}
    for name in names.reads:
        if cell_source.is_ipython_internal(name) or (remote_names is not None and name in remote_names):
            continue
        if name in user_ns:
            value = user_ns[name]
            why = _why_unpicklable(value)
            if not why:
                shipped[name] = value
            elif name not in names.bound:  # needed from the notebook: say which and why
                raise UnpicklableGlobalError(name, value, why)
            continue  # also bound in the cell: the cell may not need the notebook's value
        if name in names.bound or cell_source.is_builtin(name):
            continue
        if remote_names is not None:
            continue  # it may have been made remotely by code this driver did not see
        raise CellNameError(f"name {name!r} is not defined")
    return shipped


def _why_unpicklable(value: Any) -> str:
    import cloudpickle

    try:
        # Out-of-band buffers (numpy arrays...) are not copied just to check.
        cloudpickle.dumps(value, protocol=5, buffer_callback=lambda _b: False)
    except Exception as e:  # noqa: BLE001
        return str(e) or type(e).__name__
    return ""
