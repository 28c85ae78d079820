#!/usr/bin/env bash
# Rebuild the prebuilt JupyterLab extension (extension/ -> jray/labextension/)
# and record the hash of its sources, which tests/serverext/test_labextension.py
# checks. Needs Node >= 18 and npm; users of the wheel need neither.
#
# The build runs @jupyterlab/builder against the installed JupyterLab's
# staging package.json (--core-path): the shared packages it declares are
# those of the Lab in the virtualenv, and nothing is fetched at build time
# (`jupyter labextension build` would look up core-meta on the registry).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${JRAY_VENV:-.venv}/bin/python"
STAGING=$("$PY" -c "import jupyterlab, os; print(os.path.join(os.path.dirname(jupyterlab.__file__), 'staging'))")
cd extension
npm ci --no-audit --no-fund --loglevel=error
rm -rf lib tsconfig.tsbuildinfo ../jray/labextension
npx tsc
node node_modules/@jupyterlab/builder/lib/build-labextension.js --core-path "$STAGING" .
cd ..
"$PY" scripts/labextension_hash.py --write
echo "built jray/labextension/ (commit it with extension/)"
