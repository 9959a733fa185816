"""``stephanie scorers train``: fit the learned scorers and record each as a new version."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select

from ..casebooks.scorables import resolve_texts
from ..config import StephanieConfig
from ..db import Database
from ..db.bulk import IN_CHUNK, chunks
from ..db.models import ScorableEmbedding, ScoreRow, ScorerModel, Turn
from ..embedding import Embedder, from_bytes, resolve_model
from ..errors import UserError
from .ensemble import ENSEMBLE, OVERALL
from .learned import KINDS, features, read_labels, train
from .stage import load_memberships, primary_memberships

log = logging.getLogger(__name__)
MIN_EXAMPLES = 8


def _targets(session: Any, labels: Path | None, dims: list[str]) -> dict[tuple[str, int], dict[str, float]]:
    out: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    if labels is None:
        q = select(ScoreRow.scorable_type, ScoreRow.scorable_id, ScoreRow.dimension, ScoreRow.value).where(
            ScoreRow.scorer == ENSEMBLE, ScoreRow.dimension != OVERALL, ScoreRow.dimension.in_(dims),
            ScoreRow.status == "ok")
        for st, sid, dim, v in session.execute(q):
            out[(st, sid)][dim] = float(v)
        return out
    rows = read_labels(labels)
    hashes = sorted({key for kind, key, _, _ in rows if kind == "turn_hash"})
    by_hash: dict[str, list[int]] = defaultdict(list)
    for part in chunks(hashes, IN_CHUNK):
        for tid, h in session.execute(select(Turn.id, Turn.turn_hash).where(Turn.turn_hash.in_(part))):
            by_hash[h].append(tid)
    unknown = 0
    for kind, key, dim, score in rows:
        if dim not in dims:
            continue
        if kind == "scorable":
            st, _, num = key.partition(":")
            if not num.isdigit():
                raise UserError(f"labels file {labels}: bad scorable {key!r}")
            out[(st, int(num))][dim] = score
        elif by_hash.get(key):
            for tid in by_hash[key]:
                out[("turn", tid)][dim] = score
        else:
            unknown += 1
    if unknown:
        log.warning("labels: %d turn hashes match no imported turn (skipped)", unknown)
    return out


def train_scorers(cfg: StephanieConfig, db: Database, *, kinds: list[str] | None = None, labels: str | None = None,
                  dimensions: list[str] | None = None, epochs: int = 200) -> dict[str, Any]:
    kinds = list(kinds or KINDS)
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise UserError(f"unknown learned scorer {bad[0]!r} (learned scorers: {', '.join(KINDS)})")
    dims = list(dimensions or cfg.scoring.dimensions)
    labels_path = Path(labels) if labels else None
    if labels_path is not None and not labels_path.is_file():
        raise UserError(f"labels file not found: {labels}")
    t0 = time.perf_counter()
    _, emb_model = resolve_model(cfg.embedding.model)
    with db.session() as s:
        targets = _targets(s, labels_path, dims)
        members = load_memberships(s)
        primary = primary_memberships(s, members)
        keys = sorted(k for k in targets if k in primary)
        vecs: dict[tuple[str, int], np.ndarray] = {}
        for part in chunks(keys, IN_CHUNK):
            for st, sid, vec in s.execute(select(ScorableEmbedding.scorable_type, ScorableEmbedding.scorable_id,
                                                 ScorableEmbedding.vector).where(
                    ScorableEmbedding.scorable_id.in_([i for _, i in part]), ScorableEmbedding.model == emb_model)):
                vecs[(st, sid)] = from_bytes(vec)
        missing = [k for k in keys if k not in vecs]
        texts = resolve_texts(s, missing) if missing else {}
    if len(keys) < MIN_EXAMPLES:
        raise UserError(f"not enough training examples: {len(keys)} scorables with targets (need {MIN_EXAMPLES}); "
                        "run 'stephanie score' first or pass --labels FILE")
    embedder = Embedder.from_config(cfg.embedding)
    if missing:
        todo = [k for k in missing if texts.get(k)]
        for k, v in zip(todo, embedder.encode([texts[k] for k in todo])):
            vecs[k] = v
        keys = [k for k in keys if k in vecs]
    prompts = sorted({primary[k].goal or primary[k].prompt for k in keys})
    pvec = dict(zip(prompts, embedder.encode(prompts)))
    g = np.stack([pvec[primary[k].goal or primary[k].prompt] for k in keys])  # (n, d)
    a = np.stack([vecs[k] for k in keys])  # (n, d)
    x = features(g, a)
    y = np.zeros((len(keys), len(dims)), dtype=np.float32)
    mask = np.zeros_like(y, dtype=bool)
    for i, k in enumerate(keys):
        for j, d in enumerate(dims):
            if d in targets[k]:
                y[i, j], mask[i, j] = targets[k][d], True
    import torch

    out: dict[str, Any] = {"examples": len(keys), "dimensions": dims, "source": str(labels_path or "scores"),
                           "models": []}
    models_dir = (cfg.run.runs_path / "models").resolve()
    for kind in kinds:
        res = train(kind, x, y, mask, dims, [f"{k[0]}:{k[1]}" for k in keys], epochs=epochs)
        with db.session() as s:
            version = (s.scalar(select(func.max(ScorerModel.version)).where(ScorerModel.name == kind)) or 0) + 1
            path = models_dir / kind / f"v{version}.pt"
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({**res.state, "emb_model": emb_model, "version": version}, path)
            s.add(ScorerModel(name=kind, version=version, path=str(path), dimensions=dims, embedding_model=emb_model,
                              examples=len(keys), source=out["source"], metrics=res.metrics))
        out["models"].append({"name": kind, "version": version, "path": str(path), "metrics": res.metrics})
        log.info("trained %s v%d on %d examples", kind, version, len(keys))
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out
