"""Building TaskSpecs on the caller side (shared by tasks and actors)."""

from __future__ import annotations

import hashlib
from typing import Any

from jray._private import config, serialization
from jray._private.ids import new_task_id
from jray._private.object_ref import ObjectRef
from jray._private.protocol import common_pb2 as cpb
from jray._private.runtime_env.resolve import effective_json
from jray._private.scheduling import for_task, to_proto
from jray._private.worker.core_worker import CoreWorker, _owner_proto, current_task

# Bumped before each notebook cell runs (``frontend.new_code_generation``): a
# function pickled by value captures the helpers it calls, and a later cell
# may redefine them.
generation = 0


def export_callable(worker: CoreWorker, obj: Any, cache: dict[str, Any]) -> cpb.FunctionDescriptor:
    """Pickle ``obj`` once per process (and notebook cell) and publish it in the GCS KV."""
    desc = cache.get("descriptor")
    if desc is None or cache.get("worker") is not worker or cache.get("generation") != generation:
        pickled = serialization.dumps_function(obj)
        digest = hashlib.sha1(pickled).hexdigest()[:20]
        module = getattr(obj, "__module__", "") or ""
        qualname = getattr(obj, "__qualname__", getattr(obj, "__name__", "f"))
        key = f"{module}.{qualname}:{digest}"
        worker.export(key, pickled)
        desc = cpb.FunctionDescriptor(key=key, module=module, qualname=qualname)
        cache["descriptor"] = desc
        cache["worker"] = worker
        cache["generation"] = generation
    return desc  # type: ignore[no-any-return]


def build_args(worker: CoreWorker, args: tuple, kwargs: dict, fn_name: str,
               param_names: list[str] | None = None,
               keep: list[Any] | None = None) -> tuple[list[cpb.TaskArg], list[tuple[bytes, Any]]]:
    """TaskArgs for a call, and the (object id, owner) of every ref they carry.

    Large values are put in the store here; their ObjectRefs go into ``keep``,
    which the caller must hold until the task is submitted (the submitter
    then counts the refs as held by the pending task), else the new object
    could be freed in between."""
    out: list[cpb.TaskArg] = []
    refs: list[tuple[bytes, Any]] = []
    items: list[tuple[str, Any, str]] = []
    for i, a in enumerate(args):
        label = param_names[i] if param_names and i < len(param_names) else f"#{i}"
        items.append(("", a, label))
    for k, v in kwargs.items():
        items.append((k, v, k))
    for name, value, label in items:
        if isinstance(value, ObjectRef):
            owner = value.owner_address()
            out.append(cpb.TaskArg(name=name, ref=cpb.ObjectRefInfo(object_id=value.binary(), owner=_owner_proto(owner))))
            refs.append((value.binary(), owner))
            continue
        try:
            ser = serialization.serialize(value)
        except serialization.SerializationError as e:
            raise TypeError(f"Could not serialize the argument {label!r} of {fn_name}: {e}") from None
        if ser.total_size > config.MAX_INLINE_BYTES and worker.arena is not None:
            ref = worker.put_serialized(ser)
            if keep is not None:
                keep.append(ref)
            out.append(cpb.TaskArg(name=name, ref=cpb.ObjectRefInfo(object_id=ref.binary(), owner=_owner_proto(ref.owner_address()))))
            refs.append((ref.binary(), ref.owner_address()))
            continue
        arg = cpb.TaskArg(name=name, data=ser.to_bytes())
        for r in ser.nested_refs:
            arg.nested_refs.append(cpb.ObjectRefInfo(object_id=r.binary(), owner=_owner_proto(r.owner_address())))
            refs.append((r.binary(), r.owner_address()))
        out.append(arg)
    return out, refs


def base_spec(worker: CoreWorker, *, name: str, task_type: int, num_returns: int, streaming: bool,
              resources: dict[str, float], opts: dict[str, Any]) -> cpb.TaskSpec:
    """A spec with what every task, actor creation and actor call carries:
    ids, caller, parent, scheduling, namespace, runtime env."""
    parent = current_task.get()
    spec = cpb.TaskSpec(
        task_id=new_task_id(), job_id=worker.job_id, name=name, type=task_type,  # type: ignore[arg-type]
        num_returns=num_returns, streaming=streaming, resources=resources, caller=worker.address,
        scheduling=to_proto(None) if task_type == cpb.ACTOR_TASK else for_task(opts, resources, parent),
        namespace=worker.current_namespace(),
    )
    if parent is not None:
        spec.parent_task_id = parent.task_id
        spec.root_task_id = parent.root_task_id or parent.task_id
        spec.driver.CopyFrom(parent.driver)
        spec.job_id = parent.job_id
    else:
        spec.driver.CopyFrom(worker.address)
        root = getattr(worker, "root_task_override", None)
        if root:
            spec.root_task_id = root
    if task_type != cpb.ACTOR_TASK:  # an actor's calls run in the actor's worker, in its env
        # The parent's env (an actor call's: the actor worker's, which is
        # the worker's default); at a driver's top level, the job's.
        parent_env = parent.runtime_env if parent is not None and parent.type != cpb.ACTOR_TASK else None
        env = effective_json(worker, opts.get("runtime_env"), parent_env)
        if env:
            spec.runtime_env = env
    return spec
