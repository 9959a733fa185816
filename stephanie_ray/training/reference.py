"""The PACS reference policy: when to refresh the frozen copy that s_ref comes from, and the copy itself.

``reset_every = K``, counted in *applied* updates (rejected steps do not count):

* ``K = 1``: the reference is the policy as it was before the update, as in the authors' code
  (``old_log_prob`` is computed by the rollout policy, then the actor is updated). With one update
  per batch this makes ``s_ref == s_θ.detach()``, so ``r̂ = ψ = 0`` and the loss is ``log 2`` at every
  step: only its gradient (``σ(0) − R = ½ − R`` per response) moves the policy. No copy needs to be
  kept for that case: pass ``s_ref = s_theta.detach()``.
* ``K > 1``: the seed design's frozen reference, refreshed every K updates; between refreshes r̂ is the
  drift of the policy since the last refresh, and ψ, accuracy and entropy become informative.

:meth:`ReferenceSchedule.force` asks for a refresh at the next check (e.g. a monitor deciding the
coupling has gone unstable, or after resuming from a checkpoint without a saved reference).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch


def snapshot_module(module: torch.nn.Module) -> torch.nn.Module:
    """A frozen deep copy: own parameters and buffers, ``requires_grad`` False, eval mode.

    Pass the bare model (not a DDP/FSDP wrapper): the copy must not join the wrapper's collectives.
    """
    ref = copy.deepcopy(module)
    ref.requires_grad_(False)
    ref.eval()
    return ref


@torch.no_grad()
def refresh_reference(reference: torch.nn.Module, module: torch.nn.Module) -> torch.nn.Module:
    """Copy ``module``'s current parameters and buffers into ``reference`` in place (no reallocation)."""
    src = module.state_dict()
    dst = reference.state_dict()
    if src.keys() != dst.keys():
        raise ValueError("reference and module have different parameters")
    for k, v in src.items():
        dst[k].copy_(v)
    return reference


@dataclass
class ReferenceSchedule:
    """Says when to refresh the frozen reference. ``step`` = number of applied updates so far."""

    reset_every: int = 1
    last_refresh: int | None = field(default=None)
    _forced: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if int(self.reset_every) != self.reset_every or self.reset_every < 1:
            raise ValueError(f"reset_every must be an integer >= 1, got {self.reset_every}")

    def due(self, step: int) -> bool:
        """True before the first update, when forced, or once ``reset_every`` updates have passed."""
        return self._forced or self.last_refresh is None or step - self.last_refresh >= self.reset_every

    def force(self) -> None:
        self._forced = True

    def mark(self, step: int) -> None:
        self.last_refresh = step
        self._forced = False

    def maybe_refresh(self, step: int, policy: torch.nn.Module,
                      reference: torch.nn.Module | None) -> tuple[torch.nn.Module, bool]:
        """(the reference to use for this step, whether it was refreshed now)."""
        if reference is not None and not self.due(step):
            return reference, False
        reference = snapshot_module(policy) if reference is None else refresh_reference(reference, policy)
        self.mark(step)
        return reference, True

    def state_dict(self) -> dict[str, int | bool | None]:
        """JSON-ready state for a checkpoint."""
        return {"reset_every": self.reset_every, "last_refresh": self.last_refresh, "forced": self._forced}

    @classmethod
    def from_state_dict(cls, state: dict[str, int | bool | None]) -> "ReferenceSchedule":
        s = cls(int(state["reset_every"]), state["last_refresh"])  # type: ignore[arg-type]
        s._forced = bool(state["forced"])
        return s
