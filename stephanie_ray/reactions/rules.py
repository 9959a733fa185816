"""The offline ``rules`` backend: language-independent signals plus a multilingual lexicon.

Decision, first match wins (each rule names its evidence in the rationale):

1. no next message -> :func:`~.base.structural` (none; corrected when regenerated away or edited);
2. a **complaint** phrase in any language ("doesn't work", "werkt niet", "작동하지 않아요", "还是不行",
   "I'd rather", "but I get", "no, ...") -> corrected;
3. **error output** in the next message (a traceback, stack frames, an HTTP / database / compiler /
   test-runner error) -> corrected — unless the answer asked the person to run something and paste
   the output, in which case the pasted output is the reply it asked for (rule 8);
4. the next message **asks the same again**: high similarity to the prompt (token or character-
   trigram Jaccard >= ``reask_similarity``) *and* little new content (at most ``reask_max_new`` of
   its tokens new) -> corrected. A follow-up that reuses the request's terms but adds its own is not
   a re-ask;
5. an **approval** of the answer (gratitude anywhere in the opening; "that works", "perfect" ...,
   outside questions and negations) -> accepted, even if it also mentions a bug in passing;
6. weaker **problem** words ("error", "bug", "it fails"; not inside output the answer asked for) or a
   short message of disbelief ("Spain??") -> corrected, with low confidence;
7. a regeneration replaced the answer, or the prompt was edited after it -> corrected;
8. anything else -> continued (the output the assistant asked for, a new request, a follow-up).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from .base import Reaction, ReactionError, ReactionInput, structural
from .lexicon import EMOJI_APPROVE, EMOJI_COMPLAIN, LEXICON
from .text import error_shape, normalise, overlap, prose, tokens

CATEGORIES = ("complain", "complain_open", "problem", "thanks", "approve", "approve_open", "asks_output")
_GAP = r".{0,40}?"  # "..." in a phrase
# A negation right before an approval turns it around ("not helpful", "nicht verstanden", "안 됐어요").
_NEGATED = re.compile(r"(?:(?<!\w)(?:not|no|never|nt|niet|geen|nicht|kein\w*|pas|non|nao|не|нет|nie|ni)\s+(?:\w+\s+)?"
                      r"|[不没沒]|(?:안|못)\s?)$")
_DISBELIEF = re.compile(r"[?？][?？!！]+")  # "Spain??", "what?!": disbelief, in any language
_SENTENCE_END = re.compile(r"[.!?。！？\n]")
_LEADING = re.compile(r"^[\W_]*?(?:(?:ok|okay|oh|ah|hm+|wow|yeah|ja|oké|d'accord|vale|allora|bueno|ну|哦|啊|오)[\s,!.]+)?",
                      re.I)


def _phrase_regex(phrase: str, spaced: bool) -> str:
    p = normalise(phrase)
    stem = p.endswith("*")
    p = p.rstrip("*")
    body = _GAP.join(re.escape(part.strip()) for part in p.split("...")) if "..." in p else re.escape(p)
    if not spaced:
        return body
    left = r"(?<!\w)" if re.match(r"\w", p) else ""
    right = "" if stem or not re.search(r"\w$", p) else r"(?!\w)"
    return left + body + right


@dataclass(frozen=True, slots=True)
class Hit:
    lang: str
    phrase: str
    start: int
    end: int


class Lexicon:
    """The lexicon compiled once: per category, one regex per language (named groups are too many)."""

    def __init__(self, lexicon: dict[str, dict[str, object]] = LEXICON):
        self.patterns: dict[str, list[tuple[str, re.Pattern[str]]]] = {c: [] for c in CATEGORIES}
        for lang, entry in lexicon.items():
            spaced = bool(entry["spaced"])
            for cat in CATEGORIES:
                entries: list[str] = list(entry.get(cat, ()))  # type: ignore[call-overload]
                phrases = sorted(set(entries), key=len, reverse=True)  # longest first: the most specific wins
                if not phrases:
                    continue
                alts = "|".join(_phrase_regex(p, spaced) for p in phrases)
                if cat == "complain_open":  # the opening word, then a break ("No." but not "No explanation")
                    alts = rf"^(?:{alts})(?:\s*[,.!?;:…\-–—]|\s*$)"
                elif cat == "approve_open":  # the opening word, maybe one more ("Great explanation."), a break
                    alts = rf"^(?:{alts})(?:\s+\w+)?(?:\s*[,.!;:…\-–—]|\s*$)"
                self.patterns[cat].append((lang, re.compile(alts, re.UNICODE)))

    def find(self, category: str, text: str) -> list[Hit]:
        hits = []
        for lang, pattern in self.patterns[category]:
            for m in pattern.finditer(text):
                hits.append(Hit(lang, m.group(0).strip(" ,.!;:"), m.start(), m.end()))
        return sorted(hits, key=lambda h: h.start)


_LEXICON: Lexicon | None = None


def compiled_lexicon() -> Lexicon:
    global _LEXICON
    if _LEXICON is None:
        _LEXICON = Lexicon()
    return _LEXICON


def _in_question(text: str, pos: int) -> bool:
    m = _SENTENCE_END.search(text, pos)
    return bool(m and m.group(0) in "?？")


def _negated(text: str, pos: int) -> bool:
    return bool(_NEGATED.search(text[max(0, pos - 16):pos]))


@dataclass
class RulesBackend:
    """Offline, deterministic, any language. Thresholds come from ``ReactionsConfig``."""

    reask_similarity: float = 0.7
    reask_max_new: float = 0.25
    approve_window: int = 160
    problem_window: int = 300
    complaint_window: int = 600  # the lexicon reads the first this many characters of the person's own words
    answer_tail: int = 1500  # where in the answer to look for a request to paste output (its end)

    name = "rules"
    version = "1"

    def __post_init__(self) -> None:
        self.lexicon = compiled_lexicon()

    def classify_batch(self, items: Sequence[ReactionInput]) -> list[Reaction | ReactionError]:
        return [self.classify(it) for it in items]

    def classify(self, item: ReactionInput) -> Reaction:
        fixed = structural(item)
        if fixed is not None:
            return fixed
        raw = item.next_text
        text = normalise(prose(raw))[: self.complaint_window]
        lex = self.lexicon
        opening = _LEADING.sub("", text, count=1)

        complaints = lex.find("complain", text) + lex.find("complain_open", opening)
        complaints += [Hit("any", e, raw.find(e), raw.find(e) + len(e)) for e in EMOJI_COMPLAIN if e in raw]
        if complaints:
            h = complaints[0]
            conf = 0.9 if len(complaints) > 1 else 0.8
            return Reaction("corrected", conf, f"the next message complains ({h.lang}: {h.phrase!r})")

        shape = error_shape(raw)
        asked = self._asked_for_output(item.answer) if shape else None
        if shape and not asked:
            return Reaction("corrected", 0.8, f"the next message shows {shape}")

        if item.prompt.strip():
            ov = overlap(item.prompt, raw)
            if ov.similarity >= self.reask_similarity and ov.new_share <= self.reask_max_new:
                return Reaction("corrected", 0.7, f"the next message asks the same again (similarity "
                                                  f"{ov.similarity:.2f}, {ov.new_share:.0%} new)")

        window = text[: self.approve_window]
        approvals = [h for h in lex.find("thanks", window) if not _negated(window, h.start)]
        approvals += [h for h in lex.find("approve", window)
                      if not _in_question(window, h.start) and not _negated(window, h.start)]
        approvals += [Hit("open", h.phrase, h.start, h.end) for h in lex.find("approve_open", opening)]
        approvals += [Hit("any", e, 0, 0) for e in EMOJI_APPROVE if e in raw[: self.approve_window]]
        if approvals:
            h = approvals[0]
            conf = 0.9 if len(approvals) > 1 else 0.8
            return Reaction("accepted", conf, f"the next message approves of it ({h.lang}: {h.phrase!r})")

        # Problem words inside output the answer asked for are the output's, not the person's.
        problems = [] if self._asked_for_output(item.answer) else \
            [h for h in lex.find("problem", text[: self.problem_window]) if not _negated(text, h.start)]
        if _DISBELIEF.search(raw) and len(tokens(raw)) <= 6:
            problems.append(Hit("any", _DISBELIEF.search(raw).group(0), 0, 0))  # type: ignore[union-attr]
        if problems:
            h = problems[0]
            return Reaction("corrected", 0.55, f"the next message reports a problem ({h.lang}: {h.phrase!r})")
        if item.regenerated:
            return Reaction("corrected", 0.6, "a regenerated answer replaced it")
        if item.edited:
            return Reaction("corrected", 0.55, "the person edited the prompt after it")
        if shape:
            return Reaction("continued", 0.7, f"the next message pastes the output the answer asked for "
                                              f"({asked!r}; it shows {shape})")
        return Reaction("continued", 0.6, "the person goes on without judging the answer")

    def _asked_for_output(self, answer: str) -> str | None:
        """The phrase with which the answer asks the person to paste or share output, or None."""
        tail = normalise(answer[-self.answer_tail:])
        hits = self.lexicon.find("asks_output", tail)
        return hits[0].phrase if hits else None
