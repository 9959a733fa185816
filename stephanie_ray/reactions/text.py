"""Language-independent text helpers: normalisation, Unicode tokens, similarity, error shapes.

Nothing here knows an English word: tokens are ``\\w`` runs (Unicode-aware), CJK ideographs and kana
are one token per character (those scripts put no spaces between words), and error output is
recognised by its *shape* (tracebacks, stack frames, HTTP and database error codes, compiler and
test-runner lines), which is the same whatever language the person writes in.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u00b4": "'", "\u02bc": "'"})
# Latin letters that carry their mark inside (no decomposition), typed without it as often as with it.
_LATIN_PLAIN = str.maketrans({"ł": "l", "ø": "o", "đ": "d", "ð": "d", "ı": "i", "æ": "ae", "œ": "oe"})


def normalise(text: str) -> str:
    """NFKC, casefolded, apostrophes dropped, accents stripped from Latin letters, spaces collapsed
    (line breaks kept, one per run of blank lines).

    Accents are stripped only after a Latin base letter: Hangul, kana (dakuten) and Cyrillic (й)
    keep theirs, since there they change the letter rather than decorate it.
    """
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).casefold()
    text = text.replace("'", "").translate(_LATIN_PLAIN)
    out: list[str] = []
    for ch in unicodedata.normalize("NFD", text):
        if unicodedata.combining(ch) and out and out[-1] < "\u0250":
            continue
        out.append(ch)
    text = re.sub(r"[^\S\n]+", " ", unicodedata.normalize("NFC", "".join(out)))  # line breaks kept: sentences
    return re.sub(r" ?\n[\s]*", "\n", text).strip()


# CJK ideographs, kana and their punctuation-free neighbours: one token per character.
_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+", re.UNICODE)


def tokens(text: str) -> list[str]:
    """Unicode word tokens of normalised text; each CJK ideograph or kana is its own token."""
    return _TOKEN.findall(normalise(text))


_FENCED = re.compile(r"```.*?(?:```|\Z)", re.S)
_CODE_LINE = re.compile(r"^(?:\s{2,}|\t)\S|[;{}]\s*$|^\s*(?:#|//|--|'|>>>|\$ |PS [A-Z]:|[A-Z]:\\|[\w.]+\(.*\)\s*$)"
                        r"|^\s*(?:def|class|import|from|return|if|for|while|Sub|Dim|End|function|const|let|var"
                        r"|SELECT)\b")


def prose(text: str) -> str:
    """The person's own words: ``text`` without fenced code and without lines shaped like code or logs.

    A pasted program or log is not the person talking: a German comment in pasted VBA ("falsch")
    or an "error" inside a log the assistant asked for says nothing about the answer.
    """
    lines = _FENCED.sub("\n", text).splitlines()
    return "\n".join(ln for ln in lines if not _CODE_LINE.search(ln))


def char_ngrams(text: str, n: int = 3) -> set[str]:
    t = normalise(text)
    return {t[i:i + n] for i in range(max(0, len(t) - n + 1))}


@dataclass(frozen=True, slots=True)
class Overlap:
    similarity: float  # the larger of token and character-trigram Jaccard similarity
    new_share: float  # share of the next message's tokens that are not in the prompt


def overlap(prompt: str, nxt: str) -> Overlap:
    """How much ``nxt`` repeats ``prompt``, measured without knowing the language."""
    tp, tn = set(tokens(prompt)), set(tokens(nxt))
    if not tp or not tn:
        return Overlap(0.0, 1.0)
    tok_j = len(tp & tn) / len(tp | tn)
    cp, cn = char_ngrams(prompt), char_ngrams(nxt)
    chr_j = len(cp & cn) / len(cp | cn) if cp and cn else 0.0
    return Overlap(max(tok_j, chr_j), len(tn - tp) / len(tn))


# Error output, recognised by shape. Each entry: (name for the rationale, pattern).
ERROR_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = tuple((name, re.compile(p, re.M)) for name, p in (
    ("a Python traceback", r"Traceback \(most recent call last\)|^\s*File \"[^\"]+\", line \d+"),
    ("an exception", r"^\s*(?:[\w.]+\.)?[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Warning)\b(?::|$)"
                     r"|\b[A-Z][a-z]+\w*(?:Error|Exception)\b(?!\s*(?:class|type|handling|handler))"),
    ("a stack trace", r"^\s+at [\w.$<>\[\]/]+ ?\(?[^)\n]*:\d+(?::\d+)?\)?\s*$|Exception in thread|Uncaught \w+"
                      r"|^\s*#\d+ 0x[0-9a-f]+|goroutine \d+ \[|^panic: |thread '[^']*' panicked"),
    ("an HTTP error", r"\b(?:HTTP/\d(?:\.\d)?\s+)?[45]\d\d\s+(?:Bad Request|Unauthorized|Forbidden|Not Found|"
                      r"Method Not Allowed|Conflict|Unprocessable|Too Many Requests|Internal Server Error|"
                      r"Bad Gateway|Service Unavailable|Gateway Time-?out)\b|\bstatus(?: code)?:? [45]\d\d\b"),
    ("a connection error", r"\bECONNREFUSED\b|\bETIMEDOUT\b|\bECONNRESET\b|\bENOTFOUND\b|\bEADDRINUSE\b"
                           r"|actively refused|Connection refused|Connection reset|Unable to connect"
                           r"|Could not resolve host|Name or service not known|timed out"),
    ("a database error", r"\bORA-\d{5}\b|\bSQLSTATE\b|\bSQL(?:ite)?\s?[Ee]rror\b|^ERROR:\s+\S|\bpsycopg2?\.\w+"
                         r"|\bsqlite3\.\w+Error|\bMsg \d+, Level \d+|duplicate key value"
                         r"|relation \"[^\"]+\" does not exist"),
    ("a compiler or shell error", r"^\s*error(?:\[E\d+\])?:\s|^\S+:\d+:\d+:\s*(?:fatal )?error\b|\berror TS\d+\b"
                                  r"|\berror CS\d{4}\b|\berror C\d{4}\b|undefined reference to|Segmentation fault"
                                  r"|core dumped|^fatal: |\bnpm ERR!|command not found|No such file or directory"
                                  r"|Permission denied|is not recognized as an internal or external command"
                                  r"|cannot find module|Cannot find module|ModuleNotFoundError|ImportError"
                                  r"|SyntaxError|unexpected token|Unexpected token|^\s*\^+\s*$"),
    ("a spreadsheet error", r"#(?:N/A|N/D|NV|NA)\b|#¡?[A-ZÀ-ÝА-Я][A-ZÀ-ÝА-Я/0]{1,9}[!?]"),  # #VALUE!, #WERT!, #N/D ...
    ("failing test output", r"^FAILED\b|^FAIL[: ]|\b\d+ failed\b|\bAssertionError\b|^E\s{3}|Tests?:\s+\d+ failed"
                            r"|✗|✕|\bBUILD FAILED\b"),
))


def error_shape(text: str) -> str | None:
    """The first kind of error output found in ``text`` (its name), or None."""
    for name, pattern in ERROR_SHAPES:
        if pattern.search(text):
            return name
    return None
