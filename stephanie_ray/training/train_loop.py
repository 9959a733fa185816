"""The critic's training loop, run by every Ray Train worker (:func:`train_loop_per_worker`).

**Data.** Each worker gets a shard of *whole groups* (the driver packed the Parquet's rows into one Ray
Data row per group, so Ray's split can never cut a group: PACS's baseline and class weights are per group).
The workers all-gather their group ids once; the global order of groups is a seeded permutation per epoch,
and step ``t`` takes the next ``groups_per_step`` groups of it. A worker trains on those of the step's groups
it holds. The global batch of a step is therefore the same whatever the number of workers or which worker
holds which group, and a resumed run repeats exactly the steps it would have taken.

**One step, N workers = one step, one worker.** Each worker computes the PACS objective with the ``"sum"``
reduction (``Σ_i w_i ℓ_i`` over its groups); the class weights depend only on labels and groups, so the
global ``W = Σ w`` is all-reduced before the backward pass. DDP averages gradients (``1/N Σ_k ∇L_k``);
multiplying by ``N / W`` gives ``Σ_k ∇L_k / W``, exactly the gradient of the ``"sample"`` reduction over the
whole batch. A worker with none of the step's groups still runs a forward and backward pass with a zero loss
(DDP needs every worker in every all-reduce). The NaN/inf check of :func:`~.pacs.pacs_step` runs after the
all-reduce, so all workers reject the same step.

**Reference** (K = ``pacs.reference_reset("critic")``, 20 unless ``pacs.reset_every`` is set). K = 1:
``s_ref = s_θ`` detached (the policy before the update, the
authors' code; no copy kept). ``K > 1``: a frozen copy refreshed every K applied updates
(:class:`~.reference.ReferenceSchedule`), saved in checkpoints.

**Checkpoints** (every ``checkpoint_every`` steps and at the end; rank 0 writes them): the model, the
optimizer state and the reference as safetensors, and ``state.json`` (step, schedule, per-step history,
the validation figures before training). Never a pickle. Metrics go to ``ray.train.report`` every step.

**At the end** rank 0 evaluates on the validation split, fits the calibrator, saves the model version
(:func:`.critic.save_version`) and writes it and the per-step history to the database (:mod:`.registry`).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .critic import FinetuneCritic, FrozenCritic, tokenize_pairs
from .pacs import PACSObjective, class_balanced_weights, pacs_step
from .reference import ReferenceSchedule, snapshot_module

STATE_FILE = "state.json"


@dataclass
class Group:
    """One group as a worker holds it (its rows in order)."""

    group_id: int
    row_ids: np.ndarray  # (n,)
    labels: np.ndarray  # (n,)
    x: np.ndarray | None = None  # (n, 4d) frozen pair features
    prompts: list[str] | None = None  # finetune
    responses: list[str] | None = None


def step_groups(all_ids: list[int], step: int, per_step: int, seed: int) -> list[int]:
    """The group ids of global step ``step`` (1-based): the next chunk of a seeded per-epoch permutation."""
    ids = sorted(all_ids)
    per_epoch = math.ceil(len(ids) / per_step)
    epoch, k = divmod(step - 1, per_epoch)
    perm = np.random.default_rng([seed, epoch]).permutation(len(ids))
    return [ids[i] for i in perm[k * per_step:(k + 1) * per_step]]


def groups_from_batch(batch: dict[str, Any]) -> list[Group]:
    """Packed Ray Data rows (one per group; see trainer.pack_group) -> :class:`Group`."""
    out = []
    for i in range(len(batch["group_id"])):
        n = int(batch["n"][i])
        x = None
        if "x" in batch:
            x = np.frombuffer(batch["x"][i], dtype=np.float32).reshape(n, -1)
        out.append(Group(int(batch["group_id"][i]), np.asarray(batch["row_ids"][i], dtype=np.int64),
                         np.asarray(batch["labels"][i], dtype=np.int64), x,
                         list(batch["prompts"][i]) if "prompts" in batch else None,
                         list(batch["responses"][i]) if "responses" in batch else None))
    return out


def build_model(config: dict[str, Any]) -> torch.nn.Module:
    torch.manual_seed(int(config["seed"]))  # every worker starts from the same weights
    if config["backbone"] == "frozen":
        return FrozenCritic(int(config["dim"]), int(config["hidden"]))
    return FinetuneCritic(config["encoder_source"])


class Inputs:
    """Turns groups into the model's inputs (frozen: a feature matrix; finetune: tokenised pairs)."""

    def __init__(self, config: dict[str, Any]):
        self.backbone = config["backbone"]
        self.max_length = int(config["max_length"])
        self.tokenizer = None
        if self.backbone == "finetune":
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(config["encoder_source"])

    def __call__(self, groups: list[Group], device: torch.device) -> dict[str, torch.Tensor]:
        if self.backbone == "frozen":
            return {"x": torch.from_numpy(np.concatenate([g.x for g in groups])).to(device)}
        prompts = [p for g in groups for p in g.prompts]
        responses = [r for g in groups for r in g.responses]
        return {k: v.to(device) for k, v in tokenize_pairs(self.tokenizer, prompts, responses,
                                                           self.max_length).items()}

    def dummy(self, dim: int, device: torch.device) -> dict[str, torch.Tensor]:
        """One input row for a worker with nothing this step (its loss is multiplied by 0)."""
        if self.backbone == "frozen":
            return {"x": torch.zeros((1, 4 * dim), device=device)}
        return {k: v.to(device) for k, v in tokenize_pairs(self.tokenizer, ["."], ["."], self.max_length).items()}


def _forward(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(inputs["x"]) if "x" in inputs else model(**inputs)


# ------------------------------------------------------------------------------------------ checkpoints
def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    seen: set[int] = set()
    out = {}
    for k, v in tensors.items():
        v = v.detach().cpu().contiguous()
        if v.data_ptr() in seen and v.numel():  # tied weights (an LM's embedding and head): safetensors refuses shared memory
            v = v.clone()
        seen.add(v.data_ptr())
        out[k] = v
    save_file(out, str(path))


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer's state as safetensors-ready tensors plus JSON (param groups, scalar state)."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"{idx}.{key}"] = val
            else:
                scalars[f"{idx}.{key}"] = val
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], extra: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, val in list(tensors.items()) + list(extra["scalars"].items()):
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = val
    opt.load_state_dict({"state": state, "param_groups": extra["param_groups"]})


def save_checkpoint(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer,
                    reference: torch.nn.Module | None, state: dict[str, Any]) -> None:
    _save_tensors(dict(model.state_dict()), path / "model.safetensors")
    ot, oj = optimizer_tensors(opt)
    _save_tensors(ot, path / "optimizer.safetensors")
    (path / "optimizer.json").write_text(json.dumps(oj), encoding="utf-8")
    if reference is not None:
        _save_tensors(dict(reference.state_dict()), path / "reference.safetensors")
    (path / STATE_FILE).write_text(json.dumps(state, default=float), encoding="utf-8")


def load_checkpoint(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer
                    ) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(path / "model.safetensors")))
    load_optimizer(opt, load_file(str(path / "optimizer.safetensors")),
                   json.loads((path / "optimizer.json").read_text(encoding="utf-8")))
    ref = load_file(str(path / "reference.safetensors")) if (path / "reference.safetensors").is_file() else None
    return json.loads((path / STATE_FILE).read_text(encoding="utf-8")), ref


# ------------------------------------------------------------------------------------------ the loop
def report(row: dict[str, Any], rank: int, with_checkpoint: bool, save: Callable[[Path], None]) -> None:
    """``ray.train.report`` of one step's figures; with a checkpoint, rank 0 writes it with ``save(folder)``."""
    import ray.train

    if not with_checkpoint:
        ray.train.report(row)
        return
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if rank == 0:
            save(Path(tmp))
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(row, checkpoint=checkpoint)


def _all_reduce(t: torch.Tensor, world: int, op: str = "sum") -> torch.Tensor:
    if world > 1:
        import torch.distributed as dist

        dist.all_reduce(t, op=dist.ReduceOp.MIN if op == "min" else dist.ReduceOp.SUM)
    return t


def _gather_ids(ids: list[int], world: int) -> list[int]:
    if world == 1:
        return sorted(ids)
    import torch.distributed as dist

    parts: list[Any] = [None] * world
    dist.all_gather_object(parts, ids)
    return sorted(i for p in parts for i in p)


def _val_rows(shard: Any) -> dict[str, np.ndarray]:
    ys, gs, xs, ps, rs = [], [], [], [], []
    for b in shard.iter_batches(batch_size=1024, batch_format="numpy"):
        ys.append(b["label"].astype(np.int64))
        gs.append(b["group_id"].astype(np.int64))
        if "x" in b:
            xs.append(np.stack([np.frombuffer(v, dtype=np.float32) for v in b["x"]]))
        if "critic_prompt" in b:
            ps += list(b["critic_prompt"])
            rs += list(b["response"])
    out = {"y": np.concatenate(ys) if ys else np.zeros(0, np.int64),
           "group": np.concatenate(gs) if gs else np.zeros(0, np.int64), "prompts": ps, "responses": rs}
    if xs:
        out["x"] = np.concatenate(xs)
    return out


# ------------------------------------------------------------------------------------------ one update
@dataclass
class Update:
    """What :func:`ddp_update` did on every worker (the figures are all-reduced, so the same everywhere)."""

    ok: bool  # applied (False: rejected for NaN/inf, or no weight anywhere)
    grad_norm: float  # before clipping; nan when rejected
    stats: torch.Tensor  # (12,) all-reduced sums: see history_row
    weight_sum: float  # global Σ w


StepFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]], Any]


def ddp_update(bare: torch.nn.Module, opt: torch.optim.Optimizer, objective: PACSObjective, s_theta: torch.Tensor,
               s_ref: torch.Tensor | None, labels: torch.Tensor | None, gids: torch.Tensor | None, world: int,
               max_grad_norm: float, *, weights: torch.Tensor | None = None, step_fn: StepFn | None = None) -> Update:
    """One PACS update over this worker's groups, such that N workers == 1 worker (module docstring).

    ``s_theta`` comes from the (DDP-wrapped) model; ``labels`` None: this worker has nothing this step and
    ``s_theta`` is a dummy forward whose loss is 0. ``weights`` (default: the objective's class weights) give the
    global normaliser ``W``; ``step_fn(s_theta, s_ref, labels, gids, params) -> StepResult`` replaces
    :func:`~.pacs.pacs_step` for another ``"sum"``-reduced loss (the RLOO baseline of logprob mode)."""
    params = list(bare.parameters())
    stats = torch.zeros(12, dtype=torch.float64)
    if labels is not None:
        if weights is None:
            weights = class_balanced_weights(labels, gids, objective.uniform_groups) if objective.class_balance \
                else torch.ones_like(labels)
        stats[1] = float(weights.sum())
    weight_sum = float(_all_reduce(stats[1:2].clone(), world)[0])
    if labels is not None:
        res = (step_fn or (lambda s, r, y, g, ps: pacs_step(s, r, y, g, objective, params=ps)))(
            s_theta, s_ref, labels, gids, params)
        m = res.metrics
        n = m.num_samples
        stats[:] = torch.tensor([m.loss, stats[1], n, m.num_groups, m.num_mixed_groups, m.accuracy * n,
                                 m.entropy * n, m.psi_mean * n, m.r_hat_mean * n, m.label_rate * n,
                                 m.actor_grad_norm ** 2, m.critic_grad_norm ** 2], dtype=torch.float64)
        ok = res.ok
    else:
        for p in params:
            p.grad = None
        (s_theta.sum() * 0.0).backward()
        grads = [p.grad for p in params if p.grad is not None]
        ok = all(bool(torch.isfinite(g).all()) for g in grads)
    stats = _all_reduce(stats, world)
    ok = bool(_all_reduce(torch.tensor([1.0 if ok else 0.0]), world, "min")[0] > 0) and weight_sum > 0
    grad_norm = float("nan")
    if ok:
        scale = world / weight_sum  # DDP averaged the per-worker Σ w ℓ gradients: make it Σ_k ∇L_k / W
        for p in params:
            if p.grad is not None:
                p.grad.mul_(scale)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_grad_norm or float("inf")))
        opt.step()
    for p in params:
        p.grad = None
    return Update(ok, grad_norm, stats, weight_sum)


def history_row(step: int, upd: Update, t0: float) -> dict[str, Any]:
    """The per-step figures (state.json's history, ``ray.train.report``, the training_stats rows)."""
    stats, weight_sum, ok = upd.stats, upd.weight_sum, upd.ok
    ns = max(float(stats[2]), 1.0)
    a_sq, c_sq = float(stats[10]), float(stats[11])
    return {"step": step, "ok": ok, "loss": float(stats[0]) / weight_sum if weight_sum else None,
            "psi_mean": float(stats[7]) / ns, "r_hat_mean": float(stats[8]) / ns, "accuracy": float(stats[5]) / ns,
            "entropy": float(stats[6]) / ns, "label_rate": float(stats[9]) / ns,
            "coupling_ratio": math.sqrt(c_sq / a_sq) if a_sq > 0 else None,
            "actor_grad_norm": math.sqrt(a_sq) / weight_sum if weight_sum else None,
            "critic_grad_norm": math.sqrt(c_sq) / weight_sum if weight_sum else None,
            "grad_norm": upd.grad_norm if ok else None, "samples": int(stats[2]), "groups": int(stats[3]),
            "mixed_groups": int(stats[4]), "seconds": round(time.perf_counter() - t0, 6)}


@torch.no_grad()
def val_scores(model: torch.nn.Module, inputs: Inputs, val: dict[str, Any], device: torch.device,
               batch: int = 256) -> np.ndarray:
    model.eval()
    out = []
    n = val["y"].size
    for i in range(0, n, batch):
        if "x" in val:
            feed = {"x": torch.from_numpy(val["x"][i:i + batch]).to(device)}
        else:
            feed = {k: v.to(device) for k, v in tokenize_pairs(inputs.tokenizer, val["prompts"][i:i + batch],
                                                               val["responses"][i:i + batch],
                                                               inputs.max_length).items()}
        out.append(_forward(model, feed).float().cpu().numpy())
    model.train()
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """The Ray Train worker function (module docstring). ``config`` is plain data from the driver, plus an
    optional ``on_step(step, rank)`` hook (tests use it to kill a worker mid-run)."""
    import ray.train
    import ray.train.torch

    from .evaluate import evaluate
    from .registry import finish_run

    import logging

    logging.getLogger("ray.train").setLevel(logging.WARNING)  # not one "Reporting training result" line per step
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(max(1, int(config["threads"])))
    device = ray.train.torch.get_device()
    groups = {}
    for b in ray.train.get_dataset_shard("train").iter_batches(batch_size=256, batch_format="numpy"):
        for g in groups_from_batch(b):
            groups[g.group_id] = g
    all_ids = _gather_ids(list(groups), world)
    val = _val_rows(ray.train.get_dataset_shard("val")) if rank == 0 else None

    bare = build_model(config).to(device)
    inputs = Inputs(config)
    lr = float(config["lr"])
    opt = torch.optim.AdamW([p for p in bare.parameters() if p.requires_grad], lr=lr,
                            weight_decay=float(config["weight_decay"]))
    objective = PACSObjective(beta=float(config["beta"]), class_balance=bool(config["class_balance"]),
                              uniform_groups=config["uniform_groups"], reduction="sum")
    schedule = ReferenceSchedule(int(config["reset_every"]))
    reference: torch.nn.Module | None = None
    state: dict[str, Any] = {"step": 0, "applied": 0, "rejected": 0, "history": [], "before": None,
                             "dataset_hash": config["dataset_hash"], "resumed_from": []}
    ckpt = ray.train.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            state, ref_state = load_checkpoint(Path(d), bare, opt)
        if state.get("dataset_hash") != config["dataset_hash"]:
            raise RuntimeError(f"run {config['run_name']!r} was trained on another dataset; use another run name")
        schedule = ReferenceSchedule.from_state_dict(state["schedule"])
        if ref_state is not None:
            reference = snapshot_module(bare)
            reference.load_state_dict(ref_state)
        state["resumed_from"].append(state["step"])
    model = ray.train.torch.prepare_model(bare) if world > 1 else bare
    if rank == 0 and state["before"] is None:  # the validation figures of the untrained critic
        state["before"] = {"scores": val_scores(bare, inputs, val, device).tolist()}

    steps, every = int(config["steps"]), int(config["checkpoint_every"])
    on_step: Callable[[int, int], None] | None = config.get("on_step")
    for step in range(state["step"] + 1, steps + 1):
        t0 = time.perf_counter()
        if on_step is not None:
            on_step(step, rank)
        mine = [groups[g] for g in step_groups(all_ids, step, int(config["groups_per_step"]), int(config["seed"]))
                if g in groups]
        if mine:
            labels = torch.from_numpy(np.concatenate([g.labels for g in mine])).to(device).float()  # (n,)
            gids = torch.from_numpy(np.concatenate([np.full(g.labels.size, g.group_id) for g in mine])).to(device)
        feed = inputs(mine, device) if mine else inputs.dummy(int(config.get("dim", 0)), device)
        if schedule.reset_every > 1:  # on every worker, groups this step or not: all hold the same reference
            reference, _ = schedule.maybe_refresh(state["applied"], bare, reference)
        s_theta = _forward(model, feed)  # (n,)
        s_ref = None
        if mine:
            if schedule.reset_every == 1:
                s_ref = s_theta.detach()  # the policy before this update (reference.py)
            else:
                with torch.no_grad():
                    s_ref = _forward(reference, feed)
        upd = ddp_update(bare, opt, objective, s_theta, s_ref, labels if mine else None, gids if mine else None,
                         world, float(config["max_grad_norm"]))
        if upd.ok:
            state["applied"] += 1
        else:
            state["rejected"] += 1
        row = history_row(step, upd, t0)
        state["step"] = step
        state["history"].append(row)
        state["schedule"] = schedule.state_dict()
        report(row, rank, step % every == 0 or step == steps,
               lambda d: save_checkpoint(d, bare, opt, reference, state))

    final: dict[str, Any] = {"done": True, "step": state["step"]}
    if rank == 0:
        scores = val_scores(bare, inputs, val, device)
        before_eval, _ = evaluate(val["y"], np.asarray(state["before"]["scores"]), val["group"], config["calibrator"])
        after_eval, calibrator = evaluate(val["y"], scores, val["group"], config["calibrator"])
        final.update(finish_run(config, bare, inputs.tokenizer, calibrator, state, before_eval, after_eval,
                                val, np.asarray(state["before"]["scores"]), scores))
    # The last report carries a checkpoint, so that the run's result (Ray Train keeps the metrics of the
    # latest checkpoint) names the model version, and a rerun of the same run name finds it done.
    report(final, rank, True, lambda d: save_checkpoint(d, bare, opt, reference, state))
