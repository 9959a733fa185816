"""The scoring stage on real SQLite and PostgreSQL, real MiniLM, a real local Ray and a real HTTP judge."""

from __future__ import annotations

import copy
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import func, select

from stephanie_ray.casebooks.build import build_casebooks
from stephanie_ray.db.models import Case, CaseBook, GoalState, MarsReport, ScorableEmbedding, ScoreRow, ScorerModel
from stephanie_ray.errors import UserError
from stephanie_ray.reactions import classify
from stephanie_ray.ingest.importer import run_import
from stephanie_ray.scoring.ensemble import aggregate
from stephanie_ray.scoring.queries import latest_mars, rank_for_goal, show_scores
from stephanie_ray.scoring.stage import run_scoring
from stephanie_ray.scoring.train import train_scorers

REPO = Path(__file__).resolve().parent.parent
OFFLINE = ["structure", "readability", "lexical", "embedding", "ngram", "codecheck", "feedback", "choice"]


def serial(cfg):
    cfg = copy.deepcopy(cfg)
    cfg.ingest.parallel = False
    cfg.scoring.parallel = False
    return cfg


@pytest.fixture
def casebooks_db(cfg, db):
    cfg = serial(cfg)
    assert run_import(cfg, db, [str(REPO / "examples")]).ok
    build_casebooks(cfg, db, mode="turn", group_by="goal")
    return cfg, db


def all_scores(db) -> dict[tuple, float]:
    with db.session() as s:
        return {(st, sid, d, sc): v for st, sid, d, sc, v in s.execute(
            select(ScoreRow.scorable_type, ScoreRow.scorable_id, ScoreRow.dimension, ScoreRow.scorer, ScoreRow.value))}


def test_scoring_examples_end_to_end(casebooks_db, tmp_path):
    cfg, db = casebooks_db
    out = run_scoring(cfg, db, run_dir=tmp_path / "run")
    assert out.scorers == OFFLINE and out.items_scored == 14 and out.failed == 0
    assert (tmp_path / "run" / "score_trajectories.png").stat().st_size > 1000
    with db.session() as s:
        rows = list(s.scalars(select(ScoreRow)))
        assert all(0.0 <= r.value <= 1.0 for r in rows if r.status == "ok")
        assert all(r.value is None and r.rationale for r in rows if r.status == "skipped")  # no evidence, said why
        # two scorers with different evidence on every dimension, plus the ensemble per dimension and overall
        dims = {(r.scorer, r.dimension) for r in rows if r.status == "ok"}
        assert {("structure", "clarity"), ("readability", "clarity"), ("structure", "implementability"),
                ("codecheck", "implementability"), ("lexical", "relevance"), ("embedding", "relevance"),
                ("embedding", "novelty"), ("ngram", "novelty"), ("feedback", "alignment"), ("choice", "alignment"),
                ("ensemble", "overall")} <= dims
        # MARS compares two scorers on every dimension
        for rep in s.scalars(select(MarsReport)):
            assert len(rep.scorers) >= 2 and rep.items >= 3, (rep.dimension, rep.scorers, rep.items)
        assert s.scalar(select(func.count()).select_from(ScorableEmbedding)) == 14
        # the ensemble is the (unweighted by default) mean of the scorers
        one = rows[0]
        mine = [(r.scorer, r.dimension, r.value) for r in rows if (r.scorable_type, r.scorable_id) ==
                (one.scorable_type, one.scorable_id) and r.scorer != "ensemble" and r.status == "ok"]
        ens = {r.dimension: r.value for r in rows if (r.scorable_type, r.scorable_id) ==
               (one.scorable_type, one.scorable_id) and r.scorer == "ensemble"}
        assert ens == pytest.approx(aggregate(mine, {}, {}))
        # every case got a quality (its best answer on the footing: novelty left out), each goal its best
        # case as champion (no scorer failed: every case has every footing dimension), after a tournament
        # whose comparisons are the goal state's wins and losses
        cases = list(s.scalars(select(Case)))
        assert all(c.quality == pytest.approx(sum(v for d, v in c.meta["scores"].items() if d != "novelty") / 4)
                   for c in cases)
        for st in s.scalars(select(GoalState)):
            book = [c for c in cases if c.casebook_id == st.casebook_id and not c.meta["acknowledgement"]]
            best = max(book, key=lambda c: c.quality)
            assert st.champion_case_id == best.id and st.champion_quality == pytest.approx(best.quality)
            assert st.wins + st.losses == len(book) - 1 and st.wins >= 1 and st.trust > 0
        for cb in s.scalars(select(CaseBook)):
            assert cb.meta["progress"]["scored"] == len([c for c in cases if c.casebook_id == cb.id
                                                         and not c.meta["acknowledgement"]])
            assert cb.meta["progress"]["verdict"] in ("improving", "declining", "flat")
        rel = s.scalars(select(MarsReport).where(MarsReport.dimension == "relevance")).one()
        assert rel.scorers == ["embedding", "lexical"] and rel.items == 14 and rel.agreement is not None
    # the person's reactions in the examples (stephanie_ray.reactions): three answers accepted; one corrected
    # in words, one regenerated away and two edited away: all four kinds of correction score low
    with db.session() as s:
        align = [(r.rationale, r.value) for r in s.scalars(select(ScoreRow).where(ScoreRow.scorer == "feedback"))]
    accepted = [v for a, v in align if a.startswith("accepted")]
    corrected = [v for a, v in align if a.startswith("corrected")]
    assert len(accepted) == 3 and len(corrected) == 4, align
    assert min(accepted) > 0.8 and max(corrected) < 0.3

    before = all_scores(db)
    again = run_scoring(cfg, db)
    assert again.items_scored == 0 and again.items_skipped_scored == 14 and all_scores(db) == before
    cfg.scoring.chunk_items = 4  # in chunks of 4 items: the same scores (novelty sees the whole trajectory)
    re = run_scoring(cfg, db, rescore=True)
    assert re.items_scored == 14 and all_scores(db).keys() == before.keys()
    assert all_scores(db) == pytest.approx(before)  # deterministic scorers: the same values again


def test_truncation_and_bad_names(casebooks_db):
    cfg, db = casebooks_db
    cfg.scoring.max_text_chars = 300
    with pytest.raises(UserError, match="unknown dimension 'beauty'"):
        run_scoring(cfg, db, dimensions=["beauty"])
    with pytest.raises(UserError, match="scorer 'mrq' is not trained yet"):
        run_scoring(cfg, db, scorers=["mrq"])
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(ScoreRow)) == 0  # nothing happened
    out = run_scoring(cfg, db, dimensions=["clarity"], scorers=["structure"])
    assert out.truncated > 0 and out.items_scored == 14
    with db.session() as s:
        flagged = s.scalar(select(func.count()).select_from(ScoreRow).where(ScoreRow.scorer == "structure",
                                                                             ScoreRow.meta["truncated"].as_boolean()))
    assert flagged == out.truncated


def test_learned_scorers_join_the_ensemble(casebooks_db):
    """Trained on what the person did (reactions, kept-over-regenerated), never on the ensemble's output;
    too few labels is said, not an error; artifacts are safetensors + JSON; they join as alignment scorers."""
    cfg, db = casebooks_db
    run_scoring(cfg, db)
    few = train_scorers(cfg, db)  # the default threshold: the 14 example answers hold fewer labels
    assert not few.trained and "too few labels" in few.reason and few.labels["accepted"] == 3
    rep = train_scorers(cfg, db, epochs=30, min_labels=4)
    assert rep.trained and [m["name"] for m in rep.models] == ["sicql", "mrq", "svm", "hrm", "ebt"]
    assert rep.labels["corrected"] == 4 and rep.labels["pairs"] >= 1
    for m in rep.models:
        assert m["path"].endswith(".safetensors") and Path(m["path"]).with_suffix(".json").is_file()
    out = run_scoring(cfg, db)  # the new scorers make every item due again
    assert out.items_scored == 14 and {"sicql", "mrq", "svm", "hrm", "ebt"} <= set(out.scorers) and out.failed == 0
    with db.session() as s:
        rows = {r.scorer: r for r in s.scalars(select(ScoreRow).where(ScoreRow.dimension == "alignment"))}
        assert "V(request)" in rows["sicql"].rationale and rows["sicql"].scorer_version == "1"
        assert "uncertainty |dE/da|" in rows["ebt"].rationale and "cycles" in rows["hrm"].rationale
        align = [m for m in latest_mars(s)["dimensions"] if m["dimension"] == "alignment"][0]
        assert {"feedback", "choice", "sicql", "mrq", "svm", "hrm", "ebt"} <= set(align["scorers"])
        assert s.scalar(select(func.count()).select_from(ScorerModel)) == 5
    # the pipeline's stage trains again only when the labels changed
    same = train_scorers(cfg, db, min_labels=4, only_if_changed=True)
    assert not same.trained and "unchanged" in same.reason


def test_rank_and_show(casebooks_db):
    cfg, db = casebooks_db
    run_scoring(cfg, db)
    with db.session() as s:
        r = rank_for_goal(s, cfg, "testing a SQLite queue against worker crashes", 3)
        assert len(r["results"]) == 3 and r["candidates"] == 14
        assert r["results"][0]["similarity"] > 0.3
        cb = s.scalars(select(CaseBook)).first()
        by_book = rank_for_goal(s, cfg, cb.name, 50)
        assert by_book["goal_id"] == cb.goal_id and len(by_book["results"]) == by_book["candidates"] < 14
        shown = show_scores(s, r["results"][0]["scorable"])
        assert {x["scorer"] for x in shown["scores"]} == set(OFFLINE) | {"ensemble"}
        with pytest.raises(UserError, match="bad scorable"):
            show_scores(s, "banana:1")


@pytest.mark.ray
def test_ray_actor_pool_equals_serial(cfg, db, ray_local, tmp_path):
    """The Ray Data actor pool writes the same scores as the in-process worker."""
    base = serial(cfg)
    assert run_import(base, db, [str(REPO / "examples")]).ok
    build_casebooks(base, db, mode="turn", group_by="conversation")
    run_scoring(base, db)
    serial_scores = all_scores(db)
    par = copy.deepcopy(base)
    par.scoring.parallel = True
    par.scoring.num_actors = 2
    par.scoring.batch_size = 4
    out = run_scoring(par, db, rescore=True)
    assert out.items_scored == 14 and out.failed == 0
    assert all_scores(db).keys() == serial_scores.keys()
    assert all_scores(db) == pytest.approx(serial_scores, abs=1e-5)


# ----------------------------------------------------------------------------- the LLM judge


class Judge(BaseHTTPRequestHandler):
    """Speaks the chat-completions protocol; the model name picks the behaviour."""

    calls: dict[str, int] = {}
    seen: set[bytes] = set()

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        body = json.loads(raw)
        model = body["model"]
        Judge.calls[model] = Judge.calls.get(model, 0) + 1
        assert self.path.endswith("/chat/completions") and body["messages"][0]["role"] == "system"
        if model == "slow":
            time.sleep(1.5)
        if model == "flaky" and raw not in Judge.seen:  # every request fails once, then succeeds
            Judge.seen.add(raw)
            self.send_response(503)
            self.end_headers()
            return
        content = ("I think this answer is rather good." if model == "malformed" else
                   json.dumps({d: {"score": 7, "rationale": f"{d} looks fine"}
                               for d in ("novelty", "clarity", "relevance", "implementability", "alignment")}))
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # the slow judge writes after its client gave up
        pass


@pytest.fixture
def judge_url():
    server = QuietServer(("127.0.0.1", 0), Judge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_llm_judge_good_malformed_slow(casebooks_db, judge_url):
    cfg, db = casebooks_db
    cfg.scoring.llm_base_url = judge_url
    cfg.scoring.llm_max_retries = 1
    cfg.scoring.llm_timeout_s = 0.5
    for model, ok in (("flaky", True), ("malformed", False), ("slow", False)):
        cfg.scoring.llm_model = model
        out = run_scoring(cfg, db, dimensions=["clarity"], scorers=["structure", "llm"], rescore=True)
        assert out.items_scored == 14
        with db.session() as s:
            rows = list(s.scalars(select(ScoreRow).where(ScoreRow.scorer == "llm")))
            structure = s.scalar(select(func.count()).select_from(ScoreRow).where(ScoreRow.scorer == "structure",
                                                                                  ScoreRow.status == "ok"))
        assert len(rows) == 14 and structure == 14  # the other scorer is unaffected
        if ok:
            assert all(r.status == "ok" and r.value == pytest.approx(0.7) for r in rows) and out.failed == 0
        else:
            assert all(r.status == "failed" and r.value is None for r in rows) and out.failed == 14
            reason = "no JSON object" if model == "malformed" else "timed out"
            assert all(reason in r.error for r in rows), rows[0].error


def test_feedback_rules_on_real_samples(cfg, db, samples):
    """Every answer in the real exports gets an alignment score; no model pass is needed for it, and
    closing pleasantries ("Have a nice day!", "Goodbye") are not acceptances."""
    cfg = serial(cfg)
    assert run_import(cfg, db, [str(samples)]).ok
    build_casebooks(cfg, db, mode="turn", group_by="conversation")
    out = run_scoring(cfg, db, scorers=["feedback"], dimensions=["alignment"])
    assert out.failed == 0 and out.items_scored == out.items_seen > 1000
    with db.session() as s:
        rows = list(s.scalars(select(ScoreRow).where(ScoreRow.scorer == "feedback")))
        assert s.scalar(select(func.count()).select_from(ScorableEmbedding)) == 0  # no embedding needed
    assert len(rows) == out.items_scored
    labels = {r.rationale.split(" ")[0] for r in rows}
    assert {"none", "continued", "corrected"} <= labels  # the samples hold real corrections (Italian ones too)
    for pleasantry in ("Have a nice day!", "Goodbye", "ok bye"):  # closing pleasantries are not acceptances
        assert classify("q", "a", pleasantry).label != "accepted"


def test_empty_answers_and_a_broken_scorer_fail_alone(cfg, db):
    """An answer with no text (only a tool call) and a learned scorer whose file is corrupt: their scores
    are recorded as failed with the reason; every other score is written."""
    from sqlalchemy import update

    from stephanie_ray.db.models import Message, Turn

    cfg = serial(cfg)
    assert run_import(cfg, db, [str(REPO / "examples" / "claude")]).ok
    with db.session() as s:
        turn = s.scalars(select(Turn).where(Turn.active.is_(True)).order_by(Turn.position)).first()
        s.execute(update(Message).where(Message.id == turn.assistant_message_id).values(
            text="", blocks=[{"type": "tool_use", "name": "run_tests", "input": {}}]))
    build_casebooks(cfg, db, mode="turn", group_by="conversation")
    out = run_scoring(cfg, db)
    assert out.items_missing_text == 1 and out.items_scored == out.items_seen - 1
    with db.session() as s:
        rows = list(s.scalars(select(ScoreRow).where(ScoreRow.scorable_id == turn.id)))
        assert rows and all(r.status == "failed" and r.error == "empty text: nothing to score" for r in rows)
    assert run_scoring(cfg, db).items_scored == 0  # recorded: not retried on every run

    trained = train_scorers(cfg, db, kinds=["mrq", "svm"], epochs=10, min_labels=1)
    assert trained.trained
    Path(trained.models[0]["path"]).write_bytes(b"not a safetensors file")  # mrq corrupt
    again = run_scoring(cfg, db)
    assert again.items_scored > 0
    with db.session() as s:
        mrq = list(s.scalars(select(ScoreRow).where(ScoreRow.scorer == "mrq")))
        svm = list(s.scalars(select(ScoreRow).where(ScoreRow.scorer == "svm", ScoreRow.status == "ok")))
    loaded = [r for r in mrq if r.scorable_id != turn.id]
    assert loaded and all(r.status == "failed" and "cannot load scorer mrq" in r.error for r in loaded)
    assert len(svm) >= again.items_scored
