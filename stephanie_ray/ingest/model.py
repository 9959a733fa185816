"""The normalised conversation model every parser produces, and :func:`finalize`, which turns it into rows.

Parsers are pure functions ``bytes/objects -> Conv``. :func:`finalize` then does everything that is
the same for every provider, without recursion (trees can be tens of thousands of nodes deep):

* checks the tree: duplicate ids, parents that point nowhere, cycles (a :class:`ConversationError`);
* orders messages parent-before-child (so bulk inserts satisfy the foreign key row by row);
* marks the **active thread**: the path to ``current_leaf`` when the export names one (ChatGPT's
  ``current_node``, Qwen's ``currentId``), else the newest child at every branch (Claude, DeepSeek);
* derives **turns**: a user message paired with each assistant answer to it (regenerations give
  several turns for one user message), with a turn hash;
* gives every row a deterministic 63-bit id from its natural key, so the same conversation always
  maps to the same rows, whichever worker parsed it and however often it is imported.
"""

from __future__ import annotations

import hashlib
import math
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

ROLES = ("user", "assistant", "system", "tool")


class ConversationError(ValueError):
    """One conversation cannot be imported; the rest of the file goes on."""

    def __init__(self, reason: str, conversation: str | None = None):
        super().__init__(reason)
        self.conversation = conversation


@dataclass(slots=True)
class Msg:
    external_id: str
    parent: str | None
    role: str
    text: str
    created_at: float | None = None
    hidden: bool = False
    content_type: str = "text"
    blocks: list[dict[str, Any]] = field(default_factory=list)  # thinking, tool_use, tool_result, code, ...
    meta: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    tool_call: bool = False  # an assistant message addressed to a tool, not to the person


@dataclass(slots=True)
class Conv:
    provider: str
    external_id: str
    title: str
    messages: list[Msg]
    created_at: float | None = None
    updated_at: float | None = None
    current_leaf: str | None = None
    linear: bool = False  # formats without branches: every message is on the active thread
    meta: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- helpers


def stable_id(*parts: str) -> int:
    """A deterministic positive 63-bit id for a natural key (collision odds ~ n^2 / 2^64)."""
    h = hashlib.blake2b("\x1f".join(parts).encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(h, "big") >> 1


def normalise_text(text: str) -> str:
    """What two texts must share to count as the same: NFC, whitespace collapsed, trimmed."""
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return " ".join(text.split())  # str.split() splits on any Unicode whitespace run, like \s+


def turn_hash(user_text: str, assistant_text: str) -> str:
    return hashlib.sha256(
        (normalise_text(user_text) + "\x1e" + normalise_text(assistant_text)).encode("utf-8", "surrogatepass")
    ).hexdigest()


# Parsers run over data nobody validated. What they cannot use in a field (a timestamp out of range,
# a number where a text belongs) is dropped or kept aside, and said: ``warn`` adds a line to the
# warnings of the conversation being parsed (collected by :func:`collect_warnings`), which reach the
# import summary and ``import_files`` with the file and conversation named.
_WARNINGS: ContextVar[list[str] | None] = ContextVar("stephanie_ingest_warnings", default=None)


def warn(message: str) -> None:
    """A warning for the conversation being parsed (a no-op outside :func:`collect_warnings`)."""
    sink = _WARNINGS.get()
    if sink is not None and len(sink) < 100:  # one broken field repeated in 10k messages says it once per 100
        sink.append(message)


@contextmanager
def collect_warnings() -> Iterator[list[str]]:
    sink: list[str] = []
    token = _WARNINGS.set(sink)
    try:
        yield sink
    finally:
        _WARNINGS.reset(token)


# The times a chat can have: 1970-01-01 .. 9999-12-31 UTC (what datetime and both databases hold).
MIN_EPOCH, MAX_EPOCH = 0.0, 253402300799.0
# Numbers past what seconds can be are read as milliseconds, microseconds, nanoseconds (JS clients,
# Qwen's file times, Go/Java exporters); 1e11 s is the year 5138, so no real time in seconds is past it.
_UNIT_SCALES = (1.0, 1e3, 1e6, 1e9)


def _unusable(value: Any, field: str | None) -> None:
    if field:
        shown = repr(value)
        warn(f"{field}: unusable timestamp {shown[:60] + '...' if len(shown) > 60 else shown} stored as NULL")
    return None


def to_epoch(value: Any, field: str | None = None) -> float | None:
    """Seconds since the epoch (UTC) from seconds, milliseconds, microseconds or nanoseconds (int,
    float or a numeric string), or an ISO 8601 string (a naive one is taken as UTC).

    Never raises: a missing value is None; a present but unusable one (out of range, negative, not
    finite, an unknown type, an unreadable string) is None too, with a :func:`warn`-ing naming
    ``field`` when one is given.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return _unusable(value, field)
    if isinstance(value, (int, float)):
        try:
            v = float(value)
        except OverflowError:  # an integer past float's range (JSON allows any number of digits)
            return _unusable(value, field)
        if not math.isfinite(v) or v < MIN_EPOCH:
            return _unusable(value, field)
        for scale in _UNIT_SCALES:
            if v / scale < 1e11:
                return v / scale
        return _unusable(value, field)
    if isinstance(value, str):
        s = value.strip()
        if not s:
            return None
        try:
            num = float(s)
        except ValueError:
            pass
        else:
            return to_epoch(num, field) if math.isfinite(num) else _unusable(value, field)
        try:
            dt = datetime.fromisoformat(s.replace("Z", "+00:00").replace("z", "+00:00"))
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=timezone.utc)
            ts = dt.timestamp()
        except (ValueError, OverflowError, OSError):
            return _unusable(value, field)
        return ts if MIN_EPOCH <= ts <= MAX_EPOCH else _unusable(value, field)
    return _unusable(value, field)


def as_str(value: Any, field: str | None = None) -> str:
    """Text from a field that should be a string: other scalars are stringified; a container (or any
    other type) gives "" with a :func:`warn`-ing naming ``field`` — never an exception, so one odd
    field never costs its conversation. Callers that can keep the odd value keep it in ``blocks``."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    warn(f"{field or 'a text field'}: expected text, got {type(value).__name__} (not used as text)")
    return ""


def as_list(value: Any, field: str | None = None) -> list[Any]:
    """A field that should be a list: None gives [], another type [] with a :func:`warn`-ing."""
    if isinstance(value, list):
        return value
    if value is not None and value != "":
        warn(f"{field or 'a list field'}: expected a list, got {type(value).__name__} (ignored)")
    return []


def odd_part(value: Any) -> dict[str, Any]:
    """A content part that is not text, kept as a structured block instead of being lost."""
    return {"type": "unrecognised", "value_type": type(value).__name__, "value": value}


# ----------------------------------------------------------------------------- finalize


def _order_key(m: Msg, index: int) -> tuple[float, int]:
    return (m.created_at if m.created_at is not None else -1.0, index)


def finalize(conv: Conv, *, max_chars: int = 1_000_000, source: str = "") -> dict[str, Any]:
    """Check, order and flatten one conversation into plain rows (see the module docstring)."""
    cid = conv.external_id
    if not cid:
        raise ConversationError("conversation has no id", None)
    warnings: list[str] = []
    conv_id = stable_id(conv.provider, cid)

    # --- index, duplicates
    by_id: dict[str, int] = {}
    msgs: list[Msg] = []
    for m in conv.messages:
        if not m.external_id:
            raise ConversationError("a message has no id", cid)
        if m.external_id in by_id:
            warnings.append(f"duplicate message id {m.external_id} (kept the first)")
            continue
        if m.role not in ROLES:
            raise ConversationError(f"message {m.external_id}: unknown role {m.role!r}", cid)
        by_id[m.external_id] = len(msgs)
        msgs.append(m)
    if not msgs:
        raise ConversationError("conversation has no messages", cid)

    # --- parents and children
    n = len(msgs)
    parent_idx = [-1] * n
    children: list[list[int]] = [[] for _ in range(n)]
    roots: list[int] = []
    for i, m in enumerate(msgs):
        if m.parent is None:
            roots.append(i)
            continue
        p = by_id.get(m.parent)
        if p is None:
            raise ConversationError(f"message {m.external_id}: parent {m.parent} not found", cid)
        if p == i:
            raise ConversationError(f"message {m.external_id} is its own parent (cycle)", cid)
        parent_idx[i] = p
        children[p].append(i)
    if not roots:
        raise ConversationError("parent links form a cycle (no root message)", cid)
    for ch in children:
        if len(ch) > 1:
            ch.sort(key=lambda j: _order_key(msgs[j], j))
    roots.sort(key=lambda j: _order_key(msgs[j], j))

    # --- breadth-first order from the roots; anything not reached sits on a cycle
    order: list[int] = []
    depth = [0] * n
    queue = list(roots)
    seen = [False] * n
    for r in roots:
        seen[r] = True
    head = 0
    while head < len(queue):
        i = queue[head]
        head += 1
        order.append(i)
        for j in children[i]:
            if not seen[j]:
                seen[j] = True
                depth[j] = depth[i] + 1
                queue.append(j)
    if len(order) != n:
        stuck = [msgs[i].external_id for i in range(n) if not seen[i]][:3]
        raise ConversationError(f"parent links form a cycle (messages {', '.join(stuck)} ...)", cid)

    # --- active thread
    active = [False] * n
    leaf = by_id.get(conv.current_leaf) if conv.current_leaf else None
    if conv.linear:
        active = [True] * n
    else:
        if leaf is None:  # newest child at each branch, from the newest root
            leaf = roots[-1]
            while children[leaf]:
                leaf = children[leaf][-1]
        i = leaf
        while i != -1:
            active[i] = True
            i = parent_idx[i]

    # --- rows
    prefix = f"{conv_id}\x1f".encode()
    blake = hashlib.blake2b
    msg_ids = [int.from_bytes(blake(prefix + m.external_id.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
                              "big") >> 1 for m in msgs]  # == stable_id(str(conv_id), m.external_id)
    texts: list[str] = []
    for m in msgs:
        text = m.text or ""
        if "\x00" in text:  # PostgreSQL text cannot hold NUL; keep both backends identical
            text = text.replace("\x00", "\ufffd")
        if len(text) > max_chars:
            m.meta = {**m.meta, "truncated_from_chars": len(text)}
            warnings.append(f"message {m.external_id}: text of {len(text)} characters truncated to {max_chars}")
            text = text[:max_chars]
        texts.append(text)
    message_rows = []
    for pos, i in enumerate(order):
        m = msgs[i]
        message_rows.append({
            "id": msg_ids[i],
            "conversation_id": conv_id,
            "external_id": m.external_id,
            "parent_id": msg_ids[parent_idx[i]] if parent_idx[i] >= 0 else None,
            "role": m.role,
            "text": texts[i],
            "content_type": m.content_type,
            "blocks": m.blocks,
            "hidden": m.hidden,
            "active": active[i],
            "tool_call": m.tool_call,
            "created_at": m.created_at,
            "model": m.model or None,
            "position": pos,
            "depth": depth[i],
            "meta": m.meta,
        })

    # --- turns: each user message with the last answer on every path down to the next user message
    def answers(i: int) -> bool:
        m = msgs[i]
        return m.role == "assistant" and not m.hidden and not m.tool_call and bool(texts[i].strip())

    turn_rows: list[tuple[int, int]] = []
    seen_pairs: set[tuple[int, int]] = set()

    def settle(u: int, last: int) -> None:
        if last >= 0 and (u, last) not in seen_pairs:
            seen_pairs.add((u, last))
            turn_rows.append((u, last))

    for u in order:
        um = msgs[u]
        if um.role != "user" or um.hidden:
            continue
        stack = [(j, -1) for j in reversed(children[u])]
        while stack:  # depth-first, iteratively, down to the next user message on every path
            j, last = stack.pop()
            if msgs[j].role == "user":  # the next prompt: this path's answer is settled
                settle(u, last)
                continue
            if answers(j):
                last = j
            if not children[j]:
                settle(u, last)
            for k in reversed(children[j]):
                stack.append((k, last))
    turns = []
    for pos, (u, a) in enumerate(turn_rows):
        turns.append({
            "id": stable_id(str(msg_ids[u]), str(msg_ids[a])),
            "conversation_id": conv_id,
            "user_message_id": msg_ids[u],
            "assistant_message_id": msg_ids[a],
            "turn_hash": turn_hash(texts[u], texts[a]),
            "active": active[u] and active[a],
            "position": pos,
        })

    times = [m.created_at for m in msgs if m.created_at is not None]
    created = conv.created_at if conv.created_at is not None else (min(times) if times else None)
    updated = conv.updated_at if conv.updated_at is not None else (max(times) if times else created)
    title = (conv.title or "").replace("\x00", "\ufffd").strip()
    if not title:
        first_user = next((texts[i] for i in order if msgs[i].role == "user" and texts[i].strip()), "")
        title = normalise_text(first_user)[:80]
    models = sorted({m.model for m in msgs if m.model})
    conversation = {
        "id": conv_id,
        "provider": conv.provider,
        "external_id": cid,
        "title": title[:500],
        "created_at": created,
        "updated_at": updated,
        "models": models,
        "source_file": source,
        "meta": conv.meta,
        "message_count": len(message_rows),
    }
    return {"conversation": conversation, "messages": message_rows, "turns": turns, "warnings": warnings}
