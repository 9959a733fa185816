"""Inputs: files, directories (recursively) and ``.zip`` exports, each hashed; formats detected from content.

Work is cut into *units* small enough for one worker: byte ranges of a huge JSON array (found by
:mod:`.jsonsplit` without loading the file), line ranges of a JSONL file, or a whole small file.
Units carry paths and offsets only — workers read the bytes themselves.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from .jsonsplit import SplitError, array_elements
from .jsontext import loads

EXPORT_SUFFIXES = {".json", ".jsonl", ".html", ".htm", ".ndjson", ".zip", ".txt", ""}
_CHATGPT_HTML_MARKER = re.compile(rb"(?:var|let|const)\s+jsonData\s*=\s*")


@dataclass
class SourceFile:
    path: Path              # a file on disk (zip members are extracted first)
    display: str            # what the user sees: "export.zip!conversations.json"
    size: int
    sha256: str
    explicit: bool          # named on the command line (vs found inside a directory or zip)
    warnings: list[str] = field(default_factory=list)  # about the file itself (an unsafe zip member name)


@dataclass
class Detected:
    format: str | None      # chatgpt, chatgpt_html, claude, deepseek, qwen, gemini_html, gemini_json, sharegpt, openai_jsonl, ...
    layout: str = "whole"   # array (ranges of a top-level array) | jsonl | whole
    offset: int = 0         # where the array starts (chatgpt_html: after "var jsonData =")
    ignored: str | None = None  # a known non-conversation file (Claude projects.json, ChatGPT user.json, ...)
    error: str | None = None


@dataclass
class Unit:
    file_id: int
    path: str
    display: str
    format: str
    layout: str
    ranges: list[tuple[int, int]] = field(default_factory=list)
    first_line: int = 1
    dialect: str = "sqlite"  # the database the rows are for (times are pre-formatted for it)

    def to_row(self) -> dict[str, Any]:
        return {"file_id": self.file_id, "path": self.path, "display": self.display, "format": self.format,
                "layout": self.layout, "ranges": orjson.dumps(self.ranges), "first_line": self.first_line,
                "dialect": self.dialect}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Unit:
        return cls(file_id=int(row["file_id"]), path=str(row["path"]), display=str(row["display"]),
                   format=str(row["format"]), layout=str(row["layout"]),
                   ranges=[tuple(r) for r in orjson.loads(row["ranges"])], first_line=int(row["first_line"]),
                   dialect=str(row["dialect"]))


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _member_target(dest: Path, index: int, name: str) -> tuple[Path, str | None]:
    """Where a zip member's bytes are copied, and a warning when its name is unsafe.

    The target is never derived from the member's path: it is ``dest/<index>-<base name>``, flat,
    with the base name stripped of anything but word characters, dots and dashes. So a member named
    ``../../x/conversations.json`` or ``/etc/passwd`` cannot write outside ``dest`` — it is read
    (and imported) like any other member, and said.
    """
    pure = PurePosixPath(name.replace("\\", "/"))
    base = re.sub(r"[^\w.\-]+", "_", pure.name).lstrip(".") or "member"
    unsafe = pure.is_absolute() or ".." in pure.parts or re.match(r"^[A-Za-z]:", name) is not None
    warning = (f"zip member {name!r} has an unsafe path (absolute or with '..'): read from the zip as "
               f"{base!r}, nothing written outside the extraction folder") if unsafe else None
    return dest / f"{index:05d}-{base[:100]}", warning


def _extract_zip(zpath: Path, display: str, dest_root: Path, out: list[SourceFile], errors: list[dict[str, str]]) -> None:
    digest = sha256_file(zpath)
    dest = dest_root / digest[:16]
    try:
        with zipfile.ZipFile(zpath) as zf:
            for index, info in enumerate(zf.infolist()):
                if info.is_dir():
                    continue
                name = info.filename
                parts = PurePosixPath(name.replace("\\", "/")).parts
                if "__MACOSX" in parts or parts[-1].startswith("._"):
                    continue  # macOS resource-fork debris, never an export
                if Path(name).suffix.lower() not in EXPORT_SUFFIXES:
                    continue  # images, audio, ... that exports carry alongside the conversations
                target, warning = _member_target(dest, index, name)
                if not (target.exists() and target.stat().st_size == info.file_size):
                    target.parent.mkdir(parents=True, exist_ok=True)
                    tmp = target.with_name(target.name + ".part")
                    with zf.open(info) as src, open(tmp, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 22)
                    os.replace(tmp, target)
                _add_file(target, f"{display}!{name}", False, dest_root, out, errors)
                if warning and out and out[-1].path == target:
                    out[-1].warnings.append(warning)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        errors.append({"file": display, "conversation": None, "error": f"unreadable zip: {exc}"})


def _add_file(path: Path, display: str, explicit: bool, extract_root: Path, out: list[SourceFile],
              errors: list[dict[str, str]]) -> None:
    if (path.suffix.lower() == ".zip" or explicit) and zipfile.is_zipfile(path):
        _extract_zip(path, display, extract_root, out, errors)
        return
    if not explicit and path.suffix.lower() not in EXPORT_SUFFIXES:
        return
    try:
        size = path.stat().st_size
        out.append(SourceFile(path=path, display=display, size=size, sha256=sha256_file(path), explicit=explicit))
    except OSError as exc:
        errors.append({"file": display, "conversation": None, "error": f"unreadable: {exc.strerror or exc}"})


def collect(paths: list[str], extract_root: Path) -> tuple[list[SourceFile], list[dict[str, str]]]:
    """Every file to consider, in a stable order; errors for paths that cannot be read."""
    out: list[SourceFile] = []
    errors: list[dict[str, str]] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if name.startswith("."):
                        continue
                    fp = Path(root) / name
                    _add_file(fp, str(fp), False, extract_root, out, errors)
        elif p.exists():
            _add_file(p, str(p), True, extract_root, out, errors)
        else:
            errors.append({"file": str(p), "conversation": None, "error": "no such file or directory"})
    # the same content reached twice (a file and its copy in a zip) is imported once
    seen: set[str] = set()
    unique = []
    for s in out:
        if s.sha256 not in seen:
            seen.add(s.sha256)
            unique.append(s)
    return unique, errors


# ----------------------------------------------------------------------------- detection


def _classify(obj: Any) -> tuple[str | None, str | None]:
    """(format, ignored-kind) of one element / object."""
    if not isinstance(obj, dict):
        return None, None
    keys = obj.keys()
    if "mapping" in keys:
        mapping = obj.get("mapping")
        if "inserted_at" in keys or (isinstance(mapping, dict) and any(
                isinstance(n, dict) and isinstance(n.get("message"), dict) and "fragments" in n["message"]
                for n in list(mapping.values())[:5])):
            return "deepseek", None
        return "chatgpt", None
    if "chat_messages" in keys:
        msgs = obj.get("chat_messages")
        if isinstance(msgs, list) and any(isinstance(m, dict) and "fragments" in m for m in msgs[:3]):
            return "deepseek", None
        return "claude", None
    if isinstance(obj.get("chat"), dict) and "history" in obj["chat"]:
        return "qwen", None
    if isinstance(obj.get("data"), list) and (not obj["data"] or _classify(obj["data"][0])[0] == "qwen"):
        return "qwen_export", None
    if "header" in keys and "title" in keys and ("time" in keys or "products" in keys):
        return "gemini_json", None
    if isinstance(obj.get("conversations"), list):
        return "sharegpt", None
    if isinstance(obj.get("messages"), list):
        return "openai_chat", None
    # Files exports carry beside the conversations: recognised, not imported.
    if "uuid" in keys and ("docs" in keys or "prompt_template" in keys or "is_private" in keys):
        return None, "claude projects"
    if "email_address" in keys or ("email" in keys and ("chatgpt_plus_user" in keys or "phone_number" in keys)):
        return None, "account info"
    if "conversation_id" in keys and ("rating" in keys or "is_anonymous" in keys or "content" in keys):
        return None, "chatgpt feedback/shares"
    if "memory" in keys or "conversations_memory" in keys:
        return None, "memories"
    return None, None


def _head(path: Path, n: int = 65536) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def _find_marker(path: Path, pattern: re.Pattern[bytes], chunk: int = 1 << 22) -> int | None:
    """Offset just after the first match of ``pattern`` in the file, reading in overlapping chunks."""
    with open(path, "rb") as f:
        pos, carry = 0, b""
        while block := f.read(chunk):
            data = carry + block
            m = pattern.search(data)
            if m:
                return pos - len(carry) + m.end()
            carry = data[-256:]
            pos += len(block)
    return None


def detect(src: SourceFile, max_whole_bytes: int) -> Detected:
    if src.size == 0:
        return Detected(None, error="empty file")
    head = _head(src.path)
    start = 3 if head.startswith(b"\xef\xbb\xbf") else 0
    stripped = head[start:].lstrip()
    if not stripped:
        return Detected(None, error="empty file (only whitespace)")
    first = stripped[:1]
    if first == b"<":
        off = _find_marker(src.path, _CHATGPT_HTML_MARKER)
        if off is not None:
            return Detected("chatgpt_html", layout="array", offset=off)
        low = head.lower()
        if b"outer-cell" in low or b"gemini apps" in low or _find_marker(src.path, re.compile(rb"outer-cell")) is not None:
            if src.size > max_whole_bytes:
                return Detected(None, error=f"Gemini activity file of {src.size} bytes exceeds ingest.max_whole_file_mb")
            return Detected("gemini_html")
        return Detected(None, error="HTML that is not a chat export (no ChatGPT jsonData, no Gemini activity entries)")
    if first == b"[":
        with open(src.path, "rb") as f:
            try:
                it = array_elements(f, offset=start)
                s, e = next(it)
            except StopIteration:
                return Detected("empty_array", layout="array", offset=start)
            except SplitError as exc:
                return Detected(None, error=f"invalid JSON: {exc}")
            f.seek(s)
            raw = f.read(e - s)
        try:
            obj, _ = loads(raw)
        except ValueError as exc:
            return Detected(None, error=f"invalid JSON in the first element: {exc}")
        fmt, ignored = _classify(obj)
        if ignored:
            return Detected(None, ignored=ignored)
        if fmt is None:
            return Detected(None, error=f"unknown format: a JSON array of objects with keys {sorted(obj)[:8] if isinstance(obj, dict) else type(obj).__name__}")
        if fmt in ("gemini_json", "qwen"):
            if src.size > max_whole_bytes:
                return Detected(None, error=f"{fmt} file of {src.size} bytes exceeds ingest.max_whole_file_mb")
            return Detected(fmt + ("_list" if fmt == "qwen" else ""), layout="whole")
        return Detected(fmt, layout="array", offset=start)
    if first == b"{":
        # JSONL (one object per line) or one JSON object
        lines = stripped.split(b"\n", 2)
        if len(lines) > 1 and lines[1].strip().startswith(b"{"):
            try:
                obj, _ = loads(lines[0])
            except ValueError:
                obj = None
            if isinstance(obj, dict):
                fmt, ignored = _classify(obj)
                if fmt in ("openai_chat", "sharegpt", "chatgpt", "claude", "deepseek"):
                    return Detected(fmt + "_jsonl" if fmt != "openai_chat" else "openai_jsonl", layout="jsonl")
        if src.size > max_whole_bytes:
            return Detected(None, error=f"single JSON object of {src.size} bytes exceeds ingest.max_whole_file_mb")
        try:
            obj, _ = loads(_read(src.path))
        except ValueError as exc:
            return Detected(None, error=f"invalid JSON: {exc}")
        fmt, ignored = _classify(obj)
        if ignored:
            return Detected(None, ignored=ignored)
        if fmt is None:
            return Detected(None, error=f"unknown format: a JSON object with keys {sorted(obj)[:8]}")
        return Detected(fmt + "_single" if fmt != "qwen_export" else fmt, layout="whole")
    return Detected(None, error="unknown format (neither JSON nor HTML)")


def _read(path: Path) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    return data[3:] if data.startswith(b"\xef\xbb\xbf") else data


def plan_units(file_id: int, src: SourceFile, det: Detected, unit_bytes: int, unit_items: int) -> tuple[list[Unit], str | None]:
    """Cut one file into units; returns (units, error) — the error (a truncated array, say) comes
    after the units for everything before it, which are still imported."""
    assert det.format
    if det.layout == "whole":
        return [Unit(file_id, str(src.path), src.display, det.format, "whole")], None
    units: list[Unit] = []
    if det.layout == "jsonl":
        with open(src.path, "rb") as f:
            line, start = 1, 0
            while start < src.size:
                f.seek(start)
                block = f.read(unit_bytes)
                block += f.readline()  # finish the line the block cut
                end = start + len(block)
                units.append(Unit(file_id, str(src.path), src.display, det.format, "jsonl", [(start, end)], line))
                line += block.count(b"\n")
                start = end
        return units, None
    error = None
    batch: list[tuple[int, int]] = []
    size = 0
    with open(src.path, "rb") as f:
        try:
            for s, e in array_elements(f, offset=det.offset):
                batch.append((s, e))
                size += e - s
                if size >= unit_bytes or len(batch) >= unit_items:
                    units.append(Unit(file_id, str(src.path), src.display, det.format, "array", batch))
                    batch, size = [], 0
        except SplitError as exc:
            error = f"invalid JSON: {exc}"
    if batch:
        units.append(Unit(file_id, str(src.path), src.display, det.format, "array", batch))
    return units, error
