#!/usr/bin/env bash
# GPU scheduling check, for a machine with NVIDIA GPUs and no package index:
# what jray detects (GPU count, model -> accelerator_type:<model>), the GPU
# ids and CUDA_VISIBLE_DEVICES a task and fractional-GPU actors get, and an
# accelerator_type demand. Dependencies come from .devdeps/ next to the repo
# (make it where PyPI is reachable, with the same Python version:
#   pip install --target .devdeps grpcio protobuf cloudpickle psutil).
set -x
cd "$(dirname "$0")/.."
python3 --version
nvidia-smi -L
nvidia-smi --query-gpu=name --format=csv,noheader
echo "CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-unset}"
export PYTHONPATH="$PWD/.devdeps:$PWD"
timeout 240 python3 - <<'PY'
import os

import jray
from jray._private.node import detect_gpu_model, detect_gpus
from jray.util.accelerators import NVIDIA_H200

print("detected gpus:", detect_gpus(), "model:", detect_gpu_model())
jray.init(num_cpus=4)
print("cluster resources:", jray.cluster_resources())


@jray.remote(num_gpus=1)
def one_gpu():
    return os.environ.get("CUDA_VISIBLE_DEVICES"), jray.get_gpu_ids()


@jray.remote(num_gpus=0.5)
class Half:
    def ids(self):
        return os.environ.get("CUDA_VISIBLE_DEVICES"), jray.get_gpu_ids()


print("task (num_gpus=1):", jray.get(one_gpu.remote(), timeout=60))
a, b = Half.remote(), Half.remote()
print("two actors (num_gpus=0.5):", jray.get([a.ids.remote(), b.ids.remote()], timeout=60))
model = detect_gpu_model()
if model:
    on_model = one_gpu.options(accelerator_type=model).remote()
    print(f"accelerator_type={model}:", jray.get(on_model, timeout=60))
ready, _ = jray.wait([one_gpu.options(accelerator_type="no-such-gpu").remote()], timeout=2)
print("a demand no node offers waits:", ready == [], "(H200 constant:", NVIDIA_H200, ")")
jray.shutdown()
print("OK")
PY
