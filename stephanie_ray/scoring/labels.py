"""Labels for the learned scorers from what people did — never from the ensemble's own output.

* **Point labels** from the person's reaction to an answer (the reaction classifier,
  :func:`stephanie_ray.reactions.classify`, on the next message with the regenerated / edited flags):
  ``corrected`` -> 0, ``accepted`` -> 1, each weighted by the classifier's confidence. ``continued``
  and ``none`` are excluded: going on or stopping says nothing reliable about the answer.
* **Pair labels**: the answer kept on the active thread beats each earlier regeneration it replaced
  (same request, the person chose it).
* **Split by conversation**: a conversation's labels are all in training or all in validation (a hash
  of its id against ``scoring.train_validation_share``), so nothing about one conversation leaks.

Pure helpers (:func:`point_label`, :func:`validation_conversations`, :func:`auc`,
:func:`pairwise_accuracy`) plus :func:`load_labels` (the database side).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
from sqlalchemy import select

from ..db.bulk import IN_CHUNK, chunks
from ..db.models import CaseScorable, Message, Turn
from ..reactions import Reaction, classify
from .items import SCORED_ROLES, Key, feedback_context

LABEL_OF = {"corrected": 0.0, "accepted": 1.0}  # continued and none: excluded


@dataclass(frozen=True)
class PointLabel:
    key: Key
    conversation_id: int
    label: float  # 1 accepted, 0 corrected
    weight: float  # the classifier's confidence
    reaction: str


@dataclass(frozen=True)
class PairLabel:
    winner: Key  # kept on the active thread
    loser: Key  # the earlier regeneration it replaced
    conversation_id: int


@dataclass
class LabelSet:
    points: list[PointLabel] = field(default_factory=list)
    pairs: list[PairLabel] = field(default_factory=list)
    excluded: dict[str, int] = field(default_factory=dict)  # reaction label -> answers left out
    prompts: dict[Key, str] = field(default_factory=dict)  # each labelled answer's request

    @property
    def size(self) -> int:
        return len(self.points) + len(self.pairs)

    def keys(self) -> list[Key]:
        return sorted({p.key for p in self.points} | {k for p in self.pairs for k in (p.winner, p.loser)})

    def data_version(self) -> str:
        """A hash of the labels: training again on the same labels is skipped in the pipeline."""
        h = hashlib.sha256()
        for p in sorted(self.points, key=lambda p: p.key):
            h.update(f"{p.key}|{p.label}|{p.weight:.4f};".encode())
        for p in sorted(self.pairs, key=lambda p: (p.winner, p.loser)):
            h.update(f"{p.winner}>{p.loser};".encode())
        return h.hexdigest()[:16]


def point_label(r: Reaction) -> tuple[float, float] | None:
    """(label, weight) of a reaction, or None when it is excluded (continued, none)."""
    if r.label not in LABEL_OF:
        return None
    return LABEL_OF[r.label], r.confidence


def validation_conversations(conversation_ids: Iterable[int], share: float, seed: int = 0) -> set[int]:
    """The conversations held out for validation: a stable hash of (seed, id) below ``share``."""
    out = set()
    for c in set(conversation_ids):
        if int(hashlib.sha256(f"{seed}:{c}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < share:
            out.add(c)
    return out


def auc(scores: Sequence[float], labels: Sequence[float]) -> float | None:
    """ROC AUC (ties count half); None without both classes."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels) >= 0.5
    pos, neg = s[y], s[~y]
    if not len(pos) or not len(neg):
        return None
    from .mars import rankdata

    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def pairwise_accuracy(winner_scores: Sequence[float], loser_scores: Sequence[float]) -> float | None:
    """Share of pairs where the kept answer scores higher (ties half); None without pairs."""
    w, lo = np.asarray(winner_scores, dtype=np.float64), np.asarray(loser_scores, dtype=np.float64)
    if not len(w):
        return None
    return float(((w > lo) + 0.5 * (w == lo)).mean())


def load_labels(session: Any) -> LabelSet:
    """Point and pair labels over every answer (turn or message scorable) of every CaseBook."""
    keys = sorted({(st, sid) for st, sid in session.execute(
        select(CaseScorable.scorable_type, CaseScorable.scorable_id).where(
            CaseScorable.role.in_(SCORED_ROLES), CaseScorable.scorable_type.in_(("turn", "message"))).distinct())})
    out = LabelSet()
    excluded: dict[str, int] = defaultdict(int)
    conv: dict[Key, int] = {}
    prompts: dict[Key, str] = {}
    # turns: conversation, request (user message), answer (assistant message), active
    turns: dict[int, tuple[int, int, int, bool]] = {}
    for part in chunks([i for t, i in keys if t == "turn"], IN_CHUNK):
        for tid, cid, uid, aid, active in session.execute(select(Turn.id, Turn.conversation_id, Turn.user_message_id,
                                                                 Turn.assistant_message_id, Turn.active)
                                                          .where(Turn.id.in_(part))):
            turns[tid] = (cid, uid, aid, bool(active))
            conv[("turn", tid)] = cid
    msgs: dict[int, tuple[int, int | None, bool, int]] = {}  # id -> (conversation, parent, active, position)
    wanted = [i for t, i in keys if t == "message"] + [a for _, _, a, _ in turns.values()]
    for part in chunks(sorted(set(wanted)), IN_CHUNK):
        for mid, cid, parent, active, pos in session.execute(select(Message.id, Message.conversation_id,
                                                                    Message.parent_id, Message.active,
                                                                    Message.position).where(Message.id.in_(part))):
            msgs[mid] = (cid, parent, bool(active), pos)
    for t, i in keys:
        if t == "message" and i in msgs:
            conv[("message", i)] = msgs[i][0]
    for part in chunks(keys, IN_CHUNK):
        ctx = feedback_context(session, part)
        for key in part:
            fb = ctx.get(key)
            if fb is None or key not in conv:
                continue
            prompts[key] = fb.get("prompt", "")
            r = classify(fb.get("prompt", ""), "", fb.get("next_user") or None, regenerated=fb.get("regenerated", False),
                         edited=fb.get("edited", False))
            pl = point_label(r)
            if pl is None:
                excluded[r.label] += 1
                continue
            out.points.append(PointLabel(key, conv[key], pl[0], pl[1], r.label))
    # pairs: answers to the same request; the active one beats each earlier inactive one
    groups: dict[tuple[str, int], list[tuple[Key, bool, int, int]]] = defaultdict(list)
    for tid, (cid, uid, aid, active) in turns.items():
        pos = msgs.get(aid, (0, None, active, 0))[3]
        groups[("u", uid)].append((("turn", tid), active, pos, cid))
    for t, i in keys:
        if t == "message" and i in msgs and msgs[i][1] is not None:
            cid, parent, active, pos = msgs[i]
            groups[("p", parent)].append((("message", i), active, pos, cid))
    for members in groups.values():
        for win, active, pos, cid in members:
            if not active:
                continue
            for lose, l_active, l_pos, _ in members:
                if lose != win and not l_active and l_pos < pos:
                    out.pairs.append(PairLabel(win, lose, cid))
    out.excluded = dict(excluded)
    used = set(out.keys())
    out.prompts = {k: v for k, v in prompts.items() if k in used}
    return out
