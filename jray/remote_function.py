"""Remote functions: ``@jray.remote`` on a function, ``f.remote(...)``."""

from __future__ import annotations

import inspect
from typing import Any

from jray._private import options as _opts
from jray._private import submit


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
        """A node of a DAG (Ray's DAG API, ``jray.dag``): runs on ``execute()``."""
        from jray.dag import FunctionNode

        return FunctionNode(self, args, kwargs)

    def _remote(self, args: tuple, kwargs: dict, opts: dict[str, Any]) -> Any:
        return submit.submit_task(self._function, self._cache, self.__name__, self._params, self._is_generator,
                                  args, kwargs, opts)


class _OptionsWrapper:
    def __init__(self, rf: RemoteFunction, opts: dict[str, Any]) -> None:
        self._rf = rf
        self._opts = opts

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self._rf._remote(args, kwargs, self._opts)

    def options(self, **options: Any) -> _OptionsWrapper:
        _opts.validate(options, _opts.TASK_OPTIONS, "remote functions")
        return _OptionsWrapper(self._rf, {**self._opts, **options})

    def bind(self, *args: Any, **kwargs: Any) -> Any:
        from jray.dag import FunctionNode

        extra = {k: v for k, v in self._opts.items() if self._rf._options.get(k) != v}
        return FunctionNode(self._rf, args, kwargs, extra)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._rf(*args, **kwargs)
