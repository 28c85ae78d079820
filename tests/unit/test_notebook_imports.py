"""The demo notebooks import only what the environment ``scripts/start.sh``
builds installs (issue 18, item 1: 04_magics and 07_monte_carlo failed with
``No module named 'matplotlib'``, which only the test extra had): every
module a notebook's code imports is in the standard library, jray, or a
distribution the ``numpy``, ``notebook`` and ``server`` extras (and the core
dependencies) name."""

from __future__ import annotations

import json
import pathlib
import re
import sys

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = pathlib.Path(__file__).resolve().parents[2]
# import name -> distribution name, where they differ
DIST_OF = {"IPython": "ipython", "yaml": "pyyaml", "sklearn": "scikit-learn"}


def _start_sh_extras() -> set[str]:
    text = (ROOT / "scripts" / "start.sh").read_text()
    found = re.findall(r'-e "\.\[([a-z,]+)\]"', text)
    assert found, "scripts/start.sh no longer installs the project with extras"
    return set(max(found, key=len).split(","))


def _installed_dists() -> set[str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"])
    for extra in _start_sh_extras():
        reqs += meta["optional-dependencies"][extra]
    return {re.split(r"[<>=!\[ ;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in reqs}


IMPORT = re.compile(r"^\s*(?:from\s+([A-Za-z_]\w*)[\w.]*\s+import\b|import\s+([\w., ]+))", re.M)


def _imports(nb: pathlib.Path) -> set[str]:
    # Read with a pattern, not ast: a full run's earlier tests can leave the
    # parser's recursion counter off ("AST constructor recursion depth mismatch").
    out = set()
    for cell in json.loads(nb.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        for m in IMPORT.finditer("".join(cell["source"])):
            if m.group(1):
                out.add(m.group(1))
            else:
                out |= {part.split(" as ")[0].strip().split(".")[0] for part in m.group(2).split(",") if part.strip()}
    return out


def test_demo_notebooks_import_only_what_start_sh_installs():
    dists = _installed_dists()
    missing = {}
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for mod in _imports(nb):
            if mod in sys.stdlib_module_names or mod == "jray":
                continue
            if DIST_OF.get(mod, mod).lower().replace("_", "-") not in dists:
                missing.setdefault(nb.name, []).append(mod)
    assert missing == {}, f"notebooks import modules scripts/start.sh does not install: {missing}"
