"""Waiting for state that arrives in batches (task events, node stats),
with a deadline: the one helper the state, views and node-stats tests share."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

DEADLINE = 30.0


def poll(fn: Callable[[], Any], ok: Callable[[Any], bool], what: str, timeout: float = DEADLINE) -> Any:
    """Call ``fn`` until ``ok(value)``; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still {value!r} after {timeout}s")
        time.sleep(0.2)


def settle(cond: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Whether ``cond()`` holds within ``timeout`` s, collecting garbage between
    tries (dropped refs are released when their ObjectRef objects go)."""
    import gc

    deadline = time.time() + timeout
    while time.time() < deadline:
        gc.collect()
        if cond():
            return True
        time.sleep(0.2)
    return cond()
