"""Readability of the prose, in any language, from sentence and word statistics. Pure Python.

No syllable counting (that is English-only): a text is cut into sentences (``. ! ?`` before a
space, ``。！？؟।`` anywhere) and word units (:func:`stephanie_ray.scoring.text.words`: Unicode
words; Han / Kana runs in two-character units; a Korean eojeol is one word), outside code fences,
headings and list markers. Four statistics, each mapped to [0, 1]:

* **sentence length**: the median sentence in word units, best between 8 and 22 (a Gaussian-like
  penalty outside), weight 0.35;
* **long sentences**: the share of sentences over 35 units (run-ons), weight 0.25;
* **word length**: letters per word minus its script's usual length (5 letters, Hangul 3 syllables,
  Han / Kana units 2) — jargon and compounds read slower, weight 0.2;
* **variety**: the moving-average type-token ratio over windows of 40 units (repetition reads
  poorly), weight 0.2.

Structure (paragraphs, lists, headings, fences) is the ``structure`` scorer's evidence, not this one's:
the two measure clarity from different evidence, so MARS can tell whether they agree.
"""

from __future__ import annotations

import math
import re
import statistics

from .base import Score
from .text import word_length_deviation, words

_FENCE = re.compile(r"```.*?(?:```|$)", re.S)
_SENT = re.compile(r"[.!?]+(?=\s|$)|[。！？؟।॥]+")
_MARKUP = re.compile(r"^\s{0,3}(?:#{1,6}\s+|[-*+•・]\s+|\d+[.)]\s+|>\s*)", re.M)
LONG_SENTENCE = 35
WINDOW = 40


def _mattr(ws: list[str]) -> float:
    """Moving-average type-token ratio (1.0 for texts shorter than the window)."""
    ws = [w.casefold() for w in ws]
    if len(ws) <= WINDOW:
        return len(set(ws)) / len(ws) if ws else 1.0
    step = max(1, (len(ws) - WINDOW) // 50)  # at most ~50 windows: linear time on long texts
    ratios = [len(set(ws[i:i + WINDOW])) / WINDOW for i in range(0, len(ws) - WINDOW + 1, step)]
    return sum(ratios) / len(ratios)


def readability(text: str) -> Score | None:
    """The readability score of ``text``'s prose, or None when it has no prose (code only, empty)."""
    prose = _MARKUP.sub("", _FENCE.sub("\n", text))
    parts = [p for p in _SENT.split(prose) if p.strip()]
    lengths = [n for n in (len(words(p)) for p in parts) if n > 0]
    if not lengths:
        return None
    ws = words(prose)
    median = statistics.median(lengths)
    sent = 1.0 if 8 <= median <= 22 else math.exp(-((median - (8 if median < 8 else 22)) / 10) ** 2)
    long_share = sum(n > LONG_SENTENCE for n in lengths) / len(lengths)
    dev = word_length_deviation(ws)
    word = math.exp(-(max(0.0, abs(dev) - 0.5) / 2.5) ** 2)
    variety = min(1.0, _mattr(ws) / 0.7)  # a 40-word window with 70% distinct words reads fine
    value = 0.35 * sent + 0.25 * (1 - long_share) + 0.2 * word + 0.2 * variety
    return Score(value, f"median sentence {median:g} words ({len(lengths)} sentences, {long_share:.0%} over "
                        f"{LONG_SENTENCE}), word length {dev:+.1f} vs usual, variety {_mattr(ws):.2f}")


class ReadabilityScorer:
    """Clarity from sentence and word statistics of the prose (module docstring); no score for code only."""

    name = "readability"
    version = "1"
    dimensions = ("clarity",)
    needs_embeddings = False

    def score(self, items, dimensions):
        out = []
        for it in items:
            s = readability(it.text) if "clarity" in dimensions else None
            out.append({"clarity": s} if s is not None else {})
        return out
