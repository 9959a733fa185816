"""The offline scorers: text structure, conversation feedback, embeddings. Pure Python + numpy.

Each maps what it measures onto [0, 1] and says why in its rationale. Versions change whenever a
rule or constant changes, so stored scores say which rules produced them.
"""

from __future__ import annotations

import math
import re
from typing import Sequence

import numpy as np

from ..reactions import Reaction, classify
from .base import Item, Score

_WORD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_'\-]*")
_SENT = re.compile(r"[.!?]+(?:\s|$)")
_FENCE = re.compile(r"```")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+\S", re.M)
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+\S", re.M)
_NUMBERED = re.compile(r"^\s*\d+[.)]\s+\S", re.M)
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_COMMAND = re.compile(r"^\s*(?:\$ |>>> |pip |python |npm |git |docker |kubectl |ray |stephanie |make |curl |"
                      r"sudo |apt |brew |conda |uv |cargo |go |psql |sqlite3 )", re.M)
_CODE_TOKENS = re.compile(r"\b(?:def|class|import|return|SELECT|INSERT|UPDATE|CREATE|function|const|let|fn|"
                          r"for|while|if)\b|[{}();=]|->|=>")
_NUMBER = re.compile(r"\b\d+(?:\.\d+)?(?:\s?(?:ms|s|MB|GB|KB|%|x))?\b")
_STOP = frozenset("""a an the and or but if then else of to in on for with by at from as is are was were be been
being it its this that these those i you he she we they me my your our their what which who whom how why
when where do does did done can could should would will shall may might must not no yes so than too very
just about into over under again more most some any each all both few other such only own same up down out
off here there also please thanks thank hi hello ok okay""".split())


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def content_terms(text: str) -> set[str]:
    return {w.lower() for w in words(text) if len(w) > 2 and w.lower() not in _STOP}


def _squash(x: float, mid: float, width: float) -> float:
    """A smooth step from 0 to 1 centred on ``mid``."""
    return 1.0 / (1.0 + math.exp(-(x - mid) / width))


class StructureScorer:
    """Clarity and implementability from the shape of the text.

    * clarity = 0.4 readability + 0.35 structure + 0.25 formatting, where readability rewards
      sentences of 8-25 words and words of moderate length, structure rewards paragraphs, headings
      and lists in proportion to length, and formatting checks that code fences are balanced and
      lines are not walls of text;
    * implementability = the strongest of: code blocks, commands, numbered steps, plus concrete
      details (inline code, numbers with units), capped at 1.
    """

    name = "structure"
    version = "1"
    dimensions = ("clarity", "implementability")
    needs_embeddings = False

    def score(self, items: Sequence[Item], dimensions: Sequence[str]) -> list[dict[str, Score]]:
        out = []
        for it in items:
            res: dict[str, Score] = {}
            if "clarity" in dimensions:
                res["clarity"] = self.clarity(it.text)
            if "implementability" in dimensions:
                res["implementability"] = self.implementability(it.text)
            out.append(res)
        return out

    @staticmethod
    def clarity(text: str) -> Score:
        ws = words(text)
        if not ws:
            return Score(0.0, "no words")
        prose = _FENCE.split(text)[::2]  # outside code fences
        prose_text = "\n".join(prose)
        sentences = max(1, len(_SENT.findall(prose_text)))
        prose_words = max(1, len(words(prose_text)))
        wps = prose_words / sentences
        avg_len = sum(len(w) for w in ws) / len(ws)
        # readability: best around 12-20 words per sentence and 4-6 letters per word
        read = math.exp(-((wps - 16) / 14) ** 2) * math.exp(-((avg_len - 5) / 3.5) ** 2)
        paragraphs = len([p for p in re.split(r"\n\s*\n", text) if p.strip()])
        marks = len(_HEADING.findall(text)) + len(_BULLET.findall(text)) + paragraphs - 1
        need = max(1.0, len(ws) / 80)  # one structural mark per ~80 words
        structure = min(1.0, marks / need) if len(ws) > 40 else 1.0  # short answers need none
        fences_ok = len(_FENCE.findall(text)) % 2 == 0
        lines = [ln for ln in text.splitlines() if ln.strip()]
        longest = max((len(ln) for ln in lines), default=0)
        formatting = (1.0 if fences_ok else 0.3) * (1.0 if longest <= 600 else 0.6)
        value = 0.4 * read + 0.35 * structure + 0.25 * formatting
        return Score(value, f"{wps:.0f} words/sentence, {avg_len:.1f} letters/word, {marks} structure marks for "
                            f"{len(ws)} words, fences {'balanced' if fences_ok else 'unbalanced'}")

    @staticmethod
    def implementability(text: str) -> Score:
        if not text.strip():
            return Score(0.0, "empty")
        fences = len(_FENCE.findall(text)) // 2
        code_tokens = len(_CODE_TOKENS.findall("\n".join(_FENCE.split(text)[1::2])))
        commands = len(_COMMAND.findall(text))
        steps = len(_NUMBERED.findall(text))
        inline = len(_INLINE_CODE.findall(text))
        numbers = len(_NUMBER.findall(text))
        code = min(1.0, fences * 0.45 + min(code_tokens, 40) / 80)
        cmd = min(1.0, commands * 0.3)
        step = min(1.0, steps / 4)
        concrete = min(1.0, inline / 6 + numbers / 12)
        value = min(1.0, max(code, cmd, step) * 0.8 + concrete * 0.35)
        return Score(value, f"{fences} code blocks, {commands} commands, {steps} numbered steps, "
                            f"{inline} inline code spans, {numbers} numbers")


class LexicalScorer:
    """Relevance as coverage of the request's content terms by the answer (and of the goal's).

    relevance = 0.75 * |terms(prompt) ∩ terms(answer)| / |terms(prompt)| + 0.25 * the same for the goal,
    rescaled so that covering 60% of the terms scores 1 (answers rephrase; full coverage is rare).
    """

    name = "lexical"
    version = "1"
    dimensions = ("relevance",)
    needs_embeddings = False

    def score(self, items: Sequence[Item], dimensions: Sequence[str]) -> list[dict[str, Score]]:
        out: list[dict[str, Score]] = []
        for it in items:
            if "relevance" not in dimensions:
                out.append({})
                continue
            answer = content_terms(it.text)
            parts = []
            for weight, source in ((0.75, it.prompt), (0.25, it.goal)):
                terms = content_terms(source)
                if terms:
                    parts.append((weight, len(terms & answer) / len(terms)))
            if not parts:
                out.append({"relevance": Score(0.5, "no request terms to compare with")})
                continue
            total = sum(w for w, _ in parts)
            cov = sum(w * c for w, c in parts) / total
            out.append({"relevance": Score(min(1.0, cov / 0.6), f"covers {cov:.0%} of the request's content terms")})
        return out


# Conversation feedback: what the person did after the answer, read by the reactions classifier
# (stephanie_ray.reactions, offline rules backend: any language). Alignment per reaction label, before
# scaling by the classifier's confidence c: value = 0.5 + c * (TARGET - 0.5).
ALIGNMENT_TARGET = {"corrected": 0.1, "accepted": 0.95, "continued": 0.65, "none": 0.5}


class FeedbackScorer:
    """Alignment from the person's own reaction — the human feedback already in the chats.

    The person's next message (with the regenerated / edited flags) is classified by
    :func:`stephanie_ray.reactions.classify` (the offline ``rules`` backend: error output, asking the
    same again, a multilingual lexicon of complaints and approvals; see the README) and the reaction
    is mapped to a score that moves from neutral 0.5 towards its label's target by the confidence c:

    * **corrected** (complaint, error output, asked again, regenerated away, prompt edited) -> towards 0.1;
    * **accepted** ("thanks, that works", "perfect", "werkt!", "감사합니다") -> towards 0.95;
    * **continued** (a new request, a follow-up, the output the assistant asked for) -> towards 0.65,
      mild evidence the answer was usable;
    * **none** (the end of the conversation) -> 0.5, neutral.

    The rationale is "<label> (<confidence>): <the reaction's rationale>". A whole conversation
    (conversation mode) scores the mean of its active turns' scores.
    """

    name = "feedback"
    version = "2"
    dimensions = ("alignment",)
    needs_embeddings = False

    def score(self, items: Sequence[Item], dimensions: Sequence[str]) -> list[dict[str, Score]]:
        return [{"alignment": self.alignment(it)} if "alignment" in dimensions else {} for it in items]

    @classmethod
    def alignment(cls, it: Item) -> Score:
        turns = it.extra.get("turns")
        if turns:
            reactions = [classify(t.get("prompt", ""), "", t.get("next_user") or None,
                                  regenerated=bool(t.get("regenerated")), edited=bool(t.get("edited")))
                         for t in turns]
            parts = [cls.from_reaction(r) for r in reactions]
            accepted = sum(r.label == "accepted" for r in reactions)
            corrected = sum(r.label == "corrected" for r in reactions)
            return Score(sum(p.value for p in parts) / len(parts),
                         f"mean over {len(parts)} turns: {accepted} accepted, {corrected} corrected")
        return cls.from_reaction(classify(it.prompt, it.text, it.next_user or None, regenerated=it.regenerated,
                                          edited=it.edited))

    @staticmethod
    def from_reaction(r: Reaction) -> Score:
        value = 0.5 + r.confidence * (ALIGNMENT_TARGET[r.label] - 0.5)
        return Score(value, f"{r.label} ({r.confidence:.2f}): {r.rationale}")


class EmbeddingScorer:
    """Relevance and novelty from MiniLM sentence embeddings (unit vectors, computed once per item).

    * relevance = max(0, cos(answer, goal)), rescaled so that a cosine of 0.7 (clearly on-topic for
      MiniLM) scores 1 — the goal being the CaseBook's (title and first request of the conversation, or
      of the goal group);
    * novelty is filled in after the batch, per CaseBook trajectory (:func:`trajectory_novelty`):
      1 - the highest cosine to any earlier scorable of the same CaseBook; the first attempt has nothing
      to be novel against and gets no novelty score.
    """

    name = "embedding"
    version = "1"
    dimensions = ("relevance", "novelty")
    needs_embeddings = True

    def score(self, items: Sequence[Item], dimensions: Sequence[str]) -> list[dict[str, Score]]:
        out = []
        for it in items:
            res: dict[str, Score] = {}
            if "relevance" in dimensions and it.emb_text is not None:
                if it.emb_goal is not None:
                    cos = max(0.0, float(it.emb_text @ it.emb_goal))
                    why = f"cosine {cos:.2f} to the goal" + (" (text truncated)" if it.truncated else "")
                    res["relevance"] = Score(min(1.0, cos / 0.7), why)
                else:
                    res["relevance"] = Score(0.5, "no goal to compare with")
            out.append(res)
        return out


def trajectory_novelty(embeddings: np.ndarray) -> np.ndarray:
    """(n, dim) unit vectors in trajectory order -> (n,) novelty: 1 - max cosine to any earlier one."""
    n = embeddings.shape[0]
    out = np.ones(n, dtype=np.float32)
    if n < 2:
        return out
    sims = embeddings @ embeddings.T  # (n, n)
    lower = np.tril(sims, k=-1)  # only earlier items
    lower[np.triu_indices(n)] = -np.inf
    best = lower.max(axis=1)  # (n,), -inf for the first
    out[1:] = np.clip(1.0 - best[1:], 0.0, 1.0)
    return out


OFFLINE_SCORERS = {"structure": StructureScorer, "lexical": LexicalScorer, "feedback": FeedbackScorer,
                   "embedding": EmbeddingScorer}
