"""The label registry: every detector label, what it means in words (the projection's anchors), and
whether it names a kind of thing (semantic) or only a shape of text (syntactic).

A label's descriptions are the type descriptions the projection learns to place near the label's
mentions. Syntactic labels (IDENT, ACRONYM, NAME) are too mixed to be a type ("a capitalised name" is a
person, a company or a model) and are not used as training anchors; their mentions are still indexed,
and a semantic label found on the same span by another detector replaces them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LabelSpec:
    name: str
    descriptions: tuple[str, ...]
    semantic: bool = True  # a kind of thing (trainable anchor); False: a shape of text
    train: bool = True


def _l(name: str, *descriptions: str, semantic: bool = True, train: bool = True) -> LabelSpec:
    return LabelSpec(name, tuple(descriptions), semantic, train)


LABELS: dict[str, LabelSpec] = {s.name: s for s in [
    # spaCy en_core_web_sm (OntoNotes 5)
    _l("PERSON", "person", "a person's name", "people", "human individual"),
    _l("NORP", "nationality, religious or political group", "nationality", "political group"),
    _l("FAC", "building or facility", "airport, bridge or highway", "facility"),
    _l("ORG", "organization", "company", "institution or agency", "organisation or company name"),
    _l("GPE", "country, city or state", "geopolitical entity", "city", "country"),
    _l("LOC", "location", "place, mountain range or body of water", "geographic location"),
    _l("PRODUCT", "product", "commercial product", "object, vehicle or device"),
    _l("EVENT", "event", "named event such as a war, storm or conference"),
    _l("WORK_OF_ART", "work of art", "title of a book, song or film"),
    _l("LAW", "law", "named legal document or regulation"),
    _l("LANGUAGE", "language", "natural language"),
    _l("DATE", "date", "date or period"),
    _l("TIME", "time of day"),
    _l("PERCENT", "percentage"),
    _l("MONEY", "amount of money"),
    _l("QUANTITY", "measurement or quantity"),
    _l("ORDINAL", "ordinal number"),
    _l("CARDINAL", "number"),
    # Hugging Face CoNLL-style models (dslim/bert-base-NER ...)
    _l("PER", "person", "a person's name", "people"),
    _l("MISC", "miscellaneous named entity", train=False),
    # the rule-based detector
    _l("URL", "URL", "web address", "link to a web page"),
    _l("ARXIV", "arXiv paper identifier", "arXiv id of a research paper"),
    _l("PATH", "file path", "file or directory path", "file name"),
    _l("CODE", "inline code", "code snippet or identifier in backticks"),
    _l("MODULE", "Python module or package", "imported software library", "code library"),
    _l("IDENT", "code identifier", "function, class or variable name", semantic=False, train=False),
    _l("ACRONYM", "acronym", "abbreviation", semantic=False, train=False),
    _l("NAME", "proper name", semantic=False, train=False),
]}
# labels that detectors spell differently for the same kind of thing
ALIASES = {"PER": "PERSON", "LOCATION": "LOC", "ORGANIZATION": "ORG", "B-PER": "PERSON"}


def canonical(label: str) -> str:
    label = (label or "").upper().removeprefix("B-").removeprefix("I-")
    return ALIASES.get(label, label)


def spec(label: str) -> LabelSpec:
    """The label's spec; a label no registry entry knows (an HF model's own) is semantic, described by its name
    in lower case with underscores as spaces."""
    label = canonical(label)
    return LABELS.get(label) or LabelSpec(label, (label.lower().replace("_", " "),), True, True)


def descriptions(label: str) -> tuple[str, ...]:
    return spec(label).descriptions


def is_semantic(label: str) -> bool:
    return spec(label).semantic
