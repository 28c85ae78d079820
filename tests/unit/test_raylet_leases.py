"""The raylet's lease table and wait queue, without a raylet."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from jray._private.raylet.leases import BlockedWorkers, LeaseQueue, LeaseRecord, LeaseTable
from jray._private.raylet.scheduler import NodeResources
from jray._private.resources import fits


def test_blocked_workers_requests_are_served_first_then_arrival_order() -> None:
    async def main() -> list[bytes]:
        node = NodeResources({"CPU": 2})
        hold = node.acquire({"CPU": 2})
        assert hold is not None
        q = LeaseQueue()
        entries = [q.add(owner, {"CPU": 1}) for owner in (b"top1", b"top2", b"nested", b"top3")]
        node.release(hold)
        q.hand_out(node, blocked={b"nested"})
        return [e.owner for e in entries if e.fut.done()]

    assert asyncio.run(main()) == [b"top1", b"nested"]


def test_a_hand_out_skips_the_shapes_that_did_not_fit_but_serves_the_others() -> None:
    """Once {"CPU": 1} did not fit, later {"CPU": 1} requests are not tried
    again in that pass; smaller requests behind them still get what is left."""
    async def main() -> tuple[list[bytes], int]:
        node = NodeResources({"CPU": 2, "memory": 4})
        hold = node.acquire({"CPU": 2, "memory": 4})
        assert hold is not None
        q = LeaseQueue()
        entries = [q.add(b"a", {"CPU": 1}), q.add(b"b", {"CPU": 1}), q.add(b"c", {"CPU": 1}),
                   q.add(b"d", {"memory": 1}), q.add(b"e", {"CPU": 1})]
        node.release(hold)
        calls = 0
        acquire = node.acquire

        def counted(demand: dict[str, float]) -> Any:
            nonlocal calls
            calls += 1
            return acquire(demand)

        node.acquire = counted  # type: ignore[method-assign]
        q.hand_out(node, blocked=())
        return [e.owner for e in entries if e.fut.done()], calls

    granted, tries = asyncio.run(main())
    assert granted == [b"a", b"b", b"d"]
    assert tries == 4  # a, b, c (no fit: its shape is done for), d; e not tried


def test_a_hand_out_wakes_bundle_waiters_only_with_requests_queued() -> None:
    async def main() -> tuple[bool, bool]:
        node = NodeResources({"CPU": 1})
        q = LeaseQueue()
        first = asyncio.ensure_future(q.wait_bundle(5))
        await asyncio.sleep(0)
        q.hand_out(node, blocked=())
        await asyncio.sleep(0)
        woken_without_queue = first.done()
        q.add(b"o", {"CPU": 5})
        q.hand_out(node, blocked=())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return woken_without_queue, first.done()

    assert asyncio.run(main()) == (False, True)


def _lease(node_res: NodeResources, pool: NodeResources | None, lease_id: bytes, worker: bytes,
           owner: bytes = b"", actor: bytes = b"") -> LeaseRecord:
    alloc = (pool or node_res).acquire({"CPU": 1})
    assert alloc is not None
    w: Any = SimpleNamespace(worker_id=worker)
    return LeaseRecord(lease_id, w, alloc, actor, owner, pool)


def test_ending_a_lease_returns_its_resources_to_its_own_pool() -> None:
    node = NodeResources({"CPU": 4})
    bundle = NodeResources({"CPU": 1})
    t = LeaseTable(node)
    plain, in_bundle = _lease(node, None, b"l1", b"w1"), _lease(node, bundle, b"l2", b"w2")
    t.add(plain)
    t.add(in_bundle)
    assert node.available["CPU"] == 3 and bundle.available["CPU"] == 0
    t.end(in_bundle)
    assert bundle.available["CPU"] == 1 and node.available["CPU"] == 3
    assert t.by_worker == {b"w1": plain} and list(t.by_id) == [b"l1"]
    assert t.in_pools([bundle]) == [] and t.pool(plain) is node


def test_an_owner_s_task_leases_not_its_actors() -> None:
    node = NodeResources({"CPU": 4})
    t = LeaseTable(node)
    task = _lease(node, None, b"l1", b"w1", owner=b"driver")
    actor = _lease(node, None, b"l2", b"w2", owner=b"driver", actor=b"a")
    other = _lease(node, None, b"l3", b"w3", owner=b"someone")
    for x in (task, actor, other):
        t.add(x)
    assert t.owned_by(b"driver") == [task]


def test_fits_edge_cases() -> None:
    assert fits({"CPU": 0.1 + 0.2}, {"CPU": 0.3})  # float slack
    assert fits({"CPU": 0}, {"CPU": -1})           # zero asks for nothing
    assert fits({}, {})
    assert not fits({"GPU": 1}, {"CPU": 8})        # missing is zero
    assert not fits({"CPU": 1.01}, {"CPU": 1})


def test_a_blocked_message_overtaken_by_a_newer_one_is_ignored() -> None:
    b = BlockedWorkers()
    assert b.update(b"w", True, 2) and b"w" in b
    assert not b.update(b"w", False, 1) and b"w" in b  # older: ignored
    assert b.update(b"w", False, 3) and b"w" not in b
    assert b.update(b"w", True, 0) and b"w" in b       # unnumbered: always applied
    b.forget(b"w")
    assert b"w" not in b and b.update(b"w", True, 1)   # a new worker with that id starts over
