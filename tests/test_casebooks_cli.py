"""`stephanie casebooks`, `score`, `scores`, `mars`, `rank`, `scorers` and the pipeline stages, as a user runs them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from test_cli import REPO, run


def test_casebooks_cli_build_list_show(tmp_path, db_url):
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    db = ["--db", db_url]
    run("import", "examples", "--serial", *db, cwd=tmp_path)
    built = json.loads(run("casebooks", "build", "--group-by", "goal", "--json", *db, cwd=tmp_path).stdout)
    assert (built["mode"], built["group_by"], built["goal_groups"], built["cross_provider_groups"]) == ("turn", "goal", 2, 2)
    assert built["cases_new"] == 12 and built["failed"] == 0
    again = json.loads(run("casebooks", "build", "--group-by", "goal", "--json", *db, cwd=tmp_path).stdout)
    assert again["cases_new"] == again["scorables_new"] == again["casebooks_new"] == 0

    books = json.loads(run("casebooks", "list", "--json", *db, cwd=tmp_path).stdout)["casebooks"]
    assert len(books) == 2 and books[0]["providers"] == ["chatgpt", "claude", "deepseek", "qwen"]
    shown = json.loads(run("casebooks", "show", books[0]["name"], "--json", *db, cwd=tmp_path).stdout)
    assert shown["name"] == books[0]["name"] and len(shown["cases"]) == books[0]["cases"] == 7
    assert all(c["scorables"] for c in shown["cases"])
    human = run("casebooks", "show", str(books[1]["id"]), *db, cwd=tmp_path).stdout
    assert "goal: RLOO" in human and "response #0" in human

    conv = json.loads(run("casebooks", "build", "--mode", "conversation", "--json", *db, cwd=tmp_path).stdout)
    assert conv["casebooks_new"] == 7 and conv["cases_new"] == 7

    bad = run("casebooks", "build", "--group-by", "goal", "--threshold", "0", *db, cwd=tmp_path, ok=False)
    assert bad.returncode == 2 and "casebooks.goal_threshold must be in (0, 1]" in bad.stderr
    assert "Traceback" not in bad.stderr
    missing = run("casebooks", "show", "no-such-book", *db, cwd=tmp_path, ok=False)
    assert missing.returncode == 2 and "no CaseBook named 'no-such-book'" in missing.stderr


def test_casebooks_list_says_how_many_it_shows(tmp_path):
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    db = ["--db", f"sqlite:///{tmp_path / 'stephanie.sqlite'}"]
    run("import", "examples", "--serial", *db, cwd=tmp_path)
    run("casebooks", "build", "--mode", "conversation", *db, cwd=tmp_path)
    listed = json.loads(run("casebooks", "list", "--json", *db, cwd=tmp_path).stdout)
    assert listed["total"] == listed["shown"] == len(listed["casebooks"]) == 7
    few = json.loads(run("casebooks", "list", "--limit", "3", "--json", *db, cwd=tmp_path).stdout)
    assert (few["total"], few["shown"], len(few["casebooks"])) == (7, 3, 3)
    assert few["casebooks"] == listed["casebooks"][:3]  # the same order, cut
    human = run("casebooks", "list", "--limit", "3", *db, cwd=tmp_path).stdout
    assert "3 of 7 CaseBooks (--limit N or --all for more)" in human
    assert "7 of 7 CaseBooks\n" in run("casebooks", "list", "--all", *db, cwd=tmp_path).stdout
    assert json.loads(run("casebooks", "list", "--all", "--mode", "turn", "--json", *db,
                          cwd=tmp_path).stdout) == {"casebooks": [], "total": 0, "shown": 0}
    bad = run("casebooks", "list", "--limit", "0", *db, cwd=tmp_path, ok=False)
    assert bad.returncode == 2 and "--limit must be > 0" in bad.stderr
    both = run("casebooks", "list", "--limit", "3", "--all", *db, cwd=tmp_path, ok=False)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


def test_pipeline_runs_casebooks_after_import(tmp_path):
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    # the first four stages (the whole pipeline runs in test_report.py)
    proc = run("pipeline", "examples", "--set", "ingest.parallel=false", "--stages", "scorers,score,casebooks,ingest",
               "--json", cwd=tmp_path)
    result = json.loads(proc.stdout)
    # in pipeline order whatever order they were asked in; the learned-scorer stage says why it skipped
    assert [s["stage"] for s in result["stages"]] == ["ingest", "casebooks", "score", "scorers"]
    assert "too few labels" in result["stages"][3]["counts"]["reason"]
    cb = result["stages"][1]
    assert cb["status"] == "succeeded" and cb["counts"]["cases_new"] == 12 and cb["counts"]["casebooks_new"] == 7
    assert result["stages"][2]["counts"]["items_scored"] == 14
    assert (Path(result["run_dir"]) / "score_trajectories.png").exists()
    stages = run("stages", cwd=tmp_path).stdout
    assert "casebooks" in stages and "score" in stages


def test_score_mars_rank_cli(tmp_path, db_url):
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    db = ["--db", db_url]
    run("import", "examples", "--serial", *db, cwd=tmp_path)
    run("casebooks", "build", "--group-by", "goal", *db, cwd=tmp_path)
    bad = run("score", "--scorers", "structure,oracle", *db, cwd=tmp_path, ok=False)
    assert bad.returncode == 2 and "unknown scorer 'oracle'" in bad.stderr
    untrained = run("score", "--scorers", "svm", *db, cwd=tmp_path, ok=False)
    assert untrained.returncode == 2 and "not trained yet" in untrained.stderr
    out = json.loads(run("score", "--serial", "--json", *db, cwd=tmp_path).stdout)
    assert out["items_scored"] == 14 and out["failed"] == 0 and set(out["dimension_means"]) >= {"overall", "clarity"}
    assert "![score_trajectories.png](score_trajectories.png)" in Path(out["report"]).read_text()
    mars = json.loads(run("mars", "--json", *db, cwd=tmp_path).stdout)["dimensions"]
    assert {m["dimension"] for m in mars} == {"novelty", "clarity", "relevance", "implementability", "alignment"}
    human = run("mars", *db, cwd=tmp_path).stdout
    assert "embedding vs lexical" in human
    ranked = json.loads(run("rank", "--goal", "RLOO baselines", "--k", "2", "--json", *db, cwd=tmp_path).stdout)
    assert len(ranked["results"]) == 2
    shown = json.loads(run("scores", "show", ranked["results"][0]["scorable"], "--json", *db, cwd=tmp_path).stdout)
    assert any(s["scorer"] == "ensemble" and s["dimension"] == "overall" for s in shown["scores"])
    few = run("scorers", "train", "--scorers", "mrq", *db, cwd=tmp_path).stdout
    assert "too few labels to train" in few  # said, not an error
    trained = json.loads(run("scorers", "train", "--scorers", "mrq", "--epochs", "20", "--min-labels", "4", "--json",
                             *db, cwd=tmp_path).stdout)
    assert trained["models"][0]["name"] == "mrq" and "auc" in trained["models"][0]["validation"]
    assert "auc" in trained["baseline"]["validation"]
    listed = run("scorers", "list", *db, cwd=tmp_path).stdout
    assert "trained mrq    v1" in listed and "llm judge: not configured" in listed and "codecheck" in listed
