"""Conversations -> cases and scorables, in three modes. Pure: plain rows in, plans out.

* ``conversation``: one case per conversation; its scorable is the whole conversation.
* ``turn``: one case per user message that got an answer; each answer to it (the active one and
  every regeneration) is a ``turn`` scorable of that case, ranked active-first. This is the group
  PACS needs: several answers to one prompt.
* ``message``: one case per (visible, non-empty) message; its scorable is the message.

Scorables carry ids of imported rows, never copies of their text. Bad data is skipped with a count:
a conversation with no assistant answer, empty texts, a message whose parent is not in the
conversation, hidden messages (system prompts, tool plumbing).
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .goals import goal_text

MODES = ("conversation", "turn", "message")


@dataclass(slots=True)
class MsgRow:
    id: int
    parent_id: int | None
    role: str
    text: str
    hidden: bool
    active: bool
    created_at: datetime | None
    position: int
    model: str | None = None
    blocks: int = 0  # number of structured blocks (code, tool calls ...): an answer may be only those


@dataclass(slots=True)
class TurnRow:
    id: int
    user_message_id: int
    assistant_message_id: int
    turn_hash: str
    active: bool
    position: int


@dataclass(slots=True)
class ConvRow:
    id: int
    provider: str
    external_id: str
    title: str
    created_at: datetime | None
    messages: list[MsgRow] = field(default_factory=list)
    turns: list[TurnRow] = field(default_factory=list)


@dataclass(slots=True)
class ScorablePlan:
    scorable_type: str  # conversation | turn | message
    scorable_id: int
    role: str
    rank: int | None = None
    dedup_key: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class CasePlan:
    case_key: str
    prompt_text: str
    agent_name: str | None
    created_at: datetime | None
    source_position: int
    scorables: list[ScorablePlan]
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class ConvPlan:
    conversation_id: int
    goal_text: str
    cases: list[CasePlan]
    skipped: Counter = field(default_factory=Counter)


def _agent(provider: str, model: str | None) -> str:
    return f"{provider}:{model}" if model else provider


def first_user_text(conv: ConvRow) -> str:
    """The first visible user request on the active thread (else on any branch)."""
    users = [m for m in conv.messages if m.role == "user" and not m.hidden and m.text.strip()]
    active = [m for m in users if m.active]
    pick = min(active or users, key=lambda m: m.position, default=None)
    return pick.text if pick else ""


def conversation_goal(conv: ConvRow, max_chars: int = 1000) -> str:
    return goal_text(conv.title, first_user_text(conv), max_chars)


def plan_conversation(conv: ConvRow, mode: str, max_goal_chars: int = 1000) -> ConvPlan:
    if mode not in MODES:
        raise ValueError(f"unknown casebook mode {mode!r} (modes: {', '.join(MODES)})")
    plan = ConvPlan(conversation_id=conv.id, goal_text=conversation_goal(conv, max_goal_chars), cases=[])
    by_id = {m.id: m for m in conv.messages}
    orphans = _unreachable(conv.messages, by_id)
    if orphans:
        plan.skipped["messages_missing_parent"] += len(orphans)
    answered = any(m.role == "assistant" and not m.hidden and _has_content(m) and m.id not in orphans
                   for m in conv.messages)
    if not answered:
        plan.skipped["conversations_no_answer"] += 1
        return plan
    if mode == "conversation":
        _plan_conversation_mode(conv, plan, orphans)
    elif mode == "turn":
        _plan_turn_mode(conv, plan, by_id, orphans)
    else:
        _plan_message_mode(conv, plan, by_id, orphans)
    if not plan.cases:
        plan.skipped["conversations_no_cases"] += 1  # e.g. an answer with no user request before it
    return plan


def _unreachable(messages: list[MsgRow], by_id: dict[int, MsgRow]) -> set[int]:
    """Messages not reachable from a root: a parent missing from the conversation (or a cycle) cuts off
    the message and everything below it, which then cannot be placed in the trajectory."""
    children: dict[int, list[int]] = defaultdict(list)
    roots = []
    for m in messages:
        if m.parent_id is None:
            roots.append(m.id)
        elif m.parent_id in by_id:
            children[m.parent_id].append(m.id)
    seen: set[int] = set()
    stack = roots
    while stack:  # iterative: trees can be tens of thousands of messages deep
        i = stack.pop()
        if i not in seen:
            seen.add(i)
            stack.extend(children.get(i, ()))
    return set(by_id) - seen


def _has_content(m: MsgRow) -> bool:
    return bool(m.text.strip()) or m.blocks > 0


def _plan_conversation_mode(conv: ConvRow, plan: ConvPlan, orphans: set[int]) -> None:
    active_turns = sorted((t for t in conv.turns if t.active), key=lambda t: t.position)
    # the same conversation content under another id (e.g. re-exported) is the same attempt
    content = "\x1e".join(t.turn_hash for t in active_turns) or f"conversation:{conv.id}"
    dedup = hashlib.sha256(content.encode()).hexdigest()
    first = next((m for m in sorted(conv.messages, key=lambda m: m.position)
                  if m.role == "user" and m.active and not m.hidden and m.text.strip() and m.id not in orphans), None)
    models = [m.model for m in conv.messages if m.role == "assistant" and m.model]
    scorables = [ScorablePlan("conversation", conv.id, "conversation", 0, dedup,
                              {"active_turns": len(active_turns), "turns": len(conv.turns)})]
    if first is not None:
        scorables.append(ScorablePlan("message", first.id, "prompt", None, None))
    plan.cases.append(CasePlan(
        case_key=f"c:{conv.id}", prompt_text=first.text if first else plan.goal_text,
        agent_name=_agent(conv.provider, models[-1] if models else None),
        created_at=conv.created_at or (first.created_at if first else None), source_position=0,
        scorables=scorables, meta={"provider": conv.provider, "external_id": conv.external_id}))


def _plan_turn_mode(conv: ConvRow, plan: ConvPlan, by_id: dict[int, MsgRow], orphans: set[int]) -> None:
    answers: dict[int, list[TurnRow]] = defaultdict(list)
    for t in conv.turns:
        answers[t.user_message_id].append(t)
    for user_id, turns in sorted(answers.items(), key=lambda kv: by_id[kv[0]].position if kv[0] in by_id else -1):
        user = by_id.get(user_id)
        if user is None or user_id in orphans:
            plan.skipped["turns_missing_message"] += len(turns)
            continue
        if user.hidden or not user.text.strip():
            plan.skipped["prompts_empty"] += 1
            continue
        usable: list[tuple[TurnRow, MsgRow]] = []
        for t in turns:
            a = by_id.get(t.assistant_message_id)
            if a is None or a.id in orphans:
                plan.skipped["turns_missing_message"] += 1
            elif not _has_content(a):
                plan.skipped["answers_empty"] += 1
            else:
                usable.append((t, a))
        if not usable:
            continue
        # rank 0: the answer on the active thread; then the alternatives, oldest first
        usable.sort(key=lambda ta: (not ta[0].active, ta[1].position))
        scorables = [ScorablePlan("message", user.id, "prompt", None, None)]
        for rank, (t, a) in enumerate(usable):
            scorables.append(ScorablePlan("turn", t.id, "response", rank, t.turn_hash,
                                          {"assistant_message_id": a.id, "active": t.active}))
        plan.cases.append(CasePlan(
            case_key=f"m:{user.id}", prompt_text=user.text, agent_name=_agent(conv.provider, usable[0][1].model),
            created_at=user.created_at or usable[0][1].created_at or conv.created_at,
            source_position=user.position, scorables=scorables,
            meta={"answers": len(usable), "edited": _is_edit(user, conv)}))


def _is_edit(user: MsgRow, conv: ConvRow) -> bool:
    """An edited prompt is a user message with a user sibling (same parent) before it."""
    return any(m.role == "user" and m.parent_id == user.parent_id and m.id != user.id and m.position < user.position
               for m in conv.messages)


def _plan_message_mode(conv: ConvRow, plan: ConvPlan, by_id: dict[int, MsgRow], orphans: set[int]) -> None:
    turn_of = {t.assistant_message_id: t for t in conv.turns}
    for m in sorted(conv.messages, key=lambda m: m.position):
        if m.id in orphans:
            continue
        if m.hidden:
            plan.skipped["messages_hidden"] += 1
            continue
        if not _has_content(m):
            plan.skipped["messages_empty"] += 1
            continue
        prompt = m.text
        if m.role != "user":  # the request it answers: the nearest user ancestor
            p, seen = by_id.get(m.parent_id) if m.parent_id is not None else None, 0
            while p is not None and p.role != "user" and seen < len(by_id):
                p, seen = by_id.get(p.parent_id) if p.parent_id is not None else None, seen + 1
            prompt = p.text if p is not None else ""
        t = turn_of.get(m.id)
        plan.cases.append(CasePlan(
            case_key=f"m:{m.id}", prompt_text=prompt,
            agent_name=_agent(conv.provider, m.model) if m.role == "assistant" else m.role,
            created_at=m.created_at or conv.created_at, source_position=m.position,
            scorables=[ScorablePlan("message", m.id, m.role, 0, t.turn_hash if t is not None else None,
                                    {"active": m.active})],
            meta={"role": m.role}))
