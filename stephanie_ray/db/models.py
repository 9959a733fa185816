"""Typed SQLAlchemy models. Each stage adds its tables here (and a migration under ``migrations/versions``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, JSONType, UTCDateTime, utcnow

# "partial": the stage finished but some items failed (listed in its counts); see each stage.
RUN_STATUSES = ("running", "succeeded", "partial", "failed")


class PipelineRun(Base):
    """One invocation of ``stephanie pipeline`` (or a stage run on its own, which gets a run of one stage)."""

    __tablename__ = "pipeline_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    command: Mapped[str] = mapped_column(String(64))  # "pipeline", "import", ...
    status: Mapped[str] = mapped_column(String(16), default="running")
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    inputs: Mapped[list[str]] = mapped_column(JSONType, default=list)
    host: Mapped[str] = mapped_column(String(255), default="")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)

    stages: Mapped[list[StageRun]] = relationship(
        back_populates="pipeline_run", order_by="StageRun.id", cascade="all, delete-orphan"
    )


class StageRun(Base):
    """The audit record of one stage run: what ran, with which config, when, how it ended, what it counted."""

    __tablename__ = "stage_runs"
    __table_args__ = (Index("ix_stage_runs_stage_started", "stage", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pipeline_run_id: Mapped[int] = mapped_column(ForeignKey("pipeline_runs.id", ondelete="CASCADE"), index=True)
    stage: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="running")
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    counts: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)

    pipeline_run: Mapped[PipelineRun] = relationship(back_populates="stages")
