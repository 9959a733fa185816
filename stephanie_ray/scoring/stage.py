"""``stephanie score``: every scorable of every CaseBook, on every dimension, by every available scorer.

The stage only sequences; each step lives in its own module:

1. **Items** (``items.py``): the answers of all CaseBooks (not prompts or user messages), each with its
   request, its primary CaseBook's goal and the person's reactions (next user message, regenerated,
   prompt edited, regenerations it replaced). Already-scored items are skipped unless ``--rescore``.
2. **Scoring** (``pool.py``, ``worker.py``): a Ray Data actor pool (or one in-process worker) calls
   :func:`batch.score_batch` — the pure API the PACS reward and ``/verify`` call too — with scorers
   from the registry (``registry.py``); items and typed results travel as Arrow tables.
3. **Writes** (``writes.py``): embeddings and per-scorer results (ok, failed with the reason, skipped
   for lack of evidence); novelty along each trajectory (embedding and n-gram); the ensemble.
4. **Post-passes** (``post.py``, ``figure.py``): case scores on the footing, champions, wins, losses and
   trust by the footing tournament, progress — all through :class:`CaseBookStore`; MARS agreement; the
   run report's section and its figure.

The stage returns a :class:`ScoringSummary` (typed: ``counts()`` for the audit trail, ``partial``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, tuple_

from ..config import StephanieConfig
from ..db import Database
from ..db.bulk import IN_CHUNK, chunks
from ..db.models import ScoreRow, ScorerModel
from ..embedding import resolve_model
from ..errors import UserError
from ..progress_bar import ProgressBar
from .ensemble import ENSEMBLE
from .figure import plot_trajectories
from .items import (SCORED_ROLES, Membership, Primary, build_items, casebooks_of, feedback_context,  # noqa: F401
                    load_items, load_memberships, load_primary, primary_memberships)
from .pool import iter_results
from .post import (ACK_MAX_CHARS, case_scores, dimension_means, is_acknowledgement, measure_mars,  # noqa: F401
                   reaction_shares, request_keys, update_casebooks)
from .registry import LEARNED as KIND_LEARNED, LEARNED_SCORERS, OFFLINE, REMOTE, SCORERS, LearnedArtifact, ScorerSettings, \
    settings_from_config
from .writes import score_id, write_empty, write_ensemble, write_novelty, write_results  # noqa: F401

log = logging.getLogger(__name__)

REPORT_CASEBOOKS = 10  # CaseBooks listed in the run report (the largest; the rest are counted)
LEARNED = LEARNED_SCORERS  # noqa: F811 (the old name: the learned scorers' names)
_feedback_context = feedback_context  # the old private name


@dataclass
class ScoringSummary:
    """What one scoring run did: the stage's typed result."""

    scorers: list[str] = field(default_factory=list)
    dimensions: list[str] = field(default_factory=list)
    items_seen: int = 0
    items_scored: int = 0
    items_skipped_scored: int = 0
    items_missing_text: int = 0  # empty texts: recorded as failed scores ("empty text")
    scores_written: int = 0
    failed: int = 0  # (item, dimension, scorer) scores that failed
    skipped: int = 0  # (item, dimension, scorer) with no evidence (no code, first attempt, no choice made)
    failures: list[dict[str, Any]] = field(default_factory=list)
    truncated: int = 0
    dimension_means: dict[str, float] = field(default_factory=dict)
    casebooks_updated: int = 0
    champions_changed: int = 0
    mars: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0
    items_per_s: float = 0.0

    @property
    def partial(self) -> bool:
        """Some scores failed (the rest stand)."""
        return self.failed > 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def counts(self) -> dict[str, Any]:
        out = self.to_dict()
        out["failures"] = self.failures[:50]
        out["mars"] = {d: {k: m.get(k) for k in ("agreement", "alpha", "items", "scorers")} for d, m in self.mars.items()}
        return out


# ----------------------------------------------------------------------------- which scorers


def latest_models(session: Any) -> dict[str, ScorerModel]:
    out: dict[str, ScorerModel] = {}
    for m in session.scalars(select(ScorerModel).order_by(ScorerModel.name, ScorerModel.version)):
        out[m.name] = m
    return out


def trained_artifacts(session: Any) -> dict[str, LearnedArtifact]:
    """The newest trained version of each learned scorer whose file exists (an old ``.pt`` one too: loading
    it fails with how to retrain, recorded on each of its scores)."""
    return {name: LearnedArtifact(m.path, m.version) for name, m in latest_models(session).items()
            if name in LEARNED_SCORERS and Path(m.path).is_file()}


def resolve_scorers(cfg: StephanieConfig, session: Any, requested: list[str] | None) -> tuple[list[str], ScorerSettings]:
    """The scorers to run (registry names) and the plain settings their workers need. Errors before any work."""
    scfg = cfg.scoring
    names = list(requested or scfg.scorers)
    unknown = [n for n in names if n not in SCORERS]
    if unknown:
        raise UserError(f"unknown scorer {unknown[0]!r} (scorers: {', '.join(SCORERS)})")
    learned = trained_artifacts(session)
    available = [n for n, sp in SCORERS.items() if sp.kind == OFFLINE or (sp.kind == KIND_LEARNED and n in learned)
                 or (sp.kind == REMOTE and scfg.llm_base_url)]
    if names:
        missing = [n for n in names if n not in available]
        if missing:
            why = "is not trained yet (stephanie scorers train)" if SCORERS[missing[0]].kind == KIND_LEARNED else \
                "needs scoring.llm_base_url"
            raise UserError(f"scorer {missing[0]!r} {why}")
    else:
        names = available
    return names, settings_from_config(cfg, learned)


def scorer_versions(names: list[str], settings: ScorerSettings) -> dict[str, str]:
    return {n: str(settings.learned[n].version) if n in settings.learned else SCORERS[n].version for n in names}


# ----------------------------------------------------------------------------- the stage


def _due(session: Any, keys: list[tuple[str, int]], names: list[str]) -> set[tuple[str, int]]:
    """Keys already done: an overall score and a row (ok, failed or skipped) from every scorer now in use;
    a scorer that joined since (a newly trained one) makes an item due again."""
    done: set[tuple[str, int]] = set()
    for part in chunks(keys, IN_CHUNK):
        q = (select(ScoreRow.scorable_type, ScoreRow.scorable_id)
             .where(tuple_(ScoreRow.scorable_type, ScoreRow.scorable_id).in_(part),
                    ScoreRow.scorer.in_(names + [ENSEMBLE]))
             .group_by(ScoreRow.scorable_type, ScoreRow.scorable_id)
             .having(func.count(func.distinct(ScoreRow.scorer)) == len(names) + 1))
        done.update(tuple(r) for r in session.execute(q))
    return done


def run_scoring(cfg: StephanieConfig, db: Database, *, run_id: int | None = None, progress: bool = False,
                dimensions: list[str] | None = None, scorers: list[str] | None = None,
                rescore: bool | None = None, run_dir: Path | None = None) -> ScoringSummary:
    from ..config import SCORING_DIMENSIONS

    scfg = cfg.scoring
    dims = list(dimensions or scfg.dimensions)
    bad = [d for d in dims if d not in SCORING_DIMENSIONS]
    if bad:
        raise UserError(f"unknown dimension {bad[0]!r} (dimensions: {', '.join(SCORING_DIMENSIONS)})")
    rescore = scfg.rescore if rescore is None else rescore
    t0 = time.perf_counter()
    with db.session() as s:
        names, settings = resolve_scorers(cfg, s, scorers)
        primary = load_primary(s)
        keys = sorted(primary)
        summary = ScoringSummary(scorers=names, dimensions=dims, items_seen=len(keys))
        if not rescore:
            done = _due(s, keys, names)
            summary.items_skipped_scored = len(done)
            keys = [k for k in keys if k not in done]
            del done
    # CaseBook by CaseBook, in trajectory order: a batch's items share their goal (embedded once)
    keys.sort(key=lambda k: (primary[k].casebook_id, primary[k].position, primary[k].rank, k))
    versions = scorer_versions(names, settings)
    _, emb_model = resolve_model(cfg.embedding.model)
    log.info("scoring %d items (%d already scored) on %s with %s", len(keys), summary.items_skipped_scored,
             dims, names)
    scored_keys: list[tuple[str, int]] = []
    bar = ProgressBar(len(keys), progress, "score", "item", logger=log)
    try:
        # in chunks of items, so memory holds one chunk's texts however large the history is
        for part in chunks(keys, scfg.chunk_items):
            with db.session() as s:
                items, empty = load_items(s, part, primary)
            if empty:
                summary.items_missing_text += len(empty)
                write_empty(db, empty, names, versions, dims, emb_model, run_id, summary)
                bar.update(len(empty))
            if items:
                scored_keys += _score_chunk(cfg, db, items, names, dims, settings, emb_model, run_id, summary, bar)
    finally:
        bar.close()
    if scored_keys:
        if "novelty" in dims:
            write_novelty(db, scored_keys, primary, emb_model, run_id,
                          {n: versions[n] for n in names if SCORERS[n].trajectory}, summary)
        write_ensemble(db, scored_keys, names, scfg, run_id, summary)
    summary.items_scored = len(scored_keys)
    del primary
    with db.session() as s:
        touched = casebooks_of(s, scored_keys)
    update_casebooks(db, cfg, touched, summary)
    summary.mars = measure_mars(db, dims, scfg.top_disagreements, run_id)
    summary.dimension_means = dimension_means(db, dims)
    summary.seconds = round(time.perf_counter() - t0, 3)
    summary.items_per_s = round(summary.items_scored / summary.seconds, 1) if summary.seconds else 0.0
    if run_dir is not None:
        plot_trajectories(db, run_dir / "score_trajectories.png")
    log.info("scored %d items in %.1f s (%.1f items/s); %d scores failed, %d skipped for lack of evidence",
             summary.items_scored, summary.seconds, summary.items_per_s, summary.failed, summary.skipped)
    return summary


def _score_chunk(cfg: StephanieConfig, db: Database, items: list[Any], names: list[str], dims: list[str],
                 settings: ScorerSettings, emb_model: str, run_id: int | None, summary: ScoringSummary,
                 bar: ProgressBar) -> list[tuple[str, int]]:
    batches = iter_results(cfg, items, names, dims, settings)
    scored: list[tuple[str, int]] = []
    pending: list[Any] = []
    try:
        for batch in batches:
            pending += batch
            bar.update(len(batch))
            if len(pending) >= cfg.scoring.write_batch:
                scored += write_results(db, pending, emb_model, run_id, names, summary)
                pending = []
        scored += write_results(db, pending, emb_model, run_id, names, summary)
    finally:
        close = getattr(batches, "close", None)
        if close:
            close()
    return scored


def score_stage(ctx: Any) -> ScoringSummary:
    """The pipeline stage after casebooks; adds its section (MARS, champions, progress, best and worst
    answers) to the run report."""
    from .queries import render_score_report, score_report

    summary = run_scoring(ctx.config, ctx.db, run_id=ctx.run_id, progress=ctx.progress, run_dir=ctx.run_dir)
    ctx.results["score"] = summary
    with ctx.db.session() as s:
        rep = score_report(s, dict(ctx.config.scoring.dimension_weights), top_n=REPORT_CASEBOOKS)
    ctx.report["score"] = render_score_report(rep, summary.mars, summary.dimensions)
    return summary
