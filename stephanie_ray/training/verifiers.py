"""Verifiers: the one registry of what turns (prompt, response[, context]) into a PACS label.

A verifier takes a batch of :class:`VerifyItem` (plain data: the batch stage, the PACS trainer and the
Serve endpoint all call the same ``verify_batch``) and returns, in order, one of

* :class:`Verdict` — ``p_good`` = P(the response is good) in [0, 1], ``label`` ∈ {0, 1} and a reason;
* :class:`VerifyFailure` — the item could not be judged (missing reference, no verdict, backend error),
  with the reason. A failure is never silently a 0: the dataset stage drops or reports it.

The registry (:data:`VERIFIERS`, name -> :class:`VerifierSpec`) holds factories taking one
:class:`VerifierConfig`; heavy imports happen inside factories. Built in:

* ``math``      last ``\\boxed{}`` of the response vs ``context["reference"]`` (or ``"expected"``),
                numeric equivalence with tolerance (:mod:`.mathanswer`). No box -> label 0, reason
                "no \\boxed{} answer" (a judgement: the response gave no final answer). No reference ->
                failure. ``p_good`` is 1.0 or 0.0.
* ``reaction``  the person's reaction (:mod:`stephanie_ray.reactions`) to the response, read from
                ``context["next"]`` (their next message, None at the end of the conversation; the key
                must be present), ``context["regenerated"]`` and ``context["edited"]`` (default False):
                accepted and still on the active thread -> 1 (``p_good = ½ + ½·confidence``);
                corrected -> 0 (``½ − ½·confidence``); *replaced* (regenerated away, even if the person
                also approved) -> 0 with the regeneration's structural confidence; continued / none ->
                failure "no verdict" — going on without a judgement is not evidence either way. With
                ``reaction_continued="positive"``, continued counts as a weak positive (label 1,
                ``p_good = reaction_continued_p_good``). Reactions below ``reaction_min_confidence`` fail.
* ``ensemble``  ``context["ensemble_score"]`` in [0, 1] (the scoring ensemble's score):
                ``label = score ≥ ensemble_threshold``, ``p_good = score``.

* ``critic``    the trained PACS critic (:mod:`.critic_verifier`): its calibrated P(good) for (prompt, response)
                and ``label = P(good) ≥ threshold``; settings (model version or directory, threshold, database
                URL) in ``VerifierConfig.options``. A missing or corrupt model version fails when it is built.

Extension point: code outside this package may call :func:`register_verifier`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Protocol, Sequence

from .mathanswer import answers_match, last_boxed, normalise

if TYPE_CHECKING:
    from ..config import ReactionsConfig
    from ..reactions import Backend


@dataclass(frozen=True, slots=True)
class VerifyItem:
    prompt: str
    response: str
    context: Mapping[str, Any] = field(default_factory=dict)  # per-verifier extras: reference, next, score ...


@dataclass(frozen=True, slots=True)
class Verdict:
    p_good: float  # P(the response is good), in [0, 1]
    label: int  # 0 or 1
    reason: str

    def __post_init__(self) -> None:
        if self.label not in (0, 1):
            raise ValueError(f"label must be 0 or 1, got {self.label!r}")
        if not 0.0 <= float(self.p_good) <= 1.0:  # NaN fails too
            raise ValueError(f"p_good must be in [0, 1], got {self.p_good!r}")

    def to_dict(self) -> dict[str, object]:
        return {"ok": True, "p_good": self.p_good, "label": self.label, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class VerifyFailure:
    reason: str  # why the item could not be judged

    def to_dict(self) -> dict[str, object]:
        return {"ok": False, "reason": self.reason}


Result = Verdict | VerifyFailure


class Verifier(Protocol):
    name: str
    version: str

    def verify_batch(self, items: Sequence[VerifyItem]) -> list[Result]:
        """One result per item, in order."""
        ...


@dataclass(frozen=True)
class VerifierConfig:
    """Which verifier and its settings (the training config holds one)."""

    name: str = "math"
    math_rel_tol: float = 1e-4
    math_abs_tol: float = 1e-8
    math_reference_keys: tuple[str, ...] = ("reference", "expected")
    reaction_continued: Literal["exclude", "positive"] = "exclude"
    reaction_continued_p_good: float = 0.6
    reaction_min_confidence: float = 0.0
    reactions: "ReactionsConfig | None" = None  # the reaction backend's settings; None: ReactionsConfig()
    ensemble_threshold: float = 0.5
    ensemble_score_key: str = "ensemble_score"
    options: Mapping[str, Any] = field(default_factory=dict)  # for verifiers added later (the trained critic)

    def __post_init__(self) -> None:
        if self.math_rel_tol < 0 or self.math_abs_tol < 0:
            raise ValueError("math tolerances must be >= 0")
        if not self.math_reference_keys:
            raise ValueError("math_reference_keys must name at least one context key")
        if self.reaction_continued not in ("exclude", "positive"):
            raise ValueError(f"reaction_continued must be 'exclude' or 'positive', got {self.reaction_continued!r}")
        for name in ("reaction_continued_p_good", "reaction_min_confidence", "ensemble_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


def verify(verifier: Verifier, items: Sequence[VerifyItem]) -> list[Result]:
    """``verifier.verify_batch`` with the one-result-per-item contract checked."""
    results = verifier.verify_batch(list(items))
    if len(results) != len(items):
        raise RuntimeError(f"verifier {verifier.name} returned {len(results)} results for {len(items)} items")
    return results


# ------------------------------------------------------------------------------------------ math
@dataclass
class MathVerifier:
    rel_tol: float = 1e-4
    abs_tol: float = 1e-8
    reference_keys: tuple[str, ...] = ("reference", "expected")
    name = "math"
    version = "1"

    def verify_batch(self, items: Sequence[VerifyItem]) -> list[Result]:
        return [self.verify_one(it) for it in items]

    def verify_one(self, item: VerifyItem) -> Result:
        ref = next((item.context[k] for k in self.reference_keys
                    if k in item.context and item.context[k] is not None), None)
        if isinstance(ref, bool) or not isinstance(ref, (str, int, float)) or not str(ref).strip():
            return VerifyFailure(f"no reference answer (context keys tried: {', '.join(self.reference_keys)})")
        ref = str(ref)
        ref = last_boxed(ref) or ref  # a reference written as a full solution
        answer = last_boxed(item.response)
        if answer is None:
            return Verdict(0.0, 0, "no \\boxed{} answer")
        if not normalise(answer)[0]:
            return Verdict(0.0, 0, "empty \\boxed{}")
        if answers_match(answer, ref, self.rel_tol, self.abs_tol):
            return Verdict(1.0, 1, f"answer {answer!r} matches the reference")
        return Verdict(0.0, 0, f"answer {answer!r} does not match the reference {ref!r}")


# ------------------------------------------------------------------------------------------ reaction
@dataclass
class ReactionVerifier:
    backend: "Backend"
    continued: Literal["exclude", "positive"] = "exclude"
    continued_p_good: float = 0.6
    min_confidence: float = 0.0
    name = "reaction"
    version = "1"

    def verify_batch(self, items: Sequence[VerifyItem]) -> list[Result]:
        from ..reactions import ReactionError, ReactionInput, structural

        results: list[Result | None] = [None] * len(items)
        inputs, where = [], []
        for k, it in enumerate(items):
            if "next" not in it.context:
                results[k] = VerifyFailure("context has no 'next' (the person's next message; None at the end of "
                                           "the conversation)")
                continue
            nxt = it.context["next"]
            if nxt is not None and not isinstance(nxt, str):
                results[k] = VerifyFailure(f"context 'next' must be a string or None, got {type(nxt).__name__}")
                continue
            inputs.append(ReactionInput(it.prompt, it.response, nxt, bool(it.context.get("regenerated", False)),
                                        bool(it.context.get("edited", False))))
            where.append(k)
        replaced = structural(ReactionInput("", "", None, regenerated=True))
        assert replaced is not None
        reactions = self.backend.classify_batch(inputs) if inputs else []
        if len(reactions) != len(inputs):
            raise RuntimeError(f"reaction backend returned {len(reactions)} results for {len(inputs)} items")
        for k, inp, rx in zip(where, inputs, reactions):
            if isinstance(rx, ReactionError):
                results[k] = VerifyFailure(f"reaction backend failed: {rx}")
            elif rx.confidence < self.min_confidence:
                results[k] = VerifyFailure(f"reaction {rx.label} below min confidence ({rx.confidence:.2f})")
            elif inp.regenerated:  # off the active thread: the person did not keep it
                results[k] = Verdict(round(0.5 - 0.5 * replaced.confidence, 6), 0,
                                     f"replaced by a regeneration (reaction: {rx.label}; {rx.rationale})")
            elif rx.label == "accepted":
                results[k] = Verdict(round(0.5 + 0.5 * rx.confidence, 6), 1, f"accepted: {rx.rationale}")
            elif rx.label == "corrected":
                results[k] = Verdict(round(0.5 - 0.5 * rx.confidence, 6), 0, f"corrected: {rx.rationale}")
            elif rx.label == "continued" and self.continued == "positive":
                results[k] = Verdict(self.continued_p_good, 1, f"continued (weak positive): {rx.rationale}")
            else:
                results[k] = VerifyFailure(f"no verdict: {rx.label} ({rx.rationale})")
        return [r for r in results if r is not None]


# ------------------------------------------------------------------------------------------ ensemble
@dataclass
class EnsembleVerifier:
    threshold: float = 0.5
    score_key: str = "ensemble_score"
    name = "ensemble"
    version = "1"

    def verify_batch(self, items: Sequence[VerifyItem]) -> list[Result]:
        out: list[Result] = []
        for it in items:
            score = it.context.get(self.score_key)
            if score is None:
                out.append(VerifyFailure(f"context has no {self.score_key!r}"))
            elif isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score) \
                    or not 0.0 <= score <= 1.0:
                out.append(VerifyFailure(f"{self.score_key} must be a number in [0, 1], got {score!r}"))
            else:
                ok = score >= self.threshold
                out.append(Verdict(float(score), int(ok),
                                   f"ensemble score {score:.3f} {'>=' if ok else '<'} {self.threshold}"))
        return out


# ------------------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class VerifierSpec:
    name: str
    factory: Callable[[VerifierConfig], Verifier]
    help: str


def _math(cfg: VerifierConfig) -> Verifier:
    return MathVerifier(cfg.math_rel_tol, cfg.math_abs_tol, tuple(cfg.math_reference_keys))


def _reaction(cfg: VerifierConfig) -> Verifier:
    from ..reactions import make_backend

    return ReactionVerifier(make_backend(cfg.reactions), cfg.reaction_continued, cfg.reaction_continued_p_good,
                            cfg.reaction_min_confidence)


def _ensemble(cfg: VerifierConfig) -> Verifier:
    return EnsembleVerifier(cfg.ensemble_threshold, cfg.ensemble_score_key)


def _critic(cfg: VerifierConfig) -> Verifier:
    from .critic_verifier import make_critic_verifier

    return make_critic_verifier(cfg)


VERIFIERS: dict[str, VerifierSpec] = {s.name: s for s in (
    VerifierSpec("math", _math, "last \\boxed{} answer vs the item's reference, numeric equivalence with tolerance"),
    VerifierSpec("reaction", _reaction, "the person's next message: accepted -> 1, corrected/replaced -> 0"),
    VerifierSpec("ensemble", _ensemble, "the scoring ensemble's score in [0, 1] against a threshold"),
    VerifierSpec("critic", _critic, "the trained PACS critic: calibrated P(good) >= a threshold "
                                    "(options: model version or directory, threshold)"),
)}


def register_verifier(spec: VerifierSpec, *, replace: bool = False) -> None:
    """Add a verifier (the trained critic, a plug-in). A name already taken is an error unless ``replace``."""
    if spec.name in VERIFIERS and not replace:
        raise ValueError(f"verifier {spec.name!r} is already registered")
    VERIFIERS[spec.name] = spec


def verifier_names() -> tuple[str, ...]:
    return tuple(VERIFIERS)


def make_verifier(cfg: VerifierConfig | str | None = None) -> Verifier:
    """Build ``cfg.name`` from ``cfg`` (a name alone: that verifier with the defaults)."""
    if cfg is None:
        cfg = VerifierConfig()
    elif isinstance(cfg, str):
        cfg = VerifierConfig(name=cfg)
    if cfg.name not in VERIFIERS:
        raise ValueError(f"unknown verifier {cfg.name!r} (verifiers: {', '.join(VERIFIERS)})")
    return VERIFIERS[cfg.name].factory(cfg)
