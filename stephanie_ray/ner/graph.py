"""The entity knowledge graph in the database: writes from the NER stage, and its queries.

* **Nodes** (``ner_entities``): one per normalised name (:func:`text.normalise_entity` — NFKC, case-folded,
  whitespace collapsed, edge punctuation and a leading article dropped), so "PyTorch", "pytorch" and
  "the PyTorch" are one node; its display name and label are the most frequent surface form and semantic
  label among its mentions.
* **Mentions** (``ner_mentions``) link a node to a scorable (exact offsets); scorables link to cases and
  CaseBooks through ``case_scorables`` — the graph reaches them by join, it copies nothing.
* **Edges** (``ner_edges``): two entities co-occur when one scorable mentions both; ``weight`` counts such
  scorables. Recomputed in one pass after each indexing run (each scorable pairs its ``graph_max_entities``
  most mentioned entities, so a text that lists hundreds of names does not add tens of thousands of edges).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any, Iterable

from sqlalchemy import delete, func, select, tuple_

from ..db.bulk import IN_CHUNK, chunks, insert_ignore
from ..db.models import CaseBook, Case, CaseScorable, NerEdge, NerEntity, NerMention, NerScorable
from ..errors import UserError
from ..ingest.model import stable_id
from .labels import is_semantic
from .text import normalise_entity


def entity_key(text: str) -> tuple[int, str]:
    norm = normalise_entity(text) or " ".join(text.casefold().split())
    norm = norm[:512]
    return stable_id("ner-entity", norm), norm


def mention_id(scorable_type: str, scorable_id: int, start: int, text: str) -> int:
    """The dedup key (scorable, offset, entity text) as a 63-bit id."""
    return stable_id("ner-mention", scorable_type, str(scorable_id), str(start), text)


def write_results(session: Any, results: list[dict[str, Any]], signature: str, run_id: int | None) -> set[int]:
    """Store one batch of worker results (``worker._schema`` rows as dicts): replaces what these scorables had.
    Returns the ids of the entities whose counts changed."""
    refs = [(r["scorable_type"], int(r["scorable_id"])) for r in results]
    touched: set[int] = set()
    for part in chunks(refs, IN_CHUNK):
        old = session.execute(select(NerMention.entity_id).where(
            tuple_(NerMention.scorable_type, NerMention.scorable_id).in_(part)).distinct())
        touched.update(e for (e,) in old)
        session.execute(delete(NerMention).where(tuple_(NerMention.scorable_type, NerMention.scorable_id).in_(part)))
        session.execute(delete(NerScorable).where(tuple_(NerScorable.scorable_type, NerScorable.scorable_id).in_(part)))
    entities: dict[int, dict[str, Any]] = {}
    mentions: list[dict[str, Any]] = []
    scorables: list[dict[str, Any]] = []
    for r in results:
        st, sid = r["scorable_type"], int(r["scorable_id"])
        for m in r["mentions"] or []:
            eid, norm = entity_key(m["text"])
            entities.setdefault(eid, {"id": eid, "norm": norm, "name": m["text"][:512], "label": m["label"],
                                      "mentions": 0, "scorables": 0})
            mentions.append({"id": mention_id(st, sid, m["start"], m["text"]), "scorable_type": st, "scorable_id": sid,
                             "start": m["start"], "end": m["end"], "text": m["text"], "label": m["label"],
                             "detector": m["detector"], "score": float(m["score"]), "entity_id": eid,
                             "snippet": m["snippet"], "snippet_start": m["snippet_start"], "vector": m["vector"],
                             "signature": signature})
        scorables.append({"scorable_type": st, "scorable_id": sid, "signature": signature,
                          "text_chars": int(r["text_chars"]), "status": r["status"], "mentions": len(r["mentions"] or []),
                          "error": r["error"], "pipeline_run_id": run_id, "meta": json.loads(r["meta"] or "{}")})
    insert_ignore(session, NerEntity, list(entities.values()))
    insert_ignore(session, NerMention, mentions)
    insert_ignore(session, NerScorable, scorables)
    touched.update(entities)
    return touched


def refresh_entities(session: Any, entity_ids: Iterable[int]) -> None:
    """Recompute name, label and counts of these nodes from their mentions; drop nodes left with none."""
    ids = sorted(set(entity_ids))
    for part in chunks(ids, IN_CHUNK):
        forms: dict[int, Counter[str]] = defaultdict(Counter)
        labels: dict[int, Counter[str]] = defaultdict(Counter)
        where: dict[int, set[tuple[str, int]]] = defaultdict(set)
        q = select(NerMention.entity_id, NerMention.text, NerMention.label, NerMention.scorable_type,
                   NerMention.scorable_id).where(NerMention.entity_id.in_(part))
        for eid, text, label, st, sid in session.execute(q):
            forms[eid][text] += 1
            labels[eid][label] += 1
            where[eid].add((st, sid))
        gone = [e for e in part if e not in forms]
        if gone:
            session.execute(delete(NerEdge).where(NerEdge.entity_a.in_(gone) | NerEdge.entity_b.in_(gone)))
            session.execute(delete(NerEntity).where(NerEntity.id.in_(gone)))
        for ent in session.scalars(select(NerEntity).where(NerEntity.id.in_([e for e in part if e in forms]))):
            lab = labels[ent.id]
            sem = Counter({k: v for k, v in lab.items() if is_semantic(k)}) or lab
            ent.name = forms[ent.id].most_common(1)[0][0][:512]
            ent.label = sorted(sem.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
            ent.mentions = sum(forms[ent.id].values())
            ent.scorables = len(where[ent.id])
    session.flush()


def rebuild_edges(session: Any, max_entities: int) -> int:
    """Co-occurrence edges from all mentions, in one pass (module docstring). Returns the number of edges."""
    per: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
    q = (select(NerMention.scorable_type, NerMention.scorable_id, NerMention.entity_id, func.count())
         .group_by(NerMention.scorable_type, NerMention.scorable_id, NerMention.entity_id))
    for st, sid, eid, n in session.execute(q):
        per[(st, sid)].append((int(n), int(eid)))
    weights: Counter[tuple[int, int]] = Counter()
    for ents in per.values():
        top = sorted(e for _, e in sorted(ents, key=lambda x: (-x[0], x[1]))[:max_entities])
        for i, a in enumerate(top):
            for b in top[i + 1:]:
                weights[(a, b)] += 1
    session.execute(delete(NerEdge))
    insert_ignore(session, NerEdge, [{"entity_a": a, "entity_b": b, "weight": w} for (a, b), w in weights.items()])
    return len(weights)


# ----------------------------------------------------------------------------- queries


def find_entity(session: Any, name: str) -> NerEntity:
    _eid, norm = entity_key(name or "")
    if not norm:
        raise UserError("give an entity name, e.g. stephanie graph entity PyTorch")
    ent = session.scalars(select(NerEntity).where(NerEntity.norm == norm)).first()
    if ent is not None:
        return ent
    like = session.scalars(select(NerEntity.name).where(NerEntity.norm.contains(norm, autoescape=True))
                           .order_by(NerEntity.mentions.desc(), NerEntity.id).limit(5)).all()
    hint = f" (did you mean: {', '.join(like)}?)" if like else " (stephanie ner index builds the graph)"
    raise UserError(f"no entity named {name!r}{hint}")


def entity_report(session: Any, name: str, limit: int = 20) -> dict[str, Any]:
    """Scorables and cases mentioning the entity, entities co-occurring with it, the CaseBooks where it
    appears with their quality progress (once scored)."""
    ent = find_entity(session, name)
    forms = session.execute(select(NerMention.text, func.count()).where(NerMention.entity_id == ent.id)
                            .group_by(NerMention.text).order_by(func.count().desc(), NerMention.text).limit(10)).all()
    per_scorable = session.execute(
        select(NerMention.scorable_type, NerMention.scorable_id, func.count(), func.min(NerMention.id))
        .where(NerMention.entity_id == ent.id).group_by(NerMention.scorable_type, NerMention.scorable_id)
        .order_by(func.count().desc(), NerMention.scorable_type, NerMention.scorable_id)).all()
    first = {m.id: m for m in session.scalars(select(NerMention).where(
        NerMention.id.in_([r[3] for r in per_scorable[:limit]])))}
    refs = [(st, sid) for st, sid, _n, _m in per_scorable]
    cases: dict[int, dict[str, Any]] = {}
    books: dict[int, dict[str, Any]] = {}
    for part in chunks(refs, IN_CHUNK):
        q = (select(Case.id, Case.casebook_id, Case.position, Case.quality, CaseScorable.scorable_type,
                    CaseScorable.scorable_id)
             .join(CaseScorable, CaseScorable.case_id == Case.id)
             .where(tuple_(CaseScorable.scorable_type, CaseScorable.scorable_id).in_(part)))
        for cid, cbid, pos, quality, _st, _sid in session.execute(q):
            cases.setdefault(cid, {"case_id": cid, "casebook_id": cbid, "position": pos, "quality": quality})
            books.setdefault(cbid, {"cases": set()})["cases"].add(cid)
    book_rows = []
    for cb in session.scalars(select(CaseBook).where(CaseBook.id.in_(list(books)))) if books else []:
        prog = (cb.meta or {}).get("progress")
        book_rows.append({"id": cb.id, "name": cb.name, "cases": len(books[cb.id]["cases"]),
                          "progress": prog if prog and prog.get("scored") else None})
    book_rows.sort(key=lambda b: (-b["cases"], b["id"]))
    co = session.execute(
        select(NerEntity.name, NerEntity.label, NerEdge.weight)
        .join(NerEdge, ((NerEdge.entity_a == ent.id) & (NerEdge.entity_b == NerEntity.id))
              | ((NerEdge.entity_b == ent.id) & (NerEdge.entity_a == NerEntity.id)))
        .order_by(NerEdge.weight.desc(), NerEntity.name).limit(limit)).all()
    return {
        "entity": {"id": ent.id, "name": ent.name, "label": ent.label, "mentions": ent.mentions,
                   "scorables": ent.scorables},
        "surface_forms": [{"text": t, "mentions": n} for t, n in forms],
        "scorables": [{"type": st, "id": sid, "mentions": n, "snippet": " ".join(first[m].snippet.split())
                       if m in first else None} for st, sid, n, m in per_scorable[:limit]],
        "cases": sorted(cases.values(), key=lambda c: (c["casebook_id"], c["position"]))[:limit],
        "cases_total": len(cases),
        "casebooks": book_rows[:limit],
        "cooccurring": [{"name": n, "label": lab, "weight": w} for n, lab, w in co],
    }
