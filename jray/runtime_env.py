"""``jray.runtime_env``: what travels with tasks and actors (as ``ray.runtime_env``).

``RuntimeEnv`` and ``RuntimeEnvConfig`` are dicts with Ray's fields, usable
wherever a ``runtime_env`` dict is. ``RuntimeEnvPlugin`` is the base class
of the fields' plugins: subclass it, set ``name`` to the field it handles,
and make it known to every node through the ``jray.runtime_env.plugins``
entry-point group or ``JRAY_RUNTIME_ENV_PLUGINS`` (a JSON list of
``{"class": "module:Class", "priority": N}``); ``register_plugin`` adds
one in this process (the driver's validation). See
``jray/_private/runtime_env/plugin.py`` for the protocol.
"""

from __future__ import annotations

import json
from typing import Any

from jray._private.runtime_env.plugin import RuntimeEnvContext, RuntimeEnvPlugin, register_plugin
from jray._private.runtime_env.validation import validate

__all__ = ["RuntimeEnv", "RuntimeEnvConfig", "RuntimeEnvContext", "RuntimeEnvPlugin", "register_plugin"]


class RuntimeEnvConfig(dict):
    """``setup_timeout_seconds`` (default 600; -1: none) and ``eager_install``
    (default True: a job-level env is set up on the driver's node at init)."""

    def __init__(self, setup_timeout_seconds: int = 600, eager_install: bool = True) -> None:
        super().__init__(setup_timeout_seconds=setup_timeout_seconds, eager_install=eager_install)
        validate({"config": dict(self)})

    def to_dict(self) -> dict[str, Any]:
        return dict(self)


class RuntimeEnv(dict):
    """A runtime_env, checked as it is built (``RuntimeEnv(pip=[...], env_vars={...})``)."""

    def __init__(self, *, py_modules: list[Any] | None = None, working_dir: str | None = None,
                 pip: Any = None, conda: Any = None, container: dict[str, Any] | None = None,
                 env_vars: dict[str, str] | None = None, config: dict[str, Any] | RuntimeEnvConfig | None = None,
                 image_uri: str | None = None, **kwargs: Any) -> None:
        fields = {"py_modules": py_modules, "working_dir": working_dir, "pip": pip, "conda": conda,
                  "container": container, "env_vars": env_vars, "config": config, "image_uri": image_uri, **kwargs}
        super().__init__({k: (dict(v) if isinstance(v, RuntimeEnvConfig) else v)
                          for k, v in fields.items() if v is not None})
        validate(dict(self))

    def to_dict(self) -> dict[str, Any]:
        return dict(self)

    @classmethod
    def _from_json(cls, text: str) -> RuntimeEnv:
        """An env as a task spec carries it (already checked; URIs, not paths)."""
        env = cls.__new__(cls)
        dict.update(env, json.loads(text) if text else {})
        return env

    def serialize(self) -> str:
        return json.dumps(dict(self), sort_keys=True)

    @classmethod
    def deserialize(cls, text: str) -> RuntimeEnv:
        return cls._from_json(text)

    def env_vars(self) -> dict[str, str]:
        return dict(self.get("env_vars") or {})

    def working_dir(self) -> str:
        return str(self.get("working_dir") or "")

    def py_modules(self) -> list[str]:
        return list(self.get("py_modules") or [])

    def pip_config(self) -> dict[str, Any]:
        pip = self.get("pip")
        return validate({"pip": pip})["pip"] if pip else {}
