"""Qwen Chat ``chat-export.json``: ``data[].chat.history.messages``, ``content_list`` phases, dangling ``childrenIds``."""

from __future__ import annotations

from typing import Any

from ..model import Conv, ConversationError, Msg, as_list, as_str, odd_part, to_epoch, warn

PROVIDER = "qwen"


def conversations(doc: Any) -> list[Any]:
    """The chats of an export: ``{"data": [...]}``, or a bare list of chats."""
    if isinstance(doc, dict):
        data = doc.get("data")
        if not isinstance(data, list):
            raise ValueError(f"'data' is {type(data).__name__}, expected a list of chats")
        return data
    if isinstance(doc, list):
        return doc
    raise ValueError(f"top level is {type(doc).__name__}, expected an object with 'data'")


def parse_conversation(obj: Any) -> Conv:
    if not isinstance(obj, dict):
        raise ConversationError(f"chat is {type(obj).__name__}, expected an object")
    cid = obj.get("id")
    if not isinstance(cid, str) or not cid:
        raise ConversationError("chat has no 'id'")
    chat = obj.get("chat")
    history = chat.get("history") if isinstance(chat, dict) else None
    raw = history.get("messages") if isinstance(history, dict) else None
    if isinstance(raw, list):  # some clients store a list
        raw = {as_str(m.get("id")): m for m in raw if isinstance(m, dict)}
    if not isinstance(raw, dict):
        raise ConversationError("chat.history.messages is missing or not an object", cid)
    messages: list[Msg] = []
    for key, m in raw.items():
        if not isinstance(m, dict):
            raise ConversationError(f"message {key} is {type(m).__name__}, expected an object", cid)
        mid = as_str(m.get("id")) or key
        role = as_str(m.get("role")) or "assistant"
        blocks: list[dict[str, Any]] = []
        try:
            text = as_str(m.get("content"))
            answer_parts: list[str] = []
            for part in as_list(m.get("content_list"), f"message {mid} content_list"):
                if not isinstance(part, dict):
                    warn(f"message {mid}: content_list holds a {type(part).__name__} (kept in blocks)")
                    blocks.append(odd_part(part))
                    continue
                phase = part.get("phase") or "answer"
                if phase == "answer":
                    answer_parts.append(as_str(part.get("content")))
                elif phase in ("think", "thinking", "reasoning"):
                    blocks.append({"type": "thinking", "text": as_str(part.get("content"))})
                else:
                    blocks.append({"type": str(phase), "content": part.get("content"), "extra": part.get("extra")})
            if not text.strip() and answer_parts:
                text = "".join(answer_parts)
            if m.get("reasoning_content"):
                blocks.append({"type": "thinking", "text": as_str(m["reasoning_content"])})
        except TypeError as exc:
            raise ConversationError(f"message {mid}: {exc}", cid) from None
        files = [f for f in as_list(m.get("files"), f"message {mid} files") if isinstance(f, dict)]
        if files:
            blocks.append({"type": "attachments", "files": [
                {"name": f.get("name"), "mime_type": f.get("file_type"), "size": f.get("size"), "url": f.get("url")}
                for f in files]})
        parent = m.get("parentId")
        model = m.get("model") or ((m.get("models") or [None])[0] if isinstance(m.get("models"), list) else None)
        # childrenIds may name messages the file does not hold: the parent links alone define the tree.
        messages.append(Msg(external_id=mid, parent=as_str(parent) if parent else None,
                            role=role if role in ("user", "assistant", "system", "tool") else "assistant",
                            text=text, created_at=to_epoch(m.get("timestamp"), f"message {mid} timestamp"), blocks=blocks,
                            model=model if isinstance(model, str) else None,
                            meta={k: m[k] for k in ("modelName", "edited") if m.get(k)}))
    current = history.get("currentId") if isinstance(history, dict) else None
    return Conv(provider=PROVIDER, external_id=cid, title=as_str(obj.get("title")), messages=messages,
                created_at=to_epoch(obj.get("created_at"), "created_at"),
                updated_at=to_epoch(obj.get("updated_at"), "updated_at"),
                current_leaf=as_str(current) if current else None)
