"""runtime_env on the driver's side: packing (content hash, ignores, the
size limit), checking and normalising each field, Ray's merge rule, env
keys, the plugin registry and the pip config uv is given."""

from __future__ import annotations

import json
import os
import zipfile

import pytest

from jray._private import config
from jray._private.runtime_env import builtin, packaging, plugin, validation
from jray._private.runtime_env.agent import summary
from jray.job_config import JobConfig
from jray.runtime_env import RuntimeEnv, RuntimeEnvConfig


def _tree(root, files: dict[str, str]) -> str:
    for rel, text in files.items():
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
    return str(root)


def _names(pkg: packaging.Package) -> set[str]:
    import io

    with zipfile.ZipFile(io.BytesIO(pkg.data)) as z:
        return set(z.namelist())


def test_package_is_content_addressed(tmp_path):
    a = _tree(tmp_path / "a", {"m.py": "X = 1\n", "sub/data.txt": "d"})
    b = _tree(tmp_path / "b", {"m.py": "X = 1\n", "sub/data.txt": "d"})
    pa, pb = packaging.pack_directory(a), packaging.pack_directory(b)
    assert pa.uri == pb.uri and pa.uri.startswith("gcs://_jray_pkg_") and pa.uri.endswith(".zip")
    with open(os.path.join(b, "m.py"), "w") as f:
        f.write("X = 2\n")
    assert packaging.pack_directory(b).uri != pa.uri  # an edit is a new package


def test_ignores_git_gitignore_jrayignore_and_excludes(tmp_path):
    root = _tree(tmp_path / "wd", {
        "keep.py": "", "big.bin": "x", "logs/a.log": "", "notes.tmp": "", ".git/HEAD": "ref",
        "__pycache__/keep.cpython-311.pyc": "", "data/raw.csv": "", "data/clean.csv": "",
        ".gitignore": "*.log\nbig.bin\n", ".jrayignore": "*.tmp\n",
    })
    names = _names(packaging.pack_directory(root, excludes=["data/raw.csv"]))
    assert "keep.py" in names and "data/clean.csv" in names
    for gone in ("big.bin", "logs/a.log", "notes.tmp", ".git/HEAD", "data/raw.csv",
                 "__pycache__/keep.cpython-311.pyc"):
        assert gone not in names


def test_size_limit_names_the_largest_files(tmp_path, monkeypatch):
    root = _tree(tmp_path / "wd", {"small.py": "x", "huge.dat": "y" * 300_000, "mid.dat": "z" * 100_000})
    monkeypatch.setattr(config, "RUNTIME_ENV_MAX_PACKAGE_BYTES", 200_000)
    with pytest.raises(ValueError) as e:
        packaging.pack_directory(root)
    msg = str(e.value)
    assert "huge.dat" in msg and "mid.dat" in msg and "JRAY_RUNTIME_ENV_MAX_PACKAGE_BYTES" in msg
    assert msg.index("huge.dat") < msg.index("mid.dat")  # largest first


def test_unpack_is_atomic_and_unwraps_a_single_top_dir(tmp_path):
    src = _tree(tmp_path / "proj", {"proj/m.py": "X = 3\n"})
    pkg = packaging.pack_directory(src)
    z = tmp_path / "p.zip"
    z.write_bytes(pkg.data)
    dest = tmp_path / "out"
    packaging.unpack(str(z), str(dest), unwrap_single_dir=True)
    assert (dest / "m.py").read_text() == "X = 3\n"
    assert not [p for p in os.listdir(tmp_path) if p.startswith("out") and p != "out"]  # no temp left


def test_validation_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="working_dir .*does not exist"):
        validation.validate({"working_dir": str(tmp_path / "nope")})
    with pytest.raises(TypeError, match="env_vars must be a dict of str to str"):
        validation.validate({"env_vars": {"A": 1}})
    with pytest.raises(ValueError, match="field 'wrking_dir' is not known"):
        validation.validate({"wrking_dir": "."})
    with pytest.raises(ValueError, match="not a valid requirement"):
        validation.validate({"pip": ["numpy>>=1"]})
    with pytest.raises(ValueError, match="requirements file"):
        validation.validate({"pip": str(tmp_path / "requirements.txt")})
    with pytest.raises(ValueError, match="setup_timeout_seconds"):
        validation.validate({"config": {"setup_timeout_seconds": 0}})
    with pytest.raises(ValueError, match="unknown keys"):
        validation.validate({"config": {"eager": True}})
    with pytest.raises(ValueError, match="URI scheme 's3'"):
        validation.validate({"working_dir": "s3://bucket/x.zip"})
    with pytest.raises(ValueError, match="'pip' and 'conda'"):
        validation.validate({"pip": ["a"], "conda": "base"})
    with pytest.raises(TypeError, match="runtime_env must be a dict"):
        validation.validate(["pip"])


def test_normalised_forms(tmp_path, monkeypatch):
    req = tmp_path / "requirements.txt"
    req.write_text("# comment\nrequests>=2\n\nsix\n")
    assert validation.validate({"pip": str(req)})["pip"] == {"packages": ["requests>=2", "six"]}
    assert validation.validate({"pip": ["six"]})["pip"] == {"packages": ["six"]}
    monkeypatch.chdir(tmp_path)
    os.mkdir("wd")
    assert validation.validate({"working_dir": "wd"})["working_dir"] == str(tmp_path / "wd")
    import json as json_module

    mods = validation.validate({"py_modules": [json_module]})["py_modules"]
    assert mods == [os.path.dirname(json_module.__file__)]
    cfg = validation.validate({"config": RuntimeEnvConfig(setup_timeout_seconds=5, eager_install=False)})
    assert cfg["config"] == {"setup_timeout_seconds": 5, "eager_install": False}


def test_merge_is_rays_rule():
    job = {"working_dir": "gcs://a.zip", "env_vars": {"A": "1", "B": "1"}, "pip": {"packages": ["x"]}}
    task = {"env_vars": {"B": "2", "C": "3"}, "pip": {"packages": ["y"]}}
    merged = validation.merge(job, task)
    assert merged == {"working_dir": "gcs://a.zip", "env_vars": {"A": "1", "B": "2", "C": "3"},
                      "pip": {"packages": ["y"]}}
    assert validation.merge(None, task) == task and validation.merge(job, None) == job


def test_env_key_ignores_config():
    a = json.dumps({"env_vars": {"A": "1"}, "config": {"setup_timeout_seconds": 5}})
    b = json.dumps({"env_vars": {"A": "1"}})
    assert validation.env_key(a) == validation.env_key(b) != ""
    assert validation.env_key(json.dumps({"config": {"eager_install": True}})) == ""
    assert validation.env_key(json.dumps({"env_vars": {"A": "2"}})) != validation.env_key(b)


def test_runtime_env_and_job_config_objects(tmp_path):
    env = RuntimeEnv(pip=["six"], env_vars={"A": "1"})
    assert env["pip"] == ["six"] and env.env_vars() == {"A": "1"} and env.pip_config() == {"packages": ["six"]}
    assert RuntimeEnv.deserialize(env.serialize()) == env
    with pytest.raises(ValueError, match="not known"):
        RuntimeEnv(pipp=["six"])
    jc = JobConfig(runtime_env={"env_vars": {"A": "1"}}, metadata={"k": "v"}, ray_namespace="ns")
    assert jc.runtime_env == {"env_vars": {"A": "1"}} and jc.ray_namespace == "ns"
    with pytest.raises(ValueError, match="default_actor_lifetime"):
        JobConfig(default_actor_lifetime="forever")
    with pytest.raises(TypeError, match="env_vars"):
        JobConfig(runtime_env={"env_vars": {"A": 1}})


class _Marker(plugin.RuntimeEnvPlugin):
    name = "marker"

    @staticmethod
    def validate(value):
        if not isinstance(value, str):
            raise TypeError("marker must be a string")
        return value


def test_plugin_registry_by_name_and_env_var(monkeypatch):
    plugin.reset_registry()
    try:
        with pytest.raises(ValueError, match="'marker' is not known"):
            validation.validate({"marker": "x"})
        plugin.register_plugin(_Marker)
        assert validation.validate({"marker": "x"}) == {"marker": "x"}
        with pytest.raises(TypeError, match="marker must be a string"):
            validation.validate({"marker": 1})
        plugin.reset_registry()
        monkeypatch.setenv(plugin.PLUGINS_ENV_VAR, json.dumps([{"class": f"{__name__}:_Marker", "priority": 3}]))
        reg = plugin.plugins()
        assert reg["marker"].priority == 3 and "pip" in reg and "working_dir" in reg
        monkeypatch.setenv(plugin.PLUGINS_ENV_VAR, json.dumps([{"class": "json:dumps"}]))
        plugin.reset_registry()
        with pytest.raises(ValueError, match="must subclass"):
            plugin.plugins()
    finally:
        monkeypatch.delenv(plugin.PLUGINS_ENV_VAR, raising=False)
        plugin.reset_registry()


def test_summary_names_fields_and_packages():
    env = {"working_dir": "gcs://a.zip", "pip": {"packages": ["a", "b", "c", "d"]}, "env_vars": {"X": "1"}}
    assert summary(json.dumps(env)) == "working_dir; pip a, b, c (+1)"
    assert summary(json.dumps({"env_vars": {"X": "1"}})) == "env_vars"


def test_uv_gets_pips_indexes(monkeypatch, tmp_path):
    """uv is given the node's pip configuration (a find-links directory that
    does not exist is left out, as pip ignores it)."""
    links = tmp_path / "wheels"
    links.mkdir()
    monkeypatch.setenv("PIP_FIND_LINKS", f"{links} {tmp_path / 'missing'}")
    monkeypatch.setenv("PIP_INDEX_URL", "https://example.invalid/simple")
    args, _env = builtin._pip_config_args()
    assert ["--index-url", "https://example.invalid/simple"] == args[args.index("--index-url"):][:2]
    assert str(links) in args and str(tmp_path / "missing") not in args
    assert args[args.index("--index-strategy") + 1] == "unsafe-best-match"


def test_installer_choice(monkeypatch):
    monkeypatch.setattr(config, "RUNTIME_ENV_PIP_INSTALLER", "pip")
    assert builtin._uv_binary({"packages": ["six"]}) is None
    monkeypatch.setattr(config, "RUNTIME_ENV_PIP_INSTALLER", "auto")
    assert builtin._uv_binary({"packages": ["six"], "pip_install_options": ["--pre"]}) is None  # pip-only
    monkeypatch.setattr(config, "RUNTIME_ENV_PIP_INSTALLER", "uv")
    with pytest.raises(RuntimeError, match="pip-only options"):
        builtin._uv_binary({"packages": ["--pre", "six"]})
