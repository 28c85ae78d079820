"""The node's runtime_env agent: sets envs up, caches them, cleans up.

Runs inside the raylet (its event loop; pip and unpacking run in
subprocesses and threads). ``get_or_create(env_json)`` returns the env's
``RuntimeEnvContext`` (how its workers start), setting it up once however
many leases ask at the same moment. Each resource a plugin makes (a
package unpacked, a pip venv) is named by a URI and shared by every env
that names it. An env no live worker uses is dropped after
``RUNTIME_ENV_CACHE_TTL_SECONDS``; a URI no remaining env names is deleted
then too, or at once when the cache is over ``RUNTIME_ENV_CACHE_BYTES``.
Setup output goes to ``runtime_env_setup-<key>.log`` in the node's log
directory; a failure names it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from jray._private import config
from jray._private.runtime_env.plugin import (
    NodeServices,
    RuntimeEnvContext,
    RuntimeEnvPlugin,
    plugins,
)
from jray._private.runtime_env.validation import env_key

logger = logging.getLogger(__name__)
FAILED_RETRY_SECONDS = 30.0


class RuntimeEnvSetupFailed(Exception):
    pass


@dataclass(eq=False)
class EnvRecord:
    key: str
    env_json: str
    status: str = "PENDING"
    context: RuntimeEnvContext | None = None
    uris: list[str] = field(default_factory=list)
    error: str = ""
    created_at: float = field(default_factory=time.time)
    setup_seconds: float = 0.0
    log_path: str = ""
    future: asyncio.Future | None = None
    last_used: float = field(default_factory=time.monotonic)
    phase: str = ""  # the last line of the setup log (what set-up is doing now)
    started: float = field(default_factory=time.monotonic)


@dataclass(eq=False)
class UriRecord:
    plugin: RuntimeEnvPlugin
    size: int = 0
    future: asyncio.Future | None = None


class RuntimeEnvAgent:
    def __init__(self, *, cache_dir: str, machine_cache_dir: str, log_dir: str, node_ip: str,
                 download: Callable[[str, str], Awaitable[None]]) -> None:
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        os.makedirs(machine_cache_dir, mode=0o700, exist_ok=True)
        self.services = NodeServices(cache_dir, download, machine_cache_dir)
        self.log_dir = log_dir
        self.node_ip = node_ip
        self.envs: dict[str, EnvRecord] = {}
        self.uris: dict[str, UriRecord] = {}

    def _plugins(self) -> dict[str, RuntimeEnvPlugin]:
        reg = plugins()
        for p in reg.values():
            if p.node is None:
                p.node = self.services
        return reg

    # -- set-up -----------------------------------------------------------------------
    async def get_or_create(self, env_json: str) -> EnvRecord:
        """The env's record, READY; ``RuntimeEnvSetupFailed`` with the cause."""
        key = env_key(env_json)
        rec = self.envs.get(key)
        if rec is not None and rec.status == "FAILED" and time.monotonic() - rec.last_used > FAILED_RETRY_SECONDS:
            rec = None  # try again (a package index that was down, say)
        if rec is None:
            rec = EnvRecord(key, env_json, log_path=os.path.join(self.log_dir, f"runtime_env_setup-{key}.log"))
            rec.future = asyncio.get_running_loop().create_future()
            self.envs[key] = rec
            asyncio.ensure_future(self._create(rec))
        rec.last_used = time.monotonic()
        assert rec.future is not None
        await asyncio.shield(rec.future)
        if rec.status != "READY":
            raise RuntimeEnvSetupFailed(rec.error)
        return rec

    async def _create(self, rec: EnvRecord) -> None:
        assert rec.future is not None
        env = json.loads(rec.env_json)
        timeout = (env.get("config") or {}).get("setup_timeout_seconds") or config.RUNTIME_ENV_SETUP_TIMEOUT_SECONDS
        log = _file_logger(rec.log_path, rec.key)
        log.addHandler(_PhaseHandler(rec))
        t0 = rec.started = time.monotonic()
        log.info("setting up runtime_env %s", rec.env_json)
        try:
            if timeout is not None and timeout > 0:
                rec.context = await asyncio.wait_for(self._setup(env, rec, log), timeout)
            else:
                rec.context = await self._setup(env, rec, log)
            rec.status = "READY"
            log.info("ready in %.2f s", time.monotonic() - t0)
        except asyncio.TimeoutError:
            rec.status, rec.error = "FAILED", self._message(rec, f"setup timed out after {timeout} s "
                                                                 "(runtime_env config setup_timeout_seconds)")
        except Exception as e:  # noqa: BLE001 - any plugin failure is the task's RuntimeEnvSetupError
            rec.status, rec.error = "FAILED", self._message(rec, str(e) or type(e).__name__)
            log.exception("runtime_env setup failed")
        finally:
            rec.setup_seconds = time.monotonic() - t0
            rec.last_used = time.monotonic()
            for h in list(log.handlers):
                h.close()
                log.removeHandler(h)
            if not rec.future.done():
                rec.future.set_result(None)

    def _message(self, rec: EnvRecord, cause: str) -> str:
        return (f"The runtime_env could not be set up on node {self.node_ip}: {cause}\n"
                f"(setup log on that node: {rec.log_path})")

    async def _setup(self, env: dict[str, Any], rec: EnvRecord, log: logging.Logger) -> RuntimeEnvContext:
        reg = self._plugins()
        ctx = RuntimeEnvContext()
        fields = [(reg[name], name) for name in env if name in reg]
        unknown = [name for name in env if name not in reg and name not in ("config", "excludes")]
        if unknown:
            raise RuntimeError(f"no runtime_env plugin on this node handles {unknown} (install the plugin on "
                               "every node: an entry point or JRAY_RUNTIME_ENV_PLUGINS)")
        for plugin, _name in sorted(fields, key=lambda f: f[0].priority):
            uris = plugin.get_uris(env)
            for uri in uris:
                await self._create_uri(plugin, uri, env, ctx, log)
                if uri not in rec.uris:
                    rec.uris.append(uri)
            if not uris:
                await plugin.create(None, env, ctx, log)
            plugin.modify_context(uris, env, ctx, log)
        return ctx

    async def _create_uri(self, plugin: RuntimeEnvPlugin, uri: str, env: dict[str, Any], ctx: RuntimeEnvContext,
                          log: logging.Logger) -> None:
        u = self.uris.get(uri)
        if u is not None and u.future is not None:
            await asyncio.shield(u.future)
            if u.future.exception() is None:
                return
            u = None  # failed before: try again
        u = self.uris[uri] = UriRecord(plugin, future=asyncio.get_running_loop().create_future())
        assert u.future is not None
        try:
            u.size = await plugin.create(uri, env, ctx, log)
            u.future.set_result(None)
        except BaseException as e:
            u.future.set_exception(e)
            u.future.exception()  # retrieved
            self.uris.pop(uri, None)
            raise

    async def prepare(self, env_json: str) -> None:
        """``eager_install``: set the env up now; a failure shows at the first task."""
        try:
            await self.get_or_create(env_json)
        except RuntimeEnvSetupFailed:
            pass

    # -- use and clean-up ----------------------------------------------------------------
    def cache_bytes(self) -> int:
        return sum(u.size for u in self.uris.values())

    def gc(self, busy: set[str], ttl: float | None = None, limit: int | None = None) -> list[str]:
        """Drop envs not in ``busy`` (keys with live workers or grants) for
        ``ttl`` s and delete the URIs no remaining env names; past ``limit``
        bytes, idle envs go at once, least recently used first. The URIs
        deleted."""
        ttl = config.RUNTIME_ENV_CACHE_TTL_SECONDS if ttl is None else ttl
        limit = config.RUNTIME_ENV_CACHE_BYTES if limit is None else limit
        now = time.monotonic()
        for k in busy:
            if k in self.envs:
                self.envs[k].last_used = now
        idle = sorted((r for r in self.envs.values() if r.key not in busy and r.status != "PENDING"),
                      key=lambda r: r.last_used)
        over = self.cache_bytes() > limit
        for rec in idle:
            if now - rec.last_used >= ttl or over:
                del self.envs[rec.key]
                over = self.cache_bytes() - self._size_only_of(rec) > limit
        named = {u for r in self.envs.values() for u in r.uris}
        deleted = []
        for uri, u in list(self.uris.items()):
            if uri in named or u.future is None or not u.future.done():
                continue
            try:
                u.plugin.delete_uri(uri, logger)
            except Exception as e:  # noqa: BLE001
                logger.warning("deleting runtime_env resource %s failed: %s", uri, e)
            del self.uris[uri]
            deleted.append(uri)
        return deleted

    def _size_only_of(self, rec: EnvRecord) -> int:
        others = {u for r in self.envs.values() if r is not rec for u in r.uris}
        return sum(self.uris[u].size for u in rec.uris if u in self.uris and u not in others)

    def states(self, workers_by_key: dict[str, int]) -> list[dict[str, Any]]:
        out = []
        for rec in self.envs.values():
            out.append({
                "key": rec.key, "runtime_env": rec.env_json, "status": rec.status,
                "size_bytes": sum(self.uris[u].size for u in rec.uris if u in self.uris),
                "num_workers": workers_by_key.get(rec.key, 0), "error": rec.error,
                "created_at": rec.created_at, "setup_seconds": rec.setup_seconds, "log_path": rec.log_path,
            })
        return out


def summary(env_json: str) -> str:
    """A short name of an env for a progress line: its fields, pip's packages."""
    try:
        env = json.loads(env_json)
    except ValueError:
        return "runtime_env"
    parts = []
    for k, v in env.items():
        if k in ("config", "env_vars"):
            continue
        if k == "pip" and isinstance(v, dict) and v.get("packages"):
            pk = [str(p) for p in v["packages"]]
            parts.append("pip " + ", ".join(pk[:3]) + (f" (+{len(pk) - 3})" if len(pk) > 3 else ""))
        else:
            parts.append(k)
    return "; ".join(parts) or "env_vars"


class _PhaseHandler(logging.Handler):
    def __init__(self, rec: EnvRecord) -> None:
        super().__init__(logging.INFO)
        self.rec = rec

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = record.getMessage().splitlines()[0].strip() if record.getMessage() else ""
        except Exception:  # noqa: BLE001 - a progress hint must not break set-up
            return
        if line:
            self.rec.phase = line[:120]


def _file_logger(path: str, key: str) -> logging.Logger:
    log = logging.getLogger(f"jray.runtime_env.setup.{key}")
    log.setLevel(logging.INFO)
    log.propagate = False
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))  # private, then opened by name
    h = logging.FileHandler(path, mode="a")
    h.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(h)
    return log
