"""Which conversations belong to one project: language detection, evidence features, linking. Pure.

A goal CaseBook is a person's *project* or line of work (a webshop rebuild spans its PHP
conversion, its database questions and its cloud deployment), not a topic: two unrelated Python
questions are two goals. Topic similarity — what a sentence embedding measures — is therefore weak
evidence; what ties a project together are the things only that project has: its identifiers,
file and table names, hosts, product and people's names, pasted code and error messages. Those
survive translation (a Dutch and an English conversation about ``bestellingen_export.php`` share
the name), while ordinary words do not, so:

* each conversation gets a language (script by Unicode ranges, then stop-word counts for
  Latin-script text; cheap and good enough to tell "same language" from "not");
* its user messages (not only the first) yield *marks* — identifier-shaped tokens, names, hosts,
  numbers, code — that may match across languages, and *words* (content words; character bigrams
  for Hangul, Han, Kana and Thai) that only match within one language;
* features are weighted by their rarity in the person's own history (IDF over the conversations
  seen so far, in time order), so ``python`` or ``django`` in half the history counts for little
  and ``shop_orders`` for a lot;
* two conversations' similarity is the cosine of those weighted vectors — over marks and words when
  both are in the same language, over marks only otherwise — damped when the shared evidence is
  thin (one shared name is not a project), see :meth:`GoalLinker.score`;
* conversations are linked in time order: each joins the group holding its most similar earlier
  conversation (single link) if the score reaches the threshold, else founds a new group.

Everything a decision uses comes from conversations at or before it in time order (the IDF too), so
building after every import gives the same groups as one build at the end, as long as imports
bring newer conversations.
"""

from __future__ import annotations

import re
import unicodedata
from array import array
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Callable, Hashable, Iterable

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
# Scripts written without spaces between words: matched by character bigrams instead of words.
_UNSPACED = frozenset({"hangul", "han", "kana", "thai"})  # (Hangul has spaces, but particles glue on)
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


# ----------------------------------------------------------------------------- evidence

# Strength of a feature by kind: how much one shared occurrence says about a shared project.
IDENT, NAME, WORD = 1.0, 0.6, 0.35

# A raw token: word characters joined by the punctuation identifiers, file names, hosts and paths use.
_RAW = re.compile(r"\w(?:[\w.\-/:@#$+]*\w)?")
_CAMEL = re.compile(r"[a-z][A-Z]|[A-Z]{2}[a-z]")
_SENTENCE_END = frozenset(".!?:;\n")
_PUNCT = re.compile(r"[._/:@#$+]")
_DIGIT = re.compile(r"\d")
_LETTER = re.compile(r"[^\W\d_]")


@dataclass(frozen=True, slots=True)
class GoalEvidence:
    """What one conversation offers for linking: its language and weighted features."""

    lang: Language
    marks: dict[str, float]  # features that hold across languages -> strength (IDENT or NAME)
    words: dict[str, float]  # features bound to the language -> strength (WORD)


def _add(bag: dict[str, float], key: str, strength: float) -> None:
    if strength > bag.get(key, 0.0):
        bag[key] = strength


def _mark_kind(tok: str, prose_script: str) -> float | None:
    """IDENT or NAME when the raw token holds across languages, else None (an ordinary word)."""
    if _PUNCT.search(tok) or (_DIGIT.search(tok) and not tok.isdigit() and _LETTER.search(tok)):
        return IDENT
    if _CAMEL.search(tok):
        return IDENT
    if "-" in tok:  # kebab-case: project, package and host names (bakkerij-jansen, stephanie-ray)
        return NAME
    if tok.isdigit():
        # numbers of 4+ digits (ports, order numbers, error codes), but not years
        return NAME if len(tok) >= 4 and not (len(tok) == 4 and tok[:2] in ("19", "20")) else None
    if prose_script != "latin" and tok.isascii() and tok.isalpha() and len(tok) >= 2:
        return NAME  # a Latin word in Korean or Chinese prose: a name or a technical term
    if len(tok) >= 2 and tok.isupper() and tok.isalpha():
        return NAME  # an acronym: PHP, RLOO, WAL
    return None


def _cut(bag: Counter, strength: dict[str, float], limit: int) -> dict[str, float]:
    # the most frequent features first, then the first seen (Counter keeps insertion order)
    keys = sorted(bag, key=lambda k: -bag[k])[:limit]
    return {k: strength[k] for k in keys}


def extract_evidence(title: str, user_texts: Iterable[str], *, max_chars: int = 20000,
                     max_features: int = 256) -> GoalEvidence:
    """A conversation's evidence: from its title and user messages (in order), at most ``max_chars``.

    Only the person's own messages are read: answers are full of the assistant's generic names
    (``my_table``, ``example.com``) that would tie unrelated conversations together.
    """
    parts, used = [title or ""], len(title or "")
    for t in user_texts:
        if used >= max_chars:
            break
        parts.append(t[: max_chars - used])
        used += len(parts[-1])
    text = unicodedata.normalize("NFC", "\n".join(parts))
    lang = detect_language(text)
    mark_tf: Counter = Counter()
    word_tf: Counter = Counter()
    mark_s: dict[str, float] = {}
    word_s: dict[str, float] = {}

    def mark(key: str, s: float) -> None:
        mark_tf[key] += 1
        _add(mark_s, key, s)

    for url in _URL.findall(text):
        host = url.split("://", 1)[1].split("/", 1)[0].split("@")[-1].split(":")[0].lower()
        mark(host.removeprefix("www."), IDENT)
        for seg in url.split("://", 1)[1].split("/")[1:]:
            seg = seg.split("?")[0].split("#")[0]
            if len(seg) >= 4 and _mark_kind(seg, "latin") == IDENT:
                mark(seg.lower(), IDENT)
    code_spans = _CODE_BLOCK.findall(text) + _INLINE_CODE.findall(_CODE_BLOCK.sub(" ", text))
    for span in code_spans:  # everything named in pasted code or error output is a mark
        for tok in _RAW.findall(span):
            tok = tok.strip(".-/:")
            low = tok.lower()
            if len(tok) >= 3 and not tok.isdigit() and low not in _NOISE and low not in _ALL_STOP:
                mark(low, IDENT if _mark_kind(tok, "latin") == IDENT else NAME)
    prose = prose_of(text)
    title_end = len(prose_of(unicodedata.normalize("NFC", parts[0])))
    for m in _RAW.finditer(prose):
        tok = m.group().strip(".-/:")
        if not tok:
            continue
        if "/" in tok and "://" not in tok:  # a path: its segments are the names
            for seg in tok.split("/"):
                if len(seg) >= 3 and _mark_kind(seg, "latin") == IDENT:
                    mark(seg.lower(), IDENT)
            continue
        kind = _mark_kind(tok, lang.script)
        if (kind is None and m.start() >= title_end and tok[:1].isupper() and tok[1:].islower() and tok.isalpha()
                and len(tok) >= 3):  # (titles are often in Title Case: no names from their capitals)
            before = prose[max(0, m.start() - 8):m.start()].rstrip(" \t\"'(«“")
            if before and before[-1] not in _SENTENCE_END:
                kind = NAME  # capitalised in mid-sentence: a name (Django, Stripe, Marieke)
        if kind is not None:
            mark(tok.lower(), kind)
            continue
        for key in _word_features(tok.lower()):
            word_tf[key] += 1
            word_s[key] = WORD
    marks = _cut(mark_tf, mark_s, max_features)
    words = _cut(word_tf, word_s, max_features)
    return GoalEvidence(lang, marks, words)


def _word_features(word: str) -> list[str]:
    """Ordinary words: content words of 3+ letters; character bigrams of unspaced-script runs."""
    if word.isdigit() or word in _ALL_STOP or word in _NOISE:
        return []
    if word.isascii():
        return [word] if len(word) >= 3 else []
    out: list[str] = []
    run = ""
    for ch in word + " ":
        if ch != " " and script_of(ch) in _UNSPACED:
            run += ch
            continue
        if run:
            out += [run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)]
            run = ""
    if not out and len(word) >= 3:
        out.append(word)
    return out


# ----------------------------------------------------------------------------- linking

# A history seen as if it held this many more conversations that share none of a feature:
# early in a history (or in a small one) every feature would otherwise look rare.
PRIOR_CONVERSATIONS = 20.0
# Shared evidence (sum of strength x IDF) below this damps the score proportionally: one shared
# name, even a rare one, is a coincidence more often than a project.
MIN_EVIDENCE = 6.0
# Candidates are found through a conversation's NORM_FEATURES heaviest features that are in at
# most this share of the history (at least 5, at most CANDIDATE_MAX_DF conversations): a pair
# sharing only commoner features cannot reach a useful score, and this bounds the work per
# conversation (<= NORM_FEATURES x CANDIDATE_MAX_DF scored pairs) however long the history.
CANDIDATE_DF_SHARE = 0.1
CANDIDATE_MAX_DF = 50
# Norms are taken over this many of a conversation's heaviest features (see _top_norm).
NORM_FEATURES = 32


@dataclass(frozen=True, slots=True)
class Link:
    key: Hashable  # the conversation
    group: Hashable  # its group: the key of the group's founding conversation (or a given one)
    score: float  # its score with the closest member of that group (1.0 for a founder)
    partner: Hashable | None  # that member


def _top_norm(w: np.ndarray) -> float:
    """L2 norm of the NORM_FEATURES heaviest weights: a long conversation (a whole project session)
    is not made dissimilar to a short one by the many names only it has."""
    if len(w) > NORM_FEATURES:
        w = np.partition(w, len(w) - NORM_FEATURES)[-NORM_FEATURES:]
    return float(np.linalg.norm(w))


@dataclass(slots=True)
class _Stored:
    """One conversation's evidence as interned feature ids (sorted) and strengths: a few KB each."""

    lang: str
    mark_ids: np.ndarray  # (m,) int32, sorted: features that hold across languages
    mark_s: np.ndarray  # (m,) float32, their strengths
    all_ids: np.ndarray  # (m + w,) int32, sorted: marks and language-bound words
    all_s: np.ndarray  # (m + w,) float32


class GoalLinker:
    """Groups conversations in time order; :meth:`add` them oldest first.

    ``threshold``: score in (0, 1] at which a conversation joins a group. ``semantic``: an optional
    ``(key, key) -> cosine or None`` of a multilingual sentence-embedding model, consulted only for
    candidates the shared evidence already found; when it reaches ``semantic_floor`` it may raise a
    score, never lower it.

    Memory: per conversation its (capped) feature ids and strengths, plus one posting per feature;
    no pairwise matrix. Time: each conversation is scored against the earlier ones sharing a
    feature that is not common (see ``CANDIDATE_DF_SHARE``).
    """

    def __init__(self, threshold: float, semantic: Callable[[Hashable, Hashable], float | None] | None = None,
                 semantic_floor: float = 0.8) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"goal threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.semantic = semantic
        self.semantic_floor = semantic_floor
        self.vocab: dict[str, int] = {}
        self.df = np.zeros(1024, dtype=np.int64)  # (features,) conversations holding each feature
        self.postings: dict[int, array] = defaultdict(lambda: array("i"))  # feature -> conversation positions
        self.keys: list[Hashable] = []  # position in time order -> key
        self.stored: list[_Stored] = []
        self.group_of: dict[Hashable, Hashable] = {}

    @property
    def n(self) -> int:
        return len(self.keys)

    def _intern(self, bag: dict[str, float], prefix: str) -> tuple[np.ndarray, np.ndarray]:
        ids = []
        for k in bag:
            fid = self.vocab.setdefault(prefix + k, len(self.vocab))
            ids.append(fid)
        if len(self.vocab) > len(self.df):
            self.df = np.concatenate([self.df, np.zeros(max(len(self.df), len(self.vocab)), dtype=np.int64)])
        arr = np.asarray(ids, dtype=np.int32)
        st = np.asarray(list(bag.values()), dtype=np.float32)
        order = np.argsort(arr, kind="stable")
        return arr[order], st[order]

    def _idf(self, ids: np.ndarray) -> np.ndarray:
        return np.log((self.n + PRIOR_CONVERSATIONS) / np.maximum(1, self.df[ids]))

    def score_at(self, i: int, j: int) -> float:
        """Similarity in [0, 1] of the conversations at positions ``i`` and ``j``, with today's IDF.

        Cosine of strength x IDF vectors — words included only when both are in the same language —
        times min(1, shared evidence / MIN_EVIDENCE), the shared evidence being the sum of
        strength x IDF over shared features.
        """
        a, b = self.stored[i], self.stored[j]
        if a.lang == b.lang:
            ia, sa, ib, sb = a.all_ids, a.all_s, b.all_ids, b.all_s
        else:
            ia, sa, ib, sb = a.mark_ids, a.mark_s, b.mark_ids, b.mark_s
        if not len(ia) or not len(ib):
            return 0.0
        shared, pa, pb = np.intersect1d(ia, ib, assume_unique=True, return_indices=True)
        if not len(shared):
            return 0.0
        wa, wb = sa * self._idf(ia), sb * self._idf(ib)  # (m_a,), (m_b,) float64
        cos = float(wa[pa] @ wb[pb]) / (_top_norm(wa) * _top_norm(wb))
        evidence = float(np.minimum(sa[pa], sb[pb]) @ self._idf(shared))
        return min(1.0, cos) * min(1.0, evidence / MIN_EVIDENCE)  # cos may pass 1 with top-K norms

    def add(self, key: Hashable, ev: GoalEvidence, group: Hashable | None = None) -> Link:
        """Add the next conversation in time order; ``group``: where it already is (kept as is)."""
        if key in self.group_of:
            raise ValueError(f"conversation {key!r} added twice")
        mi, ms = self._intern(ev.marks, "m:")
        wi, ws = self._intern(ev.words, f"w:{ev.lang.code}:")
        ai = np.concatenate([mi, wi])
        order = np.argsort(ai, kind="stable")
        stored = _Stored(ev.lang.code, mi, ms, ai[order], np.concatenate([ms, ws])[order])
        pos = self.n
        self.keys.append(key)
        self.stored.append(stored)
        self.df[stored.all_ids] += 1
        for fid in stored.all_ids.tolist():
            self.postings[fid].append(pos)
        if group is not None:
            self.group_of[key] = group
            return Link(key, group, 1.0, None)
        # candidates: earlier conversations sharing one of this one's most distinctive features
        cap = min(CANDIDATE_MAX_DF, max(5.0, CANDIDATE_DF_SHARE * self.n))
        ids = stored.all_ids
        heavy = ids[np.argsort(-(stored.all_s * self._idf(ids)), kind="stable")[:NORM_FEATURES]]
        candidates: set[int] = set()
        for fid in heavy.tolist():
            if self.df[fid] <= cap:
                candidates.update(self.postings[fid])
        candidates.discard(pos)
        score, partner = 0.0, -1
        for c in sorted(candidates):  # ties: the earlier conversation wins
            s = self.score_at(pos, c)
            if self.semantic is not None and s > 0:
                cos = self.semantic(key, self.keys[c])
                if cos is not None and cos >= self.semantic_floor:
                    s = max(s, cos)
            if s > score:
                score, partner = s, c
        if partner >= 0 and score + 1e-9 >= self.threshold:
            group = self.group_of[self.keys[partner]]
            self.group_of[key] = group
            return Link(key, group, min(1.0, score), self.keys[partner])
        self.group_of[key] = key
        return Link(key, key, 1.0, None)

    def score(self, a: Hashable, b: Hashable) -> float:
        """:meth:`score_at` by key (for tests and diagnostics; linear in the history)."""
        return self.score_at(self.keys.index(a), self.keys.index(b))
