"""Pure text helpers for detection: fenced code blocks, script shares, chunks, snippets, entity normalisation.

Every offset here is a Python ``str`` index (a code point) into the text as stored, so a mention's
``text[start:end]`` is exactly its surface form.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# ``` or ~~~ fences (CommonMark): an opening fence, anything, the same fence again (or the end of the text:
# an unclosed fence runs to the end, as Markdown renders it)
_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})[^\n]*\n.*?(?:^[ \t]{0,3}\1[ \t]*$|\Z)", re.M | re.S)


def code_block_ranges(text: str) -> list[tuple[int, int]]:
    """[start, end) of every fenced code block, fences included, in order."""
    return [(m.start(), m.end()) for m in _FENCE.finditer(text)]


def mask_ranges(text: str, ranges: list[tuple[int, int]]) -> str:
    """The text with ``ranges`` blanked (newlines kept): same length, so every offset still holds."""
    if not ranges:
        return text
    parts, pos = [], 0
    for a, b in ranges:
        parts.append(text[pos:a])
        parts.append(re.sub(r"[^\n]", " ", text[a:b]))
        pos = b
    parts.append(text[pos:])
    return "".join(parts)


def in_ranges(start: int, end: int, ranges: list[tuple[int, int]]) -> bool:
    return any(a <= start and end <= b for a, b in ranges)


def latin_share(text: str) -> float:
    """Share of the letters that are Latin script (1.0 when there are no letters: nothing to misread)."""
    letters = latin = 0
    for ch in text:
        if ch.isalpha():
            letters += 1
            if ch < "\u0250" or "\u1e00" <= ch <= "\u1eff":  # Basic Latin .. IPA; Latin Extended Additional
                latin += 1
    return latin / letters if letters else 1.0


@dataclass(frozen=True)
class Chunk:
    start: int  # offset of the chunk in the whole text
    text: str


def chunk_text(text: str, size: int, overlap: int) -> list[Chunk]:
    """Chunks of about ``size`` characters, consecutive ones sharing ``overlap``; cuts fall on whitespace
    where there is some in the last quarter of a chunk (so words are not split)."""
    if len(text) <= size:
        return [Chunk(0, text)] if text else []
    out: list[Chunk] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            cut = max(text.rfind(" ", start + size * 3 // 4, end), text.rfind("\n", start + size * 3 // 4, end))
            if cut > start:
                end = cut
        out.append(Chunk(start, text[start:end]))
        if end >= len(text):
            break
        nxt = end - overlap
        if overlap:  # start the next chunk on a word boundary inside the overlap
            sp = text.find(" ", nxt, end)
            nxt = sp + 1 if sp != -1 else nxt
        start = max(nxt, start + 1)
    return out


def snippet(text: str, start: int, end: int, chars: int) -> tuple[int, str]:
    """(offset of the snippet in the text, the mention with up to ``chars`` characters either side, whitespace
    runs collapsed nowhere: the snippet is a verbatim slice)."""
    a = max(0, start - chars)
    b = min(len(text), end + chars)
    return a, text[a:b]


_WS = re.compile(r"\s+")
_EDGE = re.compile(r"^[\W_]+|[\W_]+$")


def normalise_entity(text: str) -> str:
    """The graph's node key: NFKC, case-folded, whitespace collapsed, punctuation trimmed from the ends, a
    leading English article dropped ("the PyTorch" and "PyTorch" are one node). Any script."""
    t = unicodedata.normalize("NFKC", text).casefold()
    t = _WS.sub(" ", t).strip()
    t = _EDGE.sub("", t)
    for art in ("the ", "a ", "an "):
        if t.startswith(art) and len(t) > len(art) + 1:
            t = t[len(art):]
            break
    return t


def clean_text(text: str) -> str:
    """What a detector may read: lone surrogates (which tokenizers refuse) become U+FFFD, same length."""
    if not text:
        return ""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
