"""Scorers, ensemble, MARS and ranker maths without a database."""

from __future__ import annotations

import numpy as np
import pytest

from stephanie_ray.config import load_config
from stephanie_ray.errors import ConfigError
from stephanie_ray.scoring.base import Item, Score
from stephanie_ray.scoring.ensemble import aggregate
from stephanie_ray.scoring.llm import JudgeError, LLMJudge
from stephanie_ray.scoring.mars import agreement, krippendorff_alpha_interval, rankdata, spearman
from stephanie_ray.scoring.ranker import RankWeights, mmr, rank, recency_weights, relevance
from stephanie_ray.scoring.scorers import FeedbackScorer, LexicalScorer, StructureScorer, trajectory_novelty

STRUCTURED = """Use a lease so a crashed worker's job is retried.

1. Add a `leased_until` column.
2. Claim inside `BEGIN IMMEDIATE`:

```python
def claim(conn, now, lease=30.0):
    row = conn.execute("SELECT id FROM jobs WHERE state = 'queued' LIMIT 1").fetchone()
    return row
```

3. Run `python -m pytest tests/test_queue.py` to check it survives `kill -9`.
"""
WALL = ("well you could maybe think about the problem in many different ways and there are lots of things to "
        "consider and it depends on a great number of factors " * 8)


def item(text="", prompt="", goal="", **kw):
    return Item("turn", 1, text, prompt=prompt, goal=goal, **kw)


def test_structure_scorer_prefers_structured_actionable_answers():
    s = StructureScorer()
    good, wall = s.score([item(STRUCTURED), item(WALL)], ["clarity", "implementability"])
    assert good["implementability"].value > 0.7 > 0.2 > wall["implementability"].value
    assert good["clarity"].value > wall["clarity"].value
    assert "code blocks" in good["implementability"].rationale
    unbalanced = StructureScorer.clarity(STRUCTURED.replace("```\n\n3.", "\n\n3."))
    assert unbalanced.value < good["clarity"].value and "unbalanced" in unbalanced.rationale
    assert StructureScorer.clarity("").value == 0.0


def test_lexical_relevance():
    s = LexicalScorer()
    on, off = s.score([item("SQLite job queue with retries and backoff in Python", prompt="SQLite job queue retries"),
                       item("The weather in Paris is mild in spring", prompt="SQLite job queue retries")],
                      ["relevance"])
    assert on["relevance"].value == 1.0 and off["relevance"].value == 0.0


GOAL = "SQLite job queue with retries. How do I build a durable job queue on SQLite?"


def test_relevance_is_measured_against_the_answers_own_request():
    """The goal (= the conversation's first request) is context only: an answer to a later, different
    request is judged on that request, not on how much it repeats the goal."""
    import numpy as np

    from stephanie_ray.scoring.scorers import EmbeddingScorer, relevance_weights

    follow_up = "Explain exponential backoff with jitter for the retry delays"
    lex = LexicalScorer()
    own, goal_only = lex.score([item("Exponential backoff: delay = base * 2**n, plus random jitter, for retry delays",
                                     prompt=follow_up, goal=GOAL),
                                item("A durable SQLite job queue: one table, BEGIN IMMEDIATE claims",
                                     prompt=follow_up, goal=GOAL)], ["relevance"])
    assert own["relevance"].value > 0.9 and goal_only["relevance"].value < 0.3
    assert "the request" in own["relevance"].rationale
    # a short request says little: the goal weighs in as context; no request at all: the goal instead
    assert relevance_weights("继续", GOAL)[:2] == (0.5, 0.5) and relevance_weights("go on", GOAL)[:2] == (0.5, 0.5)
    assert relevance_weights(follow_up, GOAL)[:2] == (1.0, 0.0) and relevance_weights("", GOAL)[:2] == (0.0, 1.0)
    assert relevance_weights("", "")[:2] == (0.0, 0.0)

    e = np.eye(3, dtype=np.float32)
    it = item("answer", prompt=follow_up, goal=GOAL, emb_text=e[0], emb_prompt=e[0], emb_goal=e[1])
    off = item("answer", prompt=follow_up, goal=GOAL, emb_text=e[1], emb_prompt=e[0], emb_goal=e[1])
    on_rel, off_rel = (r["relevance"] for r in EmbeddingScorer().score([it, off], ["relevance"]))
    assert on_rel.value == 1.0 and off_rel.value == 0.0  # close to its request; matching the goal counts nothing
    short = item("answer", prompt="go on", goal=GOAL, emb_text=e[1], emb_prompt=e[0], emb_goal=e[1])
    assert EmbeddingScorer().score([short], ["relevance"])[0]["relevance"].value == pytest.approx(0.5 / 0.7)


@pytest.mark.parametrize("kw, label, conf, why", [
    ({"next_user": "That's wrong: two workers race."}, "corrected", 0.8, "complains"),
    ({"next_user": "Thanks, but it still fails with a lock error"}, "corrected", 0.8, "complains"),
    ({"next_user": "How do I implement a durable SQLite job queue in Python with retries?"}, "corrected", 0.7,
     "same again"),
    ({"regenerated": True}, "corrected", 0.6, "regenerated"),
    ({"edited": True}, "corrected", 0.55, "edited"),
    ({"next_user": "Thanks, that works. It found a bug in my reaper."}, "accepted", 0.9, "approves"),
    ({"next_user": "I get an exception when two processes start"}, "corrected", 0.55, "problem"),
    ({"next_user": "Now how do I add priorities?"}, "continued", 0.6, "goes on"),
    # the false corrections: a follow-up reusing the request's terms, "No explanation ..."
    ({"next_user": "How do I add priorities to the durable SQLite job queue in Python?"}, "continued", 0.6, "goes on"),
    ({"next_user": "No explanation necessary, just the code please"}, "continued", 0.6, "goes on"),
    # and its misses: Korean "the button doesn't work", "but i get false", Dutch "I'd rather ..."
    ({"next_user": "버튼이 작동하지 않아요"}, "corrected", 0.8, "complains"),
    ({"next_user": "but i get false"}, "corrected", 0.8, "complains"),
    ({"next_user": "Ik zou liever hebben dat je oorzaken voorstelt"}, "corrected", 0.8, "complains"),
    ({}, "none", 1.0, "no next message"),
])
def test_feedback_maps_the_reaction_to_alignment(kw, label, conf, why):
    """Alignment moves from neutral 0.5 towards the label's target by the reaction's confidence."""
    it = item("an answer", prompt="How do I implement a durable job queue on SQLite in Python, with retries?", **kw)
    s = FeedbackScorer.alignment(it)
    target = {"corrected": 0.1, "accepted": 0.95, "continued": 0.65, "none": 0.5}[label]
    assert s.value == pytest.approx(0.5 + conf * (target - 0.5))
    assert s.rationale.startswith(f"{label} ({conf:.2f}): ") and why in s.rationale
    assert FeedbackScorer.version == "2"


def test_feedback_orders_reactions():
    def value(nxt, **kw):
        return FeedbackScorer.alignment(item("an answer", prompt="q", next_user=nxt, **kw)).value

    assert value("that's wrong") < value("", regenerated=True) < value("") < value("and for hosting?") < value("perfect, thanks!")


def test_feedback_for_a_whole_conversation_averages_its_turns():
    turns = [{"prompt": "q1", "next_user": "thanks, perfect"}, {"prompt": "q2", "next_user": "that's wrong"}]
    it = item("whole chat", extra={"turns": turns})
    s = FeedbackScorer.alignment(it)
    single = [FeedbackScorer.alignment(item("", prompt=t["prompt"], next_user=t["next_user"])).value for t in turns]
    assert s.value == pytest.approx(sum(single) / 2) and "1 accepted, 1 corrected" in s.rationale


def test_trajectory_novelty():
    e = np.eye(3, dtype=np.float32)
    emb = np.stack([e[0], e[0], e[1], (e[0] + e[1]) / np.sqrt(2)])
    nov = trajectory_novelty(emb)
    assert nov[0] == 1.0 and nov[1] == pytest.approx(0.0) and nov[2] == pytest.approx(1.0)
    assert nov[3] == pytest.approx(1 - 1 / np.sqrt(2), abs=1e-6)
    assert trajectory_novelty(emb[:1]).tolist() == [1.0]


def test_score_is_clamped_and_finite():
    assert Score(1.7, "x").value == 1.0 and Score(-0.2, "x").value == 0.0
    with pytest.raises(ValueError):
        Score(float("nan"), "x")


def test_ensemble_weights():
    vals = [("a", "clarity", 0.2), ("b", "clarity", 0.8), ("a", "relevance", 1.0), ("c", "relevance", 0.0)]
    agg = aggregate(vals, {"b": 3.0, "c": 0.0}, {"relevance": 2.0})
    assert agg["clarity"] == pytest.approx((0.2 + 3 * 0.8) / 4)
    assert agg["relevance"] == pytest.approx(1.0)  # c weighs 0: left out
    assert agg["overall"] == pytest.approx((agg["clarity"] + 2 * agg["relevance"]) / 3)
    assert aggregate([], {}, {}) == {}


# ----------------------------------------------------------------------------- MARS


def test_rank_and_spearman():
    assert rankdata(np.array([10.0, 20.0, 20.0, 5.0])).tolist() == [2.0, 3.5, 3.5, 1.0]
    a = np.array([0.1, 0.4, 0.35, 0.8, 0.9])
    assert spearman(a, a ** 2) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(a[:2], a[:2]) is None and spearman(a, np.ones(5)) is None


def test_krippendorff_alpha():
    m = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    assert krippendorff_alpha_interval(m) == pytest.approx(1.0)
    # two coders who swap their extreme judgements disagree systematically
    assert krippendorff_alpha_interval(np.array([[1.0, 5.0, 1.0, 5.0], [5.0, 1.0, 5.0, 1.0]])) < 0
    rng = np.random.default_rng(0)
    noise = rng.random((3, 2000))
    assert abs(krippendorff_alpha_interval(noise)) < 0.05  # independent coders: about chance
    # a textbook check: 2 coders, 3 units; alpha = 1 - D_o / D_e computed by hand
    m = np.array([[1.0, 2.0, 3.0], [1.0, 3.0, 3.0]])
    # pairable values 1,1,2,3,3,3 (n=6); D_o = (0 + 2*1/1 + 0) / 6 = 1/3;
    # D_e = sum over ordered pairs of values of (diff)^2 / (n(n-1)) = (4*1 + 12*4 + 6*1) / 30 = 58 / 30
    assert krippendorff_alpha_interval(m) == pytest.approx(1 - (1 / 3) / (58 / 30))
    with_missing = np.array([[1.0, 2.0, np.nan], [1.0, 2.0, 3.0]])
    assert krippendorff_alpha_interval(with_missing) == pytest.approx(1.0)


def test_agreement_report():
    base = {f"i{k}": k / 10 for k in range(10)}
    values = {"a": base, "b": {k: v * 0.5 for k, v in base.items()},  # same order, other scale
              "c": {k: 1 - v for k, v in base.items()}}  # reversed
    rep = agreement("clarity", values, top_k=3)
    assert rep.items == 10 and rep.scorers == ["a", "b", "c"]
    rho = {(p["a"], p["b"]): p["rho"] for p in rep.pairs}
    assert rho[("a", "b")] == pytest.approx(1.0) and rho[("a", "c")] == pytest.approx(-1.0)
    assert rep.agreement == pytest.approx((1 - 1 - 1) / 3)
    assert rep.most_disagreeing_pair["rho"] == pytest.approx(-1.0)
    assert len(rep.top_items) == 3 and rep.top_items[0]["std"] >= rep.top_items[-1]["std"]
    assert rep.top_items[0]["item"] in ("i0", "i9")  # the extremes disagree most
    single = agreement("clarity", {"a": base})
    assert single.agreement is None and single.items == 0


# ----------------------------------------------------------------------------- ranker


def test_ranker_components():
    w = RankWeights(similarity=1, value=0, recency=0)
    assert relevance(np.array([0.9, 0.1]), np.zeros(2), np.zeros(2), w).tolist() == pytest.approx([0.9, 0.1])
    w = RankWeights(similarity=0, value=1, recency=0)
    assert relevance(np.zeros(2), np.array([0.3, 0.7]), np.zeros(2), w).tolist() == pytest.approx([0.3, 0.7])
    assert recency_weights(np.array([0.0, 90.0, 180.0]), 90.0).tolist() == pytest.approx([1.0, 0.5, 0.25])
    with pytest.raises(ValueError):
        relevance(np.zeros(1), np.zeros(1), np.zeros(1), RankWeights(0, 0, 0))


def test_mmr_diversity():
    e = np.eye(3, dtype=np.float32)
    emb = np.stack([e[0], e[0] * 0.999 + e[1] * 0.045, e[1]])
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    rel = np.array([0.9, 0.89, 0.5])
    assert mmr(rel, emb, 2, diversity=0.0) == [0, 1]  # pure relevance: the near-duplicate comes second
    assert mmr(rel, emb, 2, diversity=0.5) == [0, 2]  # with diversity: the different one instead
    assert mmr(rel, emb, 10, 0.3)[:1] == [0] and len(mmr(rel, emb, 10, 0.3)) == 3
    goal = e[0]
    picked, scores = rank(goal, emb, np.array([0.1, 0.9, 0.5]), np.zeros(3), 1, RankWeights())
    assert picked == [int(np.argmax(scores))]


# ----------------------------------------------------------------------------- config and judge parsing


@pytest.mark.parametrize("override, message", [
    ({"scoring.scorers": ["structure", "oracle"]}, "unknown scorer 'oracle'"),
    ({"scoring.dimensions": ["clarity", "beauty"]}, "unknown dimension 'beauty'"),
    ({"scoring.scorer_weights": {"lexical": -1}}, "weights must be >= 0"),
    ({"scoring.rank_diversity": 1.5}, "rank_diversity must be in [0, 1]"),
    ({"scoring.batch_size": 0}, "scoring.batch_size must be > 0"),
])
def test_scoring_config_errors(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(None, override, env={})


def test_judge_reply_parsing():
    ok = {"choices": [{"message": {"content": 'Sure: {"clarity": {"score": 8, "rationale": "clear"}}'}}]}
    s = LLMJudge.parse(ok, ["clarity"])
    assert s["clarity"].value == pytest.approx(0.8) and s["clarity"].rationale == "clear"
    for bad, msg in (({"choices": []}, "no choices"),
                     ({"choices": [{"message": {"content": "I like it"}}]}, "no JSON"),
                     ({"choices": [{"message": {"content": '{"clarity": {"score": 11}}'}}]}, "outside 0-10"),
                     ({"choices": [{"message": {"content": '{"relevance": {"score": 5}}'}}]}, "'clarity'"),
                     ({"choices": [{"message": {"content": '{"clarity": {"score": 5,}}'}}]}, "malformed JSON")):
        with pytest.raises(JudgeError, match=msg):
            LLMJudge.parse(bad, ["clarity"])
