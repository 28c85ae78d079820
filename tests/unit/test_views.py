"""The task-stream view's arithmetic on synthetic task rows (no cluster)."""

from __future__ import annotations

import numpy as np
import pytest

from jray.views._base import color_for
from jray.views.task_stream import (
    FAILED_HATCH,
    FAILED_OUTLINE,
    _count,
    _darker,
    _intervals,
    _mean,
    _queue,
    _sample_times,
    _stream,
    _util,
)

T0 = 1_000_000  # times are ms since the epoch (never 0)


def row(tid: str, pid: int, times: dict[str, int], state: str, cpu: float = 1.0, name: str = "f") -> dict:
    times = {k: T0 + v for k, v in times.items()}
    return {"task_id": tid, "func_or_class_name": name, "name": name, "state": state, "node_id": "n" * 32,
            "worker_pid": pid, "start_time_ms": times.get("RUNNING"),
            "end_time_ms": times.get("FINISHED") or times.get("FAILED"), "state_times_ms": times,
            "required_resources": {"CPU": cpu}, "error_message": "E: x" if state == "FAILED" else None}


TASKS = [
    row("a", 10, {"SUBMITTED": 0, "PENDING_NODE_ASSIGNMENT": 1, "SCHEDULED": 5, "RUNNING": 6, "FINISHED": 16},
        "FINISHED"),
    row("b", 11, {"SUBMITTED": 0, "PENDING_NODE_ASSIGNMENT": 2, "SCHEDULED": 10, "RUNNING": 10, "FAILED": 20},
        "FAILED", name="g"),
    row("c", 10, {"SUBMITTED": 0, "PENDING_NODE_ASSIGNMENT": 2}, "PENDING_NODE_ASSIGNMENT"),
]


def test_intervals_follow_the_state_order():
    iv = {k: (a - T0, b - T0) for k, (a, b) in _intervals(TASKS[0], now=T0 + 100).items()}
    assert iv["SUBMITTED"] == (0, 1) and iv["PENDING_NODE_ASSIGNMENT"] == (1, 5) and iv["RUNNING"] == (6, 16)
    assert _intervals(TASKS[2], now=T0 + 100)["PENDING_NODE_ASSIGNMENT"] == (T0 + 2, T0 + 101)  # still waiting


def test_count_is_enter_inclusive_leave_exclusive():
    times = np.array([0.0, 1.0, 5.0, 9.0])
    assert _count([(1, 5), (1, 9)], times).tolist() == [0, 2, 1, 0]
    assert _count([(1, 5), (1, 9)], times, [2.0, 0.5]).tolist() == [0, 2.5, 0.5, 0]


def test_queue_and_utilisation():
    times = T0 + np.array([0.0, 3.0, 5.5, 8.0, 12.0, 50.0])
    q = _queue(TASKS, times, now=T0 + 50)
    assert q["SUBMITTED"] == [3, 0, 0, 0, 0, 0]
    # Each sample: the most tasks in the state at any instant until the next sample.
    assert q["PENDING_NODE_ASSIGNMENT"] == [3, 3, 2, 2, 1, 1]
    assert q["SCHEDULED"] == [0, 1, 1, 0, 0, 0]  # a's 1 ms in SCHEDULED (5-6) lies between samples
    u = _util(TASKS, times, now=T0 + 50, cpus=2)
    # Averaged from each sample to the next: a runs 6-16, b 10-20 (1 CPU each, 2 CPUs).
    assert u["running"] == pytest.approx([0, 0, 2 / 2.5, 1.5, 12 / 38, 0])
    assert u["utilisation"] == pytest.approx([0, 0, 1 / 2.5, 0.75, 6 / 38, 0])


def test_mean_counts_a_task_shorter_than_a_step_for_its_time():
    times = np.array([0.0, 100.0, 200.0])
    assert _mean([(10.0, 11.0)], times).tolist() == [0.01, 0, 0]  # 1 ms of 100
    assert _mean([(150.0, 250.0)], times, [2.0]).tolist() == [0, 1.0, 2.0]  # the last: at it


def test_stream_bars_lanes_and_failures():
    cols = _stream(TASKS, now=T0 + 50)
    bars, lanes = cols["task_stream"], cols["task_lanes"]
    assert bars["task_id"] == ["a", "b"]  # c never ran
    assert lanes["label"] == ["nnnnnn pid 10", "nnnnnn pid 11"] and bars["lane"] == [0, 1]
    assert bars["start"] == [T0 + 6.0, T0 + 10.0] and bars["duration_ms"] == [10.0, 10.0]
    assert bars["color"] == [color_for("f"), color_for("g")] and bars["failed"] == [False, True]
    assert bars["line_color"] == [_darker(color_for("f")), FAILED_OUTLINE] and bars["error"][1] == "E: x"
    assert bars["hatch"] == [" ", FAILED_HATCH] and bars["right"] == bars["end"]  # no minimum asked
    fails = cols["task_failures"]
    assert fails["task_id"] == ["b"] and fails["end"] == [T0 + 20.0] and fails["lane"] == [1]


def test_short_bars_are_drawn_at_least_the_minimum_width():
    quick = row("q", 12, {"SUBMITTED": 0, "RUNNING": 30, "FINISHED": 30}, "FINISHED")  # 0 ms
    bars = _stream(TASKS + [quick], now=T0 + 50, min_bar_ms=4.0)["task_stream"]
    assert bars["duration_ms"] == [10.0, 10.0, 0.0]  # the true duration, for the hover
    assert bars["right"] == [T0 + 16.0, T0 + 20.0, T0 + 34.0]  # drawn 4 ms wide
    assert all(c != "white" for c in bars["line_color"])


def test_curves_are_sampled_densely_over_the_window():
    now = T0 + 600_000
    old = row("o", 10, {"SUBMITTED": -T0 + 1_000, "RUNNING": -T0 + 2_000, "FINISHED": -T0 + 3_000}, "FINISHED")
    times = _sample_times([old], now, window_s=60, history_s=600, n=100)
    in_window = times[times >= now - 60_000]
    assert len(in_window) == 100 and times[-1] == now and len(times) == 150
    assert times[0] == now - 600_000 and (np.diff(times) > 0).all()
    assert len(_sample_times([old], now, window_s=None, history_s=600, n=100)) == 100
