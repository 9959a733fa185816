"""Loading what the batch stage scores: every answer of every CaseBook, with its context.

An answer (a scorable in role response / conversation / assistant) in several CaseBooks is scored
once; its *primary* CaseBook (the one with the most cases) gives its goal and its trajectory for
novelty. :func:`load_primary` keeps only four integers per answer (no texts): memory stays bounded
by the number of answers, and :func:`load_items` reads texts, requests, goals and the person's
reactions chunk by chunk.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import func, select

from ..casebooks.scorables import resolve_texts
from ..db.bulk import IN_CHUNK, chunks
from ..db.models import Case, CaseBook, CaseScorable, Message, Turn
from .base import Item

SCORED_ROLES = ("response", "conversation", "assistant")  # what an answer is, in each mode
Key = tuple[str, int]


class Primary(NamedTuple):
    """An answer's place in its primary CaseBook."""

    casebook_id: int
    case_id: int
    position: int
    rank: int


def casebook_sizes(session: Any) -> dict[int, int]:
    return dict(session.execute(select(Case.casebook_id, func.count(Case.id)).group_by(Case.casebook_id)).all())


def load_primary(session: Any) -> dict[Key, Primary]:
    """Every answer's primary CaseBook place, streamed: no texts, four integers per answer."""
    sizes = casebook_sizes(session)
    q = (select(CaseScorable.scorable_type, CaseScorable.scorable_id, CaseScorable.rank, Case.id, Case.casebook_id,
                Case.position).join(Case, Case.id == CaseScorable.case_id)
         .where(CaseScorable.role.in_(SCORED_ROLES)))
    out: dict[Key, Primary] = {}
    types: dict[str, str] = {}  # one string object per scorable type
    for st, sid, rank, cid, cb, pos in session.execute(q).yield_per(IN_CHUNK):
        key = (types.setdefault(st, st), sid)
        old = out.get(key)
        if old is None or (-sizes.get(cb, 0), cb) < (-sizes.get(old.casebook_id, 0), old.casebook_id):
            out[key] = Primary(cb, cid, pos, rank or 0)
    return out


def casebooks_of(session: Any, keys: list[Key]) -> set[int]:
    """The CaseBooks holding any of ``keys`` as an answer (read in chunks)."""
    out: set[int] = set()
    ids_by_type: dict[str, list[int]] = defaultdict(list)
    for st, sid in keys:
        ids_by_type[st].append(sid)
    for st, ids in ids_by_type.items():
        for part in chunks(sorted(ids), IN_CHUNK):
            out.update(session.scalars(select(Case.casebook_id).join(CaseScorable, CaseScorable.case_id == Case.id)
                                       .where(CaseScorable.scorable_type == st, CaseScorable.scorable_id.in_(part),
                                              CaseScorable.role.in_(SCORED_ROLES)).distinct()))
    return out


# ----------------------------------------------------------------------------- the older, text-holding API


@dataclass
class Membership:
    casebook_id: int
    case_id: int
    position: int
    rank: int
    prompt: str
    goal: str


def load_memberships(session: Any) -> dict[Key, list[Membership]]:
    """Every membership of every answer, with its request and goal texts (memory grows with them: the
    stage uses :func:`load_primary`; kept for callers that want the texts)."""
    q = (select(CaseScorable.scorable_type, CaseScorable.scorable_id, CaseScorable.rank, Case.id, Case.casebook_id,
                Case.position, Case.prompt_text, CaseBook.description)
         .join(Case, Case.id == CaseScorable.case_id).join(CaseBook, CaseBook.id == Case.casebook_id)
         .where(CaseScorable.role.in_(SCORED_ROLES)))
    out: dict[Key, list[Membership]] = defaultdict(list)
    for st, sid, rank, cid, cb, pos, prompt, goal in session.execute(q):
        out[(st, sid)].append(Membership(cb, cid, pos, rank or 0, prompt or "", goal or ""))
    return out


def primary_memberships(session: Any, members: dict[Key, list[Membership]]) -> dict[Key, Membership]:
    sizes = casebook_sizes(session)
    return {k: min(v, key=lambda m: (-sizes.get(m.casebook_id, 0), m.casebook_id)) for k, v in members.items()}


# ----------------------------------------------------------------------------- the person's reactions


def feedback_context(session: Any, keys: list[Key]) -> dict[Key, dict[str, Any]]:
    """The person's reaction to each answer: next user message, regenerated away, prompt edited, and how
    many earlier regenerations it replaced (kept on the active thread over them)."""
    turn_ids = [i for t, i in keys if t == "turn"]
    msg_ids = [i for t, i in keys if t == "message"]
    conv_ids = [i for t, i in keys if t == "conversation"]
    pair: dict[Key, tuple[int, int | None]] = {}  # key -> (assistant id, user id)
    conv_turns: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for part in chunks(turn_ids, IN_CHUNK):
        for tid, uid, aid in session.execute(select(Turn.id, Turn.user_message_id, Turn.assistant_message_id)
                                             .where(Turn.id.in_(part))):
            pair[("turn", tid)] = (aid, uid)
    for part in chunks(conv_ids, IN_CHUNK):
        for cid, uid, aid in session.execute(select(Turn.conversation_id, Turn.user_message_id, Turn.assistant_message_id)
                                             .where(Turn.conversation_id.in_(part), Turn.active.is_(True))
                                             .order_by(Turn.conversation_id, Turn.position)):
            conv_turns[cid].append((aid, uid))
    info: dict[int, tuple[int | None, bool, int, str]] = {}  # id -> (parent, active, position, role)

    def load_info(ids: set[int]) -> None:
        for part in chunks(sorted(i for i in ids if i not in info), IN_CHUNK):
            for mid, parent, active, pos, role in session.execute(
                    select(Message.id, Message.parent_id, Message.active, Message.position, Message.role)
                    .where(Message.id.in_(part))):
                info[mid] = (parent, bool(active), pos, role)

    load_info(set(msg_ids))
    for mid in msg_ids:
        if mid in info:
            pair[("message", mid)] = (mid, info[mid][0])
    a_ids = {a for a, _ in pair.values()} | {a for ts in conv_turns.values() for a, _ in ts}
    u_ids = {u for _, u in pair.values() if u is not None} | {u for ts in conv_turns.values() for _, u in ts}
    load_info(a_ids | u_ids)
    parents = {info[u][0] for u in u_ids if u in info and info[u][0] is not None}
    children: dict[int, list[tuple[int, str, bool, int, str | None]]] = defaultdict(list)
    for part in chunks(sorted(a_ids | u_ids | parents), IN_CHUNK):
        q = select(Message.id, Message.parent_id, Message.role, Message.active, Message.position,
                   Message.text).where(Message.parent_id.in_(part))
        for mid, parent, role, active, pos, text in session.execute(q):
            children[parent].append((mid, role, bool(active), pos, text if role == "user" else None))
    user_texts = resolve_texts(session, [("message", u) for u in u_ids])

    def reaction(aid: int, uid: int | None) -> dict[str, Any]:
        nexts = sorted((c for c in children.get(aid, ()) if c[1] == "user"), key=lambda c: (not c[2], c[3]))
        a = info.get(aid)
        siblings = [c for c in children.get(uid, ()) if c[1] == "assistant" and c[0] != aid] if uid is not None else []
        regenerated = bool(a and not a[1] and any(c[2] and c[3] > a[2] for c in siblings))
        replaced = sum(1 for c in siblings if not c[2] and c[3] < a[2]) if a and a[1] else 0
        u = info.get(uid) if uid is not None else None
        edited = bool(u and u[0] is not None and any(
            c[1] == "user" and c[0] != uid and c[3] > u[2] for c in children.get(u[0], ())))
        return {"next_user": (nexts[0][4] or "") if nexts else "", "regenerated": regenerated, "edited": edited,
                "replaced": replaced, "prompt": user_texts.get(("message", uid), "") if uid is not None else ""}

    out: dict[Key, dict[str, Any]] = {}
    for key, (aid, uid) in pair.items():
        out[key] = reaction(aid, uid)
    for cid in conv_ids:
        out[("conversation", cid)] = {"next_user": "", "regenerated": False, "edited": False, "replaced": 0,
                                      "turns": [reaction(a, u) for a, u in conv_turns.get(cid, [])]}
    return out


def load_items(session: Any, keys: list[Key], primary: dict[Key, Primary]) -> tuple[list[Item], list[Key]]:
    """(items to score, keys with no text to score), with the request and goal of each key's primary case."""
    texts = resolve_texts(session, keys)
    feedback = feedback_context(session, keys)
    case_ids = sorted({primary[k].case_id for k in keys})
    context: dict[int, tuple[str, str]] = {}  # case id -> (request, goal)
    goals: dict[str, str] = {}  # one string object per goal text
    for part in chunks(case_ids, IN_CHUNK):
        for cid, prompt, goal in session.execute(select(Case.id, Case.prompt_text, CaseBook.description)
                                                 .join(CaseBook, CaseBook.id == Case.casebook_id)
                                                 .where(Case.id.in_(part))):
            context[cid] = (prompt or "", goals.setdefault(goal or "", goal or ""))
    items, empty = [], []
    for key in keys:
        text = texts.get(key)
        if not text or not text.strip():  # e.g. an answer that is only a tool call or an image
            empty.append(key)
            continue
        prompt, goal = context.get(primary[key].case_id, ("", ""))
        fb = feedback.get(key, {})
        items.append(Item(key[0], key[1], text, prompt=prompt, goal=goal, next_user=fb.get("next_user", ""),
                          regenerated=fb.get("regenerated", False), edited=fb.get("edited", False),
                          replaced=fb.get("replaced", 0), extra={"turns": fb["turns"]} if fb.get("turns") else {}))
    return items, empty


def build_items(session: Any, keys: list[Key], primary: dict[Key, Any]) -> tuple[list[dict[str, Any]], list[Key]]:
    """The older API: items as plain rows. ``primary`` values: :class:`Primary` or :class:`Membership`."""
    wanted = set(keys)
    prim = {k: Primary(m.casebook_id, m.case_id, m.position, m.rank) for k, m in primary.items() if k in wanted}
    items, empty = load_items(session, keys, prim)
    return [{"scorable_type": it.scorable_type, "scorable_id": it.scorable_id, "text": it.text, "prompt": it.prompt,
             "goal": it.goal, "next_user": it.next_user, "regenerated": it.regenerated, "edited": it.edited,
             "replaced": it.replaced, "extra": it.extra} for it in items], empty
