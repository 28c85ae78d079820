"""The prebuilt JupyterLab extension committed in ``jray/labextension/`` is
built from the current ``extension/`` sources, and is what the wheel ships."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "jray" / "labextension"


def _hash_module():
    spec = importlib.util.spec_from_file_location("labextension_hash", REPO / "scripts" / "labextension_hash.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_build_matches_sources():
    mod = _hash_module()
    assert mod.recorded_hash() == mod.source_hash(), (
        "jray/labextension/ was built from other sources than extension/: run scripts/build_labextension.sh "
        "and commit both")


def test_build_is_a_complete_prebuilt_extension():
    meta = json.loads((BUILD / "package.json").read_text())
    src = json.loads((REPO / "extension" / "package.json").read_text())
    assert meta["name"] == src["name"] == "jray-lab" and meta["version"] == src["version"]
    build = meta["jupyterlab"]["_build"]
    assert (BUILD / build["load"]).is_file()
    assert (BUILD / "static" / "style.js").is_file()


def test_wheel_maps_the_build_and_the_server_config():
    text = (REPO / "pyproject.toml").read_text()
    assert '"jray/labextension" = "share/jupyter/labextensions/jray-lab"' in text
    assert ('"jupyter-config/jupyter_server_config.d/jray.json" = '
            '"etc/jupyter/jupyter_server_config.d/jray.json"') in text
    conf = json.loads((REPO / "jupyter-config" / "jupyter_server_config.d" / "jray.json").read_text())
    assert conf["ServerApp"]["jpserver_extensions"] == {"jray.jupyter.serverext": True}
