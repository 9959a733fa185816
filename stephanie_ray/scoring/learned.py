"""Learned scorers: training on the person's verdicts, safetensors artifacts, the scorer that loads them.

Training data (``labels.py``): point labels (accepted 1 / corrected 0, weighted by the reaction
classifier's confidence) and pairs (the answer kept over a regeneration it replaced). Each model
(``learned_nets.py``) gives a utility u per (request, answer); the loss is

    L = weighted BCE(sigmoid(u), label)  +  pair_weight * mean(-log sigmoid(u_kept - u_replaced))

plus, per kind: SICQL — expectile regression of V(request) towards Q (tau) and advantage-weighted
regression of the policy head (weights exp(beta (Q - V)) clipped); SVM — epsilon-insensitive hinge on
its raw output and a pairwise hinge with margin epsilon, L2 penalty, C; EBT — an optional penalty on
the energy's gradient norm. Hyperparameters come from ``scoring.*`` in config.py (the only defaults).

Artifacts: ``<name>/v<N>.safetensors`` (tensors) + ``v<N>.json`` (kind, shapes, hyperparameters,
embedding model, data version, metrics). Loading reads tensors only — nothing in a file is ever
executed; an old pickled ``.pt`` artifact is refused with how to retrain.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .base import Item, Score

KINDS = ("sicql", "mrq", "svm", "hrm", "ebt")
FORMAT = "stephanie-learned-scorer/2"


def features(g: np.ndarray, a: np.ndarray) -> np.ndarray:
    """(n, d) request and answer embeddings -> (n, 3d) features."""
    return np.concatenate([g, a, g * a], axis=1).astype(np.float32)


@dataclass(frozen=True)
class TrainSettings:
    """Hyperparameters, from config (``TrainSettings.from_config``): no defaults here."""

    epochs: int
    lr: float
    hidden: int
    pair_weight: float
    seed: int
    sicql_tau: float
    sicql_beta: float
    sicql_max_weight: float
    svm_epsilon: float
    svm_c: float
    hrm_cycles: int
    hrm_low_steps: int
    ebt_grad_weight: float

    @classmethod
    def from_config(cls, scfg: Any, epochs: int | None = None) -> "TrainSettings":
        return cls(epochs or scfg.train_epochs, scfg.train_lr, scfg.train_hidden, scfg.train_pair_weight,
                   scfg.train_seed, scfg.sicql_tau, scfg.sicql_beta, scfg.sicql_max_weight, scfg.svm_epsilon,
                   scfg.svm_c, scfg.hrm_cycles, scfg.hrm_low_steps, scfg.ebt_grad_weight)


@dataclass
class TrainData:
    """Features and labels as arrays: points (x, y, w) and pairs (indices into x)."""

    x: np.ndarray  # (n, 3d) features of every labelled answer
    point_idx: np.ndarray  # (p,) rows of x with a point label
    y: np.ndarray  # (p,) 1 accepted / 0 corrected
    w: np.ndarray  # (p,) confidence weights
    pair_win: np.ndarray  # (q,) rows of x: kept answers
    pair_lose: np.ndarray  # (q,) rows of x: the regenerations they replaced


def score_of(kind: str, out: dict[str, Any]) -> Any:
    """The score in [0, 1] from a network's outputs."""
    import torch

    if kind == "svm":
        return out["f"].clamp(0, 1)
    return torch.sigmoid(out["u"])


def _utility(kind: str, out: dict[str, Any]) -> Any:
    return out["f"] if kind == "svm" else out["u"]


def fit(kind: str, data: TrainData, hp: TrainSettings) -> Any:
    """Train one network on ``data``; returns the model (eval mode)."""
    import torch
    import torch.nn.functional as F

    from .learned_nets import build

    if kind not in KINDS:
        raise ValueError(f"unknown learned scorer {kind!r} (learned scorers: {', '.join(KINDS)})")
    torch.manual_seed(hp.seed)
    X = torch.from_numpy(data.x)
    pi_, y, w = torch.from_numpy(data.point_idx), torch.from_numpy(data.y), torch.from_numpy(data.w)
    pw, pl = torch.from_numpy(data.pair_win), torch.from_numpy(data.pair_lose)
    model = build(kind, X.shape[1], asdict(hp))
    opt = torch.optim.AdamW(model.parameters(), lr=hp.lr * (10 if kind == "svm" else 1),
                            weight_decay=0.0 if kind == "svm" else 1e-4)
    wsum = w.sum().clamp(min=1e-6)
    for _ in range(hp.epochs):
        model.train()
        opt.zero_grad()
        if kind == "ebt" and hp.ebt_grad_weight > 0:
            X.requires_grad_(True)
        out = model(X)
        u = _utility(kind, out)  # (n,)
        loss = torch.zeros(())
        if len(pi_):
            up = u[pi_]
            if kind == "svm":
                tube = torch.clamp((up - y).abs() - hp.svm_epsilon, min=0)
                loss = loss + hp.svm_c * (tube * w).sum() / wsum
            else:
                loss = loss + (F.binary_cross_entropy_with_logits(up, y, reduction="none") * w).sum() / wsum
        if len(pw) and hp.pair_weight > 0:
            diff = u[pw] - u[pl]  # (q,) kept minus replaced
            pair = torch.clamp(hp.svm_epsilon - diff, min=0).mean() if kind == "svm" else F.softplus(-diff).mean()
            loss = loss + hp.pair_weight * pair
        if kind == "svm":
            loss = loss + 1e-3 * (model.lin.weight ** 2).sum()
        if kind == "sicql" and len(pi_):
            q = torch.sigmoid(out["u"]).detach()[pi_]
            v = torch.sigmoid(out["v"])[pi_]
            diff = q - v  # expectile regression of V(request) towards Q
            tw = torch.where(diff > 0, torch.full_like(diff, hp.sicql_tau), torch.full_like(diff, 1 - hp.sicql_tau))
            loss = loss + (tw * diff ** 2).mean()
            awr = torch.clamp(torch.exp(hp.sicql_beta * diff.detach()), max=hp.sicql_max_weight)
            loss = loss + 0.1 * (awr * F.binary_cross_entropy_with_logits(out["pi"][pi_], y, reduction="none")).mean()
        if kind == "ebt" and hp.ebt_grad_weight > 0:
            (g,) = torch.autograd.grad(out["energy"].sum(), X, create_graph=True)
            loss = loss + hp.ebt_grad_weight * (g ** 2).sum(dim=1).mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{kind}: the training loss is not finite")
        loss.backward()
        opt.step()
        X = X.detach()
    model.eval()
    return model


def predict(kind: str, model: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    """Scores in [0, 1] and each kind's extra read-outs (V, policy, HRM change, EBT energy and gradient norm)."""
    import torch

    X = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    emb_dim = x.shape[1] // 3
    if kind == "ebt":
        X.requires_grad_(True)
        out = model(X)
        (g,) = torch.autograd.grad(out["energy"].sum(), X)
        grad = g[:, emb_dim: 2 * emb_dim].norm(dim=1)  # dE / d(answer features)
        return {"score": torch.sigmoid(out["u"]).detach().numpy(), "energy": out["energy"].detach().numpy(),
                "grad_norm": grad.numpy()}
    with torch.no_grad():
        out = model(X)
        res = {"score": score_of(kind, out).numpy()}
        if kind == "sicql":
            res["v"] = torch.sigmoid(out["v"]).numpy()
            res["pi"] = torch.sigmoid(out["pi"]).numpy()
        if kind == "hrm":
            res["delta"] = out["delta"].numpy()
    return res


# ----------------------------------------------------------------------------- artifacts


def save_artifact(path: Path, kind: str, model: Any, meta: dict[str, Any]) -> None:
    """``path`` (.safetensors) holds the tensors; ``path.with_suffix('.json')`` the rest."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(path))
    path.with_suffix(".json").write_text(json.dumps({"format": FORMAT, "kind": kind, **meta}, indent=1, default=str))


def load_artifact(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """(model in eval mode, metadata). Reads tensors and JSON only; a pickled ``.pt`` file is refused."""
    from safetensors.torch import load_file

    from .learned_nets import build

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"Retrain the learned scorers: stephanie scorers train. {path.name} is not a safetensors "
                         f"artifact (an old pickled .pt model?) and is refused: unpickling can run code ({path})")
    meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown artifact format {meta.get('format')!r} (expected {FORMAT})")
    model = build(meta["kind"], int(meta["in_dim"]), meta["hyper"])
    model.load_state_dict(load_file(str(path)))
    model.eval()
    return model, meta


class LearnedScorer:
    """A trained model as a scorer (loaded once per worker): alignment = P(the person accepts / keeps it)."""

    needs_embeddings = True

    def __init__(self, name: str, model: Any, meta: dict[str, Any], version: int):
        self.name = self.kind = name
        self.model, self.meta = model, meta
        self.version = str(version)
        self.dimensions = tuple(meta["dims"])

    @classmethod
    def load(cls, name: str, path: str, version: int) -> "LearnedScorer":
        model, meta = load_artifact(path)
        if meta["kind"] != name:
            raise ValueError(f"{path} holds a {meta['kind']!r} model, not {name!r}")
        return cls(name, model, meta, version)

    def score(self, items: Sequence[Item], dimensions: Sequence[str]) -> list[dict[str, Score]]:
        dims = [d for d in self.dimensions if d in dimensions]
        if not dims:
            return [{} for _ in items]
        a = np.stack([it.emb_text for it in items])
        g = np.stack([it.emb_prompt if it.emb_prompt is not None else it.emb_goal if it.emb_goal is not None
                      else np.zeros_like(it.emb_text) for it in items])
        res = predict(self.kind, self.model, features(g, a))
        out = []
        for i in range(len(items)):
            s = float(res["score"][i])
            if self.kind == "sicql":
                why = f"Q {s:.2f}, V(request) {res['v'][i]:.2f}, advantage {s - res['v'][i]:+.2f}, policy {res['pi'][i]:.2f}"
            elif self.kind == "ebt":
                why = f"energy {res['energy'][i]:+.2f}, uncertainty |dE/da| {res['grad_norm'][i]:.3f}"
            elif self.kind == "hrm":
                why = f"P(accepted) {s:.2f} after {self.meta['hyper']['hrm_cycles']} cycles, last-cycle change " \
                      f"{res['delta'][i]:.3f}"
            else:
                why = f"{self.kind} v{self.version}: P(accepted) {s:.2f} from the request and answer embeddings"
            out.append({d: Score(s, why) for d in dims})
        return out


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))
