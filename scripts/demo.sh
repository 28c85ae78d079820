#!/usr/bin/env bash
# The main job, headless: set up a virtualenv with jray and run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${JRAY_VENV:-.venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q -e ".[numpy]"
exec "$VENV/bin/python" examples/quickstart.py
