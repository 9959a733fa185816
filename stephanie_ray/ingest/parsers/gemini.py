"""Gemini: Google Takeout "My Activity" (``MyActivity.html`` or ``.json``).

Activities are prompt/answer pairs, newest first, with no conversation id of their own: the only key
is the ``https://gemini.google.com/app/<id>`` link in each entry's details, which groups them into
conversations. Entries that are not prompts ("Used …", "Created …", "Gave feedback", …) are skipped
and counted. Pairs without a link become one-turn conversations keyed by their content.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from typing import Any

from ..htmltext import html_to_text
from ..model import Conv, Msg, as_str, to_epoch

PROVIDER = "gemini"
APP_LINK = re.compile(r"https?://gemini\.google\.com/app/([0-9A-Za-z_-]+)")
# "Prompted" and its localised forms seen in Takeout files (extend as exports in more languages appear).
PROMPT_PREFIXES = ("Prompted", "送信したメッセージ:", "送信したメッセージ：", "Pokyn", "Solicitado", "Eingabeaufforderung",
                   "Requête envoyée", "Prompt inviato", "Indicación", "Prompt:")
_TIME = re.compile(r"\d{1,2}:\d{2}")
_TZ = {"UTC": 0, "GMT": 0, "Z": 0, "CET": 1, "CEST": 2, "BST": 1, "IST": 5.5, "EET": 2, "EEST": 3, "WET": 0,
       "WEST": 1, "MSK": 3, "JST": 9, "KST": 9, "CST": -6, "CDT": -5, "EST": -5, "EDT": -4, "MST": -7, "MDT": -6,
       "PST": -8, "PDT": -7, "AEST": 10, "AEDT": 11, "SGT": 8, "HKT": 8, "BRT": -3}
_FORMATS = ("%b %d, %Y, %I:%M:%S %p", "%d %b %Y, %H:%M:%S", "%b %d, %Y, %H:%M:%S", "%Y/%m/%d %H:%M:%S",
            "%d.%m.%Y, %H:%M:%S", "%d %b %Y, %I:%M:%S %p", "%Y-%m-%d %H:%M:%S")


def parse_local_time(text: str) -> float | None:
    """'Aug 8, 2026, 6:39:27 PM CEST' -> epoch seconds (UTC). Unknown zones are read as UTC."""
    s = text.replace("\u202f", " ").replace("\xa0", " ").strip()
    offset = 0.0
    m = re.search(r"\s([A-Z]{1,5}|GMT[+-]\d{1,2}(?::?\d{2})?|UTC[+-]\d{1,2}(?::?\d{2})?)$", s)
    if m:
        zone = m.group(1)
        s = s[: m.start()].strip()
        zm = re.match(r"(?:GMT|UTC)([+-])(\d{1,2})(?::?(\d{2}))?$", zone)
        if zm:
            offset = (1 if zm.group(1) == "+" else -1) * (int(zm.group(2)) + int(zm.group(3) or 0) / 60)
        else:
            offset = _TZ.get(zone, 0)
    for fmt in _FORMATS:
        try:
            dt = datetime.strptime(s, fmt)
        except ValueError:
            continue
        if abs(offset) >= 24:  # "GMT+99" is no time zone: read the time as UTC
            offset = 0.0
        return dt.replace(tzinfo=timezone(timedelta(hours=offset))).timestamp()
    return None


def _strip_prefix(text: str) -> str | None:
    t = text.lstrip()
    for p in PROMPT_PREFIXES:
        if t.startswith(p):
            return t[len(p):].lstrip(" :：\n")
    return None


class _Cells(HTMLParser):
    """Collects, per ``outer-cell`` entry: header title, the content cells' raw HTML, the links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.entries: list[dict[str, Any]] = []
        self.depth = 0
        self.entry_depth: int | None = None
        self.cell_depth: int | None = None
        self.cell: list[str] | None = None
        self.title_p = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        cls = a.get("class") or ""
        if tag == "div":
            self.depth += 1
            if "outer-cell" in cls.split():
                self.entry_depth = self.depth
                self.entries.append({"title": "", "cells": [], "links": []})
                return
            if self.entry_depth is not None and self.cell is None and "content-cell" in cls.split():
                self.cell_depth = self.depth
                self.cell = []
                self.entries[-1]["cells"].append(self.cell)
                return
        if self.entry_depth is not None:
            if tag == "a" and a.get("href"):
                self.entries[-1]["links"].append(a["href"])
            if tag == "p" and "mdl-typography--title" in cls:
                self.title_p = True
        if self.cell is not None:
            self.cell.append(self.get_starttag_text() or "")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.cell is not None:
            self.cell.append(self.get_starttag_text() or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "p":
            self.title_p = False
        if tag == "div":
            if self.cell is not None and self.depth == self.cell_depth:
                self.cell = None
                self.cell_depth = None
            elif self.entry_depth is not None and self.depth == self.entry_depth:
                self.entry_depth = None
            self.depth -= 1
            if self.cell is None:
                return
        if self.cell is not None:
            self.cell.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if self.title_p and self.entry_depth is not None:
            self.entries[-1]["title"] += data
        if self.cell is not None:
            self.cell.append(data)

    def handle_entityref(self, name: str) -> None:
        self.handle_data(f"&{name};")

    def handle_charref(self, name: str) -> None:
        self.handle_data(f"&#{name};")


def _split_prompt_cell(cell_html: str) -> tuple[str, float | None, str] | None:
    """'Prompted <prompt><br><time><br><answer>' -> (prompt text, epoch, answer text)."""
    parts = re.split(r"<br\s*/?>", cell_html, flags=re.I)
    for k in range(1, len(parts)):
        candidate = html_to_text(parts[k])
        if len(candidate) < 60 and _TIME.search(candidate):
            when = parse_local_time(candidate)
            if when is not None or k == 1:
                prompt = html_to_text("<br>".join(parts[:k]))
                answer = html_to_text("<br>".join(parts[k + 1:]))
                return prompt, when, answer
    return None


def entries_from_html(text: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    p = _Cells()
    p.feed(text)
    p.close()
    out, skipped = [], {}
    for e in p.entries:
        cells = ["".join(c) for c in e["cells"]]
        if not cells:
            continue
        first = html_to_text(cells[0].split("<br>")[0] if "<br>" in cells[0] else cells[0])
        body = _strip_prefix(first)
        if body is None:
            kind = (first.split() or ["(empty)"])[0]
            skipped[kind] = skipped.get(kind, 0) + 1
            continue
        split = _split_prompt_cell(cells[0])
        if split is None:
            skipped["unreadable"] = skipped.get("unreadable", 0) + 1
            continue
        prompt, when, answer = split
        prompt = _strip_prefix(prompt) or prompt
        link = next((m.group(1) for l in e["links"] + cells[1:] for m in [APP_LINK.search(l)] if m), None)
        out.append({"prompt": prompt, "answer": answer, "time": when, "conversation": link})
    return out, skipped


def entries_from_json(doc: list[Any]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    out, skipped = [], {}
    for e in doc:
        if not isinstance(e, dict):
            skipped["not-an-object"] = skipped.get("not-an-object", 0) + 1
            continue
        title = as_str(e.get("title")) if isinstance(e.get("title"), str) else ""
        body = _strip_prefix(title)
        if body is None:
            kind = (title.split() or ["(empty)"])[0]
            skipped[kind] = skipped.get(kind, 0) + 1
            continue
        items = e.get("safeHtmlItem")
        answer = "\n\n".join(html_to_text(as_str(i.get("html"), "safeHtmlItem[].html"))
                             for i in (items if isinstance(items, list) else []) if isinstance(i, dict))
        blob = repr({k: e.get(k) for k in ("details", "titleUrl", "subtitles", "safeHtmlItem")})
        m = APP_LINK.search(blob)
        out.append({"prompt": body, "answer": answer, "time": to_epoch(e.get("time"), "activity time"),
                    "conversation": m.group(1) if m else None,
                    "files": e.get("attachedFiles") or [], "image": e.get("imageFile")})
    return out, skipped


def conversations_from_entries(entries: list[dict[str, Any]]) -> list[Conv]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        key = e["conversation"] or "activity-" + hashlib.sha256(
            f"{e['time']}\x1f{e['prompt']}".encode("utf-8", "surrogatepass")).hexdigest()[:20]
        groups.setdefault(key, []).append(e)
    convs = []
    for key, items in groups.items():
        items.sort(key=lambda e: (e["time"] or 0.0))  # the file runs newest first
        messages: list[Msg] = []
        prev = None
        for e in items:
            h = hashlib.sha256(f"{key}\x1f{e['time']}\x1f{e['prompt']}".encode("utf-8", "surrogatepass")).hexdigest()[:24]
            blocks = []
            if e.get("files"):
                blocks.append({"type": "attachments", "files": e["files"]})
            messages.append(Msg(external_id=f"{h}-q", parent=prev, role="user", text=e["prompt"],
                                created_at=e["time"], blocks=blocks))
            messages.append(Msg(external_id=f"{h}-a", parent=f"{h}-q", role="assistant", text=e["answer"],
                                created_at=e["time"]))
            prev = f"{h}-a"
        convs.append(Conv(provider=PROVIDER, external_id=key, title="", messages=messages, linear=True,
                          meta={"url": f"https://gemini.google.com/app/{key}"} if not key.startswith("activity-") else {}))
    return convs
