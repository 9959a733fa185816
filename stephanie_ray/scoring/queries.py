"""Read side of scoring: one scorable's scores, the latest MARS reports, ranking for a goal, the run report's
scoring section."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import func, select

from ..casebooks.scorables import resolve_texts
from ..db.bulk import IN_CHUNK, chunks
from ..db.models import Case, CaseBook, CaseScorable, Goal, GoalState, MarsReport, ScorableEmbedding, ScoreRow
from ..embedding import Embedder, from_bytes, resolve_model
from ..errors import UserError
from .ensemble import ENSEMBLE, OVERALL
from .ranker import RankWeights, rank

SCORABLE_TYPES = ("turn", "message", "conversation")


def parse_scorable(session: Any, ref: str) -> tuple[str, int]:
    """``turn:123`` or a bare id (looked up among scored scorables of every type)."""
    if ":" in ref:
        kind, _, num = ref.partition(":")
        if kind not in SCORABLE_TYPES or not num.lstrip("-").isdigit():
            raise UserError(f"bad scorable {ref!r}: expected TYPE:ID with TYPE one of {', '.join(SCORABLE_TYPES)}")
        return kind, int(num)
    if not ref.lstrip("-").isdigit():
        raise UserError(f"bad scorable {ref!r}: expected TYPE:ID or an id")
    kinds = list(session.scalars(select(ScoreRow.scorable_type).where(ScoreRow.scorable_id == int(ref)).distinct()))
    if not kinds:
        raise UserError(f"no scores for scorable {ref} (stephanie score)")
    return kinds[0], int(ref)


def show_scores(session: Any, ref: str) -> dict[str, Any]:
    kind, sid = parse_scorable(session, ref)
    rows = list(session.scalars(select(ScoreRow).where(ScoreRow.scorable_type == kind, ScoreRow.scorable_id == sid)
                                .order_by(ScoreRow.dimension, ScoreRow.scorer)))
    if not rows:
        raise UserError(f"no scores for scorable {kind}:{sid} (stephanie score)")
    text = resolve_texts(session, [(kind, sid)]).get((kind, sid), "")
    return {"scorable": f"{kind}:{sid}", "text": text[:2000],
            "scores": [{"dimension": r.dimension, "scorer": r.scorer, "version": r.scorer_version, "value": r.value,
                        "status": r.status, "rationale": r.rationale, "error": r.error, "at": r.created_at,
                        "meta": r.meta} for r in rows]}


def latest_mars(session: Any) -> dict[str, Any]:
    newest = (select(MarsReport.dimension, func.max(MarsReport.id).label("id")).group_by(MarsReport.dimension)
              .subquery())
    reports = session.scalars(select(MarsReport).join(newest, newest.c.id == MarsReport.id)
                              .order_by(MarsReport.dimension))
    return {"dimensions": [{"dimension": r.dimension, "scorers": r.scorers, "items": r.items,
                            "agreement": r.agreement, "alpha": r.alpha, "mean_disagreement": r.mean_disagreement,
                            "most_disagreeing_pair": r.most_disagreeing_pair, "pairs": r.pairs,
                            "top_items": r.top_items, "pipeline_run_id": r.pipeline_run_id, "at": r.created_at}
                           for r in reports]}


def _resolve_goal(session: Any, goal: str) -> tuple[str, int | None]:
    """(goal text, goal id or None) from a goal id, a CaseBook id or name, or free text."""
    if goal.isdigit():
        g = session.get(Goal, int(goal))
        if g is not None:
            return g.text, g.id
        cb = session.get(CaseBook, int(goal))
        if cb is not None:
            return cb.description, cb.goal_id
    cb = session.scalars(select(CaseBook).where(CaseBook.name == goal)).first()
    if cb is not None:
        return cb.description, cb.goal_id
    if not goal.strip():
        raise UserError("rank needs a goal: its text, a goal id, or a CaseBook id or name")
    return goal, None


def rank_for_goal(session: Any, cfg: Any, goal: str, k: int) -> dict[str, Any]:
    if k <= 0:
        raise UserError("--k must be > 0")
    text, goal_id = _resolve_goal(session, goal)
    _, model = resolve_model(cfg.embedding.model)
    q = (select(CaseScorable.scorable_type, CaseScorable.scorable_id, func.max(Case.created_at))
         .join(Case, Case.id == CaseScorable.case_id).where(CaseScorable.role.in_(("response", "conversation", "assistant")))
         .group_by(CaseScorable.scorable_type, CaseScorable.scorable_id))
    if goal_id is not None:
        q = q.where(Case.goal_id == goal_id)
    cands = {(st, sid): created for st, sid, created in session.execute(q)}
    vecs: dict[tuple[str, int], np.ndarray] = {}
    values: dict[tuple[str, int], float] = defaultdict(float)
    keys = list(cands)
    for part in chunks(keys, IN_CHUNK):
        ids = [sid for _, sid in part]
        for st, sid, vec in session.execute(select(ScorableEmbedding.scorable_type, ScorableEmbedding.scorable_id,
                                                   ScorableEmbedding.vector)
                                            .where(ScorableEmbedding.scorable_id.in_(ids), ScorableEmbedding.model == model)):
            if (st, sid) in cands:
                vecs[(st, sid)] = from_bytes(vec)
        for st, sid, v in session.execute(select(ScoreRow.scorable_type, ScoreRow.scorable_id, ScoreRow.value)
                                          .where(ScoreRow.scorable_id.in_(ids), ScoreRow.scorer == ENSEMBLE,
                                                 ScoreRow.dimension == OVERALL)):
            if (st, sid) in cands and v is not None:
                values[(st, sid)] = float(v)
    keys = [key for key in keys if key in vecs]
    if not keys:
        raise UserError("nothing to rank: no scored scorables for this goal (stephanie score)")
    scfg = cfg.scoring
    weights = RankWeights(scfg.rank_similarity, scfg.rank_value, scfg.rank_recency, scfg.rank_diversity,
                          scfg.rank_half_life_days, scfg.rank_similarity_band)
    times = [cands[key].timestamp() if cands[key] else None for key in keys]
    newest = max((t for t in times if t is not None), default=0.0)
    ages = np.array([(newest - t) / 86400.0 if t is not None else 1e6 for t in times])  # age vs the newest
    emb = np.stack([vecs[key] for key in keys])
    goal_vec = Embedder.from_config(cfg.embedding).encode([text])[0]
    vals = np.array([values.get(key, 0.0) for key in keys])
    picked, rel = rank(goal_vec, emb, vals, ages, k, weights)
    texts = resolve_texts(session, [keys[i] for i in picked])
    sims = emb @ goal_vec
    return {"goal": text, "goal_id": goal_id, "candidates": len(keys), "weights": weights.__dict__,
            "results": [{"rank": r + 1, "scorable": f"{keys[i][0]}:{keys[i][1]}", "relevance": float(rel[i]),
                         "similarity": float(sims[i]), "value": float(vals[i]), "age_days": float(ages[i]),
                         "text": " ".join(texts.get(keys[i], "").split())[:200]} for r, i in enumerate(picked)]}


# ----------------------------------------------------------------------------- the run report's scoring section


@dataclass
class CaseBookLine:
    """One CaseBook in the report: its champion, goal state and progress."""

    id: int
    name: str
    goal: str
    cases: int
    champion_position: int | None
    champion_agent: str | None
    champion_quality: float | None
    champion_prompt: str
    wins: int
    losses: int
    trust: float
    progress: dict[str, Any]


@dataclass
class AnswerLine:
    scorable: str
    casebook: str
    quality: float  # footing quality (what champions are decided on)
    dimensions: dict[str, float]
    prompt: str
    text: str


@dataclass
class ScoreReport:
    casebooks: list[CaseBookLine]
    casebooks_total: int
    verdicts: dict[str, int]  # progress verdict -> CaseBooks
    first_champion: int  # CaseBooks (>= 3 scored cases) whose first scored attempt is champion
    first_champion_of: int  # CaseBooks with >= 3 scored cases
    first_champion_chance: float  # expected count if the champion were any attempt at random
    best: list[AnswerLine]
    worst: list[AnswerLine]


def _excerpt(text: str, n: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def score_report(session: Any, weights: dict[str, float], top_n: int = 10, k: int = 3) -> ScoreReport:
    """What the run report shows about scoring: the largest CaseBooks, champions, progress, best/worst answers."""
    from ..casebooks.progress import footing_quality

    sizes = dict(session.execute(select(Case.casebook_id, func.count(Case.id)).group_by(Case.casebook_id)).all())
    books = {cb.id: cb for cb in session.scalars(select(CaseBook))}
    states = {st.casebook_id: st for st in session.scalars(select(GoalState))}
    verdicts: dict[str, int] = defaultdict(int)
    first = of = 0
    chance = 0.0
    for cb in books.values():
        p = (cb.meta or {}).get("progress") or {}
        verdicts[p.get("verdict", "not scored")] += 1
        st = states.get(cb.id)
        hist = p.get("champion_history") or []
        if p.get("scored", 0) >= 3 and st is not None and st.champion_case_id is not None and hist:
            of += 1
            chance += 1.0 / p["scored"]
            first += st.champion_case_id == hist[0]["case_id"]  # the first scored attempt
    top = sorted(books.values(), key=lambda cb: (-sizes.get(cb.id, 0), cb.name))[:top_n]
    champ_ids = [states[cb.id].champion_case_id for cb in top if cb.id in states and states[cb.id].champion_case_id]
    champs = {c.id: c for c in session.scalars(select(Case).where(Case.id.in_(champ_ids)))} if champ_ids else {}
    lines = []
    for cb in top:
        st = states.get(cb.id)
        c = champs.get(st.champion_case_id) if st is not None and st.champion_case_id else None
        lines.append(CaseBookLine(
            cb.id, cb.name, _excerpt(cb.description, 80), sizes.get(cb.id, 0), c.position if c else None,
            c.agent_name if c else None, st.champion_quality if st else None, _excerpt(c.prompt_text, 70) if c else "",
            st.wins if st else 0, st.losses if st else 0, st.trust if st else 0.0, (cb.meta or {}).get("progress") or {}))

    per: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    for st_, sid, dim, v in session.execute(select(ScoreRow.scorable_type, ScoreRow.scorable_id, ScoreRow.dimension,
                                                   ScoreRow.value).where(ScoreRow.scorer == ENSEMBLE,
                                                                         ScoreRow.status == "ok",
                                                                         ScoreRow.dimension != OVERALL)):
        if v is not None:
            per[(st_, sid)][dim] = float(v)
    quality = {key: q for key, dims in per.items() if (q := footing_quality(dims, weights)) is not None}
    ranked = sorted(quality, key=lambda key: (-quality[key], key))
    best, worst = ranked[:k], ranked[::-1][:k] if len(ranked) > k else []
    picked = list(dict.fromkeys(best + worst))
    texts = resolve_texts(session, picked)
    where: dict[tuple[str, int], tuple[str, str]] = {}
    for part in chunks(picked, IN_CHUNK):
        for st_, sid, prompt, name in session.execute(
                select(CaseScorable.scorable_type, CaseScorable.scorable_id, Case.prompt_text, CaseBook.name)
                .join(Case, Case.id == CaseScorable.case_id).join(CaseBook, CaseBook.id == Case.casebook_id)
                .where(CaseScorable.scorable_id.in_([i for _, i in part]))):
            where.setdefault((st_, sid), (prompt or "", name))

    def answer(key: tuple[str, int]) -> AnswerLine:
        prompt, name = where.get(key, ("", ""))
        return AnswerLine(f"{key[0]}:{key[1]}", name, quality[key], per[key], _excerpt(prompt, 90),
                          _excerpt(texts.get(key, ""), 160))

    return ScoreReport(lines, len(books), dict(verdicts), first, of, chance, [answer(k_) for k_ in best],
                       [answer(k_) for k_ in worst])


def _f(x: Any, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _md(text: str) -> str:
    """Safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def render_score_report(rep: ScoreReport, mars: dict[str, dict[str, Any]], dims: list[str]) -> str:
    """The scoring section of report.md: MARS, CaseBook champions and progress, best and worst answers."""
    out = ["## MARS: do the scorers agree?", "",
           "Per dimension: mean pairwise Spearman between scorers over the answers both scored, Krippendorff's "
           "alpha (1 = agree, 0 = chance), the pair that disagrees most. One scorer: nothing to compare (n/a).", "",
           "| dimension | scorers | answers | agreement | alpha | most disagreeing pair |", "|---|---|---|---|---|---|"]
    for d in dims:
        m = mars.get(d)
        if m is None:
            out.append(f"| {d} | – | 0 | n/a | n/a | no scores |")
            continue
        pair = m.get("most_disagreeing_pair")
        pair_s = f"{pair['a']} vs {pair['b']} (rho {_f(pair['rho'])})" if pair else "n/a"
        single = len(m.get("scorers") or []) < 2
        out.append(f"| {d} | {', '.join(m.get('scorers') or [])} | {m.get('items', 0)} | "
                   f"{'n/a (one scorer)' if single else _f(m.get('agreement'))} | {'n/a' if single else _f(m.get('alpha'))} "
                   f"| {pair_s} |")
    out += ["", "## CaseBooks: champions and progress", "",
            "Champion: the best attempt on the footing (clarity, relevance to its own request, implementability, "
            "the person's reaction; novelty is left out, see README); judged: the cases that are attempts (a bare "
            "\"thanks, it works\" is not). W/L: wins and losses of later attempts "
            "against the champion so far; trust: Wilson lower bound of the win rate. Progress: quality, "
            "corrections and acceptances early vs late (first vs last third), change between answers to the "
            "same request; the verdict is their vote.", ""]
    if rep.first_champion_of:
        out.append(f"First attempt is champion in {rep.first_champion} of {rep.first_champion_of} CaseBooks with "
                   f"at least 3 scored attempts (by chance: {rep.first_champion_chance:.1f}).")
    out.append("Progress verdicts: " + (", ".join(f"{v} {n}" for v, n in sorted(rep.verdicts.items(),
                                                                                  key=lambda kv: -kv[1])) or "none") + ".")
    out += ["", "| CaseBook | cases | champion | W/L, trust | quality early → late | corrected early → late | "
            "accepted early → late | same request | verdict |", "|---|---|---|---|---|---|---|---|---|"]
    for b in rep.casebooks:
        p = b.progress
        champ = (f"#{b.champion_position} {b.champion_agent or ''} q={_f(b.champion_quality)}: “{_md(b.champion_prompt)}”"
                 if b.champion_position is not None else "–")
        same = (f"{p['same_request_pairs']} pairs, Δ {p['same_request_delta']:+.2f}" if p.get("same_request_pairs")
                else "–")
        out.append(f"| {_md(b.name)}<br>{_md(b.goal)} | {b.cases} ({p.get('scored', 0)} judged) | {champ} | "
                   f"{b.wins}/{b.losses}, {b.trust:.2f} | {_f(p.get('early_mean'))} → {_f(p.get('late_mean'))} | "
                   f"{_f(p.get('corrected_early'))} → {_f(p.get('corrected_late'))} | "
                   f"{_f(p.get('accepted_early'))} → {_f(p.get('accepted_late'))} | {same} | {p.get('verdict', '–')} |")
    more = rep.casebooks_total - len(rep.casebooks)
    if more > 0:
        out.append(f"\n{more} more CaseBooks not shown (the {len(rep.casebooks)} largest are); "
                   "`stephanie casebooks list` / `show` has them all.")

    def answers(title: str, rows: list[AnswerLine]) -> list[str]:
        lines = ["", f"## {title}", "", "| quality | " + " | ".join(dims) + " | request → answer |",
                 "|---|" + "---|" * len(dims) + "---|"]
        for a in rows:
            lines.append(f"| {a.quality:.2f} | " + " | ".join(_f(a.dimensions.get(d)) for d in dims)
                         + f" | **{_md(a.prompt)}** → {_md(a.text)}<br>`{a.scorable}` in {_md(a.casebook)} |")
        return lines if rows else lines[:3] + ["(no scored answers)"]

    out += answers("Best answers", rep.best)
    out += answers("Worst answers", rep.worst)
    return "\n".join(out) + "\n"
