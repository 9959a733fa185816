"""Detection + span embedding for a batch of scorables: one worker per Ray Data actor (or one in-process).

``NerWorker(...)(batch)`` takes an Arrow batch (``scorable_type``, ``scorable_id``, ``text``) and returns an
Arrow table with one row per scorable: its status (ok | empty | failed, with the error), what detection
skipped, and its mentions (offsets, text, label, detector, snippet, raw span vector as float32 bytes).
A batch that fails is retried one scorable at a time, so one bad text costs only itself.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from .detect import Detection, DetectorChain, DetectorSettings
from .spans import SpanEmbedder, SpanSettings
from .text import snippet

log = logging.getLogger(__name__)

INPUT_COLUMNS = ("scorable_type", "scorable_id", "text")


@dataclass(frozen=True)
class WorkerSettings:
    detect: DetectorSettings
    spans: SpanSettings
    snippet_chars: int = 100


def _schema() -> Any:
    import pyarrow as pa

    mention = pa.struct([("start", pa.int32()), ("end", pa.int32()), ("text", pa.string()), ("label", pa.string()),
                         ("detector", pa.string()), ("score", pa.float32()), ("snippet", pa.string()),
                         ("snippet_start", pa.int32()), ("vector", pa.binary())])
    return pa.schema([("scorable_type", pa.string()), ("scorable_id", pa.int64()), ("text_chars", pa.int64()),
                      ("status", pa.string()), ("error", pa.string()), ("meta", pa.string()),
                      ("mentions", pa.list_(mention))])


def inputs_to_arrow(rows: list[tuple[str, int, str]]) -> Any:
    import pyarrow as pa

    return pa.table({"scorable_type": pa.array([r[0] for r in rows], pa.string()),
                     "scorable_id": pa.array([r[1] for r in rows], pa.int64()),
                     "text": pa.array([r[2] for r in rows], pa.string())})


class NerWorker:
    def __init__(self, settings: WorkerSettings):
        self.settings = settings
        self.chain = DetectorChain(settings.detect)
        self.embedder = SpanEmbedder.get(settings.spans)

    def _process(self, texts: list[str]) -> list[tuple[Detection, list[np.ndarray]]]:
        dets = self.chain.detect(texts)
        vecs = self.embedder.embed([t or "" for t in texts], [[(m.start, m.end) for m in d.mentions] for d in dets])
        return list(zip(dets, vecs))

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        types = batch.column("scorable_type").to_pylist()
        ids = batch.column("scorable_id").to_pylist()
        texts = [t if isinstance(t, str) else "" for t in batch.column("text").to_pylist()]
        try:
            results: list[Any] = self._process(texts)
        except Exception as exc:  # noqa: BLE001 - isolate the failing text below, then report it per scorable
            log.warning("NER batch of %d failed (%s); retrying one by one", len(texts), exc)
            results = []
            for t in texts:
                try:
                    results.append(self._process([t])[0])
                except Exception as one:  # noqa: BLE001 - recorded as this scorable's error
                    results.append(f"{type(one).__name__}: {one}")
        rows: dict[str, list[Any]] = {c: [] for c in _schema().names}
        for st, sid, text, res in zip(types, ids, texts, results):
            rows["scorable_type"].append(st)
            rows["scorable_id"].append(sid)
            rows["text_chars"].append(len(text))
            if isinstance(res, str):
                rows["status"].append("failed")
                rows["error"].append(res[:2000])
                rows["meta"].append("{}")
                rows["mentions"].append([])
                continue
            det, vecs = res
            mentions, unembeddable = [], 0
            for m, v in zip(det.mentions, vecs):
                if not np.isfinite(v).all():
                    unembeddable += 1
                    continue
                s0, snip = snippet(text, m.start, m.end, self.settings.snippet_chars)
                mentions.append({"start": m.start, "end": m.end, "text": m.text, "label": m.label,
                                 "detector": m.detector, "score": m.score, "snippet": snip, "snippet_start": s0,
                                 "vector": np.asarray(v, dtype=np.float32).tobytes()})
            rows["status"].append("ok" if text.strip() else "empty")
            rows["error"].append(None)
            rows["meta"].append(json.dumps({"chunks": det.chunks, "chunks_skipped_script": det.chunks_skipped_script,
                                            "truncated": det.truncated, "dropped": det.dropped,
                                            "unembeddable": unembeddable}))
            rows["mentions"].append(mentions)
        return pa.table(rows, schema=_schema())
