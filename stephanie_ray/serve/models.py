"""Something to serve on a fresh clone: a critic trained on the bundled examples and their entity index,
made only when the runs folder has none (the benchmark and the Serve tests call :func:`ensure_models`).

The examples are small (14 answers, 7 with a reaction verdict), so the critic is a smoke-test model, not a
good one: what is measured with it is the serving, not the judgement.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..config import StephanieConfig
from ..errors import UserError

log = logging.getLogger(__name__)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def newest_critic(cfg: StephanieConfig) -> tuple[str, Path] | None:
    from ..db import Database
    from .service import VerifierService

    cfg.run.runs_path.mkdir(parents=True, exist_ok=True)
    Database.from_config(cfg).dispose()  # a fresh clone: create the schema first
    try:
        return VerifierService(cfg.db_url).resolve(None)
    except UserError:
        return None


def has_index(cfg: StephanieConfig) -> bool:
    from ..ner.index import EntityIndex
    from ..ner.stage import ner_dir

    try:
        EntityIndex.load(ner_dir(cfg))
        return True
    except UserError:
        return False


def ensure_models(cfg: StephanieConfig, inputs: list[str] | None = None) -> dict[str, Any]:
    """Train a critic and build the entity index from ``inputs`` (default: the bundled examples) unless the
    configured database and runs folder already have them. Returns what was made or found."""
    from ..pipeline import run_pipeline

    inputs = inputs or [str(EXAMPLES)]
    need_critic, need_index = newest_critic(cfg) is None, not has_index(cfg)
    stages = ["ingest", "casebooks", "score", "prepare", "train"] if need_critic else \
        ["ingest", "casebooks"] if need_index else []  # (re-importing is a no-op: deduplicated)
    stages += ["ner"] if need_index else []
    if stages:
        log.info("making what Serve needs from %s: stages %s", inputs, stages)
        res = run_pipeline(cfg, inputs, stages, progress=False)
        if need_critic and newest_critic(cfg) is None:
            raise UserError(f"no critic could be trained on {inputs}: "
                            f"{res.outputs.get('prepare_skipped') or res.outputs.get('train_skipped') or res.status}")
        if need_index and not has_index(cfg):
            raise UserError(f"no entity index could be built from {inputs}: "
                            f"{res.outputs.get('ner_skipped') or res.status}")
    version, path = newest_critic(cfg)  # type: ignore[misc]
    return {"critic_version": version, "critic_path": str(path), "critic_trained": need_critic,
            "index_built": need_index}
