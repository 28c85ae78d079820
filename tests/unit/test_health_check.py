"""The GCS's node health check without sockets: which nodes are overdue,
and the threshold from Ray's knobs (health_check_period_ms x
failure_threshold) or JRAY_NODE_DEATH_SECONDS."""

from __future__ import annotations

import subprocess
import sys

from jray._private.gcs.server import overdue_nodes
from jray._private.protocol import gcs_pb2 as gpb


def test_only_live_nodes_past_the_threshold_are_overdue():
    nodes = {b"a": gpb.NodeInfo(node_id=b"a", alive=True), b"b": gpb.NodeInfo(node_id=b"b", alive=True),
             b"c": gpb.NodeInfo(node_id=b"c", alive=False), b"d": gpb.NodeInfo(node_id=b"d", alive=True)}
    seen = {b"a": 100.0, b"b": 96.0, b"c": 0.0}  # d: registered, no beat yet
    assert overdue_nodes(nodes, seen, 105.5, 5.0) == [b"a", b"b"]  # 5.5 s and 9.5 s silent
    assert overdue_nodes(nodes, seen, 101.5, 5.0) == [b"b"]  # 5.5 s silent
    assert overdue_nodes(nodes, seen, 100.9, 5.0) == []  # a partition shorter than the threshold
    assert sorted(overdue_nodes(nodes, seen, 200.0, 5.0)) == [b"a", b"b"]  # never the dead one, nor d


def _threshold(env: dict[str, str]) -> float:
    code = "from jray._private import config; print(config.NODE_DEATH_SECONDS)"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "PATH": "/usr/bin:/bin"}, capture_output=True,
                         text=True, timeout=60, check=True)
    return float(out.stdout)


def test_the_threshold_from_rays_knobs_or_jrays():
    assert _threshold({}) == 5.0
    assert _threshold({"JRAY_HEALTH_CHECK_PERIOD_MS": "3000", "JRAY_HEALTH_CHECK_FAILURE_THRESHOLD": "5"}) == 15.0
    assert _threshold({"JRAY_NODE_DEATH_SECONDS": "2", "JRAY_HEALTH_CHECK_PERIOD_MS": "3000",
                       "JRAY_HEALTH_CHECK_FAILURE_THRESHOLD": "5"}) == 2.0
