"""`prepare`: scored CaseBooks -> the PACS dataset (rows, groups, split, Parquet, version), on SQLite and
PostgreSQL, and its bad inputs; the group and split rules as pure functions."""

from __future__ import annotations

import pandas as pd
import pytest

from stephanie_ray.errors import UserError
from stephanie_ray.training.groups import CaseRef, group_cases, split_rows


def _scored_books(db, convs: int = 6, regenerate_every: int = 2, score=lambda c, t, a: 0.3 + 0.4 * (a % 2)):
    """``convs`` conversations (2 user turns each; the first turn of every ``regenerate_every``-th conversation
    regenerated once), one CaseBook per conversation in turn mode, and ensemble overall scores."""
    from stephanie_ray.db.models import Case, CaseBook, CaseScorable, Conversation, Goal, Message, ScoreRow, Turn

    with db.session() as s:
        for c in range(convs):
            cid = 1000 + c
            s.add(Conversation(id=cid, provider="chatgpt" if c % 2 else "claude", external_id=f"c{c}",
                               title=f"conv {c}"))
            s.add(Goal(id=5000 + c, text=f"goal {c}", text_hash=f"h{c}"))
            s.flush()
            s.add(CaseBook(id=c + 1, name=f"chat/turn/{c}", description=f"goal {c}", goal_id=5000 + c, mode="turn",
                           group_by="conversation", tag="chat"))
            parent, pos = None, 0
            for t in range(2):
                uid = cid * 100 + t * 10
                s.add(Message(id=uid, conversation_id=cid, external_id=f"u{uid}", parent_id=parent, role="user",
                              text=f"Question {t} of conversation {c}: how do I do thing {t}?", position=pos))
                pos += 1
                answers = 2 if (t == 0 and c % regenerate_every == 0) else 1
                case_id = cid * 10 + t
                s.add(Case(id=case_id, casebook_id=c + 1, goal_id=5000 + c, case_key=f"m:{uid}", conversation_id=cid,
                           prompt_text=f"Question {t}", position=t, meta={}))
                active_aid = None
                for a in range(answers):
                    aid = uid + 1 + a
                    active = a == answers - 1
                    s.add(Message(id=aid, conversation_id=cid, external_id=f"a{aid}", parent_id=uid,
                                  role="assistant", text=f"Answer {a} to question {t} in {c}.", position=pos,
                                  active=active))
                    pos += 1
                    tid = aid * 7
                    s.add(Turn(id=tid, conversation_id=cid, user_message_id=uid, assistant_message_id=aid,
                               turn_hash=f"t{tid}", active=active, position=t))
                    s.add(CaseScorable(id=tid * 3, case_id=case_id, casebook_id=c + 1, scorable_type="turn",
                                       scorable_id=tid, role="response", rank=answers - 1 - a))
                    value = score(c, t, a)
                    if value is not None:
                        s.add(ScoreRow(id=tid * 5, scorable_type="turn", scorable_id=tid, dimension="overall",
                                       scorer="ensemble", scorer_version="1", value=value))
                    if active:
                        active_aid = aid
                parent = active_aid


def _cfg(cfg, **over):
    cfg.verifier.name = "ensemble"
    for k, v in over.items():
        section, field = k.split("__")
        setattr(getattr(cfg, section), field, v)
    return cfg


def test_prepare_rows_groups_split_parquet_and_version(db, cfg, tmp_path):
    from stephanie_ray.db.models import DatasetVersion
    from stephanie_ray.training.dataset import run_prepare

    _scored_books(db)
    r = run_prepare(_cfg(cfg, prepare__val_fraction=0.3), db, tmp_path / "run")
    assert r.rows == 6 * 2 + 3 and not r.reused and r.positives + r.negatives == r.rows
    assert r.group_sizes == {1: 9, 2: 3} and r.group_rules == {"regenerations": 3, "single": 9}
    df = pd.read_parquet(r.path)
    assert len(df) == r.rows and set(df.split) == {"train", "val"}
    # no conversation, goal or group on both sides of the split
    for col in ("conversation_id", "goal_id", "group_id"):
        assert (df.groupby(col).split.nunique() == 1).all(), col
    # the context: the turn before the second prompt, and the critic reads the prompt first
    second = df[df.turn_index > 0].iloc[0]
    assert second.context.startswith("user: Question 0") and second.critic_prompt.startswith("Question 1")
    assert {"reward", "label", "group_id", "provider", "casebook", "case_id", "turn_index"} <= set(df.columns)
    assert df.reward.between(0, 1).all() and set(df.label) == {0, 1}
    with db.session() as s:
        dv = s.get(DatasetVersion, r.dataset_version)
        assert (dv.rows, dv.positives, dv.content_hash) == (r.rows, r.positives, r.content_hash)
    again = run_prepare(cfg, db, tmp_path / "run2")  # unchanged data: the same version, no new file
    assert again.reused and again.dataset_version == r.dataset_version and again.path == r.path


def test_unscored_answers_and_verifier_failures_are_counted_not_labelled(db, cfg, tmp_path):
    from stephanie_ray.training.dataset import run_prepare
    from stephanie_ray.training.verifiers import VERIFIERS, Verdict, VerifierSpec, VerifyFailure, register_verifier

    _scored_books(db, convs=8, score=lambda c, t, a: None if (c, t) == (1, 1) else 0.3 + 0.4 * ((c + t) % 2))

    class Flaky:  # fails on every answer to a second question
        name, version = "flaky", "1"

        def verify_batch(self, items):
            return [VerifyFailure("backend down: 503") if "Question 1" in it.prompt
                    else Verdict(1.0 if it.context["ensemble_score"] > 0.5 else 0.0,
                                 int(it.context["ensemble_score"] > 0.5), "ok") for it in items]

    register_verifier(VerifierSpec("flaky", lambda c: Flaky(), "test"))
    try:
        cfg.verifier.name = "flaky"
        r = run_prepare(cfg, db, tmp_path)
    finally:
        del VERIFIERS["flaky"]
    assert r.excluded == {"no ensemble score (stephanie score)": 1, "flaky verifier: backend down": 7}
    df = pd.read_parquet(r.path)
    assert len(df) == r.rows == 8 + 4 and not df.prompt.str.contains("Question 1").any()


def test_bad_input_is_one_clear_error(db, cfg, tmp_path):
    from stephanie_ray.training.dataset import run_prepare

    with pytest.raises(UserError, match="no labelled responses"):
        run_prepare(_cfg(cfg), db, tmp_path)  # nothing in the database
    _scored_books(db, convs=1)
    with pytest.raises(UserError, match="too few items for a split: .* 1 independent component"):
        run_prepare(cfg, db, tmp_path)


def test_a_single_class_is_an_error(db, cfg, tmp_path):
    from stephanie_ray.training.dataset import run_prepare

    _scored_books(db, convs=4, score=lambda c, t, a: 0.9)
    with pytest.raises(UserError, match="all 10 labelled responses are class 1"):
        run_prepare(_cfg(cfg), db, tmp_path)


def test_prepare_cli_prints_the_histogram_and_errors_in_one_line(tmp_path):
    from test_cli import run

    db = f"sqlite:///{tmp_path / 'x.sqlite'}"
    bad = run("prepare", "--db", db, "--verifier", "ensemble", cwd=tmp_path, ok=False)
    errors = [line for line in bad.stderr.splitlines() if line.startswith("stephanie: error:")]
    assert bad.returncode == 2 and len(errors) == 1 and "no labelled responses" in errors[0]
    bad = run("prepare", "--db", db, "--verifier", "oracle", cwd=tmp_path, ok=False)
    assert bad.returncode == 2 and "verifier.name must be one of" in bad.stderr


# ------------------------------------------------------------------------------------------ pure rules
def test_group_rules_regenerations_requests_goal_openings():
    cases = [CaseRef(1, 10, 100, 0, None, 2, "chatgpt"),  # regenerated once
             CaseRef(2, 10, 100, 1, "r:2", 1, "chatgpt"), CaseRef(3, 10, 100, 2, "r:2", 1, "chatgpt"),  # asked again
             CaseRef(4, 20, 200, 0, None, 1, "claude"), CaseRef(5, 20, 201, 1, None, 1, "qwen"),  # two providers
             CaseRef(6, 20, 201, 2, None, 1, "qwen")]
    g = group_cases(cases)
    assert g.group_of[2] == g.group_of[3] != g.group_of[1]
    assert g.group_of[4] == g.group_of[5] != g.group_of[6]
    assert g.rule[g.group_of[1]] == "regenerations" and g.rule[g.group_of[2]] == "request"
    assert g.rule[g.group_of[4]] == "goal" and g.rule[g.group_of[6]] == "single"
    g = group_cases(cases, requests=False, goal_openings=False)
    assert len(set(g.group_of.values())) == 6


def test_split_keeps_components_whole_and_resists_one_huge_goal():
    convs = [f"c{i}" for i in range(40)] + ["big"] * 60
    goals = [f"g{i // 2}" for i in range(40)] + ["G"] * 60
    split = split_rows(convs, goals, list(range(100)), 0.2, seed=3)
    assert split[40:] == ["train"] * 60  # the 60-row goal would overshoot 20 %: it trains
    assert 10 <= split.count("val") <= 20
    for i in range(0, 40, 2):  # conversations sharing a goal stay together
        assert split[i] == split[i + 1]
    assert split == split_rows(convs, goals, list(range(100)), 0.2, seed=3)  # deterministic
    with pytest.raises(ValueError, match="too few items for a split"):
        split_rows(["a", "b"], ["g", "g"], [1, 2], 0.5)
