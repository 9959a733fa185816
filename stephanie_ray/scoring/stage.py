"""``stephanie score``: every scorable of every CaseBook, on every dimension, by every available scorer.

1. **Items.** The scorables of all CaseBooks except prompts and user messages (answers, turns,
   conversations), each with its request, its CaseBook's goal and the person's reaction to it
   (next user message, regenerated, prompt edited). A scorable in several CaseBooks is scored once;
   its *primary* CaseBook (the one with the most cases) gives its goal and its trajectory for novelty.
   Already-scored items (they have an overall score) are skipped unless ``--rescore``.
2. **Scoring** on a Ray Data actor pool (``map_batches`` with ``ActorPoolStrategy``): each actor loads
   the embedding model and the scorers once; per batch it embeds the answers (and each distinct request
   and goal once) and runs every scorer. ``scoring.parallel: false`` runs the same worker in-process.
3. **Writes** in batches: embeddings, per-scorer scores (failed ones with their reason); then novelty
   per trajectory; then the ensemble per dimension and overall.
4. **After**: each case's quality = the footing quality of its best answer (the dimensions that judge
   an answer against its own request: not novelty, see ``casebooks/progress.py``), with the person's
   reactions and its request group; each CaseBook's champion, wins, losses and trust rebuilt by the
   footing tournament; progress recomputed; MARS agreement measured and stored; the run report's
   scoring section and small-multiple trajectory figure written.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import orjson
from sqlalchemy import delete, func, select, tuple_

from ..config import StephanieConfig
from ..db import Database
from ..db.bulk import IN_CHUNK, chunks, insert_ignore
from ..db.models import (Case, CaseBook, CaseScorable, GoalState, MarsReport, Message, ScorableEmbedding, ScoreRow,
                         ScorerModel, Turn)
from ..embedding import from_bytes, resolve_model
from ..errors import UserError
from ..ingest.model import normalise_text, stable_id
from ..progress_bar import ProgressBar
from ..reactions import classify
from ..casebooks.progress import Attempt, compute_progress, footing_quality, request_groups
from ..casebooks.scorables import resolve_texts
from ..casebooks.store import CaseScores, attempt_from_case
from .ensemble import ENSEMBLE, OVERALL, aggregate
from .mars import agreement
from .scorers import OFFLINE_SCORERS, SHORT_REQUEST_CHARS, trajectory_novelty
from .worker import ITEM_COLUMNS, ScoringWorker

log = logging.getLogger(__name__)

SCORED_ROLES = ("response", "conversation", "assistant")  # what an answer is, in each mode
REPORT_CASEBOOKS = 10  # CaseBooks listed in the run report (the largest; the rest are counted)
LEARNED = ("sicql", "mrq", "svm")


@dataclass
class ScoringSummary:
    scorers: list[str] = field(default_factory=list)
    dimensions: list[str] = field(default_factory=list)
    items_seen: int = 0
    items_scored: int = 0
    items_skipped_scored: int = 0
    items_missing_text: int = 0  # empty texts: recorded as failed scores ("empty text")
    scores_written: int = 0
    failed: int = 0  # (item, dimension, scorer) scores that failed
    failures: list[dict[str, Any]] = field(default_factory=list)
    truncated: int = 0
    dimension_means: dict[str, float] = field(default_factory=dict)
    casebooks_updated: int = 0
    champions_changed: int = 0
    mars: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0
    items_per_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def counts(self) -> dict[str, Any]:
        out = self.to_dict()
        out["failures"] = self.failures[:50]
        out["mars"] = {d: {k: m.get(k) for k in ("agreement", "alpha", "items", "scorers")} for d, m in self.mars.items()}
        return out


# ----------------------------------------------------------------------------- which scorers


def latest_models(session: Any) -> dict[str, ScorerModel]:
    out: dict[str, ScorerModel] = {}
    for m in session.scalars(select(ScorerModel).order_by(ScorerModel.name, ScorerModel.version)):
        out[m.name] = m
    return out


def resolve_scorers(cfg: StephanieConfig, session: Any, requested: list[str] | None) -> tuple[list[str], dict[str, Any]]:
    """The scorers to run and the plain settings their workers need. Errors before any work."""
    scfg = cfg.scoring
    from ..config import KNOWN_SCORERS

    names = list(requested or scfg.scorers)
    unknown = [n for n in names if n not in KNOWN_SCORERS]
    if unknown:
        raise UserError(f"unknown scorer {unknown[0]!r} (scorers: {', '.join(KNOWN_SCORERS)})")
    models = latest_models(session)
    learned = {}
    for name in LEARNED:
        m = models.get(name)
        if m is not None and Path(m.path).is_file():
            learned[name] = {"path": m.path, "version": m.version}
    available = list(OFFLINE_SCORERS) + [n for n in LEARNED if n in learned] + (["llm"] if scfg.llm_base_url else [])
    if names:
        missing = [n for n in names if n not in available]
        if missing:
            why = "is not trained yet (stephanie scorers train)" if missing[0] in LEARNED else \
                "needs scoring.llm_base_url"
            raise UserError(f"scorer {missing[0]!r} {why}")
    else:
        names = available
    settings = {
        "embedding": dataclasses.asdict(cfg.embedding), "timeout_s": scfg.scorer_timeout_s,
        "max_text_chars": scfg.max_text_chars, "learned": learned,
        "llm": {"base_url": scfg.llm_base_url, "model": scfg.llm_model, "api_key": os.environ.get(scfg.llm_api_key_env, ""),
                "timeout_s": scfg.llm_timeout_s, "max_retries": scfg.llm_max_retries},
    }
    return names, settings


def scorer_versions(names: list[str], settings: dict[str, Any]) -> dict[str, str]:
    out = {}
    for n in names:
        if n in OFFLINE_SCORERS:
            out[n] = OFFLINE_SCORERS[n].version
        elif n in LEARNED:
            out[n] = str(settings["learned"][n]["version"])
        else:
            out[n] = "1"
    return out


# ----------------------------------------------------------------------------- items


@dataclass
class Membership:
    casebook_id: int
    case_id: int
    position: int
    rank: int
    prompt: str
    goal: str


def load_memberships(session: Any) -> dict[tuple[str, int], list[Membership]]:
    q = (select(CaseScorable.scorable_type, CaseScorable.scorable_id, CaseScorable.rank, Case.id, Case.casebook_id,
                Case.position, Case.prompt_text, CaseBook.description)
         .join(Case, Case.id == CaseScorable.case_id).join(CaseBook, CaseBook.id == Case.casebook_id)
         .where(CaseScorable.role.in_(SCORED_ROLES)))
    out: dict[tuple[str, int], list[Membership]] = defaultdict(list)
    for st, sid, rank, cid, cb, pos, prompt, goal in session.execute(q):
        out[(st, sid)].append(Membership(cb, cid, pos, rank or 0, prompt or "", goal or ""))
    return out


def primary_memberships(session: Any, members: dict[tuple[str, int], list[Membership]]) -> dict[tuple[str, int], Membership]:
    sizes = dict(session.execute(select(Case.casebook_id, func.count(Case.id)).group_by(Case.casebook_id)).all())
    return {k: min(v, key=lambda m: (-sizes.get(m.casebook_id, 0), m.casebook_id)) for k, v in members.items()}


def _feedback_context(session: Any, keys: list[tuple[str, int]]) -> dict[tuple[str, int], dict[str, Any]]:
    """The person's reaction to each answer: next user message, regenerated away, prompt edited."""
    turn_ids = [i for t, i in keys if t == "turn"]
    msg_ids = [i for t, i in keys if t == "message"]
    conv_ids = [i for t, i in keys if t == "conversation"]
    pair: dict[tuple[str, int], tuple[int, int | None]] = {}  # key -> (assistant id, user id)
    conv_turns: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for part in chunks(turn_ids, IN_CHUNK):
        for tid, uid, aid in session.execute(select(Turn.id, Turn.user_message_id, Turn.assistant_message_id)
                                             .where(Turn.id.in_(part))):
            pair[("turn", tid)] = (aid, uid)
    for part in chunks(conv_ids, IN_CHUNK):
        for cid, uid, aid in session.execute(select(Turn.conversation_id, Turn.user_message_id, Turn.assistant_message_id)
                                             .where(Turn.conversation_id.in_(part), Turn.active.is_(True))
                                             .order_by(Turn.conversation_id, Turn.position)):
            conv_turns[cid].append((aid, uid))
    info: dict[int, tuple[int | None, bool, int, str]] = {}  # id -> (parent, active, position, role)

    def load_info(ids: set[int]) -> None:
        for part in chunks(sorted(i for i in ids if i not in info), IN_CHUNK):
            for mid, parent, active, pos, role in session.execute(
                    select(Message.id, Message.parent_id, Message.active, Message.position, Message.role)
                    .where(Message.id.in_(part))):
                info[mid] = (parent, bool(active), pos, role)

    load_info(set(msg_ids))
    for mid in msg_ids:
        if mid in info:
            pair[("message", mid)] = (mid, info[mid][0])
    a_ids = {a for a, _ in pair.values()} | {a for ts in conv_turns.values() for a, _ in ts}
    u_ids = {u for _, u in pair.values() if u is not None} | {u for ts in conv_turns.values() for _, u in ts}
    load_info(a_ids | u_ids)
    parents = {info[u][0] for u in u_ids if u in info and info[u][0] is not None}
    children: dict[int, list[tuple[int, str, bool, int, str | None]]] = defaultdict(list)
    for part in chunks(sorted(a_ids | u_ids | parents), IN_CHUNK):
        q = select(Message.id, Message.parent_id, Message.role, Message.active, Message.position,
                   Message.text).where(Message.parent_id.in_(part))
        for mid, parent, role, active, pos, text in session.execute(q):
            children[parent].append((mid, role, bool(active), pos, text if role == "user" else None))
    user_texts = resolve_texts(session, [("message", u) for u in u_ids])

    def reaction(aid: int, uid: int | None) -> dict[str, Any]:
        nexts = sorted((c for c in children.get(aid, ()) if c[1] == "user"), key=lambda c: (not c[2], c[3]))
        a = info.get(aid)
        regenerated = bool(a and not a[1] and uid is not None and any(
            c[1] == "assistant" and c[2] and c[3] > a[2] and c[0] != aid for c in children.get(uid, ())))
        u = info.get(uid) if uid is not None else None
        edited = bool(u and u[0] is not None and any(
            c[1] == "user" and c[0] != uid and c[3] > u[2] for c in children.get(u[0], ())))
        return {"next_user": (nexts[0][4] or "") if nexts else "", "regenerated": regenerated, "edited": edited,
                "prompt": user_texts.get(("message", uid), "") if uid is not None else ""}

    out: dict[tuple[str, int], dict[str, Any]] = {}
    for key, (aid, uid) in pair.items():
        out[key] = reaction(aid, uid)
    for cid in conv_ids:
        out[("conversation", cid)] = {"next_user": "", "regenerated": False, "edited": False,
                                      "turns": [reaction(a, u) for a, u in conv_turns.get(cid, [])]}
    return out


def build_items(session: Any, keys: list[tuple[str, int]], primary: dict[tuple[str, int], Membership]
                ) -> tuple[list[dict[str, Any]], list[tuple[str, int]]]:
    """(items to score, keys with no text to score)."""
    texts = resolve_texts(session, keys)
    feedback = _feedback_context(session, keys)
    items, empty = [], []
    for key in keys:
        text = texts.get(key)
        if not text or not text.strip():  # e.g. an answer that is only a tool call or an image
            empty.append(key)
            continue
        m = primary[key]
        fb = feedback.get(key, {})
        extra = {"turns": fb["turns"]} if fb.get("turns") else {}
        items.append({"scorable_type": key[0], "scorable_id": key[1], "text": text, "prompt": m.prompt,
                      "goal": m.goal, "next_user": fb.get("next_user", ""), "regenerated": fb.get("regenerated", False),
                      "edited": fb.get("edited", False), "extra": orjson.dumps(extra).decode() if extra else ""})
    return items, empty


# ----------------------------------------------------------------------------- running the workers


def _columns(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {c: [r[c] for r in rows] for c in ITEM_COLUMNS}


def _iter_serial(items: list[dict[str, Any]], names: list[str], dims: list[str], settings: dict[str, Any],
                 batch_size: int) -> Iterator[dict[str, Any]]:
    worker = ScoringWorker(names, dims, settings)
    for part in chunks(items, batch_size):
        yield worker(_columns(part))


def _iter_parallel(cfg: StephanieConfig, items: list[dict[str, Any]], names: list[str], dims: list[str],
                   settings: dict[str, Any]) -> Iterator[dict[str, Any]]:
    import ray

    from ..ray_utils import ensure_ray

    info = ensure_ray(cfg.ray)
    scfg = cfg.scoring
    cpus = int(ray.cluster_resources().get("CPU", 1)) if info else 1
    size = scfg.num_actors or max(1, min(8, cpus))
    threads = max(1, cpus // size)  # torch threads per actor: the CPUs shared out, not oversubscribed
    settings = {**settings, "embedding": {**settings["embedding"], "num_threads": settings["embedding"]["num_threads"] or threads}}
    ds = ray.data.from_items(items).map_batches(
        ScoringWorker, fn_constructor_kwargs={"scorers": names, "dimensions": dims, "settings": settings},
        batch_size=scfg.batch_size, compute=ray.data.ActorPoolStrategy(size=size), num_cpus=1, batch_format="numpy")
    it = ds.iter_batches(batch_size=None, batch_format="numpy")
    try:
        yield from it
    finally:
        close = getattr(it, "close", None)
        if close:
            close()


# ----------------------------------------------------------------------------- the stage


def score_id(st: str, sid: int, dim: str, scorer: str) -> int:
    return stable_id("score", st, str(sid), dim, scorer)


def run_scoring(cfg: StephanieConfig, db: Database, *, run_id: int | None = None, progress: bool = False,
                dimensions: list[str] | None = None, scorers: list[str] | None = None,
                rescore: bool | None = None, run_dir: Path | None = None) -> ScoringSummary:
    from ..config import SCORING_DIMENSIONS

    scfg = cfg.scoring
    dims = list(dimensions or scfg.dimensions)
    bad = [d for d in dims if d not in SCORING_DIMENSIONS]
    if bad:
        raise UserError(f"unknown dimension {bad[0]!r} (dimensions: {', '.join(SCORING_DIMENSIONS)})")
    rescore = scfg.rescore if rescore is None else rescore
    t0 = time.perf_counter()
    with db.session() as s:
        names, settings = resolve_scorers(cfg, s, scorers)
        members = load_memberships(s)
        primary = primary_memberships(s, members)
        keys = sorted(members)
        summary = ScoringSummary(scorers=names, dimensions=dims, items_seen=len(keys))
        if not rescore:
            # done: an overall score and a row (ok or failed) from every scorer now in use; a scorer
            # that joined since (a newly trained one) makes an item due again
            done: set[tuple[str, int]] = set()
            for part in chunks(keys, IN_CHUNK):
                q = (select(ScoreRow.scorable_type, ScoreRow.scorable_id)
                     .where(tuple_(ScoreRow.scorable_type, ScoreRow.scorable_id).in_(part),
                            ScoreRow.scorer.in_(names + [ENSEMBLE]))
                     .group_by(ScoreRow.scorable_type, ScoreRow.scorable_id)
                     .having(func.count(func.distinct(ScoreRow.scorer)) == len(names) + 1))
                done.update(tuple(r) for r in s.execute(q))
            summary.items_skipped_scored = len(done)
            keys = [k for k in keys if k not in done]
        # CaseBook by CaseBook, in trajectory order: a batch's items share their goal (embedded once)
        keys.sort(key=lambda k: (primary[k].casebook_id, primary[k].position, primary[k].rank, k))
    versions = scorer_versions(names, settings)
    _, emb_model = resolve_model(cfg.embedding.model)
    log.info("scoring %d items (%d already scored) on %s with %s", len(keys), summary.items_skipped_scored,
             dims, names)
    scored_keys: list[tuple[str, int]] = []
    bar = ProgressBar(len(keys), progress, "score", "item", logger=log)
    try:
        # in chunks of items, so memory holds one chunk's texts however large the history is
        for part in chunks(keys, scfg.chunk_items):
            with db.session() as s:
                items, empty = build_items(s, part, primary)
            if empty:  # nothing to score: every (scorer, dimension) fails with the reason, no overall
                summary.items_missing_text += len(empty)
                _write_results(db, [{"scorable_type": st, "scorable_id": sid, "emb": b"", "truncated": False,
                                     "results": orjson.dumps([
                                         {"scorer": n, "version": versions.get(n, "1"), "dimension": d,
                                          "value": None, "rationale": "", "status": "failed",
                                          "error": "empty text: nothing to score"}
                                         for n in names + [ENSEMBLE]
                                         for d in (dims if n != ENSEMBLE else [OVERALL])]).decode()}
                                    for st, sid in empty], emb_model, run_id, names, summary)
                bar.update(len(empty))
            if items:
                scored_keys += _score_chunk(cfg, db, items, names, dims, settings, emb_model, run_id, summary, bar)
    finally:
        bar.close()
    if scored_keys:
        if "novelty" in dims and "embedding" in names:
            _write_novelty(db, scored_keys, members, primary, emb_model, run_id, summary)
        _write_ensemble(db, scored_keys, names, scfg, run_id, summary)
    summary.items_scored = len(scored_keys)
    touched = {m.casebook_id for k in scored_keys for m in members.get(k, [])}
    update_casebooks(db, cfg, touched, summary)
    summary.mars = measure_mars(db, dims, scfg.top_disagreements, run_id)
    summary.dimension_means = dimension_means(db, dims)
    summary.seconds = round(time.perf_counter() - t0, 3)
    summary.items_per_s = round(summary.items_scored / summary.seconds, 1) if summary.seconds else 0.0
    if run_dir is not None:
        plot_trajectories(db, run_dir / "score_trajectories.png")
    log.info("scored %d items in %.1f s (%.1f items/s); %d scores failed", summary.items_scored, summary.seconds,
             summary.items_per_s, summary.failed)
    return summary


def _score_chunk(cfg: StephanieConfig, db: Database, items: list[dict[str, Any]], names: list[str], dims: list[str],
                 settings: dict[str, Any], emb_model: str, run_id: int | None, summary: ScoringSummary,
                 bar: ProgressBar) -> list[tuple[str, int]]:
    scfg = cfg.scoring
    batches = (_iter_parallel(cfg, items, names, dims, settings) if scfg.parallel
               else _iter_serial(items, names, dims, settings, scfg.batch_size))
    scored: list[tuple[str, int]] = []
    pending: list[dict[str, Any]] = []
    try:
        for batch in batches:
            for i in range(len(batch["scorable_id"])):
                pending.append({k: batch[k][i] for k in ("scorable_type", "scorable_id", "emb", "truncated", "results")})
            bar.update(len(batch["scorable_id"]))
            if len(pending) >= scfg.write_batch:
                scored += _write_results(db, pending, emb_model, run_id, names, summary)
                pending = []
        scored += _write_results(db, pending, emb_model, run_id, names, summary)
    finally:
        close = getattr(batches, "close", None)
        if close:
            close()
    return scored


def _write_results(db: Database, pending: list[dict[str, Any]], emb_model: str, run_id: int | None, names: list[str], summary: ScoringSummary) -> list[tuple[str, int]]:
    if not pending:
        return []
    keys = [(str(p["scorable_type"]), int(p["scorable_id"])) for p in pending]
    emb_rows, score_rows = [], []
    for p, (st, sid) in zip(pending, keys):
        if len(p["emb"]):  # (no embedding when no scorer in use needs one)
            emb_rows.append({"scorable_type": st, "scorable_id": sid, "model": emb_model, "vector": bytes(p["emb"])})
        summary.truncated += bool(p["truncated"])
        for r in orjson.loads(p["results"]):
            meta = {"truncated": True} if p["truncated"] else {}
            score_rows.append({"id": score_id(st, sid, r["dimension"], r["scorer"]), "scorable_type": st,
                               "scorable_id": sid, "dimension": r["dimension"], "scorer": r["scorer"],
                               "scorer_version": r["version"], "value": r["value"], "status": r["status"],
                               "rationale": r["rationale"] or "", "error": r["error"], "pipeline_run_id": run_id,
                               "meta": meta})
            if r["status"] != "ok":
                summary.failed += 1
                if len(summary.failures) < 1000:
                    summary.failures.append({"scorable": f"{st}:{sid}", "scorer": r["scorer"],
                                             "dimension": r["dimension"], "error": r["error"]})
    with db.session() as s:
        for part in chunks(keys, IN_CHUNK):
            if emb_rows:
                s.execute(delete(ScorableEmbedding).where(
                    tuple_(ScorableEmbedding.scorable_type, ScorableEmbedding.scorable_id).in_(part),
                    ScorableEmbedding.model == emb_model))
            # an item scored again (--rescore, or a scorer joined) replaces its rows from these scorers
            s.execute(delete(ScoreRow).where(tuple_(ScoreRow.scorable_type, ScoreRow.scorable_id).in_(part),
                                             ScoreRow.scorer.in_(names + [ENSEMBLE])))
        insert_ignore(s, ScorableEmbedding, emb_rows)
        insert_ignore(s, ScoreRow, score_rows)
    summary.scores_written += len(score_rows)
    return keys


def _write_novelty(db: Database, scored: list[tuple[str, int]], members: dict[tuple[str, int], list[Membership]],
                   primary: dict[tuple[str, int], Membership], emb_model: str, run_id: int | None,
                   summary: ScoringSummary) -> None:
    """Novelty of each newly scored item along its primary CaseBook's trajectory."""
    from .scorers import EmbeddingScorer

    new = set(scored)
    books = defaultdict(list)  # casebook -> [(position, rank, key)] of every scorable whose primary it is
    for key, m in primary.items():
        books[m.casebook_id].append((m.position, m.rank, key))
    wanted = {primary[k].casebook_id for k in new}
    rows = []
    with db.session() as s:
        for cb in sorted(wanted):
            traj = sorted(books[cb])
            tkeys = [k for _, _, k in traj]
            vecs: dict[tuple[str, int], np.ndarray] = {}
            for part in chunks(tkeys, IN_CHUNK):
                for st, sid, vec in s.execute(select(ScorableEmbedding.scorable_type, ScorableEmbedding.scorable_id,
                                                     ScorableEmbedding.vector).where(
                        tuple_(ScorableEmbedding.scorable_type, ScorableEmbedding.scorable_id).in_(part),
                        ScorableEmbedding.model == emb_model)):
                    vecs[(st, sid)] = from_bytes(vec)
            have = [k for k in tkeys if k in vecs]
            if not have:
                continue
            nov = trajectory_novelty(np.stack([vecs[k] for k in have]))
            for i, k in enumerate(have):
                # the first attempt has nothing to be novel against: no novelty score (a 1.0 there would
                # make every CaseBook's first attempt its champion); it is judged on the other dimensions
                if k in new and i > 0:
                    why = f"most similar earlier attempt: cosine {1 - nov[i]:.2f} (of {i} earlier)"
                    rows.append({"id": score_id(k[0], k[1], "novelty", "embedding"), "scorable_type": k[0],
                                 "scorable_id": k[1], "dimension": "novelty", "scorer": "embedding",
                                 "scorer_version": EmbeddingScorer.version, "value": float(nov[i]), "status": "ok",
                                 "rationale": why, "error": None, "pipeline_run_id": run_id, "meta": {}})
        insert_ignore(s, ScoreRow, rows)
    summary.scores_written += len(rows)


def _write_ensemble(db: Database, scored: list[tuple[str, int]], names: list[str], scfg: Any, run_id: int | None,
                    summary: ScoringSummary) -> None:
    for part in chunks(scored, IN_CHUNK):
        per: dict[tuple[str, int], list[tuple[str, str, float]]] = defaultdict(list)
        with db.session() as s:
            for st, sid, scorer, dim, value in s.execute(
                    select(ScoreRow.scorable_type, ScoreRow.scorable_id, ScoreRow.scorer, ScoreRow.dimension,
                           ScoreRow.value).where(tuple_(ScoreRow.scorable_type, ScoreRow.scorable_id).in_(part),
                                                 ScoreRow.scorer.in_(names), ScoreRow.status == "ok")):
                per[(st, sid)].append((scorer, dim, value))
            rows = []
            for (st, sid), vals in per.items():
                agg = aggregate(vals, scfg.scorer_weights, scfg.dimension_weights)
                for dim, v in agg.items():
                    n = sum(1 for _, d, _ in vals if d == dim) if dim != OVERALL else len(agg) - 1
                    rows.append({"id": score_id(st, sid, dim, ENSEMBLE), "scorable_type": st, "scorable_id": sid,
                                 "dimension": dim, "scorer": ENSEMBLE, "scorer_version": "1", "value": float(v),
                                 "status": "ok", "pipeline_run_id": run_id, "error": None, "meta": {},
                                 "rationale": f"weighted mean of {n} {'dimensions' if dim == OVERALL else 'scorers'}"})
            insert_ignore(s, ScoreRow, rows)
        summary.scores_written += len(rows)


# the feedback scorer's rationale: "<label> (<confidence>): ..." for an answer, "mean over N turns:
# A accepted, C corrected" for a whole conversation (scorers.FeedbackScorer documents both)
_REACTION = re.compile(r"^(corrected|accepted|continued|none) \(")
_CONV_REACTIONS = re.compile(r"^mean over (\d+) turns: (\d+) accepted, (\d+) corrected")


def reaction_shares(rationale: str) -> tuple[float, float] | None:
    """(corrected, accepted) from a feedback rationale: 1/0 per answer, shares of turns per conversation."""
    m = _REACTION.match(rationale or "")
    if m:
        return float(m.group(1) == "corrected"), float(m.group(1) == "accepted")
    m = _CONV_REACTIONS.match(rationale or "")
    if m and int(m.group(1)):
        n = int(m.group(1))
        return int(m.group(3)) / n, int(m.group(2)) / n
    return None


def request_keys(prompt: str, sibling: tuple[Any, ...] | None) -> list[Any]:
    """What makes two cases answers to the same request: the same (normalised, long enough) prompt —
    asked again, or of another provider — or being sibling messages (an edited prompt, a regeneration).
    A short prompt ("continue", "yes") says too little to identify a request across conversations."""
    text = normalise_text(prompt).casefold()
    keys: list[Any] = [sibling] if sibling is not None else []
    if len(re.findall(r"\w", text)) >= SHORT_REQUEST_CHARS:
        keys.append(("text", text))
    return keys


ACK_MAX_CHARS = 60  # an acknowledgement is short: at most this many word characters (any script)


def is_acknowledgement(prompt: str) -> bool:
    """A prompt that only approves of the answer before it ("Perfect, thanks! Works now.", "grazie",
    "감사합니다") asks for nothing: its case is not an attempt, and the reply to it ("Glad it helped!")
    would otherwise end many trajectories on a low note. The reactions classifier reads the approval
    (any language it knows); short, with no question mark, is what says there is no new request."""
    chars = len(re.findall(r"\w", prompt, re.UNICODE))
    if not prompt.strip() or chars > ACK_MAX_CHARS or "?" in prompt or "？" in prompt:
        return False
    return classify("", "", prompt).label == "accepted"


def case_scores(answers: dict[tuple[str, int], dict[str, float]], reactions: dict[tuple[str, int], tuple[float, float]],
                weights: dict[str, float]) -> CaseScores:
    """A case's scores from its answers': the best answer on the footing gives quality and dimensions;
    the person corrected (accepted) the case if they corrected (accepted) any answer to it."""
    best, best_q = {}, None
    for key in sorted(answers):
        q = footing_quality(answers[key], weights)
        if q is not None and (best_q is None or q > best_q):
            best, best_q = answers[key], q
    seen = list(reactions.values())
    corrected = max((c for c, _ in seen), default=None)
    accepted = max((a for _, a in seen), default=None)
    return CaseScores(best_q, {d: round(v, 6) for d, v in best.items()}, None, corrected, accepted)


def update_casebooks(db: Database, cfg: StephanieConfig, touched: set[int], summary: ScoringSummary) -> None:
    """Case scores on the footing, champions by the footing tournament, progress (casebooks/progress.py).

    Per case: its answers' ensemble scores per dimension and the person's reactions to them (the
    feedback scorer); quality = the footing quality of its best answer; its request group. Then each
    CaseBook's goal state is rebuilt by :meth:`CaseBookStore.replay_champions` and its progress saved.
    """
    from ..casebooks.build import refresh_casebooks
    from ..casebooks.store import CaseBookStore

    if not touched:
        return
    weights = dict(cfg.scoring.dimension_weights)
    with db.session() as s:
        refresh_casebooks(s, sorted(touched))  # trajectory order first: the tournament runs along it
        store = CaseBookStore.from_config(s, cfg)
        for part in chunks(sorted(touched), IN_CHUNK):
            answers: dict[int, dict[tuple[str, int], dict[str, float]]] = defaultdict(dict)
            reactions: dict[int, dict[tuple[str, int], tuple[float, float]]] = defaultdict(dict)
            q = (select(CaseScorable.case_id, ScoreRow.scorable_type, ScoreRow.scorable_id, ScoreRow.scorer,
                        ScoreRow.dimension, ScoreRow.value, ScoreRow.rationale)
                 .join(ScoreRow, (ScoreRow.scorable_type == CaseScorable.scorable_type)
                       & (ScoreRow.scorable_id == CaseScorable.scorable_id))
                 .where(CaseScorable.casebook_id.in_(part), CaseScorable.role.in_(SCORED_ROLES),
                        ScoreRow.status == "ok", ScoreRow.scorer.in_((ENSEMBLE, "feedback")),
                        ScoreRow.dimension != OVERALL))
            for cid, st, sid, scorer, dim, value, why in s.execute(q):
                if scorer == ENSEMBLE and value is not None:
                    answers[cid].setdefault((st, sid), {})[dim] = float(value)
                elif scorer == "feedback" and (r := reaction_shares(why)) is not None:
                    reactions[cid][(st, sid)] = r
            cases = s.execute(select(Case.id, Case.casebook_id, Case.position, Case.prompt_text, Case.case_key,
                                     Case.conversation_id).where(Case.casebook_id.in_(part))
                              .order_by(Case.casebook_id, Case.position, Case.id)).all()
            msg_ids = [int(c.case_key[2:]) for c in cases if c.case_key.startswith("m:") and c.case_key[2:].isdigit()]
            siblings: dict[int, tuple[Any, ...]] = {}
            for ids in chunks(msg_ids, IN_CHUNK):
                for mid, parent, conv, role in s.execute(select(Message.id, Message.parent_id, Message.conversation_id,
                                                                Message.role).where(Message.id.in_(ids))):
                    siblings[mid] = ("sibling", conv, parent, role)
            by_book: dict[int, list[Any]] = defaultdict(list)
            for c in cases:
                by_book[c.casebook_id].append(c)
            written: dict[int, CaseScores] = {}
            attempts: dict[int, list[Attempt]] = {}
            for cb, rows in by_book.items():
                groups = request_groups([request_keys(c.prompt_text or "", siblings.get(
                    int(c.case_key[2:]) if c.case_key.startswith("m:") and c.case_key[2:].isdigit() else -1))
                    for c in rows])
                size = Counter(groups)
                attempts[cb] = []
                for c, g in zip(rows, groups):
                    cs = case_scores(answers.get(c.id, {}), reactions.get(c.id, {}), weights)
                    # a request answered once has nothing to be compared with: no group
                    cs = dataclasses.replace(cs, request=f"r:{rows[g].id}" if size[g] > 1 else None,
                                             acknowledgement=is_acknowledgement(c.prompt_text or ""))
                    written[c.id] = cs
                    attempts[cb].append(attempt_from_case(c.position, c.id, cs.quality, cs.meta()))
            store.set_case_scores(written)
            goals = dict(s.execute(select(CaseBook.id, CaseBook.goal_id).where(CaseBook.id.in_(part))).all())
            before = {(cb, g): c for cb, g, c in s.execute(select(
                GoalState.casebook_id, GoalState.goal_id, GoalState.champion_case_id).where(GoalState.casebook_id.in_(part)))}
            states = store.replay_champions([(cb, goals[cb], attempts[cb]) for cb in sorted(attempts)
                                             if goals.get(cb) is not None], weights)
            summary.champions_changed += sum(st.champion_case_id != before.get((cb, st.goal_id))
                                             for cb, st in states.items())
            store.save_progress({cb: compute_progress(a) for cb, a in attempts.items()})
    summary.casebooks_updated = len(touched)


def measure_mars(db: Database, dims: list[str], top_k: int, run_id: int | None) -> dict[str, dict[str, Any]]:
    out = {}
    with db.session() as s:
        for dim in dims:
            values: dict[str, dict[str, float]] = defaultdict(dict)
            for st, sid, scorer, v in s.execute(select(ScoreRow.scorable_type, ScoreRow.scorable_id, ScoreRow.scorer,
                                                       ScoreRow.value).where(ScoreRow.dimension == dim,
                                                                             ScoreRow.scorer != ENSEMBLE,
                                                                             ScoreRow.status == "ok")):
                values[scorer][f"{st}:{sid}"] = v
            if not values:
                continue
            res = agreement(dim, values, top_k)
            s.add(MarsReport(pipeline_run_id=run_id, dimension=dim, scorers=res.scorers, items=res.items,
                             agreement=res.agreement, alpha=res.alpha, mean_disagreement=res.mean_disagreement,
                             most_disagreeing_pair=res.most_disagreeing_pair, pairs=res.pairs,
                             top_items=res.top_items))
            out[dim] = res.to_dict()
    return out


def dimension_means(db: Database, dims: list[str]) -> dict[str, float]:
    with db.session() as s:
        rows = s.execute(select(ScoreRow.dimension, func.avg(ScoreRow.value)).where(
            ScoreRow.scorer == ENSEMBLE, ScoreRow.status == "ok").group_by(ScoreRow.dimension)).all()
    return {d: round(float(v), 4) for d, v in rows if v is not None and (d in dims or d == OVERALL)}


def plot_trajectories(db: Database, path: Path, max_books: int = 12, cols: int = 4) -> Path | None:
    """Small multiples: one panel per CaseBook (the ``max_books`` largest), quality of each attempt along its
    trajectory, the champion so far as a step line, corrected attempts in red, accepted ones in green.

    One panel per CaseBook stays readable however many there are (one chart of many overlapping lines
    did not); the title says how many are left out.
    """
    with db.session() as s:
        total = s.scalar(select(func.count(func.distinct(Case.casebook_id))).where(Case.quality.is_not(None))) or 0
        sizes = s.execute(select(Case.casebook_id, func.count(Case.id)).where(Case.quality.is_not(None))
                          .group_by(Case.casebook_id).order_by(func.count(Case.id).desc(), Case.casebook_id)
                          .limit(max_books)).all()
        if not sizes:
            return None
        ids = [cb for cb, _ in sizes]
        books = {cb.id: cb for cb in s.scalars(select(CaseBook).where(CaseBook.id.in_(ids)))}
        champs = dict(s.execute(select(GoalState.casebook_id, GoalState.champion_case_id)
                                .where(GoalState.casebook_id.in_(ids))).all())
        # per CaseBook: (case id, position, quality, reaction, acknowledgement)
        series: dict[int, list[tuple[int, int, float, dict[str, Any], bool]]] = defaultdict(list)
        for cb, cid, pos, q, meta in s.execute(select(Case.casebook_id, Case.id, Case.position, Case.quality, Case.meta)
                                               .where(Case.casebook_id.in_(ids), Case.quality.is_not(None))
                                               .order_by(Case.casebook_id, Case.position)):
            meta = meta or {}
            series[cb].append((cid, pos, q, meta.get("reaction") or {}, bool(meta.get("acknowledgement"))))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    cols = min(cols, len(ids))
    rows = -(-len(ids) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(max(7.5, 3.6 * cols), 2.7 * rows + 1.1), squeeze=False,
                             sharey=True)
    for ax in axes.flat[len(ids):]:
        ax.set_visible(False)
    for ax, cb in zip(axes.flat, ids):
        every = series[cb]
        acks = [(pos, q) for _, pos, q, _, ack in every if ack]  # "thanks, works": shown, not an attempt
        pts = [pt for pt in every if not pt[4]]
        if acks:
            ax.scatter(*zip(*acks), facecolors="none", edgecolors="0.5", s=18, zorder=3)
        if pts:
            xs = [pos for _, pos, _, _, _ in pts]
            ys = [q for _, _, q, _, _ in pts]
            ax.plot(xs, ys, color="0.55", lw=0.8, zorder=1)
            ax.step(xs, np.maximum.accumulate(ys), where="post", color="tab:blue", lw=1.6, alpha=0.8, zorder=2)
            colours = ["tab:red" if r.get("corrected") else "tab:green" if r.get("accepted") else "0.35"
                       for _, _, _, r, _ in pts]
            ax.scatter(xs, ys, c=colours, s=18, zorder=3)
        champ = next(((pos, q) for cid, pos, q, _, _ in pts if cid == champs.get(cb)), None)
        if champ:
            ax.scatter([champ[0]], [champ[1]], marker="*", s=150, color="gold", edgecolor="black", lw=0.6, zorder=4)
        goal = " ".join((books[cb].description or books[cb].name).split())
        n = len(pts)
        ax.set_title(f"{goal[:38] + '…' if len(goal) > 39 else goal}\n{n} attempt{'s' if n != 1 else ''}"
                     + (f" · {verdict}" if (verdict := ((books[cb].meta or {}).get('progress') or {}).get('verdict'))
                        and verdict != "single attempt" else ""), fontsize=8)
        ax.set_xlim(-0.5, max(1.5, len(every) - 0.5))
        ax.set_ylim(0, 1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25)
    for ax in axes[:, 0]:
        ax.set_ylabel("quality", fontsize=8)
    for ax in axes[-1, :]:
        ax.set_xlabel("attempt", fontsize=8)
    shown = f"the {len(ids)} largest of {total} scored CaseBooks" if total > len(ids) else f"{total} scored CaseBooks"
    fig.suptitle(f"Quality of each attempt along its CaseBook: {shown}", fontsize=10)
    dot = dict(marker="o", linestyle="", markersize=5)
    fig.legend(handles=[Line2D([], [], color="tab:blue", lw=1.6, label="best so far"),
                        Line2D([], [], marker="*", linestyle="", markersize=11, color="gold", markeredgecolor="black",
                               label="champion"),
                        Line2D([], [], color="tab:red", label="corrected by the person", **dot),
                        Line2D([], [], color="tab:green", label="accepted", **dot),
                        Line2D([], [], color="0.35", label="no verdict", **dot),
                        Line2D([], [], marker="o", linestyle="", markersize=5, markerfacecolor="none",
                               markeredgecolor="0.5", label="\"thanks\": not an attempt")],
               loc="lower center", ncol=3 if cols < 3 else 6, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, (0.1 if cols < 3 else 0.06) if rows == 1 else 0.035, 1, 0.96))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")  # "tight": a wide legend is never cut
    plt.close(fig)
    return path


def score_stage(ctx: Any) -> dict[str, Any]:
    """The pipeline stage after casebooks; adds its section (MARS, champions, progress, best and worst
    answers) to the run report."""
    from .queries import render_score_report, score_report

    summary = run_scoring(ctx.config, ctx.db, run_id=ctx.run_id, progress=ctx.progress, run_dir=ctx.run_dir)
    ctx.results["score"] = summary
    with ctx.db.session() as s:
        rep = score_report(s, dict(ctx.config.scoring.dimension_weights), top_n=REPORT_CASEBOOKS)
    ctx.report["score"] = render_score_report(rep, summary.mars, summary.dimensions)
    return summary.counts()
