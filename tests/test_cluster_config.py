"""cluster.yaml passes the cluster launcher's own prepare-and-validate step; runtime_env.yaml is sane."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


def _prepared():
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load((REPO / "cluster.yaml").read_text())
    cfg = prepare_config(copy.deepcopy(raw))  # fills the provider's defaults, as `ray up` does
    validate_config(cfg)
    return raw, cfg


def test_cluster_yaml_validates_with_ray_schema():
    raw, cfg = _prepared()
    types = cfg["available_node_types"]
    head = cfg["head_node_type"]
    workers = {k: v for k, v in types.items() if k != head}
    assert any(v["resources"].get("GPU", 0) >= 1 and v["min_workers"] == 0 for v in workers.values())
    assert any("GPU" not in v["resources"] and v["max_workers"] > v["min_workers"] for v in workers.values())
    assert any("pip install" in c and "-e ." in c for c in cfg["setup_commands"])


def test_invalid_cluster_yaml_is_rejected():
    from jsonschema import ValidationError
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load((REPO / "cluster.yaml").read_text())
    raw["available_node_types"]["gpu_workers"]["min_workers"] = "zero"
    with pytest.raises(ValidationError):
        validate_config(prepare_config(raw))


def test_runtime_env_yaml_is_a_valid_runtime_env():
    from ray.runtime_env import RuntimeEnv

    data = yaml.safe_load((REPO / "runtime_env.yaml").read_text())
    env = RuntimeEnv(**data)
    assert ".venv/" in env["excludes"]
