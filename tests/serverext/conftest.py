"""Fixtures for the server extension: a jray head the tests start (the server
attaches to it), and a driver in a subprocess that runs tasks on it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from jray._private import node as _node

EXT = "jray.jupyter.serverext"
STORE = 64 * 1024 * 1024


@pytest.fixture(scope="module")
def head():
    """A 1-CPU head this test process owns; stopped with the module."""
    h = _node.start_head(num_cpus=1, num_gpus=0, object_store_memory=STORE)
    yield h
    _node.stop_cluster(h)


def run_driver(address: str, token: str, code: str, timeout: float = 90) -> str:
    """Run ``code`` in a fresh Python process attached with ``jray.init()``
    through JRAY_ADDRESS/JRAY_TOKEN (as a kernel of the server would)."""
    env = dict(os.environ, JRAY_ADDRESS=address, JRAY_TOKEN=token)
    src = "import jray\njray.init()\n" + textwrap.dedent(code) + "\njray.shutdown()\n"
    out = subprocess.run([sys.executable, "-c", src], env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout
