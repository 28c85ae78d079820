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


class _Client(nbclient.NotebookClient):
    """Also records the widgets the kernel closed (nbclient keeps their state regardless)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.closed_comms: set[str] = set()

    def handle_comm_msg(self, outs, msg, cell_index) -> None:
        if msg["msg_type"] == "comm_close":
            self.closed_comms.add(msg["content"]["comm_id"])
        super().handle_comm_msg(outs, msg, cell_index)


@pytest.mark.timeout(600)
def test_monitoring_notebook_ends_with_its_displays_open(monkeypatch):
    """Run top to bottom, 05_monitoring leaves the monitor, the task stream and
    the store view shown and open (only its close() demo's own display closes)."""
    for var in ("JRAY_ADDRESS", "RAY_ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    nb = nbformat.read(os.path.join(NOTEBOOKS_DIR, "05_monitoring.ipynb"), as_version=4)
    client = _Client(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                     resources={"metadata": {"path": NOTEBOOKS_DIR}})
    client.execute()
    makers = {"monitor": "monitor = ClusterMonitor(", "stream": "stream = jray.views.task_stream(",
              "store": "store = jray.views.object_store(", "extra": "extra = jray.views."}
    shown = {}  # display -> the widget model ids in the outputs of the cell that made it
    for cell in nb.cells:
        ids = [o.data["application/vnd.jupyter.widget-view+json"]["model_id"] for o in cell.get("outputs", [])
               if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
        for name, maker in makers.items():
            if maker in cell.source and ids:
                shown[name] = ids
    assert set(shown) == set(makers), shown
    widgets = nb.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    models = {name: widgets[ids[0]]["model_name"] for name, ids in shown.items() if ids[0] in widgets}
    assert models["monitor"] == "VBoxModel" and models["stream"] == models["store"] == "BokehModel"
    for name in ("monitor", "stream", "store"):
        assert not set(shown[name]) & client.closed_comms, f"{name} was closed"
    assert set(shown["extra"]) <= client.closed_comms  # the close() demo closed its own display
