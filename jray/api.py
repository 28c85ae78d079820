"""The public Core API (Ray's names and semantics): init, remote, get, put,
wait, cancel, kill, get_actor, cluster introspection."""

from __future__ import annotations

import atexit
import inspect
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from jray import exceptions
from jray._private import config, debug_wake, driver, gcs_client, hooks, submit, task_context, tls
from jray._private import node as _node
from jray._private.options import _runtime_env
from jray._private.version import __version__
from jray.actor import ActorClass, ActorHandle
from jray.object_ref import ObjectRef, ObjectRefGenerator
from jray.remote_function import RemoteFunction
from jray.runtime_context import RuntimeContext

T = TypeVar("T")

logger = logging.getLogger(__name__)
_lock = threading.RLock()
_cluster: _node.ClusterHandle | None = None
_context: Any = None

_INIT_KEYS = {"include_dashboard", "dashboard_host", "dashboard_port", "configure_logging", "logging_level",
              "logging_format", "log_to_driver", "_temp_dir", "_system_config", "job_config", "runtime_env", "_token",
              "storage", "local_mode", "_node_ip_address", "labels", "_metrics_export_port", "_plasma_directory",
              "enable_resource_isolation", "_enable_object_reconstruction", "_memory"}


class JrayContext:
    """What ``init`` returns: the cluster's addresses, with a notebook repr.
    Also a context manager that shuts jray down on exit."""

    def __init__(self, address_info: dict[str, Any]) -> None:
        self.address_info = address_info
        self.dashboard_url = address_info.get("dashboard_url")
        self.python_version = ".".join(map(str, sys.version_info[:3]))
        self.jray_version = __version__

    def __getitem__(self, key: str) -> Any:
        return self.address_info[key]

    def __enter__(self) -> JrayContext:
        return self

    def __exit__(self, *exc: Any) -> None:
        shutdown()

    def disconnect(self) -> None:
        shutdown()

    def _summary(self) -> dict[str, Any]:
        res: dict[str, float] = {}
        nodes_alive: list[dict[str, Any]] = []
        if driver.is_connected():  # a repr never starts a cluster (nodes() would, on first use)
            try:
                res = cluster_resources()
                nodes_alive = [n for n in nodes() if n["Alive"]]
            except Exception:  # noqa: BLE001
                res, nodes_alive = {}, []
        return {"address": self.address_info.get("gcs_address"), "nodes": len(nodes_alive),
                "CPU": res.get("CPU", 0), "GPU": res.get("GPU", 0),
                "object_store_memory": res.get("object_store_memory", 0), "python": self.python_version,
                "jray": self.jray_version}

    def __repr__(self) -> str:
        s = self._summary()
        return (f"JrayContext(address={s['address']!r}, nodes={s['nodes']}, CPU={s['CPU']:g}, GPU={s['GPU']:g}, "
                f"object_store={s['object_store_memory'] / 2**30:.1f} GiB)")

    def _repr_html_(self) -> str:
        import html

        s = self._summary()
        rows = "".join(
            f"<tr><td style='text-align:left'><b>{html.escape(k)}</b></td><td style='text-align:left'>{html.escape(str(v))}</td></tr>"
            for k, v in [("Address", s["address"]), ("Nodes", s["nodes"]), ("CPUs", f"{s['CPU']:g}"),
                         ("GPUs", f"{s['GPU']:g}"),
                         ("Object store", f"{s['object_store_memory'] / 2**30:.2f} GiB"),
                         ("Python", s["python"]), ("jray", s["jray"])])
        if self.dashboard_url:
            url = html.escape(str(self.dashboard_url))
            rows += (f"<tr><td style='text-align:left'><b>Dashboard</b></td><td style='text-align:left'>"
                     f"<a href='{url}' target='_blank'>{url}</a></td></tr>")
        return f"<div class='jray-context'><h3 style='margin:0'>jray cluster</h3><table>{rows}</table></div>"


def is_initialized() -> bool:
    return driver.is_connected()


def _resolve_address(address: str | None, token: str | None = None) -> tuple[str, str] | None:
    """(gcs address, token) of a running cluster to attach to, or None to
    start one. The address: the argument (``HOST:PORT``, ``jray://HOST:PORT``,
    ``"auto"``), else ``JRAY_ADDRESS``; the token: ``_token``, else
    ``JRAY_TOKEN``, else this machine's address file (a head here)."""
    if address is None:
        _adopt_cluster_file()
        env = os.environ.get("JRAY_ADDRESS") or os.environ.get("RAY_ADDRESS")
        if not env:
            return None
        address = env
    if address in ("local",):
        return None
    info = _node.read_address_file()
    if address == "auto":
        if info is None:
            raise ConnectionError("Could not find a running jray cluster (address='auto'): start one with "
                                  "'jray start --head' or set JRAY_ADDRESS.")
        tls.adopt(info)
        return info["gcs_address"], token or info["token"]
    address = address.strip().removeprefix("jray://").removeprefix("ray://").rstrip("/")
    if ":" not in address:
        raise ValueError(f"A cluster address is HOST:PORT (or jray://HOST:PORT), got {address!r}.")
    token = token or os.environ.get("JRAY_TOKEN") or _node.STARTED_HERE.get(address)
    if info is not None and info.get("gcs_address") == address:
        tls.adopt(info)
        if token is None:
            token = info["token"]
    if token is None:
        raise exceptions.AuthenticationError(
            f"No token for the cluster at {address}: set JRAY_TOKEN (`jray start --head` prints it) or pass "
            "jray.init(address, _token=...).")
    return address, token


def _adopt_cluster_file() -> None:
    """``JRAY_CLUSTER_FILE`` (set by a Jupyter server for its kernels and
    terminals) names a file its manager rewrites as its cluster starts and
    stops: ``{"env": {"JRAY_ADDRESS": ..., "JRAY_TOKEN": ...}, "stopped": ADDRESS}``.
    A process that began with an address in its environment takes the
    current one from there (a kernel outlives the cluster it started with).
    A cluster stopped and none started since: a ConnectionError saying so,
    rather than a surprise cluster of this process's own."""
    path = os.environ.get("JRAY_CLUSTER_FILE")
    if not path:
        return
    try:
        with open(path) as f:
            info = json.load(f)
        env = dict(info.get("env") or {})
    except (OSError, ValueError, AttributeError, TypeError):
        return
    for k in ("JRAY_ADDRESS", "JRAY_TOKEN"):
        v = env.get(k)
        if v:
            os.environ[k] = str(v)
        else:
            os.environ.pop(k, None)
    if not env.get("JRAY_ADDRESS") and info.get("stopped"):
        raise ConnectionError(
            f"The Jupyter server's jray cluster (at {info['stopped']}) was stopped. Start it again (Start in "
            "the jray sidebar) and call jray.init(), or jray.init('local') for a cluster of this process's own.")


def init(address: str | None = None, *, num_cpus: float | None = None, num_gpus: float | None = None,
         resources: dict[str, float] | None = None, object_store_memory: int | None = None,
         namespace: str | None = None, ignore_reinit_error: bool = False, log_to_driver: bool = True,
         runtime_env: dict[str, Any] | None = None, **kwargs: Any) -> JrayContext:
    """Start a local cluster (head: GCS + raylet + workers) or attach to one."""
    global _cluster, _context
    unknown = set(kwargs) - _INIT_KEYS
    if unknown:
        raise TypeError(f"Unknown keyword argument(s) to init: {sorted(unknown)}")
    with _lock:
        if driver.is_connected():
            if ignore_reinit_error:
                return _context  # type: ignore[no-any-return]
            raise RuntimeError("Maybe you called jray.init twice by accident? This error can be suppressed by "
                               "passing in 'ignore_reinit_error=True' or by calling 'jray.shutdown()' prior to "
                               "'jray.init()'.")
        job_config = kwargs.get("job_config")
        if job_config is not None:
            from jray.job_config import JobConfig

            if not isinstance(job_config, JobConfig):
                raise TypeError(f"job_config must be a jray.job_config.JobConfig, got {type(job_config).__name__}")
            if runtime_env is None and job_config.runtime_env:  # init's runtime_env wins, as in Ray
                runtime_env = job_config.runtime_env
            if namespace is None and job_config.ray_namespace:
                namespace = job_config.ray_namespace
        submission_id = None
        job_env = os.environ.get("JRAY_JOB_CONFIG_JSON")
        if job_env:  # this driver is a submitted job's entrypoint: its runtime_env is the job's default
            job_conf = json.loads(job_env)
            submission_id = job_conf.get("submission_id")
            if runtime_env is None and job_conf.get("runtime_env"):
                runtime_env = job_conf["runtime_env"]
        if runtime_env is not None:
            _runtime_env("runtime_env", runtime_env)
        if _cluster is not None:  # the cluster init started was lost (its driver disconnected): clean up
            _node.stop_cluster(_cluster)
            _cluster = None
        target = _resolve_address(address, kwargs.get("_token"))
        if target is not None:
            if num_cpus is not None or num_gpus is not None or resources:
                raise ValueError("When connecting to an existing cluster, num_cpus, num_gpus and resources must "
                                 "not be provided.")
            gcs_address, token = target
            raylet_address, node_id, client_ip = _attach(gcs_address, token)
        else:
            _cluster = _node.start_head(num_cpus=num_cpus, num_gpus=num_gpus, resources=resources,
                                        object_store_memory=object_store_memory, memory=kwargs.get("_memory"),
                                        labels=kwargs.get("labels"),
                                        spill_dir=_node.spill_dir_of(kwargs.get("_system_config")))
            gcs_address, token = _cluster.gcs_address, _cluster.token
            raylet_address, node_id = _cluster.head.raylet_address, bytes.fromhex(_cluster.head.node_id)
            # `jray status`/`jray memory` in a terminal find it, as Ray's CLI
            # does (a live `jray start` cluster's file is left alone; stop_cluster
            # removes ours).
            _node.claim_address_file(_cluster)
            client_ip = None
        try:
            driver.connect(gcs_address=gcs_address, raylet_address=raylet_address, token=token, node_id=node_id,
                           namespace=namespace if namespace is not None else _anon_namespace(),
                           log_to_driver=log_to_driver, runtime_env=runtime_env, client_ip=client_ip,
                           submission_id=submission_id if target is not None else None)
        except BaseException:
            if _cluster is not None:
                _node.stop_cluster(_cluster)
                _cluster = None
            raise
        if _cluster is not None and num_cpus != 0:
            # The node prestarts a worker per CPU while init connects; wait
            # for the first so the first task finds it warm.
            driver.wait_worker_ready(config.INIT_WORKER_WAIT_SECONDS)
        if job_config is not None and job_config.default_actor_lifetime == "detached":
            task_context.set_default_actor_lifetime("detached")
        _context = JrayContext({"gcs_address": gcs_address, "address": gcs_address, "node_id": node_id.hex(),
                                "session_dir": _cluster.session_dir if _cluster else "",
                                "raylet_address": raylet_address})
        os.environ.setdefault("JRAY_TOKEN_OF_" + gcs_address.replace(":", "_").replace(".", "_"), "")
        # Layers above the core hook in here: jray.jupyter attaches the running
        # IPython shell (output to the submitting cell, Ctrl-C cancels).
        hooks.run_connect_hooks()
        return _context


def _anon_namespace() -> str:
    """``JRAY_NAMESPACE`` when set (e.g. for every kernel of a Jupyter server,
    so a restarted notebook finds its detached named actors), else a fresh
    anonymous namespace per job, as Ray does."""
    env = os.environ.get("JRAY_NAMESPACE")
    if env:
        return env
    import uuid

    return f"anonymous-{uuid.uuid4().hex[:12]}"


def _attach(gcs_address: str, token: str) -> tuple[str, bytes, str | None]:
    """(raylet address, node id, client ip) of the node this driver uses: a
    node on this machine (the driver maps its shared-memory store), the
    head's first; on a machine with no node, the driver is a client (client
    ip: the address the cluster reaches it at) and its home node is the head."""
    gcs_client.check_cluster(gcs_address, token)
    try:
        alive = gcs_client.alive_nodes_at(gcs_address, token)
    except Exception as e:
        raise ConnectionError(f"Could not reach the jray cluster at {gcs_address}: {e}") from None
    if not alive:
        raise ConnectionError(f"The jray cluster at {gcs_address} has no live node.")
    host = gcs_address.rsplit(":", 1)[0]
    local = _node.local_ip_addresses()

    def here(ip: str) -> bool:
        return ip in local or ip.startswith("127.")

    if config.CLIENT_MODE:  # a client even on a node's machine (benchmarks, tests): the head is home
        alive.sort(key=lambda n: (not n.is_head, n.ip != host))
        return f"{alive[0].ip}:{alive[0].raylet_port}", alive[0].node_id, _node.route_ip_to(alive[0].ip)
    alive.sort(key=lambda n: (not here(n.ip), not n.is_head, n.ip != host))
    n = alive[0]
    client_ip = None if here(n.ip) else _node.route_ip_to(n.ip)
    return f"{n.ip}:{n.raylet_port}", n.node_id, client_ip


def shutdown(_exiting_interpreter: bool = False) -> None:
    """Disconnect the driver and stop every process ``init`` started."""
    global _cluster, _context
    with _lock:
        if _exiting_interpreter:
            # As Ray: tasks submitted just before the program ends still run
            # and their output reaches it (bounded: a long task does not hold
            # the exit up).
            driver.drain(config.EXIT_DRAIN_SECONDS)
        driver.disconnect()
        if _cluster is not None:
            _node.stop_cluster(_cluster)
            _cluster = None
        _context = None


atexit.register(shutdown, True)
# Ray starts a local cluster on the first remote() call without init().
hooks.set_auto_init(init)


def remote(*args: Any, **kwargs: Any) -> Any:
    """``@remote`` / ``@remote(num_cpus=...)`` on a function or class."""
    def make(obj: Any, opts: dict[str, Any]) -> Any:
        if inspect.isclass(obj):
            return ActorClass(obj, opts)
        if callable(obj):
            return RemoteFunction(obj, opts)
        raise TypeError("The @jray.remote decorator must be applied to a function or a class.")

    if len(args) == 1 and not kwargs and callable(args[0]):
        return make(args[0], {})
    if args:
        raise TypeError("The @jray.remote decorator takes either one function/class or only keyword options, "
                        "e.g. @jray.remote(num_cpus=2).")
    return lambda obj: make(obj, kwargs)


def _check_refs(object_refs: Any, what: str) -> list[ObjectRef]:
    if isinstance(object_refs, ObjectRef):
        return [object_refs]
    if isinstance(object_refs, ObjectRefGenerator):
        raise TypeError(f"{what} got an ObjectRefGenerator: iterate over it to get ObjectRefs.")
    if not isinstance(object_refs, (list, tuple)):
        raise TypeError(f"{what} expects an ObjectRef or a list of ObjectRefs, got {type(object_refs).__name__}.")
    for r in object_refs:
        if not isinstance(r, ObjectRef):
            raise TypeError(f"{what} expects an ObjectRef or a list of ObjectRefs, got a list containing "
                            f"{type(r).__name__}.")
    return list(object_refs)


def get(object_refs: Any, *, timeout: float | None = None) -> Any:
    """The values of one ObjectRef or a list of them; blocks until ready."""
    driver.require()
    if isinstance(object_refs, ObjectRefGenerator):
        return get(list(object_refs), timeout=timeout)
    refs = _check_refs(object_refs, "jray.get()")
    if timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be non-negative or None")
    try:
        values = _waiting(lambda left: driver.get(refs, left), timeout)
    except KeyboardInterrupt:
        # Ctrl-C: what was waited on was cancelled (the notebook layer says
        # so); a fresh KeyboardInterrupt, without the ~50 lines of jray's wait.
        raise KeyboardInterrupt() from None
    return values[0] if isinstance(object_refs, ObjectRef) else values


def _waiting(call: Callable[[float | None], T], timeout: float | None) -> T:
    """``call(time left)``; a task that paused at ``breakpoint()`` while it
    waited (``DebugWake``, main thread only) gets its debugger here, in the
    cell or script that waits, then the wait goes on for the time left."""
    deadline = None if timeout is None else time.monotonic() + timeout
    left = timeout
    while True:
        try:
            return call(left)
        except debug_wake.DebugWake:
            from jray._private import debugger

            debugger.open_announced()
        if deadline is not None:
            left = max(0.0, deadline - time.monotonic())


def put(value: Any, *, _owner: Any = None) -> ObjectRef:
    """Store ``value`` in the object store and return its ObjectRef."""
    return driver.put(value)


def wait(object_refs: Sequence[ObjectRef], *, num_returns: int = 1, timeout: float | None = None,
         fetch_local: bool = True) -> tuple[list[ObjectRef], list[ObjectRef]]:
    """Split refs into (ready, not ready) once ``num_returns`` are ready or on timeout.

    Streaming generators (``ObjectRefGenerator``) may be in the list, as in
    Ray: one is ready when its next item is (or it has ended), so ``next()``
    on it does not block."""
    driver.require()
    if isinstance(object_refs, ObjectRef):
        raise TypeError("wait() expected a list of ObjectRef, got a single ObjectRef")
    if isinstance(object_refs, (list, tuple)) and any(isinstance(r, ObjectRefGenerator) for r in object_refs):
        return _wait_with_generators(list(object_refs), num_returns, timeout, fetch_local)
    refs = _check_refs(object_refs, "jray.wait()")
    if len({r._id for r in refs}) != len(refs):
        raise ValueError("Wait requires a list of unique object refs.")
    if isinstance(num_returns, bool) or not isinstance(num_returns, int) or num_returns < 0:
        raise ValueError(f"num_returns must be a non-negative int, got {num_returns!r}")
    if num_returns > len(refs):
        raise ValueError(f"num_returns ({num_returns}) cannot be greater than the number of refs ({len(refs)}).")
    if timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be non-negative or None")
    try:
        return _waiting(lambda left: driver.wait(refs, num_returns, left, fetch_local), timeout)
    except KeyboardInterrupt:
        raise KeyboardInterrupt() from None  # as in get: without the frames of jray's wait


def _wait_with_generators(items: list[Any], num_returns: int, timeout: float | None,
                          fetch_local: bool) -> tuple[list[Any], list[Any]]:
    """``wait`` over ObjectRefs and streaming generators together (polled:
    a generator's readiness is its next item's future)."""
    refs = [x for x in items if not isinstance(x, ObjectRefGenerator)]
    _check_refs(refs, "jray.wait()")
    if len({id(x) for x in items}) != len(items) or len({r._id for r in refs}) != len(refs):
        raise ValueError("Wait requires a list of unique object refs.")
    if isinstance(num_returns, bool) or not isinstance(num_returns, int) or num_returns < 0:
        raise ValueError(f"num_returns must be a non-negative int, got {num_returns!r}")
    if num_returns > len(items):
        raise ValueError(f"num_returns ({num_returns}) cannot be greater than the number of refs ({len(items)}).")
    if timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be non-negative or None")
    futures = {id(g): g._next_ready_future() for g in items if isinstance(g, ObjectRefGenerator)}
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        ready_refs = set(r._id for r in driver.wait(refs, len(refs), 0, False)[0]) if refs else set()
        ready = [x for x in items if (futures[id(x)].done() if isinstance(x, ObjectRefGenerator)
                                      else x._id in ready_refs)]
        if len(ready) >= num_returns or (deadline is not None and time.monotonic() >= deadline):
            break
        time.sleep(0.005)
    ready = ready[:num_returns]
    if fetch_local:
        local = [x for x in ready if not isinstance(x, ObjectRefGenerator)]
        if local:
            driver.wait(local, len(local), 0, True)
    chosen = {id(x) for x in ready}
    return ready, [x for x in items if id(x) not in chosen]


def cancel(ref: ObjectRef, *, force: bool = False, recursive: bool = True) -> None:
    """Cancel the task that produces ``ref``: get() then raises TaskCancelledError.

    A task not started yet never runs; a running one gets KeyboardInterrupt
    (``force=True``: its worker is killed). An actor call not started yet
    never runs; a running call of an async actor is cancelled like an
    asyncio task; a running call of a sync or threaded actor is not
    interrupted but sees ``get_runtime_context().is_canceled()`` turn True
    (Ray's semantics). ``force=True`` is refused for actor calls.
    """
    driver.require()
    if not isinstance(ref, ObjectRef):
        raise TypeError(f"cancel() expects an ObjectRef, got {type(ref).__name__}")
    submit.cancel(ref, force=force, recursive=recursive)


def kill(actor: ActorHandle, *, no_restart: bool = True) -> None:
    """Kill an actor at once (pending calls fail with ActorDiedError)."""
    driver.require()
    if not isinstance(actor, ActorHandle):
        raise ValueError(f"jray.kill() only supports actors. Got: {type(actor).__name__}.")
    submit.kill_actor(actor._actor_id, no_restart=no_restart)


def get_actor(name: str, namespace: str | None = None) -> ActorHandle:
    """The handle of the live actor named ``name`` in ``namespace``."""
    driver.require()
    if not isinstance(name, str) or not name:
        raise ValueError("Please supply a non-empty actor name, e.g. get_actor('my_actor').")
    ns, fields = submit.named_actor(name, namespace)
    if fields is None:
        raise ValueError(f"Failed to look up actor with name '{name}' in namespace '{ns}'. This could be because "
                         "1. You are trying to look up a named actor you didn't create. 2. The named actor died. "
                         "3. You did not use a namespace matching the namespace of the actor.")
    return ActorHandle._from_fields(fields)


def _node_infos() -> list[Any]:
    """The GCS's ``NodeInfo`` of every node (read by attribute)."""
    return driver.node_infos()


def nodes() -> list[dict[str, Any]]:
    """One dict per node (Ray's keys: NodeID, Alive, NodeManagerAddress, Resources, ...)."""
    driver.require()  # starts or attaches to a cluster on first use, as Ray
    out = []
    for n in _node_infos():
        res = dict(n.resources_total)
        res["object_store_memory"] = float(n.object_store_memory)
        out.append({"NodeID": n.node_id.hex(), "Alive": n.alive, "NodeManagerAddress": n.ip,
                    "NodeManagerPort": n.raylet_port, "NodeName": n.ip, "Resources": res,
                    "alive": n.alive, "IsHead": n.is_head, "ObjectStoreSocketName": n.store_path,
                    "Labels": dict(n.labels), "MetricsExportPort": n.metrics_export_port})
    return out


def cluster_resources() -> dict[str, float]:
    """Total resources of the live nodes."""
    driver.require()  # starts or attaches to a cluster on first use, as Ray
    total: dict[str, float] = {}
    for n in _node_infos():
        if not n.alive:
            continue
        for k, v in n.resources_total.items():
            total[k] = total.get(k, 0.0) + v
        total["object_store_memory"] = total.get("object_store_memory", 0.0) + n.object_store_memory
    return total


def available_resources() -> dict[str, float]:
    """Resources not held by running tasks and actors (as of the last heartbeat)."""
    driver.require()  # starts or attaches to a cluster on first use, as Ray
    total: dict[str, float] = {}
    for n in _node_infos():
        if not n.alive:
            continue
        for k, v in n.resources_available.items():
            if v > 0:
                total[k] = total.get(k, 0.0) + v
        free = n.object_store_memory - n.store_used
        total["object_store_memory"] = total.get("object_store_memory", 0.0) + free
    return {k: v for k, v in total.items() if v > 0}


def get_gpu_ids() -> list[int]:
    """GPU ids assigned to the current task or actor."""
    return driver.gpu_ids()


def get_runtime_context() -> Any:
    driver.require()
    return RuntimeContext()


__all__ = ["init", "shutdown", "is_initialized", "remote", "get", "put", "wait", "cancel", "kill", "get_actor",
           "nodes", "cluster_resources", "available_resources", "get_gpu_ids", "get_runtime_context",
           "JrayContext", "exceptions"]
