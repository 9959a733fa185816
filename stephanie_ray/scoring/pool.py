"""Running the scoring workers: in this process, or on a Ray Data actor pool (``map_batches`` with
``ActorPoolStrategy``). Items go in and results come out as Arrow tables (typed columns), chunk by chunk."""

from __future__ import annotations

import dataclasses
from typing import Iterator

from ..config import StephanieConfig
from ..db.bulk import chunks
from .base import Item
from .registry import ScorerSettings
from .results import ItemResult, items_to_arrow, results_from_arrow
from .worker import ScoringWorker


def iter_serial(items: list[Item], names: list[str], dims: list[str], settings: ScorerSettings,
                batch_size: int) -> Iterator[list[ItemResult]]:
    worker = ScoringWorker(names, dims, settings)
    for part in chunks(items, batch_size):
        yield worker.score(items_to_arrow(part))


def iter_parallel(cfg: StephanieConfig, items: list[Item], names: list[str], dims: list[str],
                  settings: ScorerSettings) -> Iterator[list[ItemResult]]:
    import ray

    from ..ray_utils import ensure_ray

    info = ensure_ray(cfg.ray)
    scfg = cfg.scoring
    cpus = int(ray.cluster_resources().get("CPU", 1)) if info else 1
    size = scfg.num_actors or max(1, min(8, cpus))
    threads = max(1, cpus // size)  # torch threads per actor: the CPUs shared out, not oversubscribed
    emb = {**settings.embedding, "num_threads": settings.embedding.get("num_threads") or threads}
    settings = dataclasses.replace(settings, embedding=emb)
    # one Arrow block per batch: the actor pool shares blocks out, so one big block would be one actor's work
    blocks = [items_to_arrow(part) for part in chunks(items, scfg.batch_size)]
    ds = ray.data.from_arrow(blocks).map_batches(
        ScoringWorker, fn_constructor_kwargs={"scorers": names, "dimensions": dims, "settings": settings},
        batch_size=scfg.batch_size, compute=ray.data.ActorPoolStrategy(size=size), num_cpus=1,
        batch_format="pyarrow")
    it = ds.iter_batches(batch_size=None, batch_format="pyarrow")
    try:
        for batch in it:
            yield results_from_arrow(batch)
    finally:
        close = getattr(it, "close", None)
        if close:
            close()


def iter_results(cfg: StephanieConfig, items: list[Item], names: list[str], dims: list[str],
                 settings: ScorerSettings) -> Iterator[list[ItemResult]]:
    scfg = cfg.scoring
    if scfg.parallel:
        return iter_parallel(cfg, items, names, dims, settings)
    return iter_serial(items, names, dims, settings, scfg.batch_size)


