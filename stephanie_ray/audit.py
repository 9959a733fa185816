"""The audit trail: every pipeline run and every stage run is recorded in the database.

Rows are written in their own short transactions (start, then end), so a stage that fails
or is killed still leaves a record: ``running`` (killed), ``failed`` with the error, or
``succeeded`` / ``partial`` with the stage's counts.
"""

from __future__ import annotations

import socket
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from .db import Database, PipelineRun, StageRun, utcnow


def start_pipeline_run(db: Database, command: str, config: dict[str, Any], inputs: list[str]) -> int:
    with db.session() as s:
        run = PipelineRun(command=command, status="running", config=config, inputs=inputs,
                          host=socket.gethostname(), started_at=utcnow())
        s.add(run)
        s.flush()
        return run.id


def finish_pipeline_run(db: Database, run_id: int, status: str, error: str | None = None) -> None:
    with db.session() as s:
        run = s.get(PipelineRun, run_id)
        assert run is not None, run_id
        run.status = status
        run.error = error
        run.finished_at = utcnow()


@dataclass
class StageRecord:
    """Handed to the code inside :func:`stage_run`: put counts here; set ``partial`` if some items failed."""

    id: int
    stage: str
    counts: dict[str, Any] = field(default_factory=dict)
    partial: bool = False


@contextmanager
def stage_run(db: Database, pipeline_run_id: int, stage: str, config: dict[str, Any]) -> Iterator[StageRecord]:
    with db.session() as s:
        row = StageRun(pipeline_run_id=pipeline_run_id, stage=stage, status="running", config=config,
                       counts={}, started_at=utcnow())
        s.add(row)
        s.flush()
        record = StageRecord(id=row.id, stage=stage)
    try:
        yield record
    except BaseException as exc:
        _finish_stage(db, record, "failed", _describe(exc))
        raise
    _finish_stage(db, record, "partial" if record.partial else "succeeded", None)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _finish_stage(db: Database, record: StageRecord, status: str, error: str | None) -> None:
    with db.session() as s:
        row = s.get(StageRun, record.id)
        assert row is not None
        row.status = status
        row.counts = dict(record.counts)
        row.error = error
        row.finished_at = utcnow()


def run_to_dict(run: PipelineRun, with_config: bool = False) -> dict[str, Any]:
    def iso(t: Any) -> str | None:
        return t.isoformat() if t else None

    out: dict[str, Any] = {
        "id": run.id,
        "command": run.command,
        "status": run.status,
        "inputs": run.inputs,
        "host": run.host,
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "duration_s": round((run.finished_at - run.started_at).total_seconds(), 3) if run.finished_at else None,
        "error": run.error,
        "stages": [
            {
                "id": st.id,
                "stage": st.stage,
                "status": st.status,
                "counts": st.counts,
                "started_at": iso(st.started_at),
                "finished_at": iso(st.finished_at),
                "duration_s": round((st.finished_at - st.started_at).total_seconds(), 3) if st.finished_at else None,
                "error": st.error,
                **({"config": st.config} if with_config else {}),
            }
            for st in run.stages
        ],
    }
    if with_config:
        out["config"] = run.config
    return out


def list_runs(db: Database, limit: int = 20) -> list[dict[str, Any]]:
    with db.session() as s:
        runs = s.scalars(
            select(PipelineRun).options(selectinload(PipelineRun.stages)).order_by(PipelineRun.id.desc()).limit(limit)
        ).all()
        return [run_to_dict(r) for r in runs]


def get_run(db: Database, run_id: int) -> dict[str, Any] | None:
    with db.session() as s:
        run = s.scalars(
            select(PipelineRun).options(selectinload(PipelineRun.stages)).where(PipelineRun.id == run_id)
        ).first()
        return run_to_dict(run, with_config=True) if run else None
