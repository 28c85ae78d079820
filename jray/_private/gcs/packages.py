"""The head's store of runtime_env packages (working_dir, py_modules).

Content-addressed zip files under the session's ``packages`` directory:
written once (an upload of a package that exists is a no-op), read by the
nodes in chunks. Bounded: past ``RUNTIME_ENV_HEAD_CACHE_BYTES`` the least
recently used packages are deleted (a node that still needs one is sent it
again by the next driver that uses it; a job's own package is re-uploaded
at its next ``init``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from jray._private import config
from jray._private.runtime_env.packaging import is_package_uri


class PackageStore:
    def __init__(self, directory: str, limit_bytes: int | None = None) -> None:
        self.directory = directory
        self.limit = int(config.RUNTIME_ENV_HEAD_CACHE_BYTES if limit_bytes is None else limit_bytes)
        os.makedirs(directory, mode=0o700, exist_ok=True)

    def path(self, uri: str) -> str:
        if not is_package_uri(uri) or "/" in uri.split("://", 1)[1]:
            raise ValueError(f"not a package URI: {uri!r}")
        return os.path.join(self.directory, uri.split("://", 1)[1])

    def size(self, uri: str) -> int | None:
        try:
            return os.path.getsize(self.path(uri))
        except OSError:
            return None

    def write(self, uri: str, chunks: Iterator[bytes], total: int) -> None:
        """Store a package from its chunks (atomically: a partial upload is never served)."""
        final = self.path(uri)
        tmp = f"{final}.part-{time.time_ns()}"
        written = 0
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                for c in chunks:
                    written += len(c)
                    if written > max(total, 0) or written > config.RUNTIME_ENV_MAX_PACKAGE_BYTES * 2:
                        raise ValueError(f"package {uri} is larger than announced ({total} bytes)")
                    f.write(c)
            if written != total:
                raise ValueError(f"package {uri} upload incomplete: {written} of {total} bytes")
            os.replace(tmp, final)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        self.evict()

    def read(self, uri: str, chunk: int) -> Iterator[bytes]:
        p = self.path(uri)
        os.utime(p)  # recently used
        with open(p, "rb") as f:
            while True:
                b = f.read(chunk)
                if not b:
                    return
                yield b

    def evict(self) -> None:
        entries = []
        for name in os.listdir(self.directory):
            if ".part-" in name:
                continue
            p = os.path.join(self.directory, name)
            try:
                st = os.stat(p)
            except OSError:
                continue
            entries.append((st.st_mtime, st.st_size, p))
        total = sum(e[1] for e in entries)
        for _mtime, size, p in sorted(entries):
            if total <= self.limit:
                break
            try:
                os.unlink(p)
                total -= size
            except OSError:
                pass
