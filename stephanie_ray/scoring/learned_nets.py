"""The learned scorers' networks (pure torch): each maps features of (request, answer) to a utility
``u`` (batch,) whose sigmoid is the score. Features are ``[g, a, g * a]`` (3 x 384 for MiniLM) with
g the request's embedding and a the answer's.

* **MRQ**: a two-layer MLP.
* **SVM**: a linear function (the primal form, no kernel); its output is the score directly, clipped.
* **SICQL**: a shared trunk with three heads, in the spirit of implicit Q-learning: Q(g, a) (a logit),
  V(g) from the request alone (fitted to Q by expectile regression), a policy logit pi(g, a) (trained by
  advantage-weighted regression). u = Q.
* **HRM** (Hierarchical Reasoning Model style): two recurrent modules over the same input — a fast
  low-level GRU updated ``low_steps`` times per cycle, conditioned on the slow high-level state, and a
  slow high-level GRU updated once per cycle from the low-level result — for ``cycles`` cycles; u is
  read from the final high-level state. The high-level state's change over the last cycle is reported.
* **EBT** (energy-based transformer style, here an MLP energy): E(g, a) scalar, trained so that accepted
  and kept answers have lower energy than corrected and replaced ones; u = -E, score = sigma(-E). The
  norm of dE/da (the energy's gradient with respect to the answer embedding) is the uncertainty.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class MRQ(nn.Module):
    def __init__(self, in_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(0.1),
                                 nn.Linear(hidden, hidden // 2), nn.GELU(), nn.Linear(hidden // 2, 1))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # x: (batch, in_dim)
        return {"u": self.net(x).squeeze(-1)}  # (batch,)


class SVM(nn.Module):
    def __init__(self, in_dim: int, hidden: int):
        super().__init__()
        self.lin = nn.Linear(in_dim, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"f": self.lin(x).squeeze(-1)}  # (batch,) raw margin; the score is f clipped to [0, 1]


class SICQL(nn.Module):
    def __init__(self, in_dim: int, hidden: int):
        super().__init__()
        self.emb_dim = in_dim // 3
        self.trunk = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU())
        self.q = nn.Linear(hidden, 1)
        self.pi = nn.Linear(hidden, 1)
        self.v = nn.Sequential(nn.Linear(self.emb_dim, hidden // 2), nn.GELU(), nn.Linear(hidden // 2, 1))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.trunk(x)  # (batch, hidden)
        g = x[:, : self.emb_dim]  # (batch, emb_dim): the request alone
        return {"u": self.q(h).squeeze(-1), "v": self.v(g).squeeze(-1), "pi": self.pi(h).squeeze(-1)}


class HRM(nn.Module):
    def __init__(self, in_dim: int, hidden: int, cycles: int, low_steps: int):
        super().__init__()
        self.cycles, self.low_steps = cycles, low_steps
        self.inp = nn.Linear(in_dim, hidden)
        self.low = nn.GRUCell(hidden, hidden)  # fast: sees the input and the slow state
        self.high = nn.GRUCell(hidden, hidden)  # slow: sees the fast module's result once per cycle
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        e = torch.tanh(self.inp(x))  # (batch, hidden)
        z_h = torch.zeros_like(e)
        z_l = torch.zeros_like(e)
        prev = z_h
        for _ in range(self.cycles):
            prev = z_h
            for _ in range(self.low_steps):
                z_l = self.low(e + z_h, z_l)
            z_h = self.high(z_l, z_h)
        return {"u": self.head(z_h).squeeze(-1), "delta": (z_h - prev).norm(dim=-1)}


class EBT(nn.Module):
    def __init__(self, in_dim: int, hidden: int):
        super().__init__()
        self.energy = nn.Sequential(nn.Linear(in_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden // 2), nn.SiLU(),
                                    nn.Linear(hidden // 2, 1))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        e = self.energy(x).squeeze(-1)  # (batch,) energy: low = good
        return {"u": -e, "energy": e}


def build(kind: str, in_dim: int, hp: dict[str, Any]) -> nn.Module:
    hidden = int(hp["hidden"])
    if kind == "hrm":
        return HRM(in_dim, hidden, int(hp["hrm_cycles"]), int(hp["hrm_low_steps"]))
    return {"mrq": MRQ, "svm": SVM, "sicql": SICQL, "ebt": EBT}[kind](in_dim, hidden)
