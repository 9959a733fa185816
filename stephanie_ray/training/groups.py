"""PACS groups and the train/validation split, pure (no database, no Ray).

**Groups** are the responses to one prompt: PACS's leave-one-out baseline and class weights are computed
within a group, so a group must be whole wherever it is used (one worker, one split). Built by union-find
over *cases* (a case = one user message and every answer to it), in this order of rules:

1. ``regenerations`` — the answers of one case (the active answer and its regenerations) are one group;
2. ``request`` — cases that scoring found to ask the same request (``Case.meta["request"]``: the same
   normalised, long-enough prompt asked again later in the trajectory or of another provider in a
   cross-provider CaseBook, or an edited prompt, i.e. a sibling message) join one group: the successive
   attempts at one request (``prepare.group_requests``);
3. ``goal`` — in a CaseBook whose conversations come from two providers or more, the *opening* case of
   each conversation (its first case in the CaseBook: the answer to the goal's first request) joins one
   group: different providers' answers to the same goal (``prepare.group_goal_openings``).

Every response lands in exactly one group; what is left alone is a group of one (``single``: PACS keeps it
with weight 1 as the authors do, or drops it with ``pacs.uniform_groups: drop``). A group's ``rule`` is the
strongest rule that joined it (``goal`` > ``request`` > ``regenerations`` > ``single``).

**Split**: rows are linked when they share a conversation, a goal or a group; each connected component goes
wholly to train or to validation, so no conversation, goal or group leaks across the split. Components are
taken in a seeded hash order and put in validation while they fit in ``val_fraction`` of the rows (one that
would overshoot stays in train, so one huge goal cannot swallow the validation; if none fits, the smallest
component validates). Fewer than two components is an error the caller reports.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Hashable, Iterable, Sequence

RULES = ("single", "regenerations", "request", "goal")  # weakest first


class UnionFind:
    def __init__(self) -> None:
        self.parent: dict[Hashable, Hashable] = {}

    def find(self, x: Hashable) -> Hashable:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: Hashable, b: Hashable) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            lo, hi = sorted((ra, rb), key=repr)  # deterministic root: the smaller key
            self.parent[hi] = lo


@dataclass(frozen=True)
class CaseRef:
    """What the group rules read about one case."""

    case_id: int
    casebook_id: int
    conversation_id: int | None
    position: int  # order in its CaseBook's trajectory
    request: str | None  # Case.meta["request"]: same key, same request (None: asked once)
    n_answers: int
    provider: str


@dataclass(frozen=True)
class Grouping:
    group_of: dict[int, int]  # case id -> group key (the smallest case id of its group)
    rule: dict[int, str]  # group key -> rule
    case_count: dict[int, int]  # group key -> cases in it


def group_cases(cases: Sequence[CaseRef], *, requests: bool = True, goal_openings: bool = True) -> Grouping:
    """Apply the module's rules to the cases of the dataset (answers of one case are always together)."""
    uf = UnionFind()
    for c in cases:
        uf.find(c.case_id)
    joined_by: dict[int, set[str]] = defaultdict(set)  # case id -> rules that joined it to another case
    if requests:
        by_request: dict[tuple[int, str], list[int]] = defaultdict(list)
        for c in cases:
            if c.request:
                by_request[(c.casebook_id, c.request)].append(c.case_id)
        for ids in by_request.values():
            for other in ids[1:]:
                uf.union(ids[0], other)
            if len(ids) > 1:
                for i in ids:
                    joined_by[i].add("request")
    if goal_openings:
        books: dict[int, list[CaseRef]] = defaultdict(list)
        for c in cases:
            books[c.casebook_id].append(c)
        for book in books.values():
            if len({c.provider for c in book}) < 2:
                continue
            first: dict[int | None, CaseRef] = {}
            for c in book:
                if c.conversation_id is not None and (c.conversation_id not in first
                                                      or c.position < first[c.conversation_id].position):
                    first[c.conversation_id] = c
            openings = sorted(first.values(), key=lambda c: c.position)
            if len({c.provider for c in openings}) < 2:
                continue
            for c in openings[1:]:
                uf.union(openings[0].case_id, c.case_id)
            for c in openings:
                joined_by[c.case_id].add("goal")
    group_of = {c.case_id: int(uf.find(c.case_id)) for c in cases}  # type: ignore[arg-type]
    members: dict[int, list[CaseRef]] = defaultdict(list)
    for c in cases:
        members[group_of[c.case_id]].append(c)
    rule: dict[int, str] = {}
    for g, cs in members.items():
        found = {"single"}
        if sum(c.n_answers for c in cs) > 1:
            found.add("regenerations")
        if len(cs) > 1:
            found |= {r for c in cs for r in joined_by[c.case_id]}
        rule[g] = max(found, key=RULES.index)
    return Grouping(group_of, rule, {g: len(cs) for g, cs in members.items()})


def size_histogram(group_sizes: Iterable[int]) -> dict[int, int]:
    """{group size: number of groups}, sizes ascending."""
    return dict(sorted(Counter(group_sizes).items()))


def render_histogram(hist: dict[int, int], width: int = 40) -> str:
    """A text histogram of group sizes (one line per size)."""
    if not hist:
        return "(no groups)"
    top = max(hist.values())
    return "\n".join(f"size {size:>3}: {n:>6} {'#' * max(1, round(width * n / top))}" for size, n in hist.items())


class SplitError(ValueError):
    """Too few independent components for a train/validation split."""


def _order_key(seed: int, key: str) -> str:
    return hashlib.blake2b(f"{seed}\x1f{key}".encode(), digest_size=8).hexdigest()


def split_rows(conversations: Sequence[Hashable], goals: Sequence[Hashable | None], groups: Sequence[Hashable],
               val_fraction: float, seed: int = 0) -> list[str]:
    """"train" / "val" per row (module docstring). ``goals[i]`` None: the row has no goal to share."""
    n = len(groups)
    if not (len(conversations) == len(goals) == n):
        raise ValueError("conversations, goals and groups must have one entry per row")
    uf = UnionFind()
    for i in range(n):
        row = ("row", i)
        uf.union(row, ("group", groups[i]))
        uf.union(row, ("conv", conversations[i]))
        if goals[i] is not None:
            uf.union(row, ("goal", goals[i]))
    comps: dict[Hashable, list[int]] = defaultdict(list)
    for i in range(n):
        comps[uf.find(("row", i))].append(i)
    if len(comps) < 2:
        raise SplitError(f"too few items for a split: {n} rows form {len(comps)} independent component(s) "
                         f"(rows sharing a conversation, goal or group stay together); need at least 2")
    # a conversation lies in one component only: its smallest conversation id names it, whatever the row order
    order = sorted(comps.values(), key=lambda rows: _order_key(seed, min(str(conversations[i]) for i in rows)))
    target = val_fraction * n
    split = ["train"] * n
    val_rows = 0
    for rows in order:  # fill validation without overshooting: a huge component (one goal) stays in train
        if val_rows + len(rows) <= target:
            for i in rows:
                split[i] = "val"
            val_rows += len(rows)
    if val_rows == 0:  # every component is larger than the target: the smallest one validates
        for i in min(order, key=len):
            split[i] = "val"
    return split
