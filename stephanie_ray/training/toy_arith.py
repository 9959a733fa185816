"""The toy verifiable task of logprob mode (``--task toy-arith``): multi-digit addition, answered as ``\\boxed{N}``
and checked by the ``math`` verifier.

A prompt is ``"A+B="`` with A and B drawn uniformly with ``digits`` digits (no leading zero); the reference is
``A+B``; the answer the warm-up teaches is ``\\boxed{A+B}``. Problem ``i`` of a split is a pure function of
(seed, split, i), so every worker, every rerun and every benchmark seed sees the same problems; the training and
evaluation problems come from different streams (``split``).

The default actor (:func:`toy_actor`) is built from the ``logprob`` config (tokenizer trained on the task's
texts, GPT-2-style model) and warmed up on ``warmup_steps`` batches of warm-up problems; it is cached in
``<runs>/actors/toy-arith-<hash of the settings>`` and rebuilt only when the settings change.

**The warm-up data is deliberately imperfect** (``logprob.toy_warmup_correct``, default 0.35): that share of its
answers is right, the rest carries the classic slip of dropping every carry (:attr:`Problem.carryless`). The
warm-up (default: 3-digit operands, a 4-layer actor, 1600 steps at lr 1e-3) is long enough for the actor to learn
*both* procedures: it answers every problem without a carry right and, where a carry occurs, prefers the slip
(0.65 > 0.35) while still sampling the right answer now and then. Greedy pass@1 therefore starts at
about the share of problems on which the slip is harmless — no carry out of the units or the tens: 0.55² ≈ 30 %
with three digits (55 % with two, too high a start) — while pass@k is far higher: the regime in which RLVR is
known to help (it sharpens behaviour the model can already sample). The start is set by the task, not by
stopping the warm-up half-way: an under-trained actor sits on a knife-edge (the earlier 2-digit, 2-layer,
400-step actor measured 59 % pass@1 in one environment and 30 % in another), and with clean warm-up data the
tiny actor jumps from ~10 % to ~90 % pass@1 within a few dozen warm-up steps.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TASK = "toy-arith"


@dataclass(frozen=True)
class Problem:
    pid: int  # the group id of its samples
    a: int
    b: int

    @property
    def prompt(self) -> str:
        return f"{self.a}+{self.b}="

    @property
    def reference(self) -> str:
        return str(self.a + self.b)

    @property
    def answer(self) -> str:
        return f"\\boxed{{{self.a + self.b}}}"

    @property
    def carryless(self) -> str:
        """The answer with the classic slip of dropping the carries: digit-wise (a_i + b_i) mod 10, the leading
        position's sum written whole (75+48 -> 113, 99+99 -> 188). (Dropping the leading carry too, 75+48 -> 13,
        changes the answer's length on most problems: the tiny actor then failed to learn either procedure.)"""
        da, db = str(self.a)[::-1], str(self.b)[::-1]
        n = max(len(da), len(db))
        digits = [int(da[i] if i < len(da) else 0) + int(db[i] if i < len(db) else 0) for i in range(n)]
        return str(digits[-1]) + "".join(str(d % 10) for d in reversed(digits[:-1]))

    def warmup_answer(self, correct: bool) -> str:
        return self.answer if correct else f"\\boxed{{{self.carryless}}}"


def problems(n: int, digits: int, seed: int, split: str = "train") -> list[Problem]:
    """Problems 0..n-1 of ``split`` (module docstring)."""
    lo, hi = 10 ** (digits - 1) if digits > 1 else 0, 10 ** digits - 1
    out = []
    for i in range(n):
        rng = random.Random(f"{TASK}:{split}:{seed}:{digits}:{i}")
        out.append(Problem(i, rng.randint(lo, hi), rng.randint(lo, hi)))
    return out


def toy_actor(lc: Any, runs_dir: Path) -> Path:
    """The directory of the warmed-up default actor for ``lc`` (a ``LogprobConfig``), built if missing."""
    from .actor import cached_actor

    pool = problems(20000, lc.toy_digits, lc.actor_seed, "warmup")
    rng = random.Random(f"{TASK}:warmup-mix:{lc.actor_seed}")
    pairs = [(p.prompt, p.warmup_answer(rng.random() < lc.toy_warmup_correct)) for p in pool]
    return cached_actor(Path(runs_dir), TASK, {"task": TASK, "digits": lc.toy_digits, "slip": "carries-but-leading",
                                               "warmup_correct": lc.toy_warmup_correct},
                        [p + a for p, a in pairs], pairs, lc)
