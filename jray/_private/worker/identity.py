"""Who this CoreWorker is on the wire: one small object its parts share.

``port`` and ``node_id`` are known only once the CoreWorker's server is up
and its raylet answered; parts read them through this object when they need
them, never copy them at construction.
"""

from __future__ import annotations

from jray._private.protocol import common_pb2 as cpb


class Identity:
    __slots__ = ("worker_id", "ip", "port", "direct_port", "node_id", "_address")

    def __init__(self, worker_id: bytes, ip: str = "127.0.0.1", node_id: bytes = b"") -> None:
        self.worker_id = worker_id
        self.ip = ip
        self.port = 0
        self.direct_port = 0
        self.node_id = node_id
        self._address: cpb.Address | None = None

    @property
    def address(self) -> cpb.Address:
        """This process's address message (owners, borrowers, callers)."""
        a = self._address
        if a is None or a.port != self.port or a.node_id != self.node_id or a.direct_port != self.direct_port:
            a = self._address = cpb.Address(ip=self.ip, port=self.port, worker_id=self.worker_id,
                                            node_id=self.node_id, direct_port=self.direct_port)
        return a

    @property
    def owner_key(self) -> tuple[str, bytes]:
        """How ObjectRefs name this process as their owner."""
        return (f"{self.ip}:{self.port}", self.worker_id)
