"""The node providers by the ``provider: {type: ...}`` name of a cluster
config. An entry is the class, or ``"module:Class"`` imported on first use
(the SLURM provider's module is only needed where SLURM is used).

A new provider (a Kubernetes one, say) subclasses
:class:`jray.autoscaler.node_provider.NodeProvider` and is registered here.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from jray.autoscaler._private.local import LocalNodeProvider
from jray.autoscaler.node_provider import NodeProvider

PROVIDERS: dict[str, type[NodeProvider] | str] = {
    "local": LocalNodeProvider,
    "slurm": "jray.autoscaler._private.slurm:SlurmNodeProvider",
}


def provider_class(name: str) -> type[NodeProvider]:
    """The provider class registered as ``name`` (imported when lazy)."""
    try:
        entry = PROVIDERS[name]
    except KeyError:
        raise ValueError(f"unknown node provider {name!r} (known: {', '.join(sorted(PROVIDERS))})") from None
    if isinstance(entry, str):
        module, _, cls = entry.partition(":")
        entry = getattr(importlib.import_module(module), cls)
        assert isinstance(entry, type) and issubclass(entry, NodeProvider), entry
        PROVIDERS[name] = entry
    return entry


def make_provider(provider_config: Mapping[str, Any], cluster_name: str) -> NodeProvider:
    return provider_class(str(provider_config["type"]))(provider_config, cluster_name)
