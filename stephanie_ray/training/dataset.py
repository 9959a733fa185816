"""``stephanie prepare``: scored CaseBooks -> the PACS dataset, one row per (prompt, response).

1. **Answers**: every ``turn`` (or assistant ``message``) scorable of every CaseBook with the scoring
   ensemble's overall score (``scores``: scorer ``ensemble``, dimension ``overall``); a scorable in several
   CaseBooks counts once, in its *primary* CaseBook (the one with the most cases, as scoring does).
   Answers without an overall score, without text, or whole conversations (no single prompt) are counted
   as exclusions.
2. **Prompt and context**: the user message the answer replies to, and the ``prepare.context_turns``
   turns before it on the conversation's thread (``role: text`` lines, cut to their last
   ``prepare.max_context_chars``). The critic reads ``critic_prompt``: the prompt first, then the context,
   so truncation drops the oldest context first.
3. **Label**: the configured verifier (:mod:`.verifiers`) on (prompt, response, context: the person's next
   message, regenerated, edited, the ensemble score). A :class:`~.verifiers.VerifyFailure` excludes the row
   and is counted by reason — never silently a 0.
4. **Groups and split**: :mod:`.groups` (rules there); a group-size histogram is returned and printed.
5. **Written** as ``pacs.parquet`` (pyarrow; readable by pandas, HF ``datasets`` and ``ray.data.read_parquet``)
   with ``dataset.json`` beside it, in ``<run folder>/pacs_dataset_<hash>``, and one ``dataset_versions`` row.
   The content hash covers the rows and the settings; an unchanged dataset reuses its version and file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from sqlalchemy import func, select

from ..config import StephanieConfig
from ..db import Database
from ..db.bulk import IN_CHUNK, chunks
from ..db.models import Case, CaseBook, CaseScorable, Conversation, DatasetVersion, Message, ScoreRow, Turn
from ..errors import UserError
from ..ingest.model import stable_id
from ..scoring.items import feedback_context
from .groups import CaseRef, SplitError, group_cases, render_histogram, size_histogram, split_rows
from .verifiers import Verdict, VerifierConfig, VerifyItem, make_verifier, verify

log = logging.getLogger(__name__)

DATA_FILE = "pacs.parquet"
CARD_FILE = "dataset.json"
FORMAT_VERSION = 1
ANSWER_ROLES = ("response", "assistant", "conversation")  # what an answer is, in each CaseBook mode
COLUMNS = ("row_id", "scorable", "prompt", "context", "critic_prompt", "response", "reward", "label", "p_good",
           "verifier_reason", "group_id", "group_rule", "group_size", "split", "goal_id", "goal", "casebook_id",
           "casebook", "case_id", "conversation_id", "provider", "turn_index", "response_chars")


@dataclass(frozen=True)
class DatasetRow:
    """One (prompt, response) of the PACS dataset: the Parquet file's columns, in order."""

    row_id: int
    scorable: str  # "turn:123"
    prompt: str
    context: str
    critic_prompt: str
    response: str
    reward: float  # the ensemble's overall score, [0, 1]
    label: int  # the verifier's R ∈ {0, 1}
    p_good: float  # the verifier's P(good)
    verifier_reason: str
    group_id: int
    group_rule: str
    group_size: int
    split: str  # train | val
    goal_id: int | None
    goal: str
    casebook_id: int
    casebook: str
    case_id: int
    conversation_id: int | None
    provider: str
    turn_index: int
    response_chars: int


@dataclass
class PrepareResult:
    """What ``stephanie prepare`` did (the stage's typed result)."""

    dataset_version: int = 0
    reused: bool = False
    path: str = ""
    content_hash: str = ""
    verifier: str = ""
    rows: int = 0
    groups: int = 0
    train_rows: int = 0
    val_rows: int = 0
    train_groups: int = 0
    val_groups: int = 0
    positives: int = 0
    negatives: int = 0
    label_balance: float = 0.0  # share of label 1
    group_rules: dict[str, int] = field(default_factory=dict)  # rule -> groups
    group_sizes: dict[int, int] = field(default_factory=dict)  # size -> groups
    excluded: dict[str, int] = field(default_factory=dict)  # reason -> answers left out
    truncated: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def counts(self) -> dict[str, Any]:
        d = self.to_dict()
        d["skipped"] = dict(self.excluded)  # the run report's "Failures and skips" lists them with reasons
        del d["excluded"]
        return d

    def histogram(self) -> str:
        return render_histogram(self.group_sizes)


@dataclass(frozen=True)
class _Answer:
    scorable_type: str
    scorable_id: int
    case_id: int
    casebook_id: int
    casebook: str
    goal_id: int | None
    goal: str
    conversation_id: int | None
    position: int
    request: str | None


def verifier_config(cfg: StephanieConfig) -> VerifierConfig:
    """The verifiers' settings from the ``verifier`` section (and ``reactions`` for the reaction backend)."""
    v = cfg.verifier
    return VerifierConfig(name=v.name, math_rel_tol=v.math_rel_tol, math_abs_tol=v.math_abs_tol,
                          reaction_continued=v.reaction_continued,  # type: ignore[arg-type]
                          reaction_continued_p_good=v.reaction_continued_p_good,
                          reaction_min_confidence=v.reaction_min_confidence, reactions=cfg.reactions,
                          ensemble_threshold=v.ensemble_threshold,
                          options={"model": v.critic_model, "threshold": v.critic_threshold, "db_url": cfg.db_url,
                                   "embedding": asdict(cfg.embedding)})


def _reason_key(reason: str) -> str:
    """A failure reason without its item-specific tail: 'no verdict: continued (…)' -> 'no verdict'."""
    return re.split(r"[:(]", reason, maxsplit=1)[0].strip()[:80] or "verifier failure"


# ----------------------------------------------------------------------------- reading the database


def _answers(session: Any, excluded: Counter) -> list[_Answer]:
    sizes = dict(session.execute(select(Case.casebook_id, func.count(Case.id)).group_by(Case.casebook_id)).all())
    q = (select(CaseScorable.scorable_type, CaseScorable.scorable_id, Case.id, Case.casebook_id, CaseBook.name,
                func.coalesce(Case.goal_id, CaseBook.goal_id), CaseBook.description, Case.conversation_id,
                Case.position, Case.meta)
         .join(Case, Case.id == CaseScorable.case_id).join(CaseBook, CaseBook.id == Case.casebook_id)
         .where(CaseScorable.role.in_(ANSWER_ROLES)))
    best: dict[tuple[str, int], _Answer] = {}
    for st, sid, cid, cb, name, goal_id, goal, conv, pos, meta in session.execute(q):
        a = _Answer(st, int(sid), int(cid), int(cb), name, goal_id, goal or "", conv, int(pos or 0),
                    (meta or {}).get("request"))
        old = best.get((st, a.scorable_id))
        if old is None or (-sizes.get(cb, 0), cb) < (-sizes.get(old.casebook_id, 0), old.casebook_id):
            best[(st, a.scorable_id)] = a
    out = []
    for a in best.values():
        if a.scorable_type == "conversation":
            excluded["whole conversation (no single prompt)"] += 1
        else:
            out.append(a)
    return sorted(out, key=lambda a: (a.casebook_id, a.position, a.scorable_type, a.scorable_id))


def _pairs(session: Any, answers: list[_Answer]) -> dict[tuple[str, int], tuple[int, int | None]]:
    """(scorable type, id) -> (assistant message id, user message id)."""
    out: dict[tuple[str, int], tuple[int, int | None]] = {}
    turns = [a.scorable_id for a in answers if a.scorable_type == "turn"]
    msgs = [a.scorable_id for a in answers if a.scorable_type == "message"]
    for part in chunks(turns, IN_CHUNK):
        for tid, uid, aid in session.execute(select(Turn.id, Turn.user_message_id, Turn.assistant_message_id)
                                             .where(Turn.id.in_(part))):
            out[("turn", tid)] = (aid, uid)
    for part in chunks(msgs, IN_CHUNK):
        for mid, parent in session.execute(select(Message.id, Message.parent_id).where(Message.id.in_(part))):
            out[("message", mid)] = (mid, parent)
    return out


def _messages(session: Any, ids: set[int]) -> dict[int, tuple[int | None, str, str, int, int]]:
    """id -> (parent id, role, text, position, conversation id)."""
    out = {}
    for part in chunks(sorted(ids), IN_CHUNK):
        for mid, parent, role, text, pos, conv in session.execute(
                select(Message.id, Message.parent_id, Message.role, Message.text, Message.position,
                       Message.conversation_id).where(Message.id.in_(part))):
            out[mid] = (parent, role, text or "", int(pos or 0), conv)
    return out


def _contexts(session: Any, user_ids: set[int], turns: int, max_chars: int) -> dict[int, str]:
    """user message id -> the ``turns`` turns before it on its thread, as ``role: text`` lines."""
    if turns <= 0 or not user_ids:
        return {}
    known = _messages(session, user_ids)
    chains: dict[int, list[int]] = {u: [] for u in user_ids}
    frontier = {u: known[u][0] for u in user_ids if u in known}
    for _ in range(2 * turns):
        need = {p for p in frontier.values() if p is not None and p not in known}
        known.update(_messages(session, need))
        nxt = {}
        for u, p in frontier.items():
            if p is None or p not in known:
                continue
            chains[u].append(p)
            nxt[u] = known[p][0]
        frontier = nxt
    out = {}
    for u, chain in chains.items():
        lines = [f"{known[m][1]}: {' '.join(known[m][2].split())}" for m in reversed(chain) if known[m][2].strip()]
        text = "\n".join(lines)
        out[u] = text[-max_chars:] if len(text) > max_chars else text
    return out


def critic_prompt(prompt: str, context: str) -> str:
    """What the critic reads as the prompt: the request first, then the conversation before it."""
    return f"{prompt}\n\n[context]\n{context}" if context else prompt


# ----------------------------------------------------------------------------- building


def collect_rows(cfg: StephanieConfig, db: Database, verifier_cfg: VerifierConfig | None = None
                 ) -> tuple[list[DatasetRow], Counter, int, str]:
    """(rows with labels, groups and splits; exclusions by reason; texts truncated; verifier version)."""
    p = cfg.prepare
    excluded: Counter = Counter()
    with db.session() as s:
        answers = _answers(s, excluded)
        keys = [(a.scorable_type, a.scorable_id) for a in answers]
        rewards: dict[tuple[str, int], float] = {}
        for part in chunks(keys, IN_CHUNK):
            ids = [i for _, i in part]
            for st, sid, v in s.execute(select(ScoreRow.scorable_type, ScoreRow.scorable_id, ScoreRow.value)
                                        .where(ScoreRow.scorable_id.in_(ids), ScoreRow.scorer == "ensemble",
                                               ScoreRow.dimension == "overall", ScoreRow.status == "ok")):
                if v is not None and 0.0 <= float(v) <= 1.0:
                    rewards[(st, int(sid))] = float(v)
        pairs = _pairs(s, answers)
        msgs = _messages(s, {m for pr in pairs.values() for m in pr if m is not None})
        contexts = _contexts(s, {u for _, u in pairs.values() if u is not None}, p.context_turns,
                             p.max_context_chars)
        providers = dict(s.execute(select(Conversation.id, Conversation.provider)).all())
        # the person's next message, regenerated away, prompt edited: what the scoring stage reads too
        feedback = feedback_context(s, [k for k in keys if k in rewards and k in pairs])
    kept: list[tuple[_Answer, str, str, str, float, int]] = []
    truncated = 0
    for a in answers:
        key = (a.scorable_type, a.scorable_id)
        if key not in rewards:
            excluded["no ensemble score (stephanie score)"] += 1
            continue
        aid, uid = pairs.get(key, (None, None))
        if aid is None or aid not in msgs or uid is None or uid not in msgs:
            excluded["no prompt (the answer has no user message before it)"] += 1
            continue
        response, prompt = msgs[aid][2], msgs[uid][2]
        if not response.strip() or not prompt.strip():
            excluded["empty prompt or response"] += 1
            continue
        if len(response) > p.max_text_chars or len(prompt) > p.max_text_chars:
            truncated += 1
        turn_index = msgs[uid][3]
        kept.append((a, prompt[:p.max_text_chars], response[:p.max_text_chars], contexts.get(uid, ""),
                     rewards[key], turn_index))
    vcfg = verifier_cfg or verifier_config(cfg)
    verifier = make_verifier(vcfg)
    items = []
    for a, prompt, response, context, reward, _ in kept:
        fb = feedback.get((a.scorable_type, a.scorable_id), {})
        items.append(VerifyItem(prompt, response, {
            "next": fb.get("next_user") or None, "regenerated": bool(fb.get("regenerated")),
            "edited": bool(fb.get("edited")), "ensemble_score": reward, "context": context}))
    results = verify(verifier, items) if items else []
    labelled = []
    for (a, prompt, response, context, reward, turn_index), res in zip(kept, results):
        if isinstance(res, Verdict):
            labelled.append((a, prompt, response, context, reward, turn_index, res))
        else:
            excluded[f"{vcfg.name} verifier: {_reason_key(res.reason)}"] += 1
    if not labelled:
        why = "; ".join(f"{n} × {r}" for r, n in excluded.most_common(3)) or "no answers in any CaseBook"
        raise UserError(f"no labelled responses for the PACS dataset ({why}); run stephanie casebooks build and "
                        f"stephanie score first, or choose another verifier (--verifier)")
    # groups, over the cases of the labelled answers
    answers_per_case = Counter(a.case_id for a, *_ in labelled)
    case_refs = {}
    for a, *_ in labelled:
        case_refs[a.case_id] = CaseRef(a.case_id, a.casebook_id, a.conversation_id, a.position, a.request,
                                       answers_per_case[a.case_id], providers.get(a.conversation_id, ""))
    grouping = group_cases(list(case_refs.values()), requests=p.group_requests, goal_openings=p.group_goal_openings)
    gkey = [grouping.group_of[a.case_id] for a, *_ in labelled]
    gsize = Counter(gkey)
    try:
        split = split_rows([a.conversation_id for a, *_ in labelled], [a.goal_id for a, *_ in labelled], gkey,
                           p.val_fraction, p.seed)
    except SplitError as exc:
        raise UserError(str(exc)) from None
    rows = []
    for (a, prompt, response, context, reward, turn_index, res), g, sp in zip(labelled, gkey, split):
        rows.append(DatasetRow(
            row_id=stable_id("pacs-row", a.scorable_type, str(a.scorable_id)),
            scorable=f"{a.scorable_type}:{a.scorable_id}", prompt=prompt, context=context,
            critic_prompt=critic_prompt(prompt, context), response=response, reward=round(reward, 6),
            label=int(res.label), p_good=float(res.p_good), verifier_reason=res.reason[:500],
            group_id=stable_id("pacs-group", str(g)), group_rule=grouping.rule[g], group_size=gsize[g], split=sp,
            goal_id=a.goal_id, goal=a.goal[:1000], casebook_id=a.casebook_id, casebook=a.casebook, case_id=a.case_id,
            conversation_id=a.conversation_id, provider=providers.get(a.conversation_id, ""), turn_index=turn_index,
            response_chars=len(response)))
    rows.sort(key=lambda r: (r.group_id, r.row_id))
    return rows, excluded, truncated, getattr(verifier, "version", "")


def check_rows(rows: Sequence[DatasetRow]) -> None:
    """Bad input as one clear error: nothing, one class only, or a split with nothing to train on."""
    if not rows:
        raise UserError("the PACS dataset is empty: no labelled (prompt, response) rows")
    pos = sum(r.label for r in rows)
    if pos == 0 or pos == len(rows):
        raise UserError(f"all {len(rows)} labelled responses are class {rows[0].label}: PACS needs both good and "
                        f"bad responses (try another verifier or more data)")
    if not any(r.split == "train" for r in rows) or not any(r.split == "val" for r in rows):
        raise UserError("too few items for a split: train or validation is empty")


def content_hash(rows: Sequence[DatasetRow], settings: dict[str, Any]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"format": FORMAT_VERSION, **settings}, sort_keys=True, default=str).encode())
    for r in rows:
        h.update(json.dumps(asdict(r), sort_keys=True, ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def write_parquet(rows: Sequence[DatasetRow], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("row_id", pa.int64()), ("scorable", pa.string()), ("prompt", pa.string()),
                        ("context", pa.string()), ("critic_prompt", pa.string()), ("response", pa.string()),
                        ("reward", pa.float64()), ("label", pa.int8()), ("p_good", pa.float64()),
                        ("verifier_reason", pa.string()), ("group_id", pa.int64()), ("group_rule", pa.string()),
                        ("group_size", pa.int32()), ("split", pa.string()), ("goal_id", pa.int64()),
                        ("goal", pa.string()), ("casebook_id", pa.int64()), ("casebook", pa.string()),
                        ("case_id", pa.int64()), ("conversation_id", pa.int64()), ("provider", pa.string()),
                        ("turn_index", pa.int32()), ("response_chars", pa.int32())])
    assert tuple(schema.names) == COLUMNS
    table = pa.table({c: [getattr(r, c) for r in rows] for c in COLUMNS}, schema=schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def summarise(rows: Sequence[DatasetRow]) -> dict[str, Any]:
    groups: dict[int, DatasetRow] = {}
    for r in rows:
        groups.setdefault(r.group_id, r)
    pos = sum(r.label for r in rows)
    return {"rows": len(rows), "groups": len(groups),
            "train_rows": sum(r.split == "train" for r in rows), "val_rows": sum(r.split == "val" for r in rows),
            "train_groups": sum(r.split == "train" for r in groups.values()),
            "val_groups": sum(r.split == "val" for r in groups.values()),
            "positives": pos, "negatives": len(rows) - pos, "label_balance": round(pos / len(rows), 4) if rows else 0.0,
            "group_rules": dict(sorted(Counter(r.group_rule for r in groups.values()).items())),
            "group_sizes": size_histogram(r.group_size for r in groups.values())}


def save_dataset(db: Database, rows: Sequence[DatasetRow], out_dir: Path, *, verifier: str, verifier_version: str,
                 settings: dict[str, Any], excluded: dict[str, int], run_id: int | None,
                 truncated: int = 0) -> PrepareResult:
    """Check, hash, write (or reuse) the Parquet and the ``dataset_versions`` row."""
    check_rows(rows)
    digest = content_hash(rows, {"verifier": verifier, "verifier_version": verifier_version, **settings})
    summary = summarise(rows)
    result = PrepareResult(verifier=verifier, content_hash=digest, excluded=dict(excluded), truncated=truncated,
                           **summary)
    with db.session() as s:
        old = s.scalars(select(DatasetVersion).where(DatasetVersion.content_hash == digest)).first()
        if old is not None and Path(old.path).is_file():
            result.dataset_version, result.path, result.reused = old.id, old.path, True
            return result
        path = (out_dir / f"pacs_dataset_{digest[:12]}" / DATA_FILE).resolve()
        write_parquet(rows, path)
        card = {"format": FORMAT_VERSION, "content_hash": digest, "verifier": verifier,
                "verifier_version": verifier_version, "settings": settings, "excluded": dict(excluded),
                "columns": list(COLUMNS), **summary}
        (path.parent / CARD_FILE).write_text(json.dumps(card, indent=2, default=str), encoding="utf-8")
        meta = {"group_sizes": {str(k): v for k, v in summary["group_sizes"].items()},
                "group_rules": summary["group_rules"], "train_groups": summary["train_groups"],
                "val_groups": summary["val_groups"], "truncated": truncated}
        if old is not None:  # the file went missing: write it again under the same version
            old.path, old.meta = str(path), meta
            version = old.id
        else:
            dv = DatasetVersion(content_hash=digest, path=str(path), verifier=verifier,
                                verifier_version=str(verifier_version), rows=summary["rows"], groups=summary["groups"],
                                train_rows=summary["train_rows"], val_rows=summary["val_rows"],
                                positives=summary["positives"], negatives=summary["negatives"],
                                excluded=dict(excluded), config=settings, pipeline_run_id=run_id, meta=meta)
            s.add(dv)
            s.flush()
            version = dv.id
    result.dataset_version, result.path = version, str(path)
    return result


def prepare_settings(cfg: StephanieConfig) -> dict[str, Any]:
    return {"prepare": asdict(cfg.prepare), "verifier": asdict(cfg.verifier)}


def run_prepare(cfg: StephanieConfig, db: Database, run_dir: Path, run_id: int | None = None) -> PrepareResult:
    t0 = time.perf_counter()
    rows, excluded, truncated, vversion = collect_rows(cfg, db)
    result = save_dataset(db, rows, run_dir, verifier=cfg.verifier.name, verifier_version=vversion,
                          settings=prepare_settings(cfg), excluded=dict(excluded), run_id=run_id, truncated=truncated)
    result.seconds = round(time.perf_counter() - t0, 3)
    log.info("PACS dataset v%d (%s): %d rows in %d groups, %d train / %d val, label balance %.3f%s",
             result.dataset_version, "reused" if result.reused else "new", result.rows, result.groups,
             result.train_rows, result.val_rows, result.label_balance,
             f"; excluded {sum(excluded.values())}" if excluded else "")
    return result


def load_dataset_version(session: Any, ref: str | int | None = None) -> DatasetVersion:
    """A dataset version by id, or the newest; a missing one (or its file) is a clear error."""
    if ref in (None, ""):
        dv = session.scalars(select(DatasetVersion).order_by(DatasetVersion.id.desc())).first()
        if dv is None:
            raise UserError("no PACS dataset yet (stephanie prepare)")
    else:
        if not str(ref).isdigit():
            raise UserError(f"bad dataset version {ref!r}: expected its id")
        dv = session.get(DatasetVersion, int(ref))
        if dv is None:
            raise UserError(f"no dataset version {ref}")
    if not Path(dv.path).is_file():
        raise UserError(f"dataset version {dv.id}: its file {dv.path} is missing (stephanie prepare writes it again)")
    return dv


def render_prepare_report(r: PrepareResult) -> str:
    lines = ["## PACS dataset", "",
             f"Dataset version {r.dataset_version}{' (unchanged: reused)' if r.reused else ''}: {r.rows} responses in "
             f"{r.groups} groups, labelled by the **{r.verifier}** verifier; {r.positives} good / {r.negatives} bad "
             f"(balance {r.label_balance:.3f}). Train {r.train_rows} rows ({r.train_groups} groups), validation "
             f"{r.val_rows} rows ({r.val_groups} groups), split by conversation and goal.", "",
             "Groups by rule: " + ", ".join(f"{k} {v}" for k, v in r.group_rules.items()), "",
             "```", r.histogram(), "```"]
    if r.excluded:
        lines += ["", "Excluded: " + "; ".join(f"{n} × {why}" for why, n in sorted(r.excluded.items(),
                                                                                   key=lambda kv: -kv[1]))]
    return "\n".join(lines) + "\n"


def prepare_stage(ctx: Any) -> dict[str, Any]:
    """The pipeline stage after score. Data that cannot make a dataset (nothing labelled, one class, too few
    items for a split) skips the stage with its reason instead of failing the pipeline: a small import is a
    legitimate run. ``stephanie prepare`` turns the same reason into its error."""
    try:
        result = run_prepare(ctx.config, ctx.db, ctx.run_dir, ctx.run_id)
    except UserError as exc:
        ctx.results["prepare"] = None
        ctx.results["prepare_skipped"] = str(exc)
        ctx.report["prepare"] = f"## PACS dataset\n\nNot prepared: {exc}\n"
        return {"skipped": {str(exc): 1}}
    ctx.results["prepare"] = result
    ctx.report["prepare"] = render_prepare_report(result)
    return result.counts()
