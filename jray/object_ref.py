"""ObjectRef: a future for an immutable object in the cluster, and
ObjectRefGenerator: the refs a streaming generator task yields.

The classes are the engine's (``jray._private.object_ref``: the CoreWorker
creates and counts them); this is their public home, as ``jray.ObjectRef``.
``_rebuild_ref`` is importable here because pickled refs name it here.
"""

from __future__ import annotations

from jray._private.object_ref import DynamicObjectRefGenerator, ObjectRef, ObjectRefGenerator
from jray._private.object_ref import _rebuild_ref as _rebuild_ref

__all__ = ["DynamicObjectRefGenerator", "ObjectRef", "ObjectRefGenerator"]
