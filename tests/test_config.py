from __future__ import annotations

import pytest

from stephanie_ray.config import StephanieConfig, describe_fields, load_config, parse_override
from stephanie_ray.errors import ConfigError


def test_defaults_embedded_sqlite(tmp_path):
    cfg = load_config(None, {"run.runs_dir": str(tmp_path)}, env={})
    assert cfg.db_url == f"sqlite:///{(tmp_path / 'stephanie.sqlite').resolve()}"
    assert cfg.ray.address == ""
    assert cfg.pipeline.inputs == ["examples"]
    # list defaults are not shared between instances
    a, b = StephanieConfig(), StephanieConfig()
    a.pipeline.inputs.append("x")
    assert b.pipeline.inputs == ["examples"]


def test_precedence_file_env_override(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("db:\n  url: sqlite:///from-file.db\nray:\n  num_cpus: 3\nrun:\n  runs_dir: fromfile\n")
    cfg = load_config(f, env={})
    assert (cfg.db.url, cfg.ray.num_cpus, cfg.run.runs_dir) == ("sqlite:///from-file.db", 3, "fromfile")
    cfg = load_config(f, env={"STEPHANIE_DB": "sqlite:///from-env.db"})
    assert cfg.db.url == "sqlite:///from-env.db"
    cfg = load_config(f, ["ray.num_cpus=5", "db.url=sqlite:///cli.db"], env={"STEPHANIE_DB": "sqlite:///e.db"})
    assert (cfg.db.url, cfg.ray.num_cpus) == ("sqlite:///cli.db", 5)
    cfg = load_config(None, env={"STEPHANIE_CONFIG": str(f)})
    assert cfg.ray.num_cpus == 3


def test_override_types():
    assert parse_override("ray.num_cpus=4") == ("ray.num_cpus", 4)
    assert parse_override("run.progress=false") == ("run.progress", False)
    cfg = load_config(None, ["pipeline.inputs=a,b", "pipeline.stages=[]"], env={})
    assert cfg.pipeline.inputs == ["a", "b"] and cfg.pipeline.stages == []


@pytest.mark.parametrize(
    "text, message",
    [
        ("db: [\n", "malformed config file"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("nosuch:\n  x: 1\n", "unknown config key 'nosuch'"),
        ("db:\n  nope: 1\n", "unknown config key 'db.nope'"),
        ("ray:\n  num_cpus: lots\n", "ray.num_cpus: expected an integer"),
        ("ray:\n  num_cpus: -1\n", "ray.num_cpus must be >= 0"),
        ("run:\n  progress: maybe\n", "run.progress: expected true/false"),
        ("db: 3\n", "db: expected a mapping"),
        ("pipeline:\n  stages: [a, a]\n", "lists a stage twice"),
    ],
)
def test_bad_config_files(tmp_path, text, message):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_config(f, env={})


def test_missing_file_and_bad_override(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml", env={})
    with pytest.raises(ConfigError, match="expected section.field=value"):
        load_config(None, ["novalue"], env={})


def test_every_field_documented():
    rows = describe_fields()
    assert rows and all(help_text for _, _, _, help_text in rows), [r[0] for r in rows if not r[3]]


def test_pacs_reference_reset_defaults_per_mode():
    """pacs.reset_every 0 (default) means the mode's K: 20 for the critic, 1 (the authors') for logprob."""
    from stephanie_ray.config import load_config

    cfg = load_config(None, {}, env={})
    assert cfg.pacs.reset_every == 0
    assert cfg.pacs.reference_reset("critic") == 20 and cfg.pacs.reference_reset("logprob") == 1
    cfg = load_config(None, {"pacs.reset_every": 5}, env={})
    assert cfg.pacs.reference_reset("critic") == 5 and cfg.pacs.reference_reset("logprob") == 5
    with pytest.raises(ConfigError, match="reset_every"):
        load_config(None, {"pacs.reset_every": -1}, env={})
    with pytest.raises(ConfigError, match="uniform_groups"):
        load_config(None, {"pacs.uniform_groups": "sometimes"}, env={})
