"""Packages of code for ``working_dir`` and ``py_modules``.

A local directory is packed on the driver's machine into a zip whose name is
the hash of its files (relative path, executable bit and content), so the
same code is uploaded once and a changed file makes a new package. Excluded:
``.git``, ``__pycache__``, the runtime_env's ``excludes`` (gitignore-style
patterns) and what ``.gitignore`` / ``.jrayignore`` files in the directory
name. A package over the size limit is refused before anything is read in
full, naming the largest files.

URIs are ``gcs://_jray_pkg_<hash>.zip``: the head keeps the package (see the
GCS's ``PackageStore``); nodes download it and unpack it once into their
cache.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass

from jray._private import config

URI_PREFIX = "gcs://_jray_pkg_"
_ALWAYS_EXCLUDED_DIRS = {".git", "__pycache__", ".ipynb_checkpoints"}
_IGNORE_FILES = (".gitignore", ".jrayignore")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class PackageTooLargeError(ValueError):
    pass


@dataclass(frozen=True)
class Package:
    uri: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


def is_package_uri(s: str) -> bool:
    return s.startswith(URI_PREFIX) and s.endswith(".zip")


def uri_for(digest: str) -> str:
    return f"{URI_PREFIX}{digest[:40]}.zip"


def max_package_bytes() -> int:
    return int(config.RUNTIME_ENV_MAX_PACKAGE_BYTES)


def _spec(patterns: Iterable[str]):  # type: ignore[no-untyped-def]
    import pathspec

    lines = [p for p in patterns if p.strip() and not p.lstrip().startswith("#")]
    return pathspec.GitIgnoreSpec.from_lines(lines) if lines else None  # git's own matching rules


def _read_ignore_file(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()
    except OSError:
        return []


def list_files(root: str, excludes: list[str] | None = None) -> list[tuple[str, str, int]]:
    """``(relative path, absolute path, size)`` of every file to pack, sorted.

    ``excludes`` are gitignore-style patterns relative to ``root``; each
    directory's ``.gitignore``/``.jrayignore`` applies below it."""
    root = os.path.abspath(root)
    specs: list[tuple[str, object]] = []  # (directory prefix relative to root, spec)
    top = _spec(list(excludes or []))
    if top is not None:
        specs.append(("", top))
    out: list[tuple[str, str, int]] = []

    def ignored(rel: str, is_dir: bool) -> bool:
        for prefix, spec in specs:
            if prefix and not rel.startswith(prefix):
                continue
            sub = rel[len(prefix):] + ("/" if is_dir else "")
            if spec.match_file(sub):  # type: ignore[attr-defined]
                return True
        return False

    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        for name in _IGNORE_FILES:
            if name in filenames:
                spec = _spec(_read_ignore_file(os.path.join(dirpath, name)))
                if spec is not None:
                    specs.append((rel_dir, spec))
        keep = []
        for d in sorted(dirnames):
            if d in _ALWAYS_EXCLUDED_DIRS or ignored(rel_dir + d, True):
                continue
            if os.path.islink(os.path.join(dirpath, d)):
                continue
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            rel = rel_dir + name
            if ignored(rel, False):
                continue
            full = os.path.join(dirpath, name)
            try:
                st = os.stat(full)
            except OSError:
                continue  # a dangling link
            if stat.S_ISREG(st.st_mode):
                out.append((rel, full, st.st_size))
    out.sort()
    return out


def _check_size(files: list[tuple[str, str, int]], what: str, limit: int) -> None:
    total = sum(s for _r, _f, s in files)
    if total <= limit:
        return
    largest = sorted(files, key=lambda f: -f[2])[:5]
    names = ", ".join(f"{r} ({_mib(s)})" for r, _f, s in largest)
    raise PackageTooLargeError(
        f"{what} is {_mib(total)}, over the runtime_env package limit of {_mib(limit)} "
        f"(JRAY_RUNTIME_ENV_MAX_PACKAGE_BYTES). Largest files: {names}. Exclude them with "
        f"runtime_env={{'excludes': [...]}} or a .jrayignore file, or raise the limit.")


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def pack_directory(path: str, excludes: list[str] | None = None, *, prefix: str = "",
                   limit: int | None = None) -> Package:
    """Zip the directory ``path`` (its files under ``prefix`` inside the zip,
    e.g. a package's own name for ``py_modules``)."""
    path = os.path.abspath(path)
    files = list_files(path, excludes)
    _check_size(files, f"The directory {path}", max_package_bytes() if limit is None else limit)
    return _zip_files(files, prefix)


def pack_file(path: str, arcname: str) -> Package:
    """A one-file package (a single-module ``py_modules`` entry)."""
    size = os.path.getsize(path)
    _check_size([(arcname, path, size)], f"The file {path}", max_package_bytes())
    return _zip_files([(arcname, path, size)], "")


def _zip_files(files: list[tuple[str, str, int]], prefix: str) -> Package:
    h = hashlib.sha256()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for rel, full, _size in files:
            arc = f"{prefix}/{rel}" if prefix else rel
            with open(full, "rb") as f:
                data = f.read()
            mode = os.stat(full).st_mode
            h.update(arc.encode() + b"\0" + (b"x" if mode & 0o111 else b"-") + b"\0")
            h.update(hashlib.sha256(data).digest())
            info = zipfile.ZipInfo(arc, _ZIP_DATE)
            info.external_attr = ((0o755 if mode & 0o111 else 0o644) | stat.S_IFREG) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return Package(uri_for(h.hexdigest()), buf.getvalue())


def pack_zip_file(path: str) -> Package:
    """A user's own .zip (or .whl) uploaded as it is, named by its content."""
    size = os.path.getsize(path)
    _check_size([(os.path.basename(path), path, size)], f"The file {path}", max_package_bytes())
    with open(path, "rb") as f:
        data = f.read()
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise ValueError(f"{path} is not a zip file")
    return Package(uri_for(hashlib.sha256(data).hexdigest()), data)


def unpack(zip_path: str, dest: str, *, unwrap_single_dir: bool) -> None:
    """Unpack into ``dest`` (created atomically: a partial unpack is never
    seen). ``unwrap_single_dir``: a zip holding one top-level directory and
    nothing else is unpacked from inside it (Ray's working_dir zip rule)."""
    tmp = f"{dest}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp, mode=0o700)
    with zipfile.ZipFile(zip_path) as z:
        for info in z.infolist():
            name = info.filename
            if name.startswith("/") or ".." in name.split("/"):
                raise ValueError(f"unsafe path {name!r} in package {os.path.basename(zip_path)}")
        z.extractall(tmp)
        for info in z.infolist():
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                os.chmod(os.path.join(tmp, info.filename), mode)
    src = tmp
    if unwrap_single_dir:
        entries = os.listdir(tmp)
        if len(entries) == 1 and os.path.isdir(os.path.join(tmp, entries[0])):
            src = os.path.join(tmp, entries[0])
    try:
        os.rename(src, dest)
    except OSError:
        if not os.path.isdir(dest):  # not another process that unpacked it first
            raise
    shutil.rmtree(tmp, ignore_errors=True)


def dir_size(path: str) -> int:
    total = 0
    for dirpath, _d, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total
