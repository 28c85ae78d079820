"""Every demo notebook in ``notebooks/`` runs top to bottom in a fresh kernel.

The notebooks check their own results with ``assert`` cells, so a wrong
result fails here as surely as an exception. Each starts its own small
cluster (no ``JRAY_ADDRESS`` in the kernel) and stops it at the end; the
module's leak check then finds no process and no store file left.
"""

from __future__ import annotations

import os

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOTEBOOKS_DIR = os.path.join(REPO, "notebooks")
NOTEBOOKS = sorted(f for f in os.listdir(NOTEBOOKS_DIR) if f.endswith(".ipynb")) if os.path.isdir(NOTEBOOKS_DIR) else []

CELL_TIMEOUT = 120  # seconds per cell: the machine is small and shared, a notebook takes well under a minute alone


def check_stored_clean(nb) -> None:
    """What every demo notebook must look like on disk: it says what it shows
    first, is stored without outputs, and ends by shutting jray down."""
    assert nb.cells and nb.cells[0].cell_type == "markdown", "the first cell must say what the notebook shows"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "store the notebook without outputs"
    assert "jray.init(" in "".join(c.source for c in code), "the notebook must call jray.init itself"
    assert "jray.shutdown()" in code[-1].source, "the last code cell must call jray.shutdown()"


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebook in {NOTEBOOKS_DIR}"


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_demo_notebook_runs(name, monkeypatch):
    for var in ("JRAY_ADDRESS", "RAY_ADDRESS"):  # start a cluster of its own, as on a laptop
        monkeypatch.delenv(var, raising=False)
    nb = nbformat.read(os.path.join(NOTEBOOKS_DIR, name), as_version=4)
    check_stored_clean(nb)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": NOTEBOOKS_DIR}})
    client.execute()  # raises CellExecutionError (with the cell and traceback) on a failed cell or assert
    for cell in nb.cells:  # a cell that shows an error on purpose must really raise it
        if "raises-exception" in cell.get("metadata", {}).get("tags", []):
            assert any(o.output_type == "error" for o in cell.outputs), cell.source
