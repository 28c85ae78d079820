"""The GCS's side of node reports and the cluster view (gcs/cluster_view.py):
which reports change the view the raylets schedule by, and which nodes
each subscriber is sent."""

from __future__ import annotations

import asyncio

from jray._private.gcs.cluster_view import ViewPublisher, apply_report
from jray._private.protocol import gcs_pb2 as gpb


def _node(nid: bytes, cpu: float = 1.0, **kw: object) -> gpb.NodeInfo:
    return gpb.NodeInfo(node_id=nid, alive=True, resources_total={"CPU": 1.0}, resources_available={"CPU": cpu},
                        **kw)


def test_only_scheduling_fields_change_the_view() -> None:
    known = _node(b"a")
    # Stats only (the machine's CPU, objects): merged, the view does not change.
    assert not apply_report(known, _node(b"a", cpu_percent=42.0, num_objects=3, idle_duration_ms=10))
    assert known.cpu_percent == 42.0 and known.num_objects == 3 and known.idle_duration_ms == 10
    assert apply_report(known, _node(b"a", cpu=0.0))  # resources taken
    assert known.resources_available["CPU"] == 0.0
    assert apply_report(known, _node(b"a", cpu=0.0, pending_leases=2))
    assert not apply_report(known, _node(b"a", cpu=0.0, pending_leases=2))
    assert not apply_report(known, known)  # the record itself: nothing to merge


def test_a_subscriber_gets_every_node_then_only_the_changed_ones() -> None:
    async def main() -> None:
        nodes = {b"a": _node(b"a"), b"b": _node(b"b")}
        view = ViewPublisher(nodes)
        sub = view.subscribe(dead_after=-1)
        assert sub.wake.is_set()
        first, full = view.take(sub)
        assert full and {n.node_id for n in first} == {b"a", b"b"}
        sub.wake.clear()
        assert view.take(sub) == ([], False)  # nothing changed
        view.node_changed(b"b")
        assert sub.wake.is_set()
        changed, full = view.take(sub)
        assert not full and [n.node_id for n in changed] == [b"b"]
        late = view.subscribe(dead_after=-1)  # a raylet joining later: all of them
        assert len(view.take(late)[0]) == 2
        view.unsubscribe(sub)
        sub.wake.clear()
        view.node_changed(b"a")
        assert not sub.wake.is_set() and late.wake.is_set()

    asyncio.run(main())
