"""One autoscaling step (Ray's ``StandardAutoscaler.update``), given the
cluster's state as the GCS reports it and a node provider.

Each :meth:`StandardAutoscaler.update`:

1. lists the provider's worker nodes and pairs each with the GCS node whose
   label ``jray.io/provider-node-id`` names it: paired and alive is *up*;
   not paired yet is *launching*; paired but declared dead by the GCS is
   *lost* (terminated: its raylet is gone);
2. cancels launching nodes older than ``node_start_wait_s`` (provider
   config; default 900 s as Ray's ``AUTOSCALER_NODE_START_WAIT_S``), and
   counts them, and launching nodes that vanished before joining, as launch
   failures;
3. terminates nodes idle longer than ``idle_timeout_minutes``, never below
   a type's ``min_workers`` and never one that ``request_resources`` needs;
   a type a user pinned to a count (``sdk.scale_to``, the sidebar's "scale
   to N"; KV ``autoscaler/scale_targets``) counts as ``min_workers =
   max_workers = N``, and sheds nodes above N at once (launching ones, then
   idle ones; busy ones once idle);
4. plans launches for the demand (``resource_demand_scheduler``) and asks
   the provider for them. A type whose launch failed
   (``NodeLaunchError``, or a node that never joined) waits
   :class:`LaunchBackoff`'s delay before it is tried again (exponential,
   capped), so a broken config never turns into a tight loop; a node of the
   type that joins resets it.

:meth:`StandardAutoscaler.status` is what the monitor publishes: nodes by
state and type, the pending demand, the last decisions and why, the recent
launch failures with their messages.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jray._private.autoscaler_state import ClusterResourceState, NodeState
from jray.autoscaler._private.config import ClusterConfig
from jray.autoscaler._private.local import TAG_NODE_LABELS
from jray.autoscaler._private.resource_demand_scheduler import (
    Node,
    PlacementGroupDemand,
    bin_pack_residual,
    expand,
    get_nodes_to_launch,
)
from jray.autoscaler.node_provider import (
    NODE_KIND_WORKER,
    PROVIDER_NODE_ID_LABEL,
    STATUS_LAUNCHING,
    STATUS_UP,
    TAG_CLUSTER_NAME,
    TAG_NODE_KIND,
    TAG_NODE_STATUS,
    TAG_USER_NODE_TYPE,
    NodeLaunchError,
    NodeProvider,
)

logger = logging.getLogger(__name__)
TAG_LAUNCH_TIME = "jray-launch-time"
DEFAULT_NODE_START_WAIT_S = float(os.environ.get("JRAY_AUTOSCALER_NODE_START_WAIT_S", 900.0))
BACKOFF_BASE_S = float(os.environ.get("JRAY_AUTOSCALER_BACKOFF_BASE_S", 5.0))
BACKOFF_CAP_S = float(os.environ.get("JRAY_AUTOSCALER_BACKOFF_CAP_S", 300.0))


class LaunchBackoff:
    """Per node type: after ``n`` failures in a row the next launch waits
    ``min(cap, base * 2 ** (n - 1))`` seconds."""

    def __init__(self, base: float = BACKOFF_BASE_S, cap: float = BACKOFF_CAP_S) -> None:
        self.base, self.cap = base, cap
        self.failures: dict[str, int] = {}
        self.retry_at: dict[str, float] = {}

    def delay(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        return float(min(self.cap, self.base * 2 ** min(failures - 1, 60)))

    def failed(self, node_type: str, now: float) -> float:
        """Count a failure; the delay before the next try."""
        n = self.failures[node_type] = self.failures.get(node_type, 0) + 1
        d = self.delay(n)
        self.retry_at[node_type] = now + d
        return d

    def succeeded(self, node_type: str) -> None:
        self.failures.pop(node_type, None)
        self.retry_at.pop(node_type, None)

    def ready(self, node_type: str, now: float) -> bool:
        return now >= self.retry_at.get(node_type, 0.0)


@dataclass
class WorkerNode:
    """A provider node as this round sees it."""

    provider_id: str
    node_type: str
    status: str                      # launching | up
    launched_at: float
    gcs: NodeState | None = None     # the GCS node it joined as
    description: str = ""


@dataclass
class _Known:
    node_type: str
    joined: bool = False


@dataclass
class StandardAutoscaler:
    config: ClusterConfig
    provider: NodeProvider
    gcs_address: str
    clock: Callable[[], float] = time.time
    backoff: LaunchBackoff = field(default_factory=LaunchBackoff)

    def __post_init__(self) -> None:
        self.decisions: collections.deque[dict[str, Any]] = collections.deque(maxlen=50)
        self.failures: collections.deque[dict[str, Any]] = collections.deque(maxlen=20)
        self._known: dict[str, _Known] = {}
        self._last: dict[str, Any] = {}
        self.start_wait_s = float(self.config.provider.get("node_start_wait_s", DEFAULT_NODE_START_WAIT_S))
        self._warned: set[str] = set()
        self._step = self.config  # the config of this step, scale_to targets applied

    # -- bookkeeping ------------------------------------------------------------
    def _decide(self, action: str, node_type: str, count: int, reason: str) -> None:
        entry = {"time": self.clock(), "action": action, "node_type": node_type, "count": count, "reason": reason}
        self.decisions.append(entry)
        logger.info("%s %d %s node(s): %s", action, count, node_type, reason)

    def _failure(self, node_type: str, message: str) -> None:
        now = self.clock()
        delay = self.backoff.failed(node_type, now)
        self.failures.append({"time": now, "node_type": node_type, "message": message, "retry_in_s": delay,
                              "failures_in_a_row": self.backoff.failures[node_type]})
        logger.warning("launching a %s node failed (%s); next try in %.0f s", node_type, message, delay)

    # -- one step ---------------------------------------------------------------
    def workers(self, state: ClusterResourceState) -> list[WorkerNode]:
        """The provider's worker nodes, paired with the GCS's."""
        by_label: dict[str, NodeState] = {}
        for n in state.nodes:
            pid = n.labels.get(PROVIDER_NODE_ID_LABEL)
            if pid and (pid not in by_label or n.alive):
                by_label[pid] = n
        out = []
        for pid in self.provider.non_terminated_nodes({TAG_NODE_KIND: NODE_KIND_WORKER}):
            tags = self.provider.node_tags(pid)
            try:
                launched = float(tags.get(TAG_LAUNCH_TIME, ""))
            except ValueError:
                launched = self.clock()
            gcs = by_label.get(pid)
            status = STATUS_UP if gcs is not None else STATUS_LAUNCHING
            out.append(WorkerNode(pid, tags.get(TAG_USER_NODE_TYPE, ""), status, launched, gcs))
        return out

    def pinned(self, state: ClusterResourceState) -> dict[str, int]:
        """The ``scale_to`` targets that name a worker type, clamped to its ``max_workers``."""
        out = {}
        for t, n in state.scale_targets.items():
            nt = self.config.node_types.get(t)
            if nt is None or t == self.config.head_node_type:
                if t not in self._warned:
                    self._warned.add(t)
                    logger.warning("ignoring the scale target of %r: not a worker node type of this cluster", t)
                continue
            out[t] = min(n, nt.max_workers)
        return out

    def _effective(self, state: ClusterResourceState) -> ClusterConfig:
        """The config with each pinned type's min and max set to its target."""
        pins = self.pinned(state)
        if not pins:
            return self.config
        types = {t: (dataclasses.replace(nt, min_workers=pins[t], max_workers=pins[t]) if t in pins else nt)
                 for t, nt in self.config.node_types.items()}
        return dataclasses.replace(self.config, node_types=types)

    def update(self, state: ClusterResourceState) -> None:
        now = self.clock()
        self._step = self._effective(state)
        workers = self.workers(state)
        seen = {w.provider_id for w in workers}
        # Launching nodes that vanished without joining failed to start.
        for pid, k in list(self._known.items()):
            if pid not in seen:
                if not k.joined:
                    self._failure(k.node_type, f"node {pid} exited before joining the cluster "
                                  f"({self.provider.describe_node(pid)})")
                del self._known[pid]
        keep: list[WorkerNode] = []
        doomed: list[tuple[WorkerNode, str]] = []
        for w in workers:
            k = self._known.setdefault(w.provider_id, _Known(w.node_type))
            if w.gcs is not None and not w.gcs.alive:
                doomed.append((w, "its raylet is gone (the GCS declared the node dead)"))
            elif w.gcs is None and now - w.launched_at > self.start_wait_s:
                doomed.append((w, f"it did not join within {self.start_wait_s:.0f} s"))
                self._failure(w.node_type, f"node {w.provider_id} did not join the cluster within "
                              f"{self.start_wait_s:.0f} s ({self.provider.describe_node(w.provider_id)})")
                k.joined = True  # counted once
            else:
                if w.gcs is not None and not k.joined:
                    k.joined = True
                    self.backoff.succeeded(w.node_type)
                    self.provider.set_node_tags(w.provider_id, {TAG_NODE_STATUS: STATUS_UP})
                keep.append(w)
        doomed += self._idle_to_terminate(keep, state)
        if doomed:
            gone = {w.provider_id for w, _ in doomed}
            keep = [w for w in keep if w.provider_id not in gone]
            by_reason: dict[tuple[str, str], int] = collections.Counter((w.node_type, r) for w, r in doomed)
            for (t, reason), n in by_reason.items():
                self._decide("terminate", t, n, reason)
            self.provider.terminate_nodes(sorted(gone))
            for pid in gone:
                self._known.pop(pid, None)
        self._launch(keep, state, now)

    def _idle_to_terminate(self, workers: list[WorkerNode], state: ClusterResourceState) -> list[tuple[WorkerNode, str]]:
        cfg = self._step
        limit = cfg.idle_timeout_minutes * 60.0
        count = collections.Counter(w.node_type for w in workers)
        out: list[tuple[WorkerNode, str]] = []
        # A type pinned below its count sheds nodes at once: launching ones
        # first, then the longest idle; busy ones wait until they are idle.
        for t, target in self.pinned(state).items():
            excess = count[t] - target
            if excess <= 0:
                continue
            mine = [w for w in workers if w.node_type == t]
            idle = sorted((w for w in mine if w.gcs is not None and w.gcs.idle_s > 0), key=lambda w: -(w.gcs.idle_s if w.gcs else 0.0))
            for w in ([w for w in mine if w.gcs is None] + idle)[:excess]:
                out.append((w, f"scaled to {target} (scale_to)"))
                count[t] -= 1
        chosen = {w.provider_id for w, _ in out}
        # Nodes request_resources() needs are kept: pack its bundles into the
        # nodes' totals, busiest first, and keep the nodes used.
        needed: set[str] = set()
        if state.resource_request:
            order = sorted(workers, key=lambda w: (w.gcs.idle_s if w.gcs else 0.0))
            totals = [dict(n.total) for n in state.nodes if n.alive and PROVIDER_NODE_ID_LABEL not in n.labels]
            base = len(totals)
            totals += [dict(w.gcs.total) if w.gcs else dict(cfg.node_types[w.node_type].resources)
                       if w.node_type in cfg.node_types else {} for w in order]
            before = [dict(t) for t in totals]
            bin_pack_residual(totals, state.resource_request)
            needed = {order[i - base].provider_id for i in range(base, len(totals)) if totals[i] != before[i]}
        for w in sorted(workers, key=lambda w: -(w.gcs.idle_s if w.gcs else 0.0)):
            if w.gcs is None or w.gcs.idle_s <= limit or w.provider_id in needed or w.provider_id in chosen:
                continue
            nt = cfg.node_types.get(w.node_type)
            if nt is not None and count[w.node_type] <= nt.min_workers:
                continue
            count[w.node_type] -= 1
            out.append((w, f"idle for more than {cfg.idle_timeout_minutes:g} minutes"))
        return out

    def _launch(self, workers: list[WorkerNode], state: ClusterResourceState, now: float) -> None:
        cfg = self._step
        nodes: list[Node] = []
        paired = {w.gcs.node_id for w in workers if w.gcs is not None}
        for n in state.nodes:
            if n.alive and n.node_id not in paired and PROVIDER_NODE_ID_LABEL not in n.labels:
                nodes.append(Node(None, n.total, n.available, worker=False))
        launching: dict[str, int] = collections.Counter()
        for w in workers:
            nt = cfg.node_types.get(w.node_type)
            if w.gcs is not None:
                nodes.append(Node(w.node_type, w.gcs.total, w.gcs.available))
            elif nt is not None:
                nodes.append(Node(w.node_type, dict(nt.resources), dict(nt.resources)))
                launching[w.node_type] += 1
        demands = expand([(d.shape, d.count) for d in state.demands + state.pending_actors])
        pgs = [PlacementGroupDemand(g.strategy, g.bundles) for g in state.pending_groups]
        plan = get_nodes_to_launch(cfg.node_types, cfg.max_workers, nodes, demands, pgs, state.resource_request,
                                   cfg.upscaling_speed, launching, cfg.head_node_type)
        waiting = {}
        for t, count in plan.to_launch.items():
            reason = "; ".join(plan.reasons.get(t, []))
            if t in state.scale_targets and t in self.pinned(state):  # its min_workers is the pin
                reason = reason.replace("min_workers", f"scaled to {self.pinned(state)[t]} (scale_to)")
            if not self.backoff.ready(t, now):
                waiting[t] = self.backoff.retry_at[t] - now
                continue
            nt = cfg.node_types[t]
            tags = {TAG_NODE_KIND: NODE_KIND_WORKER, TAG_USER_NODE_TYPE: t, TAG_NODE_STATUS: STATUS_LAUNCHING,
                    TAG_CLUSTER_NAME: cfg.cluster_name, TAG_LAUNCH_TIME: repr(now)}
            if nt.labels:
                import json

                tags[TAG_NODE_LABELS] = json.dumps(nt.labels)
            try:
                ids = self.provider.create_node(nt.node_config, tags, count, gcs_address=self.gcs_address,
                                                resources=nt.resources)
            except NodeLaunchError as e:
                self._decide("launch failed", t, count, f"{reason} -> {e}")
                self._failure(t, str(e))
                continue
            except Exception as e:  # noqa: BLE001 - a provider bug must not stop the autoscaler
                logger.exception("the %s provider failed to create nodes", cfg.provider.get("type"))
                self._decide("launch failed", t, count, f"{reason} -> {type(e).__name__}: {e}")
                self._failure(t, f"{type(e).__name__}: {e}")
                continue
            for pid in ids:
                self._known[pid] = _Known(t)
            self._decide("launch", t, len(ids), reason)
        self._last = {"plan": plan, "waiting": waiting, "workers": workers, "state": state}

    # -- what the monitor publishes ----------------------------------------------
    def status(self) -> dict[str, Any]:
        now = self.clock()
        workers: list[WorkerNode] = self._last.get("workers", [])
        state: ClusterResourceState | None = self._last.get("state")
        plan = self._last.get("plan")
        limit = self.config.idle_timeout_minutes * 60.0
        by: dict[str, dict[str, int]] = {"launching": {}, "running": {}, "idle": {}}
        node_list = []
        for w in workers:
            idle_s = w.gcs.idle_s if w.gcs is not None else 0.0
            kind = "launching" if w.gcs is None else ("idle" if idle_s > 0 else "running")
            by[kind][w.node_type] = by[kind].get(w.node_type, 0) + 1
            node_list.append({"provider_id": w.provider_id, "node_type": w.node_type, "status": kind,
                              "node_id": w.gcs.node_id if w.gcs else "", "idle_s": round(idle_s, 1),
                              "idle_limit_s": limit, "launched_s_ago": round(now - w.launched_at, 1)})
        pins = self.pinned(state) if state is not None else {}
        count = collections.Counter(w.node_type for w in workers)
        types = {t: {"resources": nt.resources, "min_workers": nt.min_workers, "max_workers": nt.max_workers,
                     "target": pins.get(t), "count": count[t]}
                 for t, nt in self.config.node_types.items() if t != self.config.head_node_type}
        demand = []
        if state is not None:
            for d in state.demands:
                demand.append({"shape": d.shape, "count": d.count, "infeasible": d.infeasible, "kind": "task"})
            for d in state.pending_actors:
                demand.append({"shape": d.shape, "count": d.count, "infeasible": d.infeasible, "kind": "actor"})
            for g in state.pending_groups:
                demand.append({"shape": g.bundles, "count": 1, "strategy": g.strategy, "kind": "placement_group",
                               "name": g.name or g.pg_id})
        return {
            "time": now, "cluster_name": self.config.cluster_name, "provider": self.config.provider.get("type"),
            "max_workers": self.config.max_workers, "idle_timeout_minutes": self.config.idle_timeout_minutes,
            "nodes": by, "node_list": node_list, "node_types": types, "scale_targets": pins, "demand": demand,
            "resource_request": state.resource_request if state is not None else [],
            "infeasible": plan.infeasible if plan is not None else [],
            "unfulfilled": plan.unfulfilled if plan is not None else [],
            "backoff": {t: round(s, 1) for t, s in self._last.get("waiting", {}).items()},
            "decisions": list(self.decisions)[-20:], "failures": list(self.failures),
        }
