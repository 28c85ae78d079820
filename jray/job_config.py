"""``jray.job_config.JobConfig``: a job's settings, as Ray's ``ray.job_config``.

``jray.init(job_config=JobConfig(runtime_env=..., ray_namespace=...))``
sets the job's runtime_env (which ``init(runtime_env=...)`` overrides, as in
Ray) and namespace. ``metadata`` is kept on the config for the program to
read; ``default_actor_lifetime`` is "non_detached" (the default) or
"detached".
"""

from __future__ import annotations

from typing import Any

from jray._private.runtime_env.validation import validate


class JobConfig:
    def __init__(self, jvm_options: list[str] | None = None, code_search_path: list[str] | None = None,
                 runtime_env: dict[str, Any] | None = None, metadata: dict[str, str] | None = None,
                 ray_namespace: str | None = None, default_actor_lifetime: str = "non_detached",
                 _client_job: bool = False, _py_driver_sys_path: list[str] | None = None) -> None:
        if jvm_options:
            raise ValueError("JobConfig: jvm_options are for Java workers, which jray does not run")
        if default_actor_lifetime not in ("non_detached", "detached"):
            raise ValueError("JobConfig: default_actor_lifetime must be 'non_detached' or 'detached', got "
                             f"{default_actor_lifetime!r}")
        if metadata is not None and (not isinstance(metadata, dict)
                                     or not all(isinstance(k, str) and isinstance(v, str)
                                                for k, v in metadata.items())):
            raise TypeError("JobConfig: metadata must be a dict of strings to strings")
        self.code_search_path = list(code_search_path or [])
        self.metadata = dict(metadata or {})
        self.ray_namespace = ray_namespace
        self.default_actor_lifetime = default_actor_lifetime
        self.runtime_env: dict[str, Any] = {}
        self.set_runtime_env(runtime_env)

    def set_runtime_env(self, runtime_env: dict[str, Any] | None, validate_env: bool = True) -> None:
        env = dict(runtime_env or {})
        if validate_env and env:
            validate(env)
        self.runtime_env = env

    def set_metadata(self, key: str, value: str) -> None:
        self.metadata[key] = value

    def set_ray_namespace(self, ray_namespace: str) -> None:
        self.ray_namespace = ray_namespace

    def set_default_actor_lifetime(self, default_actor_lifetime: str) -> None:
        if default_actor_lifetime not in ("non_detached", "detached"):
            raise ValueError(f"default_actor_lifetime must be 'non_detached' or 'detached', "
                             f"got {default_actor_lifetime!r}")
        self.default_actor_lifetime = default_actor_lifetime

    def _runtime_env_has_working_dir(self) -> bool:
        return bool(self.runtime_env.get("working_dir"))

    def __repr__(self) -> str:
        return (f"JobConfig(runtime_env={self.runtime_env!r}, metadata={self.metadata!r}, "
                f"ray_namespace={self.ray_namespace!r})")
