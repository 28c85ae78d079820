"""Ray's ``ray._raylet`` names that programs import (``ObjectRef``,
``ObjectRefGenerator``, ``DynamicObjectRefGenerator``, the id types)."""

from __future__ import annotations

from jray._private.ids import ActorID, JobID, NodeID, TaskID, WorkerID
from jray._private.object_ref import DynamicObjectRefGenerator, ObjectRef, ObjectRefGenerator

# Ray's name for the streaming generator type.
StreamingObjectRefGenerator = ObjectRefGenerator

__all__ = ["ActorID", "DynamicObjectRefGenerator", "JobID", "NodeID", "ObjectRef", "ObjectRefGenerator",
           "StreamingObjectRefGenerator", "TaskID", "WorkerID"]
