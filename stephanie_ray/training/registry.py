"""Model versions in the database (the PACS critic; logprob mode's actor, kind ``pacs_actor``): rank 0 registers one at the end of a run (with its per-step
history), the CLI, the verifier and the report read them.

A run (``run_name``) trained to ``steps`` registers one version; finishing the same run again (a rerun that
resumed from its final checkpoint) finds that version instead of adding another.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from sqlalchemy import func, select

from ..db.models import ModelVersion, TrainingStat
from .critic import KIND, save_version

VALIDATION_FILE = "validation.safetensors"
ACTOR_KIND = "pacs_actor"  # logprob mode's trained actors


def _plain(config: dict[str, Any]) -> dict[str, Any]:
    """The JSON-able part of the workers' config (hooks and the like left out)."""
    out = {}
    for k, v in config.items():
        try:
            json.dumps(v)
        except TypeError:
            continue
        out[k] = v
    return out


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def register_version(config: dict[str, Any], kind: str, dirname: str, state: dict[str, Any],
                     evaluation: dict[str, Any], save: Callable[[int, Path, dict[str, Any]], dict[str, Any]],
                     **extra_metrics: Any) -> dict[str, Any]:
    """Register a finished run as the next model version of ``kind``, or find the one it registered before (a
    rerun of a finished run); rank 0 only. ``save(version, path, metrics)`` writes the files into
    ``<models_dir>/<dirname>_vNNNN`` and returns the ``ModelVersion`` columns particular to the kind
    (``dataset_version_id``, ``backbone``, ``encoder``, ``config``); the row and the per-step stats are added in
    the same transaction. Returns what the worker reports as its final metrics."""
    from ..db import Database

    db = Database.open(config["db_url"])
    try:
        with db.session() as s:
            old = existing_version(s, kind, config["run_name"], state["step"])
            if old is not None:
                return {"model_version": old.version, "path": old.path, "reused": True,
                        "eval": old.metrics.get("eval", {})}
            version = next_version(s, kind)
            path = Path(config["models_dir"]) / f"{dirname}_v{version:04d}"
            history = state["history"]
            metrics = {"eval": evaluation, "final": history[-1] if history else {}, "rejected_steps": state["rejected"],
                       **extra_metrics, "resumed_from": state["resumed_from"], "steps": state["step"]}
            columns = save(version, path, metrics)
            mv = ModelVersion(kind=kind, version=version, path=str(path), run_name=config["run_name"],
                              steps=state["step"], checkpoint=config.get("checkpoint_dir"), metrics=metrics,
                              pipeline_run_id=config.get("run_id"), **columns)
            s.add(mv)
            s.flush()
            s.add_all(stat_rows(mv.id, history))
        return {"model_version": version, "path": str(path), "reused": False, "eval": metrics["eval"]}
    finally:
        db.dispose()


def finish_run(config: dict[str, Any], model: torch.nn.Module, tokenizer: Any, calibrator: Any,
               state: dict[str, Any], before: dict[str, Any], after: dict[str, Any], val: dict[str, Any],
               s_before: np.ndarray, s_after: np.ndarray) -> dict[str, Any]:
    """The critic as model version ``KIND`` (``critic_vNNNN``: weights, calibrator, tokenizer, meta.json and its
    validation scores before and after training); see :func:`register_version`."""
    from safetensors.numpy import save_file

    def save(version: int, path: Path, metrics: dict[str, Any]) -> dict[str, Any]:
        meta = {"backbone": config["backbone"], "encoder": config["encoder_name"],
                "encoder_source": config["encoder_model"], "dim": config.get("dim", 0),
                "hidden": config["hidden"], "max_length": config["max_length"], "run_name": config["run_name"],
                "steps": state["step"], "dataset_version": config["dataset_version"],
                "dataset_hash": config["dataset_hash"], "version": version, "metrics": metrics,
                "config": _plain({k: v for k, v in config.items() if k != "db_url"})}
        save_version(path, model, meta, calibrator, tokenizer)
        save_file({"y": np.asarray(val["y"], dtype=np.int64), "group": np.asarray(val["group"], dtype=np.int64),
                   "s_before": np.asarray(s_before, dtype=np.float32),
                   "s_after": np.asarray(s_after, dtype=np.float32)}, str(path / VALIDATION_FILE))
        return {"dataset_version_id": config["dataset_version"], "backbone": config["backbone"],
                "encoder": config["encoder_name"], "config": meta["config"]}

    return register_version(config, KIND, "critic", state, {"before_training": before, "after_training": after},
                            save)


def finish_actor_run(config: dict[str, Any], model: Any, tokenizer: Any, state: dict[str, Any],
                     after: dict[str, Any] | None) -> dict[str, Any]:
    """Logprob mode's trained actor as model version ``ACTOR_KIND`` (``actor_vNNNN``: ``save_pretrained``
    safetensors, tokenizer, meta.json); see :func:`register_version`."""
    from .actor import save_actor

    def save(version: int, path: Path, metrics: dict[str, Any]) -> dict[str, Any]:
        plain = _plain({k: v for k, v in config.items() if k not in ("db_url", "items", "eval_items")})
        meta = {"kind": ACTOR_KIND, "version": version, "task": config["task"], "actor": config["actor_name"],
                "base_actor_dir": config["actor_dir"], "run_name": config["run_name"], "steps": state["step"],
                "dataset_version": config.get("dataset_version"), "metrics": metrics, "config": plain}
        save_actor(path, model, tokenizer, meta)
        return {"dataset_version_id": config.get("dataset_version"),
                "backbone": str(getattr(model.config, "model_type", ""))[:16],
                "encoder": str(config["actor_name"])[:255], "config": plain}

    return register_version(config, ACTOR_KIND, "actor", state,
                            {"before_training": state.get("before") or None, "after_training": after}, save,
                            excluded=state.get("excluded", {}))


def existing_version(session: Any, kind: str, run_name: str, steps: int) -> ModelVersion | None:
    """The version a run already registered at this step count (a rerun of a finished run), or None."""
    return session.scalars(select(ModelVersion).where(ModelVersion.kind == kind, ModelVersion.run_name == run_name,
                                                      ModelVersion.steps == steps)).first()


def next_version(session: Any, kind: str) -> int:
    return int(session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.kind == kind)) or 0) + 1


def stat_rows(model_version_id: int, history: list[dict[str, Any]]) -> list[TrainingStat]:
    """The per-step ``training_stats`` rows of a run's history (every figure kept in ``metrics``)."""
    return [TrainingStat(model_version_id=model_version_id, step=r["step"], ok=bool(r["ok"]), loss=_finite(r["loss"]),
                         psi_mean=_finite(r["psi_mean"]), coupling_ratio=_finite(r["coupling_ratio"]),
                         accuracy=_finite(r["accuracy"]), grad_norm=_finite(r["grad_norm"]),
                         samples=int(r["samples"]), groups=int(r["groups"]), seconds=float(r["seconds"]),
                         metrics={k: _finite(v) if isinstance(v, float) else v for k, v in r.items()})
            for r in history]


def training_stats(session: Any, version: int, kind: str = KIND, all_figures: bool = False) -> list[dict[str, Any]]:
    """A version's per-step stats (the columns; ``all_figures``: every figure the step recorded)."""
    mv = session.scalars(select(ModelVersion).where(ModelVersion.kind == kind, ModelVersion.version == version)).first()
    if mv is None:
        return []
    rows = session.scalars(select(TrainingStat).where(TrainingStat.model_version_id == mv.id)
                           .order_by(TrainingStat.step))
    return [{**((r.metrics or {}) if all_figures else {}), "step": r.step, "ok": r.ok, "loss": r.loss,
             "psi_mean": r.psi_mean, "coupling_ratio": r.coupling_ratio, "accuracy": r.accuracy,
             "grad_norm": r.grad_norm, "samples": r.samples, "groups": r.groups, "seconds": r.seconds} for r in rows]
