"""Synthetic ChatGPT-format exports with branches, for benchmarks and scale tests.

Deterministic for a given seed; written conversation by conversation, so a multi-GB file needs
little memory. Each conversation is a main thread of user/assistant pairs; some answers have a
regenerated sibling, some prompts an edited sibling with its own answer, and ``current_node``
points at the end of the main thread — the shape of a real export (FORMATS.md).
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path
from typing import Any

import orjson

WORDS = ("the ray data pipeline parses each conversation in parallel while the driver writes batches "
         "sqlite postgres index turn branch regenerate answer prompt model critic reward baseline group "
         "entity embedding projection annoy casebook goal champion quality novelty clarity relevance").split()


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def _node(mid: str, parent: str, role: str, text: str, t: float, model: str) -> dict[str, Any]:
    return {"id": mid, "parent": parent, "children": [], "message": {
        "id": mid, "author": {"role": role, "name": None, "metadata": {}}, "create_time": t, "update_time": None,
        "content": {"content_type": "text", "parts": [text]}, "status": "finished_successfully",
        "end_turn": role == "assistant", "weight": 1.0,
        "metadata": {"model_slug": model, "finish_details": {"type": "stop"}} if role == "assistant" else {},
        "recipient": "all", "channel": None}}


def conversation(rng: random.Random, index: int, pairs: int, regen_p: float = 0.15, edit_p: float = 0.05,
                 words: int = 60) -> tuple[dict[str, Any], int]:
    """One conversation and its number of messages."""
    cid = str(uuid.UUID(int=rng.getrandbits(128)))
    t = 1.6e9 + index * 3600.0
    root = "client-created-root"
    mapping: dict[str, Any] = {root: {"id": root, "message": None, "parent": None, "children": []}}
    parent = root
    n = 0

    def add(role: str, par: str) -> str:
        nonlocal n, t
        mid = str(uuid.UUID(int=rng.getrandbits(128)))
        t += 7.0
        mapping[mid] = _node(mid, par, role, _text(rng, words if role == "assistant" else words // 3), t, "gpt-4o")
        mapping[par]["children"].append(mid)
        n += 1
        return mid

    for _ in range(pairs):
        u = add("user", parent)
        if rng.random() < edit_p:  # an edited prompt: a sibling user message with its own answer
            add("assistant", add("user", parent))
        if rng.random() < regen_p:  # a regenerated answer: a sibling assistant message
            add("assistant", u)
        parent = add("assistant", u)
    conv = {"title": f"synthetic conversation {index}", "create_time": 1.6e9 + index * 3600.0, "update_time": t,
            "mapping": mapping, "moderation_results": [], "current_node": parent, "plugin_ids": None,
            "conversation_id": cid, "id": cid, "default_model_slug": "gpt-4o", "is_archived": False}
    return conv, n


def write_chatgpt_export(path: Path, conversations: int, pairs: int = 25, seed: int = 0, words: int = 60,
                         target_bytes: int | None = None) -> dict[str, int]:
    """Write a ``conversations.json``; with ``target_bytes``, keep adding conversations until the file
    reaches that size. Returns ``{"conversations", "messages", "bytes"}``."""
    rng = random.Random(seed)
    total_msgs = 0
    written = 0
    size = 0
    with open(path, "wb") as f:
        f.write(b"[")
        i = 0
        while (i < conversations) if target_bytes is None else (size < target_bytes):
            conv, n = conversation(rng, i, pairs, words=words)
            data = orjson.dumps(conv)
            f.write(b",\n" if i else b"\n")
            f.write(data)
            size += len(data) + 2
            total_msgs += n
            written += 1
            i += 1
        f.write(b"\n]\n")
    return {"conversations": written, "messages": total_msgs, "bytes": path.stat().st_size}
