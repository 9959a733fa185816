"""Labelled reaction files and agreement figures (pure): accuracy, Cohen's kappa, precision/recall.

A labelled file is JSON lines with ``prompt``, ``answer``, ``next`` (null when none), optional
``regenerated`` / ``edited``, the gold ``label`` and optionally ``lang`` and ``id``. The same line
shape without ``label`` is what ``stephanie reactions classify`` reads.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from .base import LABELS, ReactionInput


class LineError(ValueError):
    """A line of a reactions file that cannot be read (the message names the line)."""


@dataclass(frozen=True, slots=True)
class LabelledItem:
    id: str
    lang: str
    item: ReactionInput
    label: str | None  # gold label, when the file has one


def parse_line(text: str, lineno: int, *, need_label: bool = False) -> LabelledItem:
    """One JSON line -> :class:`LabelledItem`; a clear :class:`LineError` naming ``lineno`` otherwise."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LineError(f"line {lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise LineError(f"line {lineno}: expected a JSON object, got {type(obj).__name__}")
    for key in ("prompt", "answer"):
        if not isinstance(obj.get(key), str):
            raise LineError(f"line {lineno}: {key!r} must be a string, got {obj.get(key)!r:.40}")
    if "next" not in obj:
        raise LineError(f"line {lineno}: 'next' is missing (use null when there is no next message)")
    if obj["next"] is not None and not isinstance(obj["next"], str):
        raise LineError(f"line {lineno}: 'next' must be a string or null, got {obj['next']!r:.40}")
    flags = {}
    for key in ("regenerated", "edited"):
        v = obj.get(key, False)
        if v is None:
            v = False
        if not isinstance(v, bool):
            raise LineError(f"line {lineno}: {key!r} must be true or false, got {v!r}")
        flags[key] = v
    label = obj.get("label")
    if label is not None and label not in LABELS:
        raise LineError(f"line {lineno}: unknown label {label!r} (labels: {', '.join(LABELS)})")
    if need_label and label is None:
        raise LineError(f"line {lineno}: 'label' is missing")
    return LabelledItem(str(obj.get("id", lineno)), str(obj.get("lang") or "?"),
                        ReactionInput(obj["prompt"], obj["answer"], obj["next"], **flags), label)


def read_labelled(path: str | Path) -> list[LabelledItem]:
    """Every labelled line of ``path`` (blank lines skipped); the first bad line is an error."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                out.append(parse_line(line, lineno, need_label=True))
    return out


@dataclass(frozen=True)
class PR:
    precision: float | None  # None when nothing was predicted as the label
    recall: float | None  # None when the label never occurs in the gold
    predicted: int
    actual: int


@dataclass(frozen=True)
class Agreement:
    n: int
    accuracy: float | None
    kappa: float | None  # Cohen's kappa over the four labels; None when undefined (chance agreement is 1)
    corrected: PR
    accepted: PR
    confusion: dict[str, dict[str, int]]  # gold -> predicted -> count

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pr(gold: Sequence[str], pred: Sequence[str], label: str) -> PR:
    tp = sum(g == label and p == label for g, p in zip(gold, pred))
    npred = sum(p == label for p in pred)
    nact = sum(g == label for g in gold)
    return PR(tp / npred if npred else None, tp / nact if nact else None, npred, nact)


def agreement(gold: Sequence[str], pred: Sequence[str]) -> Agreement:
    """Agreement of predicted with gold labels (same length, labels from :data:`LABELS`)."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predictions")
    n = len(gold)
    confusion = {g: {p: 0 for p in LABELS} for g in LABELS}
    for g, p in zip(gold, pred):
        confusion[g][p] += 1
    if not n:
        return Agreement(0, None, None, _pr(gold, pred, "corrected"), _pr(gold, pred, "accepted"), confusion)
    po = sum(g == p for g, p in zip(gold, pred)) / n
    cg, cp = Counter(gold), Counter(pred)
    pe = sum(cg[label] * cp[label] for label in LABELS) / (n * n)
    kappa = (po - pe) / (1 - pe) if pe < 1 else None
    return Agreement(n, po, kappa, _pr(gold, pred, "corrected"), _pr(gold, pred, "accepted"), confusion)


def baseline_label(item: ReactionInput) -> str:
    """The trivial baseline: 'continued' when there is a next message, else 'none'."""
    return "continued" if item.next_text else "none"
