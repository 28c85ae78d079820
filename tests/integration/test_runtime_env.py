"""runtime_env on a two-node cluster: code (working_dir, py_modules) and
packages (pip) travel with tasks and actors, env_vars merge and are
inherited, workers never mix envs, unused envs are reclaimed, failures are
RuntimeEnvSetupError with the cause, plugins add fields; and across two
"machines" (network namespaces with private /tmp), a task on the other
host gets the driver's working_dir over the network.

pip tests install ``pyjokes`` (small, pure Python, not in the test
environment); they skip when no package index is reachable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import zipfile

import pytest

import jray
from jray import exceptions
from jray.testing import Cluster
from jray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from jray.util.state import list_runtime_envs
from tests.pip_index import PIP_PKG, need_index
from tests.polling import poll

_need_index = need_index


@pytest.fixture(scope="module")
def cluster():
    jray.shutdown()
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "JRAY_RUNTIME_ENV_PLUGINS",
                                             "JRAY_RUNTIME_ENV_IDLE_WORKER_SECONDS",
                                             "JRAY_RUNTIME_ENV_CACHE_TTL_SECONDS")}
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))
    os.environ["JRAY_RUNTIME_ENV_PLUGINS"] = json.dumps([{"class": "tests.runtime_env_plugins:SlowMarker"}])
    os.environ["JRAY_RUNTIME_ENV_IDLE_WORKER_SECONDS"] = "1"
    os.environ["JRAY_RUNTIME_ENV_CACHE_TTL_SECONDS"] = "2"
    from jray._private.runtime_env import plugin

    plugin.reset_registry()
    try:
        with Cluster(head_node_args={"num_cpus": 2}) as c:
            other = c.add_node(num_cpus=2, resources={"other": 2})
            c.connect()
            yield c, other
    finally:
        jray.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        plugin.reset_registry()


def _project(root, files: dict[str, str]) -> str:
    for rel, text in files.items():
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
    return str(root)


@jray.remote
def _where_and_import(module: str, attr: str):
    import importlib

    m = importlib.import_module(module)
    return {"value": getattr(m, attr), "file": m.__file__, "cwd": os.getcwd(),
            "node": jray.get_runtime_context().get_node_id(), "pid": os.getpid()}


def _on(node_id: str):
    return NodeAffinitySchedulingStrategy(node_id, soft=False)


def test_working_dir_reaches_both_nodes_with_ignores(cluster, tmp_path):
    c, other = cluster
    wd = _project(tmp_path / "proj", {
        "helpers.py": "VALUE = 'from helpers'\n", "data/config.txt": "cfg",
        "secret.key": "no", "build/out.bin": "no", ".gitignore": "secret.key\n", ".jrayignore": "build/\n",
        "scratch/tmp.txt": "no",
    })
    env = {"working_dir": wd, "excludes": ["scratch/"]}

    @jray.remote(runtime_env=env)
    def look():
        return {"cwd": os.getcwd(), "node": jray.get_runtime_context().get_node_id(),
                "files": sorted(os.path.relpath(os.path.join(d, f), ".") for d, _, fs in os.walk(".") for f in fs),
                "helpers": __import__("helpers").VALUE, "config": open("data/config.txt").read()}

    head_id = c.handle.head.node_id
    rows = jray.get([look.options(scheduling_strategy=_on(n)).remote() for n in (head_id, other.node_id)],
                    timeout=60)
    assert {r["node"] for r in rows} == {head_id, other.node_id}
    for r in rows:
        assert r["helpers"] == "from helpers" and r["config"] == "cfg"
        assert r["files"] == [".gitignore", ".jrayignore", "data/config.txt", "helpers.py"]
        # each node's own unpacked copy, not the driver's directory
        assert r["cwd"] != wd and f"node-{r['node'][:12]}" in r["cwd"] and "runtime_resources" in r["cwd"]
    assert rows[0]["cwd"] != rows[1]["cwd"]


def test_edited_working_dir_is_a_new_package(cluster, tmp_path):
    wd = _project(tmp_path / "p", {"mod_edit.py": "X = 1\n"})
    f = _where_and_import.options(runtime_env={"working_dir": wd})
    assert jray.get(f.remote("mod_edit", "X"), timeout=60)["value"] == 1
    time.sleep(1.1)  # the driver looks at a directory again at most once a second
    with open(os.path.join(wd, "mod_edit.py"), "w") as fh:
        fh.write("X = 2\n")
    assert jray.get(f.remote("mod_edit", "X"), timeout=60)["value"] == 2


def test_py_modules_directory_module_object_and_wheel(cluster, tmp_path):
    c, other = cluster
    pkg_dir = _project(tmp_path / "src", {"shipped_pkg/__init__.py": "NAME = 'dir'\n"})
    sys.path.insert(0, str(tmp_path / "src"))
    try:
        import shipped_pkg  # a module object, as users pass it
    finally:
        sys.path.remove(str(tmp_path / "src"))
        sys.modules.pop("shipped_pkg", None)
    wheel = tmp_path / "wheelpkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("wheelpkg/__init__.py", "NAME = 'wheel'\n")
        z.writestr("wheelpkg-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: wheelpkg\nVersion: 1.0\n")
    single = _project(tmp_path / "single", {"single_mod.py": "NAME = 'single'\n"})
    env = {"py_modules": [shipped_pkg, str(wheel), os.path.join(single, "single_mod.py")]}
    assert pkg_dir

    @jray.remote(runtime_env=env, resources={"other": 1})
    def names():
        import shipped_pkg
        import single_mod
        import wheelpkg

        return shipped_pkg.NAME, wheelpkg.NAME, single_mod.NAME, jray.get_runtime_context().get_node_id()

    assert jray.get(names.remote(), timeout=60) == ("dir", "wheel", "single", other.node_id)


def test_env_vars_merge_and_inherit_through_tasks_and_actors(cluster):
    @jray.remote
    def read():
        env = jray.get_runtime_context().runtime_env
        return os.environ.get("A"), os.environ.get("B"), env.get("env_vars")

    @jray.remote(runtime_env={"env_vars": {"A": "outer", "B": "outer"}})
    def outer():
        return (jray.get(read.remote()),  # inherits outer's env
                jray.get(read.options(runtime_env={"env_vars": {"B": "inner"}}).remote()))  # merges over it

    plain, merged = jray.get(outer.remote(), timeout=60)
    assert plain == ("outer", "outer", {"A": "outer", "B": "outer"})
    assert merged == ("outer", "inner", {"A": "outer", "B": "inner"})

    @jray.remote(runtime_env={"env_vars": {"A": "actor"}})
    class Holder:
        def mine(self):
            return os.environ.get("A"), jray.get(read.remote())

    h = Holder.remote()
    assert jray.get(h.mine.remote(), timeout=60) == ("actor", ("actor", None, {"A": "actor"}))
    assert dict(jray.get_runtime_context().runtime_env) == {}  # this driver's job has none


def test_bad_input_fails_at_remote_time(cluster, tmp_path):
    @jray.remote
    def f():
        return 1

    with pytest.raises(ValueError, match="does not exist"):
        f.options(runtime_env={"working_dir": str(tmp_path / "missing")}).remote()
    with pytest.raises(TypeError, match="str to str"):
        f.options(runtime_env={"env_vars": {"N": 3}})
    with pytest.raises(ValueError, match="is not known"):
        f.options(runtime_env={"pipp": ["x"]})
    with pytest.raises(ValueError, match="not a valid requirement"):
        f.options(runtime_env={"pip": ["bad req ==="]})
    with pytest.raises(ValueError, match="slow_marker must be a number"):
        f.options(runtime_env={"slow_marker": -1})  # a plugin's own check, on the driver
    assert jray.get(f.remote(), timeout=30) == 1  # and the cluster is fine


def test_workers_never_mix_envs_and_idle_ones_are_reclaimed(cluster):
    @jray.remote
    def pid():
        time.sleep(0.05)
        return os.getpid(), os.environ.get("WHICH")

    a = pid.options(runtime_env={"env_vars": {"WHICH": "a"}})
    b = pid.options(runtime_env={"env_vars": {"WHICH": "b"}})
    ra = jray.get([a.remote() for _ in range(6)], timeout=60)
    rb = jray.get([b.remote() for _ in range(6)], timeout=60)
    rn = jray.get([pid.remote() for _ in range(6)], timeout=60)
    assert {w for _, w in ra} == {"a"} and {w for _, w in rb} == {"b"} and {w for _, w in rn} == {None}
    pa, pb, pn = ({p for p, _ in r} for r in (ra, rb, rn))
    assert not (pa & pb) and not (pa & pn) and not (pb & pn)

    def env_rows():
        return {json.loads(r["runtime_env"]).get("env_vars", {}).get("WHICH"): r for r in list_runtime_envs()}

    rows = env_rows()
    assert rows["a"]["status"] == "READY" and rows["b"]["success"] is True
    # RUNTIME_ENV_IDLE_WORKER_SECONDS=1 and CACHE_TTL=2 in this cluster: the
    # workers end, then the envs are dropped
    poll(lambda: sorted(k for k in env_rows() if k), lambda keys: "a" not in keys and "b" not in keys,
         "idle envs dropped by the nodes", timeout=30)
    import psutil

    assert not [p for p in pa | pb if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def test_unused_packages_are_deleted_from_the_node(cluster, tmp_path):
    wd = _project(tmp_path / "gc", {"gc_mod.py": "V = 7\n"})
    r = jray.get(_where_and_import.options(runtime_env={"working_dir": wd}).remote("gc_mod", "V"), timeout=60)
    assert r["value"] == 7 and os.path.isdir(r["cwd"])
    poll(lambda: os.path.isdir(r["cwd"]), lambda there: not there, "the unused working_dir copy deleted",
         timeout=40)


def test_user_plugin_sets_up_the_worker_and_setup_timeout(cluster):
    @jray.remote
    def marker():
        return os.environ.get("SLOW_MARKER")

    assert jray.get(marker.options(runtime_env={"slow_marker": 0.1}).remote(), timeout=60) == "0.1"
    slow = marker.options(runtime_env={"slow_marker": 5, "config": {"setup_timeout_seconds": 1}})
    with pytest.raises(exceptions.RuntimeEnvSetupError, match="timed out after 1 s"):
        jray.get(slow.remote(), timeout=60)


def test_conda_and_container_say_what_is_missing(cluster):
    @jray.remote
    def f():
        return 1

    with pytest.raises(exceptions.RuntimeEnvSetupError, match="conda is not installed on this node"):
        jray.get(f.options(runtime_env={"conda": "myenv"}).remote(), timeout=60)
    with pytest.raises(exceptions.RuntimeEnvSetupError, match="podman"):
        jray.get(f.options(runtime_env={"image_uri": "docker.io/library/python:3.11"}).remote(), timeout=60)
    assert jray.get(f.remote(), timeout=30) == 1


def test_pip_env_built_once_per_node_layered_on_the_node(cluster):
    _need_index()
    c, other = cluster

    @jray.remote(runtime_env={"pip": [PIP_PKG]})
    def joke():
        import numpy
        import pyjokes

        return pyjokes.__file__, numpy.__file__, sys.executable, jray.get_runtime_context().get_node_id()

    refs = [joke.options(scheduling_strategy=_on(n)).remote()
            for n in [c.handle.head.node_id, other.node_id] * 4]  # 8 at the same moment
    rows = jray.get(refs, timeout=300)
    venvs = {os.path.dirname(os.path.dirname(exe)) for _, _, exe, _ in rows}
    assert len(venvs) == 1  # one env for the set, shared by this machine's two nodes
    for pj, np_file, _exe, _ in rows:
        assert pj.startswith(next(iter(venvs)))  # the package is in the env
        assert not np_file.startswith(next(iter(venvs)))  # numpy is the node's, not installed again
    env_rows = [r for r in list_runtime_envs(detail=True) if "pip" in r["runtime_env"]]
    assert len(env_rows) == 1 and env_rows[0]["status"] == "READY"
    assert sorted(env_rows[0]["node_ids"]) == sorted([c.handle.head.node_id, other.node_id])
    assert env_rows[0]["size_bytes"] > 0


def test_pip_failure_is_a_setup_error_and_others_keep_running(cluster):
    _need_index()

    @jray.remote
    def ok(x):
        return x + 1

    bad = ok.options(runtime_env={"pip": ["jray-no-such-package-xyz==0.0.1"]})
    ref = bad.remote(1)
    good = [ok.remote(i) for i in range(5)]
    with pytest.raises(exceptions.RuntimeEnvSetupError) as e:
        jray.get(ref, timeout=300)
    msg = str(e.value)
    assert "jray-no-such-package-xyz" in msg and "setup log on that node" in msg
    log_path = msg.split("setup log on that node: ")[1].split(")")[0]
    assert os.path.isfile(log_path) and "jray-no-such-package-xyz" in open(log_path).read()
    assert jray.get(good, timeout=60) == [1, 2, 3, 4, 5]


def test_actor_pip_env_and_failed_actor_env(cluster):
    _need_index()

    @jray.remote(runtime_env={"pip": [PIP_PKG]})
    class Jokes:
        def one(self):
            import pyjokes

            return isinstance(pyjokes.get_joke(), str)

    assert jray.get(Jokes.remote().one.remote(), timeout=300) is True

    @jray.remote(runtime_env={"pip": ["jray-no-such-package-xyz"]})
    class Broken:
        def m(self):
            return 1

    with pytest.raises(exceptions.RuntimeEnvSetupError, match="jray-no-such-package-xyz"):
        jray.get(Broken.remote().m.remote(), timeout=300)


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_both_installers_layer_over_the_node(installer, tmp_path, monkeypatch):
    """The venv builder on its own, with uv and with plain pip."""
    _need_index()
    import asyncio
    import logging

    from jray._private import config
    from jray._private.runtime_env import builtin

    monkeypatch.setattr(config, "RUNTIME_ENV_PIP_INSTALLER", installer)
    d = str(tmp_path / "venv")
    asyncio.run(builtin._build_venv(d, {"packages": [PIP_PKG]}, logging.getLogger("test")))
    py = os.path.join(d, "bin", "python")
    out = subprocess.run([py, "-c", "import pyjokes, numpy, jray; print(pyjokes.__file__); print(numpy.__file__)"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    pj, np_file = out.stdout.split()
    assert pj.startswith(d) and not np_file.startswith(d)


def test_cli_lists_runtime_envs(cluster, tmp_path):
    c, _ = cluster

    @jray.remote(runtime_env={"env_vars": {"CLI_SEEN": "1"}})
    def f():
        return 1

    assert jray.get(f.remote(), timeout=60) == 1
    out = subprocess.run([sys.executable, "-m", "jray.scripts", "list", "runtime-envs", "--format", "json",
                          "--address", c.address], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, JRAY_TOKEN=c.handle.token))
    assert out.returncode == 0, out.stderr
    rows = [r for r in json.loads(out.stdout) if "CLI_SEEN" in r["runtime_env"]]
    assert len(rows) == 1 and rows[0]["status"] == "READY" and rows[0]["nodes"]


SCRIPT = textwrap.dedent("""
    import jray, os
    jray.init()
    @jray.remote(runtime_env={"slow_marker": 1.5})
    def f():
        return os.environ["SLOW_MARKER"]
    print("result", jray.get(f.remote(), timeout=60))
""")


def test_a_slow_setup_shows_a_line_at_the_driver(cluster):
    c, _ = cluster
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, JRAY_ADDRESS=c.address, JRAY_TOKEN=c.handle.token))
    assert out.returncode == 0, out.stderr
    assert "result 1.5" in out.stdout
    assert "runtime_env on" in out.stderr and "slow_marker ready in" in out.stderr


def test_job_level_env_via_job_config(cluster, tmp_path):
    c, _ = cluster
    wd = _project(tmp_path / "job", {"job_mod.py": "V = 'job'\n"})
    script = textwrap.dedent(f"""
        import jray, os, json
        from jray.job_config import JobConfig
        jray.init(job_config=JobConfig(runtime_env={{"working_dir": {wd!r}, "env_vars": {{"J": "1"}}}}))
        import time
        from jray.util.state import list_runtime_envs
        deadline = time.monotonic() + 30
        while not any('"J"' in r["runtime_env"] for r in list_runtime_envs()):  # eager_install: set up at init
            assert time.monotonic() < deadline, "the job's env was not set up before its first task"
            time.sleep(0.1)
        @jray.remote
        def f():
            import job_mod
            return job_mod.V, os.environ["J"], os.getcwd() != {wd!r}
        print(json.dumps(jray.get(f.remote(), timeout=60)))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, JRAY_ADDRESS=c.address, JRAY_TOKEN=c.handle.token))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == ["job", "1", True]


# -- two machines ---------------------------------------------------------------------
DRIVER_ON_A = textwrap.dedent("""
    import json, os, socket
    os.makedirs("/tmp/proj", exist_ok=True)
    with open("/tmp/proj/remote_helpers.py", "w") as f:
        f.write("WHO = 'helpers from host a'\\n")
    import jray
    jray.init(runtime_env={"working_dir": "/tmp/proj"})
    @jray.remote(resources={"host_b": 1})
    def there():
        import remote_helpers
        return remote_helpers.WHO, socket.gethostname(), os.getcwd(), os.path.exists("/tmp/proj")
    print(json.dumps(jray.get(there.remote(), timeout=120)))
""")


def test_working_dir_crosses_to_another_machine():
    from jray._private import virtual_hosts as vh

    reason = vh.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    jray.shutdown()
    with vh.VirtualHosts() as hosts:
        a, b = hosts.add_host("a"), hosts.add_host("b")
        plain = {"JRAY_RUNTIME_ENV_PLUGINS": ""}
        address, token = vh.start_head(a, env=plain)
        vh.start_node(b, address, token, extra_args=["--resources", '{"host_b": 1}'], env=plain)
        who, hostname, cwd, source_visible = vh.run_driver_json(a, DRIVER_ON_A, address, token, timeout=180,
                                                                env=plain)
        assert who == "helpers from host a"
        assert hostname != socket_hostname_of(a) and source_visible is False  # b cannot see a's /tmp/proj
        assert "runtime_resources" in cwd


def socket_hostname_of(host) -> str:
    return host.run(["hostname"]).stdout.strip()

