"""Submitting work from this process: tasks, actor creation, actor calls, cancel.

The public classes (``RemoteFunction``, ``ActorClass``, ``ActorHandle``)
validate options and keep Ray's user-facing behaviour; everything that
builds a ``TaskSpec``, registers an actor with the GCS or talks to the
submitters is here, as plain functions they call.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jray._private import gcs_client, hooks, task_builder
from jray._private import options as _opts
from jray._private.ids import new_task_id, random_id, task_id_of
from jray._private.object_ref import ObjectRef, ObjectRefGenerator
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import gcs_pb2 as gpb
from jray._private.worker import global_state
from jray._private.worker.core_worker import CoreWorker, current_task


def _returns(opts: dict[str, Any], default_streaming: bool) -> tuple[int, bool]:
    """(num_returns of the spec, streaming) from the ``num_returns`` option."""
    nr = opts.get("num_returns")
    streaming = nr in ("streaming", "dynamic") or (nr is None and default_streaming)
    return (1 if streaming else (1 if nr is None else int(nr))), streaming


def _refs_out(w: CoreWorker, spec: cpb.TaskSpec, return_ids: Sequence[bytes], num_returns: int,
              streaming: bool) -> Any:
    """What ``.remote()`` returns: a ref, a list of refs, None, or a generator."""
    owner = w.owner_key
    if spec.dynamic_returns:  # one ref, whose value is a DynamicObjectRefGenerator
        return ObjectRef(return_ids[0], owner)
    if streaming:
        return ObjectRefGenerator(spec.task_id, owner, ObjectRef(return_ids[0], owner))
    out = [ObjectRef(oid, owner) for oid in return_ids]
    if num_returns == 1:
        return out[0]
    if num_returns == 0:
        return None
    return out


# -- tasks --------------------------------------------------------------------------------
# Options whose spec fields are worked out anew for every call (a runtime
# env's package, a placement group's check): no spec template with these.
_UNTEMPLATED = frozenset(("runtime_env", "scheduling_strategy", "placement_group", "placement_group_bundle_index",
                          "placement_group_capture_child_tasks"))


def _driver_key(w: CoreWorker) -> tuple:
    """What a top-level spec template depends on in the driver's own state."""
    return (id(w), w.port, w.job_id, w.root_task_override, w.namespace)


def submit_task(function: Any, cache: dict[str, Any], name: str, param_names: list[str], is_generator: bool,
                args: tuple, kwargs: dict, opts: dict[str, Any]) -> Any:
    """Submit a call of ``function`` as a normal task (auto-init first, as Ray does)."""
    w = hooks.ensure_worker()
    desc = task_builder.export_callable(w, function, cache)
    num_returns, streaming = _returns(opts, is_generator)
    # Calls from the driver's top level with the same options differ only in
    # task id and arguments: copy the spec of the last one (one C call)
    # instead of building it field by field (~15-20 us of the submit path).
    # The template is kept in the function's cache with the options dict
    # and descriptor it was made from, compared by identity.
    wkey: tuple | None = None
    spec: cpb.TaskSpec | None = None
    ev_desc: bytes | None = None  # its task events' description, kept with the template
    if current_task.get() is None and not w.default_runtime_env and not _UNTEMPLATED.intersection(opts):
        wkey = _driver_key(w)
        ent = cache.get("spec")
        if ent is not None and ent[0] is opts and ent[1] is desc and ent[2] == wkey:
            spec = cpb.TaskSpec()
            spec.CopyFrom(ent[3])
            spec.task_id = new_task_id()
            ev_desc = ent[4]
    if spec is None:
        resources = _opts.task_resources(opts, default_cpus=1)
        spec = task_builder.base_spec(w, name=opts.get("name") or name, task_type=cpb.NORMAL_TASK,
                                      num_returns=num_returns, streaming=streaming, resources=resources, opts=opts)
        spec.function.CopyFrom(desc)
        spec.max_retries = int(opts.get("max_retries", 3))
        rex = opts.get("retry_exceptions", False)
        spec.retry_exceptions = bool(rex)
        if isinstance(rex, (list, tuple)):
            spec.retry_exception_allowlist = pickle.dumps(tuple(rex))
        if wkey is not None:
            tmpl = cpb.TaskSpec()
            tmpl.CopyFrom(spec)
            ev_desc = w.task_events.describe(tmpl)
            cache["spec"] = (opts, desc, wkey, tmpl, ev_desc)
    keep: list = []  # puts of large arguments stay alive until submitted
    args_pb, refs = task_builder.build_args(w, args, kwargs, name, param_names, keep=keep)
    spec.args.extend(args_pb)
    if opts.get("num_returns") == "dynamic":
        spec.dynamic_returns = True
    return_ids = w.task_submitter.submit(spec, refs, ev_desc)
    return _refs_out(w, spec, return_ids, num_returns, streaming)


# -- actors -------------------------------------------------------------------------------
@dataclass
class ActorFields:
    """What an actor handle is made of."""

    actor_id: bytes
    class_name: str
    meta: dict[str, dict[str, Any]]
    max_task_retries: int
    is_async: bool


def actor_fields(info: Any) -> ActorFields:
    """The handle fields of an actor the GCS describes (an ``ActorInfo``)."""
    meta = pickle.loads(info.method_meta) if info.method_meta else {}
    return ActorFields(info.actor_id, info.class_name, meta, info.max_task_retries, info.is_async)


@dataclass
class CreatedActor:
    """The outcome of :func:`create_actor`: a new actor, or (``get_if_exists``)
    the live one of that name, which the caller must not track."""

    fields: ActorFields
    existing: bool
    anonymous: bool  # unnamed and not detached: it ends when its creator's handle is dropped


def create_actor(cls: Any, cache: dict[str, Any], class_name: str, meta: dict[str, dict[str, Any]],
                 is_async: bool, args: tuple, kwargs: dict, opts: dict[str, Any]) -> CreatedActor:
    """Register a new actor of ``cls`` with the GCS (auto-init first, as Ray does)."""
    w = hooks.ensure_worker()
    name = opts.get("name") or ""
    namespace = opts.get("namespace")
    if namespace is None:
        namespace = w.current_namespace()
    if opts.get("get_if_exists") and not name:
        raise ValueError("get_if_exists=True needs a name for the actor.")
    desc = task_builder.export_callable(w, cls, cache)
    resources = _opts.task_resources(opts, default_cpus=0)
    spec = task_builder.base_spec(w, name=f"{class_name}.__init__", task_type=cpb.ACTOR_CREATION_TASK,
                                  num_returns=1, streaming=False, resources=resources, opts=opts)
    spec.function.CopyFrom(desc)
    actor_id = random_id(16)
    max_conc = opts.get("max_concurrency") or (1000 if is_async else 1)
    groups = opts.get("concurrency_groups") or {}
    ac = spec.actor_creation
    ac.actor_id = actor_id
    ac.max_restarts = int(opts.get("max_restarts", 0))
    ac.max_task_retries = int(opts.get("max_task_retries", 0))
    ac.max_concurrency = int(max_conc)
    ac.is_async = is_async
    ac.name = name
    ac.namespace = namespace
    lifetime = opts.get("lifetime") or getattr(w, "default_actor_lifetime", None)  # JobConfig's default
    ac.detached = lifetime == "detached"
    ac.class_name = class_name
    ac.method_meta = pickle.dumps(meta)
    if groups:
        ac.concurrency_groups = pickle.dumps(dict(groups))
    keep: list = []  # puts of large arguments stay alive until submitted
    args_pb, refs = task_builder.build_args(w, args, kwargs, f"{class_name}.__init__", keep=keep)
    spec.args.extend(args_pb)
    reply = gcs_client.call(
        "RegisterActor", gpb.RegisterActorRequest(spec=spec, get_if_exists=bool(opts.get("get_if_exists"))),
        worker=w)
    if not reply.ok:
        if reply.existing.actor_id:
            return CreatedActor(actor_fields(reply.existing), existing=True, anonymous=False)
        raise ValueError(reply.error)
    w.actor_submitter.registered(actor_id)
    if refs:
        w.actor_submitter.hold_creation_args(actor_id, refs)
    if not ac.detached:
        w.owned_actors.add(actor_id)  # it dies with this process (Ray's ownership)
    w.task_events.record(spec, "SUBMITTED")
    fields = ActorFields(actor_id, class_name, meta, ac.max_task_retries, is_async)
    return CreatedActor(fields, existing=False, anonymous=not name and not ac.detached)


# (actor, method, options, driver state) -> a spec to copy for top-level calls
_SPEC_TEMPLATES: dict[tuple, tuple[cpb.TaskSpec, bytes | None]] = {}


def call_actor(actor_id: bytes, class_name: str, method_name: str, default_retries: int, args: tuple,
               kwargs: dict, opts: dict[str, Any]) -> Any:
    """Submit a call of ``method_name`` on the actor ``actor_id``."""
    w = global_state.require_worker()
    num_returns, streaming = _returns(opts, False)
    name = opts.get("name") or f"{class_name}.{method_name}"
    group = opts.get("concurrency_group") or ""
    # Calls from the driver's top level differ only in task id and
    # arguments: copy a template (one C call) instead of building the
    # spec field by field (the submit path showed it in profiles).
    key: tuple | None = None
    spec: cpb.TaskSpec | None = None
    ev_desc: bytes | None = None  # its task events' description, kept with the template
    if current_task.get() is None and not w.default_runtime_env:
        key = (actor_id, method_name, name, num_returns, streaming, group, *_driver_key(w))
        ent = _SPEC_TEMPLATES.get(key)
        if ent is not None:
            spec = cpb.TaskSpec()
            spec.CopyFrom(ent[0])
            spec.task_id = new_task_id()
            ev_desc = ent[1]
    if spec is None:
        spec = task_builder.base_spec(w, name=name, task_type=cpb.ACTOR_TASK, num_returns=num_returns,
                                      streaming=streaming, resources={}, opts={})
        spec.actor_id = actor_id
        spec.method_name = method_name
        spec.actor_creation.class_name = class_name
        if group:
            spec.concurrency_group = group
        if key is not None:
            if len(_SPEC_TEMPLATES) > 1000:
                _SPEC_TEMPLATES.clear()
            tmpl = cpb.TaskSpec()
            tmpl.CopyFrom(spec)
            ev_desc = w.task_events.describe(tmpl)
            _SPEC_TEMPLATES[key] = (tmpl, ev_desc)
    rex = opts.get("retry_exceptions")
    if rex:  # (not in the template: set per call)
        spec.retry_exceptions = True
        if isinstance(rex, (list, tuple)):
            spec.retry_exception_allowlist = pickle.dumps(tuple(rex))
    keep: list = []  # puts of large arguments stay alive until submitted
    args_pb, refs = task_builder.build_args(w, args, kwargs, f"{class_name}.{method_name}", keep=keep)
    spec.args.extend(args_pb)
    retries = opts.get("max_task_retries", default_retries)
    return_ids = w.actor_submitter.submit(actor_id, spec, refs, retries, ev_desc)
    return _refs_out(w, spec, return_ids, num_returns, streaming)


# Ray ends an actor once every handle to it is gone. jray tracks the handle
# its creator got: when that is dropped and was never pickled (so no copy can
# exist in another process), the actor is asked to exit after the calls
# already submitted to it. Named and detached actors are left alone.
escaped_actors: set[bytes] = set()


def tracker() -> Any:
    """What a tracked handle keeps, to pass to :func:`handle_dropped` from its ``__del__``."""
    return global_state.require_worker()


def handle_dropped(tracked_by: Any, actor_id: bytes, class_name: str) -> None:
    """The creator's handle of an anonymous actor is gone (any thread)."""
    tracked_by.post(_terminate_if_unshared, tracked_by, actor_id, class_name)


def _terminate_if_unshared(worker: Any, actor_id: bytes, class_name: str) -> None:
    """Loop thread: ask the actor to exit unless a copy of its handle escaped."""
    if actor_id in escaped_actors or worker.shutting_down:
        return
    token = current_task.set(None)
    try:
        spec = task_builder.base_spec(worker, name=f"{class_name}.__jray_terminate__", task_type=cpb.ACTOR_TASK,
                                      num_returns=0, streaming=False, resources={}, opts={})
    finally:
        current_task.reset(token)
    spec.actor_id = actor_id
    spec.method_name = "__jray_terminate__"
    spec.actor_creation.class_name = class_name
    worker.actor_submitter.submit(actor_id, spec, [], 0)


def kill_actor(actor_id: bytes, *, no_restart: bool) -> None:
    """``jray.kill``: the GCS kills the actor; with ``no_restart`` calls fail at once from here on."""
    w = global_state.require_worker()
    gcs_client.kill_actor(actor_id, no_restart=no_restart)
    if no_restart:
        w.post(w.actor_submitter.mark_killed, actor_id, "it was killed by jray.kill()")


def named_actor(name: str, namespace: str | None) -> tuple[str, ActorFields | None]:
    """(the namespace looked in, the live actor ``name`` there or None)."""
    w = global_state.require_worker()
    ns = w.current_namespace() if namespace is None else namespace
    info = gcs_client.get_named_actor(name, ns)
    return ns, (actor_fields(info) if info is not None else None)


# -- cancel -------------------------------------------------------------------------------
def cancel(ref: ObjectRef, *, force: bool, recursive: bool) -> None:
    """``jray.cancel``: cancel the task or actor call that produces ``ref``."""
    w = global_state.require_worker()
    task_id = task_id_of(ref.binary())
    if task_id in w.actor_submitter.calls:
        if force:
            raise ValueError("force=True is not supported for actor tasks: an actor's state cannot be "
                             "torn down halfway. Use jray.kill(actor) to end the actor.")
        w.post(w.actor_submitter.cancel, task_id)
        return
    w.post(w.task_submitter.cancel, task_id, force, recursive)


def pending_kind(ref: ObjectRef) -> str | None:
    """What produces ``ref`` and is still pending here: ``"actor_call"``, ``"task"``
    (a normal task not finished), or None (done, a put object, or not ours).
    The notebook layer asks before cancelling the refs waited on at Ctrl-C."""
    w = global_state.require_worker()
    task_id = task_id_of(ref.binary())
    if task_id in w.actor_submitter.calls:
        return "actor_call"
    task = w.task_submitter.tasks.get(task_id)
    if task is None or getattr(task, "done", False):
        return None
    return "task"


__all__ = ["ActorFields", "CreatedActor", "actor_fields", "call_actor", "cancel", "create_actor",
           "escaped_actors", "handle_dropped", "kill_actor", "named_actor", "pending_kind", "submit_task",
           "tracker"]
