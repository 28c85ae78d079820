"""``TransportError``: a call that failed in transit, jray's own type.

Its own module because both ends of the push seam raise it: the transports
(``transport.py``) and the wire they may use (``direct.py``).
"""

from __future__ import annotations

# Codes, as gRPC names them (the grpc-backed clients translate theirs).
UNAVAILABLE = "UNAVAILABLE"
INTERNAL = "INTERNAL"
DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
CANCELLED = "CANCELLED"
UNKNOWN = "UNKNOWN"

class TransportError(Exception):
    """A push, batch or cancel that failed in transit (not in the task)."""

    def __init__(self, code: str, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details

    @property
    def unavailable(self) -> bool:
        """The peer is gone (died, refused, reset): its work did not finish."""
        return self.code in (UNAVAILABLE, CANCELLED, UNKNOWN)

    def __str__(self) -> str:
        return f"{self.code}: {self.details}"
