"""The batch stage's post-passes: case scores, champions and progress through :class:`CaseBookStore`,
MARS agreement, dimension means. They read what the writers stored, in bounded chunks."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter, defaultdict
from typing import Any

import numpy as np
from sqlalchemy import func, select

from ..casebooks.progress import Attempt, compute_progress, footing_quality, request_groups
from ..casebooks.store import CaseScores, attempt_from_case
from ..config import StephanieConfig
from ..db import Database
from ..db.bulk import IN_CHUNK, chunks
from ..db.models import Case, CaseBook, CaseScorable, GoalState, MarsReport, Message, ScoreRow
from ..ingest.model import normalise_text
from ..reactions import classify
from .ensemble import ENSEMBLE, OVERALL
from .items import SCORED_ROLES
from .mars import agreement_matrix
from .scorers import SHORT_REQUEST_CHARS


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


def update_casebooks(db: Database, cfg: StephanieConfig, touched: set[int], summary: Any) -> None:
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
    """MARS per dimension over every stored ok score (the ensemble left out). Memory: one (scorers, items)
    matrix per dimension, filled from the rows as they stream in: O(scorers x items)."""
    out = {}
    with db.session() as s:
        for dim in dims:
            col: dict[tuple[str, int], int] = {}
            by_scorer: dict[str, tuple[list[int], list[float]]] = {}
            q = (select(ScoreRow.scorable_type, ScoreRow.scorable_id, ScoreRow.scorer, ScoreRow.value)
                 .where(ScoreRow.dimension == dim, ScoreRow.scorer != ENSEMBLE, ScoreRow.status == "ok"))
            for st, sid, scorer, v in s.execute(q).yield_per(IN_CHUNK):
                j = col.setdefault((st, sid), len(col))
                cols, vals = by_scorer.setdefault(scorer, ([], []))
                cols.append(j)
                vals.append(v)
            if not by_scorer:
                continue
            scorers = sorted(by_scorer)
            # item keys in sorted order, as the report has always listed them
            order = sorted(col)
            remap = np.empty(len(col), dtype=np.int64)
            for new, key in enumerate(order):
                remap[col[key]] = new
            del col
            mat = np.full((len(scorers), len(order)), np.nan)  # (scorers, items)
            for i, sc in enumerate(scorers):
                cols, vals = by_scorer.pop(sc)
                mat[i, remap[np.asarray(cols, dtype=np.int64)]] = vals
            res = agreement_matrix(dim, scorers, [f"{st}:{sid}" for st, sid in order], mat, top_k)
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


