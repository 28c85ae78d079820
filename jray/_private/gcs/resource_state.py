"""The cluster's demand as the autoscaler reads it (``GetClusterResourceState``,
Ray's autoscaler-v2 call of that name): plain logic over the GCS's tables.

Three sources, none counted twice:

- the raylets' ``resource_load`` (lease requests of tasks waiting at them,
  infeasible ones apart, and their owners' backlogs), summed by shape over
  the live nodes;
- placement groups not placed yet: the bundles that have no node, with the
  group's strategy (the autoscaler packs STRICT_SPREAD bundles on distinct
  nodes, STRICT_PACK ones on one);
- actors waiting for a node (``ActorRecord.placing``: the GCS is looking for
  a node or waits on a raylet's lease), not those in a placement group (the
  group is the demand); raylets leave actors' lease requests out of their
  load for this reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from jray._private.gcs.actor_directory import ActorRecord
from jray._private.gcs.placement_groups import PlacementGroupRecord
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import gcs_pb2 as gpb
from jray._private.resources import fits

Shape = tuple[tuple[str, float], ...]


def _key(shape: Mapping[str, float]) -> Shape:
    return tuple(sorted((k, float(v)) for k, v in shape.items() if v > 0))


def cluster_resource_state(nodes: Iterable[gpb.NodeInfo], actors: Iterable[ActorRecord],
                           groups: Iterable[PlacementGroupRecord]) -> gpb.GetClusterResourceStateReply:
    nodes = list(nodes)
    alive = [n for n in nodes if n.alive]
    reply = gpb.GetClusterResourceStateReply(nodes=nodes)
    load: dict[Shape, list[int]] = {}
    for n in alive:
        for d in n.resource_load:
            acc = load.setdefault(_key(d.shape), [0, 0, 0])
            acc[0] += d.num_ready_requests_queued
            acc[1] += d.num_infeasible_requests_queued
            acc[2] += d.backlog_size
    for key, (ready, infeasible, backlog) in sorted(load.items()):
        reply.resource_load.append(cpb.ResourceDemand(shape=dict(key), num_ready_requests_queued=ready,
                                                      num_infeasible_requests_queued=infeasible,
                                                      backlog_size=backlog))
    waiting: dict[Shape, list[int]] = {}
    for rec in actors:
        if (not getattr(rec, "placing", False) or rec.info.state not in (gpb.PENDING_CREATION, gpb.RESTARTING)
                or rec.spec.scheduling.kind == cpb.SchedulingStrategy.PLACEMENT_GROUP):
            continue
        key = _key(rec.spec.resources)
        if not key:
            continue
        feasible = any(fits(dict(key), n.resources_total) for n in alive)
        acc = waiting.setdefault(key, [0, 0])
        acc[0 if feasible else 1] += 1
    for key, (ready, infeasible) in sorted(waiting.items()):
        reply.pending_actors.append(cpb.ResourceDemand(shape=dict(key), num_ready_requests_queued=ready,
                                                       num_infeasible_requests_queued=infeasible))
    for g in groups:
        info = g.info
        if info.state not in (gpb.PG_PENDING, gpb.PG_RESCHEDULING):
            continue
        unplaced = [cpb.ResourceMap(values=dict(b.resources)) for b in info.bundles if not b.node_id]
        if unplaced:
            reply.pending_placement_groups.append(gpb.GangResourceRequest(
                placement_group_id=info.placement_group_id, name=info.name, strategy=info.strategy,
                bundles=unplaced, state=info.state))
    return reply
