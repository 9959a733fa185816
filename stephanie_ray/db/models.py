"""Typed SQLAlchemy models. Each stage adds its tables here (and a migration under ``migrations/versions``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
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


# ----------------------------------------------------------------------------- ingest (migration 0002)
#
# Ids of conversations, messages and turns are deterministic 63-bit hashes of their natural keys
# (see stephanie_ray.ingest.model.stable_id): the same item always gets the same id, whichever
# worker parsed it, so parallel and serial imports write identical rows and re-imports conflict
# instead of duplicating. The unique constraints on the natural keys are what the database enforces.


class ImportFile(Base):
    """One input file (or zip member) seen by an import: its hash, format, outcome and counts."""

    __tablename__ = "import_files"
    __table_args__ = (UniqueConstraint("sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    format: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # running | imported | partial (some conversations failed) | failed | ignored (not a chat export)
    status: Mapped[str] = mapped_column(String(16), default="running")
    counts: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    pipeline_run_id: Mapped[int | None] = mapped_column(ForeignKey("pipeline_runs.id", ondelete="SET NULL"), nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("provider", "external_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    provider: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    models: Mapped[list[str]] = mapped_column(JSONType, default=list)
    source_file: Mapped[str] = mapped_column(Text, default="")
    import_file_id: Mapped[int | None] = mapped_column(ForeignKey("import_files.id", ondelete="SET NULL"), nullable=True)
    message_count: Mapped[int] = mapped_column(Integer, default=0)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    messages: Mapped[list[Message]] = relationship(back_populates="conversation", order_by="Message.position",
                                                   cascade="all, delete-orphan", passive_deletes=True)
    turns: Mapped[list[Turn]] = relationship(back_populates="conversation", order_by="Turn.position",
                                             cascade="all, delete-orphan", passive_deletes=True)


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("conversation_id", "external_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # indexed by the unique (conversation_id, external_id) constraint's leading column
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(255))
    # No foreign key on parent_id (nor on Turn's message ids): ingest validates every tree before
    # writing and writes a conversation in one transaction; on PostgreSQL these per-row FK triggers
    # tripled the insert cost (benchmarks/ingest.py). Rows still go with their conversation (CASCADE).
    parent_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    role: Mapped[str] = mapped_column(String(16))  # user | assistant | system | tool
    text: Mapped[str] = mapped_column(Text, default="")
    content_type: Mapped[str] = mapped_column(String(64), default="text")
    # structured content kept out of the answer text: thinking, tool_use / tool_result, code,
    # execution_output, attachments, citations, images ...
    blocks: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    tool_call: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    position: Mapped[int] = mapped_column(Integer, default=0)  # parent-before-child order in the conversation
    depth: Mapped[int] = mapped_column(Integer, default=0)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    conversation: Mapped[Conversation] = relationship(back_populates="messages")


class Turn(Base):
    """A user message paired with one assistant answer to it; regenerations give several turns per prompt."""

    __tablename__ = "turns"
    __table_args__ = (UniqueConstraint("user_message_id", "assistant_message_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    user_message_id: Mapped[int] = mapped_column(BigInteger)  # indexed by the unique constraint below
    assistant_message_id: Mapped[int] = mapped_column(BigInteger, index=True)
    turn_hash: Mapped[str] = mapped_column(String(64), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer, default=0)

    conversation: Mapped[Conversation] = relationship(back_populates="turns")
    user_message: Mapped[Message] = relationship(primaryjoin="foreign(Turn.user_message_id) == Message.id", viewonly=True)
    assistant_message: Mapped[Message] = relationship(primaryjoin="foreign(Turn.assistant_message_id) == Message.id",
                                                      viewonly=True)
