"""The cluster a Jupyter server works with: one it started, or one it attached to.

``ServerCluster`` is plain state with blocking methods (the handlers run them
in a thread so the server's loop never waits on a daemon's start-up). It never
makes the server process a jray driver: status comes from
``jray.util.state`` with an explicit address and token.

Kernels learn the cluster through the server's environment, which every
kernel (and terminal) the server starts inherits: ``JRAY_ADDRESS`` and
``JRAY_TOKEN`` (so a bare ``jray.init()`` attaches) and
``JRAY_DASHBOARD_URL`` (the pages, for ``%jray dashboard``). Values the
server had before are put back when the cluster goes. A running kernel's
environment cannot change, so the same values go to ``cluster_file``
(``JRAY_CLUSTER_FILE``), which ``jray.init()`` reads first: a kernel whose
cluster was stopped connects to the one started since (and is told, not
handed a cluster of its own, while none runs). A head this server starts is
also recorded in the machine's address file (unless a live ``jray start``
cluster is), so ``jray status`` in any terminal finds it.

A started head is tied to the server process (its daemons exit if the
server dies) but not to any kernel, so it outlives kernel restarts; stopping
it stops every node this server added. An attached cluster is never
stopped, only the local nodes the server added to it.

An attached cluster may run on other machines (no node of it here): the
head is checked before it is used (``gcs_client.check_cluster``: an
address that does not answer, a refused token, another jray version are
``ClusterError`` with the message jray gives and a 4xx status), and the
kernels' bare ``jray.init()`` then connects as a client. ``detach`` forgets
it and gives the kernels back the environment the server had before.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jray._private import node as _node

log = logging.getLogger(__name__)

ENV_KEYS = ("JRAY_ADDRESS", "JRAY_TOKEN", "JRAY_DASHBOARD_URL")


class ClusterError(Exception):
    """Raised when a request cannot be carried out in the cluster's current
    state (``status`` is the HTTP status the REST API answers with)."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class HeadOptions:
    """Resources of the local head and of the worker nodes added from the sidebar."""

    num_cpus: float | None = None
    num_gpus: float | None = None
    resources: dict[str, float] = field(default_factory=dict)
    object_store_memory: int | None = None
    worker_num_cpus: float = 1.0
    worker_object_store_memory: int | None = None
    max_worker_nodes: int = 4


class ServerCluster:
    """What the server knows of its cluster, and the only code that starts or stops it."""

    def __init__(self, options: HeadOptions, dashboard_url: str = "",
                 logger: logging.Logger | logging.LoggerAdapter[Any] | None = None, cluster_file: str = "") -> None:
        self.options = options
        self.cluster_file = cluster_file  # JRAY_CLUSTER_FILE of the kernels: rewritten on every change
        self.log = logger or log  # the Jupyter server's log, where users look
        self.dashboard_url = dashboard_url
        self.handle: _node.ClusterHandle | None = None  # a head this server started
        self.address = ""
        self.token = ""
        self.owned = False
        self.last_error = ""  # why the configured start/attach failed, for the sidebar
        self.workers: list[_node.NodeHandle] = []  # local nodes this server added
        self._joined: _node.ClusterHandle | None = None  # session of nodes joining an attached cluster
        self._saved_env: dict[str, str | None] = {}
        # Told of every change to the kernels' environment (the extension
        # updates running kernels, whose restarts reuse their first env).
        self.on_env_change: Callable[[dict[str, str]], None] | None = None
        self._lock = threading.RLock()  # one start/stop/add/remove at a time

    # -- lifecycle ---------------------------------------------------------------

    @property
    def running(self) -> bool:
        return bool(self.address)

    def start(self) -> None:
        """Start a local head (GCS + raylet) owned by this server."""
        with self._lock:
            if self.running:
                raise ClusterError(f"a cluster is already in use at {self.address}")
            o = self.options
            handle = _node.start_head(num_cpus=o.num_cpus, num_gpus=o.num_gpus, resources=o.resources or None,
                                      object_store_memory=o.object_store_memory)
            self.handle, self.owned, self.last_error = handle, True, ""
            _node.claim_address_file(handle)
            self._use(handle.gcs_address, handle.token)
            self.log.info("jray: started a local head, GCS at %s (session %s)", handle.gcs_address, handle.session_dir)
            self._start_jobs(handle)

    def _start_jobs(self, handle: _node.ClusterHandle) -> None:
        """The head's jobs API (as ``jray start --head``'s), so kernels can
        submit and watch jobs (``%jray jobs``, ``JobMonitor``); a cluster
        without it still works."""
        from jray._private.jobs import process

        try:
            info = process.start_agent(session_dir=handle.session_dir, gcs_address=handle.gcs_address,
                                       token=handle.token, host="127.0.0.1", port=None,
                                       watch_pid=handle.supervisor_pid or os.getpid())
            self.log.info("jray: the jobs API listens at http://%s", info["http_address"])
        except (RuntimeError, OSError) as e:
            self.log.warning("jray: the jobs API did not start: %s", e)

    def attach(self, address: str, token: str, *, check: bool = True, replace: bool = False) -> None:
        """Use the running cluster at ``address`` (never stopped by this
        server), on this machine or another. ``check``: the head must answer
        and accept the token first (else ``ClusterError``, nothing changes).
        ``replace``: an attached cluster in use is detached first (once the
        new one has answered); a head this server started is never replaced."""
        with self._lock:
            if self.running and (self.owned or not replace):
                raise ClusterError(f"a cluster is already in use at {self.address}")
            address, token = resolve(address, token)
            if check:
                check_head(address, token)
            if self.running:
                self.detach()
            self.owned, self.last_error = False, ""
            self._use(address, token)
            self.log.info("jray: attached to the cluster at %s", address)

    def detach(self) -> str:
        """Forget the attached cluster (left running; the local nodes this
        server added to it are stopped) and give the kernels back the
        environment the server had before; returns its address."""
        with self._lock:
            if not self.running:
                raise ClusterError("no jray cluster is attached")
            if self.owned:
                raise ClusterError(f"the cluster at {self.address} was started by this server: stop it instead")
            address = self.address
            self.stop()
            self.log.info("jray: detached from the cluster at %s", address)
            return address

    def stop(self) -> None:
        """Stop the nodes this server added and the head it started; forget an
        attached cluster without stopping it."""
        with self._lock:
            for n in reversed(self.workers):
                _node.stop_node(n)
                if self.handle is not None and n in self.handle.nodes:
                    self.handle.nodes.remove(n)
            self.workers.clear()
            stopped = self.address if self.handle is not None else ""
            if self.handle is not None:
                self.log.info("jray: stopping the local head at %s", self.handle.gcs_address)
                from jray._private.jobs import process

                process.stop_agent(self.handle.session_dir)
                _node.stop_cluster(self.handle)
                self.handle = None
            self._joined = None
            self.address = self.token = ""
            self.owned = False
            self._restore_env(stopped)

    def add_node(self, num_cpus: float | None = None) -> _node.NodeHandle:
        """Start a local worker raylet that joins the cluster, with ``num_cpus``
        CPUs (default ``worker_num_cpus``)."""
        if num_cpus is not None and (isinstance(num_cpus, bool) or not isinstance(num_cpus, (int, float))
                                     or not 0 < num_cpus <= 1024):
            raise ClusterError(f"num_cpus must be a number above 0 (at most 1024), got {num_cpus!r}", 400)
        with self._lock:
            if not self.running:
                raise ClusterError("no cluster is running")
            o = self.options
            if len(self.workers) >= o.max_worker_nodes:
                raise ClusterError(f"this server already runs {len(self.workers)} worker nodes "
                                   f"(JrayExtension.max_worker_nodes)")
            if self.handle is None and self._joined is None:  # nodes joining an attached cluster
                self._joined = _node.ClusterHandle(self.address, self.token, _node.new_session_dir(), 0)
            target = self.handle or self._joined
            assert target is not None
            node = _node.add_node(target, num_cpus=o.worker_num_cpus if num_cpus is None else float(num_cpus), num_gpus=0,
                                  object_store_memory=o.worker_object_store_memory)
            self.workers.append(node)
            return node

    def remove_node(self, node_id: str | None = None) -> str:
        """Stop a worker node this server added (the newest when ``node_id`` is None)."""
        with self._lock:
            if not self.workers:
                raise ClusterError("this server has added no worker node to remove")
            if node_id is None:
                node = self.workers[-1]
            else:
                found = [n for n in self.workers if n.node_id == node_id]
                if not found:
                    raise ClusterError(f"node {node_id} is not a worker node this server added", 404)
                node = found[0]
            self.workers.remove(node)
            if self.handle is not None and node in self.handle.nodes:
                self.handle.nodes.remove(node)
            _node.stop_node(node)
            return node.node_id

    def workers_ids(self) -> list[str]:
        return [n.node_id for n in self.workers]

    # -- the environment kernels inherit ------------------------------------------

    def _use(self, address: str, token: str) -> None:
        self.address, self.token = address, token
        env = {"JRAY_ADDRESS": address, "JRAY_TOKEN": token}
        if self.dashboard_url:
            env["JRAY_DASHBOARD_URL"] = self.dashboard_url
        for k, v in env.items():
            self._saved_env.setdefault(k, os.environ.get(k))
            os.environ[k] = v
        self.write_cluster_file()
        self._announce(env)

    def _restore_env(self, stopped: str = "") -> None:
        for k, v in self._saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self.write_cluster_file(stopped)
        self._announce({k: v or "" for k, v in self._saved_env.items()})  # "": unset for jray.init
        self._saved_env.clear()

    def write_cluster_file(self, stopped: str = "") -> None:
        """The kernels' cluster now (``jray.init`` reads it, ``JRAY_CLUSTER_FILE``):
        this server's environment for them; ``stopped``: the address of the
        head this server just stopped (a bare init then says so). Also the
        pages' folder under the server's base URL (``dashboard_url``), running
        cluster or not: a kernel shows them inline (``jray.views.tables()``)."""
        if not self.cluster_file:
            return
        env = {k: os.environ.get(k, "") for k in ("JRAY_ADDRESS", "JRAY_TOKEN")}
        record = {"env": env, "stopped": "" if env["JRAY_ADDRESS"] else stopped, "dashboard_url": self.dashboard_url}
        tmp = f"{self.cluster_file}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(record, f)
            os.replace(tmp, self.cluster_file)
        except OSError as e:
            self.log.warning("jray: could not write %s: %s", self.cluster_file, e)

    def _announce(self, env: dict[str, str]) -> None:
        if env and self.on_env_change is not None:
            try:
                self.on_env_change(env)
            except Exception:  # a kernel going away meanwhile must not fail a start/stop
                self.log.exception("jray: could not update the kernels' environment")

    # -- what the REST API reports ------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """The cluster as this server holds it (no network call)."""
        return {"running": self.running, "address": self.address, "owned": self.owned,
                "last_error": self.last_error,
                "session_dir": self.handle.session_dir if self.handle else "",
                "worker_nodes": [n.node_id for n in self.workers],
                "max_worker_nodes": self.options.max_worker_nodes}


def check_head(address: str, token: str, timeout: float = 10) -> None:
    """Raise ``ClusterError`` with jray's own message unless the head at
    ``address`` answers within ``timeout`` s, accepts ``token`` and runs this
    jray version: 403 for a refused token, 400 otherwise (the address is
    what the user gave)."""
    from jray import exceptions
    from jray._private import gcs_client

    if not _HOST_PORT.match(address):
        raise ClusterError(f"not a cluster address: {address!r} (expected HOST:PORT or jray://HOST:PORT)", 400)
    try:
        gcs_client.check_cluster(address, token, timeout=timeout)
    except exceptions.AuthenticationError as e:
        raise ClusterError(str(e), 403) from None
    except (ConnectionError, RuntimeError, OSError, ValueError) as e:
        raise ClusterError(str(e), 400) from None


_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[^\s:/\[\]]+):\d{1,5}$")


def resolve(address: str, token: str) -> tuple[str, str]:
    """(address, token) of the cluster to attach to: ``address`` or
    ``JRAY_ADDRESS``, ``"auto"`` for the address file of ``jray start
    --head``; ``token`` or ``JRAY_TOKEN``, else the address file's when it
    names the same cluster."""
    address = address or os.environ.get("JRAY_ADDRESS", "") or "auto"
    info = _node.read_address_file()
    if address == "auto":
        if info is None:
            raise ClusterError("no running jray cluster found to attach to (start one with "
                               "'jray start --head' or set JrayExtension.address)", 404)
        return str(info["gcs_address"]), token or str(info["token"])
    address = address.strip().removeprefix("jray://").removeprefix("ray://").rstrip("/")
    token = token.strip()
    token = token or os.environ.get("JRAY_TOKEN", "")
    if not token and info is not None and info.get("gcs_address") == address:
        token = str(info["token"])
    if not token:
        raise ClusterError(f"no token for the cluster at {address}: set JrayExtension.token or JRAY_TOKEN", 400)
    return address, token
