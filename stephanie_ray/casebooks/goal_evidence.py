"""Which conversations belong to one project: language detection, evidence features, linking. Pure.

A goal CaseBook is a person's *project* or line of work (a webshop rebuild spans its PHP
conversion, its database questions and its cloud deployment), not a topic: two unrelated Python
questions are two goals. Topic similarity — what a sentence embedding measures — is therefore weak
evidence; what ties a project together are the few things only that project has: its identifiers,
file and table names, hosts, product and people's names, pasted code and error messages. Those
survive translation (a Dutch and an English conversation about ``bestellingen_export.php`` share
the name), while ordinary words do not, so:

* each conversation gets a language (script by Unicode ranges, then stop-word counts for
  Latin-script text; cheap and good enough to tell "same language" from "not");
* its user messages (not only the first) yield *marks* — identifier-shaped tokens, names, hosts,
  numbers, code — that may match across languages, and *words* (content words; Korean words with
  their particle stripped; character bigrams for Han, Kana and Thai) that match within one language;
* each feature has a *strength* = how specific its shape is (a compound identifier ``shop_orders``
  or ``pi-node2`` >> a name or acronym >> a word >> a CJK bigram; decimals count for nothing) times
  a *general-language prior* from ``wordfreq`` (a word every speaker uses, ``kannst``, ``ubuntu``,
  ``해줘``, says nothing about a project however rare it is in this history), see :func:`strength`;
* features are also weighted by their rarity in the person's own history (IDF over the
  conversations seen so far, in time order); a feature in more than ``common_share`` of that
  history counts for nothing;
* two conversations' *evidence* is the sum, over the features they share (marks, plus words when
  both are in one language), of strength x IDF; it is not a cosine: a project's conversations share
  one to three rare things among hundreds of unshared ones, which a cosine dilutes away. Their
  score is ``1 - exp(-evidence / evidence_scale)`` in [0, 1);
* the assistant's answers give *echoes*: their marks count (at ``echo_weight``) against the other
  conversation's own messages — the person wrote ``store_nbr`` in one chat, the assistant
  introduced it in the earlier one — but only for a pair the person's own words already link a
  little (answers share public API names: ``models.CharField``);
* a feature the person wrote in ``spread_limit`` goals that the evidence kept apart is about the
  person (their name in signatures, their partner, their city), not about one goal: it counts for
  nothing from then on;
* conversations are linked in time order: a conversation joins a group when its score with one of
  the group's members reaches the threshold; when several groups qualify, the one whose members
  share the most evidence with it in total (a conversation about the home-lab cluster that also
  names the blog's domain joins the cluster, not the blog); else it founds a new group.

Everything a decision uses comes from conversations at or before it in time order (the IDF too), so
building after every import gives the same groups as one build at the end, as long as imports
bring newer conversations.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from ..scoring.text import KO_STOP, ZH_FUNCTION, _ko_stem
from .goal_language import (_ALL_STOP, _CODE_BLOCK, _INLINE_CODE, _NOISE, _UNSPACED, _URL, MARK_LANGS, UNKNOWN_PRIOR,
                            Language, detect_language, prior, prose_of, script_of)

# ----------------------------------------------------------------------------- evidence

# Strength of a feature by shape: how much one shared occurrence says about a shared project.
IDENT = 1.0  # compound identifiers: shop_orders, pi-node2, p200e, lst_rotterdam.tif, kas/pump, hosts
FILE = 0.7  # a file name whose stem is an ordinary word (settings.py, oil.csv): up to IDENT by its stem
NAME = 0.6  # names, acronyms, code tokens, Latin words in CJK prose: times the prior
NUMBER = 0.5  # numbers of 5+ digits (order, chamber-of-commerce, account numbers), IP addresses
SHORT_NUMBER = 0.15  # 4-digit numbers that are not years: ports and codes, often generic (8080, 5432)
# A content word of a spaced script: times the prior, only within its language. Weak: two chats that
# share topic words (idempotent, dashboard, backfill) are as often two projects on one subject as one
# project (labelled set: halving it from 0.2 took pair precision 0.875 -> 0.933 at 0.5, recall 0.407 -> 0.402).
WORD = 0.1
CJK = 0.075  # a Han / Kana bigram: times the prior, only within its language (weaker than a word, as before)

# A raw token: word characters joined by the punctuation identifiers, file names, hosts and paths use.
_RAW = re.compile(r"\w(?:[\w.\-/:@#$+]*\w)?")
_CAMEL = re.compile(r"[a-z][A-Z]|[A-Z]{2}[a-z]")
_SENTENCE_END = frozenset(".!?:;\n。！？")
_OPENERS = " \t\"'(«“‘¿¡*•>#-"  # quotes, Spanish openers, list bullets, headings: stripped before the check
_PUNCT = re.compile(r"[._/:@#$+]")
_DIGIT = re.compile(r"\d")
_LETTER = re.compile(r"[^\W\d_]")
_NUMERIC = re.compile(r"[\d.,:]+")
_UNIT = re.compile(r"[\d.,]+[^\W\d_a-z]{1,2}")  # a number with a unit of a CJK script (일, 월, 원, 年, 円)
_FILE = re.compile(r"([^\W_][\w-]*)\.([a-z][a-z0-9]{0,4})")
_HIRAGANA_SPLIT = re.compile("[\u3040-\u309f]+")
# Where Latin letters or digits meet an unspaced script inside one run ("Supabase에서", "N4の勉強"):
# the particle or sentence glued on is not part of the name.
_GLUE = re.compile("(?<=[A-Za-z0-9_])(?=[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af])"
                   "|(?<=[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af])(?=[A-Za-z0-9])")


@dataclass(frozen=True, slots=True)
class GoalEvidence:
    """What one conversation offers for linking: its language and features with their strengths."""

    lang: Language
    marks: dict[str, float]  # features that hold across languages -> strength
    words: dict[str, float]  # features bound to the language -> strength
    echoes: dict[str, float] = field(default_factory=dict)  # marks of the assistant's answers -> strength


def strength(tok: str, lang: str) -> float:
    """The strength of a mark-shaped token (original case), 0 when it is no mark."""
    low = tok.lower()
    if not low.isascii() and _UNIT.fullmatch(low):  # 14일, 9월, 000원, 3月: a date or an amount
        return SHORT_NUMBER
    if _NUMERIC.fullmatch(tok):
        if tok.isdigit():
            if len(tok) >= 5:
                return NUMBER
            if len(tok) == 4 and not tok.startswith(("19", "20")):
                return SHORT_NUMBER
            return 0.0
        return NUMBER if tok.count(".") == 3 else 0.0  # an IP address; decimals, versions, times: nothing
    if _CAMEL.search(tok) and tok.isalpha():
        # BigQuery, GitHub, PostgreSQL, JavaScript: a camel-case word a general list holds is a public
        # product, as much a name as Django; one no list holds (LumenBot, FitTrack) is the project's own
        listed = prior(low, *MARK_LANGS, lang, name=True)
        return IDENT if listed == 1.0 else NAME * listed
    if _PUNCT.search(tok) or (_DIGIT.search(tok) and _LETTER.search(tok)) or _CAMEL.search(tok):
        m = _FILE.fullmatch(low)
        if m and not _DIGIT.search(m.group(1)) and "_" not in m.group(1) and "-" not in m.group(1):
            return FILE + (IDENT - FILE) * prior(m.group(1), *MARK_LANGS, lang)  # a file named by a plain word
        return IDENT
    if "-" in tok:  # kebab-case: project, package and host names (bakkerij-jansen, dotsync-cli)
        parts = [p for p in low.split("-") if p]
        return IDENT * max(prior(p, *MARK_LANGS, lang) for p in parts) if parts else 0.0
    if len(tok) < 2 or low in _NOISE or low in _ALL_STOP:
        return 0.0
    return NAME * prior(low, *MARK_LANGS, lang, name=True)


def _add(tf: Counter, bag: dict[str, float], key: str, s: float) -> None:
    if s > 0.0:
        tf[key] += 1
        if s > bag.get(key, 0.0):
            bag[key] = s


def _is_mark(tok: str, prose_script: str) -> bool:
    """Whether a prose token holds across languages by its shape (not by its capital)."""
    if _PUNCT.search(tok) or _DIGIT.search(tok) or _CAMEL.search(tok) or "-" in tok:
        return True
    if prose_script != "latin" and tok.isascii() and tok.isalpha() and len(tok) >= 2:
        return True  # a Latin word in Korean or Chinese prose: a name or a technical term
    return len(tok) >= 2 and tok.isupper() and tok.isalpha()  # an acronym: PHP, RLOO, WAL


def _cut(tf: Counter, bag: dict[str, float], limit: int) -> dict[str, float]:
    # the strongest x most frequent features first, then the first seen (Counter keeps insertion order)
    keys = sorted(bag, key=lambda k: -bag[k] * (1.0 + math.log(tf[k])))[:limit]
    return {k: bag[k] for k in keys}


def _join_texts(first: str, texts: Iterable[str], max_chars: int) -> tuple[str, int]:
    parts, used = [first], len(first)
    for t in texts:
        if used >= max_chars:
            break
        parts.append(t[: max_chars - used])
        used += len(parts[-1])
    return unicodedata.normalize("NFC", "\n".join(parts)), len(first)


def _marks_and_words(text: str, title_len: int, lang: Language, mark_tf: Counter, marks: dict[str, float],
                     word_tf: Counter | None, words: dict[str, float] | None) -> None:
    """Collect a text's marks (and, when ``words`` is given, its words) with their strengths."""
    code = lang.code if lang.code != "und" else "en"
    for url in _URL.findall(text):
        host = url.split("://", 1)[1].split("/", 1)[0].split("@")[-1].split(":")[0].lower()
        _add(mark_tf, marks, host.removeprefix("www."), IDENT)
        for seg in url.split("://", 1)[1].split("/")[1:]:
            seg = seg.split("?")[0].split("#")[0]
            if len(seg) >= 4 and not _NUMERIC.fullmatch(seg):
                _add(mark_tf, marks, seg.lower(), strength(seg, code))
    code_spans = _CODE_BLOCK.findall(text) + _INLINE_CODE.findall(_CODE_BLOCK.sub(" ", text))
    for span in code_spans:  # everything named in pasted code or error output is a mark
        for tok in _RAW.findall(span):
            tok = tok.strip(".-/:")
            if len(tok) >= 3:
                _add(mark_tf, marks, tok.lower(), strength(tok, code))
    prose = _GLUE.sub(" ", prose_of(text))
    title_end = len(_GLUE.sub(" ", prose_of(text[:title_len])))
    for m in _RAW.finditer(prose):
        tok = m.group().strip(".-/:")
        if not tok:
            continue
        if "/" in tok and "://" not in tok:  # a path: its segments are the names
            for seg in tok.split("/"):
                if len(seg) >= 3 and _is_mark(seg, "latin") and not seg.isalpha():
                    _add(mark_tf, marks, seg.lower(), strength(seg, code))
            continue
        is_mark = _is_mark(tok, lang.script)
        if (not is_mark and m.start() >= title_end and tok[:1].isupper() and tok[1:].islower() and tok.isalpha()
                and len(tok) >= 3):  # (titles are often in Title Case: no names from their capitals)
            before = prose[max(0, m.start() - 8):m.start()].rstrip(_OPENERS)
            is_mark = bool(before) and before[-1] not in _SENTENCE_END  # mid-sentence: Django, Stripe, Marieke
        if is_mark:
            _add(mark_tf, marks, tok.lower(), strength(tok, code))
            if "-" in tok:  # k3s-Cluster, pi-node2: an identifier-shaped part is a name of its own
                for part in tok.split("-"):
                    if len(part) >= 3 and _DIGIT.search(part) and _LETTER.search(part):
                        _add(mark_tf, marks, part.lower(), strength(part, code))
            continue
        if words is not None and word_tf is not None:
            for key, st in _word_features(tok.lower(), code):
                _add(word_tf, words, key, st)


def extract_evidence(title: str, user_texts: Iterable[str], assistant_texts: Iterable[str] = (), *,
                     max_chars: int = 20000, max_features: int = 256) -> GoalEvidence:
    """A conversation's evidence: from its title and user messages (in order), at most ``max_chars``,
    and the marks of the assistant's answers (at most ``max_chars`` too) as *echoes*.

    The person's own messages give marks and words. The answers are full of the assistant's
    generic names (``my_table``, ``example.com``) that would tie unrelated conversations together,
    so their marks are kept apart: an echo counts only against the other conversation's own
    messages (the person wrote ``store_nbr`` in one chat; the assistant introduced it in another).
    """
    text, title_len = _join_texts(title or "", user_texts, max_chars)
    lang = detect_language(text)
    mark_tf: Counter = Counter()
    word_tf: Counter = Counter()
    marks: dict[str, float] = {}
    words: dict[str, float] = {}
    _marks_and_words(text, title_len, lang, mark_tf, marks, word_tf, words)
    echo_tf: Counter = Counter()
    echoes: dict[str, float] = {}
    answers, _ = _join_texts("", assistant_texts, max_chars)
    if answers.strip():
        _marks_and_words(answers, 0, lang, echo_tf, echoes, None, None)
    return GoalEvidence(lang, _cut(mark_tf, marks, max_features), _cut(word_tf, words, max_features),
                        _cut(echo_tf, echoes, max_features))


def _word_features(word: str, lang: str) -> list[tuple[str, float]]:
    """Ordinary words with their strengths: content words of 3+ letters; a Korean word's stem (its
    particle or ending stripped); character bigrams of Han / Kana runs (split at Hiragana)."""
    if word.isdigit() or word in _ALL_STOP or word in _NOISE:
        return []
    if word.isascii():
        return [(word, WORD * prior(word, lang))] if len(word) >= 3 else []
    out: list[tuple[str, float]] = []
    run, run_script = "", ""
    for ch in word + " ":
        sc = script_of(ch) if ch != " " else ""
        if sc in _UNSPACED and (not run or sc == run_script or {sc, run_script} <= {"han", "kana"}):
            run += ch
            run_script = run_script if run_script in ("han", "kana") and sc in ("han", "kana") else sc
            continue
        if run:
            out += _run_features(run, run_script, lang)
        run, run_script = (ch, sc) if sc in _UNSPACED else ("", "")
    if not out and len(word) >= 3 and not any(script_of(c) in _UNSPACED for c in word):
        out.append((word, WORD * prior(word, lang)))
    return out


def _run_features(run: str, script: str, lang: str) -> list[tuple[str, float]]:
    if script == "hangul":
        stem = _ko_stem(run)
        if len(stem) < 2 or stem in KO_STOP or run in KO_STOP:
            return []
        return [(stem, WORD * prior(stem, "ko", fragment=True))]
    if script == "thai":
        return [(run[i:i + 2], CJK * UNKNOWN_PRIOR) for i in range(len(run) - 1)]
    out = []
    for part in _HIRAGANA_SPLIT.split(run):  # Hiragana is Japanese grammar: terms never span it
        for i in range(len(part) - 1):
            bi = part[i:i + 2]
            if bi[0] not in ZH_FUNCTION and bi[1] not in ZH_FUNCTION:
                out.append((bi, CJK * prior(bi, lang, fragment=True)))
    return out
