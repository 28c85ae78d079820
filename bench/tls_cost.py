"""What TLS costs jray: the same figures with TLS off and on, measured in
one run on this machine, rounds alternating (the machine is shared and
noisy: medians, and each round's values in the JSON).

A cluster of two nodes started with the CLI (``jray start --head [--tls]``
and a second ``jray start --address`` node holding a ``far`` resource), and
a driver on the head's machine (it finds TLS in the address file):

- task round trip: a sync ``get(f.remote())`` loop (the owner's push to a
  worker over the direct transport, the lease over gRPC);
- 100 MB transfer: a 100 MB array a task on the other node returned, read
  by the driver (pulled between the raylets over gRPC), the task done
  before the clock starts.

    .venv/bin/python bench/tls_cost.py [--rounds 3] [--json out.json]

Ray's TLS (``RAY_USE_TLS``) is not measured here: its figures would need
Ray's certificates set up the same way; the ratio on/off is what the README
reports.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap

CLI = [sys.executable, "-m", "jray.scripts"]

DRIVER = textwrap.dedent("""
    import json, statistics, time
    import numpy as np
    import jray
    jray.init("auto", log_to_driver=False)

    @jray.remote
    def noop():
        return b"ok"

    @jray.remote(resources={"far": 1})
    def big(n):
        return np.ones(n, dtype=np.uint8)

    for _ in range(50):  # warm: workers up on both nodes, channels open
        jray.get(noop.remote())
    jray.get(big.remote(1024))
    calls = 500
    t0 = time.perf_counter()
    for _ in range(calls):
        jray.get(noop.remote())
    rtt_ms = (time.perf_counter() - t0) * 1e3 / calls
    pulls = []
    for _ in range(3):
        ref = big.remote(100 * 1024 * 1024)
        jray.wait([ref], fetch_local=False, timeout=120)
        t0 = time.perf_counter()
        x = jray.get(ref, timeout=120)
        pulls.append(time.perf_counter() - t0)
        assert x.nbytes == 100 * 1024 * 1024
        del x, ref
        time.sleep(0.3)
    print(json.dumps({"rtt_ms": rtt_ms, "transfer_100mb_s": statistics.median(pulls)}))
""")


def run_once(tls: bool) -> dict[str, float]:
    tmp = tempfile.mkdtemp(prefix="jray-tls-cost-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JRAY_TLS") and k != "JRAY_USE_TLS"}
    env.update(JRAY_TMPDIR=tmp)
    try:
        head = [*CLI, "start", "--head", "--port", "0", "--num-cpus", "1", "--object-store-memory", str(400 << 20)]
        if tls:
            head += ["--tls", "--tls-dir", os.path.join(tmp, "tls")]
        out = subprocess.run(head, env=env, capture_output=True, text=True, timeout=120, check=True).stdout
        address = next(ln.split("--address ")[1].split()[0] for ln in out.splitlines() if "jray start --address" in ln)
        subprocess.run([*CLI, "start", "--address", address, "--num-cpus", "1", "--resources", '{"far": 1}',
                        "--object-store-memory", str(400 << 20)], env=env, capture_output=True, text=True,
                       timeout=120, check=True)
        res = subprocess.run([sys.executable, "-c", DRIVER], env=env, capture_output=True, text=True, timeout=600)
        if res.returncode != 0:
            raise RuntimeError(res.stderr[-3000:])
        return dict(json.loads(res.stdout.strip().splitlines()[-1]))
    finally:
        subprocess.run([*CLI, "stop"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="write every round's figures here")
    ns = ap.parse_args()
    rounds: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    for i in range(ns.rounds):
        for mode in (("off", "on") if i % 2 == 0 else ("on", "off")):
            rounds[mode].append(run_once(mode == "on"))
            print(f"round {i + 1} TLS {mode}: {rounds[mode][-1]}", flush=True)
    med = {m: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for m, rs in rounds.items()}
    print("\n| figure | TLS off | TLS on | on/off |\n|---|---:|---:|---:|")
    print(f"| task round trip | {med['off']['rtt_ms']:.3f} ms | {med['on']['rtt_ms']:.3f} ms | "
          f"{med['on']['rtt_ms'] / med['off']['rtt_ms']:.2f}x |")
    mb = 100 * 1024 * 1024 / 1e9
    off_gbs, on_gbs = mb / med["off"]["transfer_100mb_s"], mb / med["on"]["transfer_100mb_s"]
    print(f"| 100 MB between nodes | {off_gbs:.2f} GB/s | {on_gbs:.2f} GB/s | {on_gbs / off_gbs:.2f}x |")
    if ns.json:
        with open(ns.json, "w") as f:
            json.dump({"rounds": rounds, "medians": med}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
