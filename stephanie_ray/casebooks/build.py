"""``stephanie casebooks build``: imported conversations -> CaseBooks, cases and scorables.

The build streams conversations from the database in chunks (oldest first), converts each with the
pure planner (:mod:`.convert`), and writes each chunk in one transaction with conflict-ignoring
bulk inserts. Case and scorable ids are deterministic, the unique constraints enforce turn-hash
deduplication inside a CaseBook, so a rebuild (or two racing builds) adds nothing twice.

Grouping:

* ``conversation``: one CaseBook per conversation, named ``<tag>/<mode>/<provider>/<external id>``;
* ``goal``: conversations of one project are linked by the evidence they share — identifiers,
  names, file names, hosts, code, and within one language their rarer words — weighted by their
  shape, their rarity in general language and in the person's history (:mod:`.goal_evidence`);
  one CaseBook per group,
  ``<tag>/<mode>/goal/<slug>-<id>``. A conversation already in a goal CaseBook stays there on later
  builds; new conversations join the group they share most evidence with or found a new one.

After writing, each touched CaseBook's cases are put in trajectory order (time, then conversation,
then position in the conversation) and its meta records providers, conversations and progress.
"""

from __future__ import annotations

import logging
import re
import time
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select, update

from ..config import CaseBooksConfig, StephanieConfig
from ..db import Database
from ..db.base import utcnow
from ..db.bulk import IN_CHUNK, chunks, insert_ignore
from ..db.models import Case, CaseBook, CaseScorable, Conversation, Goal, Message, Turn
from ..errors import UserError
from ..progress_bar import ProgressBar
from .convert import MODES, ConvPlan, ConvRow, MsgRow, TurnRow, conversation_goal, plan_conversation
from .goal_evidence import GoalEvidence, extract_evidence
from .goal_linker import GoalLinker
from .goals import GENERIC_TITLES, goal_hash
from .progress import compute_progress
from .store import case_id_for, scorable_row_id
from ..ingest.model import normalise_text, stable_id

log = logging.getLogger(__name__)


@dataclass
class BuildSummary:
    mode: str = ""
    group_by: str = ""
    conversations_seen: int = 0
    conversations_converted: int = 0
    goals_new: int = 0
    goal_groups: int = 0  # CaseBooks touched when grouping by goal
    cross_provider_groups: int = 0  # of those, CaseBooks holding conversations of several providers
    casebooks_new: int = 0
    casebooks_touched: int = 0
    cases_new: int = 0
    cases_reordered: int = 0
    scorables_new: int = 0
    duplicates_skipped: int = 0  # scorables whose turn hash is already in their CaseBook
    cases_duplicate: int = 0  # cases skipped because every answer in them was a duplicate
    skipped: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def counts(self) -> dict[str, Any]:
        out = self.to_dict()
        out["errors"] = self.errors[:50]
        return out


def _slug(text: str, n: int = 32) -> str:
    """A name part in the goal's own script: letters, marks and digits of any script are kept
    (Korean, Chinese, Cyrillic, Devanagari vowel signs), every other run becomes one '-', cut to
    ``n`` characters (characters, not bytes: the name column counts characters)."""
    text = unicodedata.normalize("NFC", text).lower()
    keep = "".join(ch if unicodedata.category(ch)[0] in "LMN" else " " for ch in text)
    s = "-".join(keep.split())
    return s[:n].rstrip("-") or "goal"


def casebook_name(tag: str, mode: str, group_by: str, *, provider: str = "", external_id: str = "",
                  goal_text: str = "", goal_id: int = 0) -> str:
    if group_by == "conversation":
        return f"{tag}/{mode}/{provider}/{external_id}"
    # the slug is for people; the goal id's first 8 hex digits keep names of similar goals apart
    return f"{tag}/{mode}/goal/{_slug(goal_text)}-{goal_id:016x}"[:len(tag) + len(mode) + 48]


# ----------------------------------------------------------------------------- loading


def _conversation_order(session: Any) -> list[tuple[int, str, str, str, datetime | None]]:
    return [tuple(r) for r in session.execute(
        select(Conversation.id, Conversation.provider, Conversation.external_id, Conversation.title,
               Conversation.created_at)
        .order_by(Conversation.created_at.is_(None), Conversation.created_at, Conversation.id)).all()]


def _load_rows(session: Any, heads: list[tuple[int, str, str, str, datetime | None]],
               users_only: bool = False) -> list[ConvRow]:
    convs = {cid: ConvRow(cid, prov, ext, title or "", created) for cid, prov, ext, title, created in heads}
    ids = list(convs)
    for part in chunks(ids, IN_CHUNK):
        q = (select(Message.id, Message.conversation_id, Message.parent_id, Message.role, Message.text, Message.hidden,
                    Message.active, Message.created_at, Message.position, Message.model, Message.blocks)
             .where(Message.conversation_id.in_(part)))
        if users_only:
            q = q.where(Message.role == "user")
        for mid, cid, pid, role, text, hidden, active, created, pos, model, blocks in session.execute(q):
            convs[cid].messages.append(MsgRow(mid, pid, role, text or "", bool(hidden), bool(active), created,
                                              pos, model, len(blocks or ())))
        if users_only:
            continue
        for tid, cid, uid, aid, th, active, pos in session.execute(
                select(Turn.id, Turn.conversation_id, Turn.user_message_id, Turn.assistant_message_id, Turn.turn_hash,
                       Turn.active, Turn.position).where(Turn.conversation_id.in_(part))):
            convs[cid].turns.append(TurnRow(tid, uid, aid, th, bool(active), pos))
    return [convs[i] for i in ids]


# ----------------------------------------------------------------------------- goal grouping


def conversation_evidence(conv: ConvRow, max_chars: int) -> GoalEvidence:
    """The linking evidence of a conversation: its title (unless generic) and its visible user
    messages, and as echoes its visible assistant messages, the active thread first, each in order."""
    def visible(role: str) -> list[str]:
        msgs = sorted((m for m in conv.messages if m.role == role and not m.hidden and m.text.strip()),
                      key=lambda m: (not m.active, m.position, m.id))
        return [m.text for m in msgs]

    title = "" if normalise_text(conv.title).lower() in GENERIC_TITLES else conv.title
    return extract_evidence(title, visible("user"), visible("assistant"), max_chars=max_chars)


# A goal text with fewer distinct words is not compared by the model: the embedding of a short question ("Are you
# trained by Microsoft?", "What is up?") says what kind of question it is, not which line of work it belongs to.
GOAL_SEMANTIC_MIN_WORDS = 8
_WORDS = re.compile(r"\w+")


class GoalSemantic:
    """The embedding model's cosine of two conversations' goal texts, for pairs both in a language it covers
    (``casebooks.goal_semantic_languages``; the bundled MiniLM is English-only, so by default two English
    conversations): the linker consults it only for candidates that already share some evidence, and only to
    raise a score (:class:`GoalLinker`). Never across languages. The model is ``embedding``'s (the instance
    scoring uses). :meth:`add` encodes a chunk of new conversations in one batch; ``lazy`` ones (already in a
    goal CaseBook) are encoded only when a new conversation is compared with them, so a rebuild with nothing
    new encodes nothing. Keeps one (dim,) float32 vector per encoded conversation (1.5 KB with MiniLM)."""

    def __init__(self, cfg: StephanieConfig) -> None:
        langs = {code.strip() for code in cfg.casebooks.goal_semantic_languages.split(",") if code.strip()}
        self.any_language = "*" in langs
        self.languages = langs - {"*"}
        self.embedding = cfg.embedding
        self.vectors: dict[Any, tuple[str, np.ndarray]] = {}
        self.pending: dict[Any, tuple[str, str]] = {}  # lazy ones: key -> (language, goal text)

    @classmethod
    def from_config(cls, cfg: StephanieConfig) -> "GoalSemantic | None":
        return cls(cfg) if cfg.casebooks.goal_semantic_languages.strip() else None

    def covers(self, lang: str, text: str) -> bool:
        return (lang != "und" and (self.any_language or lang in self.languages)
                and len(set(_WORDS.findall(text.lower()))) >= GOAL_SEMANTIC_MIN_WORDS)

    def add(self, items: list[tuple[Any, str, str]], lazy: bool = False) -> None:
        """``items``: (key, language code, goal text); those the model covers are encoded (``lazy``: on demand)."""
        todo = [(k, lang, text) for k, lang, text in items if self.covers(lang, text)]
        if lazy:
            self.pending.update((k, (lang, text)) for k, lang, text in todo)
        else:
            self._encode(todo)

    def _encode(self, todo: list[tuple[Any, str, str]]) -> None:
        if not todo:
            return
        from ..embedding import Embedder

        vecs = Embedder.from_config(self.embedding).encode([text for _, _, text in todo])  # (n, dim), unit rows
        for (k, lang, _), v in zip(todo, vecs):
            self.vectors[k] = (lang, v)
            self.pending.pop(k, None)

    def __call__(self, a: Any, b: Any) -> float | None:
        self._encode([(k, *self.pending[k]) for k in (a, b) if k in self.pending])
        va, vb = self.vectors.get(a), self.vectors.get(b)
        if va is None or vb is None or va[0] != vb[0]:
            return None
        return float(va[1] @ vb[1])


def goal_linker(ccfg: CaseBooksConfig, semantic: GoalSemantic | None = None) -> GoalLinker:
    """The build's linker, configured from ``casebooks`` (the benchmark sweeps the same one)."""
    return GoalLinker(ccfg.goal_threshold, semantic, ccfg.goal_semantic_floor, evidence_scale=ccfg.goal_evidence_scale,
                      common_share=ccfg.goal_common_share, spread_limit=ccfg.goal_spread_limit,
                      echo_weight=ccfg.goal_echo_weight)


def _goal_groups(db: Database, cfg: StephanieConfig, heads: list[tuple], mode: str,
                 summary: BuildSummary, progress: bool) -> tuple[dict[int, int], dict[int, tuple[int, str]]]:
    """Conversation id -> group key, and group key -> (goal id, goal text) for new groups.

    Group keys: ``-casebook_id`` for an existing goal CaseBook, else the founding conversation's id.
    Conversations are linked by shared evidence (:mod:`.goal_evidence`) in time order; what a
    conversation's decision uses comes only from conversations at or before it, so a build after
    each import gives the groups one build at the end gives.
    """
    ccfg = cfg.casebooks
    with db.session() as s:
        # sticky: conversations already in a goal CaseBook of this mode and tag stay where they are
        sticky = dict(s.execute(
            select(Case.conversation_id, Case.casebook_id).join(CaseBook, CaseBook.id == Case.casebook_id)
            .where(CaseBook.group_by == "goal", CaseBook.mode == mode, CaseBook.tag == ccfg.tag,
                   Case.conversation_id.is_not(None)).distinct()).all())
    goal_of: dict[int, tuple[int, str]] = {}  # conversation id -> (goal id, goal text)
    semantic = GoalSemantic.from_config(cfg)
    linker = goal_linker(ccfg, semantic)  # keeps feature ids, not texts: memory ~ KBs per conversation
    bar = ProgressBar(len(heads), progress, "goals", "conversation", logger=log)
    with db.session() as s:
        for part in chunks(heads, ccfg.chunk_conversations):  # heads are oldest first, so are the chunks
            todo = []
            for conv in _load_rows(s, part):  # (answers too: their marks are echoes)
                text = conversation_goal(conv, ccfg.max_goal_chars)
                if text:
                    goal_of[conv.id] = (stable_id("goal", goal_hash(text)), text)
                    todo.append((conv.id, conversation_evidence(conv, ccfg.goal_evidence_chars), text))
            if semantic is not None:  # the new ones in one batch per chunk; sticky ones when a new one meets them
                semantic.add([(cid, ev.lang.code, text) for cid, ev, text in todo if cid not in sticky])
                semantic.add([(cid, ev.lang.code, text) for cid, ev, text in todo if cid in sticky], lazy=True)
            for cid, ev, _ in todo:
                linker.add(cid, ev, group=-sticky[cid] if cid in sticky else None)
            bar.update(len(part))
    bar.close()
    with db.session() as s:
        summary.goals_new += _insert_goals(s, {gid: text for gid, text in goal_of.values()})
    out = dict(linker.group_of)
    new_groups = {key: goal_of[key] for key in set(out.values()) if key > 0}
    log.info("goal grouping: %d conversations -> %d groups (%d new) at threshold %.2f",
             len(out), len(set(out.values())), len(new_groups), ccfg.goal_threshold)
    return out, new_groups


def _insert_goals(s: Any, goal_texts: dict[int, str]) -> int:
    existing: set[int] = set()
    ids = list(goal_texts)
    for part in chunks(ids, IN_CHUNK):
        existing.update(s.scalars(select(Goal.id).where(Goal.id.in_(part))))
    rows = [{"id": gid, "text": text, "text_hash": goal_hash(text), "meta": {}}
            for gid, text in goal_texts.items() if gid not in existing]
    insert_ignore(s, Goal, rows)
    return len(rows)


# ----------------------------------------------------------------------------- writing


class _BookCache:
    """What is already in each CaseBook this build touches: case ids, scorable ids, dedup keys, next position."""

    def __init__(self) -> None:
        self.cases: dict[int, set[int]] = {}
        self.scorables: dict[int, set[int]] = {}
        self.dedup: dict[int, set[str]] = {}
        self.next_pos: dict[int, int] = {}

    def load(self, s: Any, cb_ids: set[int]) -> None:
        todo = [i for i in cb_ids if i not in self.cases]
        for i in todo:
            self.cases[i], self.scorables[i], self.dedup[i], self.next_pos[i] = set(), set(), set(), 0
        for part in chunks(todo, IN_CHUNK):
            for cb, cid, pos in s.execute(select(Case.casebook_id, Case.id, Case.position)
                                          .where(Case.casebook_id.in_(part))):
                self.cases[cb].add(cid)
                self.next_pos[cb] = max(self.next_pos[cb], pos + 1)
            for cb, sid, key in s.execute(select(CaseScorable.casebook_id, CaseScorable.id, CaseScorable.dedup_key)
                                          .where(CaseScorable.casebook_id.in_(part))):
                self.scorables[cb].add(sid)
                if key is not None:
                    self.dedup[cb].add(key)


def _order_key(created: datetime | None, conversation_id: int | None, source_position: int, case_id: int) -> tuple:
    return (created is None, created.timestamp() if created else 0.0, conversation_id or 0, source_position, case_id)


def _write_chunk(s: Any, plans: list[tuple[ConvRow, ConvPlan, int, int]], cache: _BookCache,
                 summary: BuildSummary) -> set[int]:
    """plans: (conversation, plan, casebook id, goal id). Returns the CaseBooks that got new cases."""
    cache.load(s, {cb for _, _, cb, _ in plans})
    case_rows: list[dict[str, Any]] = []
    scorable_rows: list[dict[str, Any]] = []
    touched: set[int] = set()
    new_cases: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for conv, plan, cb_id, goal_id in plans:
        for cp in plan.cases:
            cid = case_id_for(cb_id, cp.case_key)
            is_new_case = cid not in cache.cases[cb_id]
            fresh: list[dict[str, Any]] = []
            answers = 0
            for sp in cp.scorables:
                sid = scorable_row_id(cid, sp.scorable_type, sp.scorable_id, sp.role)
                if sid in cache.scorables[cb_id]:
                    continue
                if sp.dedup_key is not None:
                    if sp.dedup_key in cache.dedup[cb_id]:
                        summary.duplicates_skipped += 1
                        continue
                    answers += 1
                fresh.append({"id": sid, "case_id": cid, "casebook_id": cb_id, "scorable_type": sp.scorable_type,
                              "scorable_id": sp.scorable_id, "role": sp.role, "rank": sp.rank,
                              "dedup_key": sp.dedup_key, "meta": sp.meta})
            has_keys = any(sp.dedup_key is not None for sp in cp.scorables)
            if is_new_case and has_keys and answers == 0:
                summary.cases_duplicate += 1  # every answer is already in this CaseBook
                continue
            if not fresh and not is_new_case:
                continue
            for row in fresh:
                cache.scorables[cb_id].add(row["id"])
                if row["dedup_key"] is not None:
                    cache.dedup[cb_id].add(row["dedup_key"])
            scorable_rows.extend(fresh)
            if is_new_case:
                cache.cases[cb_id].add(cid)
                new_cases[cb_id].append({
                    "id": cid, "casebook_id": cb_id, "goal_id": goal_id, "case_key": cp.case_key,
                    "conversation_id": conv.id, "prompt_text": cp.prompt_text, "agent_name": cp.agent_name,
                    "created_at": cp.created_at, "source_position": cp.source_position, "quality": None,
                    "accepted": False, "meta": cp.meta})
            touched.add(cb_id)
    for cb_id, rows in new_cases.items():
        rows.sort(key=lambda r: _order_key(r["created_at"], r["conversation_id"], r["source_position"], r["id"]))
        for r in rows:  # provisional: appended; the reorder pass fixes interleavings with older cases
            r["position"] = cache.next_pos[cb_id]
            cache.next_pos[cb_id] += 1
        case_rows.extend(rows)
    insert_ignore(s, Case, case_rows)
    insert_ignore(s, CaseScorable, scorable_rows)
    summary.cases_new += len(case_rows)
    summary.scorables_new += len(scorable_rows)
    return touched


def refresh_casebooks(s: Any, cb_ids: list[int]) -> tuple[int, int]:
    """Trajectory order, summary meta and progress for these CaseBooks.

    Returns (cases moved, CaseBooks holding more than one provider's conversations).
    """
    moved = multi = 0
    for part in chunks(sorted(cb_ids), IN_CHUNK):
        by_cb: dict[int, list[tuple]] = defaultdict(list)
        for row in s.execute(select(Case.casebook_id, Case.id, Case.created_at, Case.conversation_id,
                                    Case.source_position, Case.position, Conversation.provider, Case.quality)
                             .outerjoin(Conversation, Conversation.id == Case.conversation_id)
                             .where(Case.casebook_id.in_(part))):
            by_cb[row[0]].append(row)
        updates: list[dict[str, Any]] = []
        books = {cb.id: cb for cb in s.scalars(select(CaseBook).where(CaseBook.id.in_(part)))}
        for cb_id, rows in by_cb.items():
            rows.sort(key=lambda r: _order_key(r[2], r[3], r[4], r[1]))
            updates += [{"id": r[1], "position": pos} for pos, r in enumerate(rows) if r[5] != pos]
            providers = sorted({r[6] for r in rows if r[6]})
            multi += len(providers) > 1
            prog = compute_progress([(pos, r[1], r[7]) for pos, r in enumerate(rows)])
            cb = books[cb_id]
            cb.meta = {**(cb.meta or {}), "cases": len(rows), "conversations": len({r[3] for r in rows if r[3]}),
                       "providers": providers, "progress": prog.to_dict()}
        if updates:
            s.execute(update(Case), updates)
            moved += len(updates)
    return moved, multi


def build_casebooks(cfg: StephanieConfig, db: Database, *, mode: str | None = None, group_by: str | None = None,
                    pipeline_run_id: int | None = None, progress: bool = False) -> BuildSummary:
    ccfg = cfg.casebooks
    mode = mode or ccfg.mode
    group_by = group_by or ccfg.group_by
    if mode not in MODES:
        raise UserError(f"unknown mode {mode!r} (modes: {', '.join(MODES)})")
    if group_by not in ("conversation", "goal"):
        raise UserError(f"unknown grouping {group_by!r} (conversation or goal)")
    t0 = time.perf_counter()
    summary = BuildSummary(mode=mode, group_by=group_by)
    with db.session() as s:
        heads = _conversation_order(s)
    summary.conversations_seen = len(heads)
    groups: dict[int, int] = {}
    group_goal: dict[int, tuple[int, str]] = {}
    if group_by == "goal" and heads:
        groups, group_goal = _goal_groups(db, cfg, heads, mode, summary, progress)
    skipped: Counter = Counter()
    cache = _BookCache()
    touched: set[int] = set()
    bar = ProgressBar(len(heads), progress, f"casebooks ({mode})", "conversation", logger=log)
    for part in chunks(heads, ccfg.chunk_conversations):
        with db.session() as s:
            convs = _load_rows(s, part)
            planned: list[tuple[ConvRow, ConvPlan]] = []
            for conv in convs:
                try:
                    plan = plan_conversation(conv, mode, ccfg.max_goal_chars)
                except (ValueError, KeyError, TypeError) as exc:  # bad data in one conversation: report, go on
                    summary.failed += 1
                    summary.errors.append({"conversation": f"{conv.provider}:{conv.external_id}",
                                           "error": f"{type(exc).__name__}: {exc}"})
                    continue
                skipped.update(plan.skipped)
                if plan.cases:
                    planned.append((conv, plan))
            # goals of this chunk, then the CaseBooks they go to
            goal_texts: dict[int, str] = {}
            targets: list[tuple[ConvRow, ConvPlan, str, dict[str, Any]]] = []
            for conv, plan in planned:
                if group_by == "conversation":
                    gid = stable_id("goal", goal_hash(plan.goal_text))
                    goal_texts[gid] = plan.goal_text
                    name = casebook_name(ccfg.tag, mode, group_by, provider=conv.provider, external_id=conv.external_id)
                    targets.append((conv, plan, name, {"goal_id": gid, "description": plan.goal_text}))
                else:
                    key = groups.get(conv.id)
                    if key is None:  # no goal text at all (no user text): nothing to group by
                        skipped["conversations_no_goal"] += 1
                        continue
                    if key < 0:
                        targets.append((conv, plan, "", {"casebook_id": -key}))
                    else:
                        gid, text = group_goal[key]
                        goal_texts[gid] = text
                        name = casebook_name(ccfg.tag, mode, group_by, goal_text=text, goal_id=gid)
                        targets.append((conv, plan, name, {"goal_id": gid, "description": text}))
            summary.goals_new += _insert_goals(s, goal_texts)
            names = {name: info for _, _, name, info in targets if name}
            cb_ids = _ensure_casebooks(s, names, mode, group_by, ccfg.tag, pipeline_run_id, summary)
            cb_goal = dict(s.execute(select(CaseBook.id, CaseBook.goal_id).where(
                CaseBook.id.in_(list(set(cb_ids.values()) | {i["casebook_id"] for *_, i in targets
                                                            if "casebook_id" in i})))).all()) if targets else {}
            rows = []
            for conv, plan, name, info in targets:
                cb_id = info["casebook_id"] if not name else cb_ids[name]
                rows.append((conv, plan, cb_id, cb_goal.get(cb_id)))
            touched |= _write_chunk(s, rows, cache, summary)
            summary.conversations_converted += len(rows)
        bar.update(len(part))
    bar.close()
    with db.session() as s:
        summary.cases_reordered, multi = refresh_casebooks(s, sorted(touched))
        if group_by == "goal":
            summary.cross_provider_groups = multi
    summary.casebooks_touched = len(touched)
    summary.goal_groups = len(touched) if group_by == "goal" else 0
    summary.skipped = dict(sorted(skipped.items()))
    summary.seconds = round(time.perf_counter() - t0, 3)
    log.info("casebooks: %d conversations -> %d new cases in %d CaseBooks (%d new) in %.1f s",
             summary.conversations_converted, summary.cases_new, summary.casebooks_touched, summary.casebooks_new,
             summary.seconds)
    return summary


def _ensure_casebooks(s: Any, names: dict[str, dict[str, Any]], mode: str, group_by: str, tag: str,
                      pipeline_run_id: int | None, summary: BuildSummary) -> dict[str, int]:
    found: dict[str, int] = {}
    for part in chunks(list(names), IN_CHUNK):
        found.update(dict(s.execute(select(CaseBook.name, CaseBook.id).where(CaseBook.name.in_(part))).all()))
    missing = [n for n in names if n not in found]
    if missing:
        insert_ignore(s, CaseBook, [{
            "name": n, "description": names[n]["description"], "goal_id": names[n]["goal_id"], "mode": mode,
            "group_by": group_by, "pipeline_run_id": pipeline_run_id, "agent_name": None, "tag": tag,
            "created_at": utcnow(), "meta": {}} for n in missing])
        summary.casebooks_new += len(missing)
        for part in chunks(missing, IN_CHUNK):
            found.update(dict(s.execute(select(CaseBook.name, CaseBook.id).where(CaseBook.name.in_(part))).all()))
    return found


def casebooks_stage(ctx: Any) -> dict[str, Any]:
    """The pipeline stage after the import."""
    summary = build_casebooks(ctx.config, ctx.db, pipeline_run_id=ctx.run_id, progress=ctx.progress)
    ctx.results["casebooks"] = summary
    return summary.counts()
