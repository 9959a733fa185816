"""``stephanie train --mode critic``: the PACS critic on Ray Train (the driver side).

1. The dataset version (newest, or ``critic.dataset``) is read; with ``backbone: frozen`` every prompt and
   response is embedded once and cached beside the Parquet (:func:`.critic.cached_embeddings`).
2. Ray Data reads the Parquet, attaches each row's pair features (frozen) or keeps its texts (finetune),
   and packs the training split into **one row per group** (``groupby("group_id").map_groups``), so that
   Ray Train's split of the dataset over the workers hands out whole groups; the packed dataset is
   materialised (small: features of the train split) so the workers' CPUs are not needed for reading.
3. A :class:`ray.train.torch.TorchTrainer` with ``critic.workers`` workers (DDP; ``use_gpu`` on a cluster)
   runs :func:`.train_loop.train_loop_per_worker`; ``RunConfig(name, storage_path)`` keeps its checkpoints
   so that rerunning the same run name resumes from the last one, and ``FailureConfig(max_failures)``
   restarts a failed worker group from it.
4. Rank 0 registers the model version (:mod:`.registry`); here the figures are drawn (loss, ψ and coupling
   ratio per step; a reliability diagram) and the run report's section is written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..config import StephanieConfig
from ..db import Database
from ..errors import UserError
from .critic import cached_embeddings
from .dataset import load_dataset_version
from .packing import attach_features, is_split, pack_group

log = logging.getLogger(__name__)

TRAIN_FIGURE = "pacs_training.png"
RELIABILITY_FIGURE = "pacs_reliability.png"


@dataclass
class TrainResult:
    """What ``stephanie train --mode critic`` did (the stage's typed result)."""

    model_version: int = 0
    path: str = ""
    reused: bool = False
    run_name: str = ""
    checkpoint: str = ""
    dataset_version: int = 0
    backbone: str = ""
    workers: int = 1
    steps: int = 0
    final: dict[str, Any] = field(default_factory=dict)  # the last step's figures
    eval: dict[str, Any] = field(default_factory=dict)  # before/after training x raw/calibrated
    samples_per_s: float = 0.0
    seconds_per_step: float = 0.0
    rejected_steps: int = 0
    resumed_from: list[int] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def counts(self) -> dict[str, Any]:
        d = self.to_dict()
        d["rejected_steps_skipped"] = d.pop("rejected_steps")  # listed under "Failures and skips" when > 0
        return d


# ------------------------------------------------------------------------------------------ Ray Data
def build_datasets(path: str, cache: str | None, partitions: int = 1) -> tuple[Any, Any]:
    """(train: one row per group, materialised; val: one row per response) from the Parquet, via Ray Data.

    The grouping shuffle is Ray Data's sort-based one into ``partitions`` blocks: on datasets of this size
    its hash shuffle (aggregator actors) costs twice as long to start (measured: 10 s against 5 s on 2 CPUs)."""
    import ray
    from ray.data import DataContext
    from ray.data.context import ShuffleStrategy

    cols = ["row_id", "group_id", "label", "split"] + ([] if cache else ["critic_prompt", "response"])
    ds = ray.data.read_parquet(path).select_columns(cols)
    if cache:
        ds = ds.map_batches(attach_features, fn_kwargs={"cache": cache}, batch_format="pyarrow")
    ctx = DataContext.get_current()
    before = ctx.shuffle_strategy
    ctx.shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    try:
        train = (ds.map_batches(is_split, fn_kwargs={"split": "train"}, batch_format="pyarrow")
                 .groupby("group_id", num_partitions=max(1, partitions))
                 .map_groups(pack_group, batch_format="pyarrow").materialize())
    finally:
        ctx.shuffle_strategy = before
    val = ds.map_batches(is_split, fn_kwargs={"split": "val"}, batch_format="pyarrow").materialize()
    return train, val


# ------------------------------------------------------------------------------------------ the run
def default_run_name(cfg: StephanieConfig, dataset_hash: str, dataset_version: int) -> str:
    """The same dataset and settings give the same name, so the same command resumes (steps, workers and
    checkpointing may change between reruns: the schedule of groups does not depend on them)."""
    c = {k: v for k, v in asdict(cfg.critic).items()
         if k not in ("steps", "workers", "cpus_per_worker", "use_gpu", "checkpoint_every", "max_failures", "run_name",
                      "storage_path", "dataset")}
    digest = hashlib.sha256(json.dumps({"critic": c, "pacs": asdict(cfg.pacs), "data": dataset_hash},
                                       sort_keys=True).encode()).hexdigest()[:10]
    return f"critic-d{dataset_version}-{digest}"


def train_critic(cfg: StephanieConfig, db: Database, run_dir: Path, run_id: int | None = None, *,
                 on_step: Callable[[int, int], None] | None = None) -> TrainResult:
    """Train (or resume, or find) the critic for the configured dataset version; draw its figures."""
    import pyarrow.parquet as pq
    from ray.train import DataConfig

    from ..embedding import resolve_model
    from ..ray_utils import ensure_ray

    t0 = time.perf_counter()
    c = cfg.critic
    with db.session() as s:
        dv = load_dataset_version(s, c.dataset)
        dv_id, dv_path, dv_hash = dv.id, dv.path, dv.content_hash
    table = pq.read_table(dv_path, columns=["row_id", "split", "label", "critic_prompt", "response"])
    split = np.asarray(table.column("split").to_pylist())
    labels = np.asarray(table.column("label").to_pylist())
    if not (split == "train").any():
        raise UserError(f"dataset version {dv_id} has no training rows")
    if labels[split == "train"].min() == labels[split == "train"].max():
        raise UserError(f"dataset version {dv_id}: the training split has a single class; nothing to learn")
    encoder_model = c.encoder or cfg.embedding.model
    source, encoder_name = resolve_model(encoder_model)
    cache, dim = None, 0
    if c.backbone == "frozen":
        emb_cfg = dataclasses.replace(cfg.embedding, max_length=c.max_length)
        cache_path, dim = cached_embeddings(Path(dv_path).parent, np.asarray(table.column("row_id").to_pylist()),
                                            table.column("critic_prompt").to_pylist(),
                                            table.column("response").to_pylist(), emb_cfg, encoder_model)
        cache = str(cache_path)
    log.info("critic: dataset v%d, %d rows; features ready (%.1f s)", dv_id, table.num_rows, time.perf_counter() - t0)
    ensure_ray(cfg.ray)
    train_ds, val_ds = build_datasets(dv_path, cache, c.workers)
    log.info("critic: Ray Data packed the training groups (%.1f s)", time.perf_counter() - t0)
    run_name = c.run_name or default_run_name(cfg, dv_hash, dv_id)
    storage = train_storage(cfg, c.storage_path)
    config = {"backbone": c.backbone, "encoder_source": source, "encoder_model": encoder_model,
              "encoder_name": encoder_name, "dim": dim, "hidden": c.hidden, "max_length": c.max_length,
              "lr": c.lr if c.backbone == "frozen" else c.finetune_lr, "weight_decay": c.weight_decay,
              "max_grad_norm": c.max_grad_norm, "steps": c.steps, "groups_per_step": c.groups_per_step,
              "checkpoint_every": c.checkpoint_every, "seed": c.seed, "calibrator": c.calibrator,
              "beta": cfg.pacs.beta, "reset_every": cfg.pacs.reference_reset("critic"), "class_balance": cfg.pacs.class_balance,
              "uniform_groups": cfg.pacs.uniform_groups, "threads": max(1, int(c.cpus_per_worker)),
              "workers": c.workers, "dataset_version": dv_id, "dataset_hash": dv_hash, "run_name": run_name,
              "db_url": cfg.db_url, "models_dir": str(run_dir.resolve()), "run_id": run_id,
              "checkpoint_dir": str(storage / run_name)}
    if on_step is not None:
        config["on_step"] = on_step
    result, m = fit_on_ray_train("critic", _loop(), config, run_name, storage, c,
                                 datasets={"train": train_ds, "val": val_ds},
                                 dataset_config=DataConfig(datasets_to_split=["train"]))
    log.info("critic: Ray Train run %s finished (%.1f s)", run_name, time.perf_counter() - t0)
    with db.session() as s:
        from .registry import training_stats

        stats = training_stats(s, int(m["model_version"]))
    ok = [r for r in stats if r["ok"]]
    secs = sum(r["seconds"] for r in stats)
    out = TrainResult(model_version=int(m["model_version"]), path=m["path"], reused=bool(m.get("reused")),
                      run_name=run_name, checkpoint=str(result.checkpoint.path) if result.checkpoint else "",
                      dataset_version=dv_id, backbone=c.backbone, workers=c.workers, steps=int(m["step"]),
                      final=stats[-1] if stats else {}, eval=m.get("eval", {}),
                      samples_per_s=round(sum(r["samples"] for r in ok) / secs, 2) if secs else 0.0,
                      seconds_per_step=round(secs / len(stats), 5) if stats else 0.0,
                      rejected_steps=len(stats) - len(ok))
    meta = json.loads((Path(out.path) / "meta.json").read_text(encoding="utf-8"))
    out.resumed_from = list(meta["metrics"].get("resumed_from", []))
    out.figures = draw_figures(stats, Path(out.path), run_dir, cfg.critic.calibrator)
    out.seconds = round(time.perf_counter() - t0, 3)
    return out


def train_storage(cfg: StephanieConfig, storage_path: str) -> Path:
    """Where Ray Train keeps a run's checkpoints (``<storage>/<run name>``): ``storage_path``, else <runs>/train."""
    storage = (Path(storage_path).expanduser() if storage_path else cfg.run.runs_path / "train").resolve()
    storage.mkdir(parents=True, exist_ok=True)
    return storage


def fit_on_ray_train(what: str, loop: Callable[[dict[str, Any]], None], config: dict[str, Any], run_name: str,
                     storage: Path, section: Any, **trainer_kwargs: Any) -> tuple[Any, dict[str, Any]]:
    """Run ``loop`` on a ``TorchTrainer`` sized by ``section`` (``critic`` or ``logprob``: workers, use_gpu,
    cpus_per_worker, max_failures, poll_interval_s), checkpoints in ``storage/run_name`` (the same run name
    resumes; two kept) and ``FailureConfig(max_failures)``. Returns Ray's result and its final metrics, which
    must name the model version rank 0 registered. ``trainer_kwargs``: datasets and their config."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    # Ray Train's controller takes one report per worker each time it polls (default every 2 s): with a
    # report every step, that poll would set the pace. Propagated to the controller by Ray Train itself.
    if "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S" not in os.environ:
        os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] = str(section.poll_interval_s)
    trainer = TorchTrainer(
        loop, train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=section.workers, use_gpu=section.use_gpu,
                                     resources_per_worker={"CPU": section.cpus_per_worker}),
        run_config=RunConfig(name=run_name, storage_path=str(storage),
                             failure_config=FailureConfig(max_failures=section.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=2)),
        **trainer_kwargs)
    try:
        result = trainer.fit()
    except Exception as exc:  # Ray wraps the worker's error: say which run, keep the traceback in the log
        log.exception("%s training failed", what)
        raise RuntimeError(f"{what} training failed (run {run_name}): "
                           f"{str(exc).strip().splitlines()[-1][:500]}") from exc
    m = dict(result.metrics or {})
    if "model_version" not in m:
        raise RuntimeError(f"{what} run {run_name} ended without registering a model version: {m}")
    return result, m


def _loop() -> Callable[[dict[str, Any]], None]:
    from .train_loop import train_loop_per_worker

    return train_loop_per_worker


def draw_figures(stats: list[dict[str, Any]], version_dir: Path, run_dir: Path, kind: str) -> list[str]:
    """The training curves and the reliability diagram, as PNGs in the run folder."""
    from safetensors.numpy import load_file

    from .evaluate import cross_fitted, plot_reliability, plot_training, sigmoid
    from .registry import VALIDATION_FILE

    out = []
    run_dir.mkdir(parents=True, exist_ok=True)
    if plot_training(stats, run_dir / TRAIN_FIGURE):
        out.append(TRAIN_FIGURE)
    v = load_file(str(version_dir / VALIDATION_FILE))
    y = v["y"].astype(np.float64)
    curves = {"before training": (y, sigmoid(v["s_before"])), "after training": (y, sigmoid(v["s_after"]))}
    if y.size and y.min() != y.max():
        pc = cross_fitted(y, v["s_after"].astype(np.float64), v["group"], kind)
        if pc is not None:
            curves[f"after training, {kind}-calibrated"] = (y, pc)
    if plot_reliability(curves, run_dir / RELIABILITY_FIGURE):
        out.append(RELIABILITY_FIGURE)
    return out


def _fmt(v: Any) -> str:
    return "–" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def eval_table(ev: dict[str, Any]) -> list[str]:
    lines = ["| validation | AUC | Brier | ECE | n |", "|---|---|---|---|---|"]
    for when in ("before_training", "after_training"):
        e = ev.get(when) or {}
        for kind in ("raw", "calibrated"):
            f = e.get(kind)
            if f:
                lines.append(f"| {when.replace('_', ' ')}, {kind} | {_fmt(f['auc'])} | {_fmt(f['brier'])} | "
                             f"{_fmt(f['ece'])} | {f['n']} |")
        if e.get("note"):
            lines.append(f"| {when.replace('_', ' ')}: {e['note']} | | | | |")
    return lines


def render_train_report(r: TrainResult) -> str:
    f = r.final
    lines = ["## PACS critic", "",
             f"Model version {r.model_version}{' (already trained: reused)' if r.reused else ''} "
             f"({r.backbone} backbone) from dataset version {r.dataset_version}: {r.steps} steps on {r.workers} "
             f"worker(s), run `{r.run_name}`" + (f", resumed at step(s) {r.resumed_from}" if r.resumed_from else "")
             + f"; {r.samples_per_s} samples/s, {r.seconds_per_step * 1000:.1f} ms/step; "
             f"{r.rejected_steps} step(s) rejected (NaN/inf).", "",
             f"Last step: loss {_fmt(f.get('loss'))}, mean ψ {_fmt(f.get('psi_mean'))}, coupling ratio "
             f"{_fmt(f.get('coupling_ratio'))}. Calibrated figures are cross-fitted on two halves of the "
             f"validation split.", ""] + eval_table(r.eval) + [""]
    lines += [f"![{name}]({name})" for name in r.figures]
    return "\n".join(lines) + "\n"


def train_stage(ctx: Any) -> dict[str, Any]:
    """The pipeline stage after prepare: trains on the dataset prepare made in this run (or, run alone, on
    ``critic.dataset`` / the newest). As with prepare, data that cannot train a critic skips the stage with
    its reason; ``stephanie train`` turns it into its error."""
    reason = None
    if "prepare" in ctx.results and ctx.results["prepare"] is None:
        reason = f"no PACS dataset: {ctx.results.get('prepare_skipped', 'prepare was skipped')}"
    else:
        if ctx.results.get("prepare") is not None and not ctx.config.critic.dataset:
            ctx.config.critic.dataset = str(ctx.results["prepare"].dataset_version)
        try:
            result = train_critic(ctx.config, ctx.db, ctx.run_dir, ctx.run_id)
        except UserError as exc:
            reason = str(exc)
    if reason is not None:
        ctx.results["train"] = None
        ctx.results["train_skipped"] = reason
        ctx.report["train"] = f"## PACS critic\n\nNot trained: {reason}\n"
        return {"skipped": {reason: 1}}
    ctx.results["train"] = result
    ctx.report["train"] = render_train_report(result)
    return result.counts()
