"""Pure statistics of CaseBooks: trust, averaged deltas, who is champion, and progress over a trajectory.

No database, no Ray: plain functions over numbers, tested directly.

**The footing** (what makes two attempts comparable). An attempt is judged on the dimensions that
say how well it served *its own* request: clarity, relevance (to its own prompt), implementability
and alignment (the person's reaction). Novelty is left out of the footing: it is measured against
the *earlier* attempts of the trajectory, so the first attempt never has it and every later value
depends on what came before, not on the answer — were it counted, a missing dimension would move
the mean and the order of comparison would pick the champion. Any other missing dimension (a scorer
that failed on one answer) is handled by comparing two attempts on the dimensions *both* have.

**The champion** is decided by a tournament in trajectory order: the first scored attempt is
champion; each later one is compared with the current champion on the footing (an A/B comparison
whose outcome is a win or a loss of the goal state) and takes its place only if strictly better.
With exchangeable attempts the first one is champion 1 time in n, as chance would have it.

**Progress** is what a person would call progress, read from the attempts in order: quality on the
footing early vs late and its slope, fewer corrections and more acceptances (the reactions
classifier's labels), and better answers to the *same request* over time (regenerations, edited
prompts, the same prompt asked again or of another provider). :func:`compute_progress` says which.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

# dimensions measured against earlier attempts of the trajectory: never part of the footing
TRAJECTORY_DIMENSIONS = frozenset({"novelty"})
# how far a signal must move before progress calls it a change (quality and rates are in [0, 1])
QUALITY_TOLERANCE = 0.02
RATE_TOLERANCE = 0.05


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


# ----------------------------------------------------------------------------- the footing


def footing_quality(dimensions: Mapping[str, float], weights: Mapping[str, float] | None = None,
                    only: frozenset[str] | set[str] | None = None) -> float | None:
    """Weighted mean of the footing dimensions in ``dimensions`` (restricted to ``only`` if given).

    None when no footing dimension is there. A dimension missing from ``weights`` weighs 1.
    """
    weights = weights or {}
    num = den = 0.0
    for d, v in dimensions.items():
        if d in TRAJECTORY_DIMENSIONS or (only is not None and d not in only) or v is None:
            continue
        w = float(weights.get(d, 1.0))
        num += w * float(v)
        den += w
    return num / den if den > 0 else None


@dataclass(frozen=True)
class Attempt:
    """One case of a trajectory, as the champion and progress rules see it."""

    position: int
    case_id: int
    quality: float | None  # footing quality of its best answer (None: not scored)
    dimensions: Mapping[str, float] = field(default_factory=dict)  # that answer's per-dimension scores
    request: str | None = None  # same value = answers to the same request (None: its own request)
    corrected: float | None = None  # share of its answers the person corrected (None: no reaction known)
    accepted: float | None = None  # share the person accepted


@dataclass(frozen=True)
class Comparison:
    """A later attempt (candidate) against the champion so far (baseline), on the footing both share."""

    baseline_case_id: int
    candidate_case_id: int
    baseline_quality: float
    candidate_quality: float
    dimensions: tuple[str, ...]  # the dimensions compared ((): qualities compared as they are)
    same_request: bool  # both answer the same request: like with like in the strictest sense

    @property
    def delta(self) -> float:
        return self.candidate_quality - self.baseline_quality

    @property
    def improved(self) -> bool:
        return self.delta > 0


def compare(baseline: Attempt, candidate: Attempt, weights: Mapping[str, float] | None = None) -> Comparison:
    """Two attempts on the footing dimensions both have (their stored qualities when either has none)."""
    shared = (set(baseline.dimensions) & set(candidate.dimensions)) - TRAJECTORY_DIMENSIONS
    qb = footing_quality(baseline.dimensions, weights, shared) if shared else None
    qc = footing_quality(candidate.dimensions, weights, shared) if shared else None
    if qb is None or qc is None:  # no per-dimension scores (a caller that set qualities directly)
        qb, qc, shared = float(baseline.quality or 0.0), float(candidate.quality or 0.0), set()
    return Comparison(baseline.case_id, candidate.case_id, qb, qc, tuple(sorted(shared)),
                      baseline.request is not None and baseline.request == candidate.request)


def champion_tournament(attempts: Sequence[Attempt], weights: Mapping[str, float] | None = None
                        ) -> tuple[Attempt | None, list[Comparison]]:
    """(the first scored attempt, the comparisons of every later scored attempt with the champion so far).

    The champion changes exactly at the comparisons that are ``improved`` (strictly better on the
    shared footing; a tie keeps the incumbent). Unscored attempts take no part.
    """
    scored = [a for a in attempts if a.quality is not None]
    if not scored:
        return None, []
    champion, out = scored[0], []
    for a in scored[1:]:
        c = compare(champion, a, weights)
        out.append(c)
        if c.improved:
            champion = a
    return scored[0], out


def request_groups(keys: Sequence[Sequence[Any]]) -> list[int]:
    """Union-find: attempts sharing any key (a normalised prompt, a parent message ...) are one request.

    ``keys[i]``: the keys of attempt i (None entries ignored). Returns, per attempt, the index of the
    first attempt of its group.
    """
    parent = list(range(len(keys)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[Any, int] = {}
    for i, ks in enumerate(keys):
        for k in ks:
            if k is None:
                continue
            if k in first:
                a, b = find(first[k]), find(i)
                if a != b:
                    parent[max(a, b)] = min(a, b)
            else:
                first[k] = i
    return [find(i) for i in range(len(keys))]


# ----------------------------------------------------------------------------- progress


@dataclass
class Progress:
    """How a trajectory of attempts went (see the module docstring for what counts as progress)."""

    attempts: int = 0  # cases in the trajectory
    scored: int = 0  # cases with a quality
    first: float | None = None
    last: float | None = None
    best: float | None = None
    early_mean: float | None = None  # mean quality of the first third of scored attempts (at least one)
    late_mean: float | None = None  # mean of the last third
    early_late_delta: float | None = None  # late_mean - early_mean
    slope: float | None = None  # least-squares slope of quality per attempt
    improvement_rate: float | None = None  # share of attempts after the first that beat the best so far
    # (position, case id, quality) each time the best-so-far changed (a record; the champion of the goal
    # state is decided by the footing tournament, which agrees whenever every attempt has every dimension)
    champion_history: list[dict[str, Any]] = field(default_factory=list)
    # the person's reactions: share of attempts corrected / accepted, first third vs last third
    reactions: int = 0  # attempts with a known reaction
    corrected_early: float | None = None
    corrected_late: float | None = None
    accepted_early: float | None = None
    accepted_late: float | None = None
    # answers to the same request over time: consecutive (earlier, later) pairs within a request group
    same_request_pairs: int = 0
    same_request_delta: float | None = None  # mean quality(later) - quality(earlier) over those pairs
    verdict: str = "not scored"  # improving | declining | flat | single attempt | not scored
    signals: dict[str, int] = field(default_factory=dict)  # the vote of each signal: +1, -1 or 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _thirds(values: list[float]) -> tuple[float, float]:
    k = max(1, len(values) // 3)
    return sum(values[:k]) / k, sum(values[-k:]) / k


def _vote(x: float | None, tol: float) -> int:
    if x is None or abs(x) <= tol:
        return 0
    return 1 if x > 0 else -1


def compute_progress(cases: Sequence[Attempt | tuple[int, int, float | None]]) -> Progress:
    """``cases``: :class:`Attempt` (or bare ``(position, case id, quality)``) in trajectory order.

    The verdict is a vote of four signals, each counted only when it moves by more than its
    tolerance: quality late vs early (:data:`QUALITY_TOLERANCE`), corrections down and acceptances
    up, late vs early (:data:`RATE_TOLERANCE`), and the mean change between successive answers to the
    same request. More votes up than down is ``improving``, more down ``declining``, else ``flat``.
    """
    attempts = [c if isinstance(c, Attempt) else Attempt(int(c[0]), int(c[1]), c[2]) for c in cases]
    scored = [a for a in attempts if a.quality is not None and math.isfinite(a.quality)]
    prog = Progress(attempts=len(attempts), scored=len(scored))
    if not scored:
        return prog
    qs = [float(a.quality) for a in scored]  # type: ignore[arg-type]
    n = len(qs)
    prog.first, prog.last, prog.best = qs[0], qs[-1], max(qs)
    prog.early_mean, prog.late_mean = _thirds(qs)
    prog.early_late_delta = prog.late_mean - prog.early_mean
    if n >= 2:
        xbar = (n - 1) / 2
        qbar = sum(qs) / n
        sxx = sum((i - xbar) ** 2 for i in range(n))
        prog.slope = sum((i - xbar) * (q - qbar) for i, q in enumerate(qs)) / sxx
    best = None
    improvements = 0
    for a, q in zip(scored, qs):
        if best is None or q > best:
            if best is not None:
                improvements += 1
            best = q
            prog.champion_history.append({"position": a.position, "case_id": a.case_id, "quality": q})
    prog.improvement_rate = improvements / (n - 1) if n >= 2 else None

    reacted = [a for a in attempts if a.corrected is not None and a.accepted is not None]
    prog.reactions = len(reacted)
    if reacted:
        prog.corrected_early, prog.corrected_late = _thirds([float(a.corrected) for a in reacted])  # type: ignore[arg-type]
        prog.accepted_early, prog.accepted_late = _thirds([float(a.accepted) for a in reacted])  # type: ignore[arg-type]

    last_in: dict[str, float] = {}
    deltas = []
    for a, q in zip(scored, qs):
        if a.request is None:
            continue
        if a.request in last_in:
            deltas.append(q - last_in[a.request])
        last_in[a.request] = q
    prog.same_request_pairs = len(deltas)
    prog.same_request_delta = sum(deltas) / len(deltas) if deltas else None

    if n < 2:
        prog.verdict = "single attempt"
        return prog
    two_thirds = len(reacted) >= 2
    prog.signals = {
        "quality": _vote(prog.early_late_delta, QUALITY_TOLERANCE),
        "corrections": -_vote(prog.corrected_late - prog.corrected_early, RATE_TOLERANCE) if two_thirds else 0,  # type: ignore[operator]
        "acceptance": _vote(prog.accepted_late - prog.accepted_early, RATE_TOLERANCE) if two_thirds else 0,  # type: ignore[operator]
        "same_request": _vote(prog.same_request_delta, QUALITY_TOLERANCE),
    }
    total = sum(prog.signals.values())
    prog.verdict = "improving" if total > 0 else "declining" if total < 0 else "flat"
    return prog
