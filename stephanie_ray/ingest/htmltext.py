"""HTML to readable plain text (paragraphs, line breaks, list items, code blocks kept), stdlib only."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

_BLOCK = {"p", "div", "section", "article", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table", "tr",
          "blockquote", "pre", "hr", "figure"}
_SKIP = {"script", "style", "head", "title"}


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0
        self.pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip += 1
        elif tag == "br":
            self.out.append("\n")
        elif tag == "li":
            self.out.append("\n- ")
        elif tag in _BLOCK:
            self.out.append("\n\n")
            if tag == "pre":
                self.pre += 1
                self.out.append("```\n")
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self.out.append(f"[image: {alt}]")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag == "pre":
            self.pre = max(0, self.pre - 1)
            self.out.append("\n```\n\n")
        elif tag in _BLOCK or tag == "li":
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        self.out.append(data if self.pre else re.sub(r"[ \t\r\f\v]*\n[ \t\r\f\v]*", "\n", data))


def html_to_text(fragment: str) -> str:
    p = _TextParser()
    p.feed(fragment)
    p.close()
    text = "".join(p.out).replace("\xa0", " ")
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def looks_like_html(text: str) -> bool:
    return bool(re.search(r"<(p|div|br|span|pre|code|ol|ul|li|h[1-6])[\s>/]", text, re.I))


__all__ = ["html_to_text", "looks_like_html", "html"]
