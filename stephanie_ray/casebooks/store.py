"""CaseBookStore: curriculum-level operations on CaseBooks, cases, goal states and A/B results.

Every method works in the caller's session (the caller owns the transaction) and returns ORM rows
loaded with what a caller needs next, in a constant number of statements however much data there
is: lists use one query for the rows plus one ``selectinload`` per relationship (tests count them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Sequence

from sqlalchemy import case as sql_case
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from ..db.models import Case, CaseABResult, CaseBook, CaseScorable, Goal, GoalState
from ..db.base import utcnow
from ..errors import UserError
from ..ingest.model import stable_id
from .goals import goal_hash
from .progress import Attempt, Progress, champion_tournament, compute_progress, ema, wilson_lower_bound

HISTORY_KEPT = 100  # champion changes remembered in a goal state's meta
REPLAY = "champion_tournament"  # meta.source of the A/B results the tournament writes (and replaces)


@dataclass(frozen=True)
class CaseScores:
    """What scoring writes back on a case: its quality and what the champion and progress rules read."""

    quality: float | None  # footing quality of its best answer
    dimensions: dict[str, float]  # that answer's ensemble score per dimension
    request: str | None  # request-group key: same key, same request
    corrected: float | None  # share of its answers the person corrected (None: unknown)
    accepted: float | None
    acknowledgement: bool = False  # its prompt only thanks for the answer before: no request, not an attempt

    def meta(self) -> dict[str, Any]:
        return {"scores": self.dimensions, "request": self.request, "acknowledgement": self.acknowledgement,
                "reaction": None if self.corrected is None else {"corrected": self.corrected, "accepted": self.accepted}}


def attempt_from_case(position: int, case_id: int, quality: float | None, meta: dict[str, Any] | None) -> Attempt:
    """A case row as the champion and progress rules see it (what :meth:`CaseBookStore.set_case_scores` wrote)."""
    meta = meta or {}
    reaction = meta.get("reaction") or {}
    if meta.get("acknowledgement"):  # "thanks, works now" and the reply to it: not an attempt at anything
        return Attempt(position, case_id, None)
    return Attempt(position, case_id, quality, dict(meta.get("scores") or {}), meta.get("request"),
                   reaction.get("corrected"), reaction.get("accepted"))


def scope_name(pipeline_run_id: int | None, agent_name: str | None, tag: str) -> str:
    return f"scope/run-{pipeline_run_id if pipeline_run_id is not None else 'any'}/{agent_name or 'any'}/{tag}"


def case_id_for(casebook_id: int, case_key: str) -> int:
    return stable_id("case", str(casebook_id), case_key)


def scorable_row_id(case_id: int, scorable_type: str, scorable_id: int, role: str) -> int:
    return stable_id("case_scorable", str(case_id), scorable_type, str(scorable_id), role)


class CaseBookStore:
    def __init__(self, session: Session, *, delta_ema_alpha: float = 0.3, trust_z: float = 1.96):
        self.s = session
        self.alpha = delta_ema_alpha
        self.z = trust_z

    @classmethod
    def from_config(cls, session: Session, cfg: Any) -> CaseBookStore:
        return cls(session, delta_ema_alpha=cfg.casebooks.delta_ema_alpha, trust_z=cfg.casebooks.trust_z)

    # ------------------------------------------------------------------ casebooks and goals

    def _get_or_create(self, model: Any, where: dict[str, Any], values: dict[str, Any]) -> Any:
        """Race-safe get-or-create on a unique key: a concurrent insert of the same key is re-read."""
        stmt = select(model).filter_by(**where)
        row = self.s.scalars(stmt).first()
        if row is not None:
            return row
        try:
            with self.s.begin_nested():
                row = model(**where, **values)
                self.s.add(row)
        except IntegrityError:
            row = self.s.scalars(stmt).one()
        return row

    def ensure_casebook(self, name: str, *, description: str = "", goal_id: int | None = None,
                        tag: str = "default", pipeline_run_id: int | None = None, agent_name: str | None = None,
                        mode: str | None = None, group_by: str | None = None,
                        meta: dict[str, Any] | None = None) -> CaseBook:
        if not name:
            raise UserError("a CaseBook needs a name")
        return self._get_or_create(CaseBook, {"name": name}, {
            "description": description, "goal_id": goal_id, "tag": tag, "pipeline_run_id": pipeline_run_id,
            "agent_name": agent_name, "mode": mode, "group_by": group_by, "meta": dict(meta or {})})

    def ensure_casebook_scope(self, pipeline_run_id: int | None = None, agent_name: str | None = None,
                              tag: str = "default", description: str = "") -> CaseBook:
        """The one CaseBook for this (pipeline run, agent, tag) scope, created on first use."""
        return self.ensure_casebook(scope_name(pipeline_run_id, agent_name, tag), description=description, tag=tag,
                                    pipeline_run_id=pipeline_run_id, agent_name=agent_name)

    def get_casebook(self, name_or_id: str | int) -> CaseBook | None:
        if isinstance(name_or_id, int) or (isinstance(name_or_id, str) and name_or_id.isdigit()):
            found = self.s.get(CaseBook, int(name_or_id))
            if found is not None or isinstance(name_or_id, int):
                return found
        return self.s.scalars(select(CaseBook).where(CaseBook.name == str(name_or_id))).first()

    def ensure_goal(self, text: str, meta: dict[str, Any] | None = None) -> Goal:
        h = goal_hash(text)
        return self._get_or_create(Goal, {"text_hash": h},
                                   {"id": stable_id("goal", h), "text": text, "meta": dict(meta or {})})

    # ------------------------------------------------------------------ cases

    def add_case(self, casebook_id: int, *, prompt_text: str, goal_id: int | None = None,
                 agent_name: str | None = None, case_key: str | None = None, created_at: datetime | None = None,
                 scorables: Iterable[dict[str, Any]] = (), quality: float | None = None, accepted: bool = False,
                 meta: dict[str, Any] | None = None) -> Case:
        """Append a case at the end of the CaseBook's trajectory (idempotent for a given ``case_key``).

        ``scorables``: dicts with ``scorable_type``, ``scorable_id``, ``role`` and optionally ``rank``,
        ``dedup_key`` and ``meta``.
        """
        created_at = created_at or utcnow()
        key = case_key or f"t:{created_at.isoformat()}:{stable_id(prompt_text)}"
        cid = case_id_for(casebook_id, key)
        existing = self.s.get(Case, cid)
        if existing is not None:
            return existing
        position = self.s.scalar(select(func.coalesce(func.max(Case.position) + 1, 0))
                                 .where(Case.casebook_id == casebook_id))
        case = Case(id=cid, casebook_id=casebook_id, goal_id=goal_id, case_key=key, prompt_text=prompt_text,
                    agent_name=agent_name, created_at=created_at, position=position, source_position=0,
                    quality=quality, accepted=accepted, meta=dict(meta or {}))
        for sc in scorables:
            case.scorables.append(CaseScorable(
                id=scorable_row_id(cid, sc["scorable_type"], int(sc["scorable_id"]), sc["role"]),
                casebook_id=casebook_id, scorable_type=sc["scorable_type"], scorable_id=int(sc["scorable_id"]),
                role=sc["role"], rank=sc.get("rank"), dedup_key=sc.get("dedup_key"), meta=dict(sc.get("meta") or {})))
        self.s.add(case)
        self.s.flush()
        return case

    def get_case(self, case_id: int) -> Case | None:
        return self.s.scalars(select(Case).where(Case.id == case_id).options(selectinload(Case.scorables))).first()

    def get_cases(self, casebook_id: int, *, limit: int | None = None, offset: int = 0) -> list[Case]:
        """A CaseBook's cases in trajectory order, with their scorables (two statements)."""
        stmt = (select(Case).where(Case.casebook_id == casebook_id).order_by(Case.position, Case.id)
                .options(selectinload(Case.scorables)).offset(offset))
        if limit is not None:
            stmt = stmt.limit(limit)
        return list(self.s.scalars(stmt))

    def set_case_qualities(self, qualities: dict[int, float]) -> None:
        """Set many cases' qualities (what scoring writes back) in one executemany."""
        if qualities:
            self.s.execute(update(Case), [{"id": cid, "quality": float(q)} for cid, q in qualities.items()])

    def set_accepted(self, case_ids: Sequence[int], accepted: bool = True) -> None:
        if case_ids:
            self.s.execute(update(Case).where(Case.id.in_(list(case_ids))).values(accepted=accepted))

    # ------------------------------------------------------------------ goal state, champions, A/B

    def get_goal_state(self, casebook_id: int, goal_id: int) -> GoalState | None:
        return self.s.scalars(select(GoalState).where(GoalState.casebook_id == casebook_id,
                                                      GoalState.goal_id == goal_id)).first()

    def upsert_goal_state(self, casebook_id: int, goal_id: int, case_id: int | None, quality: float | None, *,
                          only_if_better: bool = False, improved: bool | None = None,
                          delta: float | None = None) -> GoalState:
        """Record one more result for a goal in a CaseBook.

        * the champion becomes ``case_id`` (with ``quality``) unless ``only_if_better`` is set and
          ``quality`` does not beat the current champion's;
        * ``improved`` counts a win or a loss (derived from ``delta > 0`` when only a delta is given);
        * ``delta`` updates the exponentially averaged delta (weight ``delta_ema_alpha``);
        * trust is the Wilson lower bound of wins / (wins + losses) (see :func:`wilson_lower_bound`).
        """
        st = self._get_or_create(GoalState, {"casebook_id": casebook_id, "goal_id": goal_id},
                                 {"run_ix": 0, "wins": 0, "losses": 0, "trust": 0.0, "meta": {}})
        if self.s.get_bind().dialect.name == "postgresql":  # lock the row against a concurrent update
            self.s.refresh(st, with_for_update=True)  # (SQLite transactions begin IMMEDIATE: already serialised)
        promote = case_id is not None and quality is not None and (
            st.champion_case_id is None or not only_if_better
            or st.champion_quality is None or quality > st.champion_quality)
        self._apply(st, case_id, quality, promote=promote, improved=improved, delta=delta)
        self.s.flush()
        return st

    def _apply(self, st: GoalState, case_id: int | None, quality: float | None, *, promote: bool,
               improved: bool | None, delta: float | None) -> None:
        """The one place a goal state changes: counts, averaged delta, trust, champion and its history."""
        st.run_ix += 1
        if improved is None and delta is not None:
            improved = delta > 0
        if improved is not None:
            if improved:
                st.wins += 1
            else:
                st.losses += 1
        if delta is not None:
            st.avg_delta = ema(st.avg_delta, delta, self.alpha)
        st.trust = wilson_lower_bound(st.wins, st.wins + st.losses, self.z)
        if promote and case_id is not None and quality is not None:
            st.champion_case_id, st.champion_quality = case_id, float(quality)
            history = list((st.meta or {}).get("history", []))
            history.append({"run_ix": st.run_ix, "case_id": case_id, "quality": float(quality),
                            "at": utcnow().isoformat()})
            st.meta = {**(st.meta or {}), "history": history[-HISTORY_KEPT:]}
        st.updated_at = utcnow()

    def record_ab_result(self, casebook_id: int, goal_id: int, baseline_case_id: int | None,
                         candidate_case_id: int, baseline_quality: float, candidate_quality: float, *,
                         margin: float = 0.0, meta: dict[str, Any] | None = None) -> tuple[CaseABResult, GoalState]:
        """An A/B comparison: the candidate wins when it beats the baseline by more than ``margin``.

        The result is stored, the goal state counts the win or loss and the delta, and the candidate
        becomes champion only if it beats the current champion.
        """
        delta = float(candidate_quality) - float(baseline_quality)
        improved = delta > margin
        ab = CaseABResult(casebook_id=casebook_id, goal_id=goal_id, baseline_case_id=baseline_case_id,
                          candidate_case_id=candidate_case_id, baseline_quality=float(baseline_quality),
                          candidate_quality=float(candidate_quality), delta=delta, improved=improved,
                          meta=dict(meta or {}))
        self.s.add(ab)
        if improved:
            self.set_accepted([candidate_case_id])
        st = self.upsert_goal_state(casebook_id, goal_id, candidate_case_id, candidate_quality,
                                    only_if_better=True, improved=improved, delta=delta)
        return ab, st

    def replay_champions(self, books: Sequence[tuple[int, int, Sequence[Attempt]]],
                         weights: dict[str, float] | None = None) -> dict[int, GoalState]:
        """Decide each CaseBook's champion by the footing tournament (:func:`.progress.champion_tournament`).

        ``books``: (casebook id, goal id, its attempts in trajectory order). The tournament owns these
        goal states: each is reset (counts, delta, trust, champion, history; the A/B results a previous
        tournament wrote are deleted, the ``accepted`` flags it set cleared) and rebuilt — the first
        scored attempt becomes champion, every later one is an A/B result against the champion so far
        (a win or a loss), promoted when it is strictly better. So scoring again, or scoring a CaseBook
        that grew, gives the goal state one tournament over the whole trajectory would give.
        A constant number of statements per call, however many CaseBooks and cases.
        """
        books = [b for b in books if b[2]]
        if not books:
            return {}
        ids = sorted({cb for cb, _, _ in books})
        stmt = select(GoalState).where(GoalState.casebook_id.in_(ids))
        if self.s.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        states = {(st.casebook_id, st.goal_id): st for st in self.s.scalars(stmt)}
        old = [i for i, meta in self.s.execute(select(CaseABResult.id, CaseABResult.meta)
                                               .where(CaseABResult.casebook_id.in_(ids)))
               if (meta or {}).get("source") == REPLAY]
        if old:
            self.s.execute(delete(CaseABResult).where(CaseABResult.id.in_(old)))
        self.s.execute(update(Case).where(Case.casebook_id.in_(ids), Case.accepted.is_(True)).values(accepted=False))
        out: dict[int, GoalState] = {}
        for cb, goal, attempts in books:
            st = states.get((cb, goal))
            if st is None:
                st = GoalState(casebook_id=cb, goal_id=goal)
                self.s.add(st)
            st.run_ix, st.wins, st.losses, st.trust, st.avg_delta = 0, 0, 0, 0.0, None
            st.champion_case_id = st.champion_quality = None
            st.meta = {**(st.meta or {}), "history": []}
            first, comparisons = champion_tournament(attempts, weights)
            if first is None:
                out[cb] = st
                continue
            quality = {a.case_id: a.quality for a in attempts}
            self._apply(st, first.case_id, first.quality, promote=True, improved=None, delta=None)
            won = []
            for c in comparisons:
                self.s.add(CaseABResult(
                    casebook_id=cb, goal_id=goal, baseline_case_id=c.baseline_case_id,
                    candidate_case_id=c.candidate_case_id, baseline_quality=c.baseline_quality,
                    candidate_quality=c.candidate_quality, delta=c.delta, improved=c.improved,
                    meta={"source": REPLAY, "dimensions": list(c.dimensions), "same_request": c.same_request}))
                self._apply(st, c.candidate_case_id, quality[c.candidate_case_id], promote=c.improved,
                            improved=c.improved, delta=c.delta)
                if c.improved:
                    won.append(c.candidate_case_id)
            self.set_accepted(won)
            out[cb] = st
        self.s.flush()
        return out

    def set_case_scores(self, scores: dict[int, CaseScores]) -> None:
        """Write back what scoring found for many cases (quality and meta): one select, one batched update."""
        if not scores:
            return
        for case in self.s.scalars(select(Case).where(Case.id.in_(list(scores)))):
            sc = scores[case.id]
            case.quality = sc.quality
            case.meta = {**(case.meta or {}), **sc.meta()}
        self.s.flush()

    # ------------------------------------------------------------------ replay pools

    def recent_cases(self, casebook_id: int, *, goal_id: int | None = None, limit: int = 20,
                     accepted_only: bool = False, champion_first: bool = True) -> list[Case]:
        """The newest cases of a CaseBook (latest in the trajectory first), its champion(s) first.

        Two statements whatever the data size: the cases (champion ordering by a subquery) and their
        scorables.
        """
        stmt = select(Case).where(Case.casebook_id == casebook_id)
        if goal_id is not None:
            stmt = stmt.where(Case.goal_id == goal_id)
        if accepted_only:
            stmt = stmt.where(Case.accepted.is_(True))
        order: list[Any] = []
        if champion_first:
            champs = select(GoalState.champion_case_id).where(GoalState.casebook_id == casebook_id,
                                                              GoalState.champion_case_id.is_not(None))
            if goal_id is not None:
                champs = champs.where(GoalState.goal_id == goal_id)
            order.append(sql_case((Case.id.in_(champs.scalar_subquery()), 0), else_=1))
        order += [Case.position.desc(), Case.id.desc()]
        stmt = stmt.order_by(*order).limit(limit).options(selectinload(Case.scorables))
        return list(self.s.scalars(stmt))

    def pool_for_goal(self, goal_id: int, *, exclude_casebook_id: int | None = None, limit: int = 50,
                      accepted_only: bool = False) -> list[Case]:
        """Cases for the same goal in other CaseBooks: best quality first, then newest.

        Three statements whatever the data size: cases, their scorables, their CaseBooks.
        """
        stmt = select(Case).where(Case.goal_id == goal_id)
        if exclude_casebook_id is not None:
            stmt = stmt.where(Case.casebook_id != exclude_casebook_id)
        if accepted_only:
            stmt = stmt.where(Case.accepted.is_(True))
        stmt = (stmt.order_by(Case.quality.is_(None), Case.quality.desc(), Case.created_at.desc(), Case.id)
                .limit(limit).options(selectinload(Case.scorables), selectinload(Case.casebook)))
        return list(self.s.scalars(stmt))

    # ------------------------------------------------------------------ progress

    def progress(self, casebook_id: int, *, save: bool = True) -> Progress:
        """Progress over the trajectory (:func:`.progress.compute_progress`) from the cases' qualities and
        what scoring recorded on them (reactions, request groups); saved in the CaseBook's meta if ``save``."""
        rows = self.s.execute(select(Case.position, Case.id, Case.quality, Case.meta)
                              .where(Case.casebook_id == casebook_id).order_by(Case.position, Case.id)).all()
        prog = compute_progress([attempt_from_case(p, i, q, m) for p, i, q, m in rows])
        if save:
            self.save_progress({casebook_id: prog})
        return prog

    def save_progress(self, progress: dict[int, Progress]) -> None:
        """Store many CaseBooks' progress in their meta: one select, one batched update."""
        if not progress:
            return
        for cb in self.s.scalars(select(CaseBook).where(CaseBook.id.in_(list(progress)))):
            cb.meta = {**(cb.meta or {}), "progress": progress[cb.id].to_dict()}
        self.s.flush()
