"""The logprob-mode training loop: the Ray Train worker function (:func:`train_loop_per_worker`) and the same loop
in one process without Ray (:func:`train_local`, for the benchmark). Both call :func:`.logprob.logprob_step`.

**Prompts by whole groups.** Every worker holds the task's prompt list (plain data from the driver: ids, actor
text, verifier prompt and context). Global step ``t`` takes ``groups_per_step`` prompt ids from the critic loop's
seeded per-epoch permutation (:func:`.train_loop.step_groups`), and worker ``k`` of ``N`` samples the groups at
positions ``k, k + N, ...`` of that list; sampling is seeded per (seed, step, group), so the global batch of a
step is the same for any N, and :func:`.train_loop.ddp_update` makes the update the same as on one worker.

**Checkpoints and resume** as in critic mode (:mod:`.train_loop`'s safetensors checkpoint: model, optimizer,
reference, ``state.json``); a run checkpointed under another actor, task or prompt set is refused. At the end rank
0 measures pass@1 / pass@k on the held-out prompts (toy task), saves the model version (``save_pretrained``
safetensors + tokenizer + ``meta.json``) and registers it with its per-step figures (:mod:`.registry`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import torch

from .logprob import PromptItem, SampleSettings, logprob_step, pass_rates
from .pacs import PACSObjective
from .reference import ReferenceSchedule, snapshot_module
from .train_loop import load_checkpoint, report, save_checkpoint, step_groups


def items_of(config: dict[str, Any], key: str = "items") -> list[PromptItem]:
    return [PromptItem(int(d["group_id"]), d["prompt"], d["verify_prompt"], d.get("context") or {})
            for d in config.get(key) or []]


def sampling_of(config: dict[str, Any]) -> SampleSettings:
    return SampleSettings(int(config["group_size"]), float(config["temperature"]), float(config["top_p"]),
                          int(config["max_new_tokens"]), bool(config["normalise"]))


def my_items(by_id: dict[int, PromptItem], step: int, config: dict[str, Any], rank: int, world: int
             ) -> list[PromptItem]:
    """This worker's whole groups of global step ``step`` (module docstring)."""
    ids = step_groups(list(by_id), step, int(config["groups_per_step"]), int(config["seed"]))
    return [by_id[g] for g in ids[rank::world]]


def _verifier(config: dict[str, Any]) -> Any:
    from .verifiers import VerifierConfig, make_verifier

    v = dict(config["verifier"])
    return make_verifier(VerifierConfig(name=v.pop("name"), options=v.pop("options", {}), **v))


def setup(config: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    """The actor, its tokenizer, optimizer, objective, schedule, verifier and a fresh state for one worker."""
    from .actor import load_actor

    torch.manual_seed(int(config["seed"]))
    bare, tok = load_actor(config["actor_dir"], device)
    bare.eval()
    opt = torch.optim.AdamW([p for p in bare.parameters() if p.requires_grad], lr=float(config["lr"]),
                            weight_decay=float(config["weight_decay"]))
    objective = PACSObjective(beta=float(config["beta"]), class_balance=bool(config["class_balance"]),
                              uniform_groups=config["uniform_groups"], reduction="sum")
    return {"bare": bare, "tok": tok, "opt": opt, "objective": objective,
            "schedule": ReferenceSchedule(int(config["reset_every"])), "reference": None, "verifier": _verifier(config),
            "state": {"step": 0, "applied": 0, "rejected": 0, "history": [], "before": None, "excluded": {},
                      "resumed_from": [], "key": config["state_key"]}}


def evaluate_actor(w: dict[str, Any], config: dict[str, Any], device: torch.device | str) -> dict[str, Any] | None:
    """pass@1 (greedy) and pass@k on the held-out prompts, or None without any."""
    ev = items_of(config, "eval_items")
    if not ev:
        return None
    return pass_rates(w["bare"], w["tok"], w["verifier"], ev, sampling_of(config), int(config["eval_k"]),
                      int(config["seed"]), device)


def run_step(w: dict[str, Any], model: torch.nn.Module, items: list[PromptItem], step: int, config: dict[str, Any],
             world: int, device: torch.device | str) -> dict[str, Any]:
    """One step of either loop; updates ``w["state"]`` (history, exclusions) and the reference."""
    excluded: Counter = Counter()
    row, w["reference"] = logprob_step(
        bare=w["bare"], model=model, tokenizer=w["tok"], opt=w["opt"], objective=w["objective"],
        verifier=w["verifier"], items=items, step=step, seed=int(config["seed"]), sampling=sampling_of(config),
        schedule=w["schedule"], state=w["state"], reference=w["reference"], world=world,
        max_grad_norm=float(config["max_grad_norm"]), method=config["method"], device=device, excluded=excluded)
    st = w["state"]
    for k, v in excluded.items():
        st["excluded"][k] = st["excluded"].get(k, 0) + v
    st["step"] = step
    st["history"].append(row)
    st["schedule"] = w["schedule"].state_dict()
    return row


def train_local(config: dict[str, Any], log_every: int = 0) -> dict[str, Any]:
    """The loop in this process, one worker, no checkpoints (benchmarks/pacs_toy.py): returns the state with
    ``before``/``after`` evaluations."""
    torch.set_num_threads(max(1, int(config.get("threads", 1))))
    w = setup(config, "cpu")
    by_id = {it.group_id: it for it in items_of(config)}
    w["state"]["before"] = config.get("before") or evaluate_actor(w, config, "cpu")
    t0 = time.perf_counter()
    for step in range(1, int(config["steps"]) + 1):
        row = run_step(w, w["bare"], my_items(by_id, step, config, 0, 1), step, config, 1, "cpu")
        if log_every and step % log_every == 0:
            logging.getLogger(__name__).info("step %d: pass rate %.3f, loss %s, %.2f s", step, row["pass_rate"] or 0,
                                             row["loss"], row["seconds"])
    w["state"]["train_seconds"] = time.perf_counter() - t0
    w["state"]["after"] = evaluate_actor(w, config, "cpu")
    w["state"]["model"] = w["bare"]
    return w["state"]


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """The Ray Train worker function (module docstring); ``config["on_step"](step, rank)`` is a test hook."""
    import ray.train
    import ray.train.torch

    from .registry import finish_actor_run

    logging.getLogger("ray.train").setLevel(logging.WARNING)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(max(1, int(config["threads"])))
    device = ray.train.torch.get_device()
    w = setup(config, device)
    bare = w["bare"]
    ckpt = ray.train.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            state, ref_state = load_checkpoint(Path(d), bare, w["opt"])
        if state.get("key") != config["state_key"]:
            raise RuntimeError(f"run {config['run_name']!r} was trained with another actor, task or prompt set; "
                               "use another run name")
        w["schedule"] = ReferenceSchedule.from_state_dict(state["schedule"])
        if ref_state is not None:
            w["reference"] = snapshot_module(bare)
            w["reference"].load_state_dict(ref_state)
        state["resumed_from"].append(state["step"])
        w["state"] = state
    model = ray.train.torch.prepare_model(bare, move_to_device=False) if world > 1 else bare
    state = w["state"]
    if rank == 0 and state["before"] is None:
        state["before"] = evaluate_actor(w, config, device) or {}
    by_id = {it.group_id: it for it in items_of(config)}
    steps, every = int(config["steps"]), int(config["checkpoint_every"])
    on_step: Callable[[int, int], None] | None = config.get("on_step")
    for step in range(state["step"] + 1, steps + 1):
        if on_step is not None:
            on_step(step, rank)
        row = run_step(w, model, my_items(by_id, step, config, rank, world), step, config, world, device)
        report(row, rank, step % every == 0 or step == steps,
               lambda d: save_checkpoint(d, bare, w["opt"], w["reference"], state))

    final: dict[str, Any] = {"done": True, "step": state["step"]}
    if rank == 0:
        final.update(finish_actor_run(config, bare, w["tok"], state, evaluate_actor(w, config, device)))
    # the run's result names the version; a rerun finds it done
    report(final, rank, True, lambda d: save_checkpoint(d, bare, w["opt"], w["reference"], state))
