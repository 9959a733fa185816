"""Language of a conversation and how common a word is in general language. Pure.

Used by :mod:`.goal_evidence` to tell which words may link two conversations (only words of one
language, and rarer ones count for more); see its docstring for the whole method.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

# ----------------------------------------------------------------------------- language

# Script of a letter, by Unicode block; what is not listed counts as "other".
_SCRIPT_RANGES: tuple[tuple[int, int, str], ...] = (
    (0x0041, 0x005A, "latin"), (0x0061, 0x007A, "latin"), (0x00C0, 0x024F, "latin"), (0x1E00, 0x1EFF, "latin"),
    (0x0370, 0x03FF, "greek"), (0x0400, 0x052F, "cyrillic"), (0x0590, 0x05FF, "hebrew"),
    (0x0600, 0x06FF, "arabic"), (0x0750, 0x077F, "arabic"), (0x0900, 0x097F, "devanagari"),
    (0x0E00, 0x0E7F, "thai"), (0x1100, 0x11FF, "hangul"), (0x3130, 0x318F, "hangul"),
    (0xAC00, 0xD7AF, "hangul"), (0x3040, 0x30FF, "kana"), (0x3400, 0x4DBF, "han"),
    (0x4E00, 0x9FFF, "han"), (0xF900, 0xFAFF, "han"),
)
# Scripts written without spaces between words (Hangul has spaces, but particles glue on).
_UNSPACED = frozenset({"hangul", "han", "kana", "thai"})
_SCRIPT_LANG = {"hangul": "ko", "kana": "ja", "han": "zh", "cyrillic": "ru", "greek": "el", "hebrew": "he",
                "arabic": "ar", "devanagari": "hi", "thai": "th"}

# Frequent function words per Latin-script language: enough to tell English from Dutch, German, ...
# Words shared by several lists count for each; the language with most hits wins.
STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset("the a an and or is are was were be to of in on for with how what why when which this that "
                    "it its my i you your do does did can could should would not from have has there they we "
                    "me please want need use using get".split()),
    "nl": frozenset("de het een en of is zijn was waren ik je jij u mijn niet met voor op dat die dit deze hoe "
                    "wat waarom naar ook maar kan kun kunnen wordt worden er als bij heb hebt moet graag van "
                    "geen nog wel te om aan".split()),
    "de": frozenset("der die das und oder ist sind war nicht ich du mit für auf ein eine einen wie was warum zu "
                    "den dem von es sich kann mein meine bitte auch aber wird werden noch im".split()),
    "fr": frozenset("le la les et ou est sont une un des pour dans que qui pas je tu vous comment avec sur du "
                    "au mon ma ce cette ne plus mais".split()),
    "es": frozenset("el la los las y o es son una un para con que por cómo como del mi en no se lo qué pero "
                    "más esto".split()),
    "it": frozenset("il lo la gli le di che e è per una un con non come del della sono mi questo questa "
                    "ma più nel".split()),
    "pt": frozenset("o a os as e é um uma para com que não como do da em meu minha por isso mas mais no "
                    "na".split()),
}
_ALL_STOP = frozenset().union(*STOPWORDS.values())
# Words of chat requests and code keywords: frequent in everyone's history, evidence of nothing.
_NOISE = frozenset(
    "hello hi thanks thank help explain write make create show give tell like just also some any all "
    "def return import from class self none true false null var let const function public private static "
    "void int str string bool print if else elif for while try except catch new this end begin select "
    "where insert update delete into values table create".split())


@dataclass(frozen=True, slots=True)
class Language:
    code: str  # ISO-639-1-ish: "en", "nl", "ko", ...; "und" when Latin text gives no clue
    script: str  # dominant script of the prose: "latin", "hangul", "han", ...


def script_of(ch: str) -> str:
    cp = ord(ch)
    for lo, hi, name in _SCRIPT_RANGES:
        if lo <= cp <= hi:
            return name
    return "other"


_CODE_BLOCK = re.compile(r"```.*?(?:```|$)", re.S)
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_URL = re.compile(r"https?://[^\s<>\"'`)\]}]+", re.I)
_WORD = re.compile(r"\w+")


def prose_of(text: str) -> str:
    """Text without code and URLs: what the person wrote in their own language."""
    return _URL.sub(" ", _INLINE_CODE.sub(" ", _CODE_BLOCK.sub(" ", text)))


_SCRIPT_RES = {name: re.compile("[" + "".join(f"\\u{lo:04x}-\\u{hi:04x}" for lo, hi, n in _SCRIPT_RANGES if n == name) + "]")
               for name in dict.fromkeys(n for _, _, n in _SCRIPT_RANGES)}
_SAMPLE_CHARS = 5000  # enough prose to tell a language; the rest costs time and changes nothing


def detect_language(text: str) -> Language:
    """The language of a text's prose: script by letter counts, then stop-word hits for Latin script."""
    prose = prose_of(text)[:_SAMPLE_CHARS]
    counts: Counter = Counter()
    for name, rx in _SCRIPT_RES.items():  # one C-level scan per script
        hits = len(rx.findall(prose))
        if hits:
            counts[name] = hits * (3 if name in _UNSPACED else 1)  # a Han or Hangul character carries about a word
    if not counts:
        return Language("und", "latin")
    # Korean and Japanese prose embed Han characters; a few kana/hangul letters decide the language
    han, kana, hangul = counts.get("han", 0), counts.get("kana", 0), counts.get("hangul", 0)
    if kana and kana * 5 >= han:
        counts["kana"] += han
        counts.pop("han", None)
    script = max(sorted(counts), key=lambda s: counts[s])
    if script == "han" and hangul * 5 >= han:
        script = "hangul"
    if script != "latin":
        return Language(_SCRIPT_LANG.get(script, script), script)
    words = [w.lower() for w in _WORD.findall(prose) if not w.isdigit()]
    hits = {lang: sum(w in stop for w in words) for lang, stop in STOPWORDS.items()}
    best = max(STOPWORDS, key=lambda lang: hits[lang])  # dict order breaks ties: English first
    return Language(best if hits[best] > 0 else "und", "latin")


# ----------------------------------------------------------------------------- general-language prior

# Zipf frequency (log10 of occurrences per billion words) at and above which a word is so common in
# its language that it is no evidence of a project, and at and below which it counts fully.
ZIPF_COMMON, ZIPF_RARE = 5.5, 3.5
# What a word the prior cannot judge counts for: a language wordfreq lacks, or a CJK bigram the
# language's list does not hold (a bigram of Han or Kana absent from the list is usually a
# fragment of two words, ``くだ``+``ださ``, not a rare word).
UNKNOWN_PRIOR = 0.5
# A name (mark) that a general word list holds counts for at most this (see :func:`prior`).
LISTED_NAME = 0.6
# Marks hold across languages, so their general frequency is their highest in these and in the
# conversation's own language: ``rust`` is a Dutch word, ``mir`` a German one.
MARK_LANGS = ("en", "nl", "de", "fr", "es", "pt", "it")
_ZIPF: dict[str, dict[str, float]] = {}


def _zipf_table(lang: str) -> dict[str, float]:
    """Word -> Zipf frequency for ``lang``'s words, loaded on first use.

    wordfreq's *small* lists (words down to Zipf 3): about 30,000 entries per language, a few MB.
    Read with ``read_cBpack`` rather than ``get_frequency_dict``, which caches the whole list.
    An empty table where wordfreq has no list for the language (or is not installed).
    """
    table = _ZIPF.get(lang)
    if table is None:
        table = {}
        try:
            from wordfreq import available_languages, read_cBpack
        except ImportError:  # the prior is an improvement, not a requirement
            available_languages = None
        if available_languages is not None:
            path = available_languages("small").get(lang)
            if path is not None:
                for i, bucket in enumerate(read_cBpack(path)):  # bucket i: -i centibels
                    z = 9.0 - i / 100.0
                    for w in bucket:
                        table.setdefault(w, z)
        table["\0known"] = 1.0 if table else 0.0
        _ZIPF[lang] = table
    return table


_PUBLIC: np.ndarray | None = None


def _public_names() -> np.ndarray:
    """The words of wordfreq's *large* English list below the small lists' Zipf 3: about 290,000 rarer
    words of the web's English — technologies, products, places, first names (``bigquery``, ``dbt``,
    ``kubernetes``, ``longhorn``, ``minji``) that are public however rare in general text, and that a
    project's coined names (``lumenbot``, ``fittrack``, ``metallb``: too rare to be listed) are not.
    Kept as the sorted (n,) int64 array of their ``hash()`` (this process's; 2 MiB instead of 40 for
    the strings); loaded on first use (~0.5 s); empty without wordfreq."""
    global _PUBLIC
    if _PUBLIC is None:
        hashes: list[int] = []
        try:
            from wordfreq import available_languages, read_cBpack
        except ImportError:
            available_languages = None
        if available_languages is not None:
            path = available_languages("large").get("en")
            if path is not None:
                for i, bucket in enumerate(read_cBpack(path)):  # bucket i: Zipf 9 - i/100
                    if 9.0 - i / 100.0 < 3.0:
                        hashes.extend(map(hash, bucket))
        _PUBLIC = np.unique(np.asarray(hashes, dtype=np.int64))
    return _PUBLIC


def is_public_name(word: str) -> bool:
    """Whether wordfreq's large English list holds ``word`` below Zipf 3 (:func:`_public_names`)."""
    table = _public_names()
    h = hash(word.casefold())
    i = int(np.searchsorted(table, h))
    return i < len(table) and int(table[i]) == h


def zipf(word: str, lang: str) -> float | None:
    """Zipf frequency of a lower-case word in ``lang`` (0 when the list lacks it: below Zipf 3);
    None when there is no list for the language."""
    table = _zipf_table(lang)
    if not table["\0known"]:
        return None
    return table.get(word.casefold(), 0.0)  # (wordfreq's keys are case-folded: heiße -> heisse)


def prior(word: str, *langs: str, fragment: bool = False, name: bool = False) -> float:
    """How much a word can say about a project, in [0, 1], from its highest frequency in ``langs``:
    1 at or below ZIPF_RARE, 0 at or above ZIPF_COMMON, linear between.

    ``fragment`` (a Hangul stem, a CJK bigram): UNKNOWN_PRIOR when the lists lack it — a form no
    list holds is more often a verb form or a cut through two words than a rare word. ``name`` (a
    mark): any word a general list holds is public (a technology, a product, a first name), which a
    project's own coined names (``lumenbot``, ``fittrack``) are not, so a listed name counts for at
    most LISTED_NAME.
    """
    zs = [z for z in (zipf(word, lang) for lang in dict.fromkeys(langs)) if z is not None]
    if not zs:
        return UNKNOWN_PRIOR
    z = max(zs)
    if z == 0.0:
        if name and is_public_name(word):
            return LISTED_NAME
        return UNKNOWN_PRIOR if fragment else 1.0
    g = min(1.0, max(0.0, (ZIPF_COMMON - z) / (ZIPF_COMMON - ZIPF_RARE)))
    return min(g, LISTED_NAME) if name else g
