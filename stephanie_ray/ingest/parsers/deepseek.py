"""DeepSeek ``conversations.json`` (``mapping`` of ``fragments``) and the web API's ``chat_messages`` history."""

from __future__ import annotations

from typing import Any

from ..model import Conv, ConversationError, Msg, as_str, odd_part, to_epoch, warn

PROVIDER = "deepseek"


def _fragments(frags: Any) -> tuple[str | None, str, list[dict[str, Any]]]:
    """(role implied by the fragments, visible text, structured blocks)."""
    if not isinstance(frags, list):
        raise TypeError(f"fragments is {type(frags).__name__}, expected a list")
    role = None
    texts: list[str] = []
    blocks: list[dict[str, Any]] = []
    for f in frags:
        if not isinstance(f, dict):
            warn(f"a fragment is {type(f).__name__}, expected an object (kept in blocks)")
            blocks.append(odd_part(f))
            continue
        ftype = as_str(f.get("type")).upper()
        content = f.get("content")
        if ftype == "REQUEST":
            role = "user"
            texts.append(as_str(content))
        elif ftype == "RESPONSE":
            role = role or "assistant"
            texts.append(as_str(content))
        elif ftype == "THINK":
            role = role or "assistant"
            blocks.append({"type": "thinking", "text": as_str(content)})
        elif ftype in ("SEARCH", "TOOL_SEARCH"):
            role = role or "assistant"
            blocks.append({"type": "search", "results": f.get("results") or [], "queries": f.get("queries") or []})
        else:  # FILE, TOOL_OPEN, ... kept whole
            blocks.append({**f, "type": ftype.lower() or "fragment"})
    return role, "\n\n".join(t for t in texts if t), blocks


def parse_conversation(obj: Any) -> Conv:
    if not isinstance(obj, dict):
        raise ConversationError(f"conversation is {type(obj).__name__}, expected an object")
    cid = obj.get("id") or obj.get("chat_session_id")
    if not isinstance(cid, str) or not cid:
        raise ConversationError("conversation has no 'id'")
    messages: list[Msg] = []
    if "mapping" in obj:
        mapping = obj["mapping"]
        if not isinstance(mapping, dict):
            raise ConversationError(f"'mapping' is {type(mapping).__name__}, expected an object", cid)
        empty = {nid for nid, n in mapping.items() if isinstance(n, dict) and not n.get("message")}
        for nid, node in mapping.items():
            if not isinstance(node, dict):
                raise ConversationError(f"mapping[{nid}] is {type(node).__name__}, expected an object", cid)
            m = node.get("message")
            if not m:
                continue
            try:
                if not isinstance(m, dict):
                    raise TypeError(f"message is {type(m).__name__}, expected an object")
                role, text, blocks = _fragments(m.get("fragments") or [])
            except TypeError as exc:
                raise ConversationError(f"message {nid}: {exc}", cid) from None
            parent = node.get("parent")
            parent = None if parent is None or parent in empty else as_str(parent)
            files = m.get("files") or []
            if files:
                blocks.append({"type": "attachments", "files": files})
            messages.append(Msg(external_id=str(nid), parent=parent, role=role or "assistant", text=text,
                                created_at=to_epoch(m.get("inserted_at"), f"message {nid} inserted_at"), blocks=blocks,
                                model=m.get("model") if isinstance(m.get("model"), str) else None))
    elif isinstance(obj.get("chat_messages"), list):
        for k, m in enumerate(obj["chat_messages"]):
            if not isinstance(m, dict):
                raise ConversationError(f"chat_messages[{k}] is {type(m).__name__}, expected an object", cid)
            try:
                role, text, blocks = _fragments(m.get("fragments") or [])
            except TypeError as exc:
                raise ConversationError(f"chat_messages[{k}]: {exc}", cid) from None
            r = as_str(m.get("role")).lower()
            parent = m.get("parent_id")
            messages.append(Msg(external_id=as_str(m.get("message_id")) or str(k),
                                parent=as_str(parent) if parent not in (None, "", 0) else None,
                                role="user" if r == "user" else ("assistant" if r == "assistant" else (role or "assistant")),
                                text=text, created_at=to_epoch(m.get("inserted_at"), f"chat_messages[{k}] inserted_at"),
                                blocks=blocks,
                                model=m.get("model") if isinstance(m.get("model"), str) else None))
    else:
        raise ConversationError("conversation has neither 'mapping' nor 'chat_messages'", cid)
    current = obj.get("current_message_id") or obj.get("current_node")
    return Conv(provider=PROVIDER, external_id=cid, title=as_str(obj.get("title")), messages=messages,
                created_at=to_epoch(obj.get("inserted_at"), "inserted_at"),
                updated_at=to_epoch(obj.get("updated_at"), "updated_at"),
                current_leaf=str(current) if current not in (None, "") else None)
