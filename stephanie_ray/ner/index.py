"""The Annoy index over projected mention vectors, with its metadata, built in one pass from stored vectors.

Layout under ``<ner dir>/index/``::

    CURRENT                 the name of the build in use (replaced atomically: readers never see half a build)
    b<timestamp>/entities.ann   Annoy, angular, over L2-normalised projected vectors (memory-mapped on load,
                                so Serve replicas and CLI processes share one copy in the page cache)
    b<timestamp>/meta.parquet   one row per Annoy item: mention id, scorable, entity text and type, offsets,
                                snippet (read memory-mapped)
    b<timestamp>/index.json     format, projection version and signature, span signature, n_trees, count,
                                the .ann file's size and a checksum of its ends, build time

Annoy cannot add items after ``build``; the raw vectors live in the database (``ner_mentions.vector``), so
adding scorables means one pass: read the stored vectors, project, add, build — never re-embedding.
Deduplication by (scorable, entity text, offset) is a set lookup per mention (constant time).

A missing or damaged index, or one built by another projection or span model, is refused with a one-line
reason and the command that rebuilds it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..errors import UserError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
REBUILD = "rebuild it with: stephanie ner index"
META_COLUMNS = ("mention_id", "scorable_type", "scorable_id", "entity_text", "entity_type", "start", "end",
                "snippet", "snippet_start")
KEEP_BUILDS = 2  # the one in use and the one before (a reader may still be loading it)


@dataclass
class IndexRows:
    """A batch of stored mentions to index: metadata columns and their raw vectors (n, in_dim)."""

    mention_id: list[int]
    scorable_type: list[str]
    scorable_id: list[int]
    entity_text: list[str]
    entity_type: list[str]
    start: list[int]
    end: list[int]
    snippet: list[str]
    snippet_start: list[int]
    raw: np.ndarray


@dataclass
class BuildResult:
    path: Path
    items: int
    duplicates: int
    unembeddable: int
    seconds: float
    bytes: int


def _ends_checksum(path: Path, n: int = 1 << 16) -> str:
    size = path.stat().st_size
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        h.update(f.read(n))
        if size > n:
            f.seek(max(n, size - n))
            h.update(f.read(n))
    return h.hexdigest()


def build_index(root: Path, batches: Iterable[IndexRows], projection: Any, *, n_trees: int,
                span_signature: str) -> BuildResult:
    """Project every stored vector once, add to Annoy, build, write beside its metadata, switch CURRENT."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from annoy import AnnoyIndex

    t0 = time.perf_counter()
    base = Path(root) / "index"
    base.mkdir(parents=True, exist_ok=True)
    name = "b" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    tmp = base / f".tmp-{name}-{os.getpid()}"
    tmp.mkdir()
    ann = AnnoyIndex(projection.out_dim, "angular")
    seen: set[tuple[str, int, str, int]] = set()
    cols: dict[str, list[Any]] = {c: [] for c in META_COLUMNS}
    dup = bad = 0
    n = 0
    try:
        for rows in batches:
            vecs = projection.project(rows.raw)  # (b, out_dim) unit rows
            ok = np.isfinite(vecs).all(axis=1)
            for j in range(len(rows.mention_id)):
                key = (rows.scorable_type[j], rows.scorable_id[j], rows.entity_text[j], rows.start[j])
                if key in seen:
                    dup += 1
                    continue
                if not ok[j]:
                    bad += 1
                    continue
                seen.add(key)
                ann.add_item(n, vecs[j])
                for c in META_COLUMNS:
                    cols[c].append(getattr(rows, c)[j])
                n += 1
        ann.build(n_trees, n_jobs=1)
        ann.save(str(tmp / "entities.ann"))
        ann.unload()
        table = pa.table({
            "mention_id": pa.array(cols["mention_id"], pa.int64()),
            "scorable_type": pa.array(cols["scorable_type"], pa.string()),
            "scorable_id": pa.array(cols["scorable_id"], pa.int64()),
            "entity_text": pa.array(cols["entity_text"], pa.string()),
            "entity_type": pa.array(cols["entity_type"], pa.string()),
            "start": pa.array(cols["start"], pa.int32()),
            "end": pa.array(cols["end"], pa.int32()),
            "snippet": pa.array(cols["snippet"], pa.string()),
            "snippet_start": pa.array(cols["snippet_start"], pa.int32()),
        })
        pq.write_table(table, tmp / "meta.parquet")
        ann_path = tmp / "entities.ann"
        info = {
            "format_version": FORMAT_VERSION, "items": n, "dim": projection.out_dim, "metric": "angular",
            "n_trees": n_trees, "projection_version": projection.version,
            "projection_signature": projection.signature, "span_signature": span_signature,
            "ann_bytes": ann_path.stat().st_size, "ann_checksum": _ends_checksum(ann_path),
            "built_at": datetime.now(timezone.utc).isoformat(), "duplicates": dup, "unembeddable": bad,
        }
        (tmp / "index.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        final = base / name
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    pointer = base / f".CURRENT.{os.getpid()}"
    pointer.write_text(name + "\n", encoding="utf-8")
    os.replace(pointer, base / "CURRENT")
    builds = sorted(p for p in base.iterdir() if p.is_dir() and p.name.startswith("b"))
    for old in builds[:-KEEP_BUILDS]:
        shutil.rmtree(old, ignore_errors=True)
    size = sum(f.stat().st_size for f in final.iterdir())
    return BuildResult(final, n, dup, bad, round(time.perf_counter() - t0, 3), size)


@dataclass
class Hit:
    row: int
    similarity: float  # cosine in projected space


class EntityIndex:
    """A loaded (memory-mapped) index: ``search`` gives rows of ``meta`` with cosine similarities."""

    def __init__(self, path: Path, info: dict[str, Any], ann: Any, meta: Any):
        self.path, self.info, self.ann, self.meta = path, info, ann, meta

    @classmethod
    def load(cls, root: Path, *, projection_version: int | None = None, projection_signature: str | None = None,
             span_signature: str | None = None) -> EntityIndex:
        import pyarrow as pa
        import pyarrow.parquet as pq
        from annoy import AnnoyIndex

        base = Path(root) / "index"
        try:
            name = (base / "CURRENT").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise UserError(f"no entity index at {base}: {REBUILD}") from None
        path = base / name
        try:
            info = json.loads((path / "index.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"the entity index at {path} is missing or corrupt ({exc}): {REBUILD}") from None
        if not isinstance(info, dict) or info.get("format_version") != FORMAT_VERSION:
            raise UserError(f"the entity index at {path} has an unknown format: {REBUILD}")
        if projection_version is not None and info.get("projection_version") != projection_version:
            raise UserError(f"the entity index was built with projection v{info.get('projection_version')}, the "
                            f"current projection is v{projection_version}: {REBUILD}")
        if projection_signature is not None and info.get("projection_signature") != projection_signature:
            raise UserError(f"the entity index was built from span vectors of {info.get('projection_signature')!r}, "
                            f"the configured span model is {projection_signature!r}: {REBUILD}")
        if span_signature is not None and info.get("span_signature") != span_signature:
            raise UserError(f"the entity index was built for span model {info.get('span_signature')!r}, the "
                            f"configured one is {span_signature!r}: {REBUILD}")
        ann_path = path / "entities.ann"
        try:
            size = ann_path.stat().st_size
        except FileNotFoundError:
            raise UserError(f"the entity index file {ann_path} is missing: {REBUILD}") from None
        if size != info.get("ann_bytes") or _ends_checksum(ann_path) != info.get("ann_checksum"):
            raise UserError(f"the entity index file {ann_path} is corrupt (size or checksum differs from "
                            f"index.json): {REBUILD}")
        ann = AnnoyIndex(int(info["dim"]), "angular")
        try:
            ann.load(str(ann_path), prefault=False)  # mmap: shared between processes
        except OSError as exc:
            raise UserError(f"cannot load the entity index {ann_path} ({exc}): {REBUILD}") from None
        try:
            meta = pq.read_table(path / "meta.parquet", memory_map=True)
        except (OSError, pa.ArrowInvalid) as exc:
            raise UserError(f"the entity index metadata at {path} is missing or corrupt ({exc}): {REBUILD}") from None
        if meta.num_rows != info.get("items") or ann.get_n_items() != info.get("items"):
            raise UserError(f"the entity index at {path} is inconsistent ({ann.get_n_items()} vectors, "
                            f"{meta.num_rows} metadata rows, {info.get('items')} recorded): {REBUILD}")
        return cls(path, info, ann, meta)

    @property
    def items(self) -> int:
        return int(self.info["items"])

    def search(self, vec: np.ndarray, k: int, search_k: int = -1) -> list[Hit]:
        if self.items == 0 or k <= 0:
            return []
        ids, dist = self.ann.get_nns_by_vector(np.asarray(vec, dtype=np.float32).tolist(), k, search_k=search_k,
                                               include_distances=True)
        # angular distance d = sqrt(2 - 2 cos) between unit vectors
        return [Hit(i, float(1.0 - d * d / 2.0)) for i, d in zip(ids, dist)]

    def row(self, i: int) -> dict[str, Any]:
        return {c: self.meta.column(c)[i].as_py() for c in META_COLUMNS}

    def vector(self, i: int) -> np.ndarray:
        return np.asarray(self.ann.get_item_vector(i), dtype=np.float32)


def resolve_search_k(search_k: int, k: int, n_trees: int) -> int:
    """Config ``ner.search_k``: 0 -> 50 x k x n_trees (see benchmarks/ner.py); -1 -> Annoy's default."""
    return 50 * k * n_trees if search_k == 0 else search_k
