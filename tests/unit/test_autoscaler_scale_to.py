"""``scale_to`` targets in one autoscaling step (``StandardAutoscaler``),
with an in-memory provider and a hand-made cluster state: no processes.

A pinned type behaves as ``min_workers = max_workers = N``: the autoscaler
launches up to N, ignores demand beyond N, and above N sheds launching
nodes and idle ones at once, never a busy one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jray._private.autoscaler_state import (
    ClusterResourceState,
    Demand,
    NodeState,
    parse_scale_targets,
)
from jray.autoscaler._private.autoscaler import StandardAutoscaler
from jray.autoscaler._private.config import validate
from jray.autoscaler.node_provider import TAG_USER_NODE_TYPE, NodeProvider

LABEL = "jray.io/provider-node-id"


class MemProvider(NodeProvider):
    def __init__(self) -> None:
        super().__init__({"type": "mem"}, "t")
        self.nodes: dict[str, dict[str, str]] = {}
        self.n = 0

    def non_terminated_nodes(self, tag_filters: Mapping[str, str]) -> list[str]:
        return [i for i, t in self.nodes.items() if all(t.get(k) == v for k, v in tag_filters.items())]

    def node_tags(self, node_id: str) -> dict[str, str]:
        return dict(self.nodes[node_id])

    def create_node(self, node_config: Mapping[str, Any], tags: Mapping[str, str], count: int,
                    **kw: Any) -> list[str]:
        ids = []
        for _ in range(count):
            self.n += 1
            self.nodes[f"n{self.n}"] = dict(tags)
            ids.append(f"n{self.n}")
        return ids

    def terminate_node(self, node_id: str) -> None:
        self.nodes.pop(node_id, None)

    def set_node_tags(self, node_id: str, tags: Mapping[str, str]) -> None:
        self.nodes[node_id].update(tags)


CONFIG = {"cluster_name": "t", "max_workers": 10, "idle_timeout_minutes": 5, "provider": {"type": "local"},
          "head_node_type": "head",
          "available_node_types": {"head": {"resources": {"CPU": 0}},
                                   "cpu2": {"resources": {"CPU": 2}, "max_workers": 4},
                                   "gpu": {"resources": {"CPU": 1, "GPU": 1}, "max_workers": 2}}}


def make() -> tuple[StandardAutoscaler, MemProvider]:
    p = MemProvider()
    clock = [1000.0]
    a = StandardAutoscaler(validate(CONFIG), p, "127.0.0.1:1", clock=lambda: clock[0])
    return a, p


def state(p: MemProvider, targets: dict[str, int], busy: set[str] = frozenset(),  # type: ignore[assignment]
          joined: set[str] | None = None, demands: list[Demand] | None = None) -> ClusterResourceState:
    nodes = [NodeState("head", "10.0.0.1", True, True, {"CPU": 0}, {"CPU": 0}, {}, 100.0)]
    for pid in p.non_terminated_nodes({}):
        if joined is not None and pid not in joined:
            continue
        nodes.append(NodeState(pid, "10.0.0.2", True, False, {"CPU": 2}, {"CPU": 0 if pid in busy else 2},
                               {LABEL: pid}, 0.0 if pid in busy else 10.0))
    return ClusterResourceState(nodes=nodes, demands=demands or [], scale_targets=targets)


def of(p: MemProvider, t: str) -> list[str]:
    return sorted(i for i, tags in p.nodes.items() if tags.get(TAG_USER_NODE_TYPE) == t)


def test_pinned_type_is_launched_to_its_target_and_demand_does_not_exceed_it() -> None:
    a, p = make()
    a.update(state(p, {"cpu2": 3}))
    assert len(of(p, "cpu2")) == 3
    assert a.decisions[-1]["action"] == "launch" and "scaled to 3 (scale_to)" in a.decisions[-1]["reason"]
    # Demand for 20 CPUs would want 10 nodes: the pin holds it at 3.
    a.update(state(p, {"cpu2": 3}, demands=[Demand({"CPU": 1.0}, ready=20)]))
    assert len(of(p, "cpu2")) == 3
    st = a.status()
    assert st["node_types"]["cpu2"]["target"] == 3 and st["node_types"]["cpu2"]["count"] == 3
    assert st["scale_targets"] == {"cpu2": 3} and "head" not in st["node_types"]
    from jray.cli.autoscale import format_autoscaler_status

    assert " cpu2: 3 wanted, 3 now" in format_autoscaler_status(st).splitlines()
    # Unpinned, the same demand grows the type to its max_workers.
    a.update(state(p, {}, demands=[Demand({"CPU": 1.0}, ready=20)]))
    assert len(of(p, "cpu2")) == 4


def test_scaling_down_sheds_launching_then_idle_nodes_never_busy_ones() -> None:
    a, p = make()
    a.update(state(p, {"cpu2": 4}))
    ids = of(p, "cpu2")
    assert len(ids) == 4
    busy = set(ids[:2])
    joined = set(ids[:3])  # ids[3] is still launching
    a.update(state(p, {"cpu2": 1}, busy=busy, joined=joined))
    left = of(p, "cpu2")
    assert ids[3] not in left and ids[2] not in left  # the launching one, then the idle one
    assert set(left) == busy  # both busy nodes stay though the target is 1
    assert any("scaled to 1" in d["reason"] for d in a.decisions)
    a.update(state(p, {"cpu2": 1}, busy={ids[0]}))  # ids[1] finished its work
    assert of(p, "cpu2") == [ids[0]]
    a.update(state(p, {"cpu2": 0}))
    assert of(p, "cpu2") == []


def test_targets_are_clamped_and_unknown_types_ignored() -> None:
    a, p = make()
    a.update(state(p, {"gpu": 9, "nope": 2, "head": 3}))
    assert len(of(p, "gpu")) == 2 and not of(p, "nope") and not of(p, "head")
    assert a.status()["scale_targets"] == {"gpu": 2}


def test_scale_targets_parse_drops_bad_entries() -> None:
    assert parse_scale_targets(b'{"a": 2, "b": -1, "c": "3", "d": true, "e": 0}') == {"a": 2, "e": 0}
    assert parse_scale_targets(b"not json") == {} and parse_scale_targets(None) == {}
