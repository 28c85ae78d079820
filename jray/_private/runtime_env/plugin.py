"""The runtime_env plugin interface, and the registry of plugins.

Every field of a ``runtime_env`` (``working_dir``, ``pip``, ``env_vars``,
...) is handled by one plugin, built-in or the user's, as in Ray's
``RuntimeEnvPlugin``:

- ``validate(value)`` runs on the driver at ``.options()``/``init`` time and
  returns the value normalised (or raises ``ValueError``/``TypeError``).
- On the node, the raylet's ``RuntimeEnvAgent`` calls ``get_uris(env)``: the
  resources the field needs (a package, a virtual environment), each named by
  a URI and created once per node by ``create(uri, env, context, logger)``
  (returns its size on disk), cached, shared by every env that names the same
  URI and removed by ``delete_uri`` once no env uses it for a while.
- ``modify_context(uris, env, context, logger)`` then says how a worker for
  the env starts: its environment variables, working directory, ``sys.path``
  entries, Python executable, or a command to run it under (containers).

Plugins come from the built-ins (``builtin.py``), the ``jray.runtime_env.plugins``
entry-point group, and ``JRAY_RUNTIME_ENV_PLUGINS``: a JSON list of
``{"class": "module:Class" or "module.Class", "priority": N}``. A lower
priority modifies the context first (Ray's order).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

PLUGINS_ENV_VAR = "JRAY_RUNTIME_ENV_PLUGINS"
ENTRY_POINT_GROUP = "jray.runtime_env.plugins"
DEFAULT_PRIORITY = 10


@dataclass
class RuntimeEnvContext:
    """How a worker of one runtime_env starts (filled in by the plugins)."""

    env_vars: dict[str, str] = field(default_factory=dict)
    py_executable: str | None = None  # None: the node's own Python (workers forked by the zygote)
    cwd: str | None = None
    sys_path: list[str] = field(default_factory=list)  # put first on the worker's sys.path
    command_prefix: list[str] = field(default_factory=list)  # the worker runs as prefix + [python, ...]

    @property
    def forkable(self) -> bool:
        """A worker can be forked from the node's zygote (same interpreter)."""
        return self.py_executable is None and not self.command_prefix

    def to_json(self) -> str:
        return json.dumps({"env_vars": self.env_vars, "py_executable": self.py_executable, "cwd": self.cwd,
                           "sys_path": self.sys_path, "command_prefix": self.command_prefix}, sort_keys=True)


class NodeServices:
    """What the node offers plugins: where to cache, and how to fetch a
    package from the head. Set by the agent before any ``create``."""

    def __init__(self, cache_dir: str, download: Any, machine_cache_dir: str) -> None:
        self.cache_dir = cache_dir  # this node's (under the session)
        self.machine_cache_dir = machine_cache_dir  # shared by the nodes of this machine (pip envs)
        self.download = download  # async (uri, dest_path) -> None


class RuntimeEnvPlugin:
    """Base class of the plugins (see the module docstring)."""

    name: str = ""
    priority: int = DEFAULT_PRIORITY

    def __init__(self) -> None:
        self.node: NodeServices | None = None

    @staticmethod
    def validate(value: Any) -> Any:
        """The value normalised, or ``ValueError``/``TypeError`` naming the problem."""
        return value

    def get_uris(self, runtime_env: dict[str, Any]) -> list[str]:
        return []

    async def create(self, uri: str | None, runtime_env: dict[str, Any], context: RuntimeEnvContext,
                     logger: logging.Logger) -> int:
        """Create the resource ``uri`` names (None: the field has no URI);
        the bytes it takes on disk."""
        return 0

    def modify_context(self, uris: list[str], runtime_env: dict[str, Any], context: RuntimeEnvContext,
                       logger: logging.Logger) -> None:
        pass

    def delete_uri(self, uri: str, logger: logging.Logger) -> int:
        """Remove what ``create(uri)`` made; the bytes freed."""
        return 0


def _import_class(path: str) -> type:
    mod, sep, attr = path.partition(":")
    if not sep:
        mod, _, attr = path.rpartition(".")
    if not mod or not attr:
        raise ValueError(f"runtime_env plugin class {path!r} is not 'module:Class' or 'module.Class'")
    cls = getattr(importlib.import_module(mod), attr)
    if not (isinstance(cls, type) and issubclass(cls, RuntimeEnvPlugin)) or not cls.name:
        raise ValueError(f"runtime_env plugin {path!r} must subclass jray.runtime_env.RuntimeEnvPlugin "
                         "and set `name`")
    return cls


def _user_plugin_classes() -> list[tuple[type, int | None]]:
    out: list[tuple[type, int | None]] = []
    raw = os.environ.get(PLUGINS_ENV_VAR, "").strip()
    if raw:
        try:
            entries = json.loads(raw)
        except ValueError as e:
            raise ValueError(f"{PLUGINS_ENV_VAR} is not JSON: {e}") from None
        if not isinstance(entries, list):
            raise ValueError(f"{PLUGINS_ENV_VAR} must be a JSON list of {{'class': ..., 'priority': ...}}")
        for entry in entries:
            path = entry.get("class") if isinstance(entry, dict) else entry
            prio = entry.get("priority") if isinstance(entry, dict) else None
            out.append((_import_class(str(path)), prio))
    try:
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            cls = ep.load()
            if isinstance(cls, type) and issubclass(cls, RuntimeEnvPlugin) and cls.name:
                out.append((cls, None))
    except Exception as e:  # noqa: BLE001 - a broken third-party entry point must not break jray
        logging.getLogger(__name__).warning("runtime_env plugin entry points could not be loaded: %s", e)
    return out


_REGISTRY: dict[str, RuntimeEnvPlugin] | None = None


def plugins() -> dict[str, RuntimeEnvPlugin]:
    """Every plugin by field name: the built-ins, then the user's (a user
    plugin may replace a built-in of the same name)."""
    global _REGISTRY
    if _REGISTRY is None:
        from jray._private.runtime_env import builtin

        reg: dict[str, RuntimeEnvPlugin] = {}
        for cls in builtin.PLUGINS:
            reg[cls.name] = cls()
        for cls, prio in _user_plugin_classes():
            p = cls()
            if prio is not None:
                p.priority = int(prio)
            reg[cls.name] = p
        _REGISTRY = reg
    return _REGISTRY


def register_plugin(plugin: RuntimeEnvPlugin | type) -> None:
    """Add a plugin in this process (tests, notebooks); nodes find plugins
    through the entry point group or ``JRAY_RUNTIME_ENV_PLUGINS``."""
    p = plugin() if isinstance(plugin, type) else plugin
    if not p.name:
        raise ValueError("a runtime_env plugin needs a `name` (the runtime_env field it handles)")
    plugins()[p.name] = p


def reset_registry() -> None:
    global _REGISTRY
    _REGISTRY = None
