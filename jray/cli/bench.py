"""``jray microbenchmark``: the jray half of the benchmark suite, in-process.

The side-by-side run against Ray 2.60 is ``python bench/compare.py``; this
command is for a quick look at one machine without Ray installed. The
workloads are ``jray.bench.workloads``, the same code the side-by-side run
uses.
"""

from __future__ import annotations

import argparse
import json
import sys


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="2 repetitions and smaller counts")
    p.add_argument("--large", action="store_true", help="also put a 1 GB array")
    p.add_argument("--reps", type=int, default=None, help="repetitions per workload (default 5)")
    p.add_argument("--only", default="", help="comma-separated workload names")
    p.add_argument("--json", default="", help="also write the results to this file")


def microbenchmark(ns: argparse.Namespace) -> int:
    import jray
    from jray.bench import report, workloads

    if ns.reps is not None and ns.reps < 1:
        print("jray: --reps must be at least 1", file=sys.stderr)
        return 2
    only = [w for w in ns.only.split(",") if w] or None
    known = {w.name for w in workloads.WORKLOADS}
    unknown = sorted(set(only or ()) - known)
    if unknown:
        print(f"jray: unknown workload(s) {unknown}; known: {sorted(known)}", file=sys.stderr)
        return 2
    result = workloads.run_all(jray, quick=ns.quick, large=ns.large, reps=ns.reps,
                               progress=lambda m: print(m, file=sys.stderr), only=only,
                               own_cluster=False)  # it would start a head beside the user's cluster
    width = max((len(m.get("title", k)) for k, m in result["metrics"].items()), default=10)
    for key, m in result["metrics"].items():
        value = report.fmt_cell(m)
        print(f"{m.get('title', key):<{width}}  {value} {m.get('unit', '') if m.get('ok') else ''}")
    if ns.json:
        with open(ns.json, "w") as f:
            json.dump(result, f, indent=1)
    failed = [k for k, w in result["workloads"].items() if not w["ok"]]
    return 1 if failed else 0
