"""Champions and progress on the same footing: the pure rules, then the score stage's write-back on
SQLite and PostgreSQL (synthetic CaseBooks whose answers' scores are constructed, no model needed)."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from stephanie_ray.casebooks.progress import (Attempt, champion_tournament, compare, compute_progress,
                                              footing_quality, request_groups, wilson_lower_bound)
from stephanie_ray.casebooks.store import CaseBookStore
from stephanie_ray.db.models import Case, CaseABResult, CaseBook, GoalState, ScoreRow
from stephanie_ray.scoring.stage import ScoringSummary, reaction_shares, score_id, update_casebooks

FOOTING = ("clarity", "relevance", "implementability", "alignment")


def dims(q: float, novelty: float | None = None) -> dict[str, float]:
    out = {d: q for d in FOOTING}
    if novelty is not None:
        out["novelty"] = novelty
    return out


def attempts(qualities: list[float], *, novelty: float = 0.9, requests: list[str | None] | None = None,
             corrected: list[float] | None = None, accepted: list[float] | None = None) -> list[Attempt]:
    """The first attempt has no novelty (as in scoring); later ones a (high) novelty."""
    out = []
    for i, q in enumerate(qualities):
        d = dims(q, None if i == 0 else novelty)
        out.append(Attempt(i, 100 + i, footing_quality(d), d, (requests or [None] * len(qualities))[i],
                           None if corrected is None else corrected[i], None if accepted is None else accepted[i]))
    return out


# ----------------------------------------------------------------------------- pure rules


def test_novelty_is_not_on_the_footing_and_missing_dimensions_compare_on_what_both_have():
    assert footing_quality({"novelty": 0.0, "clarity": 0.6, "alignment": 0.8}) == pytest.approx(0.7)
    assert footing_quality({"novelty": 1.0}) is None
    assert footing_quality({"clarity": 1.0, "relevance": 0.0}, {"clarity": 3}) == pytest.approx(0.75)
    # B's relevance scorer failed: compared on clarity alone, B's missing 0.0 relevance costs it nothing
    a = Attempt(0, 1, None, {"clarity": 0.7, "relevance": 0.1})
    b = Attempt(1, 2, None, {"clarity": 0.8, "novelty": 0.0})
    c = compare(a, b)
    assert c.dimensions == ("clarity",) and c.improved and c.delta == pytest.approx(0.1)
    # attempts with bare qualities (a caller that set them directly) compare on those
    assert compare(Attempt(0, 1, 0.4), Attempt(1, 2, 0.3)).improved is False
    assert compare(Attempt(0, 1, 0.4, request="r:1"), Attempt(1, 2, 0.3, request="r:1")).same_request
    assert not compare(Attempt(0, 1, 0.4), Attempt(1, 2, 0.3)).same_request  # None: its own request


def test_later_better_attempts_win_and_progress_is_positive():
    traj = attempts([0.40, 0.45, 0.55, 0.60, 0.70, 0.80], requests=["r", None, "r", None, "r", None],
                    corrected=[1, 1, 1, 0, 0, 0], accepted=[0, 0, 0, 0, 1, 1])
    first, comps = champion_tournament(traj)
    assert first.case_id == 100 and len(comps) == 5 and all(c.improved for c in comps)
    # each later attempt met the one before it (the champion so far): none answered its request
    assert not any(c.same_request for c in comps)
    prog = compute_progress(traj)
    assert prog.early_late_delta > 0 and prog.slope > 0
    assert (prog.corrected_early, prog.corrected_late, prog.accepted_early, prog.accepted_late) == (1, 0, 0, 1)
    assert prog.same_request_pairs == 2 and prog.same_request_delta == pytest.approx(0.15)
    assert prog.verdict == "improving" and prog.signals == {"quality": 1, "corrections": 1, "acceptance": 1,
                                                            "same_request": 1}


def test_a_first_attempt_that_is_really_best_stays_champion_and_progress_says_declining():
    traj = attempts([0.9, 0.5, 0.6, 0.4, 0.5], corrected=[0, 1, 1, 1, 1], accepted=[1, 0, 0, 0, 0])
    first, comps = champion_tournament(traj)
    assert first.case_id == 100 and not any(c.improved for c in comps)
    prog = compute_progress(traj)
    assert prog.verdict == "declining" and prog.early_late_delta < 0


def test_novelty_missing_from_the_first_attempt_does_not_decide():
    # equal on the footing; only novelty differs (absent for the first, low for the second): a tie keeps
    # the incumbent, and a later attempt's higher novelty alone never makes it champion
    traj = attempts([0.6, 0.6, 0.6], novelty=0.0)
    assert not any(c.improved for c in champion_tournament(traj)[1])
    assert not any(c.improved for c in champion_tournament(attempts([0.6, 0.6], novelty=1.0))[1])


def test_first_attempt_champion_rate_is_chance_on_random_casebooks():
    rng = random.Random(7)
    books, first, expected = 3000, 0, 0.0
    for _ in range(books):
        n = rng.randint(3, 9)
        traj = []
        for i in range(n):  # exchangeable attempts: iid dimensions; the first has no novelty
            d = {k: rng.random() for k in FOOTING}
            if i > 0:
                d["novelty"] = rng.random() * 0.3  # low novelty: counted, it would favour the first attempt
            traj.append(Attempt(i, i, footing_quality(d), d))
        head, comps = champion_tournament(traj)
        champion = head.case_id
        for c in comps:
            champion = c.candidate_case_id if c.improved else champion
        first += champion == 0
        expected += 1 / n
    sd = (sum(1 / n * (1 - 1 / n) for n in [6] * books)) ** 0.5  # ~ binomial spread
    assert abs(first - expected) < 4 * sd, (first, expected)


def test_request_groups_union_prompts_and_siblings():
    keys = [[("text", "a")], [("sib", 1)], [("text", "a"), ("sib", 2)], [("sib", 2)], [("sib", 1)], [None]]
    assert request_groups(keys) == [0, 1, 0, 0, 1, 5]


def test_acknowledgements_are_not_attempts():
    from stephanie_ray.scoring.stage import is_acknowledgement

    for ack in ("Perfect, thanks! This works in production now.", "grazie mille, funziona", "감사합니다"):
        assert is_acknowledgement(ack), ack
    for request in ("Thanks! Can you also add a dead-letter table?", "continue", "Why is the baseline unbiased?",
                    "Thanks. Now write the full module with enqueue, claim, complete, fail, backoff and tests "
                    "for each of them"):
        assert not is_acknowledgement(request), request


def test_reaction_shares_from_feedback_rationales():
    assert reaction_shares("corrected (0.80): the person says it failed") == (1.0, 0.0)
    assert reaction_shares("accepted (0.90): thanks") == (0.0, 1.0)
    assert reaction_shares("continued (0.60): goes on") == (0.0, 0.0)
    assert reaction_shares("mean over 4 turns: 1 accepted, 2 corrected") == (0.5, 0.25)
    assert reaction_shares("something else") is None


# ----------------------------------------------------------------------------- the stage's write-back, both databases


def _book(db, cfg, name: str, plan: list[tuple[str, list[tuple[float, str]]]]) -> int:
    """A CaseBook whose case i has prompt plan[i][0] and answers with (footing quality, reaction label);
    their ensemble and feedback scores are written as the score stage would."""
    rows = []
    with db.session() as s:
        store = CaseBookStore.from_config(s, cfg)
        goal = store.ensure_goal(f"goal of {name}")
        cb = store.ensure_casebook(name, description=goal.text, goal_id=goal.id, mode="turn", group_by="goal")
        for i, (prompt, answers) in enumerate(plan):
            sc = [{"scorable_type": "turn", "scorable_id": 10_000 * cb.id + 10 * i + j, "role": "response", "rank": j}
                  for j in range(len(answers))]
            store.add_case(cb.id, prompt_text=prompt, goal_id=goal.id, case_key=f"k{i}", scorables=sc)
            for j, (q, label) in enumerate(answers):
                sid = sc[j]["scorable_id"]
                d = dims(q, None if i == 0 else 0.05)
                for dim, v in d.items():
                    rows.append(ScoreRow(id=score_id("turn", sid, dim, "ensemble"), scorable_type="turn",
                                         scorable_id=sid, dimension=dim, scorer="ensemble", scorer_version="1",
                                         value=v, status="ok", rationale="", meta={}))
                rows.append(ScoreRow(id=score_id("turn", sid, "alignment", "feedback"), scorable_type="turn",
                                     scorable_id=sid, dimension="alignment", scorer="feedback", scorer_version="2",
                                     value=q, status="ok", rationale=f"{label} (0.80): constructed", meta={}))
        s.add_all(rows)
        return cb.id


def _state(db, cb: int) -> tuple[GoalState, list[Case]]:
    with db.session() as s:
        st = s.scalars(select(GoalState).where(GoalState.casebook_id == cb)).one()
        s.expunge(st)
        cases = list(s.scalars(select(Case).where(Case.casebook_id == cb).order_by(Case.position)))
        for c in cases:
            s.expunge(c)
        return st, cases


Q = "How do I make the job queue survive a worker crash in the middle of a job?"


def test_stage_champions_wins_losses_trust_and_progress(cfg, db):
    better = _book(db, cfg, "later-better", [
        (Q, [(0.35, "corrected")]),
        ("It still loses jobs when the worker dies, here is the log", [(0.45, "corrected")]),
        (Q + " (edited)", [(0.50, "corrected"), (0.62, "continued")]),  # a regeneration: the best answer counts
        (Q, [(0.70, "continued")]),  # the same request asked again
        ("Now add exponential backoff to the retries please", [(0.80, "accepted")]),
        (Q, [(0.85, "accepted")]),
    ])
    best_first = _book(db, cfg, "first-best", [
        (Q, [(0.90, "accepted")]), ("Add retries to it please, with a cap", [(0.50, "corrected")]),
        ("And a dead-letter table for the failures", [(0.55, "continued")]), (Q, [(0.40, "corrected")]),
    ])
    summary = ScoringSummary()
    update_casebooks(db, cfg, {better, best_first}, summary)
    assert summary.casebooks_updated == 2 and summary.champions_changed == 2

    st, cases = _state(db, better)
    assert cases[2].quality == pytest.approx(0.62)  # its best answer
    assert st.champion_case_id == cases[-1].id != cases[0].id
    assert (st.wins, st.losses) == (5, 0) and st.trust == pytest.approx(wilson_lower_bound(5, 5))
    assert [h["case_id"] for h in st.meta["history"]] == [c.id for c in cases]
    prog = cases[0].casebook_id
    with db.session() as s:
        p = s.get(CaseBook, prog).meta["progress"]
        ab = list(s.scalars(select(CaseABResult).where(CaseABResult.casebook_id == better)))
    assert p["verdict"] == "improving" and p["early_late_delta"] > 0 and p["slope"] > 0
    assert p["corrected_early"] == 1.0 and p["corrected_late"] == 0.0 and p["accepted_late"] == 1.0
    assert p["same_request_pairs"] == 2 and p["same_request_delta"] > 0  # Q asked three times, better each time
    assert len(ab) == 5 and all(a.improved for a in ab) and all(a.meta["dimensions"] == sorted(FOOTING) for a in ab)

    st1, cases1 = _state(db, best_first)
    assert st1.champion_case_id == cases1[0].id and (st1.wins, st1.losses) == (0, 3) and st1.trust == 0.0
    with db.session() as s:
        assert s.get(CaseBook, best_first).meta["progress"]["verdict"] == "declining"
        # the store reads the same progress back from the cases (what `casebooks show` prints)
        assert CaseBookStore(s).progress(best_first, save=False).to_dict() == s.get(CaseBook, best_first).meta["progress"]

    # scoring again rebuilds the goal states instead of counting the comparisons twice
    update_casebooks(db, cfg, {better, best_first}, ScoringSummary())
    again, _ = _state(db, better)
    assert (again.wins, again.losses, again.run_ix, again.champion_case_id) == (5, 0, 6, st.champion_case_id)
    with db.session() as s:
        assert len(list(s.scalars(select(CaseABResult).where(CaseABResult.casebook_id == better)))) == 5
