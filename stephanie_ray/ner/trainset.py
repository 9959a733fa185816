"""The projection's training data: the detectors' labels on the imported corpus plus an optional user file.

* **Corpus**: stored mentions (their raw vectors, no re-embedding) whose label is a trainable type in the
  label registry (``labels.py``: not IDENT / ACRONYM / NAME / MISC, not in ``ner.skip_labels``), at most
  ``max_per_type`` per label (a deterministic sample: the lowest mention ids, which are hashes); anchors are
  the label's descriptions.
* **User file** (``ner.train_file``, JSONL), one type per line::

      {"type": "Python web framework", "mentions": ["Django", "Flask", "FastAPI"]}
      {"type": "law firm", "descriptions": ["legal practice"],
       "examples": [{"text": "We hired Baker McKenzie for the filing.", "start": 9, "end": 23}]}

  ``mentions`` are embedded alone, ``examples`` in their sentence; the type's anchors are ``type`` and any
  ``descriptions``. A malformed line is an error naming the line.

Types with fewer than ``min_per_type`` mentions are left out (and listed).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from ..db.models import NerMention
from ..errors import UserError
from ..jsonl import read_jsonl_objects
from .labels import canonical, spec
from .projection import TypeSet


def read_train_file(path: str | Path) -> list[dict[str, Any]]:
    out = []
    for p, d in read_jsonl_objects(path, "the NER training file"):
        if not isinstance(d.get("type"), str) or not d["type"].strip():
            raise UserError(f"{p}: expected an object with a non-empty \"type\"")
        mentions = d.get("mentions", [])
        examples = d.get("examples", [])
        descs = d.get("descriptions", [])
        if not (isinstance(mentions, list) and all(isinstance(m, str) and m.strip() for m in mentions)):
            raise UserError(f"{p}: \"mentions\" must be a list of non-empty strings")
        if not (isinstance(descs, list) and all(isinstance(m, str) and m.strip() for m in descs)):
            raise UserError(f"{p}: \"descriptions\" must be a list of non-empty strings")
        if not isinstance(examples, list):
            raise UserError(f"{p}: \"examples\" must be a list")
        for e in examples:
            ok = isinstance(e, dict) and isinstance(e.get("text"), str) and isinstance(e.get("start"), int) \
                and isinstance(e.get("end"), int) and 0 <= e["start"] < e["end"] <= len(e["text"])
            if not ok:
                raise UserError(f"{p}: each example needs \"text\" and 0 <= \"start\" < \"end\" <= len(text)")
        out.append({"type": d["type"].strip(), "mentions": mentions, "examples": examples, "descriptions": descs})
    return out


def build_typeset(session: Any, embedder: Any, signature: str, *, max_per_type: int, min_per_type: int,
                  skip_labels: list[str], train_file: str = "", user_types: list[dict[str, Any]] | None = None,
                  use_corpus: bool = True) -> tuple[TypeSet, dict[str, Any]]:
    """The :class:`TypeSet` and a report (types used, types left out and why)."""
    skip = {canonical(s) for s in skip_labels}
    names: list[str] = []
    descs: list[list[str]] = []
    ment_vecs: list[np.ndarray] = []
    ment_type: list[int] = []
    left_out: dict[str, int] = {}
    h = hashlib.sha256(signature.encode())
    if use_corpus:
        labels = sorted({lab for (lab,) in session.execute(
            select(NerMention.label).where(NerMention.signature == signature).distinct())})
        for lab in labels:
            sp = spec(lab)
            if not sp.train or lab in skip:
                continue
            rows = session.execute(select(NerMention.id, NerMention.vector).where(
                NerMention.signature == signature, NerMention.label == lab)
                .order_by(NerMention.id).limit(max_per_type)).all()
            if len(rows) < min_per_type:
                left_out[lab] = len(rows)
                continue
            t = len(names)
            names.append(lab)
            descs.append(list(sp.descriptions))
            for mid, vec in rows:
                h.update(str(mid).encode())
                ment_vecs.append(np.frombuffer(vec, dtype=np.float32))
                ment_type.append(t)
    user = list(user_types or [])
    if train_file:
        data = Path(train_file).read_bytes() if Path(train_file).is_file() else b""
        h.update(hashlib.sha256(data).digest())
        user += read_train_file(train_file)
    for u in user:
        texts = [m for m in u["mentions"]] + [e["text"] for e in u["examples"]]
        spans = [[(0, len(m))] for m in u["mentions"]] + [[(e["start"], e["end"])] for e in u["examples"]]
        if len(texts) < min_per_type:
            left_out[f"user:{u['type']}"] = len(texts)
            continue
        h.update(json.dumps(u, sort_keys=True, ensure_ascii=False).encode())
        vecs = [v[0] for v in embedder.embed(texts, spans)]
        vecs = [v for v in vecs if np.isfinite(v).all()]
        t = len(names)
        names.append(f"user:{u['type']}")
        descs.append([u["type"], *u["descriptions"]])
        ment_vecs.extend(vecs)
        ment_type.extend([t] * len(vecs))
    if not names:
        raise UserError("no labelled mentions to train the projection on (index some chats first: stephanie ner "
                        "index, or give ner.train_file)")
    flat = [d for ds in descs for d in ds]
    anchors = embedder.embed_queries(flat)
    anchor_type = np.asarray([t for t, ds in enumerate(descs) for _ in ds], dtype=np.int64)
    ts = TypeSet(names, descs, anchors, anchor_type, np.stack(ment_vecs).astype(np.float32),
                 np.asarray(ment_type, dtype=np.int64), h.hexdigest())
    return ts, {"types": ts.counts(), "left_out": left_out}
