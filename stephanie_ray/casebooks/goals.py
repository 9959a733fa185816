"""Goals: what a conversation was for, and which conversations share one.

A conversation's goal text is its title plus its first user request (the title alone is often a
provider's auto-summary or "New chat"; the first request alone misses the person's own label). It
describes a goal CaseBook and names it. Which conversations share a goal — one project, followed
across conversations, providers and languages — is decided by the evidence they share, in
:mod:`.goal_evidence`, not by the goal texts' similarity.
"""

from __future__ import annotations

import hashlib

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
