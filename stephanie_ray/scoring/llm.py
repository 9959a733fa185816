"""An LLM judge through any OpenAI-compatible chat-completions endpoint (used only when configured).

The judge is asked for one JSON object ``{"<dimension>": {"score": 0-10, "rationale": "..."}}``.
A reply that is not such an object (no JSON, a missing dimension, a score out of range), an HTTP
error or a timeout is retried up to ``max_retries`` times; after that the item's scores are recorded
as failed with the reason. Items of a batch are judged concurrently (a few requests in flight).
"""

from __future__ import annotations

import concurrent.futures as cf
from typing import Any, Sequence

from ..llm_client import ChatEndpoint, reply_json_object
from .base import Item, Score

SYSTEM = ("You grade an AI assistant's answer to a person's request. For each dimension asked, give a score from "
          "0 (worst) to 10 (best) and a one-sentence rationale. Reply with one JSON object only, shaped "
          '{"<dimension>": {"score": <0-10>, "rationale": "<why>"}}.')
DEFINITIONS = {
    "novelty": "brings something new compared with what an average answer would say",
    "clarity": "is clear, well organised and easy to follow",
    "relevance": "addresses exactly what was asked",
    "implementability": "can be acted on directly: concrete steps, code, commands",
    "alignment": "does what the person wanted, respecting their intent and constraints",
}


class JudgeError(RuntimeError):
    pass


class LLMJudge:
    name = "llm"
    dimensions = tuple(DEFINITIONS)
    needs_embeddings = False

    def __init__(self, base_url: str, model: str, api_key: str, timeout_s: float, max_retries: int,
                 concurrency: int, max_chars: int):
        """Every setting from ``scoring.llm_*`` (config.py holds the defaults)."""
        if not base_url:
            raise ValueError("the LLM judge needs scoring.llm_base_url")
        self.endpoint = ChatEndpoint(base_url, model, api_key, timeout_s, max_retries)
        self.url = self.endpoint.url
        self.model = model
        self.concurrency = concurrency
        self.max_chars = max_chars
        self.version = f"1:{model or 'default'}"

    def _ask(self, it: Item, dims: Sequence[str]) -> dict[str, Score]:
        asked = "\n".join(f"- {d}: {DEFINITIONS[d]}" for d in dims)
        user = (f"Goal: {it.goal[:1000]}\n\nRequest: {it.prompt[: self.max_chars]}\n\n"
                f"Answer: {it.text[: self.max_chars]}\n\nDimensions:\n{asked}")
        return self.endpoint.ask(SYSTEM, user, lambda reply: self.parse(reply, dims), JudgeError)

    @staticmethod
    def parse(reply: Any, dims: Sequence[str]) -> dict[str, Score]:
        obj = reply_json_object(reply, JudgeError)
        out = {}
        for d in dims:
            entry = obj.get(d) if isinstance(obj, dict) else None
            score = entry.get("score") if isinstance(entry, dict) else entry
            if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 10:
                raise JudgeError(f"dimension {d!r}: score missing or outside 0-10: {score!r}")
            why = entry.get("rationale", "") if isinstance(entry, dict) else ""
            out[d] = Score(score / 10.0, str(why)[:500] or "judge gave no rationale")
        return out

    def score(self, items: Sequence[Item], dimensions: Sequence[str]) -> list[dict[str, Any]]:
        dims = [d for d in dimensions if d in DEFINITIONS]
        with cf.ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = [pool.submit(self._ask, it, dims) for it in items]
            out: list[dict[str, Any]] = []
            for f in futures:
                try:
                    out.append(f.result())
                except JudgeError as exc:  # this item's judge scores fail with the reason; the others stand
                    out.append({d: exc for d in dims})
        return out
