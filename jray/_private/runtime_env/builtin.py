"""The built-in runtime_env fields, each a plugin (see ``plugin.py``).

``env_vars``, ``working_dir``, ``py_modules`` and ``pip`` are set up here;
``conda`` and ``container``/``image_uri`` check for their tool and fail
with a clear ``RuntimeEnvSetupError`` where it is missing. Validation runs
on the driver (``validate``), the rest on the node, in the raylet's
``RuntimeEnvAgent``.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import logging
import os
import shutil
import site
import sys
import time
import types
import urllib.request
from typing import Any

from jray._private import config
from jray._private.runtime_env import packaging
from jray._private.runtime_env.plugin import RuntimeEnvContext, RuntimeEnvPlugin

REMOTE_SCHEMES = ("gcs://", "http://", "https://")


def _prepend_pythonpath(ctx: RuntimeEnvContext, path: str) -> None:
    old = ctx.env_vars.get("PYTHONPATH") or os.environ.get("PYTHONPATH", "")
    ctx.env_vars["PYTHONPATH"] = path + (os.pathsep + old if old else "")


def _check_remote_uri(field: str, s: str) -> str:
    if not s.startswith(REMOTE_SCHEMES):
        scheme = s.split("://", 1)[0]
        raise ValueError(f"runtime_env {field}: the URI scheme {scheme!r} of {s!r} is not supported "
                         f"(supported: a local path, {', '.join(REMOTE_SCHEMES)})")
    if not s.endswith((".zip", ".whl")):
        raise ValueError(f"runtime_env {field}: the remote package {s!r} must be a .zip (or a .whl) file")
    return s


class _PackagePlugin(RuntimeEnvPlugin):
    """Common to working_dir and py_modules: a package named by a URI,
    downloaded once per node and unpacked into the node's cache."""

    subdir = ""
    unwrap_single_dir = False

    def path_of(self, uri: str) -> str:
        assert self.node is not None
        name = uri.rsplit("/", 1)[-1]
        if uri.startswith(("http://", "https://")):
            name = hashlib.sha256(uri.encode()).hexdigest()[:32] + "_" + name
        return os.path.join(self.node.cache_dir, self.subdir, name.rsplit(".", 1)[0])

    async def create(self, uri: str | None, runtime_env: dict[str, Any], context: RuntimeEnvContext,
                     logger: logging.Logger) -> int:
        assert uri is not None and self.node is not None
        dest = self.path_of(uri)
        if os.path.isdir(dest):
            return packaging.dir_size(dest)
        os.makedirs(os.path.dirname(dest), mode=0o700, exist_ok=True)
        zpath = f"{dest}.zip.part"
        t0 = time.monotonic()
        if packaging.is_package_uri(uri):
            await self.node.download(uri, zpath)
        else:
            await asyncio.to_thread(_download_http, uri, zpath)
        logger.info("downloaded %s (%d bytes) in %.2f s", uri, os.path.getsize(zpath), time.monotonic() - t0)
        try:
            await asyncio.to_thread(packaging.unpack, zpath, dest, unwrap_single_dir=self.unwrap_single_dir)
        finally:
            try:
                os.unlink(zpath)
            except OSError:
                pass
        logger.info("unpacked %s into %s", uri, dest)
        return packaging.dir_size(dest)

    def delete_uri(self, uri: str, logger: logging.Logger) -> int:
        dest = self.path_of(uri)
        size = packaging.dir_size(dest)
        shutil.rmtree(dest, ignore_errors=True)
        logger.info("deleted %s (%d bytes)", dest, size)
        return size


def _download_http(url: str, dest: str) -> None:
    with urllib.request.urlopen(url, timeout=60) as r, open(dest, "wb") as f:  # noqa: S310 - user-given URL
        shutil.copyfileobj(r, f, 1 << 20)


class WorkingDirPlugin(_PackagePlugin):
    name = "working_dir"
    priority = 5
    subdir = "working_dir"
    unwrap_single_dir = True

    @staticmethod
    def validate(value: Any) -> Any:
        if not isinstance(value, str):
            raise TypeError(f"runtime_env working_dir must be a string (a local directory, a .zip file "
                            f"or a URI), got {type(value).__name__}")
        if "://" in value:
            return _check_remote_uri("working_dir", value)
        path = os.path.abspath(os.path.expanduser(value))
        if not os.path.exists(path):
            raise ValueError(f"runtime_env working_dir {value!r} does not exist")
        if not os.path.isdir(path) and not path.endswith(".zip"):
            raise ValueError(f"runtime_env working_dir {value!r} must be a directory or a .zip file")
        return path

    def get_uris(self, runtime_env: dict[str, Any]) -> list[str]:
        v = runtime_env.get("working_dir")
        return [v] if isinstance(v, str) and "://" in v else []

    def modify_context(self, uris: list[str], runtime_env: dict[str, Any], context: RuntimeEnvContext,
                       logger: logging.Logger) -> None:
        for uri in uris:
            path = self.path_of(uri)
            context.cwd = path
            context.sys_path.insert(0, path)
            _prepend_pythonpath(context, path)


class PyModulesPlugin(_PackagePlugin):
    name = "py_modules"
    priority = 6
    subdir = "py_modules"

    @staticmethod
    def validate(value: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"runtime_env py_modules must be a list (of local directories, modules, .whl "
                            f"files or URIs), got {type(value).__name__}")
        out = []
        for m in value:
            if isinstance(m, types.ModuleType):
                paths = list(getattr(m, "__path__", []) or [])
                f = paths[0] if paths else getattr(m, "__file__", None)
                if not f:
                    raise ValueError(f"runtime_env py_modules: the module {m.__name__} has no file to ship")
                out.append(os.path.abspath(f))
                continue
            if not isinstance(m, str):
                raise TypeError(f"runtime_env py_modules entries must be paths, modules or URIs, got "
                                f"{type(m).__name__}")
            if "://" in m:
                out.append(_check_remote_uri("py_modules", m))
                continue
            path = os.path.abspath(os.path.expanduser(m))
            if not os.path.exists(path):
                raise ValueError(f"runtime_env py_modules entry {m!r} does not exist")
            if os.path.isfile(path) and not path.endswith((".py", ".whl", ".zip")):
                raise ValueError(f"runtime_env py_modules entry {m!r} must be a directory, a .py file, "
                                 "a .whl or a .zip")
            out.append(path)
        return out

    def get_uris(self, runtime_env: dict[str, Any]) -> list[str]:
        return [m for m in runtime_env.get("py_modules") or [] if "://" in m]

    def modify_context(self, uris: list[str], runtime_env: dict[str, Any], context: RuntimeEnvContext,
                       logger: logging.Logger) -> None:
        for uri in uris:
            path = self.path_of(uri)
            context.sys_path.append(path)
            _prepend_pythonpath(context, path)


class EnvVarsPlugin(RuntimeEnvPlugin):
    name = "env_vars"
    priority = 1

    @staticmethod
    def validate(value: Any) -> Any:
        if not isinstance(value, dict):
            raise TypeError(f"runtime_env env_vars must be a dict of str to str, got {type(value).__name__}")
        for k, v in value.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(f"runtime_env env_vars must be a dict of str to str: {k!r}: {v!r} "
                                f"is {type(k).__name__}: {type(v).__name__}")
        return dict(value)

    def modify_context(self, uris: list[str], runtime_env: dict[str, Any], context: RuntimeEnvContext,
                       logger: logging.Logger) -> None:
        env = runtime_env.get("env_vars") or {}
        for k, v in env.items():
            if k == "PYTHONPATH" and context.env_vars.get(k):
                context.env_vars[k] = context.env_vars[k] + os.pathsep + v
            else:
                context.env_vars[k] = v


def _check_requirement(line: str) -> None:
    s = line.strip()
    if not s or s.startswith("-") or "://" in s or s.startswith((".", "/")):
        return  # pip options (--index-url ...), URLs and local paths go to pip as they are
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        Requirement(s)
    except InvalidRequirement as e:
        raise ValueError(f"runtime_env pip: {s!r} is not a valid requirement: {e}") from None


class PipPlugin(RuntimeEnvPlugin):
    """One virtual environment per distinct requirement set and machine,
    layered over the node's Python (its site-packages are on the venv's
    path, so jray, numpy and the rest are not installed again)."""

    name = "pip"
    priority = 8

    @staticmethod
    def validate(value: Any) -> Any:
        if isinstance(value, str):
            path = os.path.abspath(os.path.expanduser(value))
            if not os.path.isfile(path):
                raise ValueError(f"runtime_env pip: the requirements file {value!r} does not exist "
                                 "(pip takes a list of requirements, a requirements file or a dict)")
            with open(path) as f:
                packages = [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
            value = {"packages": packages}
        elif isinstance(value, (list, tuple)):
            value = {"packages": list(value)}
        elif not isinstance(value, dict):
            raise TypeError(f"runtime_env pip must be a list of requirements, a requirements file or a dict, "
                            f"got {type(value).__name__}")
        unknown = set(value) - {"packages", "pip_check", "pip_version", "pip_install_options"}
        if unknown:
            raise ValueError(f"runtime_env pip: unknown keys {sorted(unknown)} (known: packages, pip_check, "
                             "pip_version, pip_install_options)")
        packages = value.get("packages")
        if isinstance(packages, str):
            return PipPlugin.validate(packages)
        if not isinstance(packages, list) or not all(isinstance(p, str) for p in packages):
            raise TypeError("runtime_env pip['packages'] must be a list of requirement strings")
        for p in packages:
            _check_requirement(p)
        out: dict[str, Any] = {"packages": [p.strip() for p in packages if p.strip()]}
        for k in ("pip_check", "pip_version", "pip_install_options"):
            if value.get(k) is not None:
                out[k] = value[k]
        return out

    def get_uris(self, runtime_env: dict[str, Any]) -> list[str]:
        spec = runtime_env.get("pip")
        if not spec or not spec.get("packages"):
            return []
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]
        return [f"pip://{digest}"]

    def env_dir(self, uri: str) -> str:
        assert self.node is not None
        return os.path.join(self.node.machine_cache_dir, "pip", uri.split("://", 1)[1])

    async def create(self, uri: str | None, runtime_env: dict[str, Any], context: RuntimeEnvContext,
                     logger: logging.Logger) -> int:
        assert uri is not None
        d = self.env_dir(uri)
        os.makedirs(os.path.dirname(d), mode=0o700, exist_ok=True)
        lock_fd = os.open(d + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # Another node of this machine may be building the same env.
            await asyncio.to_thread(fcntl.flock, lock_fd, fcntl.LOCK_EX)
            if os.path.exists(os.path.join(d, ".ready")):
                _touch(os.path.join(d, ".ready"))
                logger.info("pip env %s is ready (cached)", d)
                return packaging.dir_size(d)
            shutil.rmtree(d, ignore_errors=True)
            await _build_venv(d, runtime_env["pip"], logger)
            with open(os.path.join(d, ".ready"), "w") as f:
                f.write(json.dumps(runtime_env["pip"]))
            return packaging.dir_size(d)
        finally:
            os.close(lock_fd)

    def modify_context(self, uris: list[str], runtime_env: dict[str, Any], context: RuntimeEnvContext,
                       logger: logging.Logger) -> None:
        for uri in uris:
            context.py_executable = os.path.join(self.env_dir(uri), "bin", "python")

    def delete_uri(self, uri: str, logger: logging.Logger) -> int:
        d = self.env_dir(uri)
        size = packaging.dir_size(d)
        shutil.rmtree(d, ignore_errors=True)
        try:
            os.unlink(d + ".lock")
        except OSError:
            pass
        logger.info("deleted pip env %s (%d bytes)", d, size)
        return size


def _touch(path: str) -> None:
    try:
        os.utime(path)
    except OSError:
        pass


def _node_site_dirs() -> list[str]:
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        dirs.append(site.getusersitepackages())
    return [d for d in dirs if os.path.isdir(d)]


async def _run_logged(argv: list[str], logger: logging.Logger, env: dict[str, str] | None = None) -> tuple[int, str]:
    logger.info("$ %s", " ".join(argv))
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT, env=env)
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            lines.append(line)
            logger.info("%s", line)
        rc = await proc.wait()
    except asyncio.CancelledError:  # setup timed out: do not leave pip running
        proc.kill()
        await proc.wait()
        raise
    return rc, "\n".join(lines)


async def _build_venv(d: str, spec: dict[str, Any], logger: logging.Logger) -> None:
    t0 = time.monotonic()
    rc, out = await _run_logged([sys.executable, "-m", "venv", "--without-pip", d], logger)
    if rc != 0:
        raise RuntimeError(f"creating the virtual environment {d} failed:\n{out[-2000:]}")
    probe = await asyncio.create_subprocess_exec(
        os.path.join(d, "bin", "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        stdout=asyncio.subprocess.PIPE)
    purelib = (await probe.communicate())[0].decode().strip()
    # Layer over the node's environment: its site directories (and their
    # .pth files, editable installs among them) come after the venv's own.
    with open(os.path.join(purelib, "_jray_node_env.pth"), "w") as f:
        f.write("import site; " + "; ".join(f"site.addsitedir({p!r})" for p in _node_site_dirs()) + "\n")
    env = dict(os.environ, PIP_NO_INPUT="1")
    env.pop("PYTHONPATH", None)
    uv = _uv_binary(spec)
    if uv is not None:
        rc, out = await _uv_install(uv, d, spec, logger, env)
    else:
        argv = [os.path.join(d, "bin", "python"), "-m", "pip", "install", "--disable-pip-version-check",
                "--no-input", *list(spec.get("pip_install_options") or []), *spec["packages"]]
        rc, out = await _run_logged(argv, logger, env)
    if rc != 0:
        tail = "\n".join(ln for ln in out.splitlines() if "is ignored: it is neither a file" not in ln)[-3000:]
        raise RuntimeError(f"pip install {' '.join(spec['packages'])} failed (exit {rc}):\n{tail}")
    if spec.get("pip_check"):
        rc, out = await _run_logged([os.path.join(d, "bin", "python"), "-m", "pip", "check"], logger, env)
        if rc != 0:
            raise RuntimeError(f"pip check failed:\n{out[-2000:]}")
    logger.info("pip env built in %.1f s", time.monotonic() - t0)


def _uv_binary(spec: dict[str, Any]) -> str | None:
    """uv's binary when it installs this env: ``RUNTIME_ENV_PIP_INSTALLER``
    is "uv", or "auto" and uv is installed (on PATH or as the ``uv`` Python
    package), and the env uses nothing only pip understands (pip options,
    ``pip_install_options``, ``pip_version``)."""
    choice = config.RUNTIME_ENV_PIP_INSTALLER
    if choice == "pip":
        return None
    pip_only = (spec.get("pip_install_options") or spec.get("pip_version")
                or any(p.startswith("-") for p in spec["packages"]))
    exe = shutil.which("uv")
    if exe is None:
        try:
            from uv import find_uv_bin  # type: ignore[import-not-found]

            exe = find_uv_bin()
        except Exception:  # noqa: BLE001 - not installed
            exe = None
    if exe is None or pip_only:
        if choice == "uv":
            raise RuntimeError("runtime_env pip: JRAY_RUNTIME_ENV_PIP_INSTALLER=uv but "
                               + ("uv is not installed on this node" if exe is None else
                                  "this env uses pip-only options"))
        return None
    return exe


def _pip_config_args() -> tuple[list[str], dict[str, str]]:
    """The node's pip configuration (pip.conf, PIP_* variables: index,
    extra indexes, find-links, constraints, certificates) as uv's options,
    so a uv install looks where a pip install would. A ``file://`` index or
    a find-links directory that does not exist is left out, as pip ignores it."""
    import subprocess

    try:
        out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return [], {}
    values: dict[str, str] = {}
    for line in out.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.rsplit(".", 1)[-1]] = value.strip().strip("'\"")

    def present(loc: str) -> bool:
        path = loc[len("file://"):] if loc.startswith("file://") else loc if "://" not in loc else ""
        return not path or os.path.exists(path)

    args: list[str] = []
    env: dict[str, str] = {}
    if values.get("no-index", "").lower() in ("1", "true", "yes", "on"):
        args.append("--no-index")
    if values.get("index-url") and present(values["index-url"]):
        args += ["--index-url", values["index-url"]]
    for u in values.get("extra-index-url", "").split():
        if present(u):
            args += ["--extra-index-url", u]
    for u in values.get("find-links", "").split():
        if present(u):
            args += ["--find-links", u]
    for c in values.get("constraint", "").split():
        if os.path.isfile(c):
            args += ["--constraint", c]
    if "--extra-index-url" in args or "--find-links" in args:
        args += ["--index-strategy", "unsafe-best-match"]  # pip's rule: the best version of all indexes
    if values.get("cert"):
        env["SSL_CERT_FILE"] = values["cert"]
    return args, env


def _node_distributions() -> dict[str, str]:
    """Normalised name -> version of what the node's environment has."""
    import importlib.metadata
    import re

    out: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name:
            out.setdefault(re.sub(r"[-_.]+", "-", name).lower(), dist.version)
    return out


async def _uv_install(uv: str, d: str, spec: dict[str, Any], logger: logging.Logger,
                      env: dict[str, str]) -> tuple[int, str]:
    """Install with uv, layered like pip's install: resolve the requirements
    preferring the versions the node has (uv does not count the node's
    site-packages as installed), then install only what the node lacks,
    without dependencies. A set the node's versions cannot satisfy is
    resolved freely (the venv's copies then shadow the node's)."""
    import re
    import tempfile

    py = os.path.join(d, "bin", "python")
    cfg_args, cfg_env = await asyncio.to_thread(_pip_config_args)
    env = {**env, **cfg_env, "UV_NO_PROGRESS": "1"}
    env.pop("VIRTUAL_ENV", None)
    node = await asyncio.to_thread(_node_distributions)
    with tempfile.TemporaryDirectory(prefix="jray-uv-") as tmp:
        reqs = os.path.join(tmp, "requirements.in")
        with open(reqs, "w") as f:
            f.write("\n".join(spec["packages"]) + "\n")
        pins = os.path.join(tmp, "node-constraints.txt")
        with open(pins, "w") as f:
            f.write("".join(f"{n}=={v}\n" for n, v in sorted(node.items())))
        lock = os.path.join(tmp, "requirements.txt")
        base = [uv, "pip", "compile", reqs, "--python", py, "--no-header", "--no-annotate", "--quiet",
                "-o", lock, *cfg_args]
        rc, out = await _run_logged([*base, "--constraint", pins], logger, env)
        if rc != 0:
            logger.info("the node's package versions cannot satisfy %s: resolving without them", spec["packages"])
            rc, out = await _run_logged(base, logger, env)
            if rc != 0:
                return rc, out
        wanted = []
        with open(lock) as f:
            for line in f:
                line = line.split("#", 1)[0].strip()
                if not line or line.startswith("-"):
                    continue
                m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
                if m and node.get(re.sub(r"[-_.]+", "-", m.group(1)).lower()) == m.group(2):
                    continue  # the node has exactly this: not installed again
                wanted.append(line)
        logger.info("installing %d package(s) the node lacks: %s", len(wanted), " ".join(wanted) or "(none)")
        if not wanted:
            return 0, ""
        return await _run_logged([uv, "pip", "install", "--python", py, "--no-deps", *cfg_args, *wanted],
                                 logger, env)


class CondaPlugin(RuntimeEnvPlugin):
    name = "conda"
    priority = 7

    @staticmethod
    def validate(value: Any) -> Any:
        if not isinstance(value, (str, dict)):
            raise TypeError(f"runtime_env conda must be an env name, an environment.yml path or a dict, "
                            f"got {type(value).__name__}")
        return value

    async def create(self, uri: str | None, runtime_env: dict[str, Any], context: RuntimeEnvContext,
                     logger: logging.Logger) -> int:
        exe = os.environ.get("CONDA_EXE") or shutil.which("conda") or shutil.which("mamba")
        if not exe:
            raise RuntimeError("runtime_env conda: conda is not installed on this node (no `conda` or "
                               "`mamba` on PATH, CONDA_EXE unset); install it or use runtime_env pip")
        value = runtime_env["conda"]
        if not isinstance(value, str) or value.endswith((".yml", ".yaml")):
            raise RuntimeError("runtime_env conda: creating environments from a spec is not supported by "
                               "jray yet; name an existing conda environment instead")
        rc, out = await _run_logged([exe, "run", "-n", value, "python", "-c", "import sys; print(sys.executable)"],
                                    logger)
        if rc != 0:
            raise RuntimeError(f"runtime_env conda: the environment {value!r} is not usable:\n{out[-1500:]}")
        context.py_executable = out.strip().splitlines()[-1]
        return 0


# Pickled setup hooks of this process, by the hash the env names them with
# ("pickled:<sha>"); the driver exports them to the GCS (resolve.py) where
# workers fetch them.
SETUP_HOOKS: dict[str, bytes] = {}


class WorkerProcessSetupHookPlugin(RuntimeEnvPlugin):
    """``worker_process_setup_hook``: a callable (or ``"module.function"``)
    every worker of the env runs once at start, before its first task (Ray's
    way to set up logging, env or imports in each worker). A hook that
    raises fails the tasks sent to that worker with ``RuntimeEnvSetupError``
    carrying its traceback."""

    name = "worker_process_setup_hook"
    priority = 2

    @staticmethod
    def validate(value: Any) -> Any:
        if isinstance(value, str):
            if value.startswith("pickled:"):
                return value
            if "." not in value.strip(".") or any(not part.isidentifier() for part in value.split(".")):
                raise ValueError(f"runtime_env worker_process_setup_hook {value!r} is not a 'module.function' path")
            return value
        if not callable(value):
            raise TypeError("runtime_env worker_process_setup_hook must be a callable or a 'module.function' "
                            f"string, got {type(value).__name__}")
        import hashlib

        import cloudpickle

        pickled = cloudpickle.dumps(value)
        sha = hashlib.sha256(pickled).hexdigest()[:32]
        SETUP_HOOKS[sha] = pickled
        return f"pickled:{sha}"

    def modify_context(self, uris: list[str], runtime_env: dict[str, Any], context: RuntimeEnvContext,
                       logger: logging.Logger) -> None:
        context.env_vars["JRAY_WORKER_SETUP_HOOK"] = runtime_env["worker_process_setup_hook"]


def run_setup_hook(load_exported: Any) -> str | None:
    """In a worker: run the env's setup hook (``JRAY_WORKER_SETUP_HOOK``), if
    any; the traceback text when it failed. ``load_exported(key)`` fetches
    an exported pickled function from the GCS."""
    spec = os.environ.get("JRAY_WORKER_SETUP_HOOK")
    if not spec:
        return None
    import traceback

    try:
        if spec.startswith("pickled:"):
            fn = load_exported("setup_hook:" + spec.removeprefix("pickled:"))
        else:
            import importlib

            module, _, attr = spec.rpartition(".")
            fn = getattr(importlib.import_module(module), attr)
        fn()
    except BaseException as e:  # noqa: BLE001 - reported with the tasks this worker gets
        return f"worker_process_setup_hook {spec!r} failed:\n" + "".join(
            traceback.format_exception(type(e), e, e.__traceback__))
    return None


class ContainerPlugin(RuntimeEnvPlugin):
    name = "container"
    priority = 9

    @staticmethod
    def validate(value: Any) -> Any:
        if not isinstance(value, dict) or not isinstance(value.get("image"), str):
            raise TypeError("runtime_env container must be a dict with an 'image' string")
        return value

    async def create(self, uri: str | None, runtime_env: dict[str, Any], context: RuntimeEnvContext,
                     logger: logging.Logger) -> int:
        raise RuntimeError(_container_missing(runtime_env.get("container", {}).get("image", "")))


class ImageUriPlugin(ContainerPlugin):
    name = "image_uri"

    @staticmethod
    def validate(value: Any) -> Any:
        if not isinstance(value, str) or not value:
            raise TypeError("runtime_env image_uri must be an image name string")
        return value

    async def create(self, uri: str | None, runtime_env: dict[str, Any], context: RuntimeEnvContext,
                     logger: logging.Logger) -> int:
        raise RuntimeError(_container_missing(runtime_env["image_uri"]))


def _container_missing(image: str) -> str:
    tool = shutil.which("podman")
    if tool is None:
        return (f"runtime_env container/image_uri {image!r}: podman is not installed on this node; "
                "containers need podman and an image that holds the same Python and jray")
    return (f"runtime_env container/image_uri {image!r}: running workers in containers is not supported "
            "by jray yet (podman is installed)")


PLUGINS: tuple[type[RuntimeEnvPlugin], ...] = (
    EnvVarsPlugin, WorkingDirPlugin, PyModulesPlugin, PipPlugin, CondaPlugin, ContainerPlugin, ImageUriPlugin,
    WorkerProcessSetupHookPlugin,
)
