"""The headless demo: a real jray cluster doing tasks, objects and actors.

Run with ``bash scripts/start.sh --headless`` (sets everything up) or
``python examples/quickstart.py`` inside the project's environment.
"""

import time

import numpy as np

import jray as ray


def main() -> None:
    t0 = time.perf_counter()
    ctx = ray.init(num_cpus=2)
    print(f"cluster up in {time.perf_counter() - t0:.2f} s: {ctx}")

    @ray.remote
    def monte_carlo_pi(n: int, seed: int) -> float:
        rng = np.random.default_rng(seed)
        xy = rng.random((n, 2))
        return float(((xy**2).sum(axis=1) <= 1.0).mean() * 4)

    estimates = ray.get([monte_carlo_pi.remote(200_000, s) for s in range(8)])
    print(f"pi ~ {np.mean(estimates):.4f} from 8 parallel tasks")

    big = ray.put(np.arange(10_000_000, dtype=np.float64))
    arr = ray.get(big)
    print(f"80 MB array from shared memory: read-only={not arr.flags.writeable}, sum={arr.sum():.3e}")

    @ray.remote
    class Counter:
        def __init__(self) -> None:
            self.n = 0

        def add(self, k: int) -> int:
            self.n += k
            return self.n

    c = Counter.remote()
    print("actor state:", ray.get([c.add.remote(i) for i in range(5)]))

    @ray.remote
    def shout(word: str) -> str:
        print(f"worker says {word}")
        return word.upper()

    print(ray.get(shout.remote("hello")))
    print("nodes:", [(n["NodeID"][:8], n["Resources"]["CPU"]) for n in ray.nodes()])
    ray.shutdown()
    print("shut down: no process or /dev/shm file left")


if __name__ == "__main__":
    main()
