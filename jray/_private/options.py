"""Validation of ``@remote`` / ``.options()`` arguments, with Ray's names.

Bad options fail at decoration or ``.options()`` time with a ValueError
that names the option, never later inside the cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jray._private import scheduling
from jray._private.runtime_env.validation import validate as validate_runtime_env


def _nonneg_number(name: str, v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
        raise ValueError(f"The option {name!r} must be a non-negative number, got {v!r}.")


def _cpu_gpu(name: str, v: Any) -> None:
    _nonneg_number(name, v)
    if v > 1 and float(v) != int(v):
        raise ValueError(f"The option {name!r} must be an integer when above 1, got {v!r}.")


def _resources(name: str, v: Any) -> None:
    if v is None:
        return
    if not isinstance(v, dict):
        raise ValueError(f"The option 'resources' must be a dict, got {type(v).__name__}.")
    for k, x in v.items():
        if not isinstance(k, str):
            raise ValueError(f"Resource names must be strings, got {k!r}.")
        if k in ("CPU", "GPU"):
            raise ValueError(f"Use the 'num_cpus' and 'num_gpus' options instead of {k!r} in 'resources'.")
        if k == "memory":
            raise ValueError("Use the 'memory' option instead of 'memory' in 'resources'.")
        _nonneg_number(f"resources[{k!r}]", x)


def _num_returns(name: str, v: Any) -> None:
    if v in ("streaming", "dynamic"):
        return
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"The option 'num_returns' must be a non-negative int or 'streaming', got {v!r}.")


def _int_at_least(low: int) -> Callable[[str, Any], None]:
    def check(name: str, v: Any) -> None:
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"The option {name!r} must be an int >= {low}, got {v!r}.")
    return check


def _retry_exceptions(name: str, v: Any) -> None:
    if isinstance(v, bool):
        return
    if isinstance(v, (list, tuple)) and all(isinstance(e, type) and issubclass(e, BaseException) for e in v):
        return
    raise ValueError(f"The option 'retry_exceptions' must be a bool or a list of exception types, got {v!r}.")


def _str_or_none(name: str, v: Any) -> None:
    if v is not None and not isinstance(v, str):
        raise ValueError(f"The option {name!r} must be a string, got {type(v).__name__}.")


def _runtime_env(name: str, v: Any) -> None:
    """Checked in full here (``runtime_env.validation``): a missing
    working_dir, a non-string env var, an unknown field or a malformed
    requirement fails at ``.options()``/``@remote`` time, nothing sent."""
    if v is None:
        return
    if hasattr(v, "to_dict") and not isinstance(v, dict):
        v = v.to_dict()
    validate_runtime_env(v)


def _strategy(name: str, v: Any) -> None:
    if scheduling.is_strategy(v):
        return
    raise ValueError(f"The option 'scheduling_strategy' must be 'DEFAULT', 'SPREAD' or a strategy object, got {v!r}.")


def _lifetime(name: str, v: Any) -> None:
    if v not in (None, "detached", "non_detached"):
        raise ValueError(f"The option 'lifetime' must be None, 'detached' or 'non_detached', got {v!r}.")


def _any(name: str, v: Any) -> None:
    pass


def _bool(name: str, v: Any) -> None:
    if not isinstance(v, bool):
        raise ValueError(f"The option {name!r} must be a bool, got {v!r}.")


def _groups(name: str, v: Any) -> None:
    if v is None:
        return
    if not isinstance(v, dict) or not all(isinstance(k, str) and isinstance(n, int) and n >= 1 for k, n in v.items()):
        raise ValueError("The option 'concurrency_groups' must be a dict of group name to a positive int.")


COMMON: dict[str, Callable[[str, Any], None]] = {
    "num_cpus": _cpu_gpu, "num_gpus": _cpu_gpu, "memory": _nonneg_number, "resources": _resources,
    "scheduling_strategy": _strategy, "runtime_env": _runtime_env, "name": _str_or_none,
    "accelerator_type": _str_or_none, "label_selector": _any, "object_store_memory": _any, "_metadata": _any,
    "placement_group": _any, "placement_group_bundle_index": _any, "placement_group_capture_child_tasks": _any,
    "enable_task_events": _any,
}
TASK_OPTIONS = dict(COMMON, num_returns=_num_returns, max_retries=_int_at_least(-1),
                    retry_exceptions=_retry_exceptions, max_calls=_int_at_least(0))
ACTOR_OPTIONS = dict(COMMON, max_restarts=_int_at_least(-1), max_task_retries=_int_at_least(-1),
                     max_concurrency=_int_at_least(1), concurrency_groups=_groups, lifetime=_lifetime,
                     namespace=_str_or_none, get_if_exists=_bool, max_pending_calls=_int_at_least(-1))
METHOD_OPTIONS = {"num_returns": _num_returns, "concurrency_group": _str_or_none, "name": _str_or_none,
                  "max_task_retries": _int_at_least(-1), "retry_exceptions": _retry_exceptions,
                  "enable_task_events": _any}


def validate(options: dict[str, Any], valid: dict[str, Callable[[str, Any], None]], what: str) -> dict[str, Any]:
    for k, v in options.items():
        check = valid.get(k)
        if check is None:
            raise ValueError(f"Invalid option keyword {k!r} for {what}. Valid ones are {sorted(valid)}.")
        check(k, v)
    return options


def task_resources(opts: dict[str, Any], *, default_cpus: float) -> dict[str, float]:
    res: dict[str, float] = {}
    cpus = opts.get("num_cpus")
    res["CPU"] = float(default_cpus if cpus is None else cpus)
    if opts.get("num_gpus"):
        res["GPU"] = float(opts["num_gpus"])
    if opts.get("memory"):
        res["memory"] = float(opts["memory"])
    for k, v in (opts.get("resources") or {}).items():
        res[k] = float(v)
    acc = opts.get("accelerator_type")
    if acc:  # as Ray: a sliver of the resource nodes with that accelerator offer
        res[f"{ACCELERATOR_PREFIX}{acc}"] = 0.001
    return {k: v for k, v in res.items() if v > 0}


# A node with GPUs offers ``accelerator_type:<model>`` (Ray's resource name).
ACCELERATOR_PREFIX = "accelerator_type:"
