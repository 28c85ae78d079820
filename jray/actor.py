"""Actors: ``@jray.remote`` on a class, handles, methods, ``exit_actor``."""

from __future__ import annotations

import inspect
import types
from typing import Any

from jray import exceptions
from jray._private import options as _opts
from jray._private import submit, task_context
from jray._private.ids import ActorID


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
    def __class_getitem__(cls, item: Any) -> types.GenericAlias:  # ActorClass[MyClass] in type hints, as Ray
        return types.GenericAlias(cls, item)


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

    def bind(self, *args: Any, **kwargs: Any) -> Any:
        """A node of a DAG (Ray's DAG API, ``jray.dag``): the actor is created on ``execute()``."""
        from jray.dag import ClassNode

        return ClassNode(self, args, kwargs)

    def _remote(self, args: tuple, kwargs: dict, opts: dict[str, Any]) -> ActorHandle:
        created = submit.create_actor(self._cls, self._cache, self.__name__, self._meta, self._is_async,
                                      args, kwargs, opts)
        handle = ActorHandle._from_fields(created.fields)
        if created.anonymous:
            _track(handle)  # an anonymous actor ends when its handle is dropped
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

    def bind(self, *args: Any, **kwargs: Any) -> Any:
        from jray.dag import ClassNode

        extra = {k: v for k, v in self._opts.items() if self._ac._options.get(k) != v}
        return ClassNode(self._ac, args, kwargs, extra)


# Methods every actor has, as in Ray: ``__ray_ready__`` answers True once the
# actor is up; ``__ray_terminate__`` ends it after the calls before it.
_BUILTIN_METHODS = {"__ray_ready__": "__jray_ready__", "__ray_terminate__": "__jray_terminate__"}


class ActorHandle:
    def __class_getitem__(cls, item: Any) -> types.GenericAlias:  # ActorHandle[MyClass] / ActorProxy[MyClass]
        return types.GenericAlias(cls, item)

    """A reference to an actor; pass it to tasks and other actors freely."""

    def __init__(self, actor_id: bytes, class_name: str, meta: dict[str, dict[str, Any]], max_task_retries: int,
                 is_async: bool) -> None:
        self._actor_id = actor_id
        self._class_name = class_name
        self._meta = meta
        self._max_task_retries = max_task_retries
        self._is_async = is_async

    @classmethod
    def _from_fields(cls, f: submit.ActorFields) -> ActorHandle:
        return cls(f.actor_id, f.class_name, f.meta, f.max_task_retries, f.is_async)

    def __getattr__(self, name: str) -> ActorMethod:
        builtin = _BUILTIN_METHODS.get(name)
        if builtin is not None:  # Ray's methods every actor has
            return ActorMethod(self, builtin, {})
        if name.startswith("__") or name not in self._meta:
            raise AttributeError(f"'{self._class_name}' actor has no method {name!r}")
        return ActorMethod(self, name, self._meta[name])

    def __reduce__(self) -> Any:
        # A copy may live on in another process: never end the actor on our own drop.
        submit.escaped_actors.add(self._actor_id)
        return (ActorHandle, (self._actor_id, self._class_name, self._meta, self._max_task_retries, self._is_async))

    def __del__(self) -> None:
        if self.__dict__.get("_tracked_by") is not None:
            try:
                submit.handle_dropped(self.__dict__["_tracked_by"], self._actor_id, self._class_name)
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
        return submit.call_actor(self._actor_id, self._class_name, method_name, self._max_task_retries, args,
                                 kwargs, opts)


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
        """A call of this actor in a DAG (Ray's DAG API, ``jray.dag``), made on ``execute()``."""
        from jray.dag import ClassMethodNode

        return ClassMethodNode(self._handle, self._name, args, kwargs)


class _MethodOptions:
    def __init__(self, m: ActorMethod, opts: dict[str, Any]) -> None:
        self._m = m
        self._opts = opts

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._m._handle._call(self._m._name, args, kwargs, self._opts)

    def bind(self, *args: Any, **kwargs: Any) -> Any:
        from jray.dag import ClassMethodNode

        extra = {k: v for k, v in self._opts.items() if self._m._meta.get(k) != v}
        return ClassMethodNode(self._m._handle, self._m._name, args, kwargs, extra)


# Ray ends an actor once every handle to it is gone. jray tracks the handle
# its creator got: when that is dropped and was never pickled (so no copy can
# exist in another process), the actor is asked to exit after the calls
# already submitted to it (``submit.handle_dropped``). Named and detached
# actors are left alone.
def _track(handle: ActorHandle) -> None:
    handle.__dict__["_tracked_by"] = submit.tracker()


def exit_actor() -> None:
    """End the current actor after this call: no restart, pending calls fail."""
    if not task_context.in_actor_call():
        raise TypeError("exit_actor() called outside an actor; it can only be called from inside an actor method.")
    task_context.exit_actor()


__all__ = ["ActorClass", "ActorHandle", "ActorMethod", "exit_actor", "method", "exceptions"]


# Ray's name for an actor handle in type hints (``ActorProxy[MyClass]``).
ActorProxy = ActorHandle
