"""Resource demands and the one test of whether a demand fits.

A demand maps resource names to amounts (``{"CPU": 1, "GPU": 0.5}``); what a
node, a bundle or a cluster view has is the same kind of mapping (a dict, or
a protobuf map field). Every placement decision in jray (the raylet's
leases, its bundles, the GCS's placement groups and actors, the owner's
"no node can ever run this" warning) asks the same question through
:func:`fits`, so they agree on the edge cases: zero amounts ask for nothing,
a missing resource is zero, and float sums get a little slack.

Plain logic: no gRPC, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

# Slack for float sums (three tasks of 0.1 CPU on a 0.3 CPU node fit).
EPS = 1e-9


def fits(demand: Mapping[str, float], have: Mapping[str, float]) -> bool:
    """Whether ``have`` holds every positive amount in ``demand``.

    Amounts of zero or less ask for nothing (a ``{"CPU": 0}`` demand fits
    anywhere, even on a node whose CPU is lent below zero); a resource
    ``have`` lacks counts as zero.
    """
    return all(have.get(k, 0.0) + EPS >= v for k, v in demand.items() if v > 0)
