"""The worker side of an import: read a unit's bytes, parse, normalise, finalise, serialise.

Pure (no database, no Ray): :func:`parse_unit` runs inside Ray Data tasks and, unchanged, in the
serial importer. Each conversation becomes one row — ``kind`` ``ok`` with its finalised rows as
an orjson ``payload``, or ``error`` with the reason — so one bad conversation never stops the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson

from .model import Conv, ConversationError, finalize
from .parsers import chatgpt, claude, deepseek, gemini, qwen, simple
from .sources import Unit
from .writer import pack

# format -> function(parsed JSON object) -> Conv, for formats made of independent conversation objects
PER_OBJECT: dict[str, Callable[[Any], Conv]] = {
    "chatgpt": chatgpt.parse_conversation,
    "chatgpt_html": lambda o: chatgpt.parse_conversation(o, html_escaped=True),
    "claude": claude.parse_conversation,
    "deepseek": deepseek.parse_conversation,
    "sharegpt": simple.parse_sharegpt,
    "openai_chat": simple.parse_openai_chat,
    "qwen": qwen.parse_conversation,
}
FORMATS = sorted(set(PER_OBJECT) | {"chatgpt_single", "claude_single", "deepseek_single", "sharegpt_single",
                                    "openai_chat_single", "qwen_export", "qwen_list", "gemini_html", "gemini_json",
                                    "openai_jsonl", "sharegpt_jsonl", "chatgpt_jsonl", "claude_jsonl", "deepseek_jsonl",
                                    "empty_array"})


def _row(unit: Unit, kind: str, conversation: str | None = None, payload: bytes | None = None,
         error: str | None = None, messages: int = 0) -> dict[str, Any]:
    return {"file_id": unit.file_id, "kind": kind, "conversation": conversation, "payload": payload,
            "error": error, "messages": messages}


def _finish(unit: Unit, conv_or_exc: Conv | Exception, where: str | None, max_chars: int) -> dict[str, Any]:
    """Finalise one parsed conversation into an ``ok`` row, or turn its error into an ``error`` row."""
    if isinstance(conv_or_exc, Exception):
        exc = conv_or_exc
        conv_id = getattr(exc, "conversation", None) or where
        return _row(unit, "error", conv_id, error=str(exc))
    conv = conv_or_exc
    try:
        rows = finalize(conv, max_chars=max_chars, source=unit.display)
    except ConversationError as exc:
        return _row(unit, "error", exc.conversation or conv.external_id or where, error=str(exc))
    return _row(unit, "ok", conv.external_id, payload=pack(rows, unit.dialect), messages=len(rows["messages"]))


def _parse_obj(fmt: str, obj: Any) -> Conv | Exception:
    try:
        return PER_OBJECT[fmt](obj)
    except ConversationError as exc:
        return exc
    except (TypeError, ValueError, AttributeError, KeyError) as exc:  # a wrong type in a field we did not foresee
        return ConversationError(f"malformed conversation: {type(exc).__name__}: {exc}",
                                 obj.get("id") if isinstance(obj, dict) and isinstance(obj.get("id"), str) else None)


def _json_items(unit: Unit) -> Iterator[tuple[str, Any | Exception]]:
    """(where, parsed object or the parse error) for each element / line of the unit."""
    with open(unit.path, "rb") as f:
        if unit.layout == "array":
            lo, hi = unit.ranges[0][0], unit.ranges[-1][1]
            f.seek(lo)
            span = f.read(hi - lo)
            for s, e in unit.ranges:
                where = f"element at byte {s}"
                try:
                    yield where, orjson.loads(span[s - lo:e - lo])
                except orjson.JSONDecodeError as exc:
                    yield where, ConversationError(f"invalid JSON: {exc}")
        elif unit.layout == "jsonl":
            (s, e), = unit.ranges
            f.seek(s)
            for k, line in enumerate(f.read(e - s).split(b"\n")):
                if not line.strip():
                    continue
                where = f"line {unit.first_line + k}"
                try:
                    yield where, orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    yield where, ConversationError(f"invalid JSON: {exc}")
        else:
            data = f.read()
            if data.startswith(b"\xef\xbb\xbf"):
                data = data[3:]
            yield "file", data


def parse_unit(unit: Unit, max_chars: int = 1_000_000) -> list[dict[str, Any]]:
    """Every conversation of one unit, as rows (see the module docstring)."""
    out: list[dict[str, Any]] = []
    fmt = unit.format
    if unit.layout in ("array", "jsonl"):
        base = fmt[: -len("_jsonl")] if fmt.endswith("_jsonl") else fmt
        base = "openai_chat" if base == "openai" else base
        for where, obj in _json_items(unit):
            if isinstance(obj, Exception):
                out.append(_row(unit, "error", where, error=str(obj)))
                continue
            if base == "openai_chat" and unit.layout == "jsonl":
                try:
                    conv: Conv | Exception = simple.parse_openai_chat(obj, line=int(where.split()[-1]))
                except ConversationError as exc:
                    conv = exc
            else:
                conv = _parse_obj(base, obj)
            out.append(_finish(unit, conv, where, max_chars))
        return out
    # whole-file formats
    (_, data), = list(_json_items(unit))
    try:
        if fmt in ("gemini_html", "gemini_json"):
            if fmt == "gemini_html":
                entries, skipped = gemini.entries_from_html(data.decode("utf-8"))
            else:
                doc = orjson.loads(data)
                if not isinstance(doc, list):
                    raise ValueError("expected a JSON array of activities")
                entries, skipped = gemini.entries_from_json(doc)
            for kind, n in sorted(skipped.items()):
                out.append(_row(unit, "skip", kind, messages=n))
            for conv in gemini.conversations_from_entries(entries):
                out.append(_finish(unit, conv, conv.external_id, max_chars))
            return out
        doc = orjson.loads(data)
    except (UnicodeDecodeError, orjson.JSONDecodeError, ValueError) as exc:
        return [_row(unit, "error", None, error=f"cannot read {fmt}: {exc}")]
    if fmt in ("qwen_export", "qwen_list"):
        try:
            chats = qwen.conversations(doc)
        except ValueError as exc:
            return [_row(unit, "error", None, error=str(exc))]
        for k, chat in enumerate(chats):
            out.append(_finish(unit, _parse_obj("qwen", chat), f"data[{k}]", max_chars))
        return out
    if fmt.endswith("_single"):
        out.append(_finish(unit, _parse_obj(fmt[: -len("_single")], doc), "file", max_chars))
        return out
    return [_row(unit, "error", None, error=f"no parser for format {fmt}")]
