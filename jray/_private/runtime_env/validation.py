"""Checking, normalising and merging runtime_env dicts (driver side).

``validate`` runs at ``.options()``/``@remote``/``init`` time, so bad input
fails there with an error that names the field and nothing is sent.
``merge`` is Ray's inheritance rule: a child's fields replace its parent's
(or the job's) field by field, except ``env_vars``, which are merged key by
key. ``env_key`` names an env for the node: workers are started per key.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from jray._private.runtime_env.plugin import plugins

_NON_PLUGIN = ("config", "excludes")
_CONFIG_KEYS = {"setup_timeout_seconds", "eager_install"}


def _validate_config(v: Any) -> dict[str, Any]:
    if hasattr(v, "to_dict"):
        v = v.to_dict()
    if not isinstance(v, dict):
        raise TypeError(f"runtime_env config must be a dict (or RuntimeEnvConfig), got {type(v).__name__}")
    unknown = set(v) - _CONFIG_KEYS
    if unknown:
        raise ValueError(f"runtime_env config: unknown keys {sorted(unknown)} (known: {sorted(_CONFIG_KEYS)})")
    out: dict[str, Any] = {}
    t = v.get("setup_timeout_seconds")
    if t is not None:
        if isinstance(t, bool) or not isinstance(t, int) or (t <= 0 and t != -1):
            raise ValueError(f"runtime_env config setup_timeout_seconds must be a positive int or -1, got {t!r}")
        out["setup_timeout_seconds"] = t
    e = v.get("eager_install")
    if e is not None:
        if not isinstance(e, bool):
            raise TypeError(f"runtime_env config eager_install must be a bool, got {type(e).__name__}")
        out["eager_install"] = e
    return out


def validate(env: Any) -> dict[str, Any]:
    """``env`` checked and normalised (local paths absolute, modules as
    paths, pip as ``{"packages": [...]}``); ``ValueError``/``TypeError``
    naming the problem otherwise."""
    if env is None:
        return {}
    if not isinstance(env, dict):
        raise TypeError(f"runtime_env must be a dict, got {type(env).__name__}")
    reg = plugins()
    out: dict[str, Any] = {}
    for k, v in env.items():
        if not isinstance(k, str):
            raise TypeError(f"runtime_env field names must be strings, got {k!r}")
        if v is None:
            continue
        if k == "config":
            cfg = _validate_config(v)
            if cfg:
                out[k] = cfg
        elif k == "excludes":
            if not isinstance(v, (list, tuple)) or not all(isinstance(p, str) for p in v):
                raise TypeError("runtime_env excludes must be a list of gitignore-style pattern strings")
            out[k] = list(v)
        elif k in reg:
            out[k] = reg[k].validate(v)
        else:
            known = sorted([*reg, *_NON_PLUGIN])
            raise ValueError(f"runtime_env field {k!r} is not known; known fields: {', '.join(known)}")
    if "container" in out and "image_uri" in out:
        raise ValueError("runtime_env: set one of 'container' and 'image_uri', not both")
    if "pip" in out and "conda" in out:
        raise ValueError("runtime_env: 'pip' and 'conda' cannot be used together (put pip packages in the "
                         "conda environment)")
    try:
        json.dumps(out)
    except TypeError as e:
        raise TypeError(f"runtime_env must be JSON-serialisable: {e}") from None
    return out


def merge(parent: dict[str, Any] | None, child: dict[str, Any] | None) -> dict[str, Any]:
    """Ray's rule: the child's fields win, ``env_vars`` merge key by key."""
    if not parent:
        return dict(child or {})
    if not child:
        return dict(parent)
    out = dict(parent)
    for k, v in child.items():
        if k == "env_vars" and isinstance(out.get(k), dict):
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    return out


def needs_setup(env: dict[str, Any]) -> bool:
    """True unless the env has nothing a worker starts with."""
    return any(k != "config" for k in env)


def env_key(env_json: str) -> str:
    """The name of an env (its workers serve only it): a hash of what
    changes a worker (``config`` does not)."""
    env = json.loads(env_json)
    env.pop("config", None)
    if not env:
        return ""
    return hashlib.sha256(json.dumps(env, sort_keys=True).encode()).hexdigest()[:16]
