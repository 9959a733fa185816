"""The projection network, its contrastive (triplet) training, and its versioned storage.

Network (the paper's, sized by config): standardise the raw span vector (mean and scale of the training
mentions, stored with the weights) -> Linear(in, hidden) -> SiLU -> Dropout -> Linear(hidden, out). Its
outputs are compared by cosine similarity; the index holds them L2-normalised.

Training (pure torch, CPU-sized): anchors are **type descriptions** ("organization", "Python web
framework") embedded like a query (the description as one span), positives are **mentions of that type**,
negatives are **mentions of other types**. Per batch of positives, each (anchor, positive) pair meets the
``hard_negatives`` other-type mentions that the current network puts closest to its anchor (online hard
negative mining over the batch plus a random pool of the whole set), with the triplet loss on cosine
distance ``d = 1 - cos``::

    L = mean over (a, p, n) of max(0, d(a, p) - d(a, n) + margin)

A held-out share of each type's mentions measures R-precision (each type's descriptions as queries) before
and after training; both are stored with the version.

Storage: ``<ner dir>/projections/v<N>/model.safetensors`` (weights, mean, scale) + ``projection.json``
(format, dimensions, the span signature it reads, the types and their descriptions, the training data's
hash, metrics). A training run on the same data and settings returns the existing version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass
class TypeSet:
    """Training data: per type its descriptions' raw vectors (anchors) and its mentions' raw vectors."""

    names: list[str]  # type keys: detector labels, or "user:<description>"
    descriptions: list[list[str]]
    anchors: np.ndarray  # (n_desc, in_dim)
    anchor_type: np.ndarray  # (n_desc,) index into names
    mentions: np.ndarray  # (n_mentions, in_dim)
    mention_type: np.ndarray  # (n_mentions,)
    data_hash: str = ""

    def counts(self) -> dict[str, int]:
        return {n: int((self.mention_type == i).sum()) for i, n in enumerate(self.names)}


@dataclass(frozen=True)
class ProjectionSettings:
    hidden: int = 500
    out_dim: int = 500
    dropout: float = 0.1
    margin: float = 0.3
    epochs: int = 15
    lr: float = 1e-3
    hard_negatives: int = 8
    batch_size: int = 128
    pool_size: int = 512
    val_share: float = 0.15
    seed: int = 0

    @classmethod
    def from_config(cls, ncfg: Any) -> ProjectionSettings:
        return cls(ncfg.projection_hidden, ncfg.projection_dim, ncfg.dropout, ncfg.margin, ncfg.epochs, ncfg.lr,
                   ncfg.hard_negatives, seed=ncfg.seed)


def _net(in_dim: int, hidden: int, out_dim: int, dropout: float) -> Any:
    import torch

    return torch.nn.Sequential(torch.nn.Linear(in_dim, hidden), torch.nn.SiLU(), torch.nn.Dropout(dropout),
                               torch.nn.Linear(hidden, out_dim))


@dataclass
class Projection:
    """A trained (or loaded) projection: raw span vectors -> unit vectors of ``out_dim``."""

    net: Any
    mean: np.ndarray
    scale: np.ndarray
    signature: str
    meta: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    path: Path | None = None

    @property
    def in_dim(self) -> int:
        return int(self.mean.shape[0])

    @property
    def out_dim(self) -> int:
        return int(self.net[-1].out_features)

    def project(self, raw: np.ndarray, batch: int = 8192) -> np.ndarray:
        """(n, in_dim) -> (n, out_dim) float32 unit vectors (rows that are not finite stay NaN)."""
        import torch

        raw = np.asarray(raw, dtype=np.float32).reshape(-1, self.in_dim)
        out = np.empty((raw.shape[0], self.out_dim), dtype=np.float32)
        self.net.eval()
        with torch.inference_mode():
            for s in range(0, raw.shape[0], batch):
                x = torch.from_numpy((raw[s: s + batch] - self.mean) / self.scale)
                y = torch.nn.functional.normalize(self.net(x), dim=1)  # (b, out_dim)
                out[s: s + batch] = y.numpy()
        return out

    def save(self, path: Path) -> None:
        import torch
        from safetensors.torch import save_file

        path.mkdir(parents=True, exist_ok=True)
        tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        tensors["mean"] = torch.from_numpy(self.mean.astype(np.float32))
        tensors["scale"] = torch.from_numpy(self.scale.astype(np.float32))
        save_file(tensors, str(path / "model.safetensors"))
        (path / "projection.json").write_text(json.dumps(self.meta, indent=2, ensure_ascii=False) + "\n",
                                              encoding="utf-8")
        self.path = path

    @classmethod
    def load(cls, path: Path) -> Projection:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            meta = json.loads((path / "projection.json").read_text(encoding="utf-8"))
            tensors = load_file(str(path / "model.safetensors"))
        except (OSError, ValueError, SafetensorError) as exc:
            raise UserError(f"cannot read the projection at {path}: {exc} (retrain: stephanie ner train-projection)") \
                from None
        if meta.get("format_version") != FORMAT_VERSION:
            raise UserError(f"projection at {path} has format {meta.get('format_version')!r}, this code reads "
                            f"{FORMAT_VERSION} (retrain: stephanie ner train-projection)")
        net = _net(meta["in_dim"], meta["hidden"], meta["out_dim"], meta["dropout"])
        net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        net.eval()
        return cls(net, tensors["mean"].numpy(), tensors["scale"].numpy(), meta["signature"], meta,
                   int(meta["version"]), path)


# ----------------------------------------------------------------------------- training (pure torch)


def _split(types: np.ndarray, share: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per type, a held-out share of its mentions (at least one when it has three or more)."""
    train, val = [], []
    for t in np.unique(types):
        idx = np.flatnonzero(types == t)
        rng.shuffle(idx)
        k = int(round(len(idx) * share)) if len(idx) >= 3 else 0
        k = max(k, 1) if len(idx) >= 3 else 0
        val.extend(idx[:k])
        train.extend(idx[k:])
    return np.asarray(sorted(train), dtype=np.int64), np.asarray(sorted(val), dtype=np.int64)


def r_precision(queries: np.ndarray, query_type: np.ndarray, items: np.ndarray, item_type: np.ndarray) -> float:
    """Mean over types of R-precision: each type's query vectors averaged (unit), items ranked by cosine; the
    share of the top R (R = the type's items) that are of the type."""
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True).clip(1e-12)
    itn = items / np.linalg.norm(items, axis=1, keepdims=True).clip(1e-12)
    scores = []
    for t in np.unique(item_type):
        r = int((item_type == t).sum())
        q = qn[query_type == t]
        if not r or not len(q):
            continue
        sims = itn @ q.mean(axis=0)
        top = np.argsort(-sims, kind="stable")[:r]
        scores.append(float((item_type[top] == t).mean()))
    return float(np.mean(scores)) if scores else math.nan


def train_projection(data: TypeSet, settings: ProjectionSettings, signature: str) -> Projection:
    """Train on ``data`` (see the module docstring); returns an unsaved :class:`Projection` whose ``meta``
    has the metrics."""
    import torch

    if len(data.names) < 2:
        raise UserError(f"the projection needs mentions of at least two types to tell apart; found "
                        f"{data.counts() or 'none'} (index more chats, or add ner.train_file)")
    # a 500-wide MLP on batches of 128 runs faster on one thread than on cores shared with other work
    # (measured: 30x on a loaded 2-core machine); restored afterwards
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(data, settings, signature)
    finally:
        torch.set_num_threads(threads)


def _train(data: TypeSet, settings: ProjectionSettings, signature: str) -> Projection:
    import torch

    t0 = time.perf_counter()
    rng = np.random.default_rng(settings.seed)
    torch.manual_seed(settings.seed)
    tr, va = _split(data.mention_type, settings.val_share, rng)
    x_all = np.concatenate([data.anchors, data.mentions[tr]]).astype(np.float32)
    mean = x_all.mean(axis=0)
    scale = x_all.std(axis=0) + 1e-6
    std = lambda a: torch.from_numpy(((a - mean) / scale).astype(np.float32))  # noqa: E731
    anchors, a_type = std(data.anchors), torch.from_numpy(data.anchor_type.astype(np.int64))
    ments, m_type = std(data.mentions[tr]), torch.from_numpy(data.mention_type[tr].astype(np.int64))
    in_dim = data.mentions.shape[1]
    net = _net(in_dim, settings.hidden, settings.out_dim, settings.dropout)
    opt = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=1e-4)
    by_type = [torch.nonzero(a_type == t).flatten() for t in range(len(data.names))]
    n = ments.shape[0]
    losses = []
    for epoch in range(settings.epochs):
        net.train()
        order = torch.randperm(n)
        total, steps = 0.0, 0
        for s in range(0, n, settings.batch_size):
            pos_idx = order[s: s + settings.batch_size]
            pt = m_type[pos_idx]  # (b,)
            # an anchor per positive: one of its type's descriptions, at random
            a_idx = torch.stack([by_type[int(t)][torch.randint(len(by_type[int(t)]), (1,))][0] for t in pt])
            pool_idx = torch.cat([pos_idx, torch.randint(n, (min(settings.pool_size, n),))])
            za = torch.nn.functional.normalize(net(anchors[a_idx]), dim=1)  # (b, out)
            zp = torch.nn.functional.normalize(net(ments[pos_idx]), dim=1)  # (b, out)
            zn = torch.nn.functional.normalize(net(ments[pool_idx]), dim=1)  # (pool, out)
            d_ap = 1 - (za * zp).sum(dim=1)  # (b,)
            sim_an = za @ zn.T  # (b, pool)
            same = pt[:, None] == m_type[pool_idx][None, :]  # (b, pool): not negatives
            sim_an = sim_an.masked_fill(same, -float("inf"))
            k = min(settings.hard_negatives, int((~same).sum(dim=1).min()))
            if k <= 0:
                continue
            hard = sim_an.topk(k, dim=1).values  # (b, k): the negatives closest to each anchor
            loss = torch.relu(d_ap[:, None] - (1 - hard) + settings.margin).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())
            steps += 1
        losses.append(total / max(steps, 1))
    proj = Projection(net.eval(), mean, scale, signature)
    metrics: dict[str, Any] = {"epochs": settings.epochs, "loss_first": round(losses[0], 5) if losses else None,
                               "loss_last": round(losses[-1], 5) if losses else None, "train_mentions": int(len(tr)),
                               "val_mentions": int(len(va)), "seconds": round(time.perf_counter() - t0, 2)}
    if len(va):
        vt = data.mention_type[va]
        metrics["val_r_precision_raw"] = round(r_precision(data.anchors, data.anchor_type, data.mentions[va], vt), 4)
        metrics["val_r_precision"] = round(r_precision(proj.project(data.anchors), data.anchor_type,
                                                       proj.project(data.mentions[va]), vt), 4)
    proj.meta = {
        "format_version": FORMAT_VERSION, "in_dim": in_dim, "hidden": settings.hidden, "out_dim": settings.out_dim,
        "dropout": settings.dropout, "signature": signature, "data_hash": data.data_hash,
        "settings": settings.__dict__, "types": {n: {"descriptions": d, "mentions": c} for n, d, c in
                                                 zip(data.names, data.descriptions, data.counts().values())},
        "metrics": metrics,
    }
    log.info("projection trained on %d mentions of %d types in %.1f s: val R-precision %s -> %s", len(tr),
             len(data.names), metrics["seconds"], metrics.get("val_r_precision_raw"), metrics.get("val_r_precision"))
    return proj


def settings_hash(settings: ProjectionSettings) -> str:
    return hashlib.sha256(json.dumps(settings.__dict__, sort_keys=True).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- versions


class ProjectionStore:
    """Versions under ``<root>/projections/v<N>/``; the newest compatible one is the one in use."""

    def __init__(self, root: Path):
        self.dir = Path(root) / "projections"

    def versions(self) -> list[tuple[int, Path]]:
        if not self.dir.is_dir():
            return []
        out = []
        for p in self.dir.iterdir():
            if p.is_dir() and p.name.startswith("v") and p.name[1:].isdigit() and (p / "projection.json").is_file():
                out.append((int(p.name[1:]), p))
        return sorted(out)

    def meta(self, path: Path) -> dict[str, Any]:
        try:
            return json.loads((path / "projection.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def latest(self, signature: str) -> Projection | None:
        """The newest version trained on vectors of ``signature`` (None when there is none)."""
        for _v, path in reversed(self.versions()):
            if self.meta(path).get("signature") == signature:
                return Projection.load(path)
        return None

    def get(self, version: int) -> Projection:
        for v, path in self.versions():
            if v == version:
                return Projection.load(path)
        raise UserError(f"no projection version {version} under {self.dir}")

    def find(self, data_hash: str, settings: ProjectionSettings) -> Projection | None:
        for _v, path in reversed(self.versions()):
            m = self.meta(path)
            if m.get("data_hash") == data_hash and m.get("settings") == settings.__dict__:
                return Projection.load(path)
        return None

    def save(self, proj: Projection) -> Projection:
        version = (self.versions()[-1][0] + 1) if self.versions() else 1
        proj.version = version
        proj.meta = {**proj.meta, "version": version, "created_at": datetime.now(timezone.utc).isoformat()}
        tmp = self.dir / f".tmp-v{version}"
        proj.save(tmp)
        final = self.dir / f"v{version}"
        tmp.rename(final)
        proj.path = final
        return proj
