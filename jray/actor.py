"""Actors: ``@jray.remote`` on a class, handles, methods, ``exit_actor``."""

from __future__ import annotations

import inspect
import pickle
from typing import Any

from jray import exceptions
from jray._private import options as _opts
from jray._private import task_builder
from jray._private.ids import ActorID, new_task_id, random_id
from jray._private.protocol import common_pb2 as cpb
from jray._private.protocol import gcs_pb2 as gpb
from jray._private.worker import global_state
from jray._private.worker.core_worker import current_task


def method(*args: Any, **kwargs: Any) -> Any:
    """Annotate an actor method: ``@jray.method(num_returns=2)``."""
    if args and callable(args[0]) and not kwargs:
        return args[0]
    _opts.validate(kwargs, _opts.METHOD_OPTIONS, "actor methods")

    def deco(fn: Any) -> Any:
        fn.__jray_method_options__ = dict(kwargs)
        return fn

    return deco


def _method_meta(cls: type) -> tuple[dict[str, dict[str, Any]], bool]:
    meta: dict[str, dict[str, Any]] = {}
    is_async = False
    for name, fn in inspect.getmembers(cls, predicate=lambda m: inspect.isfunction(m) or inspect.ismethod(m)):
        if name.startswith("__") and name != "__call__":
            continue
        o = dict(getattr(fn, "__jray_method_options__", {}))
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            o.setdefault("num_returns", "streaming")
        if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
            is_async = True
        meta[name] = o
    return meta, is_async


class ActorClass:
    """A class whose instances live in their own worker: ``A.remote(...)``."""

    def __init__(self, cls: type, options: dict[str, Any]) -> None:
        self._cls = cls
        self._options = _opts.validate(dict(options), _opts.ACTOR_OPTIONS, "actors")
        self._cache: dict[str, Any] = {}
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__module__ = cls.__module__
        self.__doc__ = cls.__doc__
        self._meta, self._is_async = _method_meta(cls)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"Actors cannot be instantiated directly. Instead of '{self.__name__}()', "
                        f"use '{self.__name__}.remote()'.")

    def __getstate__(self) -> dict[str, Any]:
        return {"_cls": self._cls, "_options": self._options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["_cls"], state["_options"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"<jray.actor.ActorClass {self.__module__}.{self.__qualname__}>"

    def options(self, **options: Any) -> _ActorOptions:
        _opts.validate(options, _opts.ACTOR_OPTIONS, "actors")
        return _ActorOptions(self, {**self._options, **options})

    def remote(self, *args: Any, **kwargs: Any) -> ActorHandle:
        return self._remote(args, kwargs, self._options)

    def _remote(self, args: tuple, kwargs: dict, opts: dict[str, Any]) -> ActorHandle:
        w = global_state.worker
        if w is None:
            from jray import api

            api.init()
            w = global_state.require_worker()
        name = opts.get("name") or ""
        namespace = opts.get("namespace")
        if namespace is None:
            namespace = w.current_namespace()
        if opts.get("get_if_exists") and not name:
            raise ValueError("get_if_exists=True needs a name for the actor.")
        desc = task_builder.export_callable(w, self._cls, self._cache)
        resources = _opts.task_resources(opts, default_cpus=0)
        spec = task_builder.base_spec(w, name=f"{self.__name__}.__init__", task_type=cpb.ACTOR_CREATION_TASK,
                                      num_returns=1, streaming=False, resources=resources, opts=opts)
        spec.function.CopyFrom(desc)
        actor_id = random_id(16)
        is_async = self._is_async
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
        ac.detached = opts.get("lifetime") == "detached"
        ac.class_name = self.__name__
        ac.method_meta = pickle.dumps(self._meta)
        if groups:
            ac.concurrency_groups = pickle.dumps(dict(groups))
        keep: list = []  # puts of large arguments stay alive until submitted
        args_pb, refs = task_builder.build_args(w, args, kwargs, f"{self.__name__}.__init__", keep=keep)
        spec.args.extend(args_pb)

        async def register() -> gpb.RegisterActorReply:
            return await w.gcs.RegisterActor(gpb.RegisterActorRequest(spec=spec, get_if_exists=bool(opts.get("get_if_exists"))))

        reply = w.run_sync(register())
        if not reply.ok:
            if reply.existing.actor_id:
                return ActorHandle._from_info(reply.existing)
            raise ValueError(reply.error)
        if refs:
            w.actor_submitter.hold_creation_args(actor_id, refs)
        w.task_events.record(spec, "SUBMITTED")
        handle = ActorHandle(actor_id, self.__name__, self._meta, ac.max_task_retries, is_async)
        if not name and not ac.detached:
            _track(handle, w)  # an anonymous actor ends when its handle is dropped
        return handle


class _ActorOptions:
    def __init__(self, ac: ActorClass, opts: dict[str, Any]) -> None:
        self._ac = ac
        self._opts = opts

    def remote(self, *args: Any, **kwargs: Any) -> ActorHandle:
        return self._ac._remote(args, kwargs, self._opts)

    def options(self, **options: Any) -> _ActorOptions:
        _opts.validate(options, _opts.ACTOR_OPTIONS, "actors")
        return _ActorOptions(self._ac, {**self._opts, **options})


# (actor, method, options, driver state) -> a spec to copy for top-level calls
_SPEC_TEMPLATES: dict[tuple, cpb.TaskSpec] = {}


class ActorHandle:
    """A reference to an actor; pass it to tasks and other actors freely."""

    def __init__(self, actor_id: bytes, class_name: str, meta: dict[str, dict[str, Any]], max_task_retries: int,
                 is_async: bool) -> None:
        self._actor_id = actor_id
        self._class_name = class_name
        self._meta = meta
        self._max_task_retries = max_task_retries
        self._is_async = is_async

    @classmethod
    def _from_info(cls, info: gpb.ActorInfo) -> ActorHandle:
        meta = pickle.loads(info.method_meta) if info.method_meta else {}
        return cls(info.actor_id, info.class_name, meta, info.max_task_retries, info.is_async)

    def __getattr__(self, name: str) -> ActorMethod:
        if name.startswith("__") or name not in self._meta:
            raise AttributeError(f"'{self._class_name}' actor has no method {name!r}")
        return ActorMethod(self, name, self._meta[name])

    def __reduce__(self) -> Any:
        # A copy may live on in another process: never end the actor on our own drop.
        _escaped.add(self._actor_id)
        return (ActorHandle, (self._actor_id, self._class_name, self._meta, self._max_task_retries, self._is_async))

    def __del__(self) -> None:
        if self.__dict__.get("_tracked_by") is not None:
            w = self.__dict__["_tracked_by"]
            try:
                w.post(_handle_dropped, w, self._actor_id, self._class_name)
            except Exception:  # noqa: BLE001 - interpreter shutdown
                pass

    def __repr__(self) -> str:
        return f"Actor({self._class_name}, {self._actor_id.hex()})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorHandle) and other._actor_id == self._actor_id

    def __hash__(self) -> int:
        return hash(self._actor_id)

    @property
    def _ray_actor_id(self) -> ActorID:
        return ActorID(self._actor_id)

    def _actor_id_hex(self) -> str:
        return self._actor_id.hex()

    def _call(self, method_name: str, args: tuple, kwargs: dict, opts: dict[str, Any]) -> Any:
        from jray.object_ref import ObjectRef, ObjectRefGenerator

        w = global_state.require_worker()
        nr = opts.get("num_returns")
        streaming = nr in ("streaming", "dynamic")
        num_returns = 1 if streaming else (1 if nr is None else int(nr))
        name = opts.get("name") or f"{self._class_name}.{method_name}"
        group = opts.get("concurrency_group") or ""
        # Calls from the driver's top level differ only in task id and
        # arguments: copy a template (one C call) instead of building the
        # spec field by field (the submit path showed it in profiles).
        key: tuple | None = None
        spec: cpb.TaskSpec | None = None
        if current_task.get() is None and not w.default_runtime_env:
            key = (self._actor_id, method_name, name, num_returns, streaming, group, id(w), w.port, w.job_id,
                   w.root_task_override, w.namespace)
            tmpl = _SPEC_TEMPLATES.get(key)
            if tmpl is not None:
                spec = cpb.TaskSpec()
                spec.CopyFrom(tmpl)
                spec.task_id = new_task_id()
        if spec is None:
            spec = task_builder.base_spec(w, name=name, task_type=cpb.ACTOR_TASK, num_returns=num_returns,
                                          streaming=streaming, resources={}, opts={})
            spec.actor_id = self._actor_id
            spec.method_name = method_name
            spec.actor_creation.class_name = self._class_name
            if group:
                spec.concurrency_group = group
            if key is not None:
                if len(_SPEC_TEMPLATES) > 1000:
                    _SPEC_TEMPLATES.clear()
                tmpl = _SPEC_TEMPLATES[key] = cpb.TaskSpec()
                tmpl.CopyFrom(spec)
        keep: list = []  # puts of large arguments stay alive until submitted
        args_pb, refs = task_builder.build_args(w, args, kwargs, f"{self._class_name}.{method_name}", keep=keep)
        spec.args.extend(args_pb)
        retries = opts.get("max_task_retries", self._max_task_retries)
        return_ids = w.actor_submitter.submit(self._actor_id, spec, refs, retries)
        owner = w.owner_key
        if streaming:
            return ObjectRefGenerator(spec.task_id, owner, ObjectRef(return_ids[0], owner))
        out = [ObjectRef(oid, owner) for oid in return_ids]
        if num_returns == 1:
            return out[0]
        if num_returns == 0:
            return None
        return out


class ActorMethod:
    def __init__(self, handle: ActorHandle, name: str, meta: dict[str, Any]) -> None:
        self._handle = handle
        self._name = name
        self._meta = meta

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._handle._call(self._name, args, kwargs, self._meta)

    def options(self, **options: Any) -> _MethodOptions:
        _opts.validate(options, _opts.METHOD_OPTIONS, "actor methods")
        return _MethodOptions(self, {**self._meta, **options})

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"Actor methods cannot be called directly. Instead of running 'actor.{self._name}()', "
                        f"try 'actor.{self._name}.remote()'.")

    def bind(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("jray does not implement Ray's DAG API (bind); call .remote() instead.")


class _MethodOptions:
    def __init__(self, m: ActorMethod, opts: dict[str, Any]) -> None:
        self._m = m
        self._opts = opts

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._m._handle._call(self._m._name, args, kwargs, self._opts)


# Ray ends an actor once every handle to it is gone. jray tracks the handle
# its creator got: when that is dropped and was never pickled (so no copy can
# exist in another process), the actor is asked to exit after the calls
# already submitted to it. Named and detached actors are left alone.
_escaped: set[bytes] = set()


def _track(handle: ActorHandle, worker: Any) -> None:
    handle.__dict__["_tracked_by"] = worker


def _handle_dropped(worker: Any, actor_id: bytes, class_name: str) -> None:
    """Loop thread: the creator's handle is gone."""
    if actor_id in _escaped or worker.shutting_down:
        return
    from jray._private.worker.core_worker import current_task

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


def exit_actor() -> None:
    """End the current actor after this call: no restart, pending calls fail."""
    from jray._private.worker.core_worker import current_task
    from jray._private.worker.executor import ActorExit

    w = global_state.worker
    spec = current_task.get()
    if w is None or w.executor is None or w.executor.actor is None or spec is None:
        raise TypeError("exit_actor() called outside an actor; it can only be called from inside an actor method.")
    raise ActorExit()


__all__ = ["ActorClass", "ActorHandle", "ActorMethod", "exit_actor", "method", "exceptions"]
