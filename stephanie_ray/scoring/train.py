"""``stephanie scorers train`` (and the pipeline's ``scorers`` stage): fit the learned scorers on the
person's verdicts (``labels.py``), validate on held-out conversations against a response-length
baseline, and record each as a new version (safetensors + JSON, ``learned.py``)."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import func, select, tuple_

from ..casebooks.scorables import resolve_texts
from ..config import StephanieConfig
from ..db import Database
from ..db.bulk import IN_CHUNK, chunks
from ..db.models import ScorableEmbedding, ScorerModel
from ..embedding import Embedder, from_bytes, resolve_model
from ..errors import UserError
from .labels import LabelSet, auc, load_labels, pairwise_accuracy, validation_conversations
from .learned import KINDS, TrainData, TrainSettings, features, fit, predict, save_artifact
from .registry import LEARNED_DIMENSIONS

log = logging.getLogger(__name__)


@dataclass
class TrainReport:
    """What one training run did (the ``scorers`` stage's typed result)."""

    trained: bool
    reason: str  # why not, or what it trained on
    labels: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] = field(default_factory=dict)  # response length as the score
    models: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    partial: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def counts(self) -> dict[str, Any]:
        return {"trained": self.trained, "reason": self.reason, "labels": self.labels, "baseline": self.baseline,
                "models": [{k: m[k] for k in ("name", "version", "validation")} for m in self.models]}


def _evaluate(scores: np.ndarray, data: TrainData, sel_points: np.ndarray, sel_pairs: np.ndarray) -> dict[str, Any]:
    """AUC on the selected point labels, pairwise accuracy on the selected pairs."""
    p = data.point_idx[sel_points]
    return {"auc": auc(scores[p], data.y[sel_points]), "points": int(sel_points.sum()),
            "pairwise_accuracy": pairwise_accuracy(scores[data.pair_win[sel_pairs]], scores[data.pair_lose[sel_pairs]]),
            "pairs": int(sel_pairs.sum())}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def train_scorers(cfg: StephanieConfig, db: Database, *, kinds: list[str] | None = None, epochs: int | None = None,
                  min_labels: int | None = None, only_if_changed: bool = False) -> TrainReport:
    kinds = list(kinds or KINDS)
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise UserError(f"unknown learned scorer {bad[0]!r} (learned scorers: {', '.join(KINDS)})")
    scfg = cfg.scoring
    need = scfg.train_min_labels if min_labels is None else min_labels
    hp = TrainSettings.from_config(scfg, epochs)
    t0 = time.perf_counter()
    _, emb_model = resolve_model(cfg.embedding.model)
    with db.session() as s:
        labels = load_labels(s)
    summary = {"points": len(labels.points), "accepted": sum(p.label == 1.0 for p in labels.points),
               "corrected": sum(p.label == 0.0 for p in labels.points), "pairs": len(labels.pairs),
               "excluded": labels.excluded, "min_labels": need}
    if labels.size < need:
        return TrainReport(False, f"too few labels to train: {labels.size} ({summary['accepted']} accepted, "
                                  f"{summary['corrected']} corrected answers, {summary['pairs']} kept-over-regenerated "
                                  f"pairs); need {need} (scoring.train_min_labels)", summary,
                           seconds=round(time.perf_counter() - t0, 3))
    version_key = f"{labels.data_version()}:{emb_model}"
    if only_if_changed:
        with db.session() as s:
            newest = {m.name: m for m in s.scalars(select(ScorerModel).order_by(ScorerModel.version))}
        if all(k in newest and (newest[k].metrics or {}).get("data_version") == version_key for k in kinds):
            return TrainReport(False, "labels unchanged since the last training: nothing to do", summary,
                               seconds=round(time.perf_counter() - t0, 3))
    data, lengths, val_points, val_pairs, n_conv = _arrays(cfg, db, labels, emb_model)
    summary.update({"conversations": n_conv, "validation_points": int(val_points.sum()),
                    "validation_pairs": int(val_pairs.sum())})
    # the response-length baseline: a longer answer scores higher
    baseline = {"validation": _evaluate(lengths, data, val_points, val_pairs)}
    train_data = TrainData(data.x, data.point_idx[~val_points], data.y[~val_points], data.w[~val_points],
                           data.pair_win[~val_pairs], data.pair_lose[~val_pairs])
    report = TrainReport(True, f"{labels.size} labels from {n_conv} conversations", summary,
                         {k: {m: _r(v) if isinstance(v, float) or v is None else v for m, v in d.items()}
                          for k, d in baseline.items()})
    models_dir = (cfg.run.runs_path / "models").resolve()
    for kind in kinds:
        model = fit(kind, train_data, hp)
        scores = predict(kind, model, data.x)["score"].astype(np.float64)
        metrics = {"validation": _evaluate(scores, data, val_points, val_pairs),
                   "train": _evaluate(scores, data, ~val_points, ~val_pairs), "data_version": version_key,
                   "baseline_validation": baseline["validation"]}
        with db.session() as s:
            version = (s.scalar(select(func.max(ScorerModel.version)).where(ScorerModel.name == kind)) or 0) + 1
            path = models_dir / kind / f"v{version}.safetensors"
            save_artifact(path, kind, model, {"version": version, "dims": list(LEARNED_DIMENSIONS),
                                              "in_dim": int(data.x.shape[1]), "hyper": asdict(hp),
                                              "emb_model": emb_model, "data_version": version_key,
                                              "metrics": metrics})
            s.add(ScorerModel(name=kind, version=version, path=str(path), dimensions=list(LEARNED_DIMENSIONS),
                              embedding_model=emb_model, examples=labels.size, source="reactions+choices",
                              metrics=metrics))
        report.models.append({"name": kind, "version": version, "path": str(path),
                              "validation": {m: _r(v) if isinstance(v, float) or v is None else v
                                             for m, v in metrics["validation"].items()},
                              "train": metrics["train"]})
        log.info("trained %s v%d on %d labels: validation %s", kind, version, labels.size, metrics["validation"])
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def _arrays(cfg: StephanieConfig, db: Database, labels: LabelSet, emb_model: str
            ) -> tuple[TrainData, np.ndarray, np.ndarray, np.ndarray, int]:
    """Features of every labelled answer (stored embeddings; the rest embedded now), its length, and the
    validation masks of points and pairs (by conversation)."""
    keys = labels.keys()
    vecs: dict[tuple[str, int], np.ndarray] = {}
    lengths: dict[tuple[str, int], int] = {}
    with db.session() as s:
        for part in chunks(keys, IN_CHUNK):
            for st, sid, vec in s.execute(select(ScorableEmbedding.scorable_type, ScorableEmbedding.scorable_id,
                                                 ScorableEmbedding.vector).where(
                    tuple_(ScorableEmbedding.scorable_type, ScorableEmbedding.scorable_id).in_(part),
                    ScorableEmbedding.model == emb_model)):
                vecs[(st, sid)] = from_bytes(vec)
            texts = resolve_texts(s, part)
            missing = [k for k in part if k not in vecs]
            todo = {k: texts.get(k) or "" for k in missing}
            lengths.update({k: len(texts.get(k) or "") for k in part})
            if todo:
                embedder = _embedder(cfg)
                for k, v in zip(todo, embedder.encode(list(todo.values()))):
                    vecs[k] = v
    prompts = sorted({labels.prompts.get(k, "") for k in keys})
    pvec = dict(zip(prompts, _embedder(cfg).encode(prompts)))
    index = {k: i for i, k in enumerate(keys)}
    g = np.stack([pvec[labels.prompts.get(k, "")] for k in keys])  # (n, d)
    a = np.stack([vecs[k] for k in keys])  # (n, d)
    conv_of = {p.key: p.conversation_id for p in labels.points}
    conv_of.update({k: p.conversation_id for p in labels.pairs for k in (p.winner, p.loser)})
    val = validation_conversations(conv_of.values(), cfg.scoring.train_validation_share, cfg.scoring.train_seed)
    data = TrainData(features(g, a), np.array([index[p.key] for p in labels.points], dtype=np.int64),
                     np.array([p.label for p in labels.points], dtype=np.float32),
                     np.array([p.weight for p in labels.points], dtype=np.float32),
                     np.array([index[p.winner] for p in labels.pairs], dtype=np.int64),
                     np.array([index[p.loser] for p in labels.pairs], dtype=np.int64))
    val_points = np.array([p.conversation_id in val for p in labels.points], dtype=bool)
    val_pairs = np.array([p.conversation_id in val for p in labels.pairs], dtype=bool)
    length = np.log1p(np.array([lengths.get(k, 0) for k in keys], dtype=np.float64))
    return data, length, val_points, val_pairs, len(set(conv_of.values()))


_EMBEDDERS: dict[str, Embedder] = {}


def _embedder(cfg: StephanieConfig) -> Embedder:
    key = repr(cfg.embedding)
    if key not in _EMBEDDERS:
        _EMBEDDERS.clear()
        _EMBEDDERS[key] = Embedder.from_config(cfg.embedding)
    return _EMBEDDERS[key]


def train_stage(ctx: Any) -> TrainReport:
    """The pipeline stage after ``score``: trains once enough labels exist and they changed; says why not."""
    cfg = ctx.config
    if not cfg.scoring.train_in_pipeline:
        return TrainReport(False, "scoring.train_in_pipeline is false")
    rep = train_scorers(cfg, ctx.db, only_if_changed=True)
    log.info("learned scorers: %s", rep.reason)
    ctx.results["scorers"] = rep
    return rep
