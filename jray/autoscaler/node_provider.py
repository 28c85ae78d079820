"""The node-provider interface: how the autoscaler gets and gives back machines.

A provider knows one kind of infrastructure (processes on this machine,
SLURM jobs, one day Kubernetes pods) and nothing about demand: the
autoscaler (:mod:`jray.autoscaler._private.autoscaler`) decides *how many*
nodes of *which type*; the provider makes them exist and go away.

Every node a provider starts runs ``jray start --address GCS --block`` with
the label ``jray.io/provider-node-id=<its provider id>`` (``--labels``), so
the autoscaler can pair the provider's node with the raylet that joined the
GCS (``NodeInfo.labels``). A provider node whose raylet has not joined yet is
*launching*; one that never joins within the autoscaler's timeout is
terminated.

Tags are a flat ``str -> str`` map kept by the provider with each node (the
``TAG_*`` keys below, as Ray's ``ray-node-kind`` etc.). A provider must be
able to list its nodes again after the autoscaler restarts (from the
infrastructure itself: SLURM job names/comments, a state file for local
processes), filtered by ``cluster_name``.

To write a new provider (e.g. Kubernetes): subclass :class:`NodeProvider`,
implement the five abstract methods, and register the class in
:data:`jray.autoscaler._private.providers.PROVIDERS` under the
``provider: {type: ...}`` name users put in their cluster config. The
methods are called from one autoscaler thread; they may block (sbatch,
kubectl) but should return within seconds.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

# Tag keys (Ray spells them ray-node-kind, ray-user-node-type, ...).
TAG_NODE_KIND = "jray-node-kind"            # "head" | "worker"
TAG_USER_NODE_TYPE = "jray-user-node-type"  # a key of available_node_types
TAG_NODE_STATUS = "jray-node-status"        # "launching" | "up" | "terminating" | "failed"
TAG_CLUSTER_NAME = "jray-cluster-name"

NODE_KIND_HEAD = "head"
NODE_KIND_WORKER = "worker"

STATUS_LAUNCHING = "launching"
STATUS_UP = "up"
STATUS_TERMINATING = "terminating"
STATUS_FAILED = "failed"

# The raylet label that pairs a GCS node with a provider node.
PROVIDER_NODE_ID_LABEL = "jray.io/provider-node-id"


class NodeLaunchError(RuntimeError):
    """A node could not be started; the message is the infrastructure's own
    (sbatch's stderr, a failed exec). The autoscaler retries with back-off."""


class NodeProvider(abc.ABC):
    """Creates, lists and terminates the nodes of one cluster.

    ``provider_config`` is the config's ``provider`` section (``type`` and
    provider keys); ``cluster_name`` scopes every call: a provider never
    lists or touches another cluster's nodes.
    """

    def __init__(self, provider_config: Mapping[str, Any], cluster_name: str) -> None:
        self.provider_config = dict(provider_config)
        self.cluster_name = cluster_name

    @abc.abstractmethod
    def non_terminated_nodes(self, tag_filters: Mapping[str, str]) -> list[str]:
        """Provider node ids of this cluster's nodes that are starting or
        running (not terminated), whose tags include every ``tag_filters``
        item."""

    @abc.abstractmethod
    def node_tags(self, node_id: str) -> dict[str, str]:
        """The tags of a node (a copy)."""

    @abc.abstractmethod
    def create_node(self, node_config: Mapping[str, Any], tags: Mapping[str, str], count: int,
                    *, gcs_address: str, resources: Mapping[str, float]) -> list[str]:
        """Start ``count`` nodes joining the cluster at ``gcs_address``, each
        offering ``resources`` (the node type's ``resources``: CPU, GPU,
        memory, custom), configured by the node type's ``node_config``.
        Returns their provider ids. Raises :class:`NodeLaunchError` with the
        infrastructure's message when they cannot be started."""

    @abc.abstractmethod
    def terminate_node(self, node_id: str) -> None:
        """Stop a node (its raylet stops; the SLURM job is cancelled; ...).
        Idempotent: terminating a gone node is not an error."""

    @abc.abstractmethod
    def set_node_tags(self, node_id: str, tags: Mapping[str, str]) -> None:
        """Merge ``tags`` into the node's tags."""

    # -- optional -------------------------------------------------------

    def describe_node(self, node_id: str) -> str:
        """A short human description ("slurm job 1234 on node c3"), for
        ``jray status`` and errors."""
        return node_id

    def terminate_nodes(self, node_ids: list[str]) -> None:
        for n in node_ids:
            self.terminate_node(n)

    def close(self) -> None:
        """Release what the provider holds (threads, files); nodes stay."""
        return None
