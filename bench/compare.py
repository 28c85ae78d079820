"""Run jray and Ray in one invocation and write bench/out/results.{json,md}.

    python bench/compare.py [--quick] [--large] [--reps N] [--only a,b]
    python bench/compare.py --render bench/out/jray.json bench/out/ray.json

The first form is ``bench/run.py --both``. ``--render`` builds the report
from two runs made earlier with ``bench/run.py --runtime ...``. A thin entry:
the code is ``compare_main`` in ``jray/bench/runner.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402  (bench/run.py, beside this file)

if __name__ == "__main__":
    sys.exit(run.load_runner().compare_main())
