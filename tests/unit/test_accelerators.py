"""Accelerator types: the model a GPU node offers, named as Ray names it,
and the demand a task's ``accelerator_type`` makes."""

from __future__ import annotations

import pytest

from jray._private import options
from jray._private.node import gpu_model_name
from jray.util import accelerators


@pytest.mark.parametrize("nvidia_smi_name, model", [
    ("NVIDIA H100 80GB HBM3", accelerators.NVIDIA_H100),
    ("NVIDIA H200", accelerators.NVIDIA_H200),
    ("Tesla V100-SXM2-16GB", accelerators.NVIDIA_TESLA_V100),
    ("NVIDIA A100-SXM4-40GB", accelerators.NVIDIA_A100),
    ("Tesla T4", accelerators.NVIDIA_TESLA_T4),
    ("NVIDIA L4", accelerators.NVIDIA_L4),
])
def test_gpu_model_names_follow_ray(nvidia_smi_name, model):
    assert gpu_model_name(nvidia_smi_name) == model


def test_accelerator_type_is_a_small_demand_on_the_model_resource():
    res = options.task_resources({"num_gpus": 1, "accelerator_type": "V100"}, default_cpus=1)
    assert res == {"CPU": 1.0, "GPU": 1.0, "accelerator_type:V100": 0.001}
    with pytest.raises(ValueError, match="accelerator_type"):
        options.validate({"accelerator_type": 3}, options.TASK_OPTIONS, "remote functions")
