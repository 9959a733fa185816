"""Learned scorers on sentence embeddings: a SICQL-style critic, an MLP regressor (MRQ), a linear SVM.

All three read the same features — the goal embedding g and the answer embedding a —
as ``[g, a, g * a]`` (3 x 384 for MiniLM), and predict one value in [0, 1] per dimension.

* **MRQ**: a two-layer MLP regressor, MSE on sigmoid outputs.
* **SVM**: a linear support vector regressor per dimension: epsilon-insensitive loss + L2 penalty,
  trained by full-batch gradient descent (the primal form; no kernel).
* **SICQL**: a critic with a shared trunk and three heads, in the spirit of implicit Q-learning:
  Q(g, a) regresses the target score; V(g) — from the goal alone — is fitted to Q by expectile
  regression (tau = 0.7: an optimistic value of the goal's answers); the policy head pi(g, a) is a
  logit trained by advantage-weighted regression (weights exp(beta * (Q - V)), clipped) toward
  "this answer is good" (target >= 0.5). The score is Q; the rationale reports V and the advantage.

Training data: stored ensemble scores (the default) or a labels file. Artifacts are versioned files
recorded in ``scorer_models``; the newest version of each joins the ensemble.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .base import Item, Score

log = logging.getLogger(__name__)

KINDS = ("sicql", "mrq", "svm")


def features(g: np.ndarray, a: np.ndarray) -> np.ndarray:
    """(n, d) goal and answer embeddings -> (n, 3d) features."""
    return np.concatenate([g, a, g * a], axis=1).astype(np.float32)


def _models():
    import torch
    from torch import nn

    class MRQ(nn.Module):
        def __init__(self, in_dim: int, n_out: int, hidden: int = 256):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(0.1),
                                     nn.Linear(hidden, hidden // 2), nn.GELU(), nn.Linear(hidden // 2, n_out))

        def forward(self, x):  # (batch, in_dim) -> (batch, n_out) in [0, 1]
            return torch.sigmoid(self.net(x))

    class SVM(nn.Module):
        def __init__(self, in_dim: int, n_out: int):
            super().__init__()
            self.lin = nn.Linear(in_dim, n_out)

        def forward(self, x):  # raw linear outputs, clipped to [0, 1] when scoring
            return self.lin(x)

    class SICQL(nn.Module):
        def __init__(self, emb_dim: int, n_out: int, hidden: int = 256):
            super().__init__()
            self.emb_dim = emb_dim
            self.trunk = nn.Sequential(nn.Linear(3 * emb_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU())
            self.q = nn.Linear(hidden, n_out)
            self.pi = nn.Linear(hidden, n_out)
            self.v = nn.Sequential(nn.Linear(emb_dim, hidden // 2), nn.GELU(), nn.Linear(hidden // 2, n_out))

        def forward(self, x):  # x: (batch, 3 * emb_dim) -> q, v, pi logits, each (batch, n_out)
            h = self.trunk(x)
            g = x[:, : self.emb_dim]
            return torch.sigmoid(self.q(h)), torch.sigmoid(self.v(g)), self.pi(h)

    return {"mrq": MRQ, "svm": SVM, "sicql": SICQL}


@dataclass
class TrainResult:
    kind: str
    dims: list[str]
    metrics: dict[str, Any]
    state: dict[str, Any]


def _split(keys: Sequence[str], val_share: float = 0.2) -> np.ndarray:
    """Deterministic train/validation split by key hash: True = validation."""
    return np.array([int(hashlib.sha256(k.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < val_share for k in keys])


def _spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    from .mars import spearman

    return spearman(a, b)


def train(kind: str, x: np.ndarray, y: np.ndarray, mask: np.ndarray, dims: list[str], keys: Sequence[str], *,
          epochs: int = 200, lr: float = 1e-3, seed: int = 0) -> TrainResult:
    """``x``: (n, 3d) features; ``y``: (n, dims) targets in [0, 1]; ``mask``: (n, dims) which targets exist."""
    import torch

    if kind not in KINDS:
        raise ValueError(f"unknown learned scorer {kind!r}")
    torch.manual_seed(seed)
    n, in_dim = x.shape
    val = _split(keys) if n >= 10 else np.zeros(n, dtype=bool)
    tr = ~val
    X = torch.from_numpy(x)
    Y = torch.from_numpy(y.astype(np.float32))
    M = torch.from_numpy(mask.astype(np.float32))
    models = _models()
    emb_dim = in_dim // 3
    model = models["sicql"](emb_dim, len(dims)) if kind == "sicql" else models[kind](in_dim, len(dims))
    opt = torch.optim.AdamW(model.parameters(), lr=lr if kind != "svm" else 1e-2,
                            weight_decay=1e-4 if kind != "svm" else 0.0)
    Xt, Yt, Mt = X[tr], Y[tr], M[tr]
    losses = []
    for _ in range(epochs):
        model.train()
        opt.zero_grad()
        if kind == "mrq":
            pred = model(Xt)
            loss = (((pred - Yt) ** 2) * Mt).sum() / Mt.sum().clamp(min=1)
        elif kind == "svm":
            pred = model(Xt)
            eps, c = 0.05, 1.0  # epsilon tube; C weighs the data term against the L2 penalty
            hinge = torch.clamp((pred - Yt).abs() - eps, min=0)
            loss = c * (hinge * Mt).sum() / Mt.sum().clamp(min=1) + 1e-3 * (model.lin.weight ** 2).sum()
        else:
            q, v, pi = model(Xt)
            q_loss = (((q - Yt) ** 2) * Mt).sum() / Mt.sum().clamp(min=1)
            diff = q.detach() - v  # expectile regression of V toward Q
            tau = 0.7
            w = torch.where(diff > 0, torch.full_like(diff, tau), torch.full_like(diff, 1 - tau))
            v_loss = (w * diff ** 2 * Mt).sum() / Mt.sum().clamp(min=1)
            adv = (q.detach() - v.detach())
            awr = torch.clamp(torch.exp(3.0 * adv), max=20.0)  # advantage-weighted regression weights
            good = (Yt >= 0.5).float()
            pi_loss = (awr * torch.nn.functional.binary_cross_entropy_with_logits(pi, good, reduction="none")
                       * Mt).sum() / Mt.sum().clamp(min=1)
            loss = q_loss + v_loss + 0.1 * pi_loss
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    with torch.no_grad():
        out = model(X)
        pred = (out[0] if kind == "sicql" else out).clamp(0, 1).numpy()
    metrics: dict[str, Any] = {"examples": int(n), "train": int(tr.sum()), "validation": int(val.sum()),
                               "final_loss": losses[-1] if losses else None, "dimensions": {}}
    for j, d in enumerate(dims):
        for split_name, sel in (("train", tr), ("validation", val)):
            m = sel & mask[:, j]
            if m.sum() == 0:
                continue
            mae = float(np.abs(pred[m, j] - y[m, j]).mean())
            rho = _spearman(pred[m, j], y[m, j]) if m.sum() >= 3 else None
            metrics["dimensions"].setdefault(d, {})[split_name] = {"mae": mae, "spearman": rho, "n": int(m.sum())}
    state = {"kind": kind, "dims": dims, "in_dim": in_dim, "state_dict": model.state_dict()}
    return TrainResult(kind, dims, metrics, state)


class LearnedScorer:
    """A trained model as a scorer (loaded once per worker)."""

    needs_embeddings = True

    def __init__(self, kind: str, path: str, version: int):
        import torch

        blob = torch.load(path, map_location="cpu", weights_only=False)
        if blob.get("kind") != kind:
            raise ValueError(f"{path} holds a {blob.get('kind')!r} model, not {kind!r}")
        models = _models()
        in_dim = blob["in_dim"]
        self.model = models["sicql"](in_dim // 3, len(blob["dims"])) if kind == "sicql" else \
            models[kind](in_dim, len(blob["dims"]))
        self.model.load_state_dict(blob["state_dict"])
        self.model.eval()
        self.kind, self.name, self.version = kind, kind, str(version)
        self.dimensions = tuple(blob["dims"])

    def score(self, items: Sequence[Item], dimensions: Sequence[str]) -> list[dict[str, Score]]:
        import torch

        g = np.stack([it.emb_goal if it.emb_goal is not None else np.zeros_like(it.emb_text) for it in items])
        a = np.stack([it.emb_text for it in items])
        with torch.no_grad():
            out = self.model(torch.from_numpy(features(g, a)))
        if self.kind == "sicql":
            q, v, pi = (t.numpy() for t in out)
        else:
            q, v, pi = out.clamp(0, 1).numpy(), None, None
        res = []
        for i in range(len(items)):
            row = {}
            for j, d in enumerate(self.dimensions):
                if d not in dimensions:
                    continue
                if self.kind == "sicql":
                    why = (f"Q {q[i, j]:.2f}, V(goal) {v[i, j]:.2f}, advantage {q[i, j] - v[i, j]:+.2f}, "
                           f"policy p(good) {1 / (1 + math.exp(-float(pi[i, j]))):.2f}")
                else:
                    why = f"{self.kind} v{self.version} prediction from the goal and answer embeddings"
                row[d] = Score(float(q[i, j]), why)
            res.append(row)
        return res


def load_learned(kind: str, info: dict[str, Any]) -> LearnedScorer:
    return LearnedScorer(kind, info["path"], int(info["version"]))


def read_labels(path: Path) -> list[tuple[str, str, str, float]]:
    """A labels file: JSONL of {"scorable": "turn:123"} or {"turn_hash": "..."}, "dimension", "score" in [0, 1].

    Returns (key kind, key, dimension, score); any bad line is an error naming the file and line.
    """
    from ..config import SCORING_DIMENSIONS
    from ..errors import UserError

    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read labels file {path}: {exc}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise UserError(f"{where}: expected an object")
        dim, score = obj.get("dimension"), obj.get("score")
        if dim not in SCORING_DIMENSIONS:
            raise UserError(f"{where}: field 'dimension' must be one of {', '.join(SCORING_DIMENSIONS)}, got {dim!r}")
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0.0 <= score <= 1.0:
            raise UserError(f"{where}: field 'score' must be a number in [0, 1], got {score!r}")
        if isinstance(obj.get("scorable"), str) and ":" in obj["scorable"]:
            out.append(("scorable", obj["scorable"], dim, float(score)))
        elif isinstance(obj.get("turn_hash"), str) and obj["turn_hash"]:
            out.append(("turn_hash", obj["turn_hash"], dim, float(score)))
        else:
            raise UserError(f"{where}: needs 'scorable' (TYPE:ID) or 'turn_hash'")
    if not out:
        raise UserError(f"labels file {path} has no labels")
    return out
