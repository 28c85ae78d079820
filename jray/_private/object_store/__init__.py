"""The node's shared-memory object store, as plain objects (no gRPC here).

How the pieces fit:

* :class:`Arena` is one sparse file under ``/dev/shm`` per node. The raylet
  creates it; the driver and workers on the node attach it and read/write
  object bytes in place, so a same-node ``get`` copies nothing.
* :class:`Allocator` does the arena's bookkeeping: 64-byte aligned ranges
  (page-aligned from 1 MiB), first-fit at the lowest address so warm pages
  are reused before fresh ones.
* :class:`LocalObjectStore` is the raylet's state: which object lives at
  which offset, sealed or not, primary or secondary copy, pinned by whom,
  spilled where. It evicts secondary copies and spills primary ones when
  space runs out, and restores spilled objects on ``get``.

Pins keep objects alive while views live: a client's ``get`` pins the object
in the raylet's store; the client wraps the returned range with
``Arena.read_view(offset, size, on_release=...)``, whose callback fires once
the view and every array built on it are garbage collected; the client then
sends ``release`` so the raylet may evict, spill or free the object.
"""

from jray._private.object_store.allocator import Allocator
from jray._private.object_store.arena import Arena
from jray._private.object_store.store import LocalObjectStore, ObjectExistsError

__all__ = ["Allocator", "Arena", "LocalObjectStore", "ObjectExistsError"]
