"""``ray.experimental.tqdm_ray`` (issue 20): a bar in a task is drawn by the
driver (here: its terminal, the bar's final state on one line), and
``safe_print`` output arrives with the task's prefix."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import time
    import jray as ray
    from jray.experimental.tqdm_ray import safe_print, tqdm
    ray.init(num_cpus=1)

    @ray.remote
    def work(n):
        bar = tqdm(total=n, desc="crunching")
        for _ in range(n):
            time.sleep(0.02)
            bar.update(1)
        bar.close()
        safe_print("done in task")
        return n

    @ray.remote
    def over(items):
        return sum(x for x in tqdm(items, desc="summing"))

    print("result", ray.get(work.remote(10)), ray.get(over.remote(list(range(5)))))
    assert ray.experimental.tqdm_ray.tqdm is tqdm
    time.sleep(0.5)
    ray.shutdown()
""")


def test_a_bar_in_a_task_is_drawn_by_the_driver():
    res = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    out = (res.stdout + res.stderr).replace("\r", "\n")
    assert res.returncode == 0, out[-3000:]
    assert "result 10 10" in out
    assert any("crunching: 100%" in ln and "10/10" in ln for ln in out.splitlines()), out[-3000:]
    assert any("summing: 100%" in ln and "5/5" in ln for ln in out.splitlines()), out[-3000:]
    assert "done in task" in out
