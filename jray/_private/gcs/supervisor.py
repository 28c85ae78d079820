"""The GCS's supervisor: what ``jray start --head`` leaves behind for the
GCS. It runs the GCS as its child and, when the child dies (killed, crashed:
any exit but a clean one), starts it again with ``--restore`` on the same
port with the same token, so the cluster's tables come back from
``<session>/gcs.db`` within a few seconds while raylets, workers and drivers
ride over the gap. A clean exit of the GCS (SIGTERM: ``jray stop``, or a
person stopping it by hand) ends the supervisor too; ``jray start --head
--restore`` starts both again.

Its ready line is the GCS's (``port``, ``pid``: the GCS's) plus
``supervisor_pid``; each restart records the new GCS pid in the session's
``cluster.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from typing import Any

from jray._private import config, daemon

logger = logging.getLogger("jray.gcs_supervisor")
# More restarts than this within RESTART_WINDOW seconds: wait longer between them.
RESTART_BURST, RESTART_WINDOW = 5, 60.0


class Supervisor:
    def __init__(self, ns: argparse.Namespace) -> None:
        self.ns = ns
        self.port = ns.port
        self.child: subprocess.Popen | None = None
        self.stopping = False
        self.restarts: list[float] = []

    def command(self, restore: bool) -> list[str]:
        ns = self.ns
        cmd = [sys.executable, "-m", "jray._private.gcs", "--host", ns.host, "--port", str(self.port),
               "--log", ns.gcs_log, "--parent-pid", str(ns.parent_pid), "--session-dir", ns.session_dir]
        return cmd + (["--restore"] if restore else [])

    def start_child(self, restore: bool) -> dict[str, Any]:
        from jray._private.node import _read_ready

        self.child = subprocess.Popen(self.command(restore), env=dict(os.environ, _JRAY_LEAN_IMPORT="1"),
                                      stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, start_new_session=True)
        info = _read_ready(self.child, "GCS", self.ns.gcs_log, config.STARTUP_TIMEOUT)
        self.port = int(info["port"])
        return info

    def stop(self, *_: Any) -> None:
        self.stopping = True
        child = self.child
        if child is not None and child.poll() is None:
            child.terminate()

    def record_pid(self, pid: int) -> None:
        """The new GCS pid in ``cluster.json`` (what ``jray stop`` and tests read)."""
        from jray._private import node

        path = os.path.join(self.ns.session_dir, "cluster.json")
        try:
            with node.session_lock(self.ns.session_dir):
                with open(path) as f:
                    info = json.load(f)
                info["gcs_pid"] = pid
                info["gcs_supervisor_pid"] = os.getpid()
                tmp = f"{path}.tmp-{os.getpid()}"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as f:
                    json.dump(info, f)
                os.replace(tmp, path)
        except (OSError, ValueError) as e:
            logger.warning("could not record the GCS pid in %s: %s", path, e)

    def run(self) -> int:
        ns = self.ns
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        try:
            info = self.start_child(ns.restore)
        except RuntimeError as e:
            sys.stdout.write(json.dumps({"error": str(e)}) + "\n")
            sys.stdout.flush()
            return 1
        assert self.child is not None
        info["supervisor_pid"] = os.getpid()
        daemon.announce(info, ns.log)
        logger.info("GCS pid %d on port %d", self.child.pid, self.port)
        while True:
            assert self.child is not None
            rc = self.child.wait()
            if self.stopping or rc == 0:
                logger.info("GCS pid %d exited (code %s): the supervisor exits", self.child.pid, rc)
                return 0
            if ns.parent_pid and not daemon._alive(ns.parent_pid):
                return 0
            died = time.monotonic()
            logger.warning("GCS pid %d died (code %s): restarting it from its tables", self.child.pid, rc)
            self.restarts = [t for t in self.restarts if died - t < RESTART_WINDOW] + [died]
            delay = 0.0 if len(self.restarts) <= RESTART_BURST else min(10.0, len(self.restarts) - RESTART_BURST)
            while not self.stopping:
                if delay:
                    time.sleep(delay)
                if self.stopping:
                    return 0
                try:
                    self.start_child(restore=True)
                    break
                except RuntimeError as e:  # the port still held, a bad start: try again
                    logger.warning("GCS restart failed: %s", e)
                    delay = min(10.0, max(1.0, delay * 2))
            if self.stopping:
                self.stop()
                continue
            assert self.child is not None
            logger.info("GCS restarted: pid %d on port %d, %.2f s after the death", self.child.pid, self.port,
                        time.monotonic() - died)
            self.record_pid(self.child.pid)


def cli() -> None:
    p = argparse.ArgumentParser(prog="python -m jray._private.gcs.supervisor")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--session-dir", required=True)
    p.add_argument("--log", required=True, help="the supervisor's log")
    p.add_argument("--gcs-log", required=True, help="the GCS's log")
    p.add_argument("--parent-pid", type=int, default=0)
    p.add_argument("--restore", action="store_true", help="the first GCS starts from the session's tables too")
    ns = p.parse_args()
    daemon.setup_logging(ns.log)
    sys.exit(Supervisor(ns).run())


if __name__ == "__main__":
    cli()
