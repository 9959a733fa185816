"""``stephanie train --mode logprob``: the driver of logprob mode on Ray Train (the policy itself is trained).

1. **Task and actor.** ``toy-arith`` (:mod:`.toy_arith`): addition prompts, the ``math`` verifier, held-out
   problems for pass@1 / pass@k before and after. ``casebooks``: one prompt per training group of the PACS
   dataset (the real requests; the actor reads the conversation context, then ``user: <prompt>``, then
   ``assistant:``), labelled by the trained critic (verifier ``critic``: ``verifier.critic_model`` or the newest
   critic version; none is a clear error). The actor is ``logprob.actor`` (a hub name or a directory) or the
   offline default (:func:`.actor.cached_actor`: built from the config, tokenizer trained on the task's texts,
   warmed up on the task's (prompt, answer) pairs — the dataset's own responses for ``casebooks``).
2. **Ray Train.** A :class:`ray.train.torch.TorchTrainer` with ``logprob.workers`` workers runs
   :func:`.logprob_loop.train_loop_per_worker` (prompt list, actor directory and verifier settings travel as plain
   config); ``RunConfig(name, storage_path)`` keeps checkpoints, the same run name resumes, ``FailureConfig``
   restarts a failed worker group from the last checkpoint.
3. Rank 0 registers the model version (kind ``pacs_actor``); here the curves are drawn (pass rate of the sampled
   groups, loss, ψ, coupling ratio) and the report's section written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..config import StephanieConfig
from ..db import Database
from ..errors import UserError

log = logging.getLogger(__name__)

TRAIN_FIGURE = "pacs_logprob_training.png"
PANELS = (("pass_rate", "pass rate of the sampled groups"), ("loss", "PACS loss (weighted BCE)"),
          ("psi_mean", "mean ψ"), ("coupling_ratio", "coupling ratio ‖critic‖/‖actor‖"))


@dataclass
class LogprobResult:
    """What ``stephanie train --mode logprob`` did."""

    mode: str = "logprob"
    task: str = ""
    actor: str = ""
    model_version: int = 0
    path: str = ""
    reused: bool = False
    run_name: str = ""
    checkpoint: str = ""
    dataset_version: int | None = None
    method: str = "pacs"
    workers: int = 1
    steps: int = 0
    group_size: int = 0
    final: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=dict)  # before/after: pass@1 (greedy), pass@k
    pass_rate_first: float | None = None  # of the sampled groups, first and last step
    pass_rate_last: float | None = None
    samples_per_s: float = 0.0
    gen_tokens_per_s: float = 0.0
    seconds_per_step: float = 0.0
    rejected_steps: int = 0
    excluded: dict[str, int] = field(default_factory=dict)
    truncated_prompts: int = 0
    resumed_from: list[int] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def counts(self) -> dict[str, Any]:
        d = {k: v for k, v in self.to_dict().items() if not isinstance(v, (dict, list))}
        d["rejected_steps_skipped"] = d.pop("rejected_steps")
        d["truncated_prompts_skipped"] = d.pop("truncated_prompts")
        d["skipped"] = dict(self.excluded)
        return d


# ------------------------------------------------------------------------------------------ tasks
def actor_prompt(prompt: str, context: str) -> str:
    """What the actor reads for a chat request: the conversation context, the request, the answer's cue."""
    return (context.strip() + "\n" if context and context.strip() else "") + f"user: {prompt.strip()}\nassistant:"


def toy_task(cfg: StephanieConfig) -> dict[str, Any]:
    from . import toy_arith as ta

    lc = cfg.logprob
    train = ta.problems(lc.toy_problems, lc.toy_digits, lc.actor_seed, "train")
    ev = ta.problems(lc.eval_problems, lc.toy_digits, lc.actor_seed, "eval")
    item = lambda p: {"group_id": p.pid, "prompt": p.prompt, "verify_prompt": p.prompt,  # noqa: E731
                      "context": {"reference": p.reference}}
    actor_dir = lc.actor or str(ta.toy_actor(lc, cfg.run.runs_path))
    return {"items": [item(p) for p in train], "eval_items": [item(p) for p in ev], "actor_dir": actor_dir,
            "verifier": {"name": "math", "math_rel_tol": cfg.verifier.math_rel_tol,
                         "math_abs_tol": cfg.verifier.math_abs_tol},
            "dataset_version": None, "data_key": f"toy-arith:{lc.toy_digits}:{lc.toy_problems}:{lc.actor_seed}"}


def casebooks_task(cfg: StephanieConfig, db: Database) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from .actor import cached_actor
    from .critic import resolve_version
    from .dataset import load_dataset_version

    lc = cfg.logprob
    with db.session() as s:
        dv = load_dataset_version(s, lc.dataset)
        dv_id, dv_path, dv_hash = dv.id, dv.path, dv.content_hash
        _, critic_dir = resolve_version(s, cfg.verifier.critic_model or None)
    t = pq.read_table(dv_path, columns=["group_id", "row_id", "prompt", "context", "response", "split"]).to_pylist()
    train = sorted((r for r in t if r["split"] == "train"), key=lambda r: (r["group_id"], r["row_id"]))
    if not train:
        raise UserError(f"dataset version {dv_id} has no training rows")
    items: dict[int, dict[str, Any]] = {}
    for r in train:
        items.setdefault(int(r["group_id"]), {"group_id": int(r["group_id"]),
                                              "prompt": actor_prompt(r["prompt"], r["context"] or ""),
                                              "verify_prompt": r["prompt"], "context": {"context": r["context"] or ""}})
    opts = {"model": str(critic_dir), "threshold": cfg.verifier.critic_threshold, "embedding": asdict(cfg.embedding)}
    from .verifiers import VerifierConfig, make_verifier

    make_verifier(VerifierConfig(name="critic", options=opts))  # a missing or corrupt critic: one clear error, here
    actor_dir = lc.actor
    if not actor_dir:
        pairs = [(actor_prompt(r["prompt"], r["context"] or ""), " " + r["response"]) for r in train]
        actor_dir = str(cached_actor(cfg.run.runs_path, f"casebooks-d{dv_id}", {"task": "casebooks", "data": dv_hash},
                                     [p + a for p, a in pairs], pairs, lc))
    return {"items": list(items.values()), "eval_items": [], "actor_dir": actor_dir,
            "verifier": {"name": "critic", "options": opts}, "dataset_version": dv_id, "data_key": f"casebooks:{dv_hash}"}


def check_actor(actor_dir: str) -> str:
    """Load the actor once here so that a missing or incompatible one is one clear error before Ray starts;
    returns its display name."""
    from .actor import load_actor

    model, _ = load_actor(actor_dir)
    del model
    return actor_dir if not Path(actor_dir).expanduser().is_dir() else Path(actor_dir).name


def worker_config(cfg: StephanieConfig, task: dict[str, Any], run_dir: Path, run_id: int | None = None
                  ) -> dict[str, Any]:
    """The plain-data config every worker gets (and :func:`.logprob_loop.train_local`)."""
    lc = cfg.logprob
    loop_keys = ("method", "group_size", "groups_per_step", "steps", "lr", "weight_decay", "max_grad_norm",
                 "temperature", "top_p", "max_new_tokens", "normalise", "eval_k", "checkpoint_every", "seed")
    config = {k: getattr(lc, k) for k in loop_keys}
    config.update({"task": lc.task, "beta": cfg.pacs.beta, "reset_every": cfg.pacs.reference_reset("logprob"),
                   "class_balance": cfg.pacs.class_balance, "uniform_groups": cfg.pacs.uniform_groups,
                   "threads": max(1, int(lc.cpus_per_worker)), "workers": lc.workers, "db_url": cfg.db_url,
                   "models_dir": str(run_dir.resolve()), "run_id": run_id, **task})
    key = {k: v for k, v in config.items() if k in ("actor_dir", "data_key", "seed", "groups_per_step", "group_size")}
    config["state_key"] = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return config


def default_run_name(cfg: StephanieConfig, config: dict[str, Any]) -> str:
    """The same task, actor and settings give the same name, so the same command resumes (steps, workers and
    checkpointing may change between reruns: the schedule of prompts and samples does not depend on them)."""
    skip = ("steps", "workers", "threads", "checkpoint_every", "db_url", "models_dir", "run_id", "items", "eval_items")
    c = {k: v for k, v in config.items() if k not in skip}
    digest = hashlib.sha256(json.dumps(c, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"logprob-{cfg.logprob.task}-{digest}"


def train_logprob(cfg: StephanieConfig, db: Database, run_dir: Path, run_id: int | None = None, *,
                  on_step: Callable[[int, int], None] | None = None) -> LogprobResult:
    """Train (or resume, or find) the actor for the configured task; draw its figures."""
    from ..ray_utils import ensure_ray
    from .trainer import fit_on_ray_train, train_storage

    t0 = time.perf_counter()
    lc = cfg.logprob
    task = toy_task(cfg) if lc.task == "toy-arith" else casebooks_task(cfg, db)
    name = check_actor(task["actor_dir"])
    task["actor_name"] = lc.actor or name
    config = worker_config(cfg, task, run_dir, run_id)
    run_name = lc.run_name or default_run_name(cfg, config)
    storage = train_storage(cfg, lc.storage_path)
    config.update({"run_name": run_name, "checkpoint_dir": str(storage / run_name)})
    if on_step is not None:
        config["on_step"] = on_step
    log.info("logprob: task %s, actor %s, %d prompts (%.1f s)", lc.task, task["actor_name"], len(task["items"]),
             time.perf_counter() - t0)
    ensure_ray(cfg.ray)
    result, m = fit_on_ray_train("logprob", _loop(), config, run_name, storage, lc)
    from .registry import ACTOR_KIND, training_stats

    with db.session() as s:
        stats = training_stats(s, int(m["model_version"]), ACTOR_KIND, all_figures=True)
    meta = json.loads((Path(m["path"]) / "meta.json").read_text(encoding="utf-8"))
    ok = [r for r in stats if r["ok"]]
    secs = sum(r["seconds"] for r in stats)
    gen_s = sum(r.get("gen_seconds") or 0.0 for r in stats)
    rates = [r.get("pass_rate") for r in stats if r.get("pass_rate") is not None]
    out = LogprobResult(task=lc.task, actor=task["actor_name"], model_version=int(m["model_version"]), path=m["path"],
                        reused=bool(m.get("reused")), run_name=run_name,
                        checkpoint=str(result.checkpoint.path) if result.checkpoint else "",
                        dataset_version=task["dataset_version"], method=lc.method, workers=lc.workers,
                        steps=int(m["step"]), group_size=lc.group_size, final=stats[-1] if stats else {},
                        eval=m.get("eval", {}), pass_rate_first=rates[0] if rates else None,
                        pass_rate_last=rates[-1] if rates else None,
                        samples_per_s=round(sum(r.get("responses", 0) for r in ok) / secs, 2) if secs else 0.0,
                        gen_tokens_per_s=round(sum(r.get("response_tokens", 0) for r in stats) / gen_s, 1) if gen_s else 0.0,
                        seconds_per_step=round(secs / len(stats), 4) if stats else 0.0,
                        rejected_steps=len(stats) - len(ok), excluded=dict(meta["metrics"].get("excluded", {})),
                        truncated_prompts=sum(int(r.get("truncated_prompts", 0)) for r in stats),
                        resumed_from=list(meta["metrics"].get("resumed_from", [])))
    from .evaluate import plot_training

    run_dir.mkdir(parents=True, exist_ok=True)
    if plot_training(stats, run_dir / TRAIN_FIGURE, PANELS):
        out.figures.append(TRAIN_FIGURE)
    out.seconds = round(time.perf_counter() - t0, 3)
    return out


def _loop() -> Callable[[dict[str, Any]], None]:
    from .logprob_loop import train_loop_per_worker

    return train_loop_per_worker


def _fmt(v: Any) -> str:
    return "–" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def render_logprob_report(r: LogprobResult) -> str:
    f = r.final
    lines = ["## PACS logprob mode (the actor is trained)", "",
             f"Actor model version {r.model_version}{' (already trained: reused)' if r.reused else ''} "
             f"(task {r.task}, actor {r.actor}, {r.method}): {r.steps} steps of G = {r.group_size} samples per prompt "
             f"on {r.workers} worker(s), run `{r.run_name}`"
             + (f", resumed at step(s) {r.resumed_from}" if r.resumed_from else "")
             + f"; {r.samples_per_s} samples/s, {r.gen_tokens_per_s} generated tokens/s, "
             f"{r.seconds_per_step * 1000:.0f} ms/step; {r.rejected_steps} step(s) rejected (NaN/inf).", "",
             f"Pass rate of the sampled groups: first step {_fmt(r.pass_rate_first)}, last step "
             f"{_fmt(r.pass_rate_last)}. Last step: loss {_fmt(f.get('loss'))}, mean ψ {_fmt(f.get('psi_mean'))}, "
             f"coupling ratio {_fmt(f.get('coupling_ratio'))}, mean response length "
             f"{_fmt(f.get('mean_response_len'))} tokens.", ""]
    before, after = (r.eval or {}).get("before_training"), (r.eval or {}).get("after_training")
    if before or after:
        lines += ["| held-out prompts | pass@1 (greedy) | pass@k | n |", "|---|---|---|---|"]
        for name, e in (("before training", before), ("after training", after)):
            if e:
                lines.append(f"| {name} | {_fmt(e.get('pass1'))} | {_fmt(e.get('passk'))} | {e.get('n')} |")
        lines.append("")
    if r.excluded or r.truncated_prompts:
        lines += [f"Excluded samples: {', '.join(f'{n} × {k}' for k, n in r.excluded.items()) or 'none'}; "
                  f"prompts cut from the left to fit the context: {r.truncated_prompts}.", ""]
    lines += [f"![{name}]({name})" for name in r.figures]
    return "\n".join(lines) + "\n"


def logprob_stage(ctx: Any) -> LogprobResult:
    """``stephanie train --mode logprob`` as a recorded stage (audit trail, report section)."""
    result = train_logprob(ctx.config, ctx.db, ctx.run_dir, ctx.run_id)
    ctx.results["train"] = result
    ctx.report["train"] = render_logprob_report(result)
    return result
