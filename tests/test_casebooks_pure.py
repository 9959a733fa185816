"""CaseBook logic without a database: statistics, goals, grouping, conversion modes, config checks."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from stephanie_ray.casebooks.convert import ConvRow, MsgRow, TurnRow, plan_conversation
from stephanie_ray.casebooks.goals import goal_hash, goal_text
from stephanie_ray.casebooks.progress import compute_progress, ema, wilson_lower_bound
from stephanie_ray.config import load_config
from stephanie_ray.errors import ConfigError

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


# ----------------------------------------------------------------------------- statistics


def test_wilson_lower_bound_known_values_and_shape():
    assert wilson_lower_bound(0, 0) == 0.0
    assert wilson_lower_bound(1, 1) == pytest.approx(0.2065, abs=1e-4)
    assert wilson_lower_bound(10, 10) == pytest.approx(0.7225, abs=1e-4)
    assert wilson_lower_bound(5, 10) == pytest.approx(0.2366, abs=1e-4)
    assert wilson_lower_bound(0, 10) == 0.0
    # more evidence at the same rate -> more trust; a higher z -> less
    assert wilson_lower_bound(80, 100) > wilson_lower_bound(8, 10) > wilson_lower_bound(4, 5)
    assert wilson_lower_bound(8, 10, z=2.58) < wilson_lower_bound(8, 10, z=1.96)
    for w, n in ((3, 7), (99, 100), (1, 1000)):
        assert 0.0 <= wilson_lower_bound(w, n) <= w / n
    with pytest.raises(ValueError):
        wilson_lower_bound(3, 2)


def test_ema():
    assert ema(None, 0.4, 0.3) == 0.4
    assert ema(0.4, 1.0, 0.5) == pytest.approx(0.7)
    assert ema(0.4, 0.4, 0.9) == pytest.approx(0.4)


def test_progress_of_a_trajectory():
    cases = [(0, 10, 0.2), (1, 11, None), (2, 12, 0.1), (3, 13, 0.5), (4, 14, 0.4), (5, 15, 0.8), (6, 16, 0.7)]
    p = compute_progress(cases)
    assert (p.attempts, p.scored) == (7, 6)
    assert (p.first, p.last, p.best) == (0.2, 0.7, 0.8)
    assert p.early_mean == pytest.approx(0.15) and p.late_mean == pytest.approx(0.75)  # thirds of 6: 2 each
    assert p.early_late_delta == pytest.approx(0.6)
    xs, ys = np.arange(6), np.array([0.2, 0.1, 0.5, 0.4, 0.8, 0.7])
    assert p.slope == pytest.approx(np.polyfit(xs, ys, 1)[0])
    # the best so far changed at 0.2 -> 0.5 -> 0.8: 2 improvements over 5 later attempts
    assert p.improvement_rate == pytest.approx(2 / 5)
    assert [h["case_id"] for h in p.champion_history] == [10, 13, 15]
    assert [h["position"] for h in p.champion_history] == [0, 3, 5]


def test_progress_edge_cases():
    empty = compute_progress([(0, 1, None)])
    assert empty.scored == 0 and empty.slope is None and empty.champion_history == []
    one = compute_progress([(0, 1, 0.5)])
    assert one.slope is None and one.improvement_rate is None and one.early_mean == one.late_mean == 0.5
    flat = compute_progress([(i, i, 0.3) for i in range(5)])
    assert flat.slope == pytest.approx(0.0) and flat.improvement_rate == 0.0
    nan = compute_progress([(0, 1, float("nan")), (1, 2, 0.4)])
    assert nan.scored == 1


# ----------------------------------------------------------------------------- goals


def test_goal_text_uses_title_and_first_request():
    assert goal_text("SQLite queue", "How do I build  a queue?") == "SQLite queue\nHow do I build a queue?"
    assert goal_text("New chat", "How do I build a queue?") == "How do I build a queue?"  # generic title dropped
    assert goal_text("How do I build", "How do I build a queue?") == "How do I build a queue?"  # title = its prefix
    assert goal_text("Only a title", "") == "Only a title"
    assert len(goal_text("t", "x" * 5000, max_chars=100)) == 100
    assert goal_hash("A  Goal\n") == goal_hash("a goal") != goal_hash("another goal")


@pytest.mark.parametrize("value", [0, 0.0, -0.1, 1.5, 2])
def test_goal_threshold_outside_unit_interval_is_a_clear_error(value):
    with pytest.raises(ConfigError, match=r"casebooks.goal_threshold must be in \(0, 1\]"):
        load_config(None, {"casebooks.goal_threshold": value}, env={})


def test_casebook_mode_and_grouping_checked():
    with pytest.raises(ConfigError, match="casebooks.mode"):
        load_config(None, {"casebooks.mode": "paragraph"}, env={})
    with pytest.raises(ConfigError, match="casebooks.group_by"):
        load_config(None, {"casebooks.group_by": "provider"}, env={})
    assert load_config(None, {"casebooks.goal_threshold": 1}, env={}).casebooks.goal_threshold == 1.0


# ----------------------------------------------------------------------------- conversion modes


def msg(i, parent, role, text, pos, *, active=True, hidden=False, model=None, blocks=0):
    return MsgRow(i, parent, role, text, hidden, active, T0 + timedelta(minutes=pos), pos, model, blocks)


def branched() -> ConvRow:
    """system(hidden) -> user 1 -> {answer 2 (regenerated, inactive), answer 3 (active)};
    user 1's edit 4 (sibling) -> answer 5; answer 3 -> user 6 -> answer 7."""
    msgs = [msg(100, None, "system", "You are helpful.", 0, hidden=True),
            msg(1, 100, "user", "How do I build a queue?", 1),
            msg(2, 1, "assistant", "First answer", 2, active=False, model="gpt-4o"),
            msg(3, 1, "assistant", "Regenerated answer", 3, model="gpt-4o"),
            msg(4, 100, "user", "How do I build a durable queue?", 4, active=False),
            msg(5, 4, "assistant", "Answer to the edit", 5, active=False),
            msg(6, 3, "user", "Thanks, that works", 6),
            msg(7, 6, "assistant", "Glad it helped", 7)]
    turns = [TurnRow(12, 1, 2, "h12", False, 0), TurnRow(13, 1, 3, "h13", True, 1),
             TurnRow(45, 4, 5, "h45", False, 2), TurnRow(67, 6, 7, "h67", True, 3)]
    return ConvRow(9, "chatgpt", "conv-9", "Queues", T0, msgs, turns)


def test_turn_mode_regenerations_are_scorables_of_one_case():
    plan = plan_conversation(branched(), "turn")
    assert plan.goal_text == "Queues\nHow do I build a queue?"
    assert [c.case_key for c in plan.cases] == ["m:1", "m:4", "m:6"]
    first = plan.cases[0]
    responses = [s for s in first.scorables if s.role == "response"]
    assert [(s.scorable_type, s.scorable_id, s.rank, s.dedup_key) for s in responses] == [
        ("turn", 13, 0, "h13"), ("turn", 12, 1, "h12")]  # the active answer first
    assert [s for s in first.scorables if s.role == "prompt"][0].scorable_id == 1
    assert first.agent_name == "chatgpt:gpt-4o" and first.meta["answers"] == 2
    assert plan.cases[1].meta["edited"] is True and plan.cases[0].meta["edited"] is False
    assert not plan.skipped


def test_conversation_and_message_modes():
    conv = plan_conversation(branched(), "conversation")
    assert len(conv.cases) == 1
    c = conv.cases[0]
    assert c.case_key == "c:9" and c.scorables[0].scorable_type == "conversation" and c.scorables[0].scorable_id == 9
    assert c.prompt_text == "How do I build a queue?"
    msgs = plan_conversation(branched(), "message")
    assert [cp.case_key for cp in msgs.cases] == [f"m:{i}" for i in (1, 2, 3, 4, 5, 6, 7)]
    assert msgs.skipped["messages_hidden"] == 1
    by_key = {cp.case_key: cp for cp in msgs.cases}
    assert by_key["m:7"].prompt_text == "Thanks, that works"  # an answer's prompt: its nearest user ancestor
    assert by_key["m:3"].scorables[0].dedup_key == "h13" and by_key["m:1"].scorables[0].dedup_key is None


def test_bad_conversations_are_skipped_with_counts():
    no_answer = ConvRow(1, "claude", "a", "t", T0, [msg(1, None, "user", "hello?", 0)], [])
    plan = plan_conversation(no_answer, "turn")
    assert plan.cases == [] and plan.skipped["conversations_no_answer"] == 1
    empty = ConvRow(2, "claude", "b", "t", T0,
                    [msg(1, None, "user", "  ", 0), msg(2, 1, "assistant", "an answer", 1),
                     msg(3, 2, "user", "more?", 2), msg(4, 3, "assistant", "", 3)],
                    [TurnRow(12, 1, 2, "x", True, 0), TurnRow(34, 3, 4, "y", True, 1)])
    plan = plan_conversation(empty, "turn")
    assert plan.cases == [] and plan.skipped["prompts_empty"] == 1 and plan.skipped["answers_empty"] == 1
    assert plan.skipped["conversations_no_cases"] == 1
    orphan = ConvRow(3, "qwen", "c", "t", T0,
                     [msg(1, None, "user", "q", 0), msg(2, 1, "assistant", "a", 1),
                      msg(3, 999, "user", "lost", 2), msg(4, 3, "assistant", "lost answer", 3)],
                     [TurnRow(12, 1, 2, "x", True, 0), TurnRow(34, 3, 4, "y", True, 1)])
    plan = plan_conversation(orphan, "turn")
    assert [c.case_key for c in plan.cases] == ["m:1"]
    assert plan.skipped["messages_missing_parent"] == 2 and plan.skipped["turns_missing_message"] == 1
    # an answer that is only structured content (e.g. a tool call or code block) still counts
    blocks_only = ConvRow(4, "claude", "d", "t", T0,
                          [msg(1, None, "user", "run it", 0), msg(2, 1, "assistant", "", 1, blocks=1)],
                          [TurnRow(12, 1, 2, "x", True, 0)])
    assert len(plan_conversation(blocks_only, "turn").cases) == 1
    with pytest.raises(ValueError, match="unknown casebook mode"):
        plan_conversation(branched(), "paragraph")
