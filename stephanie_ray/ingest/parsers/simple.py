"""Formats without ids or branches: ShareGPT JSON and OpenAI chat JSONL (fine-tuning format)."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from ..htmltext import html_to_text, looks_like_html
from ..model import Conv, ConversationError, Msg, as_str, odd_part, warn

_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "chatgpt": "assistant", "assistant": "assistant",
                   "bard": "assistant", "bing": "assistant", "model": "assistant", "system": "system", "tool": "tool",
                   "function_call": "assistant", "observation": "tool", "function": "tool"}
_DEBRIS = re.compile(r"^(?:\d+\s*/\s*\d+|Copy code|Copy|Regenerate response)\s*$", re.M)


def _content_id(obj: Any) -> str:
    return hashlib.sha256(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def clean_scraped(value: str) -> str:
    """ShareGPT values scraped from the web: HTML, 'Copy code' buttons, '1 / 2' regeneration counters."""
    text = html_to_text(value) if looks_like_html(value) else value
    return _DEBRIS.sub("", text).strip() if ("Copy" in text or "/" in text or "Regenerate" in text) else text


def parse_sharegpt(obj: Any) -> Conv:
    if not isinstance(obj, dict):
        raise ConversationError(f"conversation is {type(obj).__name__}, expected an object")
    turns = obj.get("conversations", obj.get("conversation"))
    cid = as_str(obj.get("id")) if isinstance(obj.get("id"), (str, int)) else ""
    cid = cid or _content_id(turns)
    if not isinstance(turns, list):
        raise ConversationError(f"'conversations' is {type(turns).__name__}, expected a list", cid)
    messages: list[Msg] = []
    for i, t in enumerate(turns):
        if not isinstance(t, dict):
            raise ConversationError(f"conversations[{i}] is {type(t).__name__}, expected an object", cid)
        who = as_str(t.get("from") or t.get("role")).lower()
        role = _SHAREGPT_ROLES.get(who)
        if role is None:
            raise ConversationError(f"conversations[{i}]: unknown speaker {who!r}", cid)
        try:
            raw = as_str(t.get("value", t.get("content")))
        except TypeError as exc:
            raise ConversationError(f"conversations[{i}].value: {exc}", cid) from None
        text = clean_scraped(raw)
        messages.append(Msg(external_id=str(i), parent=str(i - 1) if i else None, role=role, text=text,
                            meta={"cleaned": True} if text != raw else {}))
    return Conv(provider="sharegpt", external_id=cid, title=as_str(obj.get("title")) if isinstance(obj.get("title"), str) else "",
                messages=messages, linear=True, meta={k: obj[k] for k in ("model", "source") if isinstance(obj.get(k), str)})


def _openai_content(content: Any) -> tuple[str, list[dict[str, Any]]]:
    if content is None or isinstance(content, str):
        return content or "", []
    if isinstance(content, list):
        texts, blocks = [], []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type") in ("text", "input_text", "output_text"):
                texts.append(as_str(part.get("text")))
            elif isinstance(part, dict):
                blocks.append(part)
            elif part is not None:
                warn(f"a content part is {type(part).__name__} (kept in blocks)")
                blocks.append(odd_part(part))
        return "\n".join(texts), blocks
    raise TypeError(f"content is {type(content).__name__}, expected a string or a list of parts")


def parse_openai_chat(obj: Any, line: int | None = None) -> Conv:
    where = f"line {line}" if line is not None else None
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list):
        raise ConversationError("expected an object with a 'messages' list", where)
    cid = _content_id(obj["messages"])
    messages: list[Msg] = []
    for i, m in enumerate(obj["messages"]):
        if not isinstance(m, dict):
            raise ConversationError(f"messages[{i}] is {type(m).__name__}, expected an object", where or cid)
        role = as_str(m.get("role"))
        role = {"developer": "system", "function": "tool"}.get(role, role)
        if role not in ("user", "assistant", "system", "tool"):
            raise ConversationError(f"messages[{i}]: unknown role {role!r}", where or cid)
        try:
            text, blocks = _openai_content(m.get("content"))
        except TypeError as exc:
            raise ConversationError(f"messages[{i}]: {exc}", where or cid) from None
        tool_calls = m.get("tool_calls") or ([m["function_call"]] if m.get("function_call") else [])
        if tool_calls:
            blocks.append({"type": "tool_use", "calls": tool_calls})
        if role == "tool":
            blocks.append({"type": "tool_result", "tool_call_id": m.get("tool_call_id"), "text": text})
        messages.append(Msg(external_id=str(i), parent=str(i - 1) if i else None, role=role, text=text, blocks=blocks,
                            tool_call=bool(tool_calls) and not text.strip(),
                            meta={"weight": m["weight"]} if "weight" in m else {}))
    return Conv(provider="openai_chat", external_id=cid, title="", messages=messages, linear=True,
                meta={"line": line} if line is not None else {})
