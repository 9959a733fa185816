"""The rule-based detector: what general NER misses in technical chats, in any script.

Each rule is (label, confidence, finder). Finders return exact ``(start, end)`` offsets. The confidences
order overlapping mentions in the chain (``detect.resolve_overlaps``): a URL or a backticked name is
certain; an acronym or a run of capitalised words is a guess that a statistical detector may overrule.

Labels: URL, ARXIV, PATH, CODE (backticked inline code), MODULE (imported in a code block), IDENT
(CamelCase, snake_case and dotted identifiers), ACRONYM, NAME (capitalised multi-word names).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterator

_TRAIL = ".,;:!?)]}'\"»”’>"

URL = re.compile(r"\b(?:https?://|ftp://|www\.)[^\s<>\[\]\"'`{}|\\^]+", re.I)
ARXIV = re.compile(r"\barXiv:\s?(?:\d{4}\.\d{4,5}|[a-z-]+(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?|\b\d{4}\.\d{5}(?:v\d+)?\b",
                   re.I)
_EXT = (r"(?:py|pyi|ipynb|js|jsx|ts|tsx|json|jsonl|ya?ml|toml|ini|cfg|md|rst|txt|csv|tsv|parquet|sql|sh|bash|zsh|"
        r"rs|go|java|kt|scala|c|cc|cpp|h|hpp|cs|rb|php|swift|r|jl|lua|html?|css|scss|xml|lock|log|env|pdf|png|jpe?g|"
        r"svg|safetensors|bin|pt|ckpt|onnx|gguf|zip|gz|tar|dockerfile)")
PATH = re.compile(
    r"(?<![\w/.:])(?:"
    r"(?:~|\.{1,2})?/(?:[\w.@+-]+/)+[\w.@+-]*"  # /abs/path, ~/x/y, ./rel/dir/
    r"|[A-Za-z]:\\(?:[\w .@+-]+\\)*[\w.@+-]+"  # C:\Users\me\file.txt
    r"|[\w@+-]+(?:/[\w.@+-]+)+\." + _EXT + r"\b"  # src/app/main.py
    r"|[\w-]+\." + _EXT + r"\b"  # main.py
    r"|(?:Dockerfile|Makefile|README|LICENSE)\b"
    r")")
BACKTICK = re.compile(r"(?<!`)`([^`\n]{1,100})`(?!`)")
IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+([\w.]+)[ \t]+import\b|import[ \t]+([\w.]+))", re.M)
WORD = re.compile(r"\w+(?:[.\-]\w+)*", re.UNICODE)
_TOKEN = re.compile(r"\S+")

# capitalised function words that start sentences, not names ("The Transformer" -> "Transformer")
_LEADING = {"the", "a", "an", "this", "that", "these", "those", "in", "on", "at", "for", "to", "from", "with",
            "by", "and", "or", "but", "if", "when", "while", "i", "we", "you", "it", "my", "our", "your", "is",
            "are", "was", "use", "using", "see", "let", "here", "there", "what", "why", "how", "yes", "no", "ok",
            "so", "then", "also", "note", "step", "thanks", "please", "hi", "hello", "as", "after", "before"}
_CONNECTORS = {"of", "de", "del", "der", "di", "da", "du", "la", "le", "von", "van", "&"}
_NOT_ACRONYMS = {"OK", "AM", "PM", "TODO", "FIXME", "NOTE", "I", "A", "ID", "OR", "AND", "NOT", "IF", "IS", "IT", "TO",
                 "NB", "PS", "ETC", "EG", "IE", "NO", "YES", "THE", "TL", "DR"}


@dataclass(frozen=True)
class RuleHit:
    start: int
    end: int
    label: str
    score: float


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while end > start and text[end - 1] in _TRAIL:
        # keep a closing bracket whose opener is inside the match: https://en.wikipedia.org/wiki/Foo_(bar)
        if text[end - 1] == ")" and text.count("(", start, end) >= text.count(")", start, end):
            break
        end -= 1
    return start, end


def _urls(text: str) -> Iterator[tuple[int, int]]:
    for m in URL.finditer(text):
        a, b = _trim(text, m.start(), m.end())
        if b - a > 4:
            yield a, b


def _regex(rx: re.Pattern[str], group: int = 0) -> Callable[[str], Iterator[tuple[int, int]]]:
    def find(text: str) -> Iterator[tuple[int, int]]:
        for m in rx.finditer(text):
            a, b = _trim(text, m.start(group), m.end(group))
            if b > a:
                yield a, b
    return find


def _paths(text: str) -> Iterator[tuple[int, int]]:
    for m in PATH.finditer(text):
        a, b = _trim(text, m.start(), m.end())
        s = text[a:b]
        if b - a >= 3 and s not in ("/", "./", "../") and not s.startswith("//"):
            yield a, b


def _imports(text: str) -> Iterator[tuple[int, int]]:
    for m in IMPORT.finditer(text):
        g = 1 if m.group(1) else 2
        yield m.start(g), m.end(g)


def is_camel(w: str) -> bool:
    """PyTorch, JavaScript, getUserName, iPhone, LLaMA: letters of both cases with an inner capital."""
    if not w[0].isalpha() or not any(c.islower() for c in w) or "_" in w:
        return False
    return any(c.isupper() for c in w[1:]) and any(w[i].islower() and w[i + 1].isupper() for i in range(len(w) - 1)) \
        or (w[0].isupper() and sum(c.isupper() for c in w) >= 2 and any(c.isdigit() for c in w) is False
            and any(w[i].isupper() and w[i + 1].isupper() for i in range(len(w) - 1)) and w[-1].islower())


def is_snake(w: str) -> bool:
    parts = [p for p in w.split("_") if p]
    return "_" in w.strip("_") and len(parts) >= 2 and any(c.isalpha() for c in w) or \
        (w.startswith("__") and w.endswith("__") and len(w) > 4)


def is_acronym(w: str) -> bool:
    letters = [c for c in w if c.isalpha()]
    return (2 <= len(w) <= 10 and len(letters) >= 2 and all(c.isupper() for c in letters) and w[0].isalpha()
            and all(c.isalnum() or c == "-" for c in w) and w not in _NOT_ACRONYMS)


def _words(text: str) -> Iterator[RuleHit]:
    for m in WORD.finditer(text):
        w = m.group()
        a, b = m.start(), m.end()
        if "." in w:  # torch.nn.Module, node.js; not "e.g" or "U.S" (one-letter parts)
            parts = w.split(".")
            if all(len(p) >= 2 for p in parts) and any(c.islower() for c in w) and not w[0].isdigit():
                yield RuleHit(a, b, "IDENT", 0.6)
                continue
            w = parts[0]
            b = a + len(w)
        if "-" in w and not is_acronym(w):
            continue
        if is_snake(w):
            yield RuleHit(a, b, "IDENT", 0.8)
        elif is_camel(w):
            yield RuleHit(a, b, "IDENT", 0.75)
        elif is_acronym(w):
            yield RuleHit(a, b, "ACRONYM", 0.5)


def _names(text: str) -> Iterator[RuleHit]:
    """Runs of two or more capitalised words (any script with case: "Hugging Face", "Bank of America",
    "Владимир Путин"); lower-case connectors allowed inside; leading function words dropped; a run ends at a
    word followed by sentence punctuation."""
    run: list[tuple[int, int, str]] = []

    def flush() -> Iterator[RuleHit]:
        toks = list(run)
        run.clear()
        while toks and (toks[0][2].casefold() in _LEADING or not toks[0][2][0].isupper() or len(toks[0][2]) == 1):
            toks.pop(0)
        while toks and not toks[-1][2][0].isupper():
            toks.pop()
        if sum(t[2][0].isupper() for t in toks) >= 2:
            yield RuleHit(toks[0][0], toks[-1][1], "NAME", 0.45)

    for m in _TOKEN.finditer(text):
        a, b = _trim(text, m.start(), m.end())
        word = text[a:b]
        ok = bool(word) and (word[0].isupper() and word[0].isalpha() or (run and word in _CONNECTORS))
        gap = text[run[-1][1]:m.start()] if run else " "
        if not ok or gap.strip() or "\n" in gap:
            yield from flush()
            if not ok:
                continue
        run.append((a, b, word))
        if b < m.end():  # trailing punctuation: the run ends with this word
            yield from flush()
    yield from flush()


# (label, confidence, finder); ``in_code`` says whether the rule also reads fenced code blocks
RULES: list[tuple[str, float, Callable[[str], Iterator[tuple[int, int]]], bool]] = [
    ("URL", 1.0, _urls, True),
    ("ARXIV", 1.0, _regex(ARXIV), True),
    ("PATH", 0.9, _paths, True),
    ("CODE", 0.95, _regex(BACKTICK, 1), False),
    ("MODULE", 0.9, _imports, True),
]
RULE_LABELS = ("URL", "ARXIV", "PATH", "CODE", "MODULE", "IDENT", "ACRONYM", "NAME")


def find_rules(text: str, code_ranges: list[tuple[int, int]] | None = None, code_policy: str = "rules") -> list[RuleHit]:
    """Every rule hit in ``text``. Inside fenced code (``code_ranges``): with policy ``rules`` only the rules
    marked for code (URLs, arXiv ids, paths, imported modules); ``skip``: nothing; ``all``: every rule."""
    from .text import in_ranges, mask_ranges

    code_ranges = code_ranges or []
    prose = mask_ranges(text, code_ranges) if code_ranges and code_policy != "all" else text
    hits: list[RuleHit] = []
    for label, score, finder, in_code in RULES:
        src = text if (in_code and code_policy == "rules") or code_policy == "all" else prose
        for a, b in finder(src):
            if label == "MODULE" and not (code_policy == "all" or in_ranges(a, b, code_ranges)):
                continue  # "import x" in prose is a sentence, not code
            hits.append(RuleHit(a, b, label, score))
    hits.extend(_words(prose))
    hits.extend(_names(prose))
    return hits
