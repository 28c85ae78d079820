"""A Binder launch, rehearsed: a fresh virtualenv built from ``binder/``'s
files alone, JupyterLab started in it, and every demo notebook run by a
kernel of that server, attached to the cluster the server extension started
(with a 64 MB /dev/shm, as in a Binder pod, where a mount namespace is allowed).

What repo2docker does, in order: install ``binder/requirements.txt``, run
``binder/postBuild`` from the repository root, start the server. Here the
repository is a copy of the working tree's files (tracked, or untracked and
not ignored: what a push would carry), so nothing built in this checkout
(``.venv``, caches) helps. Slow: pip installs JupyterLab and its
dependencies (from the machine's package index or wheel cache).
"""

from __future__ import annotations

import faulthandler
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
jupyter_client = pytest.importorskip("jupyter_client")

REPO = Path(__file__).resolve().parents[2]
CELL_TIMEOUT = 120  # seconds per cell: the machine is small and shared


def _sh(cmd: list[str], log: Path, **kw: Any) -> str:
    """Run ``cmd``, its output kept in ``log``; fail with the log's tail."""
    with open(log, "w") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kw).returncode
    out = log.read_text()
    assert rc == 0, f"{' '.join(map(str, cmd))} exited {rc}:\n{out[-4000:]}"
    return out


def _copy_repo(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():  # deleted but not yet committed files are listed too
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def _env(tmp: Path, venv: Path) -> dict[str, str]:
    """The venv first on PATH, Jupyter's and IPython's per-user dirs in tmp
    (no user config or kernelspec of this machine leaks in), no cluster
    address inherited (the server provides it)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "JRAY_ADDRESS", "JRAY_TOKEN", "RAY_ADDRESS",
                        "JUPYTER_PATH", "JUPYTER_CONFIG_PATH")}
    for var, sub in (("JUPYTER_CONFIG_DIR", "jupyter-config"), ("JUPYTER_DATA_DIR", "jupyter-data"),
                     ("JUPYTER_RUNTIME_DIR", "jupyter-runtime"), ("IPYTHONDIR", "ipython")):
        (tmp / sub).mkdir()
        env[var] = str(tmp / sub)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    return env


BINDER_SHM = "64m"  # a Binder pod's /dev/shm: Docker's default size
_MOUNT_SHM = f"mount -t tmpfs -o size={BINDER_SHM} tmpfs /dev/shm"


def _with_binders_shm(args: list[str]) -> tuple[list[str], bool]:
    """``args`` run with a private /dev/shm of Binder's size, where this machine
    allows a mount namespace (root in a container); as they are otherwise.
    The flag says which."""
    if shutil.which("unshare") is None:
        return args, False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", _MOUNT_SHM], capture_output=True)
    if probe.returncode != 0:
        return args, False
    return ["unshare", "-m", "sh", "-c", f'{_MOUNT_SHM} && exec "$@"', "sh", *args], True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    """The Jupyter server's REST API, with its token."""

    def __init__(self, port: int, token: str) -> None:
        self.base, self.token = f"http://127.0.0.1:{port}/", token

    def call(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
        req = urllib.request.Request(self.base + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"token {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read().decode()
        return json.loads(text) if text else None

    def wait_for_cluster(self, proc: subprocess.Popen, log: Path, timeout: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"the Jupyter server exited:\n{log.read_text()[-4000:]}"
            try:
                last = self.call("GET", "jray/api/status", timeout=10)
                if last.get("state") == "running":
                    return dict(last)
            except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
                last = e
            time.sleep(0.5)
        raise AssertionError(f"the server's jray cluster never ran (last status {last!r}):\n"
                             f"{log.read_text()[-4000:]}")


def _run_in_server_kernel(server: _Server, runtime_dir: Path, nb_path: Path, address: str) -> None:
    """Execute ``nb_path``'s code cells in a kernel the server starts (so it
    inherits the server's environment, cluster address included), failing on
    the first cell that raises unless it is tagged ``raises-exception``."""
    nb = nbformat.read(nb_path, as_version=4)
    prelude = nbformat.v4.new_code_cell(f"import os\nassert os.environ.get('JRAY_ADDRESS') == {address!r}\n"
                                        "del os")
    kernel = server.call("POST", "api/kernels", {"name": "python3", "path": "notebooks"})
    kc = jupyter_client.BlockingKernelClient()
    kc.load_connection_file(str(runtime_dir / f"kernel-{kernel['id']}.json"))
    kc.start_channels(hb=False)  # the heartbeat reads "dead" until its first beat: slow on a busy machine
    try:
        kc.wait_for_ready(timeout=120)
        for i, cell in enumerate([prelude, *nb.cells]):
            if cell.cell_type != "code":
                continue
            errors: list[dict[str, Any]] = []

            def hook(msg: dict[str, Any], errors: list[dict[str, Any]] = errors) -> None:
                if msg["msg_type"] == "error":
                    errors.append(msg["content"])

            reply = kc.execute_interactive(cell.source, timeout=CELL_TIMEOUT, output_hook=hook)
            expected = "raises-exception" in cell.get("metadata", {}).get("tags", [])
            failed = reply["content"]["status"] == "error"
            assert failed == expected, (
                f"{nb_path.name}, cell {i}:\n{cell.source}\n"
                + ("\n".join("\n".join(e["traceback"]) for e in errors) if errors else "(did not raise)"))
    finally:
        kc.stop_channels()
        server.call("DELETE", f"api/kernels/{kernel['id']}")


def _stop(proc: subprocess.Popen, server: _Server) -> None:
    """Shut the server down the way a user does (the extension then stops its cluster)."""
    try:
        server.call("POST", "api/shutdown", timeout=10)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.timeout(900)
def test_binder_build_runs_every_notebook_on_the_servers_cluster(tmp_path):
    # The suite's faulthandler_timeout (110 s) is meant for ordinary tests: this
    # one takes minutes, so dump tracebacks only near its own timeout.
    faulthandler.dump_traceback_later(880, exit=False)
    repo, venv = tmp_path / "repo", tmp_path / "venv"
    _copy_repo(repo)
    env = _env(tmp_path, venv)
    _sh([sys.executable, "-m", "venv", str(venv)], tmp_path / "venv.log")
    _sh([str(venv / "bin" / "python"), "-m", "pip", "install", "-r", "binder/requirements.txt"],
        tmp_path / "requirements.log", cwd=repo, env=env)
    _sh(["bash", "binder/postBuild"], tmp_path / "postBuild.log", cwd=repo, env=env)

    jupyter = str(venv / "bin" / "jupyter")
    extensions = _sh([jupyter, "server", "extension", "list"], tmp_path / "ext.log", cwd=repo, env=env)
    assert any("jray.jupyter.serverext" in ln and "OK" in ln for ln in extensions.splitlines()), extensions
    if (repo / "jray" / "labextension" / "package.json").exists():
        labext = _sh([jupyter, "labextension", "list"], tmp_path / "labext.log", cwd=repo, env=env)
        assert "jray-lab" in labext, labext

    port, token = _free_port(), secrets.token_hex(16)
    server_log = tmp_path / "server.log"
    args = [jupyter, "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={repo}"]
    if os.geteuid() == 0:  # CI containers (Binder's user is not root)
        args.append("--allow-root")
    args, small_shm = _with_binders_shm(args)
    with open(server_log, "w") as log:
        proc = subprocess.Popen(args,
                                cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = _Server(port, token)
    try:
        status = server.wait_for_cluster(proc, server_log)
        assert status["mode"] == "start" and status["owned"], status
        assert status["resources_total"]["CPU"] == 2, status  # binder's config
        if small_shm:  # the store's default size follows /dev/shm's free space
            assert 0 < status["object_store_memory"] <= 64 * 2**20, status
        notebooks = sorted((repo / "notebooks").glob("*.ipynb"))
        assert notebooks
        for nb_path in notebooks:
            _run_in_server_kernel(server, Path(env["JUPYTER_RUNTIME_DIR"]), nb_path, status["address"])
    finally:
        _stop(proc, server)
