"""``ray.util.metrics``: application metrics from tasks, actors and drivers,
with Ray's names and checks.

::

    from jray.util.metrics import Counter, Gauge, Histogram

    requests = Counter("requests", description="requests served", tag_keys=("route",))
    requests.set_default_tags({"route": "/"})
    requests.inc()
    latency = Histogram("latency_s", boundaries=[0.01, 0.1, 1.0], tag_keys=("route",))
    latency.observe(0.05, tags={"route": "/"})
    Gauge("queue_depth").set(12)

Each process keeps its values (``jray._private.metrics``) and reports them
to its node's raylet every second; each node serves its processes' metrics
in Prometheus's text format (``ray_<name>``, as Ray names them, with a
``NodeAddress`` label) on its metrics port (``jray.nodes()[i]
["MetricsExportPort"]``), and ``jray.util.state.list_metrics()`` / ``jray
metrics`` gather every node's through the GCS's node list. Counters are
summed over a node's processes, histograms bucket by bucket; a gauge shows
the value set last.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from jray._private import metrics as _registry

__all__ = ["Counter", "Gauge", "Histogram", "Metric"]


class Metric:
    """What every metric has: a name, a description, its tag keys and defaults."""

    _kind = ""

    def __init__(self, name: str, description: str = "", tag_keys: tuple[str, ...] | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("Empty name is not allowed. Please provide a metric name.")
        if not all(c.isalnum() or c in "_:" for c in name) or name[0].isdigit():
            raise ValueError(f"Invalid metric name {name!r}: use letters, digits, '_' and ':' (Prometheus's rule), "
                             "not starting with a digit.")
        if tag_keys is None:
            tag_keys = ()
        if not isinstance(tag_keys, tuple):
            raise TypeError(f"tag_keys should be a tuple type, got: {type(tag_keys)}")
        for key in tag_keys:
            if not isinstance(key, str):
                raise TypeError(f"Tag keys must be str, got {type(key)}.")
        self._name = name
        self._description = description
        self._tag_keys = tag_keys
        self._default_tags: dict[str, str] = {}

    @property
    def info(self) -> dict[str, Any]:
        """The metric's name, description, tag keys and default tags (as Ray's)."""
        return {"name": self._name, "description": self._description, "tag_keys": self._tag_keys,
                "default_tags": dict(self._default_tags)}

    def set_default_tags(self, default_tags: dict[str, str]) -> Metric:
        """Tags used when a record names none (or not all) of them."""
        for key, value in default_tags.items():
            if key not in self._tag_keys:
                raise ValueError(f"Unrecognized tag key {key!r}: this metric's tag keys are {self._tag_keys}.")
            if not isinstance(value, str):
                raise TypeError(f"Tag values must be str, got {type(value)} for {key!r}.")
        self._default_tags = dict(default_tags)
        return self

    def _tags(self, tags: dict[str, str] | None) -> tuple[tuple[str, str], ...]:
        merged = dict(self._default_tags)
        for key, value in (tags or {}).items():
            if key not in self._tag_keys:
                raise ValueError(f"Unrecognized tag key {key!r}: this metric's tag keys are {self._tag_keys}.")
            if not isinstance(value, str):
                raise TypeError(f"Tag values must be str, got {type(value)} for {key!r}.")
            merged[key] = value
        missing = [k for k in self._tag_keys if k not in merged]
        if missing:
            raise ValueError(f"Missing value for tag key(s) {', '.join(missing)} of metric {self._name!r}: pass "
                             "tags={...} or set_default_tags.")
        return tuple(sorted(merged.items()))

    @staticmethod
    def _number(value: Any, what: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{what} must be a number, got {type(value).__name__}")
        v = float(value)
        if math.isnan(v):
            raise ValueError(f"{what} must not be NaN")
        return v


class Counter(Metric):
    """A value that only goes up (requests served, bytes sent)."""

    _kind = "counter"

    def inc(self, value: int | float = 1.0, tags: dict[str, str] | None = None) -> None:
        v = self._number(value, "The value of a counter increment")
        if v <= 0:
            raise ValueError(f"value must be > 0, got {value}")
        _registry.record(self._kind, self._name, self._description, self._tags(tags), v)


class Gauge(Metric):
    """A value that goes up and down (queue depth, memory in use)."""

    _kind = "gauge"

    def set(self, value: int | float | None, tags: dict[str, str] | None = None) -> None:
        if value is None:
            return
        _registry.record(self._kind, self._name, self._description, self._tags(tags),
                         self._number(value, "The value of a gauge"))


class Histogram(Metric):
    """A distribution of observed values over fixed bucket ``boundaries``."""

    _kind = "histogram"

    def __init__(self, name: str, description: str = "", boundaries: Sequence[float] | None = None,
                 tag_keys: tuple[str, ...] | None = None) -> None:
        super().__init__(name, description, tag_keys)
        if not boundaries:
            raise ValueError("boundaries must be a non-empty list of increasing positive numbers")
        b = [float(x) for x in boundaries]
        if any(x <= 0 for x in b):
            raise ValueError(f"Invalid `boundaries` argument at index 0, {b}. Use positive values for the "
                             "argument `boundaries`.")
        if any(b[i] >= b[i + 1] for i in range(len(b) - 1)):
            raise ValueError(f"boundaries must be strictly increasing, got {b}")
        self._boundaries = b

    @property
    def info(self) -> dict[str, Any]:
        return {**super().info, "boundaries": list(self._boundaries)}

    def observe(self, value: int | float, tags: dict[str, str] | None = None) -> None:
        _registry.record(self._kind, self._name, self._description, self._tags(tags),
                         self._number(value, "The value of a histogram observation"), self._boundaries)
