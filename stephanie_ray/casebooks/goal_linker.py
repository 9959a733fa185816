"""Linking conversations into goals in time order by the evidence they share. Pure.

See :mod:`.goal_evidence` for the method; this module keeps the person's history (interned
features, document frequencies, an inverted index) and decides, conversation by conversation,
which goal each joins.
"""

from __future__ import annotations

import math
from array import array
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Hashable

import numpy as np

from .goal_evidence import GoalEvidence

# ----------------------------------------------------------------------------- linking

# A history seen as if it held this many more conversations that share none of a feature:
# early in a history (or in a small one) every feature would otherwise look rare.
PRIOR_CONVERSATIONS = 20.0
# A feature in at most this many conversations is never "common", however short the history.
COMMON_MIN_DF = 4
# Candidates are found through a conversation's CANDIDATE_FEATURES strongest features that are in
# at most CANDIDATE_MAX_DF conversations: a pair sharing only commoner features cannot reach a useful
# score, and this bounds the work per conversation (<= CANDIDATE_FEATURES x CANDIDATE_MAX_DF scored
# pairs) however long the history.
CANDIDATE_MAX_DF = 50
CANDIDATE_FEATURES = 48
# Echoes (marks of the assistant's answers) count only for a pair whose own messages already share
# this much evidence: an echo strengthens a link the person's own words began, it never founds one
# (both answers, and one person's pasted framework code, are full of the same public API names).
ECHO_NEEDS_OWN = 0.5


@dataclass(frozen=True, slots=True)
class Link:
    key: Hashable  # the conversation
    group: Hashable  # its group: the key of the group's founding conversation (or a given one)
    score: float  # its score with the closest member of that group (1.0 for a founder)
    partner: Hashable | None  # that member


@dataclass(slots=True)
class _Stored:
    """One conversation's evidence as interned feature ids (sorted) and strengths: a few KB each."""

    lang: str
    mark_ids: np.ndarray  # (m,) int32, sorted: features that hold across languages
    mark_s: np.ndarray  # (m,) float32, their strengths
    all_ids: np.ndarray  # (m + w,) int32, sorted: marks and language-bound words
    all_s: np.ndarray  # (m + w,) float32
    echo_ids: np.ndarray  # (e,) int32, sorted: marks of the assistant's answers
    echo_s: np.ndarray  # (e,) float32, their strengths (before echo_weight)
    seen_ids: np.ndarray  # (u,) int32, sorted: all_ids and echo_ids, once each (for df and postings)


class GoalLinker:
    """Groups conversations in time order; :meth:`add` them oldest first.

    ``threshold``: score in (0, 1] at which a conversation joins a group (scores stay below 1, so 1
    links nothing). ``evidence_scale``: the
    shared evidence at which the score is 1 - 1/e. ``common_share``: a feature in more than this
    share of the history so far counts for nothing; ``spread_limit``: nor does one the person wrote
    in this many goals the evidence kept apart (0: off). ``echo_weight``: what a mark one
    conversation's user wrote and another's assistant wrote counts for, against one both users
    wrote. ``semantic``: an optional ``(key, key) -> cosine or None`` of a multilingual
    sentence-embedding model, consulted only for candidates the shared evidence already found; when
    it reaches ``semantic_floor`` it may raise a score, never lower it.

    Memory: per conversation its (capped) feature ids and strengths, plus one posting and three
    small counters per feature; no pairwise matrix. Time: each conversation is scored against the
    earlier ones sharing one of its rarer features (see ``CANDIDATE_MAX_DF``).
    """

    def __init__(self, threshold: float, semantic: Callable[[Hashable, Hashable], float | None] | None = None,
                 semantic_floor: float = 0.8, *, evidence_scale: float = 4.0, common_share: float = 0.05,
                 echo_weight: float = 0.7, spread_limit: int = 3) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"goal threshold must be in (0, 1], got {threshold}")
        if evidence_scale <= 0 or not 0.0 < common_share <= 1.0 or not 0.0 <= echo_weight <= 1.0 or spread_limit < 0:
            raise ValueError("evidence_scale must be > 0, common_share in (0, 1], echo_weight in [0, 1], "
                             "spread_limit >= 0")
        self.threshold = threshold
        self.semantic = semantic
        self.semantic_floor = semantic_floor
        self.evidence_scale = evidence_scale
        self.common_share = common_share
        self.echo_weight = echo_weight
        self.spread_limit = spread_limit
        self.vocab: dict[str, int] = {}
        self.df = np.zeros(1024, dtype=np.int64)  # (features,) conversations holding each feature
        self.postings: dict[int, array] = defaultdict(lambda: array("i"))  # feature -> conversation positions
        self.keys: list[Hashable] = []  # position in time order -> key
        self.stored: list[_Stored] = []
        self.group_of: dict[Hashable, Hashable] = {}
        self._group_index: dict[Hashable, int] = {}
        self.first_groups = np.full((1024, 2), -1, dtype=np.int64)  # (features, 2) first two groups
        self.spread = np.zeros(1024, dtype=np.int8)  # (features,) distinct groups holding it, up to 3

    @property
    def n(self) -> int:
        return len(self.keys)

    def _intern(self, bag: dict[str, float], prefix: str) -> tuple[np.ndarray, np.ndarray]:
        ids = [self.vocab.setdefault(prefix + k, len(self.vocab)) for k in bag]
        if len(self.vocab) > len(self.df):
            grow = max(len(self.df), len(self.vocab))
            self.df = np.concatenate([self.df, np.zeros(grow, dtype=np.int64)])
            self.first_groups = np.concatenate([self.first_groups, np.full((grow, 2), -1, dtype=np.int64)])
            self.spread = np.concatenate([self.spread, np.zeros(grow, dtype=np.int8)])
        arr = np.asarray(ids, dtype=np.int32)
        st = np.asarray(list(bag.values()), dtype=np.float32)
        order = np.argsort(arr, kind="stable")
        return arr[order], st[order]

    def idf(self, ids: np.ndarray) -> np.ndarray:
        """Rarity in the history so far: log((n + prior) / df); 0 for a feature in more than
        ``common_share`` of the history (and more than COMMON_MIN_DF conversations), and for one the
        person wrote in ``spread_limit`` or more goals that the evidence kept apart (their own name
        in signatures, their partner's, their city): it is about the person, not about one goal."""
        df = np.maximum(1, self.df[ids])
        common = df > max(COMMON_MIN_DF, self.common_share * self.n)
        if self.spread_limit:
            common |= self.spread[ids] >= self.spread_limit
        return np.where(common, 0.0, np.log((self.n + PRIOR_CONVERSATIONS) / df))

    def _shared(self, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.stored[i], self.stored[j]
        if a.lang == b.lang:
            ia, sa, ib, sb = a.all_ids, a.all_s, b.all_ids, b.all_s
        else:
            ia, sa, ib, sb = a.mark_ids, a.mark_s, b.mark_ids, b.mark_s
        shared, pa, pb = np.intersect1d(ia, ib, assume_unique=True, return_indices=True)
        return shared, np.minimum(sa[pa], sb[pb])

    def evidence_at(self, i: int, j: int) -> float:
        """Shared evidence of the conversations at positions ``i`` and ``j``, with today's IDF: sum of
        strength x IDF over their shared features (words only when both share a language), plus
        ``echo_weight`` x that sum over the marks one's user wrote and the other's assistant echoed."""
        shared, s = self._shared(i, j)
        total = float(s @ self.idf(shared)) if len(shared) else 0.0
        if self.echo_weight > 0.0 and total >= ECHO_NEEDS_OWN:
            a, b = self.stored[i], self.stored[j]
            best: dict[int, float] = {}
            for ui, us, ei, es in ((a.mark_ids, a.mark_s, b.echo_ids, b.echo_s),
                                   (b.mark_ids, b.mark_s, a.echo_ids, a.echo_s)):
                common, pu, pe = np.intersect1d(ui, ei, assume_unique=True, return_indices=True)
                for fid, st in zip(common.tolist(), np.minimum(us[pu], es[pe]).tolist()):
                    best[fid] = max(best.get(fid, 0.0), st)
            for fid in shared.tolist():
                best.pop(fid, None)  # already counted in full
            if best:
                ids = np.fromiter(best, dtype=np.int64, count=len(best))
                total += self.echo_weight * float(np.fromiter(best.values(), dtype=np.float64) @ self.idf(ids))
        return total

    def score_at(self, i: int, j: int) -> float:
        """Similarity in [0, 1) of the conversations at positions ``i`` and ``j``: 1 - exp(-evidence / scale)."""
        return 1.0 - math.exp(-self.evidence_at(i, j) / self.evidence_scale)

    def _count_spread(self, ids: np.ndarray, gi: int) -> None:
        """Count, up to 3, the distinct groups whose members wrote each feature of ``ids``."""
        first = self.first_groups[ids]  # (k, 2): the first two groups seen with each feature
        fresh = first[:, 0] < 0
        second = ~fresh & (first[:, 0] != gi) & (first[:, 1] < 0)
        third = ~fresh & (first[:, 0] != gi) & (first[:, 1] >= 0) & (first[:, 1] != gi)
        self.first_groups[ids[fresh], 0] = gi
        self.first_groups[ids[second], 1] = gi
        self.spread[ids[fresh]] = 1
        self.spread[ids[second]] = 2
        self.spread[ids[third]] = 3

    def _join(self, key: Hashable, pos: int, group: Hashable) -> None:
        self.group_of[key] = group
        self._count_spread(self.stored[pos].all_ids, self._group_index.setdefault(group, len(self._group_index)))

    def add(self, key: Hashable, ev: GoalEvidence, group: Hashable | None = None) -> Link:
        """Add the next conversation in time order; ``group``: where it already is (kept as is)."""
        if key in self.group_of:
            raise ValueError(f"conversation {key!r} added twice")
        mi, ms = self._intern(ev.marks, "m:")
        wi, ws = self._intern(ev.words, f"w:{ev.lang.code}:")
        ei, es = self._intern(ev.echoes, "m:")
        ai = np.concatenate([mi, wi])
        order = np.argsort(ai, kind="stable")
        stored = _Stored(ev.lang.code, mi, ms, ai[order], np.concatenate([ms, ws])[order], ei, es,
                         np.union1d(ai, ei).astype(np.int32))
        pos = self.n
        self.keys.append(key)
        self.stored.append(stored)
        self.df[stored.seen_ids] += 1
        for fid in stored.seen_ids.tolist():
            self.postings[fid].append(pos)
        if group is not None:
            self._join(key, pos, group)
            return Link(key, group, 1.0, None)
        # candidates: earlier conversations sharing one of this one's strongest rarer features
        ids = np.concatenate([stored.all_ids, stored.echo_ids])
        weight = np.concatenate([stored.all_s, self.echo_weight * stored.echo_s]) * self.idf(ids)
        strongest = ids[np.argsort(-weight, kind="stable")[:CANDIDATE_FEATURES]]
        candidates: set[int] = set()
        for fid, w in zip(strongest.tolist(), np.sort(-weight)[:CANDIDATE_FEATURES].tolist()):
            if w < 0 and self.df[fid] <= CANDIDATE_MAX_DF:
                candidates.update(self.postings[fid])
        candidates.discard(pos)
        evidence = {c: self.evidence_at(pos, c) for c in sorted(candidates)}
        scores: dict[int, float] = {}
        for c, e in evidence.items():
            s = 1.0 - math.exp(-e / self.evidence_scale)
            if self.semantic is not None and s > 0:
                cos = self.semantic(key, self.keys[c])
                if cos is not None and cos >= self.semantic_floor:
                    s = max(s, cos)
            scores[c] = s
        # the groups some member of which reaches the threshold, by their members' total evidence:
        # a conversation between two goals joins the one it shares most with, not its closest pair
        total: dict[Hashable, float] = defaultdict(float)
        best: dict[Hashable, int] = {}
        for c in sorted(evidence):
            g = self.group_of[self.keys[c]]
            total[g] += evidence[c]
            if g not in best or scores[c] > scores[best[g]]:
                best[g] = c
        ranked = sorted((g for g, c in best.items() if scores[c] >= self.threshold and self.threshold < 1.0),
                        key=lambda g: (-total[g], best[g]))  # ties: the earlier partner first
        if ranked:
            g = ranked[0]
            self._join(key, pos, g)
            return Link(key, g, min(1.0, scores[best[g]]), self.keys[best[g]])
        self._join(key, pos, key)
        return Link(key, key, 1.0, None)

    def score(self, a: Hashable, b: Hashable) -> float:
        """:meth:`score_at` by key (for tests and diagnostics; linear in the history)."""
        return self.score_at(self.keys.index(a), self.keys.index(b))
