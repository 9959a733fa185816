"""Calibration of verifier / critic probabilities, pure numpy: metrics, reliability bins, Platt, isotonic.

Metrics (``y`` ∈ {0, 1}, ``p`` ∈ [0, 1], ``s`` any real score):

* :func:`auc` — ROC AUC = P(s⁺ > s⁻) + ½ P(s⁺ = s⁻), from average ranks (Mann–Whitney U): ties count
  half, as scikit-learn's ``roc_auc_score``. Undefined (ValueError) with a single class.
* :func:`brier` — ``mean((p − y)²)``.
* :func:`ece` — expected calibration error with ``n_bins`` equal-width bins on [0, 1]: bin ``b`` holds
  ``p ∈ [b/B, (b+1)/B)``, the last bin also holds ``p = 1``; ``ECE = Σ_b (n_b / N) |mean(y_b) − mean(p_b)|``
  over non-empty bins. :func:`reliability_bins` gives the per-bin figures for a reliability diagram.

Calibrators (fit on a validation split, ``transform`` maps scores to probabilities; both save to and load
from JSON, never pickle; :data:`CALIBRATORS` is their registry, :func:`load_calibrator` reads either):

* :class:`PlattScaler` — ``p = σ(a·s + b)`` fit by Newton's method with backtracking on the
  cross-entropy against Platt's prior-smoothed targets ``t⁺ = (N⁺ + 1)/(N⁺ + 2)``,
  ``t⁻ = 1/(N⁻ + 2)`` (Platt 1999; Lin, Lin & Weng 2007). Pass logits (the critic's raw output).
* :class:`IsotonicCalibrator` — a non-decreasing step fit by pool-adjacent-violators (ties in ``s``
  pooled first), linear interpolation between block ends, constant outside the fitted range.

Default for the trained critic: **Platt**. Its validation sets are small (hundreds of labelled responses
from one person's chats); two parameters cannot overfit them, the prior-smoothed targets keep it finite
when a split is perfectly separable, and a strictly monotone map keeps the critic's ranking (AUC) intact.
Isotonic needs on the order of a thousand or more points before it beats Platt (Niculescu-Mizil &
Caruana 2005) and its flat steps tie distinct scores. Use isotonic when the validation set is large and
the reliability diagram is visibly not sigmoid-shaped.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

FORMAT_VERSION = 1


def _arrays(y: Any, s: Any) -> tuple[np.ndarray, np.ndarray]:
    ya = np.asarray(y, dtype=np.float64).ravel()
    sa = np.asarray(s, dtype=np.float64).ravel()
    if ya.shape != sa.shape:
        raise ValueError(f"labels and scores differ in length ({ya.size} vs {sa.size})")
    if ya.size == 0:
        raise ValueError("no data")
    if not np.isin(ya, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1")
    if not np.isfinite(sa).all():
        raise ValueError("scores must be finite")
    return ya, sa


def _probs(p: np.ndarray) -> np.ndarray:
    if ((p < 0) | (p > 1)).any():
        raise ValueError("probabilities must be in [0, 1]")
    return p


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given their average rank (scipy's rankdata 'average')."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # last rank of each distinct value
    return (ends - (counts - 1) / 2.0)[inverse]


def auc(y: Any, s: Any) -> float:
    """ROC AUC with ties counted half."""
    ya, sa = _arrays(y, s)
    n_pos = int(ya.sum())
    n_neg = ya.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC is undefined with a single class")
    r = average_ranks(sa)
    u = r[ya == 1].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def brier(y: Any, p: Any) -> float:
    ya, pa = _arrays(y, p)
    return float(np.mean((_probs(pa) - ya) ** 2))


@dataclass(frozen=True)
class ReliabilityBin:
    lower: float
    upper: float
    count: int
    mean_p: float  # mean predicted probability (nan when empty)
    frac_pos: float  # observed share of positives (nan when empty)


def reliability_bins(y: Any, p: Any, n_bins: int = 10) -> list[ReliabilityBin]:
    """Equal-width bins on [0, 1] (module docstring), empty bins included with nan means."""
    ya, pa = _arrays(y, p)
    _probs(pa)
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    idx = np.minimum((pa * n_bins).astype(np.int64), n_bins - 1)  # p = 1 goes to the last bin
    counts = np.bincount(idx, minlength=n_bins)
    sum_p = np.bincount(idx, weights=pa, minlength=n_bins)
    sum_y = np.bincount(idx, weights=ya, minlength=n_bins)
    out = []
    for b in range(n_bins):
        c = int(counts[b])
        out.append(ReliabilityBin(b / n_bins, (b + 1) / n_bins, c, sum_p[b] / c if c else math.nan,
                                  sum_y[b] / c if c else math.nan))
    return out


def ece(y: Any, p: Any, n_bins: int = 10) -> float:
    bins = reliability_bins(y, p, n_bins)
    n = sum(b.count for b in bins)
    return float(sum(b.count / n * abs(b.frac_pos - b.mean_p) for b in bins if b.count))


@dataclass(frozen=True)
class CalibrationReport:
    n: int
    positive_rate: float
    auc: float | None  # None with a single class
    brier: float
    ece: float
    bins: list[ReliabilityBin]

    def to_dict(self) -> dict[str, Any]:
        nan_free = lambda v: None if isinstance(v, float) and math.isnan(v) else v  # noqa: E731
        return {"n": self.n, "positive_rate": self.positive_rate, "auc": self.auc, "brier": self.brier,
                "ece": self.ece, "bins": [{k: nan_free(v) for k, v in vars(b).items()} for b in self.bins]}


def calibration_report(y: Any, p: Any, n_bins: int = 10) -> CalibrationReport:
    ya, pa = _arrays(y, p)
    single = ya.min() == ya.max()
    return CalibrationReport(int(ya.size), float(ya.mean()), None if single else auc(ya, pa), brier(ya, pa),
                             ece(ya, pa, n_bins), reliability_bins(ya, pa, n_bins))


# ------------------------------------------------------------------------------------------ calibrators
class Calibrator(Protocol):
    kind: str

    def fit(self, s: Any, y: Any) -> "Calibrator": ...
    def transform(self, s: Any) -> np.ndarray: ...
    def to_dict(self) -> dict[str, Any]: ...


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.where(z >= 0, 1.0 / (1.0 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1.0 + np.exp(-np.abs(z))))


@dataclass
class PlattScaler:
    """p = σ(a·s + b); ``a``, ``b`` fit by :meth:`fit`."""

    a: float = 1.0
    b: float = 0.0
    kind = "platt"

    def fit(self, s: Any, y: Any, max_iter: int = 100, tol: float = 1e-10) -> "PlattScaler":
        ya, sa = _arrays(y, s)
        n_pos = ya.sum()
        n_neg = ya.size - n_pos
        t = np.where(ya == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))  # Platt's smoothed targets

        def nll(a: float, b: float) -> float:
            z = a * sa + b  # Σ t·softplus(−z) + (1−t)·softplus(z), stably
            return float(np.sum(t * np.logaddexp(0, -z) + (1 - t) * np.logaddexp(0, z)))

        a, b = 0.0, math.log((n_pos + 1) / (n_neg + 1))  # start at the prior log-odds
        f = nll(a, b)
        for _ in range(max_iter):
            p = _sigmoid(a * sa + b)
            r = p - t  # dNLL/dz
            g = np.array([np.dot(r, sa), r.sum()])
            w = p * (1 - p)
            h = np.array([[np.dot(w, sa * sa), np.dot(w, sa)], [np.dot(w, sa), w.sum()]]) + 1e-12 * np.eye(2)
            step = np.linalg.solve(h, g)
            lr = 1.0
            while lr > 1e-10:  # backtracking: Newton can overshoot far from the optimum
                na, nb = a - lr * step[0], b - lr * step[1]
                nf = nll(na, nb)
                if nf <= f + 1e-4 * lr * float(g @ -step):
                    break
                lr /= 2
            else:
                break
            done = abs(f - nf) <= tol * max(1.0, abs(f))
            a, b, f = na, nb, nf
            if done or np.abs(g).max() < 1e-12:
                break
        self.a, self.b = float(a), float(b)
        return self

    def transform(self, s: Any) -> np.ndarray:
        return _sigmoid(self.a * np.asarray(s, dtype=np.float64) + self.b)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "format_version": FORMAT_VERSION, "a": self.a, "b": self.b}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PlattScaler":
        _check_header(d, cls.kind)
        return cls(float(d["a"]), float(d["b"]))


def pav(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Pool-adjacent-violators: the non-decreasing fit to ``y`` (in order) with weights ``w``."""
    vals: list[float] = []
    wts: list[float] = []
    lens: list[int] = []
    for yi, wi in zip(y.tolist(), w.tolist()):
        vals.append(yi)
        wts.append(wi)
        lens.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:  # a violation: pool the last two blocks
            wsum = wts[-2] + wts[-1]
            merged = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / wsum
            n = lens[-2] + lens[-1]
            del vals[-1], wts[-1], lens[-1]
            vals[-1], wts[-1], lens[-1] = merged, wsum, n
    return np.repeat(np.asarray(vals), lens)


@dataclass
class IsotonicCalibrator:
    """Non-decreasing map fit by PAV; ``x``/``y`` are the fitted block ends (interpolated linearly)."""

    x: list[float] | None = None
    y: list[float] | None = None
    kind = "isotonic"

    def fit(self, s: Any, y: Any) -> "IsotonicCalibrator":
        ya, sa = _arrays(y, s)
        xs, inverse, counts = np.unique(sa, return_inverse=True, return_counts=True)
        ymean = np.bincount(inverse, weights=ya) / counts  # ties in s pooled first
        fitted = pav(ymean, counts.astype(np.float64))
        # keep only the ends of each constant block: interpolation between them is the same map
        keep = np.ones(xs.size, dtype=bool)
        if xs.size > 2:
            keep[1:-1] = (fitted[1:-1] != fitted[:-2]) | (fitted[1:-1] != fitted[2:])
        self.x, self.y = xs[keep].tolist(), fitted[keep].tolist()
        return self

    def transform(self, s: Any) -> np.ndarray:
        if self.x is None or self.y is None:
            raise RuntimeError("IsotonicCalibrator is not fitted")
        return np.clip(np.interp(np.asarray(s, dtype=np.float64), self.x, self.y), 0.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "format_version": FORMAT_VERSION, "x": self.x, "y": self.y}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "IsotonicCalibrator":
        _check_header(d, cls.kind)
        x, y = [float(v) for v in d["x"]], [float(v) for v in d["y"]]
        if len(x) != len(y) or not x or any(b < a for a, b in zip(x, x[1:])):
            raise ValueError("isotonic calibrator: x must be non-empty, sorted and as long as y")
        return cls(x, y)


def _check_header(d: dict[str, Any], kind: str) -> None:
    if d.get("kind") != kind:
        raise ValueError(f"not a {kind} calibrator: kind={d.get('kind')!r}")
    if d.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"unsupported calibrator format_version {d.get('format_version')!r}")


CALIBRATORS: dict[str, type] = {"platt": PlattScaler, "isotonic": IsotonicCalibrator}
DEFAULT_CALIBRATOR = "platt"


def make_calibrator(kind: str = DEFAULT_CALIBRATOR) -> Calibrator:
    if kind not in CALIBRATORS:
        raise ValueError(f"unknown calibrator {kind!r} (calibrators: {', '.join(CALIBRATORS)})")
    return CALIBRATORS[kind]()


def save_calibrator(cal: Calibrator, path: str | Path) -> None:
    Path(path).write_text(json.dumps(cal.to_dict(), indent=2) + "\n", encoding="utf-8")


def load_calibrator(path: str | Path) -> Calibrator:
    d = json.loads(Path(path).read_text(encoding="utf-8"))
    kind = d.get("kind") if isinstance(d, dict) else None
    if kind not in CALIBRATORS:
        raise ValueError(f"{path}: unknown calibrator kind {kind!r}")
    return CALIBRATORS[kind].from_dict(d)
