"""Cluster configs: Ray's format, loaded from a YAML file or a dict,
validated with errors that name the key path, filled with Ray's defaults.

::

    cluster_name: demo
    max_workers: 4                 # worker nodes in all (the head not counted)
    idle_timeout_minutes: 5
    upscaling_speed: 1.0
    provider: {type: local}        # or slurm, with its own keys
    head_node_type: head
    available_node_types:
      head: {resources: {CPU: 2}, node_config: {}}
      cpu4: {resources: {CPU: 4}, min_workers: 0, max_workers: 4, node_config: {}}

The result is a :class:`ClusterConfig` (with the validated dict in ``raw``,
what the monitor process is handed). :func:`validate` raises
:class:`ConfigError` ("available_node_types.cpu4.resources.CPU must be a
non-negative number").
"""

from __future__ import annotations

import copy
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Ray's defaults (python/ray/autoscaler/ray-schema.json and _private/constants.py).
DEFAULT_MAX_WORKERS = 2
DEFAULT_IDLE_TIMEOUT_MINUTES = 5.0
DEFAULT_UPSCALING_SPEED = 1.0
DEFAULT_HEAD_TYPE = "head"

TOP_KEYS = {"cluster_name", "max_workers", "idle_timeout_minutes", "upscaling_speed", "provider",
            "head_node_type", "available_node_types",
            # Accepted and ignored, so Ray configs load (they configure Ray's SSH-based launcher).
            "auth", "docker", "file_mounts", "cluster_synced_files", "file_mounts_sync_continuously",
            "rsync_exclude", "rsync_filter", "initialization_commands", "setup_commands",
            "head_setup_commands", "worker_setup_commands", "head_start_ray_commands",
            "worker_start_ray_commands", "no_restart"}
NODE_TYPE_KEYS = {"resources", "min_workers", "max_workers", "node_config", "labels",
                  "worker_setup_commands", "docker"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ConfigError(ValueError):
    """A cluster config that cannot be used; the message names the key."""


@dataclass
class NodeType:
    name: str
    resources: dict[str, float]
    min_workers: int = 0
    max_workers: int = 0
    node_config: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class ClusterConfig:
    cluster_name: str
    max_workers: int
    idle_timeout_minutes: float
    upscaling_speed: float
    provider: dict[str, Any]
    head_node_type: str
    node_types: dict[str, NodeType]
    raw: dict[str, Any]

    @property
    def worker_types(self) -> dict[str, NodeType]:
        """The node types the autoscaler launches (the head's type too, when
        its max_workers allows workers of it)."""
        return {k: t for k, t in self.node_types.items() if k != self.head_node_type or t.max_workers > 0}


def load(config: str | os.PathLike[str] | Mapping[str, Any]) -> ClusterConfig:
    """A validated config from a YAML file path or a dict."""
    if isinstance(config, Mapping):
        return validate(config)
    path = os.fspath(config)
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read the cluster config {path}: {e.strerror}") from None
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: a cluster config is a mapping of keys (cluster_name, provider, ...)")
    return validate(data)


def _number(value: Any, path: str, *, integer: bool = False, minimum: float = 0.0) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if ok and integer and not float(value).is_integer():
        ok = False
    if not ok or value < minimum:
        what = "integer" if integer else "number"
        kind = "a non-negative" if minimum == 0 else "a positive"
        raise ConfigError(f"{path} must be {kind} {what}, got {value!r}")
    return float(value)


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path} must be a mapping, got {type(value).__name__}")
    return value


def _unknown(keys: Any, allowed: set[str], path: str) -> None:
    extra = sorted(str(k) for k in keys if k not in allowed)
    if extra:
        where = f"{path}." if path else ""
        raise ConfigError(f"{where}{extra[0]} is not a known key (known: {', '.join(sorted(allowed))})")


def validate(data: Mapping[str, Any]) -> ClusterConfig:
    """Check ``data`` and fill Ray's defaults; :class:`ConfigError` names the
    first bad key."""
    data = _mapping(data, "the cluster config")
    _unknown(data.keys(), TOP_KEYS, "")
    raw: dict[str, Any] = copy.deepcopy(dict(data))
    name = raw.get("cluster_name", "default")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"cluster_name must be a name of letters, digits, '-', '_' or '.', got {name!r}")
    max_workers = int(_number(raw.get("max_workers", DEFAULT_MAX_WORKERS), "max_workers", integer=True))
    idle = _number(raw.get("idle_timeout_minutes", DEFAULT_IDLE_TIMEOUT_MINUTES), "idle_timeout_minutes")
    speed = _number(raw.get("upscaling_speed", DEFAULT_UPSCALING_SPEED), "upscaling_speed")
    if speed == 0:
        raise ConfigError("upscaling_speed must be a positive number, got 0")
    if "provider" not in raw:
        raise ConfigError("provider is required (e.g. provider: {type: local})")
    provider = dict(_mapping(raw["provider"], "provider"))
    ptype = provider.get("type")
    from jray.autoscaler._private.providers import PROVIDERS

    if ptype not in PROVIDERS:
        raise ConfigError(f"provider.type must be one of {', '.join(sorted(PROVIDERS))}, got {ptype!r}")
    types_raw = raw.get("available_node_types")
    head_type = raw.get("head_node_type")
    if types_raw is None:
        # Ray's legacy configs have no node types: one head, workers of one kind.
        types_raw = {DEFAULT_HEAD_TYPE: {"resources": {}, "max_workers": 0},
                     "worker": {"resources": {"CPU": 1}, "min_workers": 0, "max_workers": max_workers}}
        head_type = head_type or DEFAULT_HEAD_TYPE
    types_raw = _mapping(types_raw, "available_node_types")
    if not types_raw:
        raise ConfigError("available_node_types must name at least one node type")
    if head_type is None:
        if DEFAULT_HEAD_TYPE in types_raw:
            head_type = DEFAULT_HEAD_TYPE
        else:
            raise ConfigError("head_node_type is required: the key of available_node_types the head node is "
                              f"(one of {', '.join(map(str, types_raw))})")
    if not isinstance(head_type, str) or head_type not in types_raw:
        raise ConfigError(f"head_node_type must be a key of available_node_types "
                          f"({', '.join(map(str, types_raw))}), got {head_type!r}")
    node_types: dict[str, NodeType] = {}
    for tname, t in types_raw.items():
        path = f"available_node_types.{tname}"
        if not isinstance(tname, str) or not _NAME.match(tname):
            raise ConfigError(f"available_node_types: {tname!r} is not a valid node type name")
        t = _mapping(t, path)
        _unknown(t.keys(), NODE_TYPE_KEYS, path)
        res_raw = _mapping(t.get("resources", {}), f"{path}.resources")
        resources = {}
        for rname, amount in res_raw.items():
            if not isinstance(rname, str) or not rname:
                raise ConfigError(f"{path}.resources: {rname!r} is not a resource name")
            resources[rname] = _number(amount, f"{path}.resources.{rname}")
        if tname != head_type and not any(v > 0 for v in resources.values()):
            raise ConfigError(f"{path}.resources must give the node's resources (e.g. {{CPU: 4}}): the "
                              "autoscaler chooses node types by them")
        lo = int(_number(t.get("min_workers", 0), f"{path}.min_workers", integer=True))
        hi_default = 0 if tname == head_type else max_workers
        hi = int(_number(t.get("max_workers", hi_default), f"{path}.max_workers", integer=True))
        if lo > hi:
            raise ConfigError(f"{path}.min_workers ({lo}) is more than {path}.max_workers ({hi})")
        node_config = dict(_mapping(t.get("node_config", {}) or {}, f"{path}.node_config"))
        labels_raw = _mapping(t.get("labels", {}) or {}, f"{path}.labels")
        labels = {}
        for k, v in labels_raw.items():
            if not isinstance(v, str):
                raise ConfigError(f"{path}.labels.{k} must be a string, got {v!r}")
            labels[str(k)] = v
        node_types[tname] = NodeType(tname, resources, lo, hi, node_config, labels)
    if ptype == "slurm":  # its node_config keys are known: name a bad one now, not at the first launch
        from jray.autoscaler._private.slurm import check_node_config
        from jray.autoscaler.node_provider import NodeLaunchError

        for tname, nt in node_types.items():
            if tname != head_type:
                try:
                    check_node_config(nt.node_config)
                except NodeLaunchError as e:
                    raise ConfigError(f"available_node_types.{tname}.{e}") from None
    floor = sum(t.min_workers for n, t in node_types.items() if n != head_type)
    if floor > max_workers:
        raise ConfigError(f"max_workers ({max_workers}) is less than the sum of the node types' min_workers "
                          f"({floor})")
    raw.update(cluster_name=name, max_workers=max_workers, idle_timeout_minutes=idle, upscaling_speed=speed,
               provider=provider, head_node_type=head_type,
               available_node_types={k: {"resources": t.resources, "min_workers": t.min_workers,
                                         "max_workers": t.max_workers, "node_config": t.node_config,
                                         "labels": t.labels} for k, t in node_types.items()})
    return ClusterConfig(name, max_workers, idle, speed, provider, head_type, node_types, raw)
