"""The run report (report.md) after `stephanie pipeline examples`: what failed and why, MARS, champions
and progress per CaseBook, the best and worst answers, a readable figure."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from test_cli import REPO, run


def test_pipeline_report_has_every_section(tmp_path):
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    (tmp_path / "examples" / "broken").mkdir()
    (tmp_path / "examples" / "broken" / "conversations.json").write_text('[{"title": "cut off", "mapping": {')
    proc = run("pipeline", "examples", "--set", "ingest.parallel=false", "--set", "scoring.parallel=false",
               "--set", "casebooks.group_by=goal", "--json", cwd=tmp_path, ok=False)
    assert proc.returncode == 1, proc.stderr  # the broken file failed; everything else went on
    result = json.loads(proc.stdout)
    run_dir = Path(result["run_dir"])
    report = (run_dir / "report.md").read_text()
    sections = [line for line in report.splitlines() if line.startswith("## ")]
    assert sections == ["## Failures and skips", "## MARS: do the scorers agree?", "## CaseBooks: champions and progress",
                        "## Best answers", "## Worst answers", "## PACS dataset", "## PACS critic",
                        "## Entities (NER retriever)", "## Figures"]
    failures = report.split("## Failures and skips")[1].split("## MARS")[0]
    assert "**ingest** (partial)" in failures and "broken" in failures and "1 ×" in failures
    mars = report.split("## MARS")[1].split("## CaseBooks")[0]
    assert "| relevance | embedding, lexical | 14 |" in mars and "n/a (one scorer)" not in mars  # two on every one
    assert "| clarity | readability, structure |" in mars and "| alignment | choice, feedback |" in mars
    books = report.split("## CaseBooks: champions and progress")[1].split("## Best answers")[0]
    assert "First attempt is champion in" in books and "Progress verdicts:" in books
    rows = [line for line in books.splitlines() if line.startswith("| chat/turn/goal/")]
    champions = [r for r in rows if " q=0." in r]  # (a CaseBook of one unscored attempt has none)
    assert len(rows) >= 2 and len(champions) >= 2 and all("→" in r for r in rows)
    best = report.split("## Best answers")[1].split("## Worst answers")[0]
    assert best.count("\n| 0.") == 3 and "turn:" in best
    assert "![score_trajectories.png](score_trajectories.png)" in report
    assert (run_dir / "score_trajectories.png").stat().st_size > 10_000


def test_report_lists_the_largest_casebooks_and_counts_the_rest(tmp_path):
    """With more CaseBooks than the report lists, it says how many more there are."""
    from stephanie_ray.config import load_config
    from stephanie_ray.db import Database
    from stephanie_ray.scoring.queries import render_score_report, score_report
    from stephanie_ray.scoring.stage import plot_trajectories

    shutil.copytree(REPO / "examples", tmp_path / "examples")
    db_url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    run("import", "examples", "--serial", "--db", db_url, cwd=tmp_path)
    run("casebooks", "build", "--db", db_url, cwd=tmp_path)  # one CaseBook per conversation: 7
    run("score", "--serial", "--scorers", "structure,lexical,feedback", "--db", db_url, cwd=tmp_path)
    cfg = load_config(None, {"db.url": db_url}, env={})
    db = Database.from_config(cfg)
    try:
        with db.session() as s:
            rep = score_report(s, {}, top_n=3)
        text = render_score_report(rep, {}, ["clarity", "relevance", "implementability", "alignment"])
        assert len(rep.casebooks) == 3 and rep.casebooks_total == 7
        assert "4 more CaseBooks not shown (the 3 largest are)" in text
        assert [b.cases for b in rep.casebooks] == sorted((b.cases for b in rep.casebooks), reverse=True)
        png = plot_trajectories(db, tmp_path / "traj.png", max_books=4)
        assert png is not None and png.stat().st_size > 10_000
    finally:
        db.dispose()
