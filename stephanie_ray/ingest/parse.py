"""The worker side of an import: read a unit's bytes, parse, normalise, finalise, serialise.

Pure (no database, no Ray): :func:`parse_unit` runs inside Ray Data tasks and, unchanged, in the
serial importer. Each conversation becomes one row — ``kind`` ``ok`` with its finalised rows as
an orjson ``payload``, or ``error`` with the reason — so one bad conversation never stops the rest,
and no exception, foreseen or not, leaves :func:`parse_unit`.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .jsontext import loads
from .model import Conv, ConversationError, collect_warnings, finalize
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
    """One row to the writer. kind: ok | error | empty (a conversation without messages) |
    skip (``conversation`` names the kind, ``messages`` the count) | warning (``error`` holds it)."""
    return {"file_id": unit.file_id, "kind": kind, "conversation": conversation, "payload": payload,
            "error": error, "messages": messages}


def _crash(exc: BaseException) -> str:
    """The reason for an exception nobody foresaw: its type, message and where it was raised."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
    return f"unexpected {type(exc).__name__}: {exc}{where}"


def _conv_id(obj: Any) -> str | None:
    if isinstance(obj, dict):
        for key in ("conversation_id", "id", "uuid", "chat_session_id"):
            if isinstance(obj.get(key), str) and obj[key]:
                return obj[key]
    return None


def _convert(unit: Unit, parse: Callable[[], Conv], where: str | None, max_chars: int,
             extra_warnings: Sequence[str] = (), obj: Any = None, serialise: bool = True) -> dict[str, Any]:
    """Parse, finalise and pack one conversation into one row; whatever goes wrong is that
    conversation's ``error`` row (an exception we did not foresee included), never the run's."""
    conv_id = _conv_id(obj) or where
    with collect_warnings() as warnings:
        try:
            conv = parse()
            conv_id = conv.external_id or conv_id
            if not conv.messages:  # opened and never written in: nothing to import, not an error
                return _row(unit, "empty", conv_id)
            rows = finalize(conv, max_chars=max_chars, source=unit.display)
        except ConversationError as exc:
            return _row(unit, "error", exc.conversation or conv_id, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - one conversation's bug must not abort the import
            return _row(unit, "error", conv_id, error=_crash(exc))
    rows["warnings"] = [*extra_warnings, *warnings, *rows["warnings"]]
    try:
        payload = pack(rows, unit.dialect, serialise)
    except Exception as exc:  # noqa: BLE001
        return _row(unit, "error", conv_id, error=_crash(exc))
    return _row(unit, "ok", conv.external_id, payload=payload, messages=len(rows["messages"]))


def _json_items(unit: Unit) -> Iterator[tuple[str, Any, list[str]]]:
    """(where, parsed object or the parse error, warnings) for each element / line of the unit."""
    with open(unit.path, "rb") as f:
        if unit.layout == "array":
            lo, hi = unit.ranges[0][0], unit.ranges[-1][1]
            f.seek(lo)
            span = f.read(hi - lo)
            for s, e in unit.ranges:
                where = f"element at byte {s}"
                try:
                    obj, warnings = loads(span[s - lo:e - lo])
                    yield where, obj, warnings
                except ValueError as exc:
                    yield where, ConversationError(f"invalid JSON: {exc}"), []
        elif unit.layout == "jsonl":
            (s, e), = unit.ranges
            f.seek(s)
            for k, line in enumerate(f.read(e - s).split(b"\n")):
                if not line.strip():
                    continue
                where = f"line {unit.first_line + k}"
                try:
                    obj, warnings = loads(line)
                    yield where, obj, warnings
                except ValueError as exc:
                    yield where, ConversationError(f"invalid JSON: {exc}"), []
        else:
            data = f.read()
            if data.startswith(b"\xef\xbb\xbf"):
                data = data[3:]
            yield "file", data, []


def parse_unit(unit: Unit, max_chars: int = 1_000_000, serialise: bool = True) -> list[dict[str, Any]]:
    """Every conversation of one unit, as rows (see the module docstring). Never raises: a failure
    that is not one conversation's becomes an ``error`` row for the unit's file. ``serialise``:
    payloads as orjson bytes (to cross a process boundary) or as plain structures (in-process)."""
    out: list[dict[str, Any]] = []
    try:
        _parse_unit(unit, max_chars, out, serialise)
    except Exception as exc:  # noqa: BLE001 - reading the unit itself failed (I/O, a parser bug)
        out.append(_row(unit, "error", None, error=f"cannot read {unit.format}: {_crash(exc)}"))
    return out


def _parse_unit(unit: Unit, max_chars: int, out: list[dict[str, Any]], serialise: bool) -> None:
    fmt = unit.format
    if unit.layout in ("array", "jsonl"):
        base = fmt[: -len("_jsonl")] if fmt.endswith("_jsonl") else fmt
        base = "openai_chat" if base == "openai" else base
        parser = PER_OBJECT[base]
        for where, obj, warnings in _json_items(unit):
            if isinstance(obj, Exception):
                out.append(_row(unit, "error", where, error=str(obj)))
                continue
            if base == "openai_chat" and unit.layout == "jsonl":
                line = int(where.split()[-1])
                out.append(_convert(unit, lambda: simple.parse_openai_chat(obj, line=line), where, max_chars,
                                    warnings, obj, serialise))
            else:
                out.append(_convert(unit, lambda: parser(obj), where, max_chars, warnings, obj, serialise))
        return
    # whole-file formats
    (_, data, _), = list(_json_items(unit))
    try:
        with collect_warnings() as entry_warnings:  # Gemini activities are read before conversations exist
            if fmt == "gemini_html":
                entries, skipped = gemini.entries_from_html(data.decode("utf-8"))
                warnings: list[str] = []
            else:
                doc, warnings = loads(data)
                if fmt == "gemini_json":
                    if not isinstance(doc, list):
                        raise ValueError("expected a JSON array of activities")
                    entries, skipped = gemini.entries_from_json(doc)
    except (UnicodeDecodeError, ValueError) as exc:
        out.append(_row(unit, "error", None, error=f"cannot read {fmt}: {exc}"))
        return
    for w in [*warnings, *entry_warnings]:
        out.append(_row(unit, "warning", None, error=w))
    if fmt in ("gemini_html", "gemini_json"):
        for kind, n in sorted(skipped.items()):
            out.append(_row(unit, "skip", kind, messages=n))
        for conv in gemini.conversations_from_entries(entries):
            out.append(_convert(unit, lambda c=conv: c, conv.external_id, max_chars, serialise=serialise))
        return
    if fmt in ("qwen_export", "qwen_list"):
        try:
            chats = qwen.conversations(doc)
        except ValueError as exc:
            out.append(_row(unit, "error", None, error=str(exc)))
            return
        for k, chat in enumerate(chats):
            out.append(_convert(unit, lambda c=chat: qwen.parse_conversation(c), f"data[{k}]", max_chars, obj=chat,
                                serialise=serialise))
        return
    if fmt.endswith("_single"):
        parser = PER_OBJECT[fmt[: -len("_single")]]
        out.append(_convert(unit, lambda: parser(doc), "file", max_chars, obj=doc, serialise=serialise))
        return
    out.append(_row(unit, "error", None, error=f"no parser for format {fmt}"))
