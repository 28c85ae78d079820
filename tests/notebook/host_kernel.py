"""A real Jupyter kernel on a virtual host (``jray._private.virtual_hosts``):
its own network, /tmp and /dev/shm, so a driver in it shares nothing with
the cluster but the network. Driven like :class:`kernel_harness.Kernel`
(same ``run``/``wait_for``/``drain``), over ZeroMQ to the host's address.

jupyter_client's KernelManager only launches kernels on a local interface,
so the kernel is started here: a connection file written into the host's
private /tmp, ``python -m ipykernel_launcher -f`` in the host, a blocking
client on the host's IP; interrupting is SIGINT to the kernel process (what
a kernel spec's default "signal" interrupt mode does).
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import uuid
from typing import IO, Any

from jupyter_client.blocking.client import BlockingKernelClient

from jray._private import virtual_hosts as vh
from tests.notebook.kernel_harness import Kernel


class _HostKernelManager:
    """The two calls ``Kernel`` makes of its manager, for a kernel in a host."""

    def __init__(self, proc: vh.HostProcess, kc: BlockingKernelClient) -> None:
        self.proc = proc
        self.kc = kc

    def interrupt_kernel(self) -> None:
        self.proc.send_signal(signal.SIGINT)

    def shutdown_kernel(self, now: bool = False) -> None:
        if not now and self.proc.poll() is None and self.kc.channels_running:
            self.kc.shutdown()
            try:
                self.proc.wait(15)
                return
            except subprocess.TimeoutExpired:
                pass
        self.proc.send_signal(signal.SIGKILL)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class HostKernel(Kernel):
    """An ipykernel inside ``host`` with ``env`` (e.g. JRAY_ADDRESS/JRAY_TOKEN);
    its stdout/stderr go to ``log``."""

    def __init__(self, host: vh.Host, env: dict[str, str], log: IO[bytes], cwd: str = "/tmp",
                 timeout: float = 60) -> None:
        ports = random.sample(range(20000, 30000), 5)  # nothing else listens in the host's own network
        info: dict[str, Any] = {
            "shell_port": ports[0], "iopub_port": ports[1], "stdin_port": ports[2], "control_port": ports[3],
            "hb_port": ports[4], "ip": host.ip, "key": uuid.uuid4().hex, "transport": "tcp",
            "signature_scheme": "hmac-sha256", "kernel_name": ""}
        inside = f"/tmp/kernel-{uuid.uuid4().hex[:8]}.json"
        with open(host.fs_path(inside), "w") as f:
            json.dump(info, f)
        self.host = host
        self.proc = host.popen([sys.executable, "-m", "ipykernel_launcher", "-f", inside], env=env, cwd=cwd,
                               stdout=log, stderr=subprocess.STDOUT)
        self.kc = BlockingKernelClient()
        self.kc.load_connection_info(info)
        self.kc.start_channels()
        self.km = _HostKernelManager(self.proc, self.kc)  # type: ignore[assignment]
        self.by_parent = {}
        try:
            self.kc.wait_for_ready(timeout=timeout)
        except BaseException:
            self.kc.stop_channels()
            self.km.shutdown_kernel(now=True)
            raise

    def shutdown(self) -> None:
        """``jray.shutdown()`` in the kernel, then a shutdown request (SIGKILL if it does not end)."""
        try:
            self.run("import jray; jray.shutdown()", timeout=30)
        finally:
            try:
                self.km.shutdown_kernel(now=False)
            finally:
                self.kc.stop_channels()

    @property
    def pid(self) -> int | None:
        """The kernel process (as the root namespace sees it)."""
        return self.proc.inner_pid()
