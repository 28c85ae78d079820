"""A driver that forks (a notebook's ``!cmd`` or ``%pip``) prints nothing
from gRPC (issue 18, item 8: every fork printed a red ``fork_posix.cc:71
Other threads are currently calling into gRPC`` line)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

DRIVER = textwrap.dedent("""
    import os
    import jray
    jray.init(num_cpus=1)

    @jray.remote
    def f():
        return 1

    assert sum(jray.get([f.remote() for _ in range(20)])) == 20
    for _ in range(3):  # as IPython's !cmd does (pexpect: fork, then exec)
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    assert sum(jray.get([f.remote() for _ in range(20)])) == 20
    jray.shutdown()
    print("ok")
""")


def test_forking_a_driver_prints_nothing_from_grpc():
    env = {k: v for k, v in os.environ.items() if k != "GRPC_ENABLE_FORK_SUPPORT"}
    res = subprocess.run([sys.executable, "-c", DRIVER], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-3000:]
    assert "fork_posix" not in res.stderr and "skipping fork() handlers" not in res.stderr, res.stderr[-3000:]
