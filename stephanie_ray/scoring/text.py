"""Script-aware tokenisation for the text scorers (structure, lexical). Pure Python, any language.

Real chat histories mix English, Dutch, Korean, Chinese, Arabic, emoji and code, so nothing here
assumes ASCII or English words:

* **Words** (:func:`words`) are runs of Unicode letters and digits (``\\w`` minus ``_`` to start,
  combining marks and zero-width (non-)joiners kept inside, so Hindi, Thai vowel signs and Arabic
  harakat do not split a word; inner ``'``, ``’`` and ``-`` kept). Han, Hiragana and Katakana are
  written without spaces: a run of *n* such characters counts as ``ceil(n / 2)`` words — it is cut
  into two-character units, about the length of a Chinese or Japanese word. Hangul is written with
  spaces, so a Korean word (eojeol, particles attached) is one word, like a Latin one.
* **Content terms** (:func:`content_terms`), for lexical overlap, IDF-free:

  - space-separated scripts (Latin, Cyrillic, Greek, Arabic, Hebrew, Devanagari, ...): each word
    (split at ``-`` and apostrophes) NFKC-normalised and case-folded, dropped when it has at most 2 letters or is a stop word of
    English, Dutch, German, French, Spanish, Portuguese, Italian or Russian (:data:`STOP_WORDS`),
    then cut to its first 6 letters — a language-neutral stemmer that joins inflections and
    compounds sharing a head (deploy / deployment, Datenbank / Datenbanken, implementeren / implementatie);
  - Hangul (agglutinative): one attached particle or verb ending is stripped (:data:`KO_SUFFIXES`;
    one-syllable particles that also end nouns — 이, 가, 도, ... — only when two syllables remain),
    stop stems dropped, then the stem's syllable bigrams (a one-syllable stem is its own term), so
    "장고를" and "장고는" share "장고";
  - Han / Kana: overlapping character bigrams of each run, split at Hiragana (Japanese grammar);
    bigrams holding a Chinese function character (的, 了, 是, 我, ...) are dropped; a lone
    character between them is a unigram term.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache


def _mark_class() -> str:
    """Every combining mark (Mn, Mc, Me) as a regex character-class body, built once at import."""
    spans: list[tuple[int, int]] = []
    start = prev = -1
    for cp in list(range(0x20000)) + list(range(0xE0100, 0xE01F0)):
        if unicodedata.category(chr(cp)) in ("Mn", "Mc", "Me"):
            if start < 0 or cp != prev + 1:
                if start >= 0:
                    spans.append((start, prev))
                start = cp
            prev = cp
    spans.append((start, prev))
    return "".join(re.escape(chr(a)) + ("-" + re.escape(chr(b)) if b > a else "") for a, b in spans)


_MARKS = _mark_class() + "\u200c\u200d"  # + zero-width non-joiner / joiner (Persian, Indic)
_HIRAGANA = "\u3040-\u309f"
_KANA_HAN = ("\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f"
             "\U00020000-\U0003134f")
_CJK = _HIRAGANA + _KANA_HAN
_HANGUL = "\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f"
_INNER = "'’\\-"

# One fast pass with a single character class finds runs of word characters; only the runs that hold
# Han / Kana / Hangul (a quick search) are split further.
_RUN = re.compile(rf"[\w{_MARKS}]+(?:[{_INNER}][\w{_MARKS}]+)*")  # a word with inner ' and - (counting)
_TERM_RUN = re.compile(rf"[\w{_MARKS}]+")  # terms: words split at ' and - ("Django-app" -> two)
_HAS_CJK = re.compile(f"[{_CJK}]")
_HAS_CJK_KO = re.compile(f"[{_CJK}{_HANGUL}]")
_CJK_RUN = re.compile(f"[{_CJK}][{_CJK}{_MARKS}]*")
# inside a run: CJK runs | Hangul runs | the rest ("Django를" -> "Django", "를")
_SCRIPT_RUN = re.compile(f"(?P<cjk>[{_CJK}][{_CJK}{_MARKS}]*)|(?P<ko>[{_HANGUL}][{_HANGUL}{_MARKS}]*)"
                         f"|[^{_CJK}{_HANGUL}]+")
_IS_MARK = re.compile(f"[{_MARKS}]")
_IS_HANGUL = re.compile(f"[{_HANGUL}]")
_HIRAGANA_SPLIT = re.compile(f"[{_HIRAGANA}]+")

STEM_LETTERS = 6
"""Words of space-separated scripts are compared on their first this many letters."""

STOP_WORDS = frozenset("""
a an the and or but if then else of to in on for with by at from as is are was were be been being it its this
that these those i you he she we they me my your our their what which who whom how why when where do does did
done can could should would will shall may might must not no yes so than too very just about into over under
again more most some any each all both few other such only own same up down out off here there also please
thanks thank hi hello ok okay
de het een en van dat die niet aan maar ook als dan bij nog wel naar kan uit hij wat door over mijn hoe waarom
wanneer waar welke deze dit kunnen moet moeten wordt worden heb hebt heeft hebben waren graag alsjeblieft
alstublieft bedankt dank hallo zijn voor met zou zal
der das ein eine einen einem einer und oder aber wenn von mit auf für ist sind war sein nicht auch wie was wer
warum wann ich sie wir ihr dein kann können muss müssen wird werden habe hast hat haben noch nur schon sehr
bitte danke dass diese dieser dieses man sich bei nach aus über unter vom zum zur den dem des
les une des mais alors dans sur pour avec par est sont était être pas plus aussi comme que qui quoi pourquoi
quand comment nous vous ils elles mon ton son cette ces peut faut merci bonjour
los las unos unas pero del con por para son era ser estar está más también como qué quien donde cuando cómo
nosotros ustedes este esta estos puede hay gracias hola
uma dos das com são não mais você ela nós meu seu isso pode obrigado olá
gli della con per sono essere non più anche come che chi dove perché lui lei noi voi mio questo questa può
grazie ciao
что как все она так его только мне было вот меня еще нет когда даже если уже или быть был для может они где
есть надо чем чтобы тоже будет кто этот того потому этого какой можно при эти про пожалуйста спасибо привет
""".split())
"""Small stop lists of the major chat languages (words of at most 2 letters are dropped anyway)."""

KO_SUFFIXES = tuple(sorted("""
을 를 은 는 에 의 께 에서 에게 한테 으로 까지 부터 처럼 보다 이나 이랑 에는 에서는 으로는 으로서 으로써 에게서
합니다 습니다 입니다 됩니다 하세요 하려면 하는 하고 하면 하기 해서 해야 했습니다 했다 한다 하여 하지 해요 해주세요
주세요 하게 된 되는 되어 돼요 하면서 할 한 해 하는데 인가요 인지 이다 이고 이며
""".split(), key=len, reverse=True))
"""Korean particles and verb endings, one of which is stripped from a Hangul word (longest first)."""
_KO_SUFFIX_SET = frozenset(KO_SUFFIXES)
_KO_MAX_SUFFIX = max(map(len, KO_SUFFIXES))
_KO_WEAK = frozenset("이 가 도 로 와 과 나 만 랑 한 할 된 해".split())
"""One-syllable suffixes that also end ordinary nouns: stripped only when two syllables remain."""

KO_STOP = frozenset("""
그리고 하지만 그러나 그래서 또는 및 그 이 저 것 수 등 때 더 잘 좀 제가 저는 나는 내가 우리 당신 어떻게 무엇 뭐 왜
있다 있습니다 있어요 있는 있고 없다 없는 하다 했 해 주 알려 감사 네 아니요 다음 위해 대한 같은 이런 그런 다른 모든
각 경우 방법 여기 거기 지금 먼저
""".split())

ZH_FUNCTION = frozenset("的了是在和与及或也就都而吗呢吧啊我你您他她它们这那个一有不要会能可以把被让给对从到为于之其很还又将该如何什么怎么")
"""Chinese function characters: bigrams holding one are dropped."""


def words(text: str) -> list[str]:
    """Word units of ``text``: whole words of spaced scripts, two-character units of Han / Kana runs."""
    out: list[str] = []
    for tok in _RUN.findall(text):
        tok = tok.strip("_")  # "_" is a \w character but not a word on its own
        if not tok:
            continue
        if not _HAS_CJK.search(tok):
            out.append(tok)
            continue
        at = 0
        for m in _CJK_RUN.finditer(tok):  # "Django部署到" -> "Django", "部署", "到"
            if m.start() > at:
                out.append(tok[at:m.start()])
            run = m.group(0)
            out.extend(run[i:i + 2] for i in range(0, len(run), 2))
            at = m.end()
        if at < len(tok):
            out.append(tok[at:])
    return out


def letters(word: str) -> int:
    """Characters of a word, combining marks not counted."""
    return len(word) if word.isascii() else len(word) - len(_IS_MARK.findall(word))


def typical_length(word: str) -> float:
    """The usual length of a word of this script: Han / Kana units 2 (by construction), Hangul 3
    syllables, others 5 letters (English, Dutch, German, Russian, Arabic words average 4.5-6)."""
    if word.isascii():
        return 5.0
    if _HAS_CJK.match(word):
        return 2.0
    if _IS_HANGUL.search(word):
        return 3.0
    return 5.0


@lru_cache(maxsize=1 << 16)
def _length_deviation(word: str) -> float:
    return letters(word) - typical_length(word)


def word_length_deviation(ws: list[str]) -> float:
    """Mean of (letters - the script's typical length) over the words; 0 when there are none."""
    if not ws:
        return 0.0
    return sum(map(_length_deviation, ws)) / len(ws)


def _ko_stem(word: str) -> str:
    for n in range(min(_KO_MAX_SUFFIX, len(word) - 1), 0, -1):  # longest suffix first, a stem left
        suf = word[-n:]
        if suf in _KO_SUFFIX_SET and not (suf in _KO_WEAK and len(word) - n < 2):
            return word[:-n]
    return word


def _cjk_terms(run: str, out: set[str]) -> None:
    for part in _HIRAGANA_SPLIT.split(run):  # Hiragana is Japanese grammar: terms never span it
        part = _IS_MARK.sub("", part)
        if len(part) == 1:
            if part not in ZH_FUNCTION:
                out.add(part)
            continue
        for i in range(len(part) - 1):
            bi = part[i:i + 2]
            if bi[0] not in ZH_FUNCTION and bi[1] not in ZH_FUNCTION:
                out.add(bi)


def _word_term(tok: str, out: set[str]) -> None:
    tok = tok.strip("_")
    if letters(tok) > 2 and tok not in STOP_WORDS:
        out.add(tok[:STEM_LETTERS])


def _ko_terms(tok: str, out: set[str]) -> None:
    tok = _IS_MARK.sub("", tok)
    if tok in KO_STOP or tok in _KO_SUFFIX_SET:  # a particle on its own ("Django를" -> "를")
        return
    stem = _ko_stem(tok)
    if stem in KO_STOP:
        return
    if len(stem) == 1:
        out.add(stem)
    else:
        out.update(stem[i:i + 2] for i in range(len(stem) - 1))


@lru_cache(maxsize=1 << 16)
def _token_terms(tok: str) -> frozenset[str]:
    """The terms of one run of word characters (already NFKC-normalised and case-folded)."""
    out: set[str] = set()
    if not _HAS_CJK_KO.search(tok):
        _word_term(tok, out)
        return frozenset(out)
    for m in _SCRIPT_RUN.finditer(tok):
        part = m.group(0)
        if m.group("cjk"):
            _cjk_terms(part, out)
        elif m.group("ko"):
            _ko_terms(part, out)
        else:
            _word_term(part, out)
    return frozenset(out)


def content_terms(text: str) -> set[str]:
    """Content terms of ``text`` in any script (rules in the module docstring)."""
    out: set[str] = set()
    for tok in set(_TERM_RUN.findall(unicodedata.normalize("NFKC", text).casefold())):
        out |= _token_terms(tok)
    return out
