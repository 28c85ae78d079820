"""The GCS's placement-group table and the bundle placement decision.

Plain state and logic; the servicer (``pg_manager.py``) does the two-phase
reserve/commit with the raylets. Semantics are Ray's:

- ``PACK``: as few nodes as possible (one node if it can), spilling over
  to others when it cannot;
- ``SPREAD``: bundles on distinct nodes as far as possible, sharing nodes
  when there are not enough;
- ``STRICT_PACK``: every bundle on one node, or pending;
- ``STRICT_SPREAD``: every bundle on its own node, or pending.

A group is placed atomically: either every missing bundle gets a node or
none does. When a node dies only its bundles are placed again, next to the
bundles that survived (and still under the group's strategy).
"""

from __future__ import annotations

import asyncio
import collections
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jray._private.protocol import gcs_pb2 as gpb
from jray._private.resources import fits

STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
# Removed groups stay listed (state REMOVED) until this many newer ones were removed.
MAX_REMOVED_KEPT = 1000
STATE_NAMES = {gpb.PG_PENDING: "PENDING", gpb.PG_CREATED: "CREATED", gpb.PG_REMOVED: "REMOVED",
               gpb.PG_RESCHEDULING: "RESCHEDULING"}


def validate_bundles(bundles: Any, strategy: Any) -> list[dict[str, float]]:
    """Check a group's bundles and strategy; return the bundles as floats.

    Raises ValueError naming the problem (Ray raises ValueError too)."""
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise ValueError(f"Invalid placement group strategy {strategy!r}: it must be one of "
                         f"{', '.join(STRATEGIES)}.")
    if not isinstance(bundles, (list, tuple)):
        raise ValueError(f"The placement group bundles must be a list of dicts, got {type(bundles).__name__}.")
    if not bundles:
        raise ValueError("The placement group bundles list is empty: give at least one bundle, "
                         "e.g. [{'CPU': 1}].")
    out = []
    for i, b in enumerate(bundles):
        if not isinstance(b, Mapping):
            raise ValueError(f"Bundle {i} of the placement group must be a dict of resource name to amount, "
                             f"got {type(b).__name__}.")
        clean: dict[str, float] = {}
        for k, v in b.items():
            if not isinstance(k, str) or not k:
                raise ValueError(f"Bundle {i} has an invalid resource name {k!r}: names are non-empty strings.")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"Bundle {i} asks for {v!r} of {k!r}: amounts must be non-negative numbers.")
            if v > 0:
                clean[k] = float(v)
        if not clean:
            raise ValueError(f"Bundle {i} {dict(b)!r} reserves nothing: every bundle needs at least one "
                             "resource with an amount above zero.")
        out.append(clean)
    return out


def _take(have: dict[str, float], demand: Mapping[str, float]) -> None:
    for k, v in demand.items():
        have[k] = have.get(k, 0.0) - v


def _room(have: Mapping[str, float]) -> tuple[float, float]:
    return (have.get("CPU", 0.0), sum(have.values()))


def place(bundles: list[dict[str, float]], strategy: str, available: Mapping[bytes, Mapping[str, float]],
          fixed: Mapping[int, bytes] | None = None) -> dict[int, bytes] | None:
    """Choose a node for every bundle not in ``fixed`` (index -> node id).

    ``available`` maps each live node to what it has free now; ``fixed``
    are bundles already placed (their resources are already taken out of
    ``available``). Returns index -> node for the missing bundles, or None
    when the strategy cannot be honoured now.
    """
    fixed = dict(fixed or {})
    avail = {nid: dict(have) for nid, have in available.items()}
    missing = [i for i in range(len(bundles)) if i not in fixed]
    if not missing:
        return {}
    # Larger bundles first: fewer dead ends for the greedy choices below.
    missing.sort(key=lambda i: (-sum(bundles[i].values()), i))
    out: dict[int, bytes] = {}
    if strategy == "STRICT_PACK":
        homes = set(fixed.values())
        candidates = [n for n in avail if n in homes] if homes else sorted(avail, key=lambda n: _room(avail[n]),
                                                                           reverse=True)
        total: dict[str, float] = {}
        for i in missing:
            for k, v in bundles[i].items():
                total[k] = total.get(k, 0.0) + v
        for nid in candidates:
            if fits(total, avail[nid]):
                return {i: nid for i in missing}
        return None
    if strategy == "PACK":
        used = list(dict.fromkeys(fixed.values()))
        # One node for everything if some node can take it all.
        if not used:
            one = place(bundles, "STRICT_PACK", avail)
            if one is not None:
                return one
        for i in missing:
            order = [n for n in used if n in avail] + sorted(
                (n for n in avail if n not in used), key=lambda n: _room(avail[n]), reverse=True)
            found = next((n for n in order if fits(bundles[i], avail[n])), None)
            if found is None:
                return None
            _take(avail[found], bundles[i])
            out[i] = found
            if found not in used:
                used.append(found)
        return out
    # SPREAD / STRICT_SPREAD: the node holding the fewest bundles of this group.
    count: dict[bytes, int] = {}
    for nid in fixed.values():
        count[nid] = count.get(nid, 0) + 1
    for i in missing:
        fitting = [n for n in avail if fits(bundles[i], avail[n])]
        if strategy == "STRICT_SPREAD":
            fitting = [n for n in fitting if count.get(n, 0) == 0]
        if not fitting:
            return None
        nid = min(fitting, key=lambda n: (count.get(n, 0), tuple(-x for x in _room(avail[n])), n))
        _take(avail[nid], bundles[i])
        count[nid] = count.get(nid, 0) + 1
        out[i] = nid
    return out


def feasible_ever(bundles: list[dict[str, float]], strategy: str, totals: Mapping[bytes, Mapping[str, float]]) -> bool:
    """Whether the group could be placed on these nodes were they all empty."""
    return place(bundles, strategy, totals) is not None


@dataclass(eq=False)
class PlacementGroupRecord:
    info: gpb.PlacementGroupInfo
    warned: bool = False
    placing: bool = False            # a two-phase placement is in flight
    waiters: list[asyncio.Future] = field(default_factory=list)

    @property
    def pg_id(self) -> bytes:
        return self.info.placement_group_id

    def demands(self) -> list[dict[str, float]]:
        return [dict(b.resources) for b in self.info.bundles]

    def fixed(self) -> dict[int, bytes]:
        return {b.index: b.node_id for b in self.info.bundles if b.node_id}

    def nodes_of(self, index: int) -> list[bytes]:
        """Nodes holding bundle ``index`` (-1: any bundle), placed ones only."""
        return list(dict.fromkeys(b.node_id for b in self.info.bundles
                                  if b.node_id and (index < 0 or b.index == index)))


class PlacementGroupTable:
    def __init__(self) -> None:
        self.groups: dict[bytes, PlacementGroupRecord] = {}
        self.names: dict[tuple[str, str], bytes] = {}
        self._removed: collections.deque[bytes] = collections.deque()
        # Written through to the GCS's store: a group changed / was dropped.
        self.on_change: Callable[[PlacementGroupRecord], None] | None = None
        self.on_drop: Callable[[bytes], None] | None = None

    def restore(self, info: gpb.PlacementGroupInfo) -> PlacementGroupRecord:
        """Put back a group read from the store."""
        rec = PlacementGroupRecord(info)
        self.groups[info.placement_group_id] = rec
        if info.state == gpb.PG_REMOVED:
            self._removed.append(info.placement_group_id)
        elif info.name:
            self.names[(info.namespace, info.name)] = info.placement_group_id
        return rec

    def add(self, info: gpb.PlacementGroupInfo) -> PlacementGroupRecord:
        rec = PlacementGroupRecord(info)
        info.version = 1
        self.groups[info.placement_group_id] = rec
        if info.name:
            self.names[(info.namespace, info.name)] = info.placement_group_id
        if self.on_change is not None:
            self.on_change(rec)
        return rec

    def lookup_name(self, namespace: str, name: str) -> PlacementGroupRecord | None:
        pid = self.names.get((namespace, name))
        rec = self.groups.get(pid) if pid is not None else None
        if rec is None or rec.info.state == gpb.PG_REMOVED:
            return None
        return rec

    def unplaced(self) -> list[PlacementGroupRecord]:
        """Groups waiting for bundles to be placed, oldest first."""
        return [r for r in self.groups.values() if r.info.state in (gpb.PG_PENDING, gpb.PG_RESCHEDULING)]

    def on_node_dead(self, node_id: bytes) -> list[PlacementGroupRecord]:
        """Forget the bundles the dead node held; return the groups hit."""
        hit = []
        for rec in self.groups.values():
            if rec.info.state == gpb.PG_REMOVED:
                continue
            lost = [b for b in rec.info.bundles if b.node_id == node_id]
            if not lost:
                continue
            for b in lost:
                b.node_id = b""
            self.set_state(rec, gpb.PG_RESCHEDULING if rec.info.state == gpb.PG_CREATED else rec.info.state)
            hit.append(rec)
        return hit

    def set_state(self, rec: PlacementGroupRecord, state: int) -> None:
        rec.info.state = state  # type: ignore[assignment]
        rec.info.version += 1
        if state == gpb.PG_REMOVED:
            key = (rec.info.namespace, rec.info.name)
            if rec.info.name and self.names.get(key) == rec.pg_id:
                del self.names[key]
            self._removed.append(rec.pg_id)
            while len(self._removed) > MAX_REMOVED_KEPT:
                dropped = self._removed.popleft()
                self.groups.pop(dropped, None)
                if self.on_drop is not None:
                    self.on_drop(dropped)
        if self.on_change is not None and rec.pg_id in self.groups:
            self.on_change(rec)
        for fut in rec.waiters:
            if not fut.done():
                fut.set_result(None)
        rec.waiters.clear()

    async def wait_settled(self, rec: PlacementGroupRecord, timeout: float) -> None:
        """Wait (at most ``timeout``) until the group is CREATED or REMOVED."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while rec.info.state not in (gpb.PG_CREATED, gpb.PG_REMOVED):
            left = deadline - loop.time()
            if left <= 0:
                return
            fut = loop.create_future()
            rec.waiters.append(fut)
            try:
                await asyncio.wait_for(fut, left)
            except asyncio.TimeoutError:
                return
