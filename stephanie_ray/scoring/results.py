"""Typed rows of scoring: what :func:`score_batch` returns and what crosses the actor pool.

* :class:`ScoreResult`: one (scorer, dimension) outcome for one item: ``ok`` with a value in [0, 1],
  ``failed`` with the reason, or ``skipped`` (the scorer had no evidence: no code to check, no
  earlier attempt, no choice the person made);
* :class:`ItemResult`: one item's results, its ensemble per dimension and overall, its embedding.

Across the Ray Data actor pool they travel as an Arrow table (:data:`RESULT_SCHEMA`: a
``list<struct>`` column of results, a ``list<float32>`` embedding), never as JSON strings;
items travel the other way as :data:`ITEM_SCHEMA`. :func:`results_to_arrow` and
:func:`results_from_arrow` convert, and round-trip exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from .base import Item

OK, FAILED, SKIPPED = "ok", "failed", "skipped"


@dataclass(frozen=True, slots=True)
class ScoreResult:
    scorer: str
    version: str
    dimension: str
    value: float | None  # None unless status is ok
    rationale: str
    status: str  # ok | failed | skipped
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK


@dataclass(slots=True)
class ItemResult:
    scorable_type: str
    scorable_id: int
    results: list[ScoreResult]
    ensemble: dict[str, float] = field(default_factory=dict)  # dimension -> weighted mean, plus "overall"
    emb: np.ndarray | None = None  # (dim,) float32 unit vector of the answer, when a scorer needed one
    truncated: bool = False

    @property
    def key(self) -> tuple[str, int]:
        return self.scorable_type, self.scorable_id

    def scores(self, dimension: str) -> dict[str, float]:
        """{scorer: value} of the ok results on ``dimension``."""
        return {r.scorer: r.value for r in self.results if r.dimension == dimension and r.ok and r.value is not None}


_RESULT = pa.struct([("scorer", pa.string()), ("version", pa.string()), ("dimension", pa.string()),
                     ("value", pa.float64()), ("rationale", pa.string()), ("status", pa.string()),
                     ("error", pa.string())])
RESULT_SCHEMA = pa.schema([("scorable_type", pa.string()), ("scorable_id", pa.int64()),
                           ("results", pa.list_(_RESULT)), ("emb", pa.list_(pa.float32())),
                           ("truncated", pa.bool_())])
_TURN = pa.struct([("prompt", pa.string()), ("next_user", pa.string()), ("regenerated", pa.bool_()),
                   ("edited", pa.bool_())])
ITEM_SCHEMA = pa.schema([("scorable_type", pa.string()), ("scorable_id", pa.int64()), ("text", pa.string()),
                         ("prompt", pa.string()), ("goal", pa.string()), ("next_user", pa.string()),
                         ("regenerated", pa.bool_()), ("edited", pa.bool_()), ("replaced", pa.int32()),
                         ("turns", pa.list_(_TURN))])


def results_to_arrow(rows: Sequence[ItemResult]) -> pa.Table:
    return pa.Table.from_pydict({
        "scorable_type": [r.scorable_type for r in rows],
        "scorable_id": [r.scorable_id for r in rows],
        "results": [[{"scorer": s.scorer, "version": s.version, "dimension": s.dimension, "value": s.value,
                      "rationale": s.rationale, "status": s.status, "error": s.error} for s in r.results]
                    for r in rows],
        "emb": [None if r.emb is None else r.emb.astype(np.float32) for r in rows],
        "truncated": [bool(r.truncated) for r in rows],
    }, schema=RESULT_SCHEMA)


def results_from_arrow(table: Any) -> list[ItemResult]:
    """From an Arrow table (or a Ray Data pyarrow batch) of :data:`RESULT_SCHEMA`."""
    cols = table.to_pydict() if isinstance(table, pa.Table) else pa.Table.from_pydict(table).to_pydict()
    out = []
    for st, sid, res, emb, trunc in zip(cols["scorable_type"], cols["scorable_id"], cols["results"], cols["emb"],
                                        cols["truncated"]):
        out.append(ItemResult(st, int(sid), [ScoreResult(**r) for r in res], {},
                              None if emb is None else np.asarray(emb, dtype=np.float32), bool(trunc)))
    return out


def items_to_arrow(items: Sequence[Item]) -> pa.Table:
    return pa.Table.from_pydict({
        "scorable_type": [it.scorable_type for it in items], "scorable_id": [it.scorable_id for it in items],
        "text": [it.text for it in items], "prompt": [it.prompt for it in items], "goal": [it.goal for it in items],
        "next_user": [it.next_user for it in items], "regenerated": [it.regenerated for it in items],
        "edited": [it.edited for it in items], "replaced": [it.replaced for it in items],
        "turns": [[{"prompt": t.get("prompt", ""), "next_user": t.get("next_user", ""),
                    "regenerated": bool(t.get("regenerated")), "edited": bool(t.get("edited"))}
                   for t in it.extra.get("turns", ())] for it in items],
    }, schema=ITEM_SCHEMA)


def items_from_arrow(table: Any, max_chars: int | None = None) -> list[Item]:
    """Items from an Arrow table of :data:`ITEM_SCHEMA`; texts cut to ``max_chars`` (flagged ``truncated``)."""
    cols = table.to_pydict() if isinstance(table, pa.Table) else pa.Table.from_pydict(table).to_pydict()
    cut = max_chars or None
    out = []
    for i in range(len(cols["scorable_id"])):
        text = cols["text"][i] or ""
        turns = cols["turns"][i] or []
        out.append(Item(cols["scorable_type"][i], int(cols["scorable_id"][i]), text[:cut], (cols["prompt"][i] or "")[:cut],
                        cols["goal"][i] or "", (cols["next_user"][i] or "")[:cut], bool(cols["regenerated"][i]),
                        bool(cols["edited"][i]), int(cols["replaced"][i] or 0),
                        truncated=cut is not None and len(text) > cut,
                        extra={"turns": turns} if turns else {}))
    return out
