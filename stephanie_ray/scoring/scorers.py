"""The offline scorers: text structure, conversation feedback, the person's choices, embeddings, n-grams.
Pure Python + numpy.

Each maps what it measures onto [0, 1] and says why in its rationale. Versions change whenever a
rule or constant changes, so stored scores say which rules produced them. The registry
(``registry.py``) lists them; the readability and code-check scorers live in their own modules.
"""

from __future__ import annotations

import math
import re
from typing import Sequence


from ..reactions import Reaction, classify
from .base import Item, Score
from .novelty import novelty_against, trajectory_novelty  # noqa: F401 (trajectory_novelty: its old home)
from .text import content_terms, words

_FENCE = re.compile(r"```")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+\S", re.M)
_BULLET = re.compile(r"^\s*(?:[-*+•・]|\d+[.)])\s+\S", re.M)
_NUMBERED = re.compile(r"^\s*\d+[.)]\s+\S", re.M)
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_COMMAND = re.compile(r"^\s*(?:\$ |>>> |pip |python |npm |git |docker |kubectl |ray |stephanie |make |curl |"
                      r"sudo |apt |brew |conda |uv |cargo |go |psql |sqlite3 )", re.M)
_CODE_TOKENS = re.compile(r"\b(?:def|class|import|return|SELECT|INSERT|UPDATE|CREATE|function|const|let|fn|"
                          r"for|while|if)\b|[{}();=]|->|=>")
# a number not inside a Latin identifier (v2, utf8) but counted next to CJK / Hangul ("10분", "内存8GB")
_NUMBER = re.compile(r"(?<![0-9A-Za-z_.])\d+(?:[.,]\d+)?(?:\s?(?:ms|s|MB|GB|KB|%|x))?(?![0-9A-Za-z_])")
_LINE_WORDS = 100  # a line longer than this many words (or 6 characters a word) is a wall of text


def _squash(x: float, mid: float, width: float) -> float:
    """A smooth step from 0 to 1 centred on ``mid``."""
    return 1.0 / (1.0 + math.exp(-(x - mid) / width))


class StructureScorer:
    """Clarity and implementability from the shape of the text, in any language.

    * clarity = 0.5 structure + 0.2 paragraph size + 0.3 formatting, where structure rewards
      paragraphs, headings and lists in proportion to length, paragraph size penalises a paragraph of
      over 120 words, and formatting checks that code fences are balanced and lines are not walls of
      text (over 100 words, a word being at least 6 characters). Sentence and word statistics are the
      ``readability`` scorer's evidence (readability.py), not this one's;
    * implementability = the strongest of: code blocks, commands, numbered steps, plus concrete
      details (inline code, numbers with units), capped at 1.

    Words are :func:`stephanie_ray.scoring.text.words`: Unicode words of spaced scripts (a Korean
    eojeol is one word), Han / Kana runs counted as one word per two characters.
    """

    name = "structure"
    version = "3"
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
        paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
        marks = len(_HEADING.findall(text)) + len(_BULLET.findall(text)) + len(paragraphs) - 1
        need = max(1.0, len(ws) / 80)  # one structural mark per ~80 words
        structure = min(1.0, marks / need) if len(ws) > 40 else 1.0  # short answers need none
        # the longest paragraph outside code: over 120 words is a wall however many marks the rest has
        longest_par = max((len(words(p)) for p in _FENCE.split(text)[::2] for p in re.split(r"\n\s*\n", p)),
                          default=0)
        paragraph = 1.0 if longest_par <= 120 else max(0.0, 1.0 - (longest_par - 120) / 240)
        fences_ok = len(_FENCE.findall(text)) % 2 == 0
        lines = [ln for ln in text.splitlines() if ln.strip()]
        # a line's length in words, or in characters / 6 (a line under 100 characters has under 100 words)
        longest = max((max(len(words(ln)) if len(ln) > _LINE_WORDS else 0, len(ln) / 6) for ln in lines), default=0)
        formatting = (1.0 if fences_ok else 0.3) * (1.0 if longest <= _LINE_WORDS else 0.6)
        value = 0.5 * structure + 0.2 * paragraph + 0.3 * formatting
        return Score(value, f"{marks} structure marks for {len(ws)} words, longest paragraph {longest_par} words, "
                            f"fences {'balanced' if fences_ok else 'unbalanced'}")

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


# Relevance is measured against the answer's OWN request (its prompt). The CaseBook's goal (title and
# first request of the conversation or goal group) is context only: it weighs in when the request
# alone says little ("continue", "yes, do it", "继续"), and stands in for a missing request. Measured
# against the goal, every CaseBook's first answer - whose request IS the goal - looked most relevant.
SHORT_REQUEST_CHARS = 20  # a request with fewer word characters (\w, any script) is "short"
GOAL_CONTEXT_WEIGHT = 0.5  # the goal's weight beside a short request


def relevance_weights(prompt: str, goal: str) -> tuple[float, float, str]:
    """(weight of the request, weight of the goal, why) for relevance; the weights sum to 1."""
    chars = len(re.findall(r"\w", prompt, re.UNICODE))
    if chars == 0:
        return (0.0, 1.0, "no request: the goal instead") if goal.strip() else (0.0, 0.0, "no request or goal")
    if chars < SHORT_REQUEST_CHARS and goal.strip():
        return 1.0 - GOAL_CONTEXT_WEIGHT, GOAL_CONTEXT_WEIGHT, "short request: the goal as context"
    return 1.0, 0.0, "the request"


class LexicalScorer:
    """Relevance as coverage of the request's content terms by the answer.

    relevance = coverage of terms(prompt) by terms(answer), rescaled so that covering 60% of the terms
    scores 1 (answers rephrase; full coverage is rare). The goal counts only as context
    (:func:`relevance_weights`): beside a short request the coverage is 0.5 request + 0.5 goal, and it
    replaces a missing request. Terms are :func:`stephanie_ray.scoring.text.content_terms`, in any
    script (6-letter stems less multilingual stop words; Korean syllable bigrams of particle-stripped
    words; Chinese / Japanese character bigrams): no IDF, so an item scores alone.
    """

    name = "lexical"
    version = "2"
    dimensions = ("relevance",)
    needs_embeddings = False

    def score(self, items: Sequence[Item], dimensions: Sequence[str]) -> list[dict[str, Score]]:
        out: list[dict[str, Score]] = []
        for it in items:
            if "relevance" not in dimensions:
                out.append({})
                continue
            answer = content_terms(it.text)
            wp, wg, why = relevance_weights(it.prompt, it.goal)
            parts = []
            for weight, source in ((wp, it.prompt), (wg, it.goal)):
                terms = content_terms(source) if weight > 0 else set()
                if terms:
                    parts.append((weight, len(terms & answer) / len(terms)))
            if not parts:
                out.append({"relevance": Score(0.5, "no request terms to compare with")})
                continue
            total = sum(w for w, _ in parts)
            cov = sum(w * c for w, c in parts) / total
            out.append({"relevance": Score(min(1.0, cov / 0.6), f"covers {cov:.0%} of the content terms of {why}")})
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

    * relevance = max(0, cos(answer, request)), rescaled so that a cosine of 0.7 (clearly on-topic for
      MiniLM) scores 1 — the request being the answer's own prompt; the CaseBook's goal is context only
      (:func:`relevance_weights`: beside a short request the cosine is 0.5 request + 0.5 goal, and the
      goal replaces a missing request);
    * novelty = 1 - the highest cosine to any earlier attempt (:func:`trajectory_novelty`). The batch
      stage computes it after the batch along each CaseBook's trajectory; a caller of ``score_batch``
      passes the earlier attempts as ``Item.earlier``. The first attempt has nothing to be novel
      against and gets no novelty score.
    """

    name = "embedding"
    version = "2"
    dimensions = ("relevance", "novelty")
    needs_embeddings = True

    def score(self, items: Sequence[Item], dimensions: Sequence[str]) -> list[dict[str, Score]]:
        out = []
        for it in items:
            res: dict[str, Score] = {}
            if "relevance" in dimensions and it.emb_text is not None:
                wp, wg, why = relevance_weights(it.prompt, it.goal)
                wp = wp if it.emb_prompt is not None else 0.0
                wg = wg if it.emb_goal is not None else 0.0
                if wp + wg > 0:
                    cos = sum(w * max(0.0, float(it.emb_text @ v)) for w, v in ((wp, it.emb_prompt), (wg, it.emb_goal))
                              if w > 0) / (wp + wg)
                    res["relevance"] = Score(min(1.0, cos / 0.7), f"cosine {cos:.2f} to {why}"
                                             + (" (text truncated)" if it.truncated else ""))
                else:
                    res["relevance"] = Score(0.5, "no request or goal to compare with")
            if "novelty" in dimensions and it.emb_text is not None and it.emb_earlier is not None \
                    and len(it.emb_earlier):
                best = float((it.emb_earlier @ it.emb_text).max())
                res["novelty"] = Score(1.0 - best, f"most similar earlier attempt: cosine {best:.2f} "
                                                   f"(of {len(it.emb_earlier)} earlier)")
            out.append(res)
        return out


class NgramScorer:
    """Novelty from wording: the share of the answer's word 3-grams no earlier attempt used
    (:mod:`stephanie_ray.scoring.novelty`). Computed along the trajectory by the batch stage, or
    against ``Item.earlier`` by a caller of ``score_batch``; no score for a first attempt."""

    name = "ngram"
    version = "1"
    dimensions = ("novelty",)
    needs_embeddings = False

    def score(self, items: Sequence[Item], dimensions: Sequence[str]) -> list[dict[str, Score]]:
        out: list[dict[str, Score]] = []
        for it in items:
            value, new, total = novelty_against(it.text, it.earlier) if "novelty" in dimensions else (None, 0, 0)
            out.append({"novelty": ngram_score(value, new, total, len(it.earlier))} if value is not None else {})
        return out


def ngram_score(value: float, new: int, total: int, earlier: int) -> Score:
    return Score(value, f"{new} of {total} word 3-grams new (against {earlier} earlier attempts)")


# The person's choices between answers: what they kept, regenerated away or asked again differently.
CHOICE_KEPT, CHOICE_REGENERATED, CHOICE_EDITED = 0.9, 0.15, 0.25


class ChoiceScorer:
    """Alignment from the person's choices between answers, not from their words:

    * **kept** on the active thread over k earlier regenerations it replaced -> 0.9 (they compared and chose it);
    * **regenerated away** (a later answer replaced it) -> 0.15;
    * **prompt edited** after it (the person asked again differently) -> 0.25;
    * no choice made (the only answer to its request, the prompt never edited): no score.

    A whole conversation (conversation mode) scores the mean over its turns with a choice (edits).
    The ``feedback`` scorer reads the person's next message; for an answer with no next message it
    falls back on the same regenerate / edit signals, so the two share that evidence there only.
    """

    name = "choice"
    version = "1"
    dimensions = ("alignment",)
    needs_embeddings = False

    def score(self, items: Sequence[Item], dimensions: Sequence[str]) -> list[dict[str, Score]]:
        out: list[dict[str, Score]] = []
        for it in items:
            s = self.alignment(it) if "alignment" in dimensions else None
            out.append({"alignment": s} if s is not None else {})
        return out

    @staticmethod
    def alignment(it: Item) -> Score | None:
        turns = it.extra.get("turns")
        if turns:
            chosen = [CHOICE_REGENERATED if t.get("regenerated") else CHOICE_EDITED for t in turns
                      if t.get("regenerated") or t.get("edited")]
            if not chosen:
                return None
            return Score(sum(chosen) / len(chosen), f"{len(chosen)} of {len(turns)} turns redone (regenerated or edited)")
        if it.regenerated:
            return Score(CHOICE_REGENERATED, "regenerated away: a later answer replaced it")
        if it.edited:
            return Score(CHOICE_EDITED, "the person edited the prompt after it")
        if it.replaced > 0:
            return Score(CHOICE_KEPT, f"kept on the active thread over {it.replaced} regeneration"
                                      f"{'s' if it.replaced != 1 else ''} it replaced")
        return None
