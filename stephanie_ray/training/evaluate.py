"""How good is a critic's P(good) on the validation split: AUC, Brier, ECE, raw and calibrated; the figures.

All on plain numpy arrays (labels ``y``, scores ``s`` = the critic's logits, group ids); the maths is
:mod:`.calibration`'s. ``raw`` is ``σ(s)``. ``calibrated`` is *cross-fitted*: the validation groups are cut
in two folds (by a hash of the group id), a calibrator fitted on one fold maps the other, so the calibrated
figures are not measured on the points the calibrator saw. The calibrator saved with a model version is then
fitted on the whole validation split.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .calibration import auc, brier, calibration_report, ece, make_calibrator, reliability_bins


def sigmoid(s: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(s, dtype=np.float64), -60, 60)))


def _figures(y: np.ndarray, p: np.ndarray, s: np.ndarray | None = None) -> dict[str, Any]:
    single = y.min() == y.max()
    return {"n": int(y.size), "positive_rate": round(float(y.mean()), 4),
            "auc": None if single else round(auc(y, p if s is None else s), 4),
            "brier": round(brier(y, p), 4), "ece": round(ece(y, p), 4)}


def cross_fitted(y: np.ndarray, s: np.ndarray, groups: np.ndarray, kind: str) -> np.ndarray | None:
    """Calibrated probabilities for every row from a calibrator fitted on the other fold; None when a fold
    is empty or lacks a class (nothing to fit)."""
    fold = (np.asarray(groups, dtype=np.int64) % 2).astype(bool)
    out = np.empty(y.size, dtype=np.float64)
    for f in (False, True):
        fit, apply = fold != f, fold == f
        if not apply.any():
            continue
        if not fit.any() or y[fit].min() == y[fit].max():
            return None
        out[apply] = make_calibrator(kind).fit(s[fit], y[fit]).transform(s[apply])
    return np.clip(out, 0.0, 1.0)


def evaluate(y: Sequence[int], s: Sequence[float], groups: Sequence[int], kind: str = "platt"
             ) -> tuple[dict[str, Any], Any | None]:
    """({"raw": figures, "calibrated": figures | None, "note": ...}, calibrator fitted on all rows or None)."""
    ya = np.asarray(y, dtype=np.float64)
    sa = np.asarray(s, dtype=np.float64)
    if ya.size == 0:
        return {"raw": None, "calibrated": None, "note": "empty validation split"}, None
    out: dict[str, Any] = {"raw": _figures(ya, sigmoid(sa), sa), "calibrated": None, "note": ""}
    if ya.min() == ya.max():
        out["note"] = "validation split has a single class: AUC undefined, no calibration"
        return out, None
    pc = cross_fitted(ya, sa, np.asarray(groups), kind)
    if pc is None:
        out["note"] = "a validation fold has a single class: calibration not cross-fitted"
    else:
        out["calibrated"] = _figures(ya, pc, sa)
        out["calibrated"]["auc"] = round(auc(ya, pc), 4)  # a fold's monotone map may tie scores: say so
    cal = make_calibrator(kind).fit(sa, ya)
    return out, cal


def reliability(y: Sequence[int], p: Sequence[float], n_bins: int = 10) -> list[dict[str, Any]]:
    return calibration_report(y, p, n_bins).to_dict()["bins"]


# ------------------------------------------------------------------------------------------ figures
TRAINING_PANELS = (("loss", "PACS loss (weighted BCE)"), ("psi_mean", "mean ψ"),
                   ("coupling_ratio", "coupling ratio ‖critic‖/‖actor‖"))


def plot_training(stats: list[dict[str, Any]], path: Path,
                  panels: Sequence[tuple[str, str]] = TRAINING_PANELS) -> Path | None:
    """One panel per (figure, title) per step: by default loss, mean ψ and coupling ratio."""
    if not stats:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in stats]
    fig, axes = plt.subplots(1, len(panels), figsize=(13 * len(panels) / 3, 3.6))
    for ax, (key, title) in zip(axes, panels):
        vals = [r.get(key) for r in stats]
        xs = [x for x, v in zip(steps, vals) if v is not None and math.isfinite(v)]
        ys = [v for v in vals if v is not None and math.isfinite(v)]
        ax.plot(xs, ys, lw=1.2)
        ax.ticklabel_format(axis="y", useOffset=False)  # with K = 1 the loss is log 2 throughout: show it as such
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_reliability(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, n_bins: int = 10) -> Path | None:
    """A reliability diagram: observed share of good answers per predicted-probability bin, one line per
    curve (label -> (y, p)), with the diagonal and bin counts."""
    curves = {k: v for k, v in curves.items() if v[0].size}
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, axc) = plt.subplots(2, 1, figsize=(5.2, 6.2), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfectly calibrated")
    width = 1.0 / n_bins / (len(curves) + 1)
    for k, (label, (y, p)) in enumerate(curves.items()):
        bins = reliability_bins(y, p, n_bins)
        xs = [b.mean_p for b in bins if b.count]
        ys = [b.frac_pos for b in bins if b.count]
        ax.plot(xs, ys, marker="o", lw=1.4, label=f"{label} (ECE {ece(y, p):.3f})")
        axc.bar([b.lower + (k + 0.5) * width for b in bins], [b.count for b in bins], width=width, label=label)
    ax.set_ylabel("observed share good")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title("Critic reliability on the validation split", fontsize=10)
    ax.grid(alpha=0.3)
    axc.set_xlabel("predicted P(good)")
    axc.set_ylabel("answers")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
