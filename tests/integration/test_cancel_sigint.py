"""Cancel works in a cluster started by a process that ignores SIGINT (a
Jupyter server run with nohup or as a service; issue 18): its raylet and
workers inherit SIG_IGN, yet jray.cancel must still interrupt the task."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

DRIVER = textwrap.dedent("""
    import signal, time
    import jray
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # as under nohup
    jray.init(num_cpus=1)

    @jray.remote
    def spin():
        while True:
            time.sleep(0.05)

    ref = spin.remote()
    time.sleep(1.0)
    t0 = time.monotonic()
    jray.cancel(ref)
    try:
        jray.get(ref, timeout=20)
        print("not cancelled")
    except jray.exceptions.TaskCancelledError:
        print("cancelled in", round(time.monotonic() - t0, 2))
    jray.shutdown()
""")


def test_cancel_interrupts_a_task_when_sigint_was_ignored():
    res = subprocess.run([sys.executable, "-c", DRIVER], capture_output=True, text=True, timeout=120,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert res.returncode == 0, res.stderr[-3000:]
    line = res.stdout.strip().splitlines()[-1]
    assert line.startswith("cancelled in"), res.stdout + res.stderr[-2000:]
    assert float(line.split()[-1]) < 5
