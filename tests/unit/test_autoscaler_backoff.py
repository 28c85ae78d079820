"""The autoscaler's launch back-off (``LaunchBackoff``) and a raylet's
report of what waits there and how long it has been idle
(``raylet/resource_load.py``). Plain objects, no processes."""

from __future__ import annotations

from jray._private.raylet.resource_load import BACKLOG_TTL_SECONDS, ResourceLoad
from jray.autoscaler._private.autoscaler import LaunchBackoff


def test_backoff_doubles_and_is_capped() -> None:
    b = LaunchBackoff(base=5.0, cap=60.0)
    assert [b.delay(n) for n in range(7)] == [0.0, 5.0, 10.0, 20.0, 40.0, 60.0, 60.0]
    assert b.delay(10_000) == 60.0


def test_backoff_per_node_type_and_reset_on_success() -> None:
    b = LaunchBackoff(base=2.0, cap=100.0)
    assert b.ready("cpu", 0.0)
    assert b.failed("cpu", 100.0) == 2.0
    assert not b.ready("cpu", 101.0) and b.ready("cpu", 102.0)
    assert b.ready("gpu", 100.5)  # other types are not held back
    assert b.failed("cpu", 102.0) == 4.0
    assert b.failed("cpu", 106.0) == 8.0
    assert not b.ready("cpu", 113.9) and b.ready("cpu", 114.0)
    b.succeeded("cpu")  # a node of the type joined
    assert b.ready("cpu", 0.0) and b.failed("cpu", 200.0) == 2.0


def test_never_a_tight_loop() -> None:
    # However often the autoscaler asks, failed launches of a type happen at
    # most at the back-off's pace: count tries over 10 simulated minutes.
    b = LaunchBackoff(base=5.0, cap=300.0)
    tries = []
    t = 0.0
    while t < 600.0:
        if b.ready("bad", t):
            tries.append(t)
            b.failed("bad", t)
        t += 0.1  # an update every 100 ms
    assert len(tries) <= 8
    gaps = [y - x for x, y in zip(tries, tries[1:], strict=False)]
    assert all(g >= 4.9 for g in gaps) and gaps == sorted(gaps)


def test_resource_load_counts_requests_and_backlogs() -> None:
    load = ResourceLoad()
    a = load.begin({"CPU": 1.0})
    b = load.begin({"CPU": 1, "GPU": 0})  # zero amounts are not part of the shape
    c = load.begin({"foo": 1.0})
    c.infeasible = True
    load.report_backlog(b"owner1", [({"CPU": 1.0}, 5)], now=100.0)
    load.report_backlog(b"owner2", [({"CPU": 1.0}, 2), ({"GPU": 1.0}, 1)], now=100.0)
    got = {tuple(sorted(d.shape.items())): (d.num_ready_requests_queued, d.num_infeasible_requests_queued,
                                            d.backlog_size) for d in load.demands(now=101.0)}
    assert got == {(("CPU", 1.0),): (2, 0, 7), (("foo", 1.0),): (0, 1, 0), (("GPU", 1.0),): (0, 0, 1)}
    # A new report replaces the owner's last; an empty one clears it; an old one lapses.
    load.report_backlog(b"owner1", [], now=102.0)
    load.end(a)
    load.end(b)
    load.end(c)
    got = {tuple(sorted(d.shape.items())): d.backlog_size for d in load.demands(now=102.0)}
    assert got == {(("CPU", 1.0),): 2, (("GPU", 1.0),): 1}
    assert load.demands(now=100.0 + BACKLOG_TTL_SECONDS + 0.1) == []
    load.report_backlog(b"owner3", [({"CPU": 1.0}, 1)], now=200.0)
    load.forget_owner(b"owner3")  # it died
    assert load.demands(now=200.0) == []


def test_idle_time() -> None:
    load = ResourceLoad()
    assert load.idle_ms(busy=False, now=10.0) == 0
    assert load.idle_ms(busy=False, now=12.5) == 2500
    assert load.idle_ms(busy=True, now=13.0) == 0
    assert load.idle_ms(busy=False, now=14.0) == 0
    assert load.idle_ms(busy=False, now=15.0) == 1000
    p = load.begin({"CPU": 1.0})  # a request waiting here: not idle
    assert load.idle_ms(busy=False, now=16.0) == 0
    load.end(p)
    assert load.idle_ms(busy=False, now=17.0) == 0
