"""Cluster configs (``jray/autoscaler/_private/config.py``): Ray's format and
defaults, and errors that name the key. No processes."""

from __future__ import annotations

from typing import Any

import pytest

from jray.autoscaler._private.config import ConfigError, load, validate


def base(**over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "cluster_name": "demo",
        "provider": {"type": "local"},
        "head_node_type": "head",
        "available_node_types": {
            "head": {"resources": {"CPU": 2}},
            "cpu4": {"resources": {"CPU": 4}, "min_workers": 1, "max_workers": 3, "node_config": {}},
        },
    }
    cfg.update(over)
    return cfg


def test_defaults_are_rays() -> None:
    cfg = validate(base())
    assert cfg.max_workers == 2
    assert cfg.idle_timeout_minutes == 5
    assert cfg.upscaling_speed == 1.0
    assert cfg.node_types["cpu4"].min_workers == 1 and cfg.node_types["cpu4"].max_workers == 3
    assert cfg.node_types["head"].max_workers == 0
    assert list(cfg.worker_types) == ["cpu4"]
    # The raw dict is complete and loads again to the same config (what the monitor gets).
    assert validate(cfg.raw) == cfg


def test_yaml_file_and_ignored_ray_keys(tmp_path: Any) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("""
cluster_name: y
max_workers: 4
idle_timeout_minutes: 0.5
provider: {type: slurm, partition: debug}
auth: {ssh_user: ubuntu}
setup_commands: [echo hi]
head_node_type: head
available_node_types:
  head: {resources: {CPU: 0}}
  gpu: {resources: {CPU: 8, GPU: 1}, max_workers: 2, node_config: {time: "1:00:00"}}
""")
    cfg = load(path)
    assert cfg.cluster_name == "y" and cfg.provider == {"type": "slurm", "partition": "debug"}
    assert cfg.node_types["gpu"].resources == {"CPU": 8.0, "GPU": 1.0}
    assert cfg.node_types["gpu"].node_config == {"time": "1:00:00"}


@pytest.mark.parametrize("change, message", [
    ({"available_node_types": {"head": {}, "cpu4": {"resources": {"CPU": -1}}}},
     "available_node_types.cpu4.resources.CPU must be a non-negative number"),
    ({"available_node_types": {"head": {}, "cpu4": {"resources": {"CPU": "four"}}}},
     "available_node_types.cpu4.resources.CPU must be a non-negative number"),
    ({"available_node_types": {"head": {}, "cpu4": {"resources": {"CPU": 4}, "max_workers": 1.5}}},
     "available_node_types.cpu4.max_workers must be a non-negative integer"),
    ({"available_node_types": {"head": {}, "cpu4": {"resources": {"CPU": 4}, "min_workers": 3,
                                                     "max_workers": 2}}},
     "available_node_types.cpu4.min_workers (3) is more than available_node_types.cpu4.max_workers (2)"),
    ({"available_node_types": {"head": {}, "cpu4": {"resources": {"CPU": 4}, "size": 3}}},
     "available_node_types.cpu4.size is not a known key"),
    ({"available_node_types": {"head": {}, "cpu4": {}}}, "available_node_types.cpu4.resources must give"),
    ({"available_node_types": {"head": {}, "cpu4": {"resources": {"CPU": 1}, "node_config": [1]}}},
     "available_node_types.cpu4.node_config must be a mapping"),
    ({"max_workers": -1}, "max_workers must be a non-negative integer"),
    ({"idle_timeout_minutes": "soon"}, "idle_timeout_minutes must be a non-negative number"),
    ({"upscaling_speed": 0}, "upscaling_speed must be a positive number"),
    ({"provider": {"type": "aws"}}, "provider.type must be one of local, slurm"),
    ({"provider": "local"}, "provider must be a mapping"),
    ({"head_node_type": "gpu"}, "head_node_type must be a key of available_node_types"),
    ({"cluster_name": "a b"}, "cluster_name must be a name"),
    ({"max_worker": 3}, "max_worker is not a known key"),
    ({"max_workers": 1, "available_node_types": {"head": {}, "a": {"resources": {"CPU": 4}, "min_workers": 1},
                                                 "b": {"resources": {"CPU": 4}, "min_workers": 1}}},
     "max_workers (1) is less than the sum of the node types' min_workers (2)"),
    ({"provider": {"type": "slurm"}, "available_node_types": {
        "head": {}, "cpu4": {"resources": {"CPU": 4}, "node_config": {"partiton": "debug"}}}},
     "available_node_types.cpu4.node_config.partiton is not a key of the slurm provider"),
    ({"provider": {"type": "slurm"}, "available_node_types": {
        "head": {}, "cpu4": {"resources": {"CPU": 4}, "node_config": {"sbatch_args": 3}}}},
     "available_node_types.cpu4.node_config.sbatch_args must be a list of strings"),
])
def test_errors_name_the_key(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        validate(base(**change))
    assert message in str(e.value)


def test_provider_is_required_and_files_are_checked(tmp_path: Any) -> None:
    cfg = base()
    del cfg["provider"]
    with pytest.raises(ConfigError, match="provider is required"):
        validate(cfg)
    with pytest.raises(ConfigError, match="cannot read the cluster config"):
        load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="is a mapping of keys"):
        load(bad)


def test_legacy_config_without_node_types() -> None:
    cfg = validate({"cluster_name": "old", "max_workers": 3, "provider": {"type": "local"}})
    assert cfg.head_node_type == "head"
    assert cfg.node_types["worker"].max_workers == 3
