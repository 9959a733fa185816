"""The one registry of scorers: name -> factory, dimensions, version, needs embeddings, kind.

Config (``scoring.scorers`` and ``scoring.scorer_weights`` are checked against it), the batch stage,
its actors, ``stephanie scorers list``, the learned-scorer trainer, the PACS reward and the
``/verify`` endpoint all build scorers here, and all score through
:func:`stephanie_ray.scoring.batch.score_batch`. Adding a scorer = one class + one entry below.

Kinds: ``offline`` (always available), ``learned`` (available once trained: ``stephanie scorers
train``; the instance's version is the trained artifact's), ``remote`` (the LLM judge: available once
``scoring.llm_base_url`` is set). Heavy imports (torch) happen inside the factories.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .base import DIMENSIONS, Scorer
from .codecheck import CodeCheckScorer
from .readability import ReadabilityScorer
from .scorers import ChoiceScorer, EmbeddingScorer, FeedbackScorer, LexicalScorer, NgramScorer, StructureScorer

OFFLINE, LEARNED, REMOTE = "offline", "learned", "remote"
LEARNED_DIMENSIONS = ("alignment",)  # what the person's verdicts (accepted / corrected, kept / replaced) say


@dataclass(frozen=True)
class LearnedArtifact:
    """A trained learned scorer: its safetensors file (JSON metadata beside it) and version."""

    path: str
    version: int


@dataclass(frozen=True)
class ScorerSettings:
    """Plain settings scorers are built from (they cross Ray boundaries); from :func:`settings_from_config`."""

    embedding: dict[str, Any] = field(default_factory=dict)  # EmbeddingConfig fields
    timeout_s: float = 120.0
    max_text_chars: int = 20000
    learned: dict[str, LearnedArtifact] = field(default_factory=dict)
    llm: dict[str, Any] = field(default_factory=dict)  # LLMJudge keyword arguments


@dataclass(frozen=True)
class ScorerSpec:
    name: str
    kind: str  # offline | learned | remote
    dimensions: tuple[str, ...]
    version: str  # code version; a learned scorer's instances carry their artifact's version instead
    needs_embeddings: bool
    factory: Callable[[ScorerSettings], Scorer]
    help: str
    trajectory: bool = False  # its novelty is measured along a CaseBook's trajectory (the stage's post-pass)


def _offline(cls: type, help: str, trajectory: bool = False) -> ScorerSpec:
    return ScorerSpec(cls.name, OFFLINE, tuple(cls.dimensions), cls.version, cls.needs_embeddings,
                      lambda settings: cls(), help, trajectory)


def _learned(name: str, help: str) -> ScorerSpec:
    def factory(settings: ScorerSettings) -> Scorer:
        from .learned import LearnedScorer

        art = settings.learned.get(name)
        if art is None:
            raise ValueError(f"scorer {name!r} is not trained yet (stephanie scorers train)")
        return LearnedScorer.load(name, art.path, art.version)

    return ScorerSpec(name, LEARNED, LEARNED_DIMENSIONS, "2", True, factory, help)


def _llm(settings: ScorerSettings) -> Scorer:
    from .llm import LLMJudge

    return LLMJudge(**settings.llm)


SCORERS: dict[str, ScorerSpec] = {s.name: s for s in (
    _offline(StructureScorer, "clarity from paragraphs, lists, headings, fences; implementability from code "
                              "blocks, commands, steps, concrete details"),
    _offline(ReadabilityScorer, "clarity from sentence and word-length statistics per script (any language)"),
    _offline(LexicalScorer, "relevance: the request's content terms the answer covers (any script)"),
    _offline(EmbeddingScorer, "relevance: MiniLM cosine to the request; novelty: 1 - max cosine to earlier "
                              "attempts", trajectory=True),
    _offline(NgramScorer, "novelty: share of word 3-grams no earlier attempt used", trajectory=True),
    _offline(CodeCheckScorer, "implementability: code blocks parse in their language and are complete"),
    _offline(FeedbackScorer, "alignment: the reaction classifier on the person's next message"),
    _offline(ChoiceScorer, "alignment: kept over regenerations, regenerated away, prompt edited"),
    _learned("sicql", "SICQL-style critic (Q, expectile V, AWR policy) on the person's verdicts"),
    _learned("mrq", "MLP on the person's verdicts (pointwise + pairwise)"),
    _learned("svm", "linear SVM (hinge) on the person's verdicts"),
    _learned("hrm", "HRM-style: slow high-level and fast low-level recurrent modules over cycles"),
    _learned("ebt", "EBT-style energy E(goal, answer); score sigma(-E), gradient norm as uncertainty"),
    ScorerSpec("llm", REMOTE, DIMENSIONS, "1", False, _llm, "an LLM judge (OpenAI-compatible endpoint)"),
)}
SCORER_NAMES = tuple(SCORERS)
OFFLINE_SCORERS = tuple(n for n, s in SCORERS.items() if s.kind == OFFLINE)
LEARNED_SCORERS = tuple(n for n, s in SCORERS.items() if s.kind == LEARNED)


def spec(name: str) -> ScorerSpec:
    try:
        return SCORERS[name]
    except KeyError:
        raise ValueError(f"unknown scorer {name!r} (scorers: {', '.join(SCORER_NAMES)})") from None


class BrokenScorer:
    """Stands in for a scorer that could not be built (a deleted or corrupt artifact): each of its
    scores fails with the reason, the other scorers go on."""

    needs_embeddings = False

    def __init__(self, name: str, version: str, dimensions: tuple[str, ...], reason: str):
        self.name, self.version, self.dimensions, self.reason = name, version, dimensions, reason

    def score(self, items: Any, dimensions: Any) -> list[dict[str, Any]]:
        raise RuntimeError(self.reason)


def make_scorer(name: str, settings: ScorerSettings | None = None) -> Scorer:
    """Build one scorer. A learned or remote scorer that cannot be built becomes a :class:`BrokenScorer`;
    an offline one that cannot is a bug and raises."""
    sp = spec(name)
    settings = settings or ScorerSettings()
    try:
        return sp.factory(settings)
    except Exception as exc:  # a corrupt artifact fails in many ways (format, shapes); recorded, not hidden
        if sp.kind == OFFLINE:
            raise
        art = settings.learned.get(name)
        return BrokenScorer(name, str(art.version) if art else sp.version, sp.dimensions,
                            f"cannot load scorer {name}: {type(exc).__name__}: {str(exc)[:300]}")


def make_scorers(names: list[str] | tuple[str, ...], settings: ScorerSettings | None = None) -> list[Scorer]:
    return [make_scorer(n, settings) for n in names]


def settings_from_config(cfg: Any, learned: dict[str, LearnedArtifact] | None = None) -> ScorerSettings:
    """The plain settings of ``cfg`` (a StephanieConfig); the judge's key read from its environment variable."""
    import dataclasses
    import os

    scfg = cfg.scoring
    return ScorerSettings(
        embedding=dataclasses.asdict(cfg.embedding), timeout_s=scfg.scorer_timeout_s,
        max_text_chars=scfg.max_text_chars, learned=dict(learned or {}),
        llm={"base_url": scfg.llm_base_url, "model": scfg.llm_model,
             "api_key": os.environ.get(scfg.llm_api_key_env, ""), "timeout_s": scfg.llm_timeout_s,
             "max_retries": scfg.llm_max_retries, "concurrency": scfg.llm_concurrency,
             "max_chars": scfg.llm_max_chars})
