"""Logprob mode, pure torch (no Ray, no database): group sampling from the actor and one PACS update.

**Sampling, seeded per group.** Each prompt (a *group*) gets ``G`` responses from Hugging Face ``generate``
(KV-cached; bf16 autocast on CUDA only). Sampling is the Gumbel-max trick inside ``generate``: a logits processor
(:class:`GroupSampler`) applies temperature and top-p, then adds Gumbel noise drawn from *the group's own*
``torch.Generator``, seeded by (seed, step, group id), and ``generate`` takes the arg-max — a draw from the
tempered, nucleus-filtered distribution. A group's responses therefore depend only on its seed and the model,
not on which other prompts share the batch or how many workers split the step (up to float rounding of the
logits in another batch shape, which moves an arg-max only on an exact tie). Greedy decoding (pass@1) is the
same call with temperature 0.

**Exclusions (counted, never silently labelled).** A prompt longer than the context left after
``max_new_tokens`` is cut from the left (``truncated_prompts``). A response with no text (only the end-of-sequence
token) failed to generate: it is excluded (``empty_responses``), as is a response the verifier cannot judge
(``verifier_failures``, by reason); a group left with no response is excluded (``failed_groups``).

**The score and the update.** ``s = Σ log π(o_t | q, o_<t)`` over the response tokens (the EOS that ends a
response included: stopping is part of the answer; prompt and padding masked) by :func:`~.pacs.sequence_logprob`,
for the policy and (``K > 1``) the frozen reference; ``K = 1``: the reference is the policy before the update, so
``s_ref = s_θ`` detached. Then :func:`~.train_loop.ddp_update` — the critic mode's update: PACS with the ``"sum"``
reduction, the global class-weight sum all-reduced, DDP's gradient mean rescaled so N workers == 1 worker, NaN/inf
steps rejected on every worker. ``method="rloo"`` swaps the loss for the plain RLOO policy gradient (REINFORCE with
the leave-one-out baseline ``A_i = R_i − mean_{j≠i} R_j``, loss ``−Σ A_i s_i / N``) with everything else equal —
the benchmark's baseline.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch

from .pacs import PACSMetrics, PACSObjective, StepResult, canonical_group_ids, rloo_scores, sequence_logprob
from .reference import ReferenceSchedule
from .train_loop import _all_reduce, ddp_update, history_row
from .verifiers import Verdict, Verifier, VerifyItem, verify


@dataclass(frozen=True)
class SampleSettings:
    group_size: int = 8
    temperature: float = 1.0  # 0: greedy
    top_p: float = 1.0
    max_new_tokens: int = 16
    normalise: bool = False  # s = mean instead of sum of the response tokens' log-probs


@dataclass(frozen=True)
class PromptItem:
    """One prompt of a step (one group): what the actor reads and what the verifier gets."""

    group_id: int
    prompt: str  # the actor's input text
    verify_prompt: str  # the prompt the verifier sees
    context: Mapping[str, Any] = field(default_factory=dict)  # the verifier's context (reference answer ...)


def group_seed(seed: int, step: int, group_id: int) -> int:
    """The sampling seed of one group at one step (independent of the worker and the batch)."""
    h = hashlib.blake2b(f"{seed}:{step}:{group_id}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)


class GroupSampler:
    """A ``generate`` logits processor: temperature, top-p, then Gumbel noise from each group's generator (the
    arg-max that greedy ``generate`` then takes is a sample). ``rows[i]`` is row i's group index."""

    def __init__(self, rows: Sequence[int], seeds: Sequence[int], temperature: float, top_p: float,
                 device: torch.device):
        self.temperature, self.top_p = float(temperature), float(top_p)
        self.rows = torch.as_tensor(list(rows), dtype=torch.long)
        self.slices = []
        for g, s in enumerate(seeds):  # rows of a group are contiguous (repeat_interleave)
            idx = (self.rows == g).nonzero().flatten()
            gen = torch.Generator(device="cpu")
            gen.manual_seed(int(s))
            self.slices.append((int(idx[0]), int(idx[-1]) + 1, gen))
        self.device = device

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        logits = scores.float() / self.temperature  # (B, V)
        if self.top_p < 1.0:
            sorted_l, order = torch.sort(logits, descending=True, dim=-1)
            cum = torch.softmax(sorted_l, -1).cumsum(-1)
            drop_sorted = cum - torch.softmax(sorted_l, -1) >= self.top_p  # keep the smallest set reaching top_p
            drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
            logits = logits.masked_fill(drop, -math.inf)
        logp = torch.log_softmax(logits, -1)
        noise = torch.empty_like(logp, device="cpu")
        for lo, hi, gen in self.slices:  # (G, V) per group, from that group's own stream
            u = torch.rand((hi - lo, logp.shape[-1]), generator=gen, dtype=torch.float32)
            noise[lo:hi] = -torch.log(-torch.log(u.clamp_min(1e-20)))
        return logp + noise.to(logp.device)


@dataclass
class Rollout:
    """The sampled responses of a set of groups, flat (row r = sample r)."""

    group_ids: list[int]  # (N,) the group of each sample
    prompt_ids: list[list[int]]  # (N,) prompt tokens (after left truncation)
    response_ids: list[list[int]]  # (N,) response tokens, the closing EOS included when generated
    texts: list[str]  # (N,) decoded responses, special tokens skipped
    truncated_prompts: int
    generated_tokens: int
    seconds: float

    def __len__(self) -> int:
        return len(self.group_ids)


@torch.no_grad()
def sample(model: Any, tokenizer: Any, items: Sequence[PromptItem], s: SampleSettings, *, seed: int, step: int,
           device: torch.device | str = "cpu", batch_prompts: int = 64) -> Rollout:
    """``s.group_size`` responses per item (module docstring); greedy with one response when temperature is 0."""
    from .actor import context_length

    t0 = time.perf_counter()
    device = torch.device(device)
    greedy = s.temperature <= 0
    g = 1 if greedy else s.group_size
    room = context_length(model) - s.max_new_tokens
    if room < 1:
        raise ValueError(f"max_new_tokens {s.max_new_tokens} leaves no room for a prompt in the actor's "
                         f"{context_length(model)} positions")
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    out = Rollout([], [], [], [], 0, 0, 0.0)
    was_training = model.training
    model.eval()
    for lo in range(0, len(items), batch_prompts):
        chunk = items[lo:lo + batch_prompts]
        enc = [tokenizer(it.prompt, add_special_tokens=False)["input_ids"] for it in chunk]
        out.truncated_prompts += sum(len(e) > room for e in enc)
        enc = [e[-room:] if len(e) > room else e for e in enc]
        enc = [e if e else [eos] for e in enc]  # an empty prompt: start from EOS
        width = max(len(e) for e in enc)
        ids = torch.full((len(enc), width), pad, dtype=torch.long)
        att = torch.zeros((len(enc), width), dtype=torch.long)
        for i, e in enumerate(enc):  # left padding: generation appends on the right
            ids[i, width - len(e):] = torch.tensor(e)
            att[i, width - len(e):] = 1
        ids, att = ids.repeat_interleave(g, 0).to(device), att.repeat_interleave(g, 0).to(device)
        kwargs: dict[str, Any] = {}
        if not greedy:
            seeds = [group_seed(seed, step, it.group_id) for it in chunk]
            kwargs["logits_processor"] = [GroupSampler(torch.arange(len(chunk)).repeat_interleave(g).tolist(),
                                                       seeds, s.temperature, s.top_p, device)]
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            gen = model.generate(input_ids=ids, attention_mask=att, max_new_tokens=s.max_new_tokens, do_sample=False,
                                 num_beams=1, pad_token_id=pad, eos_token_id=eos, use_cache=True,
                                 temperature=None, top_p=None, top_k=None, **kwargs)
        new = gen[:, width:].cpu().tolist()
        for r, toks in enumerate(new):
            resp = []
            for t in toks:
                resp.append(t)
                if t == eos:
                    break
            while resp and resp[-1] == pad and pad != eos:
                resp.pop()
            out.group_ids.append(chunk[r // g].group_id)
            out.prompt_ids.append(enc[r // g])
            out.response_ids.append(resp)
            out.texts.append(tokenizer.decode(resp, skip_special_tokens=True))
            out.generated_tokens += len(resp)
    model.train(was_training)
    out.seconds = time.perf_counter() - t0
    return out


def response_batch(rollout: Rollout, rows: Sequence[int], pad: int, device: torch.device | str = "cpu"
                   ) -> dict[str, torch.Tensor]:
    """Prompt + response of ``rows``, right-padded, with the response mask (prompt and padding 0)."""
    seqs = [rollout.prompt_ids[r] + rollout.response_ids[r] for r in rows]
    t = max(len(x) for x in seqs)
    ids = torch.full((len(rows), t), pad, dtype=torch.long)
    att = torch.zeros((len(rows), t), dtype=torch.long)
    resp = torch.zeros((len(rows), t), dtype=torch.long)
    for i, r in enumerate(rows):
        p, o = rollout.prompt_ids[r], rollout.response_ids[r]
        ids[i, :len(p) + len(o)] = torch.tensor(p + o)
        att[i, :len(p) + len(o)] = 1
        resp[i, len(p):len(p) + len(o)] = 1
    return {"input_ids": ids.to(device), "attention_mask": att.to(device), "response_mask": resp.to(device)}


def scores(model: Any, batch: Mapping[str, torch.Tensor], normalise: bool = False) -> torch.Tensor:
    """s (N,) = Σ (or mean) log π over the response tokens of a :func:`response_batch`."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return sequence_logprob(logits, batch["input_ids"], batch["response_mask"], normalise=normalise)


@dataclass
class Labelled:
    rows: list[int]  # the samples kept, in rollout order
    labels: list[int]  # their R
    passes: int  # label-1 samples among all sampled
    excluded: Counter  # reason -> samples
    failed_groups: int


def label(verifier: Verifier, rollout: Rollout, items: Sequence[PromptItem]) -> Labelled:
    """Verify every non-empty response; exclusions counted (module docstring)."""
    by_id = {it.group_id: it for it in items}
    excluded: Counter = Counter()
    todo = []
    for r, text in enumerate(rollout.texts):
        if not text.strip():
            excluded["empty response"] += 1
        else:
            todo.append(r)
    results = verify(verifier, [VerifyItem(by_id[rollout.group_ids[r]].verify_prompt, rollout.texts[r],
                                           by_id[rollout.group_ids[r]].context) for r in todo]) if todo else []
    rows, labels = [], []
    for r, res in zip(todo, results):
        if isinstance(res, Verdict):
            rows.append(r)
            labels.append(int(res.label))
        else:
            excluded[f"verifier: {res.reason[:80]}"] += 1
    kept = {rollout.group_ids[r] for r in rows}
    failed = len({it.group_id for it in items} - kept)
    return Labelled(rows, labels, sum(labels), excluded, failed)


# ------------------------------------------------------------------------------------------ RLOO baseline
def rloo_step(s_theta: torch.Tensor, s_ref: torch.Tensor | None, labels: torch.Tensor, gids: torch.Tensor,
              params: Sequence[torch.Tensor]) -> StepResult:
    """The RLOO policy gradient with the ``"sum"`` reduction: loss ``−Σ_i A_i s_i`` (ddp_update divides by N)."""
    adv = rloo_scores(labels.to(s_theta.dtype), gids).detach()  # (N,) A_i = R_i − mean of the others
    for p in params:
        p.grad = None
    loss = -(adv * s_theta).sum()
    loss.backward()
    sq = [p.grad.detach().double().pow(2).sum() for p in params if p.grad is not None]
    grad_norm = float(torch.stack(sq).sum().sqrt()) if sq else 0.0
    gid, g = canonical_group_ids(gids)
    pos = torch.zeros(g, dtype=torch.float64).index_add(0, gid, labels.double())
    n = torch.bincount(gid, minlength=g)
    metrics = PACSMetrics(loss=float(loss.detach()), psi_mean=float(adv.mean()), r_hat_mean=0.0,
                          label_rate=float(labels.float().mean()),
                          accuracy=float(((adv > 0).float() == labels.float()).double().mean()), entropy=0.0,
                          actor_grad_norm=float(adv.norm()), critic_grad_norm=0.0, coupling_ratio=0.0,
                          num_samples=int(labels.numel()), num_groups=g, num_mixed_groups=int(((pos > 0) & (pos < n)).sum()))
    ok = math.isfinite(float(loss.detach())) and math.isfinite(grad_norm)
    if not ok:
        for p in params:
            p.grad = None
    return StepResult(ok, False, None if ok else "non-finite", grad_norm, None, None, metrics)


# ------------------------------------------------------------------------------------------ the step
EXTRA = ("responses", "passes", "response_tokens", "empty_responses", "verifier_failures", "failed_groups",
         "truncated_prompts", "sampled_groups")


def logprob_step(*, bare: torch.nn.Module, model: torch.nn.Module, tokenizer: Any, opt: torch.optim.Optimizer,
                 objective: PACSObjective, verifier: Verifier, items: Sequence[PromptItem], step: int, seed: int,
                 sampling: SampleSettings, schedule: ReferenceSchedule, state: dict[str, Any],
                 reference: torch.nn.Module | None, world: int = 1, max_grad_norm: float = 1.0,
                 method: str = "pacs", device: torch.device | str = "cpu",
                 excluded: Counter | None = None) -> tuple[dict[str, Any], torch.nn.Module | None]:
    """One logprob-mode step on this worker's ``items`` (its whole groups of the global step); every worker calls
    it once per step (``items`` may be empty). Returns (the step's row of figures, the reference to keep).

    ``bare`` is the plain model (sampling, reference), ``model`` the same wrapped for DDP (or ``bare``);
    ``state["applied"]``/``state["rejected"]`` are counted here; ``excluded`` collects exclusion reasons."""
    t0 = time.perf_counter()
    device = torch.device(device)
    ro = sample(bare, tokenizer, list(items), sampling, seed=seed, step=step, device=device) if items else \
        Rollout([], [], [], [], 0, 0, 0.0)
    lab = label(verifier, ro, items) if items else Labelled([], [], 0, Counter(), 0)
    if excluded is not None:
        excluded.update(lab.excluded)
    bare.eval()  # no dropout: s_θ and s_ref come from the same function
    if lab.rows:
        batch = response_batch(ro, lab.rows, tokenizer.pad_token_id, device)
        labels = torch.tensor(lab.labels, dtype=torch.float32, device=device)
        gids = torch.tensor([ro.group_ids[r] for r in lab.rows], device=device)
    else:  # nothing to learn from here: a dummy forward, loss × 0 (DDP needs every worker in the all-reduce)
        eos = tokenizer.eos_token_id
        batch = {"input_ids": torch.tensor([[eos, eos]], device=device),
                 "attention_mask": torch.ones((1, 2), dtype=torch.long, device=device),
                 "response_mask": torch.tensor([[0, 1]], device=device)}
        labels = gids = None
    s_theta = scores(model, batch, sampling.normalise)
    s_ref = None
    if labels is not None and method == "pacs":
        if schedule.reset_every == 1:
            s_ref = s_theta.detach()  # the policy before this update (reference.py)
        else:
            reference, _ = schedule.maybe_refresh(state["applied"], bare, reference)
            with torch.no_grad():
                s_ref = scores(reference, batch, sampling.normalise)
    rloo = method == "rloo"
    upd = ddp_update(bare, opt, objective, s_theta, s_ref, labels, gids, world, max_grad_norm,
                     weights=torch.ones_like(labels) if rloo and labels is not None else None,
                     step_fn=rloo_step if rloo else None)
    if upd.ok:
        state["applied"] = state.get("applied", 0) + 1
    else:
        state["rejected"] = state.get("rejected", 0) + 1
    extra = torch.tensor([len(ro), lab.passes, sum(len(r) for r in ro.response_ids),
                          lab.excluded.get("empty response", 0),
                          sum(v for k, v in lab.excluded.items() if k.startswith("verifier")), lab.failed_groups,
                          ro.truncated_prompts, len(items)], dtype=torch.float64)
    extra = _all_reduce(extra, world)
    gen_s = float(-_all_reduce(torch.tensor([-ro.seconds], dtype=torch.float64), world, "min")[0])  # slowest worker
    row = history_row(step, upd, t0)
    e = dict(zip(EXTRA, (int(v) for v in extra.tolist())))
    row.update(e)
    row.update({"pass_rate": e["passes"] / e["responses"] if e["responses"] else None,
                "mean_response_len": e["response_tokens"] / e["responses"] if e["responses"] else None,
                "gen_seconds": round(gen_s, 6), "gen_tokens_per_s": round(e["response_tokens"] / gen_s, 2) if gen_s else None,
                "samples_per_s": round(e["responses"] / row["seconds"], 3) if row["seconds"] else None})
    return row, reference


# ------------------------------------------------------------------------------------------ evaluation
def pass_rates(model: Any, tokenizer: Any, verifier: Verifier, items: Sequence[PromptItem], sampling: SampleSettings,
               k: int, seed: int, device: torch.device | str = "cpu") -> dict[str, float]:
    """pass@1 (greedy) and pass@k (k samples at the sampling temperature: any verified good) over ``items``."""
    greedy = sample(model, tokenizer, items, SampleSettings(1, 0.0, 1.0, sampling.max_new_tokens), seed=seed, step=0,
                    device=device)
    g = label(verifier, greedy, items)
    out = {"pass1": g.passes / max(1, len(items)), "n": len(items)}
    if k > 0:
        ro = sample(model, tokenizer, items, SampleSettings(k, sampling.temperature, sampling.top_p,
                                                             sampling.max_new_tokens), seed=seed, step=-1, device=device)
        lab = label(verifier, ro, items)
        good = {ro.group_ids[r] for r, y in zip(lab.rows, lab.labels) if y == 1}
        out[f"pass{k}"] = len(good) / max(1, len(items))
        out["passk"] = out[f"pass{k}"]
        out["sample_pass_rate"] = lab.passes / max(1, len(ro))
    return out

