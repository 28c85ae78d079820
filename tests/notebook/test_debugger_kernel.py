"""Remote debugging in a real Jupyter kernel: a task that reaches
``breakpoint()`` opens pdb in the cell waiting on it (commands through the
notebook's input box, the frontend's stdin channel), and ``%jray debug``
after a cell failed with a task's error debugs the remote frames."""

from __future__ import annotations

import os

import pytest

from tests.notebook.kernel_harness import Kernel

pytest.importorskip("ipykernel")
pytest.importorskip("jupyter_client")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def kernel():
    k = Kernel(cwd=REPO)
    try:
        init = k.run("%load_ext jray\nimport jray\nctx = jray.init(num_cpus=2)")
        assert init.status == "ok", init.of_type("error")
        yield k
    finally:
        k.shutdown()


def test_breakpoint_opens_pdb_in_the_waiting_cell(kernel):
    define = kernel.run(
        "@jray.remote\n"
        "def scale(x):\n"
        "    factor = x * 10\n"
        "    breakpoint()\n"
        "    return factor + 1\n")
    assert define.status == "ok"
    cell = kernel.run("jray.get(scale.remote(4), timeout=60)", timeout=90,
                      stdin=["p factor", "factor = 1000", "c"])
    assert cell.status == "ok", cell.of_type("error")
    assert kernel.input_prompts[:3] == ["(Pdb) "] * 3, kernel.input_prompts
    text = cell.text()
    assert "jray: debugging scale" in text and "40\n" in text, text
    result = cell.of_type("execute_result")
    assert result and result[0]["content"]["data"]["text/plain"] == "1001"  # changed in the debugger


def test_jray_debug_after_a_failed_cell_is_post_mortem(kernel):
    failed = kernel.run(
        "@jray.remote\n"
        "def divide(a, b):\n"
        "    ratio_input = (a, b)\n"
        "    return a / b\n"
        "jray.get(divide.remote(3, 0), timeout=60)\n")
    assert failed.status == "error" and failed.ename and "ZeroDivisionError" in failed.ename
    cell = kernel.run("%jray debug", timeout=60, stdin=["p ratio_input", "q"])
    assert cell.status == "ok", cell.of_type("error")
    text = cell.text()
    assert "post-mortem of divide(): ZeroDivisionError" in text and "(3, 0)" in text, text
