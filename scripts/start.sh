#!/usr/bin/env bash
# The main job. Sets up .venv with jray and its notebook and server extras,
# then starts JupyterLab on notebooks/ with the jray server extension: the
# server starts a local cluster, every kernel's bare jray.init() attaches to
# it, and the "jray" sidebar and live views show it working.
#
#   bash scripts/start.sh              # JupyterLab (prints its URL with the token)
#   bash scripts/start.sh --headless   # no browser at hand: the headless demo
#
# Extra arguments go to `jupyter lab` (e.g. --port 8890 --ip 0.0.0.0).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${JRAY_VENV:-.venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
if [ "${1:-}" = "--headless" ]; then
    "$VENV/bin/pip" install -q -e ".[numpy]"
    exec "$VENV/bin/python" examples/quickstart.py
fi
"$VENV/bin/pip" install -q -e ".[numpy,notebook,server]"
# What a wheel install puts in place, done for this editable checkout: the
# server extension enabled, the prebuilt Lab extension on Lab's path.
"$VENV/bin/jupyter" server extension enable --sys-prefix jray.jupyter.serverext >/dev/null 2>&1
mkdir -p "$VENV/share/jupyter/labextensions"
ln -sfn "$PWD/jray/labextension" "$VENV/share/jupyter/labextensions/jray-lab"
ROOT_OK=()
[ "$(id -u)" = 0 ] && ROOT_OK=(--allow-root)  # containers (Binder-like, CI) run as root
exec "$VENV/bin/jupyter" lab --no-browser --notebook-dir=notebooks "${ROOT_OK[@]}" "$@"
