"""Goals: what a conversation was for, and which conversations share one.

A conversation's goal text is its title plus its first user request (the title alone is often a
provider's auto-summary or "New chat"; the first request alone misses the person's own label).
With goal grouping, goal texts are embedded and linked greedily in trajectory order: each goal
joins the existing group whose anchor (first goal) it is most similar to, if the cosine similarity
reaches the threshold, and otherwise starts a new group. Anchors never move, so adding newer
conversations later never reshuffles the groups already built.
"""

from __future__ import annotations

import hashlib
from typing import Hashable, Sequence

import numpy as np

from ..ingest.model import normalise_text

GENERIC_TITLES = {"", "new chat", "new conversation", "untitled", "untitled chat", "chat", "conversation"}


def goal_text(title: str, first_user_text: str, max_chars: int = 1000) -> str:
    """The goal of a conversation, in words: ``title`` + newline + first request, cut to ``max_chars``."""
    t = normalise_text(title or "")
    u = normalise_text(first_user_text or "")
    if t.lower() in GENERIC_TITLES or (u and u.lower().startswith(t.lower())):
        text = u
    elif not u:
        text = t
    else:
        text = f"{t}\n{u}"
    return text[:max_chars]


def goal_hash(text: str) -> str:
    """Two goal texts that differ only in case or whitespace are the same goal."""
    return hashlib.sha256(normalise_text(text).lower().encode("utf-8", "surrogatepass")).hexdigest()


def assign_groups(items: Sequence[tuple[Hashable, np.ndarray]], anchors: Sequence[tuple[Hashable, np.ndarray]],
                  threshold: float) -> tuple[dict[Hashable, Hashable], dict[Hashable, float]]:
    """Greedy threshold grouping of unit vectors.

    ``items``: (key, vector) in the order they should be considered (oldest first);
    ``anchors``: (group key, vector) of groups that already exist. An item joins the most similar
    anchor when cosine >= ``threshold``; otherwise it becomes the anchor of a new group whose key is
    the item's own key. Returns ({item key: group key}, {item key: similarity to its anchor}).
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"goal threshold must be in (0, 1], got {threshold}")
    dim = items[0][1].shape[0] if items else (anchors[0][1].shape[0] if anchors else 0)
    keys: list[Hashable] = [k for k, _ in anchors]
    cap = max(16, len(anchors) + len(items))
    mat = np.zeros((cap, dim), dtype=np.float32)  # (anchors so far, dim)
    for i, (_, v) in enumerate(anchors):
        mat[i] = v
    n = len(keys)
    groups: dict[Hashable, Hashable] = {}
    sims: dict[Hashable, float] = {}
    eps = 1e-6  # float32 rounding: a vector compared with itself must reach threshold 1.0
    for key, vec in items:
        if n:
            s = mat[:n] @ vec  # (n,)
            j = int(np.argmax(s))
            if s[j] + eps >= threshold:
                groups[key], sims[key] = keys[j], min(1.0, float(s[j]))
                continue
        mat[n] = vec
        keys.append(key)
        n += 1
        groups[key], sims[key] = key, 1.0
    return groups, sims
