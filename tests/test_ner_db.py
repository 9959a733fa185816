"""NER retriever on a real database (SQLite and PostgreSQL): indexing the examples, incremental reruns,
retrieval, the entity graph, calibration, the CLI; the Ray actor pool equals the in-process worker."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from stephanie_ray.casebooks.build import build_casebooks
from stephanie_ray.cli import main
from stephanie_ray.db.models import NerEdge, NerEntity, NerMention, NerScorable
from stephanie_ray.errors import UserError
from stephanie_ray.ingest.importer import run_import
from stephanie_ray.ner.retriever import NerRetriever, calibrate_domain, retrieve_entities
from stephanie_ray.ner.graph import entity_report
from stephanie_ray.ner.stage import run_ner_index

REPO = Path(__file__).resolve().parent.parent


def small(cfg):
    cfg = copy.deepcopy(cfg)
    cfg.ingest.parallel = False
    cfg.ner.parallel = False
    cfg.ner.epochs = 2
    cfg.ner.n_trees = 5
    return cfg


@pytest.fixture
def indexed(cfg, db):
    cfg = small(cfg)
    assert run_import(cfg, db, [str(REPO / "examples")]).ok
    build_casebooks(cfg, db, mode="turn", group_by="conversation")
    return cfg, db, run_ner_index(cfg, db)


def mentions(db):
    with db.session() as s:
        return sorted(s.execute(select(NerMention.scorable_type, NerMention.scorable_id, NerMention.start,
                                       NerMention.end, NerMention.text, NerMention.label, NerMention.vector)).all())


def test_index_search_graph_and_incremental_rerun(indexed):
    cfg, db, first = indexed
    assert first.failed == 0 and first.scorables_indexed == first.scorables_seen > 0
    assert first.projection_trained and first.index_items == first.mentions_new > 0 and first.entities > 0
    before = mentions(db)
    again = run_ner_index(cfg, db)  # incremental: nothing new to embed, the index rebuilt from stored vectors
    assert again.scorables_indexed == 0 and again.scorables_skipped_done == first.scorables_seen
    assert again.index_items == first.index_items and not again.projection_trained
    assert mentions(db) == before
    res = retrieve_entities("machine learning library", k=5, cfg=cfg)
    assert 0 < len(res) <= 5
    keys = {"scorable_id", "scorable_type", "entity_text", "entity_type", "start", "end", "similarity",
            "calibrated_similarity", "source_text"}
    assert keys <= set(res[0])
    assert res == sorted(res, key=lambda r: -r["similarity"])
    assert all(r["entity_text"] in r["source_text"] for r in res)
    r = NerRetriever(cfg)
    assert r.search("machine learning library", k=5, min_similarity=1.0) == []
    for bad in [dict(k=0), dict(k=True), dict(min_similarity=2.0)]:
        with pytest.raises(UserError):
            r.search("x", **bad)
    with pytest.raises(UserError, match="empty query"):
        r.search("  ")
    with db.session() as s:
        top = s.scalars(select(NerEntity).order_by(NerEntity.mentions.desc(), NerEntity.id)).first()
        rep = entity_report(s, top.name.upper())  # names are matched normalised
        assert rep["entity"]["id"] == top.id and rep["scorables"] and rep["casebooks"] and rep["cases_total"] >= 1
        assert s.scalar(select(func.count()).select_from(NerEdge)) == first.edges
        with pytest.raises(UserError, match="no entity named"):
            entity_report(s, "zzz-no-such-entity")


def test_calibrate_cli_and_bad_index(indexed, tmp_path, capsys):
    cfg, db, _ = indexed
    r = NerRetriever(cfg)
    lines = []
    for q in ["person", "company", "programming language", "file path", "web address", "Python library"]:
        for h in r.search(q, k=8):
            lines.append({"query": q, "result": h.id, "relevant": int(h.similarity > 0.35)})
    if len({x["relevant"] for x in lines}) < 2:  # make both classes present whatever the tiny model learned
        lines[0]["relevant"], lines[-1]["relevant"] = 1, 0
    j = tmp_path / "judgments.jsonl"
    j.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    rep = calibrate_domain(cfg, str(j), "tech")
    assert rep["judgments"] == len(lines) and {"ece_before", "ece_after", "brier_before", "brier_after"} <= set(rep)
    res = NerRetriever(cfg).search("person", k=3, domain="tech")
    assert all(x.calibrated and 0 <= x.calibrated_similarity <= 1 for x in res)
    args = ["--db", cfg.db.url, "--set", f"run.runs_dir={cfg.run.runs_dir}", "--json"]
    assert main(["ner", "search", "company", "--k", "3", *args]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["k"] == 3 and len(out["results"]) <= 3
    name = out["results"][0]["entity_text"] if out["results"] else "x"
    assert main(["graph", "entity", name, *args]) in (0, 2)
    capsys.readouterr()
    # a damaged index: one line telling how to rebuild, exit 2
    from stephanie_ray.ner.stage import ner_dir

    base = ner_dir(cfg) / "index"
    cur = (base / "CURRENT").read_text().strip()
    (base / cur / "entities.ann").write_bytes(b"\0" * 10)
    assert main(["ner", "search", "company", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stephanie ner index" in err[0]


def test_failed_and_empty_texts_are_recorded(cfg, db, monkeypatch):
    cfg = small(cfg)
    assert run_import(cfg, db, [str(REPO / "examples" / "claude")]).ok
    build_casebooks(cfg, db, mode="turn", group_by="conversation")
    from stephanie_ray.ner import worker

    real = worker.NerWorker._process

    target: dict[str, str] = {}

    def flaky(self, texts):  # the longest text of the first batch fails, wherever it goes
        target.setdefault("t", max(texts, key=len))
        if target["t"] in texts:
            raise RuntimeError("boom")
        return real(self, texts)

    monkeypatch.setattr(worker.NerWorker, "_process", flaky)
    s = run_ner_index(cfg, db)
    assert s.failed == 1 and s.partial and all(f["error"] == "RuntimeError: boom" for f in s.failures)
    assert s.scorables_indexed > s.failed  # the others went on
    monkeypatch.setattr(worker.NerWorker, "_process", real)
    again = run_ner_index(cfg, db)  # failed ones are retried
    assert again.scorables_indexed == s.failed and again.failed == 0
    with db.session() as ses:
        assert ses.scalar(select(func.count()).select_from(NerScorable).where(NerScorable.status == "failed")) == 0


@pytest.mark.ray
def test_ray_actor_pool_equals_serial(cfg, db, ray_local, tmp_path):
    cfg = small(cfg)
    assert run_import(cfg, db, [str(REPO / "examples" / "chatgpt")]).ok
    build_casebooks(cfg, db, mode="turn", group_by="conversation")
    serial = run_ner_index(cfg, db)
    rows = mentions(db)
    par = copy.deepcopy(cfg)
    par.ner.parallel = True
    par.ner.num_actors = 2
    out = run_ner_index(par, db, reembed=True)
    assert out.scorables_indexed == serial.scorables_indexed and out.failed == 0
    got = mentions(db)
    assert [r[:6] for r in got] == [r[:6] for r in rows]
    import numpy as np

    for a, b in zip(got, rows):  # same vectors up to float noise of different thread counts
        np.testing.assert_allclose(np.frombuffer(a[6], np.float32), np.frombuffer(b[6], np.float32), atol=1e-4)


def test_cli_without_an_index(tmp_path, capsys):
    args = ["--set", f"run.runs_dir={tmp_path}", "--db", f"sqlite:///{tmp_path / 'x.sqlite'}"]
    assert main(["ner", "search", "law firm", *args]) == 2
    assert "stephanie ner index" in capsys.readouterr().err
