"""Audit trail semantics with real stage functions on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from stephanie_ray import pipeline
from stephanie_ray.audit import get_run, list_runs
from stephanie_ray.errors import UserError


def stage_ok(ctx):
    return {"items": 3, "inputs": len(ctx.inputs)}


def stage_partial(ctx):
    return {"items": 2, "failed": 1}


def stage_boom(ctx):
    raise ValueError("stage exploded")


@pytest.fixture
def stages(monkeypatch):
    def use(*specs):
        monkeypatch.setattr(pipeline, "STAGE_SPECS", [(n, f"{__name__}:{fn}", "") for n, fn in specs])
    return use


def test_success_and_partial_recorded(cfg, db, stages, tmp_path):
    stages(("one", "stage_ok"), ("two", "stage_partial"))
    res = pipeline.run_pipeline(cfg, [str(tmp_path)], db=db, progress=False)
    assert res.status == "partial"
    run = get_run(db, res.run_id)
    assert run["status"] == "partial" and run["finished_at"] and run["inputs"] == [str(tmp_path)]
    assert [(s["stage"], s["status"]) for s in run["stages"]] == [("one", "succeeded"), ("two", "partial")]
    assert run["stages"][0]["counts"] == {"items": 3, "inputs": 1}
    assert run["config"]["db"]["url"] == cfg.db.url
    assert (tmp_path / "runs" / f"run-{res.run_id:06d}" / "report.md").read_text().count("|") > 6


def test_failure_recorded_and_raised(cfg, db, stages, tmp_path):
    stages(("one", "stage_ok"), ("boom", "stage_boom"), ("never", "stage_ok"))
    with pytest.raises(ValueError, match="stage exploded"):
        pipeline.run_pipeline(cfg, [str(tmp_path)], db=db, progress=False)
    run = list_runs(db)[0]
    assert run["status"] == "failed" and "stage exploded" in run["error"]
    assert [(s["stage"], s["status"]) for s in run["stages"]] == [("one", "succeeded"), ("boom", "failed")]
    assert "ValueError: stage exploded" in run["stages"][1]["error"]


def test_stage_selection_keeps_pipeline_order(stages):
    stages(("a", "stage_ok"), ("b", "stage_ok"), ("c", "stage_ok"))
    assert [s.name for s in pipeline.select_stages(["c", "a"])] == ["a", "c"]
    with pytest.raises(UserError, match="unknown stage 'z'"):
        pipeline.select_stages(["z"])
