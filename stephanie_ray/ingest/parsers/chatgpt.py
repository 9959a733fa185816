"""ChatGPT: ``conversations.json`` (account export), ``chat.html`` (the same objects, HTML-escaped
strings) and the "ChatGPT Exporter" single-conversation JSON. See ../../../shared/FORMATS.md."""

from __future__ import annotations

import html
from typing import Any

from ..model import Conv, ConversationError, Msg, as_list, as_str, odd_part, to_epoch, warn

PROVIDER = "chatgpt"

# Private-use characters that wrap citation markers in the text, e.g. "\ue200filecite\ue202turn0file0\ue201".
_CITE_OPEN, _CITE_SEP, _CITE_CLOSE = "\ue200", "\ue202", "\ue201"


def unescape_strings(obj: Any) -> Any:
    """chat.html's jsonData has every string HTML-escaped; undo it everywhere, iteratively."""
    if isinstance(obj, str):
        return html.unescape(obj) if "&" in obj else obj
    root = [obj]
    stack: list[Any] = [root]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for k, v in list(items):
            if isinstance(v, str):
                if "&" in v:
                    node[k] = html.unescape(v)
            elif isinstance(v, (dict, list)):
                stack.append(v)
        if isinstance(node, dict):  # keys too (rarely escaped, but cheap to check)
            for k in [k for k in node if isinstance(k, str) and "&" in k]:
                node[html.unescape(k)] = node.pop(k)
    return root[0]


def _strip_citations(text: str) -> tuple[str, list[str]]:
    if _CITE_OPEN not in text:
        return text, []
    out, cites, i = [], [], 0
    while True:
        j = text.find(_CITE_OPEN, i)
        if j < 0:
            out.append(text[i:])
            break
        k = text.find(_CITE_CLOSE, j)
        if k < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        cites.append(text[j + 1:k].replace(_CITE_SEP, ":"))
        i = k + 1
    return "".join(out), cites


def _content(msg: dict[str, Any]) -> tuple[str, str, list[dict[str, Any]]]:
    """(content_type, visible text, structured blocks) of one message's ``content``."""
    content = msg.get("content") or {}
    if isinstance(content, str):  # not the export's shape, but its meaning is plain
        return "text", content, []
    if not isinstance(content, dict):
        warn(f"message {msg.get('id')}: content is {type(content).__name__}, expected an object (kept in blocks)")
        return "text", "", [odd_part(content)]
    ctype = as_str(content.get("content_type")) or "text"
    blocks: list[dict[str, Any]] = []
    text = ""
    if ctype == "text":
        parts = content.get("parts")
        if isinstance(parts, list) and all(type(p) is str for p in parts):  # the common case, fast
            return ctype, "\n".join(p for p in parts if p), blocks
    if ctype in ("text", "multimodal_text"):
        pieces = []
        for k, part in enumerate(as_list(content.get("parts"), "content.parts")):
            if isinstance(part, str):
                pieces.append(part)
            elif isinstance(part, dict):
                ptype = part.get("content_type") or "part"
                if ptype == "audio_transcription" and isinstance(part.get("text"), str):
                    pieces.append(part["text"])
                    blocks.append({"type": "audio_transcription", "text": part["text"]})
                elif ptype == "image_asset_pointer":
                    blocks.append({"type": "image", "asset": part.get("asset_pointer"),
                                   "width": part.get("width"), "height": part.get("height")})
                else:
                    blocks.append({"type": ptype, **{k: v for k, v in part.items() if k != "content_type"}})
            elif part is not None:  # a number, a list, ...: not text, but not to be lost either
                warn(f"message {msg.get('id')}: content.parts[{k}] is {type(part).__name__}, kept in blocks")
                blocks.append(odd_part(part))
        text = "\n".join(p for p in pieces if p)
    elif ctype == "code":
        blocks.append({"type": "code", "language": content.get("language"), "text": as_str(content.get("text"))})
    elif ctype == "execution_output":
        text = as_str(content.get("text"))
        blocks.append({"type": "execution_output", "text": text})
    elif ctype == "thoughts":
        thoughts = content.get("thoughts") or []
        blocks.append({"type": "thinking", "thoughts": thoughts})
    elif ctype == "reasoning_recap":
        blocks.append({"type": "reasoning_recap", "text": as_str(content.get("content"))})
    elif ctype in ("tether_browsing_display", "tether_quote"):
        blocks.append({"type": ctype, **{k: v for k, v in content.items() if k != "content_type"}})
        text = as_str(content.get("text") or content.get("result") or "")
    elif ctype in ("user_editable_context", "model_editable_context"):
        blocks.append({"type": ctype, **{k: v for k, v in content.items() if k != "content_type"}})
    elif ctype == "system_error":
        text = as_str(content.get("text"))
        blocks.append({"type": "system_error", "name": content.get("name"), "text": text})
    else:
        blocks.append({"type": ctype, **{k: v for k, v in content.items() if k != "content_type"}})
        if isinstance(content.get("text"), str):
            text = content["text"]
        elif isinstance(content.get("parts"), list):
            text = "\n".join(p for p in content["parts"] if isinstance(p, str))
    return ctype, text, blocks


def parse_conversation(obj: Any, *, html_escaped: bool = False) -> Conv:
    if not isinstance(obj, dict):
        raise ConversationError(f"conversation is {type(obj).__name__}, expected an object")
    cid = obj.get("conversation_id") or obj.get("id")
    cid = cid if isinstance(cid, str) and cid else None
    if html_escaped:
        obj = unescape_strings(obj)
    mapping = obj.get("mapping")
    if not isinstance(mapping, dict):
        raise ConversationError(f"'mapping' is {type(mapping).__name__}, expected an object", cid)
    if cid is None:
        raise ConversationError("conversation has neither 'conversation_id' nor 'id'")

    # Nodes without a message (the root, "client-created-root") are skipped over: a message's
    # parent is its nearest ancestor that carries a message.
    empty: dict[str, str | None] = {}
    for node_id, node in mapping.items():
        if not isinstance(node, dict):
            raise ConversationError(f"mapping[{node_id}] is {type(node).__name__}, expected an object", cid)
        if not node.get("message"):
            p = node.get("parent")
            empty[node_id] = p if isinstance(p, str) else None

    def resolve(parent: Any) -> str | None:
        hops = 0
        while isinstance(parent, str) and parent in empty:
            parent = empty[parent]
            hops += 1
            if hops > len(empty):
                raise ConversationError("parent links of empty nodes form a cycle", cid)
        return parent if isinstance(parent, str) else None

    messages: list[Msg] = []
    for node_id, node in mapping.items():
        m = node.get("message")
        if not m:
            continue
        if not isinstance(m, dict):
            raise ConversationError(f"mapping[{node_id}].message is {type(m).__name__}, expected an object", cid)
        try:
            author = m.get("author") or {}
            if not isinstance(author, dict):
                author = {"role": author} if isinstance(author, str) else {}
            role = as_str(author.get("role"), f"message {node_id} author.role") or "assistant"
            ctype, text, blocks = _content(m)
            meta_in = m.get("metadata") or {}
            if not isinstance(meta_in, dict):
                warn(f"message {node_id}: metadata is {type(meta_in).__name__}, expected an object (ignored)")
                meta_in = {}
        except TypeError as exc:
            raise ConversationError(f"message {node_id}: {exc}", cid) from None
        text, cites = _strip_citations(text)
        if cites:
            blocks.append({"type": "citations", "markers": cites,
                           "references": meta_in.get("content_references") or meta_in.get("citations") or []})
        attachments = meta_in.get("attachments")
        if attachments:
            blocks.append({"type": "attachments", "files": attachments})
        recipient = as_str(m.get("recipient"), f"message {node_id} recipient") or "all"
        hidden = bool(meta_in.get("is_visually_hidden_from_conversation")
                      or meta_in.get("is_user_system_message")
                      or ctype in ("user_editable_context", "model_editable_context"))
        tool_call = role == "assistant" and recipient != "all"
        meta: dict[str, Any] = {}
        if author.get("name"):
            meta["author_name"] = author["name"]
        if tool_call:
            meta["recipient"] = recipient
            if ctype != "code":
                blocks.append({"type": "tool_call", "text": text})
        for key in ("channel", "status"):
            if m.get(key):
                meta[key] = m[key]
        mid = m.get("id")
        if mid and mid != node_id:  # node ids and message ids agree in real exports; keep the odd one
            meta["message_id"] = mid
        if role not in ("user", "assistant", "system", "tool"):
            meta["original_role"] = role
            role = "tool" if author.get("name") else "system"
        ct = m.get("create_time")
        slug = meta_in.get("model_slug")
        messages.append(Msg(
            external_id=node_id,  # the tree links (parent, children, current_node) use node ids
            parent=resolve(node.get("parent")),
            role=role,
            text=text if not tool_call else "",
            created_at=ct if type(ct) is float and 0 < ct < 1e11 else to_epoch(ct, f"message {node_id} create_time"),
            hidden=hidden,
            content_type=ctype,
            blocks=blocks,
            meta=meta,
            model=slug if isinstance(slug, str) and slug else None,
            tool_call=tool_call,
        ))
    current = obj.get("current_node")
    current = resolve(current) if isinstance(current, str) else None
    meta = {k: obj[k] for k in ("default_model_slug", "gizmo_id", "is_archived", "is_starred", "conversation_template_id")
            if obj.get(k) is not None}
    return Conv(
        provider=PROVIDER,
        external_id=cid,
        title=as_str(obj.get("title")) if not isinstance(obj.get("title"), (dict, list)) else "",
        messages=messages,
        created_at=to_epoch(obj.get("create_time"), "create_time"),
        updated_at=to_epoch(obj.get("update_time"), "update_time"),
        current_leaf=current,
        meta=meta,
    )
