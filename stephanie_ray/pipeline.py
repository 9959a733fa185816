"""The pipeline: the stages in order, each recorded in the audit trail.

A stage is a plain function ``run(ctx) -> counts`` plus a name. Adding a stage to the system
means writing its module and adding one line to :data:`STAGE_SPECS`; the CLI, the Ray job
(``jobs/pipeline.py``), the audit trail and the run report pick it up from there.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import audit
from .config import StephanieConfig
from .db import Database
from .errors import UserError

log = logging.getLogger(__name__)

# (stage name, "module:function", one-line description[, config section if not the stage name]), in order.
STAGE_SPECS: list[tuple[str, ...]] = [
    ("ingest", "stephanie_ray.ingest.importer:import_stage", "import chat exports: parse, deduplicate, keep branches"),
    ("casebooks", "stephanie_ray.casebooks.build:casebooks_stage",
     "conversations -> CaseBooks of cases and scorables, grouped by conversation or goal"),
    ("score", "stephanie_ray.scoring.stage:score_stage",
     "score every scorable on every dimension with an ensemble (Ray Data actor pool); MARS agreement", "scoring"),
    ("scorers", "stephanie_ray.scoring.train:train_stage",
     "train the learned scorers on the person's verdicts once enough labels exist (and they changed)", "scoring"),
    ("prepare", "stephanie_ray.training.dataset:prepare_stage",
     "scored answers -> the PACS dataset: prompt + context, response, reward, verifier label, group, split (Parquet)"),
    ("train", "stephanie_ray.training.trainer:train_stage",
     "train the PACS critic on Ray Train (DDP workers, checkpoints, resume); calibrate; register the model version",
     "critic"),
    ("ner", "stephanie_ray.ner.stage:ner_stage",
     "entities in every scorable -> type-aware span vectors -> projection -> Annoy index; the entity graph"),
]


@dataclass(frozen=True)
class Stage:
    name: str
    target: str
    help: str
    section: str = ""  # config section, when it is not named like the stage

    def load(self) -> Callable[[StageContext], dict[str, Any]]:
        module, func = self.target.split(":")
        return getattr(importlib.import_module(module), func)


def available_stages() -> list[Stage]:
    return [Stage(*spec) for spec in STAGE_SPECS]


@dataclass
class StageContext:
    """What a stage gets: configuration, database, where to write, what to read."""

    config: StephanieConfig
    db: Database
    run_id: int
    inputs: list[str]
    run_dir: Path
    progress: bool = field(default_factory=lambda: sys.stderr.isatty())
    ray_info: dict[str, Any] | None = None
    results: dict[str, Any] = field(default_factory=dict)  # what stages hand to later stages in this run
    report: dict[str, str] = field(default_factory=dict)  # stage -> its Markdown section of report.md

    def ensure_ray(self) -> dict[str, Any]:
        if self.ray_info is None:
            from .ray_utils import ensure_ray

            self.ray_info = ensure_ray(self.config.ray)
        return self.ray_info


@dataclass
class PipelineResult:
    run_id: int
    status: str
    stages: list[dict[str, Any]]
    run_dir: str
    error: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)  # StageContext.results: full stage outputs

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "status": self.status, "run_dir": self.run_dir,
                "error": self.error, "stages": self.stages}


def select_stages(names: list[str] | None) -> list[Stage]:
    stages = available_stages()
    if not names:
        return stages
    known = {s.name: s for s in stages}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(f"unknown stage {unknown[0]!r} (stages: {', '.join(known) or 'none'})")
    wanted = set(names)
    return [s for s in stages if s.name in wanted]  # always in pipeline order


def run_stages(cfg: StephanieConfig, db: Database, stages: list[Stage], inputs: list[str],
               command: str = "pipeline", progress: bool | None = None) -> PipelineResult:
    """Run ``stages`` in order as one recorded run; every stage gets an audit row."""
    run_id = audit.start_pipeline_run(db, command, cfg.to_dict(), inputs)
    run_dir = (cfg.run.runs_path / f"run-{run_id:06d}").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    ctx = StageContext(config=cfg, db=db, run_id=run_id, inputs=inputs, run_dir=run_dir)
    if progress is not None:
        ctx.progress = progress
    ctx.progress = ctx.progress and cfg.run.progress
    results: list[dict[str, Any]] = []
    status, error = "succeeded", None
    log.info("run %d: stages %s on %s", run_id, [s.name for s in stages] or "(none)", inputs)
    try:
        for stage in stages:
            fn = stage.load()
            section = stage.section or stage.name
            stage_cfg = getattr(cfg, section).__dict__ if hasattr(cfg, section) else {}
            log.info("run %d: stage %s ...", run_id, stage.name)
            try:
                with audit.stage_run(db, run_id, stage.name, dict(stage_cfg)) as rec:
                    out = fn(ctx) or {}
                    # a typed stage result (counts() and partial, e.g. scoring's ScoringSummary) or a dict of counts
                    counts = out.counts() if hasattr(out, "counts") else dict(out)
                    rec.counts.update(counts)
                    rec.partial = bool(out.partial) if hasattr(out, "partial") else \
                        bool(counts.get("failed") or counts.get("files_failed"))
                results.append({"stage": stage.name, "status": "partial" if rec.partial else "succeeded",
                                "counts": rec.counts})
                if rec.partial:
                    status = "partial"
            except Exception as exc:
                results.append({"stage": stage.name, "status": "failed", "error": str(exc)})
                status, error = "failed", f"stage {stage.name}: {exc}"
                if cfg.pipeline.stop_on_error:
                    raise
    except BaseException as exc:
        status = "failed"
        error = error or ("interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}")
        audit.finish_pipeline_run(db, run_id, status, error)
        _write_report(run_dir, run_id, status, results, error, ctx.report)
        raise
    audit.finish_pipeline_run(db, run_id, status, error)
    _write_report(run_dir, run_id, status, results, error, ctx.report)
    return PipelineResult(run_id=run_id, status=status, stages=results, run_dir=str(run_dir), error=error,
                          outputs=ctx.results)


def run_pipeline(cfg: StephanieConfig, inputs: list[str] | None = None, stage_names: list[str] | None = None,
                 db: Database | None = None, progress: bool | None = None) -> PipelineResult:
    """``stephanie pipeline``: every selected stage, in order, on ``inputs`` (default: ``pipeline.inputs``)."""
    inputs = list(inputs or cfg.pipeline.inputs)
    missing = [p for p in inputs if not Path(p).exists()]
    if missing:
        raise UserError(f"input path not found: {missing[0]}")
    stages = select_stages(stage_names or cfg.pipeline.stages)
    own_db = db is None
    db = db or Database.from_config(cfg)
    try:
        return run_stages(cfg, db, stages, [str(Path(p)) for p in inputs], progress=progress)
    finally:
        if own_db:
            db.dispose()


REPORT_REASONS = 10  # distinct failure / skip reasons listed per stage (the rest are counted)


def problems(stages: list[dict[str, Any]]) -> list[str]:
    """The "Failures and skips" section: per stage, what failed or was left out, and why.

    Read from what each stage recorded (the audit trail's counts): a stage's own error; lists of
    ``errors`` / ``failures`` (grouped by reason, with a count and an example of where); a ``skipped``
    mapping of reason -> count; and counters named ``*failed*``, ``*skipped*``, ``*missing*``, ``*empty*``.
    """
    out: list[str] = []
    for st in stages:
        counts = st.get("counts", {})
        lines: list[str] = []
        if st.get("error"):
            lines.append(f"- the stage failed: {st['error']}")
        for key in ("errors", "failures"):
            reasons: dict[str, list[str]] = {}
            for e in counts.get(key) or []:
                if not isinstance(e, dict):
                    reasons.setdefault(str(e), []).append("")
                    continue
                why = " ".join(str(e.get("error") or e.get("reason") or e).split())[:200]
                where = ", ".join(f"{k} {e[k]}" for k in ("file", "conversation", "scorable", "scorer", "dimension")
                                  if e.get(k) is not None)
                reasons.setdefault(why, []).append(where)
            for why, wheres in sorted(reasons.items(), key=lambda kv: -len(kv[1]))[:REPORT_REASONS]:
                example = next((w for w in wheres if w), "")
                lines.append(f"- {len(wheres)} × {why}" + (f" (e.g. {example})" if example else ""))
            if len(reasons) > REPORT_REASONS:
                lines.append(f"- … and {len(reasons) - REPORT_REASONS} more reasons (`stephanie runs show`)")
        skipped = counts.get("skipped")
        if isinstance(skipped, dict):
            lines += [f"- skipped {n} × {why.replace('_', ' ')}" for why, n in sorted(skipped.items()) if n]
        for k, v in counts.items():
            if (isinstance(v, (int, float)) and not isinstance(v, bool) and v
                    and any(w in k for w in ("failed", "skipped", "missing", "empty", "duplicate"))):
                lines.append(f"- {k.replace('_', ' ')}: {v}")
        if lines:
            out += [f"**{st['stage']}** ({st['status']})", ""] + lines + [""]
    return out or ["Nothing failed or was skipped.", ""]


def _write_report(run_dir: Path, run_id: int, status: str, stages: list[dict[str, Any]], error: str | None,
                  sections: dict[str, str] | None = None) -> None:
    """A human report (Markdown) and a machine one (JSON) in the run's folder.

    report.md: the stages and their counts, failures and skips with their reasons, then each stage's
    own section (scoring: MARS, CaseBook champions and progress, best and worst answers), then figures.
    """
    data = {"run_id": run_id, "status": status, "error": error, "stages": stages}
    (run_dir / "report.json").write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    lines = [f"# stephanie run {run_id}: {status}", ""]
    if error:
        lines += [f"**Error:** {error}", ""]
    lines += ["| stage | status | counts |", "|---|---|---|"]
    for st in stages:
        counts = ", ".join(f"{k}={v}" for k, v in st.get("counts", {}).items() if not isinstance(v, (list, dict)))
        lines.append(f"| {st['stage']} | {st['status']} | {counts or st.get('error', '')} |")
    lines += ["", "## Failures and skips", ""] + problems(stages)
    for name in [s["stage"] for s in stages if s["stage"] in (sections or {})]:
        lines += [sections[name].rstrip(), ""]  # type: ignore[index]
    extra = sorted(p.name for p in run_dir.glob("*.png"))
    if extra:
        lines += ["## Figures", ""] + [f"![{name}]({name})" for name in extra]
    (run_dir / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
