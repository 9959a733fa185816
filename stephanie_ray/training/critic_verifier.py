"""The trained PACS critic as a verifier (registry name ``critic``): calibrated P(good) for (prompt, response).

Settings come from ``VerifierConfig.options`` (the ``verifier`` config section fills them):
``model`` — a model version number or directory ('' = the newest version in the database at ``db_url``),
``threshold`` — label 1 when P(good) is at least this, ``embedding`` — the embedding settings (dict).
A missing or corrupt model version is one clear error when the verifier is built, before any item.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from .critic import LoadedCritic, load_critic, resolve_version
from .dataset import critic_prompt
from .verifiers import Result, Verdict, VerifierConfig, VerifyFailure, VerifyItem


@dataclass
class CriticVerifier:
    critic: LoadedCritic
    threshold: float = 0.5
    name = "critic"
    version: str = ""

    def verify_batch(self, items: Sequence[VerifyItem]) -> list[Result]:
        results: list[Result | None] = [None] * len(items)
        todo = []
        for k, it in enumerate(items):
            if not isinstance(it.prompt, str) or not isinstance(it.response, str) or not it.response.strip():
                results[k] = VerifyFailure("empty response")
            else:
                todo.append(k)
        if todo:
            prompts = [critic_prompt(items[k].prompt, str(items[k].context.get("context") or "")) for k in todo]
            p = self.critic.p_good(prompts, [items[k].response for k in todo])
            cal = "calibrated " if self.critic.calibrator is not None else ""
            for k, pk in zip(todo, p):
                pk = float(min(1.0, max(0.0, pk)))
                results[k] = Verdict(round(pk, 6), int(pk >= self.threshold),
                                     f"critic v{self.version}: {cal}P(good) {pk:.3f}")
        return [r for r in results if r is not None]


def make_critic_verifier(cfg: VerifierConfig) -> CriticVerifier:
    from ..config import EmbeddingConfig

    opts: dict[str, Any] = dict(cfg.options or {})
    ref = str(opts.get("model") or "")
    if ref and not ref.isdigit():
        version, path = None, ref
    else:
        if not opts.get("db_url"):
            raise ValueError("the critic verifier needs options['model'] (a directory) or options['db_url']")
        from ..db import Database

        db = Database.open(str(opts["db_url"]))
        try:
            with db.session() as s:
                version, path = resolve_version(s, ref or None)
        finally:
            db.dispose()
    emb = EmbeddingConfig(**opts["embedding"]) if opts.get("embedding") else None
    critic = load_critic(path, emb)
    return CriticVerifier(critic, float(opts.get("threshold", 0.5)),
                          str(version if version is not None else critic.meta.get("version", "")))
