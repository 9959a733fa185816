"""``retrieve_entities(query, k, min_similarity, domain)``: type descriptions in, entity mentions out.

The query ("law firm", "sorting algorithm", "Python web framework") goes through the span model as one
whole span and through the projection; Annoy returns the nearest mentions; similarities are cosines in
the projected space, then calibrated for the query's domain (given, or detected from the query).

:class:`NerRetriever` loads the projection, the index (memory-mapped) and the calibrators once; it is a
plain class (a Ray Serve deployment would hold one and call ``search`` from ``__call__``).
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..config import StephanieConfig
from ..errors import UserError
from .calibration import CalibrationSet
from .index import EntityIndex, resolve_search_k
from .projection import ProjectionStore
from .spans import SpanEmbedder, SpanSettings

log = logging.getLogger(__name__)

MAX_K = 10_000


@dataclass
class EntityResult:
    id: int  # the mention id (what relevance judgments name)
    scorable_id: int
    scorable_type: str
    entity_text: str
    entity_type: str
    start: int
    end: int
    similarity: float
    calibrated_similarity: float
    source_text: str  # the mention with its context (the snippet)
    domain: str | None = None
    calibrated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class NerRetriever:
    def __init__(self, cfg: StephanieConfig):
        from .stage import ner_dir

        n = cfg.ner
        self.cfg = cfg
        self.root = ner_dir(cfg)
        self.spans = SpanSettings.from_config(n)
        sig = self.spans.signature
        self.projection = ProjectionStore(self.root).latest(sig)
        if self.projection is None:
            raise UserError(f"no projection for span model {sig!r} under {self.root}: build the index with "
                            "stephanie ner index")
        self.index = EntityIndex.load(self.root, projection_version=self.projection.version,
                                      projection_signature=sig, span_signature=sig)
        self.embedder = SpanEmbedder.get(self.spans)
        self.calibration = CalibrationSet.load(self.root, self.projection.version)
        self._row_of: dict[int, int] | None = None

    def query_vectors(self, queries: list[str]) -> np.ndarray:
        """(n, dim) unit vectors of type descriptions."""
        v = self.projection.project(self.embedder.embed_queries(queries))
        if not np.isfinite(v).all():
            raise UserError("a query embeds to nothing")
        return v

    def search(self, query: str, k: int = 10, min_similarity: float | None = None,
               domain: str | None = None) -> list[EntityResult]:
        if not isinstance(query, str):
            raise UserError("the query must be a string")
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
            raise UserError(f"k must be an integer in 1..{MAX_K}, got {k!r}")
        if min_similarity is not None and (not isinstance(min_similarity, (int, float)) or math.isnan(min_similarity)
                                           or not -1.0 <= min_similarity <= 1.0):
            raise UserError(f"min_similarity must be in [-1, 1], got {min_similarity!r}")
        qv = self.query_vectors([query])[0]
        if domain is None:
            domain = self.calibration.detect(qv, self.cfg.ner.domain_threshold)
        hits = self.index.search(qv, k, resolve_search_k(self.cfg.ner.search_k, k, self.index.info["n_trees"]))
        if min_similarity is not None:
            hits = [h for h in hits if h.similarity >= min_similarity]
        cal, applied, why = self.calibration.apply(domain, np.asarray([h.similarity for h in hits]))
        if why and domain is not None:
            log.info("similarities not calibrated: %s", why)
        out = []
        for h, c in zip(hits, cal):
            r = self.index.row(h.row)
            out.append(EntityResult(r["mention_id"], r["scorable_id"], r["scorable_type"], r["entity_text"],
                                    r["entity_type"], r["start"], r["end"], round(h.similarity, 6), round(float(c), 6),
                                    r["snippet"], domain, applied))
        return out

    def similarities(self, query: str, mention_ids: list[int]) -> list[float | None]:
        """Exact cosines between a query and indexed mentions (None: the id is not in the index)."""
        if self._row_of is None:
            self._row_of = {m: i for i, m in enumerate(self.index.meta.column("mention_id").to_pylist())}
        qv = self.query_vectors([query])[0]
        out: list[float | None] = []
        for m in mention_ids:
            i = self._row_of.get(m)
            out.append(None if i is None else float(np.dot(qv, self.index.vector(i))))
        return out


_cache: dict[int, NerRetriever] = {}
_lock = threading.Lock()


def get_retriever(cfg: StephanieConfig) -> NerRetriever:
    with _lock:
        key = id(cfg)
        if key not in _cache:
            _cache[key] = NerRetriever(cfg)
        return _cache[key]


def retrieve_entities(query: str, k: int = 10, min_similarity: float | None = None, domain: str | None = None, *,
                      cfg: StephanieConfig | None = None) -> list[dict[str, Any]]:
    """The retrieval API on plain data: a list of dicts with scorable_id, scorable_type, entity_text,
    entity_type, start, end, similarity, calibrated_similarity, source_text (and id, domain, calibrated)."""
    if cfg is None:
        from ..config import load_config

        cfg = load_config()
    return [r.to_dict() for r in get_retriever(cfg).search(query, k, min_similarity, domain)]


def calibrate_domain(cfg: StephanieConfig, judgments_path: str, domain: str) -> dict[str, Any]:
    """``stephanie ner calibrate``: fit, report, save the domain's calibrator."""
    from .calibration import _slug, fit_domain, read_judgments, save_domain

    _slug(domain)
    judgments = read_judgments(judgments_path)
    r = NerRetriever(cfg)
    by_query: dict[str, list[int]] = {}
    for j in judgments:
        by_query.setdefault(j.query, []).append(j.result)
    sims_of = {q: dict(zip(ids, r.similarities(q, ids))) for q, ids in by_query.items()}
    sims, labels, queries, missing = [], [], [], 0
    for j in judgments:
        s = sims_of[j.query][j.result]
        if s is None:
            missing += 1
            continue
        sims.append(s)
        labels.append(j.relevant)
        queries.append(j.query)
    cal, report = fit_domain(np.asarray(sims), np.asarray(labels, dtype=np.float64), queries,
                             method=cfg.ner.calibrator, holdout_share=cfg.ner.holdout_share,
                             min_judgments=cfg.ner.min_judgments)
    centroid = r.query_vectors(sorted(by_query)).mean(axis=0)
    report["results_not_in_index"] = missing
    path = save_domain(r.root, domain, cal, centroid, r.projection.version, report)
    with _lock:
        _cache.clear()
    return {"domain": domain, "path": str(path), "projection_version": r.projection.version, **report}
