"""Run the microbenchmark suite against Ray or jray, or both side by side.

    python bench/run.py --runtime ray            # Ray, under .venv-ray/bin/python
    python bench/run.py --runtime jray           # jray, under this interpreter
    python bench/run.py --both                   # both, then bench/out/results.{json,md}

A thin entry: the code is ``jray/bench/runner.py`` (see ``jray/bench/__init__.py``
for why it lives in the package), loaded here by file path, as the Ray child
loads it, so this script needs no jray installed and imports none.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

RUNNER = Path(__file__).resolve().parents[1] / "jray" / "bench" / "runner.py"


def load_runner() -> ModuleType:
    """``jray/bench/runner.py`` as a module, without importing the jray package."""
    spec = importlib.util.spec_from_file_location("jray_bench_runner", RUNNER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    sys.exit(load_runner().main())
