"""Pure statistics of CaseBooks: trust of a goal state, averaged deltas, progress over a trajectory.

No database, no Ray: plain functions over numbers, tested directly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence


def wilson_lower_bound(wins: int, n: int, z: float = 1.96) -> float:
    """Lower end of the Wilson score interval for a win rate of ``wins`` out of ``n`` trials.

    This is what a goal state's *trust* is: the win rate we can be confident of at the level ``z``
    (1.96: 95%). It is 0 with no evidence, grows with the number of wins, and, unlike the raw rate,
    does not call one lucky win out of one "100%": 1/1 -> 0.21, 10/10 -> 0.72, 100/100 -> 0.96.
    """
    if n < 0 or wins < 0 or wins > n:
        raise ValueError(f"need 0 <= wins <= n, got wins={wins}, n={n}")
    if n == 0:
        return 0.0
    p = wins / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, (centre - margin) / (1 + z2 / n))


def ema(previous: float | None, value: float, alpha: float) -> float:
    """Exponentially weighted average; the first value starts it."""
    if previous is None:
        return float(value)
    return (1.0 - alpha) * previous + alpha * float(value)


@dataclass
class Progress:
    """How a trajectory of attempts went, from the qualities of its scored cases (in order)."""

    attempts: int = 0  # cases in the trajectory
    scored: int = 0  # cases with a quality
    first: float | None = None
    last: float | None = None
    best: float | None = None
    early_mean: float | None = None  # mean of the first third of scored attempts (at least one)
    late_mean: float | None = None  # mean of the last third
    early_late_delta: float | None = None  # late_mean - early_mean
    slope: float | None = None  # least-squares slope of quality per attempt
    improvement_rate: float | None = None  # share of attempts after the first that beat the best so far
    # (position, case id, quality) each time the best-so-far (the champion) changed
    champion_history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compute_progress(cases: Sequence[tuple[int, int, float | None]]) -> Progress:
    """``cases``: (position, case id, quality or None) in trajectory order."""
    scored = [(pos, cid, float(q)) for pos, cid, q in cases if q is not None and math.isfinite(q)]
    prog = Progress(attempts=len(cases), scored=len(scored))
    if not scored:
        return prog
    qs = [q for _, _, q in scored]
    n = len(qs)
    k = max(1, n // 3)
    prog.first, prog.last, prog.best = qs[0], qs[-1], max(qs)
    prog.early_mean = sum(qs[:k]) / k
    prog.late_mean = sum(qs[-k:]) / k
    prog.early_late_delta = prog.late_mean - prog.early_mean
    if n >= 2:
        xbar = (n - 1) / 2
        qbar = sum(qs) / n
        sxx = sum((i - xbar) ** 2 for i in range(n))
        prog.slope = sum((i - xbar) * (q - qbar) for i, q in enumerate(qs)) / sxx
    best = None
    improvements = 0
    for i, (pos, cid, q) in enumerate(scored):
        if best is None or q > best:
            if best is not None:
                improvements += 1
            best = q
            prog.champion_history.append({"position": pos, "case_id": cid, "quality": q})
    prog.improvement_rate = improvements / (n - 1) if n >= 2 else None
    return prog
