"""Typed SQLAlchemy models. Each stage adds its tables here (and a migration under ``migrations/versions``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (BigInteger, Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, Text,
                        UniqueConstraint)
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


# ----------------------------------------------------------------------------- casebooks (migration 0003)
#
# A CaseBook is a curriculum for one goal: its cases are the attempts, in trajectory order, and each
# case's scorables point at imported rows (a message, a turn, a conversation) by type and id -- they
# are references, not copies, so a re-import that refines a message is what scoring sees.
# Case and scorable ids are deterministic hashes of their natural keys, like ingest's, so a rebuild
# conflicts instead of duplicating.


class Goal(Base):
    """What a person was trying to do: a conversation's title and first request, deduplicated by text."""

    __tablename__ = "goals"
    __table_args__ = (UniqueConstraint("text_hash"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    text: Mapped[str] = mapped_column(Text)
    text_hash: Mapped[str] = mapped_column(String(64))  # sha256 of the normalised, lower-cased text
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # float32, L2-normalised
    embedding_model: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class CaseBook(Base):
    __tablename__ = "casebooks"
    __table_args__ = (UniqueConstraint("name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(512))
    description: Mapped[str] = mapped_column(Text, default="")  # the goal, in words
    goal_id: Mapped[int | None] = mapped_column(ForeignKey("goals.id", ondelete="SET NULL"), nullable=True, index=True)
    mode: Mapped[str | None] = mapped_column(String(16), nullable=True)  # conversation | turn | message (built ones)
    group_by: Mapped[str | None] = mapped_column(String(16), nullable=True)  # conversation | goal
    pipeline_run_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    agent_name: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    tag: Mapped[str] = mapped_column(String(64), default="default")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # progress, providers, ...

    goal: Mapped[Goal | None] = relationship()
    cases: Mapped[list[Case]] = relationship(back_populates="casebook", order_by="Case.position",
                                             cascade="all, delete-orphan", passive_deletes=True)


class Case(Base):
    """One attempt in a CaseBook's trajectory: a prompt and the scorables that answer it."""

    __tablename__ = "cases"
    __table_args__ = (UniqueConstraint("casebook_id", "case_key"),
                      Index("ix_cases_casebook_position", "casebook_id", "position"))

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    casebook_id: Mapped[int] = mapped_column(ForeignKey("casebooks.id", ondelete="CASCADE"))
    goal_id: Mapped[int | None] = mapped_column(ForeignKey("goals.id", ondelete="SET NULL"), nullable=True, index=True)
    case_key: Mapped[str] = mapped_column(String(80))  # "m:<user message id>", "c:<conversation id>", ...
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"),
                                                        nullable=True, index=True)
    prompt_text: Mapped[str] = mapped_column(Text, default="")
    agent_name: Mapped[str | None] = mapped_column(String(160), nullable=True)  # provider[:model]
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    position: Mapped[int] = mapped_column(Integer, default=0)  # order in the trajectory, 0-based
    source_position: Mapped[int] = mapped_column(Integer, default=0)  # position of its message in the conversation
    quality: Mapped[float | None] = mapped_column(Float, nullable=True)  # set by scoring (or a caller)
    accepted: Mapped[bool] = mapped_column(Boolean, default=False)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    casebook: Mapped[CaseBook] = relationship(back_populates="cases")
    scorables: Mapped[list[CaseScorable]] = relationship(back_populates="case", order_by="CaseScorable.rank",
                                                         cascade="all, delete-orphan", passive_deletes=True)


SCORABLE_TYPES = ("conversation", "turn", "message")


class CaseScorable(Base):
    """A thing to score, by reference: (scorable_type, scorable_id) names an imported row."""

    __tablename__ = "case_scorables"
    __table_args__ = (UniqueConstraint("case_id", "scorable_type", "scorable_id", "role"),
                      # turn-hash deduplication inside a CaseBook, enforced by the database
                      UniqueConstraint("casebook_id", "dedup_key"),
                      Index("ix_case_scorables_scorable", "scorable_type", "scorable_id"))

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    casebook_id: Mapped[int] = mapped_column(ForeignKey("casebooks.id", ondelete="CASCADE"))
    scorable_type: Mapped[str] = mapped_column(String(16))  # conversation | turn | message
    scorable_id: Mapped[int] = mapped_column(BigInteger)
    role: Mapped[str] = mapped_column(String(16))  # prompt | response | conversation | user | assistant | ...
    rank: Mapped[int | None] = mapped_column(Integer, nullable=True)  # 0: the active answer, then alternatives
    dedup_key: Mapped[str | None] = mapped_column(String(64), nullable=True)  # turn hash; NULL: not deduplicated
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    case: Mapped[Case] = relationship(back_populates="scorables")


class GoalState(Base):
    """Where a goal stands in a CaseBook: its champion, wins and losses, averaged delta, trust."""

    __tablename__ = "goal_states"
    __table_args__ = (UniqueConstraint("casebook_id", "goal_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    casebook_id: Mapped[int] = mapped_column(ForeignKey("casebooks.id", ondelete="CASCADE"))
    goal_id: Mapped[int] = mapped_column(ForeignKey("goals.id", ondelete="CASCADE"), index=True)
    champion_case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"), nullable=True)
    champion_quality: Mapped[float | None] = mapped_column(Float, nullable=True)
    run_ix: Mapped[int] = mapped_column(Integer, default=0)  # updates so far
    wins: Mapped[int] = mapped_column(Integer, default=0)
    losses: Mapped[int] = mapped_column(Integer, default=0)
    avg_delta: Mapped[float | None] = mapped_column(Float, nullable=True)  # exponentially averaged
    trust: Mapped[float] = mapped_column(Float, default=0.0)  # Wilson lower bound of the win rate
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # champion history


class CaseABResult(Base):
    """One A/B comparison: a candidate case against a baseline for the same goal."""

    __tablename__ = "case_ab_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    casebook_id: Mapped[int] = mapped_column(ForeignKey("casebooks.id", ondelete="CASCADE"), index=True)
    goal_id: Mapped[int] = mapped_column(ForeignKey("goals.id", ondelete="CASCADE"))
    baseline_case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"), nullable=True)
    candidate_case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"), nullable=True)
    baseline_quality: Mapped[float] = mapped_column(Float)
    candidate_quality: Mapped[float] = mapped_column(Float)
    delta: Mapped[float] = mapped_column(Float)
    improved: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


# ----------------------------------------------------------------------------- scoring (migration 0004)


class ScoreRow(Base):
    """One scorer's score of one scorable on one dimension (scorer "ensemble": the weighted aggregate;
    dimension "overall": the aggregate over dimensions). A failed score keeps the reason, no value."""

    __tablename__ = "scores"
    __table_args__ = (UniqueConstraint("scorable_type", "scorable_id", "dimension", "scorer"),
                      Index("ix_scores_dimension_scorer", "dimension", "scorer"))

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    scorable_type: Mapped[str] = mapped_column(String(16))
    scorable_id: Mapped[int] = mapped_column(BigInteger)
    dimension: Mapped[str] = mapped_column(String(32))
    scorer: Mapped[str] = mapped_column(String(32))
    scorer_version: Mapped[str] = mapped_column(String(32))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(8), default="ok")  # ok | failed
    rationale: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    pipeline_run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class MarsReport(Base):
    """Inter-scorer agreement on one dimension, as measured after a scoring run."""

    __tablename__ = "mars_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pipeline_run_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    dimension: Mapped[str] = mapped_column(String(32))
    scorers: Mapped[list[str]] = mapped_column(JSONType, default=list)
    items: Mapped[int] = mapped_column(Integer, default=0)
    agreement: Mapped[float | None] = mapped_column(Float, nullable=True)  # mean pairwise Spearman
    alpha: Mapped[float | None] = mapped_column(Float, nullable=True)  # Krippendorff's alpha (interval)
    mean_disagreement: Mapped[float | None] = mapped_column(Float, nullable=True)
    most_disagreeing_pair: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    pairs: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    top_items: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ScorerModel(Base):
    """A trained, versioned learned scorer (SICQL critic, MRQ regressor, linear SVM)."""

    __tablename__ = "scorer_models"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    dimensions: Mapped[list[str]] = mapped_column(JSONType, default=list)
    embedding_model: Mapped[str] = mapped_column(String(255), default="")
    examples: Mapped[int] = mapped_column(Integer, default=0)
    source: Mapped[str] = mapped_column(String(255), default="")  # "scores" or a labels file
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ScorableEmbedding(Base):
    """The sentence embedding of a scorable's text (novelty, ranking and learned scorers reuse it)."""

    __tablename__ = "scorable_embeddings"

    scorable_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    scorable_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, L2-normalised
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# ----------------------------------------------------------------------------- training (migration 0005)


class DatasetVersion(Base):
    """One prepared PACS dataset: a Parquet file of (prompt, response, reward, label, group, split) rows.

    ``content_hash`` covers the rows and the settings that made them; preparing unchanged data again
    finds this row and reuses its file instead of writing another version."""

    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("content_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    verifier: Mapped[str] = mapped_column(String(32))
    verifier_version: Mapped[str] = mapped_column(String(32), default="")
    rows: Mapped[int] = mapped_column(Integer, default=0)
    groups: Mapped[int] = mapped_column(Integer, default=0)
    train_rows: Mapped[int] = mapped_column(Integer, default=0)
    val_rows: Mapped[int] = mapped_column(Integer, default=0)
    positives: Mapped[int] = mapped_column(Integer, default=0)
    negatives: Mapped[int] = mapped_column(Integer, default=0)
    excluded: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # reason -> count
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    pipeline_run_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)  # the source run
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # group-size histogram, rules, splits


class ModelVersion(Base):
    """A trained model (the PACS critic): safetensors + meta.json in ``path``, its data and its figures."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("kind", "version"), UniqueConstraint("kind", "run_name", "steps"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # "pacs_critic"
    version: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    run_name: Mapped[str] = mapped_column(String(255))
    steps: Mapped[int] = mapped_column(Integer, default=0)
    dataset_version_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_versions.id", ondelete="SET NULL"),
                                                           nullable=True, index=True)
    backbone: Mapped[str] = mapped_column(String(16), default="")
    encoder: Mapped[str] = mapped_column(String(255), default="")
    checkpoint: Mapped[str | None] = mapped_column(Text, nullable=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    pipeline_run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TrainingStat(Base):
    """One optimiser step of a training run (rank 0's all-reduced figures)."""

    __tablename__ = "training_stats"
    __table_args__ = (UniqueConstraint("model_version_id", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    ok: Mapped[bool] = mapped_column(Boolean, default=True)  # False: the update was rejected (NaN/inf)
    loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    psi_mean: Mapped[float | None] = mapped_column(Float, nullable=True)
    coupling_ratio: Mapped[float | None] = mapped_column(Float, nullable=True)
    accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    grad_norm: Mapped[float | None] = mapped_column(Float, nullable=True)
    samples: Mapped[int] = mapped_column(Integer, default=0)
    groups: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


# ----------------------------------------------------------------------------- NER retriever (migration 0006)
#
# Mentions keep their *raw* span vector (the span model's layer, float32): the Annoy index is rebuilt from
# them in one pass through the current projection, so neither adding scorables nor retraining the projection
# re-embeds anything. Mention and entity ids are deterministic hashes of their natural keys (a mention:
# scorable, offset, text; an entity: its normalised name), so reruns conflict instead of duplicating.


class NerScorable(Base):
    """A scorable the NER stage has read: with which span model, what it found, or why it failed."""

    __tablename__ = "ner_scorables"
    __table_args__ = (UniqueConstraint("scorable_type", "scorable_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scorable_type: Mapped[str] = mapped_column(String(16))
    scorable_id: Mapped[int] = mapped_column(BigInteger)
    signature: Mapped[str] = mapped_column(String(255))  # span model | layer | pooling (spans.SpanSettings)
    text_chars: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(8), default="ok")  # ok | empty | failed
    mentions: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    pipeline_run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    indexed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # chunks skipped (script), truncated ...


class NerEntity(Base):
    """A knowledge-graph node: one normalised entity name, whatever its surface forms and detectors."""

    __tablename__ = "ner_entities"
    __table_args__ = (UniqueConstraint("norm"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    norm: Mapped[str] = mapped_column(String(512))  # text.normalise_entity
    name: Mapped[str] = mapped_column(String(512))  # the most frequent surface form
    label: Mapped[str] = mapped_column(String(32))  # the most frequent semantic label
    mentions: Mapped[int] = mapped_column(Integer, default=0)
    scorables: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NerMention(Base):
    """One occurrence of an entity in a scorable's text, with exact offsets and its raw span vector."""

    __tablename__ = "ner_mentions"
    __table_args__ = (Index("ix_ner_mentions_scorable", "scorable_type", "scorable_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    scorable_type: Mapped[str] = mapped_column(String(16))
    scorable_id: Mapped[int] = mapped_column(BigInteger)
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    label: Mapped[str] = mapped_column(String(32), index=True)
    detector: Mapped[str] = mapped_column(String(64))
    score: Mapped[float] = mapped_column(Float)
    entity_id: Mapped[int] = mapped_column(ForeignKey("ner_entities.id", ondelete="CASCADE"), index=True)
    snippet: Mapped[str] = mapped_column(Text, default="")
    snippet_start: Mapped[int] = mapped_column(Integer, default=0)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32 raw span vector
    signature: Mapped[str] = mapped_column(String(255))


class NerEdge(Base):
    """Co-occurrence: two entities mentioned in the same scorable (``weight`` scorables); entity_a < entity_b."""

    __tablename__ = "ner_edges"

    entity_a: Mapped[int] = mapped_column(ForeignKey("ner_entities.id", ondelete="CASCADE"), primary_key=True)
    entity_b: Mapped[int] = mapped_column(ForeignKey("ner_entities.id", ondelete="CASCADE"), primary_key=True,
                                          index=True)
    weight: Mapped[int] = mapped_column(Integer, default=0)
