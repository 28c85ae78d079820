"""ObjectRef: a future for an immutable object in the cluster, and
ObjectRefGenerator: the refs a streaming generator task yields.

These are the engine's own types (in Ray, ObjectRef lives in the core, not in
the public layer): the CoreWorker creates, counts and resolves them. The
public names are ``jray.ObjectRef`` / ``jray.object_ref.ObjectRef``, which
re-export these classes; their ``__module__`` says ``jray.object_ref`` so
that ``type(ref)`` reads as before and a class pickled by reference names
the public module.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import types
from typing import Any

from jray._private import serialization
from jray._private.ids import TaskID, task_id_of
from jray._private.worker import global_state


class ObjectRef:
    """A reference to an object owned by the process that created it.

    Holding an ObjectRef keeps the object alive; dropping the last one
    anywhere in the cluster lets its owner free it.
    """

    __module__ = "jray.object_ref"
    def __class_getitem__(cls, item: Any) -> types.GenericAlias:  # ObjectRef[int] in type hints, as Ray
        return types.GenericAlias(cls, item)

    __slots__ = ("_id", "_owner", "_counted", "__weakref__")

    def __init__(self, object_id: bytes, owner: tuple[str, bytes] | None = None, *, _count: bool = True) -> None:
        self._id = object_id
        self._owner = owner
        self._counted = False
        if _count:
            w = global_state.worker
            if w is not None:
                w.refs.incr(object_id, owner)
                self._counted = True

    def binary(self) -> bytes:
        return self._id

    def hex(self) -> str:
        return self._id.hex()

    def task_id(self) -> Any:
        return TaskID(task_id_of(self._id))

    def owner_address(self) -> tuple[str, bytes] | None:
        return self._owner

    def __repr__(self) -> str:
        return f"ObjectRef({self.hex()})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other._id == self._id

    def __hash__(self) -> int:
        return hash(self._id)

    def __del__(self) -> None:
        if self._counted:
            w = global_state.worker
            if w is not None:
                try:
                    w.refs.decr_deferred(self._id)
                except Exception:  # interpreter shutdown
                    pass

    def __reduce__(self) -> Any:
        serialization.note_contained_ref(self)
        return (_rebuild_ref, (self._id, self._owner))

    # asyncio / concurrent.futures integration (Ray's ref.future(), await ref)
    def future(self) -> concurrent.futures.Future:
        w = global_state.require_worker()
        return w.ref_future(self)

    def __await__(self) -> Any:
        return asyncio.wrap_future(self.future()).__await__()

    def as_future(self) -> asyncio.Future:
        return asyncio.wrap_future(self.future())


def _rebuild_ref(object_id: bytes, owner: tuple[str, bytes] | None) -> ObjectRef:
    """Unpickle a ref (its ``__reduce__``): the receiving process borrows it."""
    w = global_state.worker
    if w is not None:
        w.note_deserialized_ref(object_id, owner)
    return ObjectRef(object_id, owner)


# Pickles name the public module, byte for byte as before the move (and a
# shorter name on the wire); ``jray.object_ref`` re-exports this function.
_rebuild_ref.__module__ = "jray.object_ref"


class ObjectRefGenerator:
    """Iterates over the refs of a streaming generator task as they arrive.

    ``next(gen)`` blocks until the task yields its next value and returns
    its ObjectRef; ``StopIteration`` after the last one. An exception raised
    in the task after some yields is raised by ``get`` on the next ref.
    Also an async iterator (``async for ref in gen``).
    """

    __module__ = "jray.object_ref"

    def __init__(self, task_id: bytes, owner: tuple[str, bytes], generator_ref: ObjectRef) -> None:
        self._task_id = task_id
        self._owner = owner
        self._index = 0
        self._generator_ref = generator_ref  # completes when the task ends

    def __iter__(self) -> ObjectRefGenerator:
        return self

    def __next__(self) -> ObjectRef:
        return self._next_sync(None)

    def _next_sync(self, timeout: float | None) -> ObjectRef:
        w = global_state.require_worker()
        ref = w.next_generator_item(self._task_id, self._index + 1, timeout)
        if ref is None:
            raise StopIteration
        self._index += 1
        return ref

    def __aiter__(self) -> ObjectRefGenerator:
        return self

    async def __anext__(self) -> ObjectRef:
        w = global_state.require_worker()
        fut = w.next_generator_item_future(self._task_id, self._index + 1)
        ref = await asyncio.wrap_future(fut)
        if ref is None:
            raise StopAsyncIteration
        self._index += 1
        return ref

    def completed(self) -> ObjectRef:
        return self._generator_ref

    def _next_ready_future(self) -> concurrent.futures.Future:
        """Done once ``next(self)`` would not block (the next item exists or
        the generator ended); what ``jray.wait`` waits on for a generator."""
        w = global_state.require_worker()
        return w.generator_item_ready_future(self._task_id, self._index + 1)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"ObjectRefGenerator(task={self._task_id.hex()})"


class DynamicObjectRefGenerator:
    """The value of a ``num_returns="dynamic"`` task (Ray's name): the refs of
    the values it yielded, in order. ``get`` on the task's one ref gives
    this; iterate it and ``get`` each ref for the values."""

    __module__ = "jray.object_ref"

    def __init__(self, refs: list[ObjectRef]) -> None:
        self._refs = list(refs)

    def __iter__(self) -> Any:
        return iter(self._refs)

    def __len__(self) -> int:
        return len(self._refs)

    def __repr__(self) -> str:
        return f"DynamicObjectRefGenerator({len(self._refs)} refs)"
