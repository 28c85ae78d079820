"""Ray's name for the multi-node test cluster: see :mod:`jray.testing`."""

from jray.testing import Cluster

__all__ = ["Cluster"]
