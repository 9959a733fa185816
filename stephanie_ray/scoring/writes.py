"""Writing the batch stage's results back: embeddings and per-scorer scores, novelty along each
CaseBook's trajectory, the ensemble per dimension and overall. Every write is in bounded batches."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Protocol

import numpy as np
from sqlalchemy import delete, select, tuple_

from ..db import Database
from ..db.bulk import IN_CHUNK, chunks, insert_ignore
from ..db.models import ScorableEmbedding, ScoreRow
from ..embedding import from_bytes
from ..ingest.model import stable_id
from ..casebooks.scorables import resolve_texts
from .ensemble import ENSEMBLE, OVERALL, aggregate
from .items import Key, Primary
from .novelty import NgramNovelty, trajectory_novelty
from .results import FAILED, OK, SKIPPED, ItemResult
from .scorers import ngram_score

ROW_FLUSH = 5000  # score rows buffered before a write


class Tally(Protocol):
    """What the writers count into (the stage's :class:`ScoringSummary`)."""

    scores_written: int
    failed: int
    skipped: int
    truncated: int
    failures: list[dict[str, Any]]


def score_id(st: str, sid: int, dim: str, scorer: str) -> int:
    return stable_id("score", st, str(sid), dim, scorer)


def _row(st: str, sid: int, dim: str, scorer: str, version: str, value: float | None, status: str, rationale: str,
         error: str | None, run_id: int | None, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": score_id(st, sid, dim, scorer), "scorable_type": st, "scorable_id": sid, "dimension": dim,
            "scorer": scorer, "scorer_version": version, "value": value, "status": status, "rationale": rationale or "",
            "error": error, "pipeline_run_id": run_id, "meta": meta or {}}


def _count(tally: Tally, st: str, sid: int, scorer: str, dim: str, status: str, error: str | None) -> None:
    if status == FAILED:
        tally.failed += 1
        if len(tally.failures) < 1000:
            tally.failures.append({"scorable": f"{st}:{sid}", "scorer": scorer, "dimension": dim, "error": error})
    elif status == SKIPPED:
        tally.skipped += 1


def write_results(db: Database, results: list[ItemResult], emb_model: str, run_id: int | None, names: list[str],
                  tally: Tally) -> list[Key]:
    """Embeddings and every (scorer, dimension) result of ``results``; an item scored again replaces its rows."""
    if not results:
        return []
    keys = [r.key for r in results]
    emb_rows, score_rows = [], []
    for r in results:
        st, sid = r.key
        if r.emb is not None and len(r.emb):  # (no embedding when no scorer in use needs one)
            emb_rows.append({"scorable_type": st, "scorable_id": sid, "model": emb_model,
                             "vector": r.emb.astype(np.float32).tobytes()})
        tally.truncated += bool(r.truncated)
        meta = {"truncated": True} if r.truncated else {}
        for s in r.results:
            score_rows.append(_row(st, sid, s.dimension, s.scorer, s.version, s.value, s.status, s.rationale, s.error,
                                   run_id, meta))
            _count(tally, st, sid, s.scorer, s.dimension, s.status, s.error)
    with db.session() as s:
        for part in chunks(keys, IN_CHUNK):
            if emb_rows:
                s.execute(delete(ScorableEmbedding).where(
                    tuple_(ScorableEmbedding.scorable_type, ScorableEmbedding.scorable_id).in_(part),
                    ScorableEmbedding.model == emb_model))
            s.execute(delete(ScoreRow).where(tuple_(ScoreRow.scorable_type, ScoreRow.scorable_id).in_(part),
                                             ScoreRow.scorer.in_(names + [ENSEMBLE])))
        insert_ignore(s, ScorableEmbedding, emb_rows)
        insert_ignore(s, ScoreRow, score_rows)
    tally.scores_written += len(score_rows)
    return keys


def write_empty(db: Database, keys: list[Key], names: list[str], versions: dict[str, str], dims: list[str],
                emb_model: str, run_id: int | None, tally: Tally) -> None:
    """Nothing to score: every (scorer, dimension) fails with the reason, and there is no overall."""
    from .results import ScoreResult

    why = "empty text: nothing to score"
    results = [ItemResult(st, sid, [ScoreResult(n, versions.get(n, "1"), d, None, "", FAILED, why)
                                    for n in names + [ENSEMBLE] for d in (dims if n != ENSEMBLE else [OVERALL])])
               for st, sid in keys]
    write_results(db, results, emb_model, run_id, names, tally)


def write_novelty(db: Database, scored: list[Key], primary: dict[Key, Primary], emb_model: str, run_id: int | None,
                  scorers: dict[str, str], tally: Tally) -> None:
    """Novelty of each newly scored item along its primary CaseBook's trajectory, by each trajectory
    scorer in ``scorers`` ({name: version}: ``embedding`` and / or ``ngram``). Memory: one trajectory's
    vectors and n-gram hashes at a time; the similarity matrix in row blocks."""
    if not scorers:
        return
    new = set(scored)
    wanted = {primary[k].casebook_id for k in new}
    books: dict[int, list[tuple[int, int, Key]]] = defaultdict(list)  # casebook -> [(position, rank, key)]
    for key, m in primary.items():
        if m.casebook_id in wanted:
            books[m.casebook_id].append((m.position, m.rank, key))
    rows: list[dict[str, Any]] = []

    def flush(force: bool = False) -> None:
        if not rows or (len(rows) < ROW_FLUSH and not force):
            return
        with db.session() as s:
            keys = sorted({(r["scorable_type"], r["scorable_id"]) for r in rows})
            for part in chunks(keys, IN_CHUNK):
                s.execute(delete(ScoreRow).where(tuple_(ScoreRow.scorable_type, ScoreRow.scorable_id).in_(part),
                                                 ScoreRow.dimension == "novelty", ScoreRow.scorer.in_(list(scorers))))
            insert_ignore(s, ScoreRow, rows)
        tally.scores_written += len(rows)
        rows.clear()

    first_why = "first attempt of its CaseBook: nothing earlier to be novel against"
    for cb in sorted(wanted):
        tkeys = [k for _, _, k in sorted(books[cb])]
        if "embedding" in scorers:
            vecs: dict[Key, np.ndarray] = {}
            with db.session() as s:
                for part in chunks(tkeys, IN_CHUNK):
                    for st, sid, vec in s.execute(select(ScorableEmbedding.scorable_type, ScorableEmbedding.scorable_id,
                                                         ScorableEmbedding.vector).where(
                            tuple_(ScorableEmbedding.scorable_type, ScorableEmbedding.scorable_id).in_(part),
                            ScorableEmbedding.model == emb_model)):
                        vecs[(st, sid)] = from_bytes(vec)
            have = [k for k in tkeys if k in vecs]
            if have:
                nov = trajectory_novelty(np.stack([vecs[k] for k in have]))
                del vecs
                for i, k in enumerate(have):
                    if k in new:
                        rows.append(_row(k[0], k[1], "novelty", "embedding", scorers["embedding"],
                                         float(nov[i]) if i else None, OK if i else SKIPPED,
                                         f"most similar earlier attempt: cosine {1 - nov[i]:.2f} (of {i} earlier)"
                                         if i else first_why, None, run_id))
        if "ngram" in scorers:
            walk = NgramNovelty()
            for part in chunks(tkeys, IN_CHUNK):
                with db.session() as s:
                    texts = resolve_texts(s, part)
                for k in part:
                    text = texts.get(k) or ""
                    if not text.strip():
                        continue
                    earlier = walk.attempts
                    value, n_new, total = walk.add(text)
                    if k in new:
                        rows.append(_row(k[0], k[1], "novelty", "ngram", scorers["ngram"], value,
                                         OK if value is not None else SKIPPED,
                                         ngram_score(value, n_new, total, earlier).rationale if value is not None
                                         else first_why, None, run_id))
        flush()
    flush(force=True)


def write_ensemble(db: Database, scored: list[Key], names: list[str], scfg: Any, run_id: int | None,
                   tally: Tally) -> None:
    for part in chunks(scored, IN_CHUNK):
        per: dict[Key, list[tuple[str, str, float]]] = defaultdict(list)
        with db.session() as s:
            for st, sid, scorer, dim, value in s.execute(
                    select(ScoreRow.scorable_type, ScoreRow.scorable_id, ScoreRow.scorer, ScoreRow.dimension,
                           ScoreRow.value).where(tuple_(ScoreRow.scorable_type, ScoreRow.scorable_id).in_(part),
                                                 ScoreRow.scorer.in_(names), ScoreRow.status == OK)):
                per[(st, sid)].append((scorer, dim, value))
            rows = []
            for (st, sid), vals in per.items():
                agg = aggregate(vals, scfg.scorer_weights, scfg.dimension_weights)
                for dim, v in agg.items():
                    n = sum(1 for _, d, _ in vals if d == dim) if dim != OVERALL else len(agg) - 1
                    rows.append(_row(st, sid, dim, ENSEMBLE, "1", float(v), OK,
                                     f"weighted mean of {n} {'dimensions' if dim == OVERALL else 'scorers'}", None,
                                     run_id))
            insert_ignore(s, ScoreRow, rows)
        tally.scores_written += len(rows)
