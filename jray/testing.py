"""A real multi-node cluster on one machine, for tests (Ray's
``cluster_utils.Cluster``): one GCS and several raylets, each with its own
resources and its own shared-memory store, all real processes.

::

    with jray.testing.Cluster(head_node_args={"num_cpus": 1}) as cluster:
        cluster.add_node(num_cpus=2, resources={"gpu_box": 1})
        cluster.connect()
        ...

Every process it starts is stopped by ``shutdown()`` (also on ``__exit__``),
and no ``/dev/shm`` file outlives it.
"""

from __future__ import annotations

import os
import time
from typing import Any

from jray import api
from jray._private import gcs_client
from jray._private import node as _node


class Cluster:
    def __init__(self, initialize_head: bool = True, connect: bool = False,
                 head_node_args: dict[str, Any] | None = None, shutdown_at_exit: bool = True) -> None:
        self.handle: _node.ClusterHandle | None = None
        self._connected = False
        if initialize_head:
            self.add_node(**(head_node_args or {}))
            if connect:
                self.connect()

    @property
    def address(self) -> str:
        assert self.handle is not None
        return self.handle.gcs_address

    @property
    def gcs_address(self) -> str:
        return self.address

    def add_node(self, *, num_cpus: float | None = 1, num_gpus: float | None = 0,
                 resources: dict[str, float] | None = None, object_store_memory: int = 128 * 1024 * 1024,
                 wait: bool = True, **kwargs: Any) -> _node.NodeHandle:
        """Start a raylet (the head, the first time) with its own resources."""
        if self.handle is None:
            self.handle = _node.start_head(num_cpus=num_cpus, num_gpus=num_gpus, resources=resources,
                                           object_store_memory=object_store_memory, labels=kwargs.get("labels"))
            node = self.handle.head
        else:
            node = _node.add_node(self.handle, num_cpus=num_cpus, num_gpus=num_gpus, resources=resources,
                                  object_store_memory=object_store_memory, labels=kwargs.get("labels"))
        if wait:
            self.wait_for_nodes()
        return node

    def remove_node(self, node: _node.NodeHandle) -> None:
        assert self.handle is not None
        _node.stop_node(node)
        self.handle.nodes.remove(node)

    def list_all_nodes(self) -> list[_node.NodeHandle]:
        return list(self.handle.nodes) if self.handle else []

    def wait_for_nodes(self, timeout: float = 30) -> None:
        """Block until the GCS sees every node this helper started as alive."""
        assert self.handle is not None
        want = {n.node_id for n in self.handle.nodes}
        deadline = time.monotonic() + timeout
        while True:
            alive = gcs_client.alive_nodes_at(self.handle.gcs_address, self.handle.token, timeout=5)
            seen = {n.node_id.hex() for n in alive}
            if want <= seen:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"nodes {sorted(want - seen)} did not join the cluster within {timeout} s")
            time.sleep(0.05)

    def connect(self, namespace: str | None = None, **kwargs: Any) -> Any:
        """``jray.init`` a driver in this process attached to this cluster."""
        assert self.handle is not None
        os.environ["JRAY_TOKEN"] = self.handle.token
        try:
            ctx = api.init(address=self.handle.gcs_address, namespace=namespace, **kwargs)
        finally:
            os.environ.pop("JRAY_TOKEN", None)
        self._connected = True
        return ctx

    def pids(self) -> list[int]:
        import psutil

        if self.handle is None:
            return []
        out = [self.handle.gcs_pid]
        for n in self.handle.nodes:
            out.append(n.raylet_pid)
            try:
                out.extend(c.pid for c in psutil.Process(n.raylet_pid).children(recursive=True))
            except psutil.Error:
                pass
        return out

    def shutdown(self) -> None:
        if self._connected:
            api.shutdown()
            self._connected = False
        if self.handle is not None:
            _node.stop_cluster(self.handle)
            self.handle = None

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
