"""Remote functions: ``@jray.remote`` on a function, ``f.remote(...)``."""

from __future__ import annotations

import inspect
import pickle
from typing import Any

from jray._private import options as _opts
from jray._private import task_builder
from jray._private.protocol import common_pb2 as cpb
from jray._private.worker import global_state


class RemoteFunction:
    """A function that runs as a task on the cluster: call ``.remote()``."""

    def __init__(self, function: Any, options: dict[str, Any]) -> None:
        self._function = function
        self._options = _opts.validate(dict(options), _opts.TASK_OPTIONS, "remote functions")
        self._cache: dict[str, Any] = {}
        self.__name__ = getattr(function, "__name__", "remote_function")
        self.__qualname__ = getattr(function, "__qualname__", self.__name__)
        self.__module__ = getattr(function, "__module__", "")
        self.__doc__ = function.__doc__
        self._is_generator = inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function)
        try:
            self._params = [p.name for p in inspect.signature(function).parameters.values()]
        except (TypeError, ValueError):
            self._params = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"Remote functions cannot be called directly. Instead of running "
            f"'{self.__module__}.{self.__name__}()', try '{self.__module__}.{self.__name__}.remote()'.")

    def __getstate__(self) -> dict[str, Any]:
        return {"_function": self._function, "_options": self._options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["_function"], state["_options"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"<jray.remote_function.RemoteFunction {self.__module__}.{self.__qualname__}>"

    def options(self, **options: Any) -> _OptionsWrapper:
        _opts.validate(options, _opts.TASK_OPTIONS, "remote functions")
        return _OptionsWrapper(self, {**self._options, **options})

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._remote(args, kwargs, self._options)

    def bind(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("jray does not implement Ray's DAG API (bind); call .remote() instead.")

    def _remote(self, args: tuple, kwargs: dict, opts: dict[str, Any]) -> Any:
        from jray.object_ref import ObjectRef, ObjectRefGenerator

        w = global_state.worker
        if w is None:
            from jray import api

            api.init()  # Ray auto-initializes on first use
            w = global_state.require_worker()
        desc = task_builder.export_callable(w, self._function, self._cache)
        nr = opts.get("num_returns")
        streaming = nr in ("streaming", "dynamic") or (nr is None and self._is_generator)
        num_returns = 1 if streaming else (1 if nr is None else int(nr))
        resources = _opts.task_resources(opts, default_cpus=1)
        spec = task_builder.base_spec(w, name=opts.get("name") or self.__name__, task_type=cpb.NORMAL_TASK,
                                      num_returns=num_returns, streaming=streaming, resources=resources, opts=opts)
        spec.function.CopyFrom(desc)
        spec.max_retries = int(opts.get("max_retries", 3))
        rex = opts.get("retry_exceptions", False)
        spec.retry_exceptions = bool(rex)
        if isinstance(rex, (list, tuple)):
            spec.retry_exception_allowlist = pickle.dumps(tuple(rex))
        keep: list = []  # puts of large arguments stay alive until submitted
        args_pb, refs = task_builder.build_args(w, args, kwargs, self.__name__, self._params, keep=keep)
        spec.args.extend(args_pb)
        return_ids = w.task_submitter.submit(spec, refs)
        owner = w.owner_key
        if streaming:
            return ObjectRefGenerator(spec.task_id, owner, ObjectRef(return_ids[0], owner))
        refs_out = [ObjectRef(oid, owner) for oid in return_ids]
        if num_returns == 1:
            return refs_out[0]
        if num_returns == 0:
            return None
        return refs_out


class _OptionsWrapper:
    def __init__(self, rf: RemoteFunction, opts: dict[str, Any]) -> None:
        self._rf = rf
        self._opts = opts

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._rf._remote(args, kwargs, self._opts)

    def options(self, **options: Any) -> _OptionsWrapper:
        _opts.validate(options, _opts.TASK_OPTIONS, "remote functions")
        return _OptionsWrapper(self._rf, {**self._opts, **options})

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._rf(*args, **kwargs)
