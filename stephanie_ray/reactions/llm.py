"""The ``llm`` backend: an LLM judge over any OpenAI-compatible chat-completions endpoint.

The judge reads the request, the answer and the person's next message and replies with one JSON
object ``{"label": "...", "confidence": 0-1, "rationale": "..."}``. As with the scoring judge
(:mod:`stephanie_ray.scoring.llm`), an HTTP error, a timeout or a malformed reply (no JSON, an
unknown label, a confidence outside [0, 1]) is retried up to ``max_retries`` times and then
becomes a :class:`~.base.ReactionError` for that item; the other items of the batch stand. Items are
judged concurrently (a few requests in flight). Items without a next message are not sent: their
reaction is structural (:func:`~.base.structural`).
"""

from __future__ import annotations

import concurrent.futures as cf
from typing import Any, Sequence

from ..llm_client import ChatEndpoint, reply_json_object
from .base import LABELS, Reaction, ReactionError, ReactionInput, structural

SYSTEM = (
    "You read a conversation between a person and an AI assistant and classify the person's reaction to the "
    "assistant's answer, as shown by the person's next message (in any language). Labels:\n"
    "- corrected: the answer failed or missed: the person says it is wrong, does not work, is not what they asked, "
    "prefers something else, pastes an error the answer's code or steps produced, or asks the same again;\n"
    "- accepted: the person approves of the answer (thanks, it works, perfect);\n"
    "- continued: the person goes on (a new request, a follow-up question, the output the assistant asked for) "
    "without judging the answer;\n"
    "- none: there is no next message.\n"
    'Reply with one JSON object only: {"label": "<label>", "confidence": <0..1>, "rationale": "<one sentence>"}.'
)


class LLMBackend:
    name = "llm"

    def __init__(self, base_url: str, model: str = "", api_key: str = "", timeout_s: float = 30.0,
                 max_retries: int = 2, concurrency: int = 4, max_chars: int = 4000):
        if not base_url:
            raise ValueError("the llm reaction backend needs reactions.llm_base_url")
        self.endpoint = ChatEndpoint(base_url, model, api_key, timeout_s, max_retries)
        self.url = self.endpoint.url
        self.model = model
        self.concurrency = max(1, concurrency)
        self.max_chars = max_chars
        self.version = f"1:{model or 'default'}"

    def message(self, it: ReactionInput) -> str:
        flags = [f for f, on in (("the answer was later regenerated", it.regenerated),
                                 ("the person later edited the request", it.edited)) if on]
        n = self.max_chars
        return (f"Request:\n{it.prompt[:n]}\n\nAnswer (its end):\n{it.answer[-n:]}\n\n"
                f"Next message:\n{it.next_text[:n] or '(none)'}"
                + (f"\n\nAlso: {'; '.join(flags)}." if flags else ""))

    def _ask(self, it: ReactionInput) -> Reaction:
        fixed = structural(it)
        if fixed is not None:
            return fixed
        return self.endpoint.ask(SYSTEM, self.message(it), self.parse, ReactionError, what="reaction judge")

    @staticmethod
    def parse(reply: Any) -> Reaction:
        obj = reply_json_object(reply, ReactionError)
        if not isinstance(obj, dict):
            raise ReactionError("the reply's JSON is not an object")
        label = obj.get("label")
        if not isinstance(label, str) or label.strip().lower() not in LABELS:
            raise ReactionError(f"label missing or unknown: {label!r} (labels: {', '.join(LABELS)})")
        conf = obj.get("confidence")
        if isinstance(conf, bool) or not isinstance(conf, (int, float)) or not 0 <= conf <= 1:
            raise ReactionError(f"confidence missing or outside [0, 1]: {conf!r}")
        why = str(obj.get("rationale") or "")[:500] or "the judge gave no rationale"
        return Reaction(label.strip().lower(), float(conf), why)

    def classify_batch(self, items: Sequence[ReactionInput]) -> list[Reaction | ReactionError]:
        with cf.ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = [pool.submit(self._ask, it) for it in items]
            out: list[Reaction | ReactionError] = []
            for f in futures:
                try:
                    out.append(f.result())
                except ReactionError as exc:  # this item fails with the reason; the others stand
                    out.append(exc)
        return out
