"""Which node types to launch, and how many, for the cluster's pending demand
(Ray's ``resource_demand_scheduler``): a pure function, no processes, no I/O.

:func:`get_nodes_to_launch` takes the node types of the config, the nodes
there are (running ones with what is *available* on them now, launching ones
with their type's whole resources) and the demand, and answers a
:class:`LaunchPlan`. In order, as Ray does:

1. ``min_workers`` of each type;
2. ``request_resources`` bundles: they must fit in the cluster's *total*
   capacity (a standing floor, not extra work); what does not fit is
   launched for, not held back by ``upscaling_speed``;
3. placement groups: STRICT_SPREAD bundles each on a node of its own
   (existing nodes first, at most one bundle each), STRICT_PACK bundles as one
   bundle (their sum), PACK and SPREAD bundles as separate demands;
4. tasks' and actors' shapes (infeasible ones included): bin-packed first-fit
   decreasing into what is available; the rest picks node types one node at
   a time, the type that fits most of it best (Ray's utilization scorer:
   no GPU node for work that needs no GPU when another fits, then the most
   resource kinds in use, then the highest least and mean of each
   resource's amount times its use cubed).

Every launch respects the type's ``max_workers`` and the config's
``max_workers`` (worker nodes in all, the head not counted); demand-driven
launches are further held to ``upscaling_speed`` (at most
``max(5, upscaling_speed * nodes of the type)`` launching at once). Shapes no
node type could ever hold are returned as ``infeasible``; shapes left only
because of the limits as ``unfulfilled``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from jray.autoscaler._private.config import NodeType

Resources = dict[str, float]
EPS = 1e-9
# At most this many shapes are bin-packed in one pass (Ray's
# AUTOSCALER_MAX_RESOURCE_DEMAND_VECTOR_SIZE).
MAX_DEMANDS = 1000
# Nodes that may be launching at once per type, at least (Ray's UPSCALING_INITIAL_NUM_NODES).
UPSCALING_INITIAL_NUM_NODES = 5


@dataclass
class Node:
    """A node the demand may be packed into."""

    node_type: str | None          # None: a node the autoscaler does not manage (the head, a manual one)
    total: Resources
    available: Resources
    worker: bool = True            # counts against max_workers


@dataclass
class PlacementGroupDemand:
    strategy: str                  # PACK, SPREAD, STRICT_PACK, STRICT_SPREAD
    bundles: list[Resources]


@dataclass
class LaunchPlan:
    to_launch: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, list[str]] = field(default_factory=dict)   # node type -> why, in words
    infeasible: list[Resources] = field(default_factory=list)     # no node type could ever fit these
    unfulfilled: list[Resources] = field(default_factory=list)    # left by max_workers / upscaling_speed

    def add(self, node_type: str, n: int, why: str) -> None:
        if n <= 0:
            return
        self.to_launch[node_type] = self.to_launch.get(node_type, 0) + n
        reasons = self.reasons.setdefault(node_type, [])
        if why not in reasons:
            reasons.append(why)


def fits(node: Mapping[str, float], demand: Mapping[str, float]) -> bool:
    return all(v <= EPS or node.get(k, 0.0) + EPS >= v for k, v in demand.items())


def _subtract(node: Resources, demand: Mapping[str, float]) -> None:
    for k, v in demand.items():
        if v > 0:
            node[k] = node.get(k, 0.0) - v


def _order(demands: Sequence[Mapping[str, float]]) -> list[Resources]:
    """Largest first (first-fit decreasing): GPU, then CPU, then the rest."""
    return sorted((dict(d) for d in demands),
                  key=lambda d: (-d.get("GPU", 0.0), -d.get("CPU", 0.0), -sum(d.values()), sorted(d.items())))


def bin_pack_residual(nodes: list[Resources], demands: Sequence[Mapping[str, float]], *,
                      strict_spread: bool = False) -> list[Resources]:
    """Pack ``demands`` into ``nodes`` (first fit decreasing; the nodes'
    amounts are taken in place); returns the demands that did not fit. With
    ``strict_spread`` a node takes at most one of them."""
    left: list[Resources] = []
    used: set[int] = set()
    for d in _order(demands):
        for i, node in enumerate(nodes):
            if strict_spread and i in used:
                continue
            if fits(node, d):
                _subtract(node, d)
                used.add(i)
                break
        else:
            left.append(d)
    return left


def utilization_score(node: Mapping[str, float], demands: Sequence[Mapping[str, float]],
                      strict_spread: bool = False) -> tuple[bool, int, float, float] | None:
    """How well an empty node of resources ``node`` would be used by
    ``demands`` (higher is better); None when it fits none of them."""
    remaining = dict(node)
    fitted = []
    kinds: set[str] = set()
    for d in _order(demands):
        if fits(remaining, d):
            fitted.append(d)
            _subtract(remaining, d)
            kinds.update(k for k, v in d.items() if v > 0)
            if strict_spread:
                break
    if not fitted:
        return None
    # Ray's weighting: a resource counts by its amount times its use cubed,
    # so big nodes used fully win, and a resource left unused (a custom one
    # no demand asks for) makes a node a worse choice.
    utils = [v * ((v - remaining.get(k, 0.0)) / v) ** 3 for k, v in node.items() if v >= 1]
    if not utils:
        return None
    gpu_ok = not (node.get("GPU", 0.0) > 0 and not any(d.get("GPU", 0.0) > 0 for d in demands))
    return (gpu_ok, sum(1 for k, v in node.items() if v >= 1 and k in kinds), min(utils), sum(utils) / len(utils))


def _describe(demands: Sequence[Mapping[str, float]]) -> str:
    counts: dict[tuple[tuple[str, float], ...], int] = {}
    for d in demands:
        counts[_key(d)] = counts.get(_key(d), 0) + 1
    parts = [f"{n}x {{{', '.join(f'{k}: {_num(v)}' for k, v in key)}}}" for key, n in counts.items()]
    return ", ".join(parts[:4]) + (f" and {len(parts) - 4} more shapes" if len(parts) > 4 else "")


def _key(d: Mapping[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((k, v) for k, v in d.items() if v > 0))


def _minus(demands: Sequence[Resources], left: Sequence[Resources]) -> list[Resources]:
    """``demands`` without (one occurrence of each of) ``left``."""
    pending: dict[tuple[tuple[str, float], ...], int] = {}
    for d in left:
        pending[_key(d)] = pending.get(_key(d), 0) + 1
    out = []
    for d in demands:
        k = _key(d)
        if pending.get(k, 0) > 0:
            pending[k] -= 1
        else:
            out.append(d)
    return out


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


class _Planner:
    """The counts and limits while one plan is made."""

    def __init__(self, node_types: Mapping[str, NodeType], max_workers: int, nodes: Sequence[Node]) -> None:
        self.types = node_types
        self.max_workers = max_workers
        self.count: dict[str, int] = {t: 0 for t in node_types}
        for n in nodes:
            if n.worker and n.node_type in self.count:
                self.count[n.node_type] += 1
        self.workers = sum(1 for n in nodes if n.worker)
        self.available = [dict(n.available) for n in nodes]
        self.totals = [dict(n.total) for n in nodes]
        self.plan = LaunchPlan()

    def room(self, t: str) -> int:
        return max(0, min(self.types[t].max_workers - self.count[t], self.max_workers - self.workers))

    def launch(self, t: str, n: int, why: str) -> int:
        n = min(n, self.room(t))
        if n <= 0:
            return 0
        self.count[t] += n
        self.workers += n
        self.plan.add(t, n, why)
        for _ in range(n):
            self.available.append(dict(self.types[t].resources))
            self.totals.append(dict(self.types[t].resources))
        return n

    def nodes_for(self, demands: list[Resources], why: str, *, strict_spread: bool = False,
                  budget: dict[str, int] | None = None, into_totals: bool = False) -> list[Resources]:
        """Launch nodes, one at a time, the best-scoring type each, until the
        demands fit or no type with room fits any; the demands left."""
        while demands:
            best: tuple[tuple[bool, int, float, float], str] | None = None
            for t, nt in self.types.items():
                if self.room(t) <= 0 or (budget is not None and budget.get(t, 0) <= 0):
                    continue
                score = utilization_score(nt.resources, demands, strict_spread)
                if score is not None and (best is None or score > best[0]):
                    best = (score, t)
            if best is None:
                break
            t = best[1]
            fresh = dict(self.types[t].resources)
            left = bin_pack_residual([fresh], demands, strict_spread=strict_spread)
            self.launch(t, 1, f"{why}: {_describe(_minus(demands, left))}")
            if budget is not None:
                budget[t] -= 1
            # The new node's leftover is available to what comes next.
            (self.totals if into_totals else self.available)[-1] = fresh
            demands = left
        return demands


def get_nodes_to_launch(node_types: Mapping[str, NodeType], max_workers: int, nodes: Sequence[Node],
                        demands: Sequence[Mapping[str, float]],
                        placement_groups: Sequence[PlacementGroupDemand] = (),
                        resource_request: Sequence[Mapping[str, float]] = (),
                        upscaling_speed: float = 1.0, launching: Mapping[str, int] | None = None,
                        head_node_type: str | None = None) -> LaunchPlan:
    """The plan for this round (see the module docstring). ``nodes``: every
    node there is, running or launching; ``launching``: of those, how many
    of each type have not joined yet (for ``upscaling_speed``)."""
    types = {t: nt for t, nt in node_types.items() if t != head_node_type or nt.max_workers > 0}
    p = _Planner(types, max_workers, nodes)
    for t, nt in types.items():
        p.launch(t, nt.min_workers - p.count[t], "min_workers")

    # request_resources(): a floor on the cluster's total capacity.
    if resource_request:
        totals = [dict(x) for x in p.totals]
        left = bin_pack_residual(totals, resource_request)
        p.totals = totals
        # (The nodes launched for it take demand too: a floor, not extra work.)
        left = p.nodes_for(left, "request_resources", into_totals=True)
        p.plan.unfulfilled.extend(left)

    # Demand-driven launches from here on: upscaling_speed holds them back.
    launching = launching or {}
    budget = {t: max(UPSCALING_INITIAL_NUM_NODES, math.ceil(upscaling_speed * p.count[t]))
              - launching.get(t, 0) - p.plan.to_launch.get(t, 0) for t in types}
    shapes: list[Resources] = []
    for pg in placement_groups:
        bundles = [dict(b) for b in pg.bundles if any(v > 0 for v in b.values())]
        if not bundles:
            continue
        if pg.strategy == "STRICT_SPREAD":
            left = bin_pack_residual(p.available, bundles, strict_spread=True)
            left = p.nodes_for(left, "placement group (STRICT_SPREAD)", strict_spread=True, budget=budget)
            _classify(left, types, p.plan)
        elif pg.strategy == "STRICT_PACK":
            merged: Resources = {}
            for b in bundles:
                for k, v in b.items():
                    merged[k] = merged.get(k, 0.0) + v
            shapes.append(merged)
        else:
            shapes.extend(bundles)
    shapes.extend(dict(d) for d in demands[:MAX_DEMANDS])
    left = bin_pack_residual(p.available, shapes)
    left = p.nodes_for(left, "pending demand", budget=budget)
    _classify(left, types, p.plan)
    return p.plan


def _classify(left: list[Resources], types: Mapping[str, NodeType], plan: LaunchPlan) -> None:
    for d in left:
        if any(fits(nt.resources, d) for nt in types.values()):
            plan.unfulfilled.append(d)
        else:
            plan.infeasible.append(d)


def expand(shapes: Sequence[tuple[Mapping[str, float], int]], limit: int = MAX_DEMANDS) -> list[Resources]:
    """(shape, count) pairs as a list of shapes, at most ``limit`` in all."""
    out: list[Resources] = []
    for shape, n in shapes:
        for _ in range(max(0, min(n, limit - len(out)))):
            out.append(dict(shape))
    return out
