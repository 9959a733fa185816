"""What every reaction backend receives and returns.

A backend classifies the person's next message after an answer — their *reaction* — into one of
four labels:

* ``corrected``: the answer failed or missed: the person says so ("doesn't work", "not what I asked",
  "I'd rather ..."), pastes the error it produced, asks the same again, regenerated the answer away
  or edited the prompt after it;
* ``accepted``: the person approves of it ("thanks, that works", "perfect");
* ``continued``: the person goes on (a new request, a follow-up, the output the assistant asked for)
  without judging the answer;
* ``none``: there is no next message (the end of the conversation) and no regeneration or edit.

Results are :class:`Reaction` values (plain, frozen: they cross process boundaries). A backend that
cannot classify one item (a malformed LLM reply, say) returns a :class:`ReactionError` in its place;
the other items stand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

LABELS = ("corrected", "accepted", "continued", "none")


class ReactionError(RuntimeError):
    """One item could not be classified (the reason is the message)."""


@dataclass(frozen=True, slots=True)
class Reaction:
    label: str  # one of LABELS
    confidence: float  # in [0, 1]: how sure the backend is of the label
    rationale: str  # why, in a sentence

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise ValueError(f"unknown reaction label {self.label!r} (labels: {', '.join(LABELS)})")
        c = float(self.confidence)
        if not 0.0 <= c <= 1.0:  # NaN fails this too
            raise ValueError(f"reaction confidence must be in [0, 1], got {self.confidence!r}")
        object.__setattr__(self, "confidence", c)

    def to_dict(self) -> dict[str, object]:
        return {"label": self.label, "confidence": round(self.confidence, 4), "rationale": self.rationale}


@dataclass(frozen=True, slots=True)
class ReactionInput:
    """One answer in context: the request, the answer, and what the person did next."""

    prompt: str
    answer: str
    next: str | None  # the person's next message; None (or blank) when there is none
    regenerated: bool = False  # a later regeneration replaced this answer on the active thread
    edited: bool = False  # the person edited the prompt after this answer

    @property
    def next_text(self) -> str:
        return (self.next or "").strip()


class Backend(Protocol):
    name: str
    version: str

    def classify_batch(self, items: Sequence[ReactionInput]) -> list[Reaction | ReactionError]:
        """One result per item, in order."""
        ...


def structural(item: ReactionInput) -> Reaction | None:
    """The reaction when there is no next message to read, the same for every backend; else None.

    A regeneration or an edited prompt is the person's way of saying the answer did not do: it
    counts as a correction, with less confidence than words (people also regenerate out of
    curiosity and edit prompts to add details).
    """
    if item.next_text:
        return None
    if item.regenerated:
        return Reaction("corrected", 0.6, "a regenerated answer replaced it")
    if item.edited:
        return Reaction("corrected", 0.55, "the person edited the prompt after it")
    return Reaction("none", 1.0, "no next message (the end of the conversation)")
