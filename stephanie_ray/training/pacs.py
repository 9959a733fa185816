"""The PACS objective (arXiv 2509.02522), pure torch: no Ray, no database, no model classes.

PACS treats the verifier's label ``R ∈ {0, 1}`` of a response ``o_i`` to a prompt ``q`` as a target
and fits a score ``ψ`` parameterised by the policy with binary cross-entropy. Both training modes
use this one module; only where the per-response score ``s`` comes from differs:

* critic mode: ``s = `` the critic's logit for (q, o_i);
* logprob mode: ``s = log π_θ(o_i | q) = Σ_t log π_θ(o_i,t | q, o_i,<t)`` over the response tokens
  only (:func:`sequence_logprob`; prompt tokens and padding masked out), optionally divided by the
  number of response tokens (``normalise=True``).

The formulas (``g`` indexes groups: the responses to one prompt, ``n_g`` of them; ``i`` a response):

* reward proxy      ``r̂_i = β · (s_θ(q, o_i) − s_ref(q, o_i))`` (:func:`reward_proxy`);
  ``s_ref`` comes from a frozen copy refreshed by :class:`ReferenceSchedule`. The authors'
  ``reward_method=2`` is ``β · mean_t log π_θ`` with *no* reference term: pass
  ``normalise=True`` and ``s_ref=None`` to get it. (The authors' code sums the per-token terms over
  the whole response slot without the response mask; here padding never counts.)
* RLOO score        ``ψ_i = r̂_i − (1 / (n_g − 1)) · Σ_{j ∈ g, j ≠ i} r̂_j`` for ``n_g ≥ 2``;
  ``ψ_i = r̂_i`` for a group of one (the authors' code would divide by zero there).
  Within a group of two or more, ``Σ_i ψ_i = 0``.
* class weights     ``w_i = n_g / (K_g · n_{g, R_i})`` with ``n_{g,c}`` the responses of class ``c``
  in group ``g`` and ``K_g ∈ {1, 2}`` the classes present. This is scikit-learn's
  ``compute_class_weight("balanced")`` per group, as the authors' ``weight_mode="question"``:
  in a mixed group each class carries half the group's total weight, and ``Σ_{i∈g} w_i = n_g``.
  An all-positive or all-negative group (and a group of one) has ``K_g = 1`` so every ``w_i = 1``
  (authors' behaviour, ``uniform_groups="keep"``). Such a group still has a gradient: it pulls
  its ψ's together (they sum to 0, so they cannot all move towards the label); with
  ``uniform_groups="drop"`` its weights are 0 instead. ``class_balance=False``: every ``w_i = 1``.
* loss              ``ℓ_i = BCEWithLogits(ψ_i, R_i) = −R_i log σ(ψ_i) − (1 − R_i) log(1 − σ(ψ_i))``,
  reduced by ``reduction``:
  ``"sample"`` (default) ``L = Σ_i w_i ℓ_i / Σ_i w_i``; with ``uniform_groups="keep"``
  ``Σ w_i = N`` so this equals the authors' ``BCEWithLogitsLoss(weight=w)`` (a mean over samples:
  a group counts in proportion to its size);
  ``"group"``: ``L = mean_g (Σ_{i∈g} w_i ℓ_i / Σ_{i∈g} w_i)`` over groups with weight (each prompt
  counts once);
  ``"sum"``: ``L = Σ_i w_i ℓ_i`` (for a distributed loop that divides by a global ``Σ w`` itself:
  the per-worker ``Σ w`` is :attr:`PACSOutput.weight_sum`).
  If no sample has weight (every group dropped), ``L = 0`` (with a graph, so ``backward`` works).

The gradient decomposition (:func:`gradient_decomposition`). Let ``γ_i = ∂L/∂ψ_i``
(``= w_i (σ(ψ_i) − R_i) / Σ w`` for ``"sample"``). Since ``∂ψ_i/∂r̂_i = 1`` and
``∂ψ_i/∂r̂_j = −1/(n_g − 1)`` for ``j ≠ i`` in the same group,
``∂L/∂s_θ,j = β · ∂L/∂r̂_j = β (a_j + c_j)`` with

* actor term   ``a_j = γ_j``: through the response's own score ψ_j (the policy-gradient part);
* critic term  ``c_j = −(1/(n_g − 1)) Σ_{i ∈ g, i ≠ j} γ_i`` (0 for a group of one): through r̂_j's
  role in the leave-one-out baseline of the other responses. ``Σ_{j∈g} (a_j + c_j) = 0``.

Reported: ``actor_grad_norm = β‖a‖₂``, ``critic_grad_norm = β‖c‖₂`` (over the batch, in the space of
the scores ``s_θ``), and ``coupling_ratio = ‖c‖₂ / ‖a‖₂`` (0 when both are 0; β cancels). Per group,
``c = −(J − I) a / (n_g − 1)`` whose eigenvalues are −1 (on the group-mean direction) and
``1/(n_g − 1)`` (on zero-sum directions), so for groups of size n the ratio lies in ``[1/(n − 1), 1]``:
1 when the γ's of each group are equal (a common-mode signal that the baseline cancels entirely: the
critic dominates), ``1/(n − 1)`` when they sum to zero within each group (pure within-group contrast:
the actor dominates). For groups of two it is always 1. :func:`pacs_step` can also report the same
split in parameter space (one extra backward pass).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Literal, Sequence

import torch
import torch.nn.functional as F

from .reference import ReferenceSchedule, refresh_reference, snapshot_module

__all__ = ["PACSObjective", "PACSOutput", "PACSMetrics", "StepResult", "ReferenceSchedule", "class_balanced_weights",
           "canonical_group_ids", "from_padded", "gradient_decomposition", "group_ids_from_sizes", "pacs_loss",
           "pacs_objective", "pacs_step", "refresh_reference", "reward_proxy", "rloo_scores", "rloo_scores_padded",
           "sequence_logprob", "snapshot_module", "to_padded"]

Reduction = Literal["sample", "group", "sum"]


@dataclass(frozen=True)
class PACSObjective:
    """The objective's settings (the training config builds one)."""

    beta: float = 1.0
    """β in r̂ = β (s_θ − s_ref); the authors use 1.0 or 2.0."""
    class_balance: bool = True
    """Per-group class-balanced weights (the authors' ``use_weight``); False: every weight is 1."""
    uniform_groups: Literal["keep", "drop"] = "keep"
    """All-positive / all-negative groups (and groups of one): keep with weight 1 (authors) or drop (weight 0)."""
    reduction: Reduction = "sample"
    """sample: Σ w ℓ / Σ w (authors); group: mean over groups of the group's weighted mean; sum: Σ w ℓ."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.beta) and self.beta > 0):
            raise ValueError(f"beta must be a finite number > 0, got {self.beta}")
        if self.uniform_groups not in ("keep", "drop"):
            raise ValueError(f"uniform_groups must be 'keep' or 'drop', got {self.uniform_groups!r}")
        if self.reduction not in ("sample", "group", "sum"):
            raise ValueError(f"reduction must be 'sample', 'group' or 'sum', got {self.reduction!r}")


# ---------------------------------------------------------------------------------------------- scores
def sequence_logprob(logits: torch.Tensor, input_ids: torch.Tensor, response_mask: torch.Tensor,
                     normalise: bool = False, temperature: float = 1.0) -> torch.Tensor:
    """Σ (or mean, ``normalise=True``) of the response tokens' log-probabilities under a causal LM.

    ``logits`` (batch, seq, vocab) are the model's outputs for ``input_ids`` (batch, seq); token ``t`` is
    predicted by ``logits[:, t - 1]`` (shift by one). ``response_mask`` (batch, seq) is 1 on the response
    tokens, 0 on the prompt and padding (so left or right padding both work). Position 0 cannot be a
    response token (nothing predicts it). Computed in float32 at least (bf16 sums drift). Returns (batch,).
    """
    if logits.dim() != 3 or input_ids.shape != logits.shape[:2] or response_mask.shape != input_ids.shape:
        raise ValueError(f"expected logits (B, T, V), input_ids and response_mask (B, T); got "
                         f"{tuple(logits.shape)}, {tuple(input_ids.shape)}, {tuple(response_mask.shape)}")
    mask = response_mask.to(torch.bool)
    if mask[:, 0].any():
        raise ValueError("response_mask marks position 0, which no logit predicts")
    lg = logits[:, :-1].float() / temperature  # (B, T-1, V): position t predicts token t+1
    target = input_ids[:, 1:]  # (B, T-1)
    # log p(token) = logit(token) - logsumexp(logits): never materialises a (B, T-1, V) log-softmax.
    token_lp = lg.gather(-1, target.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(lg, dim=-1)  # (B, T-1)
    m = mask[:, 1:]  # (B, T-1)
    total = torch.where(m, token_lp, torch.zeros_like(token_lp)).sum(-1)  # (B,)
    if not normalise:
        return total
    n = m.sum(-1)  # (B,)
    if (n == 0).any():
        raise ValueError("a response has no tokens: its length-normalised log-prob is undefined")
    return total / n


def reward_proxy(s_theta: torch.Tensor, s_ref: torch.Tensor | None = None, beta: float = 1.0) -> torch.Tensor:
    """r̂ = β (s_θ − s_ref); ``s_ref=None`` means 0 (the authors' reward_method 2). (N,) -> (N,)."""
    if s_ref is None:
        return beta * s_theta
    if s_ref.shape != s_theta.shape:
        raise ValueError(f"s_ref shape {tuple(s_ref.shape)} != s_theta shape {tuple(s_theta.shape)}")
    return beta * (s_theta - s_ref.detach())


# ---------------------------------------------------------------------------------------------- groups
def canonical_group_ids(group_ids: torch.Tensor | Sequence[int]) -> tuple[torch.Tensor, int]:
    """Any integer ids (N,) -> ids 0..G-1 (N,) in sorted order of the originals, and G."""
    gid = torch.as_tensor(group_ids)
    if gid.dim() != 1 or gid.dtype.is_floating_point:
        raise ValueError("group_ids must be a 1-D integer tensor")
    uniq, inverse = torch.unique(gid, return_inverse=True)
    return inverse, int(uniq.numel())


def group_ids_from_sizes(sizes: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """Group sizes (G,) (contiguous groups, e.g. offsets' differences) -> group ids (N,)."""
    s = torch.as_tensor(sizes, dtype=torch.long)
    if (s <= 0).any():
        raise ValueError("group sizes must be > 0")
    return torch.repeat_interleave(torch.arange(s.numel()), s)


def _group_stats(values: torch.Tensor, gid: torch.Tensor, num_groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    # index_add is bit-reproducible on CPU; on CUDA it uses atomics: set
    # torch.use_deterministic_algorithms(True) for bit-identical GPU runs.
    sums = torch.zeros(num_groups, dtype=values.dtype, device=values.device).index_add(0, gid, values)  # (G,)
    counts = torch.bincount(gid, minlength=num_groups)  # (G,)
    return sums, counts


def rloo_scores(r_hat: torch.Tensor, group_ids: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """ψ_i = r̂_i − mean of the other r̂ in i's group (ψ_i = r̂_i alone in its group). (N,) -> (N,)."""
    gid, g = canonical_group_ids(torch.as_tensor(group_ids, device=r_hat.device))
    if gid.shape != r_hat.shape:
        raise ValueError(f"group_ids shape {tuple(gid.shape)} != r_hat shape {tuple(r_hat.shape)}")
    sums, counts = _group_stats(r_hat, gid, g)
    n = counts[gid].to(r_hat.dtype)  # (N,)
    others = (sums[gid] - r_hat) / (n - 1).clamp(min=1)  # (N,); the clamp only guards groups of one
    return r_hat - torch.where(n > 1, others, torch.zeros_like(others))


def to_padded(values: torch.Tensor, group_ids: torch.Tensor, fill: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat (N,) values -> (num_groups, max_group) with a bool mask; rows in sorted group-id order,
    responses in their original order within a row."""
    gid, g = canonical_group_ids(torch.as_tensor(group_ids, device=values.device))
    counts = torch.bincount(gid, minlength=g)  # (G,)
    order = torch.argsort(gid, stable=True)  # (N,): grouped, original order kept within a group
    starts = torch.cumsum(counts, 0) - counts  # (G,)
    slot = torch.empty_like(gid)
    slot[order] = torch.arange(gid.numel(), device=gid.device) - starts[gid[order]]  # position within its group
    padded = torch.full((g, int(counts.max()) if g else 0), fill, dtype=values.dtype, device=values.device)
    mask = torch.zeros(padded.shape, dtype=torch.bool, device=values.device)
    padded = padded.index_put((gid, slot), values)  # (G, M)
    mask[gid, slot] = True  # (G, M)
    return padded, mask


def from_padded(padded: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_padded` for contiguous sorted groups: (G, M) -> (N,) row by row."""
    return padded[mask]


def rloo_scores_padded(r_hat: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """ψ for a padded batch: r_hat and mask (num_groups, max_group) -> ψ (num_groups, max_group), 0 off-mask."""
    r = torch.where(mask, r_hat, torch.zeros_like(r_hat))  # (G, M): padding may hold garbage
    n = mask.sum(-1, keepdim=True).to(r.dtype)  # (G, 1)
    others = (r.sum(-1, keepdim=True) - r) / (n - 1).clamp(min=1)  # (G, M)
    psi = r - torch.where(n > 1, others, torch.zeros_like(others))
    return torch.where(mask, psi, torch.zeros_like(psi))


def class_balanced_weights(labels: torch.Tensor, group_ids: torch.Tensor,
                           uniform_groups: Literal["keep", "drop"] = "keep") -> torch.Tensor:
    """w_i = n_g / (K_g · n_{g,R_i}) (see the module docstring); uniform groups get 1, or 0 with "drop"."""
    gid, g = canonical_group_ids(torch.as_tensor(group_ids, device=labels.device))
    y = labels.to(torch.float64)
    pos, n = _group_stats(y, gid, g)  # (G,), (G,)
    neg = n.to(torch.float64) - pos  # (G,)
    k = (pos > 0).to(torch.float64) + (neg > 0).to(torch.float64)  # (G,): classes present
    n_class = torch.where(y > 0.5, pos[gid], neg[gid])  # (N,)
    w = n[gid].to(torch.float64) / (k[gid] * n_class)  # (N,)
    if uniform_groups == "drop":
        w = torch.where(k[gid] < 2, torch.zeros_like(w), w)
    return w.to(labels.dtype if labels.dtype.is_floating_point else torch.float32)


def _check_labels(labels: torch.Tensor) -> None:
    if not bool(((labels == 0) | (labels == 1)).all()):
        raise ValueError("labels must be 0 or 1")


def pacs_loss(psi: torch.Tensor, labels: torch.Tensor, group_ids: torch.Tensor, weights: torch.Tensor | None = None,
              reduction: Reduction = "sample") -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted BCE-with-logits of ψ (N,) against labels (N,); returns (loss, Σ w)."""
    _check_labels(labels)
    y = labels.to(psi.dtype)
    w = torch.ones_like(psi) if weights is None else weights.to(psi.dtype)
    per = F.binary_cross_entropy_with_logits(psi, y, reduction="none")  # (N,)
    wsum = w.sum()
    if reduction == "sum":
        return (w * per).sum(), wsum
    if reduction == "sample":
        if float(wsum) == 0.0:
            return (psi * 0.0).sum(), wsum
        return (w * per).sum() / wsum, wsum
    if reduction != "group":
        raise ValueError(f"unknown reduction {reduction!r}")
    gid, g = canonical_group_ids(torch.as_tensor(group_ids, device=psi.device))
    num, _ = _group_stats(w * per, gid, g)  # (G,)
    den, _ = _group_stats(w, gid, g)  # (G,)
    live = den > 0
    if not bool(live.any()):
        return (psi * 0.0).sum(), wsum
    return (num[live] / den[live]).mean(), wsum


# ---------------------------------------------------------------------------------------------- metrics
@dataclass(frozen=True)
class PACSMetrics:
    """One step's figures (plain floats, JSON-ready via :meth:`to_dict`)."""

    loss: float
    psi_mean: float
    r_hat_mean: float
    label_rate: float  # share of labels equal to 1
    accuracy: float  # share with (ψ > 0) == R; ψ == 0 predicts 0
    entropy: float  # mean binary entropy of σ(ψ), nats (log 2 = 0.693 at ψ = 0)
    actor_grad_norm: float  # β ‖a‖₂ (module docstring)
    critic_grad_norm: float  # β ‖c‖₂
    coupling_ratio: float  # ‖c‖₂ / ‖a‖₂, 0 when both are 0
    num_samples: int
    num_groups: int
    num_mixed_groups: int  # groups with both labels

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class PACSOutput:
    loss: torch.Tensor  # scalar, with the graph to s_θ
    r_hat: torch.Tensor  # (N,)
    psi: torch.Tensor  # (N,)
    weights: torch.Tensor  # (N,)
    weight_sum: torch.Tensor  # scalar Σ w (for a global "sum" reduction)
    actor_grad: torch.Tensor  # (N,) β a: ∂L/∂s_θ through each response's own ψ
    critic_grad: torch.Tensor  # (N,) β c: ∂L/∂s_θ through the leave-one-out baselines
    metrics: PACSMetrics


def gradient_decomposition(dpsi: torch.Tensor, group_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """γ = ∂L/∂ψ (N,) -> (a, c) (N,) each, with ∂L/∂r̂ = a + c (module docstring)."""
    gid, g = canonical_group_ids(torch.as_tensor(group_ids, device=dpsi.device))
    sums, counts = _group_stats(dpsi, gid, g)  # (G,)
    n = counts[gid].to(dpsi.dtype)  # (N,)
    c = -(sums[gid] - dpsi) / (n - 1).clamp(min=1)
    return dpsi, torch.where(n > 1, c, torch.zeros_like(c))


def _binary_entropy(psi: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(psi)
    # H = -p log p - (1-p) log(1-p), written with logsigmoid for stability at large |ψ|.
    return -(p * F.logsigmoid(psi) + (1 - p) * F.logsigmoid(-psi))


def pacs_objective(s_theta: torch.Tensor, s_ref: torch.Tensor | None, labels: torch.Tensor,
                   group_ids: torch.Tensor, objective: PACSObjective = PACSObjective()) -> PACSOutput:
    """Loss (with graph) and metrics for scores s_θ (N,), reference scores s_ref (N,) or None, labels
    R ∈ {0,1} (N,) and group ids (N,) (responses sharing an id answer the same prompt)."""
    if s_theta.dim() != 1 or labels.shape != s_theta.shape or torch.as_tensor(group_ids).shape != s_theta.shape:
        raise ValueError("s_theta, labels and group_ids must all be (N,)")
    gids = torch.as_tensor(group_ids, device=s_theta.device)
    _check_labels(labels)
    y = labels.to(s_theta.dtype)
    r_hat = reward_proxy(s_theta, s_ref, objective.beta)  # (N,)
    psi = rloo_scores(r_hat, gids)  # (N,)
    if objective.class_balance:
        w = class_balanced_weights(y, gids, objective.uniform_groups)
    else:
        w = torch.ones_like(y)
    loss, wsum = pacs_loss(psi, y, gids, w, objective.reduction)

    with torch.enable_grad():  # γ = ∂L/∂ψ on a detached copy: cheap (N values) and reduction-agnostic
        psi_d = psi.detach().requires_grad_(True)
        (dpsi,) = torch.autograd.grad(pacs_loss(psi_d, y, gids, w, objective.reduction)[0], psi_d,
                                      allow_unused=True)
    dpsi = torch.zeros_like(psi_d) if dpsi is None else dpsi
    a, c = gradient_decomposition(dpsi, gids)
    with torch.no_grad():
        psi_n, r_n = psi.detach(), r_hat.detach()
        a_norm = float(torch.linalg.vector_norm(a))
        c_norm = float(torch.linalg.vector_norm(c))
        gid_c, g = canonical_group_ids(gids)
        pos, n = _group_stats(y.detach().to(torch.float64), gid_c, g)
        metrics = PACSMetrics(
            loss=float(loss.detach()),
            psi_mean=float(psi_n.mean()),
            r_hat_mean=float(r_n.mean()),
            label_rate=float(y.mean()),
            accuracy=float(((psi_n > 0).to(y.dtype) == y).to(torch.float64).mean()),
            entropy=float(_binary_entropy(psi_n).mean()),
            actor_grad_norm=objective.beta * a_norm,
            critic_grad_norm=objective.beta * c_norm,
            coupling_ratio=(c_norm / a_norm) if a_norm > 0 else (0.0 if c_norm == 0 else math.inf),
            num_samples=int(s_theta.numel()),
            num_groups=g,
            num_mixed_groups=int(((pos > 0) & (pos < n)).sum()),
        )
    return PACSOutput(loss, r_hat, psi, w, wsum, objective.beta * a, objective.beta * c, metrics)


# ---------------------------------------------------------------------------------------------- the step
@dataclass(frozen=True)
class StepResult:
    """What :func:`pacs_step` did. ``ok`` False: the update was rejected (never applied), ``reason`` says why."""

    ok: bool
    applied: bool  # an optimizer was given and stepped
    reason: str | None
    grad_norm: float  # ‖∂L/∂params‖₂ before clipping (nan/inf when rejected for it)
    param_actor_grad_norm: float | None  # ‖J^T β a‖₂ when asked for (``decompose_params=True``)
    param_critic_grad_norm: float | None  # ‖J^T β c‖₂
    metrics: PACSMetrics

    def to_dict(self) -> dict[str, object]:
        d = {k: v for k, v in asdict(self).items() if k != "metrics"}
        return {**d, **self.metrics.to_dict()}


def _norm(grads: Iterable[torch.Tensor | None]) -> float:
    sq = [g.detach().double().pow(2).sum() for g in grads if g is not None]
    return float(torch.stack(sq).sum().sqrt()) if sq else 0.0


def pacs_step(s_theta: torch.Tensor, s_ref: torch.Tensor | None, labels: torch.Tensor, group_ids: torch.Tensor,
              objective: PACSObjective = PACSObjective(), *, params: Sequence[torch.Tensor] | None = None,
              optimizer: torch.optim.Optimizer | None = None, max_grad_norm: float | None = None,
              decompose_params: bool = False) -> StepResult:
    """Loss, backward, a finiteness check, and (if ``optimizer`` is given and all is finite) the update.

    ``params`` default to the optimizer's. Gradients are zeroed first. ``backward`` always runs, even on
    a non-finite loss: under DDP every worker must take part in the gradient all-reduce, which then
    spreads a NaN to all workers so that they all reject the same step. A rejected step leaves every
    ``.grad`` at None and the parameters untouched; the caller counts it and goes on. Without an
    optimizer, the caller steps itself when ``ok``. ``max_grad_norm`` clips after the check.
    """
    if params is None:
        if optimizer is None:
            raise ValueError("pacs_step needs params or an optimizer")
        params = [p for grp in optimizer.param_groups for p in grp["params"]]
    params = [p for p in params if p.requires_grad]
    for p in params:
        p.grad = None
    out = pacs_objective(s_theta, s_ref, labels, group_ids, objective)
    actor_norm = critic_norm = None
    actor_param_grads = None
    if decompose_params and s_theta.requires_grad:
        actor_param_grads = torch.autograd.grad(s_theta, params, grad_outputs=out.actor_grad.detach(),
                                                retain_graph=True, allow_unused=True)
    if out.loss.requires_grad:
        out.loss.backward()
    grads = [p.grad for p in params]
    grad_norm = _norm(grads)
    reason = None
    if not math.isfinite(out.metrics.loss):
        reason = f"non-finite loss ({out.metrics.loss})"
    elif not math.isfinite(grad_norm):
        reason = f"non-finite gradient norm ({grad_norm})"
    if reason is not None:
        for p in params:
            p.grad = None
        return StepResult(False, False, reason, grad_norm, None, None, out.metrics)
    if actor_param_grads is not None:
        actor_norm = _norm(actor_param_grads)
        critic_norm = _norm([None if g is None else g - (ag if ag is not None else 0)
                             for g, ag in zip(grads, actor_param_grads)])
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    if optimizer is not None:
        optimizer.step()
    return StepResult(True, optimizer is not None, None, grad_norm, actor_norm, critic_norm, out.metrics)
