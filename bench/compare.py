"""Run jray and Ray in one invocation and write bench/out/results.{json,md}.

    python bench/compare.py [--quick] [--large] [--reps N] [--only a,b]
    python bench/compare.py --render bench/out/jray.json bench/out/ray.json

The first form is ``bench/run.py --both``. ``--render`` builds the report
from two runs made earlier with ``bench/run.py --runtime ...`` (their ratios
are then across runs, so noisier than within one invocation).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402  (bench/run.py, beside this file)


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--render", nargs=2, metavar=("JRAY_JSON", "RAY_JSON"), help="report two earlier runs"
    )
    p.add_argument(
        "--out", help="JSON file (default: bench/out/results.json); the .md goes beside it"
    )
    args, rest = p.parse_known_args()
    if not args.render:
        return run.main(["--both", *(["--out", args.out] if args.out else []), *rest])
    report = run.load(run.PERF / "report.py", "jray_bench_report")
    runs = {
        key: json.loads(Path(f).read_text())
        for key, f in zip(("jray", "ray"), args.render, strict=True)
    }
    results = {"machine": report.machine_info(), "runs": runs}
    out = Path(args.out) if args.out else run.OUT_DIR / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    md = report.markdown(results)
    out.with_suffix(".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
