"""``stephanie import``: files -> units -> (Ray Data) parse -> batched writes -> summary.

The driver hashes and detects files and cuts them into units (paths and byte offsets only);
Ray Data tasks parse, normalise and hash the conversations of each unit in parallel; the driver
streams the results into :class:`~.writer.ConversationWriter`, whose thread writes while parsing
goes on. In-process, the same :func:`~.parse.parse_unit` runs in this process: both give identical
database contents; ``ingest.parallel=auto`` picks one (:func:`choose_parallel`).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ..config import StephanieConfig
from ..db import Database, ImportFile, utcnow
from ..progress_bar import ProgressBar
from .parse import parse_unit
from .sources import SourceFile, Unit, collect, detect, plan_units
from .writer import ConversationWriter

log = logging.getLogger(__name__)
DONE_STATUSES = ("imported", "partial", "ignored")


@dataclass
class ImportSummary:
    files_seen: int = 0
    files_imported: int = 0
    files_skipped_duplicate: int = 0
    files_failed: int = 0
    files_ignored: int = 0
    conversations_new: int = 0
    conversations_merged: int = 0
    conversations_unchanged: int = 0
    conversations_failed: int = 0
    conversations_empty: int = 0     # conversations without a message: skipped, not failed
    messages_new: int = 0
    turns_new: int = 0
    seconds: float = 0.0
    parallel: bool = False           # parsed on Ray Data (else in this process)
    write_seconds: float = 0.0       # writer-thread time in database writes (overlaps parsing)
    write_wait_seconds: float = 0.0  # time parsing waited for the writer (the writer was the bottleneck)
    parse_wait_seconds: float = 0.0  # time spent parsing (in-process) or receiving parsed rows (Ray Data)
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def counts(self) -> dict[str, Any]:
        """What the audit trail keeps (errors listed in full in import_files)."""
        out = {k: v for k, v in self.__dict__.items() if k not in ("errors", "warnings")}
        out["failed"] = len(self.errors)
        out["errors"] = self.errors[:50]
        return out


def _iter_parallel(units: list[Unit], cfg: StephanieConfig) -> Iterator[dict[str, Any]]:
    import ray

    from ..ray_utils import ensure_ray

    ensure_ray(cfg.ray)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # same write order as serial: identical results
    ctx.enable_progress_bars = False  # our own bar counts finished units
    max_chars = cfg.ingest.max_message_chars

    def parse_rows(row: dict[str, Any]) -> list[dict[str, Any]]:
        out = parse_unit(Unit.from_row(row), max_chars)
        return out + [{"file_id": int(row["file_id"]), "kind": "unit_done", "conversation": None, "payload": None,
                       "error": None, "messages": 0}]

    ds = ray.data.from_items([u.to_row() for u in units], override_num_blocks=len(units))
    workers = cfg.ingest.num_workers
    if not workers:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        alive = [n for n in ray.nodes() if n.get("Alive")]
        # On a single machine the driver's writer needs a core of its own: parsing on every core
        # starved it (2 cores: 12.1k msg/s with 2 parse tasks, 15.6k with 1; benchmarks/ingest.py).
        workers = max(1, cpus - 1) if len(alive) == 1 else cpus
    ds = ds.flat_map(parse_rows, compute=ray.data.TaskPoolStrategy(size=workers))
    yield from ds.iter_rows()


def _ray_running() -> bool:
    """Ray already initialised in this process (without importing it, which costs a second)."""
    return "ray" in sys.modules and sys.modules["ray"].is_initialized()


def choose_parallel(cfg: StephanieConfig, total_bytes: int) -> tuple[bool, str]:
    """(parse on Ray Data?, why) for ``ingest.parallel`` = auto | true | false.

    What decides (benchmarks/ingest.py --e2e; README "Importing"): starting a local Ray costs
    seconds and ~1 GB of memory, and on one machine the single database writer is the bottleneck
    once parsing runs beside it — which the in-process path already does (its writer thread). So
    Ray Data pays only where it costs no start-up (a cluster, a Ray already running in this
    process) or where several cores can parse a large input for one writer.
    """
    mode = cfg.ingest.parallel
    if mode is True or mode is False:
        return mode, "ingest.parallel=" + str(mode).lower()
    address = cfg.ray.address or os.environ.get("RAY_ADDRESS", "")
    if address:
        return True, f"auto: a Ray cluster is configured ({address})"
    if _ray_running():
        return True, "auto: Ray is already running in this process"
    cores = cfg.ray.num_cpus or os.cpu_count() or 1
    parse_cores = cores - 1  # one core is the writer's
    # On 2 cores (one parse task beside the writer) Ray Data never won in the benchmark, at any size:
    # one parse task pipelined with the writer does not repay Ray's start-up and serialisation.
    if parse_cores >= 2 and total_bytes >= cfg.ingest.auto_parallel_mb * 2**20:
        return True, f"auto: {total_bytes / 2**20:.0f} MiB to parse on {parse_cores} cores beside the writer"
    return False, (f"auto: {total_bytes / 2**20:.0f} MiB on {cores} core(s) imports faster in this process "
                   f"(Ray Data from ingest.auto_parallel_mb = {cfg.ingest.auto_parallel_mb} MiB with >= 3 cores)")


def u_bytes(unit: Unit) -> int:
    """Bytes a unit covers (a whole-file unit: the file's size)."""
    if unit.ranges:
        return sum(e - s for s, e in unit.ranges)
    try:
        return os.path.getsize(unit.path)
    except OSError:
        return 0


def _writer_mode(db: Database, icfg: Any, total_bytes: int) -> str | None:
    """Where the database writes run while parsing goes on (see ConversationWriter).

    PostgreSQL: a writer thread — the server does the work in its own process while psycopg2 waits
    on the socket without the GIL. SQLite: SQLite works inside the process that calls it, and a
    writer *thread* only queued on the GIL behind the parser (measured: no faster than writing in
    line), so from ``ingest.sqlite_writer_process_mb`` up a writer *process* takes the writes
    (a second core; ``benchmarks/ingest.py --e2e``); below it, starting that process costs more
    than it saves. An in-memory SQLite database cannot be shared with another process.
    """
    if db.backend == "postgresql":
        return "thread"
    memory = db.url.database in (None, "", ":memory:")
    if (not memory and icfg.sqlite_writer_process_mb and total_bytes >= icfg.sqlite_writer_process_mb * 2**20
            and (os.cpu_count() or 1) >= 2):
        return "process"
    return None


def _iter_serial(units: list[Unit], cfg: StephanieConfig) -> Iterator[dict[str, Any]]:
    for u in units:
        yield from parse_unit(u, cfg.ingest.max_message_chars, serialise=False)
        yield {"file_id": u.file_id, "kind": "unit_done"}


def _claim_file(db: Database, src: SourceFile, run_id: int | None) -> tuple[int, bool]:
    """(import_files id, already done?) — a row is claimed as 'running' before any conversation is written."""
    with db.session() as s:
        row = s.scalars(select(ImportFile).where(ImportFile.sha256 == src.sha256)).first()
        if row is not None and row.status in DONE_STATUSES:
            return row.id, True
        if row is None:
            row = ImportFile(sha256=src.sha256, path=src.display, size=src.size)
            s.add(row)
        row.status, row.path, row.pipeline_run_id = "running", src.display, run_id
        row.started_at, row.finished_at, row.error = utcnow(), None, None
        s.flush()
        return row.id, False


def _finish_file(db: Database, file_id: int, status: str, fmt: str | None, counts: dict[str, Any],
                 error: str | None, errors: list[dict[str, Any]]) -> None:
    with db.session() as s:
        row = s.get(ImportFile, file_id)
        assert row is not None
        row.status, row.format, row.counts, row.error, row.errors = status, fmt, counts, error, errors
        row.finished_at = utcnow()


def run_import(cfg: StephanieConfig, db: Database, paths: list[str], run_id: int | None = None,
               progress: bool = False) -> ImportSummary:
    t0 = time.perf_counter()
    icfg = cfg.ingest
    summary = ImportSummary()
    extract_root = Path(icfg.extract_dir) if icfg.extract_dir else cfg.run.runs_path / "extracted"
    sources, collect_errors = collect(paths, extract_root)
    for e in collect_errors:
        summary.files_failed += 1
        summary.files_seen += 1
        summary.errors.append(e)

    units: list[Unit] = []
    files: dict[int, dict[str, Any]] = {}
    for src in sources:
        summary.files_seen += 1
        summary.warnings.extend({"file": src.display, "conversation": None, "warning": w} for w in src.warnings)
        file_id, done = _claim_file(db, src, run_id)
        if done:
            summary.files_skipped_duplicate += 1
            log.info("skipping %s: already imported (sha256 %s)", src.display, src.sha256[:12])
            continue
        det = detect(src, icfg.max_whole_file_mb * 1024 * 1024)
        if det.ignored or (det.error and not src.explicit and det.error.startswith("unknown format (neither")):
            summary.files_ignored += 1
            _finish_file(db, file_id, "ignored", None, {}, det.ignored or det.error, [])
            continue
        if det.error or det.format is None:
            summary.files_failed += 1
            summary.errors.append({"file": src.display, "conversation": None, "error": det.error})
            _finish_file(db, file_id, "failed", None, {}, det.error, [])
            continue
        file_units, split_error = plan_units(file_id, src, det, icfg.unit_mb * 1024 * 1024, icfg.unit_conversations)
        for u in file_units:
            u.dialect = db.backend
        files[file_id] = {"src": src, "format": det.format, "error": split_error, "units": len(file_units)}
        units.extend(file_units)
        log.info("%s: %s, %d bytes, %d parse tasks", src.display, det.format, src.size, len(file_units))

    parallel, why = choose_parallel(cfg, sum(info["src"].size for info in files.values()))
    summary.parallel = parallel and bool(units)
    log.info("parsing %s (%s)", "on Ray Data" if summary.parallel else "in this process", why)
    writer = ConversationWriter(db, batch_messages=icfg.batch_messages,
                                background=_writer_mode(db, icfg, sum(u_bytes(u) for u in units)))
    bar = ProgressBar(len(units), progress, "import", "parse task", logger=log)
    rows = _iter_parallel(units, cfg) if summary.parallel else _iter_serial(units, cfg)
    t_rows = time.perf_counter()
    try:
        for row in rows:
            if row["kind"] == "unit_done":
                bar.update(1)
                continue
            writer.add(row)
    finally:
        try:
            writer.close()
        finally:
            rows.close()  # on an error, stop the Ray Data execution now, while Ray is still up
            bar.close()
    t_done = time.perf_counter()

    for file_id, info in files.items():
        fs = writer.file(file_id)
        src = info["src"]
        errors = [{"file": src.display, **e} for e in fs.errors]
        if info["error"]:
            errors.append({"file": src.display, "conversation": None, "error": info["error"]})
        good = fs.conversations_new + fs.conversations_merged + fs.conversations_unchanged
        status = "imported" if not errors else ("partial" if good else "failed")
        counts = fs.counts()
        if fs.warnings or src.warnings:
            counts["warnings"] = len(fs.warnings) + len(src.warnings)
        _finish_file(db, file_id, status, info["format"], counts, info["error"], errors[: icfg.max_errors_listed])
        summary.files_imported += status != "failed"
        summary.files_failed += status == "failed"
        for k in fs.COUNTERS:
            setattr(summary, k, getattr(summary, k) + getattr(fs, k))
        summary.errors.extend(errors)
        summary.warnings.extend({"file": src.display, **w} for w in fs.warnings)
    summary.seconds = round(time.perf_counter() - t0, 3)
    summary.write_seconds = round(writer.write_seconds, 3)
    summary.write_wait_seconds = round(writer.wait_seconds, 3)
    summary.parse_wait_seconds = round(t_done - t_rows - writer.wait_seconds, 3)
    log.info("import: %.1f s; the writer thread spent %.1f s writing, the parser %.1f s waiting for it",
             summary.seconds, summary.write_seconds, summary.write_wait_seconds)
    return summary


def import_stage(ctx: Any) -> dict[str, Any]:
    """The pipeline's first stage."""
    summary = run_import(ctx.config, ctx.db, ctx.inputs, run_id=ctx.run_id, progress=ctx.progress)
    ctx.results["import"] = summary
    return summary.counts()
