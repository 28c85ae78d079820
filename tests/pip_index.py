"""Whether pip tests can run: a package index must be reachable and the
package they install must not be in the test environment already."""

from __future__ import annotations

import functools
import importlib.util
import subprocess
import sys
import tempfile

import pytest

PIP_PKG = "pyjokes"  # small, pure Python, no dependencies


@functools.lru_cache(maxsize=1)
def unreachable_reason() -> str | None:
    if importlib.util.find_spec(PIP_PKG) is not None:
        return f"{PIP_PKG} is installed in the test environment: a pip env would prove nothing"
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", d, PIP_PKG],
                           capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        return f"no package index reachable (pip download {PIP_PKG} failed: {r.stderr.strip()[-300:]})"
    return None


def need_index() -> None:
    reason = unreachable_reason()
    if reason:
        pytest.skip(reason)
