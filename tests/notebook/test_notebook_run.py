"""A whole notebook executed with nbclient: each cell keeps its own output."""

from __future__ import annotations

import os

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CELLS = [
    "import jray\nctx = jray.init(num_cpus=2)\nctx",
    "%load_ext jray",
    "@jray.remote\ndef square(i):\n    print('squaring', i)\n    return i * i\n"
    "jray.get([square.remote(i) for i in range(3)])",
    "%%remote\nprint('in a remote cell')\nfive = 5",
    "print(five * 2)",
    "bar = jray.progress([square.remote(i) for i in range(4)], desc='squares')\nbar.wait(30)",
    "%jray nodes",
    "jray.shutdown()",
]


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_notebook_cells_get_their_own_outputs():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in CELLS])
    client = nbclient.NotebookClient(nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": REPO}})
    client.execute()
    init, load, tasks, remote, local, progress, nodes, down = nb.cells
    assert "jray cluster" in init.outputs[0]["data"]["text/html"]
    assert load.outputs == []
    lines = _text(tasks).splitlines()
    assert sorted(ln.split(") ", 1)[1] for ln in lines) == ["squaring 0", "squaring 1", "squaring 2"]
    assert all(ln.startswith("(square pid=") for ln in lines)
    assert tasks.outputs[-1]["data"]["text/plain"] == "[0, 1, 4]"
    assert _text(remote) == "in a remote cell\n"
    assert _text(local) == "10\n"
    assert _text(progress).count("squaring") == 4 and _text(nodes) == ""  # nothing strays into other cells
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in progress.outputs)
    assert "alive" in nodes.outputs[0]["data"]["text/plain"]
    assert down.outputs == []
