"""From the user's runtime_env to what a task spec carries (driver side).

Local paths in ``working_dir``/``py_modules`` become package URIs: the
directory is packed (``packaging.py``), and uploaded to the head unless the
head has that package already (content-addressed: the same code is sent
once). This runs for job-level envs at ``init`` and, beyond Ray, for task-
and actor-level envs at the first ``.remote()`` with them (a notebook's
``%%remote --working-dir``). A resolved env is cached per process; a local
directory is looked at again (a cheap walk of sizes and times) at most once
a second, so an edited file makes a new package.

``effective_json`` merges the job's (or the parent task's) env with the
call's own, as Ray does, into the JSON string of ``TaskSpec.runtime_env``.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from jray._private.runtime_env import packaging
from jray._private.runtime_env.validation import merge, validate

if TYPE_CHECKING:
    from jray._private.worker.core_worker import CoreWorker

UPLOAD_CHUNK = 4 * 1024 * 1024
RECHECK_SECONDS = 1.0


def _local(s: Any) -> bool:
    return isinstance(s, str) and "://" not in s


def _fingerprint(env: dict[str, Any]) -> str:
    h = hashlib.sha256()
    excludes = env.get("excludes")
    paths = [env["working_dir"]] if _local(env.get("working_dir")) else []
    paths += [p for p in env.get("py_modules") or [] if _local(p)]
    for p in paths:
        h.update(p.encode())
        if os.path.isdir(p):
            for rel, full, size in packaging.list_files(p, excludes):
                try:
                    mtime = os.stat(full).st_mtime_ns
                except OSError:
                    mtime = 0
                h.update(f"{rel}\0{size}\0{mtime}\n".encode())
        else:
            try:
                st = os.stat(p)
                h.update(f"{st.st_size}\0{st.st_mtime_ns}".encode())
            except OSError:
                h.update(b"missing")
    return h.hexdigest()


def package_local(env: dict[str, Any]) -> tuple[dict[str, Any], list[packaging.Package]]:
    """``env`` with its local paths replaced by package URIs, and the packages."""
    out = dict(env)
    pkgs: list[packaging.Package] = []
    excludes = env.get("excludes")
    wd = env.get("working_dir")
    if isinstance(wd, str) and _local(wd):
        pkg = packaging.pack_directory(wd, excludes) if os.path.isdir(wd) else packaging.pack_zip_file(wd)
        pkgs.append(pkg)
        out["working_dir"] = pkg.uri
    if env.get("py_modules"):
        mods = []
        for m in env["py_modules"]:
            if not _local(m):
                mods.append(m)
                continue
            if os.path.isdir(m):
                pkg = packaging.pack_directory(m, excludes, prefix=os.path.basename(m.rstrip("/")))
            elif m.endswith(".py"):
                pkg = packaging.pack_file(m, os.path.basename(m))
            else:
                pkg = packaging.pack_zip_file(m)
            pkgs.append(pkg)
            mods.append(pkg.uri)
        out["py_modules"] = mods
    out.pop("excludes", None)
    return out, pkgs


async def _chunks(pkg: packaging.Package) -> AsyncIterator[Any]:
    from jray._private.protocol import gcs_pb2 as gpb

    data = pkg.data
    yield gpb.PackageChunk(uri=pkg.uri, data=data[:UPLOAD_CHUNK], total=len(data))
    for i in range(UPLOAD_CHUNK, len(data), UPLOAD_CHUNK):
        yield gpb.PackageChunk(data=data[i:i + UPLOAD_CHUNK])


def upload_via(w: CoreWorker) -> Callable[[packaging.Package], None]:
    """Upload a package to the head through ``w``'s GCS connection, unless
    the head has it already."""
    from jray._private.protocol import gcs_pb2 as gpb

    def upload(pkg: packaging.Package) -> None:
        async def run() -> None:
            if (await w.gcs.PackageExists(gpb.PackageExistsRequest(uri=pkg.uri))).exists:
                return
            reply = await w.gcs.UploadPackage(_chunks(pkg))
            if not reply.ok:
                raise RuntimeError(f"uploading {pkg.uri} failed: {reply.error}")

        w.run_sync(run(), timeout=max(60.0, pkg.size / 2**20))

    return upload


class Resolver:
    """Resolved envs of this process, by the JSON of the validated env."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[str, str, float]] = {}  # key -> (resolved json, fingerprint, checked at)

    def resolve(self, env: dict[str, Any], upload: Callable[[packaging.Package], None]) -> dict[str, Any]:
        has_local = _local(env.get("working_dir")) or any(_local(m) for m in env.get("py_modules") or [])
        if not has_local:
            out = dict(env)
            out.pop("excludes", None)
            return out
        key = json.dumps(env, sort_keys=True)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and now - hit[2] < RECHECK_SECONDS:
            return json.loads(hit[0])
        fp = _fingerprint(env)
        if hit is not None and hit[1] == fp:
            with self._lock:
                self._cache[key] = (hit[0], fp, now)
            return json.loads(hit[0])
        resolved, pkgs = package_local(env)
        for pkg in pkgs:
            upload(pkg)
        with self._lock:
            self._cache[key] = (json.dumps(resolved, sort_keys=True), fp, now)
        return resolved


_RESOLVER = Resolver()
_MERGED: dict[tuple[str, str], str] = {}


def resolve_for(w: CoreWorker, env: dict[str, Any] | None) -> dict[str, Any]:
    """``env`` (validated or not) ready for a task spec."""
    if not env:
        return {}
    out = _RESOLVER.resolve(validate(env), upload_via(w))
    hook = out.get("worker_process_setup_hook")
    if isinstance(hook, str) and hook.startswith("pickled:"):  # a callable: its pickle to the GCS, once
        from jray._private.runtime_env.builtin import SETUP_HOOKS

        sha = hook.removeprefix("pickled:")
        if sha in SETUP_HOOKS:
            w.export("setup_hook:" + sha, SETUP_HOOKS[sha])
    return out


def effective_json(w: CoreWorker, opts_env: dict[str, Any] | None, parent_json: str | None) -> str:
    """The ``TaskSpec.runtime_env`` of a task or actor: the parent's env
    (the job's at the driver's top level) merged with the call's own."""
    base = parent_json if parent_json is not None else (getattr(w, "default_runtime_env_json", "") or "")
    if not opts_env:
        return base
    own = json.dumps(resolve_for(w, opts_env), sort_keys=True)
    k = (base, own)
    hit = _MERGED.get(k)
    if hit is None:
        merged = merge(json.loads(base) if base else None, json.loads(own))
        hit = json.dumps(merged, sort_keys=True) if merged else ""
        if len(_MERGED) > 1024:
            _MERGED.clear()
        _MERGED[k] = hit
    return hit


def prepare_runtime_env(w: CoreWorker, env_json: str) -> None:
    """Ask the driver's node to set the job's env up now (``eager_install``),
    not at the first task; failures show at that task."""
    from jray._private.protocol import raylet_pb2 as rpb

    async def run() -> None:
        try:
            await w.raylet.PrepareRuntimeEnv(rpb.PrepareRuntimeEnvRequest(runtime_env=env_json), timeout=5)
        except Exception:  # noqa: BLE001 - best effort; the first task sets it up otherwise
            pass

    w.spawn(run())
