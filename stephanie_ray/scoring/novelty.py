"""Novelty along a CaseBook's trajectory, from two kinds of evidence. Pure numpy / Python.

* :func:`trajectory_novelty` (the ``embedding`` scorer): 1 - the highest cosine between an attempt's
  MiniLM embedding and any earlier attempt's — *meaning*: a rephrased answer is not new.
  Computed in row blocks, so memory is O(block x n), never the n x n similarity matrix.
* :func:`ngram_novelty` (the ``ngram`` scorer): the share of an attempt's word 3-grams that no
  earlier attempt used — *wording*: code, commands, names and numbers that were not there before
  count as new even where the embedding (which sees topics) calls two answers alike. Words are
  :func:`stephanie_ray.scoring.text.words` (Unicode words; Han / Kana runs in two-character units),
  case-folded, so it works in any script. Memory: the hashes of the trajectory's 3-grams so far.

The first attempt has nothing to be novel against: both give it no score (a 1.0 there would make
every CaseBook's first attempt its champion).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from .text import words

NOVELTY_BLOCK = 1024  # rows of the similarity matrix computed at a time
NGRAM = 3  # word n-grams; a text shorter than this uses its words as 1-grams


def trajectory_novelty(embeddings: np.ndarray, block: int = NOVELTY_BLOCK) -> np.ndarray:
    """(n, dim) unit vectors in trajectory order -> (n,) novelty: 1 - max cosine to any earlier one."""
    n = embeddings.shape[0]
    out = np.ones(n, dtype=np.float32)
    for start in range(1, n, block):
        stop = min(n, start + block)
        sims = embeddings[start:stop] @ embeddings[:stop].T  # (rows, stop): this block against all before it
        rows = np.arange(start, stop)[:, None]
        sims[np.arange(stop)[None, :] >= rows] = -np.inf  # only earlier attempts
        out[start:stop] = np.clip(1.0 - sims.max(axis=1), 0.0, 1.0)
    return out


def ngram_hashes(text: str, n: int = NGRAM) -> set[int]:
    """Hashes of the case-folded word n-grams of ``text`` (its words when it has fewer than n)."""
    ws = [w.casefold() for w in words(text)]
    if len(ws) < n:
        return {hash((w,)) for w in ws}
    return {hash(tuple(ws[i:i + n])) for i in range(len(ws) - n + 1)}


class NgramNovelty:
    """Walks a trajectory in order: :meth:`add` returns an attempt's novelty against everything added before."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.attempts = 0

    def add(self, text: str) -> tuple[float | None, int, int]:
        """(novelty or None for the first attempt / an empty text, new n-grams, n-grams)."""
        grams = ngram_hashes(text)
        first = self.attempts == 0
        self.attempts += 1
        new = len(grams - self.seen)
        self.seen |= grams
        if first or not grams:
            return None, new, len(grams)
        return new / len(grams), new, len(grams)


def ngram_novelty(texts: Iterable[str]) -> list[float | None]:
    """Novelty of each text against all earlier ones, in order (None for the first)."""
    walk = NgramNovelty()
    return [walk.add(t)[0] for t in texts]


def novelty_against(text: str, earlier: Sequence[str]) -> tuple[float | None, int, int]:
    """One attempt's n-gram novelty against the given earlier attempts."""
    walk = NgramNovelty()
    for e in earlier:
        walk.add(e)
    if not earlier:
        return None, 0, 0
    return walk.add(text)
