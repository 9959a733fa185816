"""Claude ``conversations.json``: content blocks, ``parent_message_uuid`` branches, no current-leaf pointer."""

from __future__ import annotations

from typing import Any

from ..model import Conv, ConversationError, Msg, as_list, as_str, odd_part, to_epoch, warn

PROVIDER = "claude"
ROOT_SENTINEL = "00000000-0000-4000-8000-000000000000"
PLACEHOLDER = "This block is not supported on your current device yet."
_ROLES = {"human": "user", "user": "user", "assistant": "assistant", "system": "system"}


def _blocks(content: list[Any]) -> tuple[str, list[dict[str, Any]]]:
    texts: list[str] = []
    blocks: list[dict[str, Any]] = []
    for b in content:
        if not isinstance(b, dict):
            warn(f"a content block is {type(b).__name__}, expected an object (kept in blocks)")
            if isinstance(b, str):
                texts.append(b)
            else:
                blocks.append(odd_part(b))
            continue
        btype = b.get("type")
        times = {k: b[k] for k in ("start_timestamp", "stop_timestamp") if b.get(k)}
        if btype == "text":
            t = as_str(b.get("text"), "content[].text")
            texts.append(t)
            if b.get("citations"):
                blocks.append({"type": "citations", "citations": b["citations"]})
        elif btype == "thinking":
            blocks.append({"type": "thinking", "text": as_str(b.get("thinking")), "summaries": b.get("summaries") or [], **times})
        elif btype == "tool_use":
            blocks.append({"type": "tool_use", "id": b.get("id"), "name": b.get("name"), "input": b.get("input"), **times})
        elif btype == "tool_result":
            parts = b.get("content") or []
            out = "\n".join(as_str(p.get("text")) for p in parts if isinstance(p, dict) and p.get("type") == "text") \
                if isinstance(parts, list) else as_str(parts)
            blocks.append({"type": "tool_result", "tool_use_id": b.get("tool_use_id"), "name": b.get("name"),
                           "is_error": bool(b.get("is_error")), "text": out, **times})
        else:
            blocks.append({k: v for k, v in b.items()})
    return "\n\n".join(t for t in texts if t), blocks


def parse_conversation(obj: Any) -> Conv:
    if not isinstance(obj, dict):
        raise ConversationError(f"conversation is {type(obj).__name__}, expected an object")
    cid = obj.get("uuid")
    if not isinstance(cid, str) or not cid:
        raise ConversationError("conversation has no 'uuid'")
    raw = obj.get("chat_messages")
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise ConversationError(f"'chat_messages' is {type(raw).__name__}, expected a list", cid)
    has_parents = any(isinstance(m, dict) and "parent_message_uuid" in m for m in raw)
    messages: list[Msg] = []
    prev: str | None = None
    for k, m in enumerate(raw):
        if not isinstance(m, dict):
            raise ConversationError(f"chat_messages[{k}] is {type(m).__name__}, expected an object", cid)
        mid = m.get("uuid")
        if not isinstance(mid, str) or not mid:
            raise ConversationError(f"chat_messages[{k}] has no 'uuid'", cid)
        sender = m.get("sender")
        role = _ROLES.get(sender) if isinstance(sender, str) else None
        if role is None:
            raise ConversationError(f"message {mid}: unknown sender {sender!r}", cid)
        try:
            content = m.get("content")
            if isinstance(content, list) and content:
                text, blocks = _blocks(content)
            else:  # older exports: only the (lossy) top-level text
                text, blocks = as_str(m.get("text")), []
                if text.strip() == PLACEHOLDER:
                    text = ""
        except TypeError as exc:
            raise ConversationError(f"message {mid}: {exc}", cid) from None
        atts = [a for a in as_list(m.get("attachments"), f"message {mid} attachments") if isinstance(a, dict)]
        if atts:
            blocks.append({"type": "attachments", "files": [
                {"name": a.get("file_name"), "size": a.get("file_size"), "mime_type": a.get("file_type"),
                 "extracted_content": a.get("extracted_content")} for a in atts]})
        files = [f for f in as_list(m.get("files"), f"message {mid} files") if isinstance(f, dict)]
        if files:
            blocks.append({"type": "files", "files": [{"id": f.get("file_uuid"), "name": f.get("file_name")} for f in files]})
        if has_parents:
            parent = m.get("parent_message_uuid")
            parent = None if (not isinstance(parent, str) or parent == ROOT_SENTINEL or not parent) else parent
        else:
            parent = prev  # no branch information: the list order is the thread
        messages.append(Msg(external_id=mid, parent=parent, role=role, text=text,
                            created_at=to_epoch(m.get("created_at"), f"message {mid} created_at"), blocks=blocks,
                            content_type="text"))
        prev = mid
    meta = {k: obj[k] for k in ("summary", "project_uuid") if obj.get(k)}
    if isinstance(obj.get("account"), dict) and obj["account"].get("uuid"):
        meta["account"] = obj["account"]["uuid"]
    return Conv(provider=PROVIDER, external_id=cid, title=as_str(obj.get("name")), messages=messages,
                created_at=to_epoch(obj.get("created_at"), "created_at"),
                updated_at=to_epoch(obj.get("updated_at"), "updated_at"), meta=meta)
