#!/usr/bin/env bash
# Create .venv-ray/ at the repo root with real Ray 2.60 (with its `client`
# extra, for Ray Client: `ray://`) and numpy, for the side-by-side benchmark
# (bench/run.py --runtime ray). Idempotent: an existing venv that already
# imports the right Ray and everything below is left as it is.
#
#   bash bench/setup_ray_venv.sh            # uses python3 from PATH
#   PYTHON=/path/to/python bash bench/setup_ray_venv.sh
set -euo pipefail

RAY_VERSION="${RAY_VERSION:-2.60.0}"
PYTHON="${PYTHON:-python3}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-ray"

if [ -x "$VENV/bin/python" ] &&
    "$VENV/bin/python" -c "import ray, grpc, numpy, psutil, virtualenv, sys; sys.exit(ray.__version__ != '$RAY_VERSION')" 2>/dev/null; then
    echo "ray $RAY_VERSION already in $VENV"
    exit 0
fi

"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# psutil is a dependency of ray already; named so the workloads can rely on it.
# ray[client] adds grpcio, which Ray Client (`ray.init("ray://...")`, the
# `client` workload) needs on the driver side and in `ray start`'s client server.
# virtualenv: Ray builds runtime_env pip envs with it.
"$VENV/bin/python" -m pip install --quiet "ray[client]==$RAY_VERSION" numpy psutil virtualenv
"$VENV/bin/python" -c "import ray, grpc, numpy; print('ray', ray.__version__, 'grpcio', grpc.__version__, 'numpy', numpy.__version__)"
