"""``stephanie ner index`` and the pipeline's ``ner`` stage; ``stephanie ner train-projection``.

1. **Due scorables**: every scorable of every CaseBook (prompts included: a person's questions name the
   things they work on) that has no NER record for the configured span model yet (``--reembed``: all).
2. **Detect + embed** (``worker.NerWorker``) chunk by chunk: on a Ray Data actor pool (``map_batches``
   with ``ActorPoolStrategy``; each actor loads spaCy and the span model once) or in this process; the
   results (mentions with raw span vectors) are written as they come, so an interrupted run keeps its work.
3. **Projection**: the newest version trained on this span model's vectors; none yet (and
   ``ner.auto_train``) — train one on the stored mentions' labels (+ ``ner.train_file``).
4. **Index**: built once at the end, in one pass over the stored vectors (``index.build_index``).
5. **Graph**: entity counts, then co-occurrence edges.

Incremental: a rerun embeds only scorables it has not seen (or that failed), then rebuilds the index from
stored vectors. The stage returns a typed :class:`NerSummary`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import select

from ..config import StephanieConfig
from ..db import Database
from ..db.bulk import chunks
from ..db.models import CaseScorable, NerMention, NerScorable
from ..casebooks.scorables import resolve_texts
from ..errors import UserError
from ..progress_bar import ProgressBar
from .detect import DetectorSettings
from .graph import rebuild_edges, refresh_entities, write_results
from .index import BuildResult, IndexRows, build_index
from .projection import Projection, ProjectionSettings, ProjectionStore, train_projection
from .spans import SpanEmbedder, SpanSettings
from .worker import NerWorker, WorkerSettings, inputs_to_arrow

log = logging.getLogger(__name__)


@dataclass
class NerSummary:
    scorables_seen: int = 0
    scorables_indexed: int = 0  # detected + embedded in this run
    scorables_skipped_done: int = 0
    scorables_empty: int = 0
    failed: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    mentions_new: int = 0
    chunks_skipped_script: int = 0
    texts_truncated: int = 0
    mentions_unembeddable: int = 0
    mentions_dropped: int = 0
    projection_version: int | None = None
    projection_trained: bool = False
    index_items: int = 0
    index_duplicates: int = 0
    index_seconds: float = 0.0
    index_bytes: int = 0
    index_path: str = ""
    index_not_built: str = ""  # why, when the index could not be built (e.g. a projection needs two types)
    entities: int = 0
    edges: int = 0
    seconds: float = 0.0
    scorables_per_s: float = 0.0
    parallel: bool = False

    @property
    def partial(self) -> bool:
        return self.failed > 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def counts(self) -> dict[str, Any]:
        out = self.to_dict()
        out["failures"] = self.failures[:50]
        return out


def worker_settings(cfg: StephanieConfig, num_threads: int = 0) -> WorkerSettings:
    n = cfg.ner
    spans = SpanSettings.from_config(n)
    if num_threads and not spans.num_threads:
        spans = dataclasses.replace(spans, num_threads=num_threads)
    return WorkerSettings(DetectorSettings.from_config(n), spans, n.snippet_chars)


def _due(session: Any, signature: str, reembed: bool) -> tuple[list[tuple[str, int]], int]:
    refs = sorted({(t, int(i)) for t, i in session.execute(
        select(CaseScorable.scorable_type, CaseScorable.scorable_id).distinct())})
    if reembed:
        return refs, 0
    done = {(t, int(i)) for t, i in session.execute(
        select(NerScorable.scorable_type, NerScorable.scorable_id)
        .where(NerScorable.signature == signature, NerScorable.status.in_(("ok", "empty"))))}
    due = [r for r in refs if r not in done]
    return due, len(refs) - len(due)


def _iter_serial(settings: WorkerSettings, blocks: list[Any]) -> Iterator[Any]:
    worker = NerWorker(settings)
    for b in blocks:
        yield worker(b)


def _iter_parallel(cfg: StephanieConfig, settings: WorkerSettings, blocks: list[Any]) -> Iterator[Any]:
    import ray

    from ..ray_utils import ensure_ray

    ensure_ray(cfg.ray)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    size = cfg.ner.num_actors or max(1, min(8, cpus))
    threads = max(1, cpus // size)  # torch threads per actor: the CPUs shared out, not oversubscribed
    if not settings.spans.num_threads:
        settings = dataclasses.replace(settings, spans=dataclasses.replace(settings.spans, num_threads=threads))
    ds = ray.data.from_arrow(blocks).map_batches(
        NerWorker, fn_constructor_kwargs={"settings": settings}, batch_size=None,
        compute=ray.data.ActorPoolStrategy(size=size), num_cpus=1, batch_format="pyarrow")
    it = ds.iter_batches(batch_size=None, batch_format="pyarrow")
    try:
        yield from it
    finally:
        close = getattr(it, "close", None)
        if close:
            close()


def detect_and_embed(cfg: StephanieConfig, db: Database, refs: list[tuple[str, int]], summary: NerSummary,
                     run_id: int | None, signature: str, progress: bool = False) -> None:
    n = cfg.ner
    settings = worker_settings(cfg)
    bar = ProgressBar(len(refs), progress, "ner", "scorable", logger=log)
    block_size = 32  # scorables per Arrow block: the pool shares blocks out
    touched: set[int] = set()
    try:
        for part in chunks(refs, n.chunk_scorables):
            with db.session() as s:
                texts = resolve_texts(s, part)
            rows = [(t, i, texts.get((t, i), "")) for t, i in part]
            blocks = [inputs_to_arrow(b) for b in chunks(rows, block_size)]
            it = _iter_parallel(cfg, settings, blocks) if n.parallel else _iter_serial(settings, blocks)
            for table in it:
                results = table.to_pylist()
                with db.session() as s:
                    touched |= write_results(s, results, signature, run_id)
                for r in results:
                    import json

                    meta = json.loads(r["meta"] or "{}")
                    summary.scorables_indexed += 1
                    summary.mentions_new += len(r["mentions"] or [])
                    summary.scorables_empty += r["status"] == "empty"
                    summary.chunks_skipped_script += int(meta.get("chunks_skipped_script", 0))
                    summary.texts_truncated += bool(meta.get("truncated"))
                    summary.mentions_unembeddable += int(meta.get("unembeddable", 0))
                    summary.mentions_dropped += int(meta.get("dropped", 0))
                    if r["status"] == "failed":
                        summary.failed += 1
                        summary.failures.append({"scorable": f"{r['scorable_type']}:{r['scorable_id']}",
                                                 "error": r["error"]})
                bar.update(len(results))
    finally:
        bar.close()
    with db.session() as s:
        refresh_entities(s, touched)


def ner_dir(cfg: StephanieConfig) -> Path:
    return cfg.ner.resolved_dir(cfg.run)


def train_and_save(cfg: StephanieConfig, db: Database, *, user_types: list[dict[str, Any]] | None = None,
                   force: bool = False) -> tuple[Projection, bool, dict[str, Any]]:
    """Train the projection on the stored mentions (+ ``ner.train_file``); the same data and settings return
    the existing version unless ``force``. Returns (projection, trained now, data report)."""
    from .trainset import build_typeset

    n = cfg.ner
    spans = SpanSettings.from_config(n)
    embedder = SpanEmbedder.get(spans)
    with db.session() as s:
        data, report = build_typeset(s, embedder, spans.signature, max_per_type=n.max_per_type,
                                     min_per_type=n.min_per_type, skip_labels=n.skip_labels,
                                     train_file=n.train_file, user_types=user_types)
    settings = ProjectionSettings.from_config(n)
    store = ProjectionStore(ner_dir(cfg))
    if not force:
        existing = store.find(data.data_hash, settings)
        if existing is not None:
            return existing, False, report
    proj = train_projection(data, settings, spans.signature)
    return store.save(proj), True, report


def iter_index_rows(db: Database, signature: str, batch: int = 5000) -> Iterator[IndexRows]:
    """Every stored mention of this span model, in id order, a batch at a time (keyset pagination)."""
    import numpy as np

    last = -1
    while True:
        with db.session() as s:
            rows = s.execute(select(NerMention.id, NerMention.scorable_type, NerMention.scorable_id, NerMention.text,
                                    NerMention.label, NerMention.start, NerMention.end, NerMention.snippet,
                                    NerMention.snippet_start, NerMention.vector)
                             .where(NerMention.signature == signature, NerMention.id > last)
                             .order_by(NerMention.id).limit(batch)).all()
        if not rows:
            return
        last = rows[-1][0]
        cols = list(zip(*rows))
        raw = np.stack([np.frombuffer(v, dtype=np.float32) for v in cols[9]])
        yield IndexRows(list(cols[0]), list(cols[1]), list(cols[2]), list(cols[3]), list(cols[4]), list(cols[5]),
                        list(cols[6]), list(cols[7]), list(cols[8]), raw)


def build_from_store(cfg: StephanieConfig, db: Database, projection: Projection) -> BuildResult:
    signature = SpanSettings.from_config(cfg.ner).signature
    if projection.signature != signature:
        raise UserError(f"projection v{projection.version} reads {projection.signature!r}, the configured span model "
                        f"is {signature!r}: stephanie ner train-projection")
    return build_index(ner_dir(cfg), iter_index_rows(db, signature), projection, n_trees=cfg.ner.n_trees,
                       span_signature=signature)


def run_ner_index(cfg: StephanieConfig, db: Database, *, run_id: int | None = None, progress: bool = False,
                  reembed: bool = False) -> NerSummary:
    t0 = time.perf_counter()
    n = cfg.ner
    signature = SpanSettings.from_config(n).signature
    summary = NerSummary(parallel=n.parallel)
    with db.session() as s:
        due, done = _due(s, signature, reembed)
    summary.scorables_seen = len(due) + done
    summary.scorables_skipped_done = done
    log.info("NER: %d scorables to read (%d already indexed)", len(due), done)
    if due:
        detect_and_embed(cfg, db, due, summary, run_id, signature, progress)
    with db.session() as s:
        stored = s.execute(select(NerMention.id).where(NerMention.signature == signature).limit(1)).first()
    proj = ProjectionStore(ner_dir(cfg)).latest(signature)
    if stored is None and proj is None:
        log.info("NER: no mentions stored and no projection yet: nothing to index")
    else:
        if proj is None and not n.auto_train:
            summary.index_not_built = "no projection for the configured span model: stephanie ner train-projection"
        elif proj is None:
            try:
                proj, summary.projection_trained, _ = train_and_save(cfg, db)
            except UserError as exc:  # too few labelled types yet: the mentions are stored, the index waits
                summary.index_not_built = str(exc)
        if proj is not None:
            summary.projection_version = proj.version
            built = build_from_store(cfg, db, proj)
            summary.index_items, summary.index_duplicates = built.items, built.duplicates
            summary.index_seconds, summary.index_bytes, summary.index_path = built.seconds, built.bytes, str(built.path)
        else:
            log.warning("NER: index not built: %s", summary.index_not_built)
    with db.session() as s:
        summary.edges = rebuild_edges(s, n.graph_max_entities)
        from sqlalchemy import func

        from ..db.models import NerEntity

        summary.entities = int(s.scalar(select(func.count()).select_from(NerEntity)) or 0)
    summary.seconds = round(time.perf_counter() - t0, 3)
    summary.scorables_per_s = round(summary.scorables_indexed / summary.seconds, 2) if summary.seconds else 0.0
    return summary


def ner_stage(ctx: Any) -> NerSummary:
    """The pipeline stage (after scoring): index new scorables, rebuild the index and the graph."""
    summary = run_ner_index(ctx.config, ctx.db, run_id=ctx.run_id, progress=ctx.progress)
    ctx.results["ner"] = summary
    ctx.report["ner"] = "\n".join([
        "## Entities (NER retriever)", "",
        f"{summary.scorables_indexed} scorables read ({summary.scorables_skipped_done} already indexed), "
        f"{summary.mentions_new} mentions; index of {summary.index_items} mentions (projection "
        f"v{summary.projection_version}); {summary.entities} entities, {summary.edges} co-occurrence edges.",
        "Search: `stephanie ner search \"TYPE DESCRIPTION\"`; an entity's neighbourhood: "
        "`stephanie graph entity NAME`.", ""])
    return summary
