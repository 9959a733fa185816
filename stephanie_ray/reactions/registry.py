"""The one registry of reaction backends: name -> (factory from ``ReactionsConfig``, what it is).

Config (``reactions.backend`` is checked against it), the CLI (``--backend``), the benchmark and the
feedback scorer all build backends here. Heavy imports (torch, transformers) happen inside the
factories, so importing this module stays cheap.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from .base import Backend

if TYPE_CHECKING:
    from ..config import ReactionsConfig


@dataclass(frozen=True)
class BackendSpec:
    name: str
    factory: Callable[["ReactionsConfig"], Backend]
    help: str


def _rules(cfg: "ReactionsConfig") -> Backend:
    from .rules import RulesBackend

    return RulesBackend(reask_similarity=cfg.reask_similarity, reask_max_new=cfg.reask_max_new,
                        approve_window=cfg.approve_window_chars)


def _llm(cfg: "ReactionsConfig") -> Backend:
    from .llm import LLMBackend

    return LLMBackend(cfg.llm_base_url, cfg.llm_model, os.environ.get(cfg.llm_api_key_env, ""),
                      timeout_s=cfg.llm_timeout_s, max_retries=cfg.llm_max_retries,
                      concurrency=cfg.llm_concurrency, max_chars=cfg.llm_max_chars)


def _hf(cfg: "ReactionsConfig") -> Backend:
    from .hf import HFBackend

    return HFBackend(cfg.hf_model, cfg.hf_label_map, batch_size=cfg.hf_batch_size, max_length=cfg.hf_max_length,
                     device=cfg.hf_device)


BACKENDS: dict[str, BackendSpec] = {s.name: s for s in (
    BackendSpec("rules", _rules, "offline, any language: error shapes, re-asks, a multilingual lexicon (default)"),
    BackendSpec("llm", _llm, "an LLM judge over an OpenAI-compatible chat-completions endpoint"),
    BackendSpec("hf", _hf, "a Hugging Face sequence-classification model (name or local path)"),
)}
BACKEND_NAMES = tuple(BACKENDS)


def make_backend(cfg: "ReactionsConfig | None" = None, name: str | None = None) -> Backend:
    """Build the backend ``name`` (default: ``cfg.backend``) from ``cfg`` (default: the defaults)."""
    if cfg is None:
        from ..config import ReactionsConfig

        cfg = ReactionsConfig()
    name = name or cfg.backend
    if name not in BACKENDS:
        raise ValueError(f"unknown reaction backend {name!r} (backends: {', '.join(BACKENDS)})")
    return BACKENDS[name].factory(cfg)
