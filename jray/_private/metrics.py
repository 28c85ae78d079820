"""This process's ``ray.util.metrics`` values, and a node's aggregate of its
processes' values in Prometheus's format.

Process side: ``record`` folds a value into the point of (name, tags):
a counter's total, a gauge's last value, a histogram's bucket counts, sum
and count. Once something was recorded, the CoreWorker (when this process
runs one) sends every point to its raylet every ``config.METRICS_REPORT_SECONDS``
(``snapshot``: cumulative values, so a lost report loses nothing).

Node side (the raylet): :class:`NodeMetrics` keeps the last snapshot of
each process (a dead process's counters still count) and yields them,
aggregated, to ``prometheus_client`` as a collector served on the node's
metrics port (``ray_<name>`` with a ``NodeAddress`` label, as Ray exports
them) and to ``GetNodeStats(include_metrics)``.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from jray._private.protocol import raylet_pb2 as rpb

Tags = tuple[tuple[str, str], ...]

SCRAPE_READ_SECONDS = 10.0  # a scraper's request must arrive within this

_lock = threading.Lock()
_points: dict[tuple[str, Tags], rpb.MetricPoint] = {}
_dirty = False
on_first_record: Callable[[], None] | None = None  # the CoreWorker starts its reporter


def record(kind: str, name: str, description: str, tags: Tags, value: float,
           boundaries: Sequence[float] = ()) -> None:
    global _dirty
    key = (name, tags)
    first = False
    with _lock:
        p = _points.get(key)
        if p is None:
            first = not _points
            p = _points[key] = rpb.MetricPoint(name=name, kind=kind, description=description, tags=dict(tags))
            if kind == "histogram":
                p.boundaries.extend(boundaries)
                p.bucket_counts.extend([0] * (len(boundaries) + 1))
        elif p.kind != kind:
            raise ValueError(f"metric {name!r} is already a {p.kind} in this process, not a {kind}")
        if kind == "counter":
            p.value += value
        elif kind == "gauge":
            p.value = value
        else:
            p.bucket_counts[bisect.bisect_left(list(p.boundaries), value)] += 1
            p.value += value
            p.count += 1
        p.time = time.time()
        _dirty = True
    hook = on_first_record
    if first and hook is not None:
        hook()


def snapshot(only_if_changed: bool = True) -> list[rpb.MetricPoint] | None:
    """Every point of this process (copies), or None when nothing changed."""
    global _dirty
    with _lock:
        if only_if_changed and not _dirty:
            return None
        _dirty = False
        out = []
        for p in _points.values():
            c = rpb.MetricPoint()
            c.CopyFrom(p)
            out.append(c)
        return out


def recorded() -> bool:
    with _lock:
        return bool(_points)


class NodeMetrics:
    """A raylet's view: the latest snapshot of each process that reported."""

    MAX_PROCESSES = 10_000

    def __init__(self, node_address: str) -> None:
        self.node_address = node_address
        self._by_process: collections.OrderedDict[bytes, list[rpb.MetricPoint]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def report(self, worker_id: bytes, points: Sequence[rpb.MetricPoint]) -> None:
        with self._lock:
            self._by_process[worker_id] = list(points)
            self._by_process.move_to_end(worker_id)
            while len(self._by_process) > self.MAX_PROCESSES:
                self._by_process.popitem(last=False)

    def aggregate(self) -> list[rpb.MetricPoint]:
        """This node's points: counters and histograms summed over its
        processes, gauges the value written last."""
        with self._lock:
            snapshots = list(self._by_process.values())
        out: dict[tuple[str, Tags], rpb.MetricPoint] = {}
        for points in snapshots:
            for p in points:
                key = (p.name, tuple(sorted(p.tags.items())))
                agg = out.get(key)
                if agg is None:
                    agg = out[key] = rpb.MetricPoint()
                    agg.CopyFrom(p)
                    continue
                if p.kind != agg.kind:
                    continue  # the same name as another kind elsewhere: the first seen stands
                if p.kind == "counter":
                    agg.value += p.value
                elif p.kind == "gauge":
                    if p.time >= agg.time:
                        agg.value, agg.time = p.value, p.time
                elif list(p.boundaries) == list(agg.boundaries):
                    for i, n in enumerate(p.bucket_counts):
                        agg.bucket_counts[i] += n
                    agg.value += p.value
                    agg.count += p.count
        return list(out.values())

    # prometheus_client's collector protocol
    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        families: dict[str, Any] = {}
        for p in self.aggregate():
            labels = dict(p.tags, NodeAddress=self.node_address)
            keys = sorted(labels)
            name = "ray_" + p.name
            fam = families.get(name)
            if fam is None:
                cls = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily,
                       "histogram": HistogramMetricFamily}[p.kind]
                fam = families[name] = cls(name, p.description or p.name, labels=keys)
            values = [labels[k] for k in keys]
            if p.kind == "histogram":
                buckets, running = [], 0
                for bound, n in zip([*p.boundaries, float("inf")], p.bucket_counts, strict=True):
                    running += n
                    buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
                fam.add_metric(values, buckets, p.value)
            else:
                fam.add_metric(values, p.value)
        yield from families.values()


async def serve(node: NodeMetrics, host: str, port: int) -> tuple[asyncio.AbstractServer, int]:
    """Serve ``node``'s metrics in Prometheus's text format on ``host:port``
    (0: a free port; with TLS, HTTPS and client certificates required) from
    the running loop; (the server, its port). ``prometheus_client`` is
    imported at the first scrape, not at start: its ~16 ms were on the
    raylet's start-up path, so on every ``init``."""
    from jray._private import tls

    cfg = tls.current()
    registry: Any = None

    def text() -> bytes:
        nonlocal registry
        from prometheus_client import CollectorRegistry, generate_latest

        if registry is None:
            registry = CollectorRegistry(auto_describe=False)
            registry.register(node)
        return bytes(generate_latest(registry))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), SCRAPE_READ_SECONDS)
            method = head.split(b" ", 1)[0]
            if method not in (b"GET", b"HEAD"):
                status, body = b"405 Method Not Allowed", b"only GET and HEAD\n"
            else:
                status, body = b"200 OK", text()
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n")
            if method != b"HEAD":
                writer.write(body)
            await writer.drain()
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a client that went away, said nothing, or sent garbage
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, port, ssl=tls.server_context(cfg) if cfg else None)
    return server, int(server.sockets[0].getsockname()[1])


def prometheus_text(points: Sequence[rpb.MetricPoint], node_address: str) -> str:
    """``points`` (one node's) in Prometheus's text format."""
    from prometheus_client import CollectorRegistry, generate_latest

    view = NodeMetrics(node_address)
    view.report(b"all", points)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(view)  # type: ignore[arg-type]
    return generate_latest(registry).decode()
