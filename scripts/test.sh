#!/usr/bin/env bash
# The whole test suite on a fresh machine: virtualenv, install, lint, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${JRAY_VENV:-.venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q -e ".[test]"
"$VENV/bin/ruff" check jray tests scripts bench examples
"$VENV/bin/python" -m mypy   # the [tool.mypy] config in pyproject.toml: packages = ["jray"]
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
