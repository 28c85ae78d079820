"""Entrypoints that ask for resources run on a node that has them.

(``jray.dashboard``: the engine's job manager calls :class:`ActorRunners`,
which the agent's entry point hands it.)

A job submitted with ``entrypoint_num_cpus``/``_num_gpus``/``_memory``/
``_resources`` (as Ray's) does not run on the head as other jobs do: the job
agent connects to the cluster as a driver (once, on the first such job) and
creates an :class:`EntrypointRunner` actor with those resources and the
job's ``runtime_env``. The scheduler places it as any actor (the head when
it fits, another node otherwise; PENDING, as in Ray, while no node has room:
an autoscaler sees the demand), which holds the resources for the job's
life. The actor starts the entrypoint in its own process group, in the
worker's working directory and environment (the runtime_env set up on that
node: ``working_dir`` as cwd, ``env_vars``, a pip env's interpreter first on
``PATH``), with the cluster's address and the job's submission id, exactly as
the agent would on the head. Its output comes back to the agent as a
streaming generator (bytes chunks, then the exit code), into the job's log;
stop signals the process group through the actor (SIGTERM, then SIGKILL).

The entrypoint dies with its actor (``PR_SET_PDEATHSIG``): an agent that
goes (its driver's actors are fate-shared) or a node that dies takes it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

# The worker's own settings: the entrypoint is a driver, not this worker.
_WORKER_ONLY = ("JRAY_RUNTIME_ENV", "JRAY_RUNTIME_ENV_KEY", "JRAY_RUNTIME_ENV_SETUP", "JRAY_RAYLET_PID",
                "JRAY_RAYLET_ADDRESS", "JRAY_NODE_ID", "JRAY_NODE_IP", "JRAY_GCS_ADDRESS", "JRAY_SESSION_DIR",
                "JRAY_NAMESPACE", "JRAY_JOB_CONFIG_JSON", "JRAY_ADDRESS", "RAY_ADDRESS")
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class EntrypointRunner:
    """One job's entrypoint on the node this actor was placed on."""

    def __init__(self, entrypoint: str, env: dict[str, str]) -> None:
        environ = {k: v for k, v in os.environ.items() if k not in _WORKER_ONLY}
        environ.update(env)
        environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + environ.get("PATH", os.defpath)
        self.proc = subprocess.Popen(["/bin/sh", "-c", entrypoint], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=environ,
                                     start_new_session=True, preexec_fn=_die_with_parent)

    def where(self) -> dict[str, Any]:
        return {"pid": self.proc.pid, "host": socket.gethostname(),
                "node_ip": os.environ.get("JRAY_NODE_IP", "")}

    def output(self) -> Iterator[bytes | int]:
        """The entrypoint's output as it comes (bytes), then its exit status
        (an int; negative: killed by that signal)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            yield chunk
        yield self.proc.wait()

    def signal(self, signum: int) -> bool:
        """Signal the entrypoint's process group; False if it has ended."""
        if self.proc.poll() is not None:
            return False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signum)
        return True

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)


class ActorRunners:
    """What the job agent's manager calls to run entrypoints in
    :class:`EntrypointRunner` actors (it gets this object from
    ``jray.dashboard.agent``: the engine does not import the public API)."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.connected = False

    async def connect(self, gcs_address: str, token: str) -> None:
        import asyncio

        import jray

        if not self.connected:
            await asyncio.to_thread(lambda: jray.init(address=gcs_address, _token=token, namespace=self.namespace,
                                                      log_to_driver=False, ignore_reinit_error=True))
            self.connected = True

    def launch(self, entrypoint: str, env: dict[str, str], options: dict[str, Any]) -> Any:
        import jray

        return jray.remote(EntrypointRunner).options(**options).remote(entrypoint, env)

    async def where(self, runner: Any) -> dict[str, Any]:
        """Once the actor is placed and its entrypoint started; RuntimeEnvSetupFailed
        when its runtime_env could not be set up on the node."""
        from jray import exceptions
        from jray._private.jobs.common import RuntimeEnvSetupFailed

        try:
            return dict(await runner.where.remote())
        except exceptions.RuntimeEnvSetupError as e:
            raise RuntimeEnvSetupFailed(str(e)) from None

    async def output(self, runner: Any) -> Any:
        async for ref in runner.output.options(num_returns="streaming").remote():
            yield await ref

    async def signal(self, runner: Any, signum: int) -> None:
        await runner.signal.remote(signum)

    def kill(self, runner: Any) -> None:
        import jray

        jray.kill(runner)

    async def shutdown(self) -> None:
        import asyncio

        import jray

        if self.connected:
            await asyncio.to_thread(jray.shutdown)
            self.connected = False
