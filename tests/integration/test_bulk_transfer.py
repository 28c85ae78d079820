"""Objects between two nodes of one cluster over the bulk path
(``jray/_private/raylet/bulk.py``): plain TCP from the sender's store memory
into the receiver's, gRPC only as the fallback. The cluster is
``jray.testing.Cluster`` on this machine (the driver's node is the head, the
object is made on the second node and pulled into the head's store)."""

from __future__ import annotations

import numpy as np
import pytest

import jray

MB = 1024 * 1024


def _stats():
    from jray._private.protocol import raylet_pb2 as rpb
    from jray._private.worker import global_state

    w = global_state.worker

    async def call():
        return await w.raylet.GetNodeStats(rpb.GetNodeStatsRequest(include_objects=True))

    return w.run_sync(call())


@pytest.mark.timeout(240)
def test_a_300mb_array_moves_between_nodes_over_the_bulk_path_intact():
    from jray.testing import Cluster

    jray.shutdown()
    with Cluster(head_node_args={"num_cpus": 1, "object_store_memory": 768 * MB}) as c:
        c.add_node(num_cpus=1, resources={"far": 1}, object_store_memory=768 * MB)
        c.connect()
        n = 300 * MB // 8

        @jray.remote(resources={"far": 1})
        def produce():
            rng = np.random.default_rng(19)
            return rng.integers(0, 2**63, size=n, dtype=np.int64)

        @jray.remote(resources={"far": 1})
        def digest(a):
            import hashlib
            return hashlib.sha256(a.tobytes()).hexdigest()

        before = _stats()
        ref = produce.remote()
        want = jray.get(digest.remote(ref), timeout=120)  # on the far node: no transfer
        arr = jray.get(ref, timeout=120)  # pulled into the head's store
        import hashlib
        assert arr.nbytes == 300 * MB
        assert hashlib.sha256(arr.tobytes()).hexdigest() == want
        after = _stats()
        assert after.num_pulls == before.num_pulls + 1
        assert after.num_bulk_pulls == before.num_bulk_pulls + 1, after
        assert after.num_bulk_fallbacks == before.num_bulk_fallbacks
        # the copy here is sealed, and nothing of the transfer stays pinned on it but our get
        mine = [o for o in after.objects if o.object_id == ref.binary()]
        assert mine and mine[0].sealed and mine[0].size >= 300 * MB
        del arr, ref
    jray.shutdown()
