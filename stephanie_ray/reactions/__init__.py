"""Reactions: what the person's next message says about the answer before it.

Pure (no Ray, no database): ``classify(prompt, answer, next)`` -> :class:`Reaction` (label
corrected / accepted / continued / none, a confidence in [0, 1] and a rationale), and
``classify_batch`` for many. Backends live in one registry (:data:`BACKENDS`): ``rules`` (offline
default, any language), ``llm`` (an OpenAI-compatible judge) and ``hf`` (a Hugging Face classifier).
"""

from __future__ import annotations

from typing import Sequence

from .base import LABELS, Backend, Reaction, ReactionError, ReactionInput, structural
from .registry import BACKEND_NAMES, BACKENDS, make_backend

__all__ = ["LABELS", "BACKENDS", "BACKEND_NAMES", "Backend", "Reaction", "ReactionError", "ReactionInput",
           "classify", "classify_batch", "default_backend", "make_backend", "structural"]

_DEFAULT: Backend | None = None


def default_backend() -> Backend:
    """The offline rules backend with the configuration's default thresholds (built once per process)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = make_backend(None, "rules")
    return _DEFAULT


def classify(prompt: str, answer: str, next: str | None, *, regenerated: bool = False, edited: bool = False,
             backend: Backend | None = None) -> Reaction:
    """The person's reaction to ``answer`` (to ``prompt``), read from their ``next`` message.

    Raises :class:`ReactionError` when the backend could not classify it (e.g. a malformed LLM reply).
    """
    (result,) = classify_batch([ReactionInput(prompt, answer, next, regenerated, edited)], backend=backend)
    if isinstance(result, ReactionError):
        raise result
    return result


def classify_batch(items: Sequence[ReactionInput], *, backend: Backend | None = None) -> list[Reaction | ReactionError]:
    """One result per item, in order: a :class:`Reaction`, or a :class:`ReactionError` for an item that failed."""
    results = (backend or default_backend()).classify_batch(list(items))
    if len(results) != len(items):
        raise RuntimeError(f"reaction backend returned {len(results)} results for {len(items)} items")
    return results
