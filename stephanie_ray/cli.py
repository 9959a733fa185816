"""The ``stephanie`` command.

Every subcommand takes the common options (``--config``, ``--set``, ``--db``, ``--json``, ``-v``)
before or after its name. With ``--json`` a subcommand prints exactly one JSON object on stdout;
logs and progress bars go to stderr. User errors print one line and exit 2; a run in which
some items failed exits 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from . import __version__
from .config import StephanieConfig, describe_fields, load_config
from .errors import UserError

log = logging.getLogger("stephanie_ray")

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"stephanie: error: {message} (see '{self.prog} --help')\n")


def _common_options() -> argparse.ArgumentParser:
    # SUPPRESS defaults: an option given before the subcommand is not reset by the subparser.
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("common options")
    g.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                   help="YAML config file (default: $STEPHANIE_CONFIG)")
    g.add_argument("--set", metavar="KEY=VALUE", action="append", default=argparse.SUPPRESS,
                   help="override a config field, e.g. --set ray.num_cpus=4 (repeatable)")
    g.add_argument("--db", metavar="URL", default=argparse.SUPPRESS,
                   help="database URL (default: config db.url, $STEPHANIE_DB, else runs/stephanie.sqlite)")
    g.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="print one JSON object on stdout")
    g.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more log output")
    g.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="warnings and errors only")
    return p


# ----------------------------------------------------------------------------- output helpers


def emit(args: argparse.Namespace, data: dict[str, Any], human: Callable[[dict[str, Any]], None]) -> None:
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(data, default=str) + "\n")
    else:
        human(data)


def table(rows: list[Sequence[Any]], headers: Sequence[str]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


# ----------------------------------------------------------------------------- context


def config_from_args(args: argparse.Namespace) -> StephanieConfig:
    overrides = list(getattr(args, "set", []) or [])
    if getattr(args, "db", None):
        overrides.append(f"db.url={args.db}")
    cfg = load_config(getattr(args, "config", None), overrides)
    if getattr(args, "db", None):  # a URL is a string even if it looks like YAML
        cfg.db.url = args.db
    return cfg


def open_db(cfg: StephanieConfig):
    from .db import Database

    return Database.from_config(cfg)


# ----------------------------------------------------------------------------- commands


def cmd_pipeline(args: argparse.Namespace) -> int:
    from .pipeline import run_pipeline

    cfg = config_from_args(args)
    stages = [s for s in (args.stages or "").split(",") if s] or None
    result = run_pipeline(cfg, args.paths or None, stages)

    def human(d: dict[str, Any]) -> None:
        print(f"run {d['run_id']}: {d['status']}  (report: {d['run_dir']}/report.md)")
        for st in d["stages"]:
            counts = ", ".join(f"{k}={v}" for k, v in st.get("counts", {}).items() if not isinstance(v, (list, dict)))
            print(f"  {st['stage']:<12} {st['status']:<10} {counts or st.get('error', '')}")

    emit(args, result.to_dict(), human)
    return {"succeeded": EXIT_OK, "partial": EXIT_PARTIAL}.get(result.status, EXIT_PARTIAL)


def cmd_import(args: argparse.Namespace) -> int:
    from .pipeline import run_stages, select_stages

    cfg = config_from_args(args)
    if args.serial:
        cfg.ingest.parallel = False
    db = open_db(cfg)
    result = run_stages(cfg, db, select_stages(["ingest"]), [str(p) for p in args.paths], command="import",
                        progress=None)
    s = result.outputs["import"]
    full = {"run_id": result.run_id, **s.to_dict()}

    def human(d: dict[str, Any]) -> None:
        print(f"files: {d['files_seen']} seen, {d['files_imported']} imported, {d['files_skipped_duplicate']} "
              f"already imported, {d['files_ignored']} ignored, {d['files_failed']} failed")
        print(f"conversations: {d['conversations_new']} new, {d['conversations_merged']} merged, "
              f"{d['conversations_unchanged']} unchanged, {d['conversations_failed']} failed")
        print(f"messages: {d['messages_new']} new; turns: {d['turns_new']} new  ({d['seconds']} s, run {d['run_id']})")
        for e in d["errors"][:50]:
            conv = f" [{e['conversation']}]" if e.get("conversation") else ""
            print(f"  error: {e['file']}{conv}: {e['error']}", file=sys.stderr)
        if len(d["errors"]) > 50:
            print(f"  ... and {len(d['errors']) - 50} more errors (stephanie runs show {d['run_id']})", file=sys.stderr)
        for w in d["warnings"][:10]:
            print(f"  warning: {w['file']} [{w['conversation']}]: {w['warning']}", file=sys.stderr)

    emit(args, full, human)
    return EXIT_OK if s.ok else EXIT_PARTIAL


def cmd_chats_list(args: argparse.Namespace) -> int:
    from .ingest.queries import list_conversations

    cfg = config_from_args(args)
    data = list_conversations(open_db(cfg), provider=args.provider, limit=args.limit)

    def human(d: dict[str, Any]) -> None:
        rows = [(c["provider"], (c["updated_at"] or "")[:10], c["messages"], c["turns"], c["branch_points"],
                 (c["title"] or "")[:60]) for c in d["conversations"]]
        print(table(rows, ["provider", "updated", "msgs", "turns", "branches", "title"]) if rows else "no conversations")
        print(f"{d['total']} conversations: " + ", ".join(f"{k} {v}" for k, v in sorted(d["by_provider"].items())))

    emit(args, data, human)
    return EXIT_OK


def cmd_chats_export(args: argparse.Namespace) -> int:
    from .ingest.queries import export_conversations

    cfg = config_from_args(args)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    n = 0
    try:
        for conv in export_conversations(open_db(cfg), provider=args.provider, active_only=args.active_only):
            out.write(json.dumps(conv, ensure_ascii=False) + "\n")
            n += 1
    finally:
        if args.output:
            out.close()
    log.info("exported %d conversations", n)
    return EXIT_OK


def cmd_casebooks_build(args: argparse.Namespace) -> int:
    from .pipeline import run_stages, select_stages

    overrides = {"mode": args.mode, "group_by": args.group_by, "goal_threshold": args.threshold}
    sets = [f"casebooks.{k}={v}" for k, v in overrides.items() if v is not None]
    args.set = list(getattr(args, "set", []) or []) + sets
    cfg = config_from_args(args)
    db = open_db(cfg)
    result = run_stages(cfg, db, select_stages(["casebooks"]), [], command="casebooks build")
    s = result.outputs["casebooks"]
    full = {"run_id": result.run_id, **s.to_dict()}

    def human(d: dict[str, Any]) -> None:
        print(f"{d['conversations_converted']}/{d['conversations_seen']} conversations -> {d['cases_new']} new cases, "
              f"{d['scorables_new']} new scorables in {d['casebooks_touched']} CaseBooks ({d['casebooks_new']} new); "
              f"mode {d['mode']}, grouped by {d['group_by']}  ({d['seconds']} s, run {d['run_id']})")
        if d["group_by"] == "goal":
            print(f"goal groups: {d['goal_groups']}, of which {d['cross_provider_groups']} span several providers")
        if d["duplicates_skipped"]:
            print(f"duplicates skipped (same turn hash in a CaseBook): {d['duplicates_skipped']}")
        if d["skipped"]:
            print("skipped: " + ", ".join(f"{k} {v}" for k, v in d["skipped"].items()))
        for e in d["errors"][:20]:
            print(f"  error: [{e['conversation']}] {e['error']}", file=sys.stderr)

    emit(args, full, human)
    return EXIT_OK if not s.failed else EXIT_PARTIAL


def cmd_casebooks_list(args: argparse.Namespace) -> int:
    from .casebooks.queries import count_casebooks, list_casebooks

    if args.limit is not None and args.limit <= 0:
        raise UserError("--limit must be > 0 (or --all)")
    limit = None if args.all else (args.limit or 50)
    cfg = config_from_args(args)
    filters = {"tag": args.tag, "mode": args.mode, "group_by": args.group_by}
    with open_db(cfg).session() as session:
        books = list_casebooks(session, limit=limit, **filters)
        total = count_casebooks(session, **filters)

    def human(d: dict[str, Any]) -> None:
        rows = [(b["id"], b["name"], b["cases"], b["conversations"], ",".join(b["providers"]),
                 "" if b["best_quality"] is None else f"{b['best_quality']:.3f}") for b in d["casebooks"]]
        if not rows:
            print("no CaseBooks (stephanie casebooks build)")
            return
        print(table(rows, ["id", "name", "cases", "convs", "providers", "best"]))
        more = " (--limit N or --all for more)" if d["shown"] < d["total"] else ""
        print(f"{d['shown']} of {d['total']} CaseBooks{more}")

    emit(args, {"casebooks": books, "total": total, "shown": len(books)}, human)
    return EXIT_OK


def cmd_casebooks_show(args: argparse.Namespace) -> int:
    from .casebooks.queries import show_casebook

    cfg = config_from_args(args)
    with open_db(cfg).session() as session:
        book = show_casebook(session, args.name, limit=args.limit)

    def human(d: dict[str, Any]) -> None:
        print(f"{d['name']}  (mode {d['mode']}, grouped by {d['group_by']}, tag {d['tag']})")
        print(f"goal: {d['description'][:300]}")
        m = d["meta"]
        if m.get("providers"):
            print(f"providers: {', '.join(m['providers'])}; conversations: {m.get('conversations', 0)}")
        for st in d["goal_states"]:
            q = st["champion_quality"]
            print(f"champion: case {st['champion_case_id']} (quality {q if q is None else round(q, 3)}); "
                  f"wins {st['wins']}, losses {st['losses']}, avg delta {st['avg_delta']}, trust {st['trust']:.3f}")
        p = d["progress"]
        if p["scored"]:
            print(f"progress: {p['scored']}/{p['attempts']} scored; early {p['early_mean']:.3f} -> late "
                  f"{p['late_mean']:.3f}; slope {p['slope'] if p['slope'] is None else round(p['slope'], 4)}; "
                  f"improvement rate {p['improvement_rate']}")
        else:
            print(f"progress: {p['attempts']} attempts, none scored yet (stephanie score)")
        for c in d["cases"]:
            flag = " *champion*" if c["champion"] else ""
            q = "" if c["quality"] is None else f" q={c['quality']:.3f}"
            print(f"\n[{c['position']}] {str(c['created_at'] or '')[:16]} {c['agent_name'] or ''}{q}{flag}")
            print(f"    prompt: {c['prompt']}")
            for sc in c["scorables"]:
                if sc["role"] == "prompt":
                    continue
                rank = "" if sc["rank"] is None else f" #{sc['rank']}"
                print(f"    {sc['role']}{rank} ({sc['type']} {sc['id']}): {sc['text']}")

    emit(args, book, human)
    return EXIT_OK


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def cmd_score(args: argparse.Namespace) -> int:
    from .pipeline import run_stages, select_stages

    sets = []
    if args.dimensions:
        sets.append(f"scoring.dimensions=[{','.join(_csv(args.dimensions) or [])}]")
    if args.scorers:
        sets.append(f"scoring.scorers=[{','.join(_csv(args.scorers) or [])}]")
    if args.rescore:
        sets.append("scoring.rescore=true")
    if args.serial:
        sets.append("scoring.parallel=false")
    args.set = list(getattr(args, "set", []) or []) + sets
    cfg = config_from_args(args)
    db = open_db(cfg)
    with db.session() as session:  # unknown or unavailable scorers: a clear error before any work
        from .scoring.stage import resolve_scorers

        resolve_scorers(cfg, session, None)
    result = run_stages(cfg, db, select_stages(["score"]), [], command="score")
    s = result.outputs["score"]
    full = {"run_id": result.run_id, "report": f"{result.run_dir}/report.md", **s.to_dict()}

    def human(d: dict[str, Any]) -> None:
        print(f"scored {d['items_scored']} items ({d['items_skipped_scored']} already scored) with "
              f"{', '.join(d['scorers'])} in {d['seconds']} s ({d['items_per_s']} items/s); "
              f"{d['scores_written']} scores written, {d['failed']} failed, {d['truncated']} texts truncated")
        if d["dimension_means"]:
            print("means: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(d["dimension_means"].items())))
        for dim, m in d["mars"].items():
            a = "n/a (one scorer)" if m["agreement"] is None else f"{m['agreement']:.3f}"
            print(f"  MARS {dim:<16} agreement {a}  scorers {', '.join(m['scorers'])}")
        print(f"champions changed: {d['champions_changed']} in {d['casebooks_updated']} CaseBooks  (report: {d['report']})")
        for f in d["failures"][:20]:
            print(f"  failed: {f['scorable']} {f['scorer']}/{f['dimension']}: {f['error']}", file=sys.stderr)

    emit(args, full, human)
    return EXIT_OK if not s.failed else EXIT_PARTIAL


def cmd_scores_show(args: argparse.Namespace) -> int:
    from .scoring.queries import show_scores

    cfg = config_from_args(args)
    with open_db(cfg).session() as session:
        data = show_scores(session, args.scorable)

    def human(d: dict[str, Any]) -> None:
        print(f"{d['scorable']}: {' '.join(d['text'].split())[:200]}")
        rows = [(r["dimension"], r["scorer"], r["version"], "" if r["value"] is None else f"{r['value']:.3f}",
                 r["status"], (r["rationale"] or r["error"] or "")[:90]) for r in d["scores"]]
        print(table(rows, ["dimension", "scorer", "version", "value", "status", "why"]))

    emit(args, data, human)
    return EXIT_OK


def cmd_mars(args: argparse.Namespace) -> int:
    from .scoring.queries import latest_mars

    cfg = config_from_args(args)
    with open_db(cfg).session() as session:
        data = latest_mars(session)

    def human(d: dict[str, Any]) -> None:
        if not d["dimensions"]:
            print("no MARS reports yet (stephanie score)")
            return
        def f(v: Any) -> str:
            return "n/a" if v is None else f"{v:.3f}"
        rows = []
        for m in d["dimensions"]:
            pair = m["most_disagreeing_pair"]
            rows.append((m["dimension"], len(m["scorers"]), m["items"], f(m["agreement"]), f(m["alpha"]),
                         f(m["mean_disagreement"]), f"{pair['a']} vs {pair['b']} ({f(pair['rho'])})" if pair else ""))
        print(table(rows, ["dimension", "scorers", "items", "agreement (rho)", "alpha", "mean std", "most disagreeing"]))
        for m in d["dimensions"]:
            for it in m["top_items"][:3]:
                vals = ", ".join(f"{k} {v:.2f}" for k, v in it["values"].items())
                print(f"  {m['dimension']}: {it['item']} std {it['std']:.3f} ({vals})")

    emit(args, data, human)
    return EXIT_OK


def cmd_rank(args: argparse.Namespace) -> int:
    from .scoring.queries import rank_for_goal

    cfg = config_from_args(args)
    with open_db(cfg).session() as session:
        data = rank_for_goal(session, cfg, args.goal, args.k)

    def human(d: dict[str, Any]) -> None:
        print(f"goal: {d['goal'][:160]}  ({d['candidates']} candidates)")
        rows = [(r["rank"], r["scorable"], f"{r['relevance']:.3f}", f"{r['similarity']:.2f}", f"{r['value']:.2f}",
                 f"{r['age_days']:.0f}", r["text"][:70]) for r in d["results"]]
        print(table(rows, ["#", "scorable", "score", "sim", "value", "age d", "text"]))

    emit(args, data, human)
    return EXIT_OK


def cmd_scorers_train(args: argparse.Namespace) -> int:
    from .scoring.train import train_scorers

    cfg = config_from_args(args)
    rep = train_scorers(cfg, open_db(cfg), kinds=_csv(args.scorers), epochs=args.epochs, min_labels=args.min_labels)

    def f(v: Any) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    def human(d: dict[str, Any]) -> None:
        lab = d["labels"]
        print(f"labels: {lab['accepted']} accepted, {lab['corrected']} corrected answers, {lab['pairs']} kept-over-"
              f"regenerated pairs (excluded: {lab['excluded']})")
        if not d["trained"]:
            print(d["reason"])
            return
        b = d["baseline"]["validation"]
        print(f"validation ({lab['validation_points']} answers, {lab['validation_pairs']} pairs from held-out "
              f"conversations): length baseline AUC {f(b['auc'])}, pairwise {f(b['pairwise_accuracy'])}")
        for m in d["models"]:
            v = m["validation"]
            print(f"  {m['name']:<6} v{m['version']}: AUC {f(v['auc'])}, pairwise {f(v['pairwise_accuracy'])}  "
                  f"({m['path']})")
        print("they join the ensemble (alignment) on the next 'stephanie score'")

    emit(args, rep.to_dict(), human)
    return EXIT_OK


def cmd_scorers_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from .db.models import ScorerModel
    from .scoring.registry import SCORERS

    cfg = config_from_args(args)
    with open_db(cfg).session() as session:
        trained = [{"name": m.name, "version": m.version, "examples": m.examples, "source": m.source,
                    "dimensions": m.dimensions, "path": m.path, "created_at": m.created_at,
                    "validation": (m.metrics or {}).get("validation")}
                   for m in session.scalars(select(ScorerModel).order_by(ScorerModel.name, ScorerModel.version))]
    registry = [{"name": sp.name, "kind": sp.kind, "version": sp.version, "dimensions": list(sp.dimensions),
                 "needs_embeddings": sp.needs_embeddings, "help": sp.help} for sp in SCORERS.values()]
    data = {"registry": registry, "trained": trained, "llm": bool(cfg.scoring.llm_base_url)}

    def human(d: dict[str, Any]) -> None:
        for o in d["registry"]:
            print(f"{o['name']:<12} {o['kind']:<8} v{o['version']}  {', '.join(o['dimensions']):<28} {o['help']}")
        for t in d["trained"]:
            print(f"  trained {t['name']:<6} v{t['version']}  ({t['examples']} labels from {t['source']})")
        print(f"llm judge: {'configured' if d['llm'] else 'not configured (scoring.llm_base_url)'}")

    emit(args, data, human)
    return EXIT_OK


def cmd_reactions_classify(args: argparse.Namespace) -> int:
    from .reactions import LABELS, ReactionError, classify_batch, make_backend
    from .reactions.evaluate import LineError, parse_line

    cfg = config_from_args(args)
    try:
        backend = make_backend(cfg.reactions, args.backend)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    try:
        with open(args.file, encoding="utf-8") as fh:
            lines = list(enumerate(fh, 1))
    except FileNotFoundError:
        raise UserError(f"file not found: {args.file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {args.file}: {exc}") from None
    parsed: list[tuple[int, Any]] = []  # (line number, LabelledItem or the line's error)
    for lineno, line in lines:
        if not line.strip():
            continue
        try:
            parsed.append((lineno, parse_line(line, lineno)))
        except LineError as exc:
            parsed.append((lineno, exc))
    good = [(n, p) for n, p in parsed if not isinstance(p, LineError)]
    results = dict(zip((n for n, _ in good), classify_batch([p.item for _, p in good], backend=backend)))
    rows: list[dict[str, Any]] = []
    for lineno, p in parsed:
        r = p if isinstance(p, LineError) else results[lineno]
        if isinstance(r, (LineError, ReactionError)):
            msg = str(r) if isinstance(r, LineError) else f"line {lineno}: {r}"
            sys.stderr.write(f"stephanie: error: {args.file}: {msg}\n")
            rows.append({"line": lineno, "error": msg})
        else:
            rows.append({"line": lineno, **r.to_dict()})
    counts = {label: sum(r.get("label") == label for r in rows) for label in LABELS}
    counts["failed"] = sum("error" in r for r in rows)
    if getattr(args, "json", False):
        emit(args, {"file": args.file, "backend": args.backend or cfg.reactions.backend, "results": rows,
                    "counts": counts}, lambda d: None)
    else:
        for r in rows:
            sys.stdout.write(json.dumps(r, ensure_ascii=False) + "\n")
    return EXIT_PARTIAL if counts["failed"] else EXIT_OK


# ----------------------------------------------------------------------------- PACS: prepare, train, verify


def cmd_prepare(args: argparse.Namespace) -> int:
    from .pipeline import run_stages, select_stages

    if args.verifier:
        args.set = list(getattr(args, "set", []) or []) + [f"verifier.name={args.verifier}"]
    cfg = config_from_args(args)
    result = run_stages(cfg, open_db(cfg), select_stages(["prepare"]), [], command="prepare")
    r = result.outputs.get("prepare")
    if r is None:
        raise UserError(result.outputs.get("prepare_skipped", "no dataset prepared"))

    def human(d: dict[str, Any]) -> None:
        print(f"dataset version {d['dataset_version']}{' (unchanged: reused)' if d['reused'] else ''}: {d['rows']} "
              f"responses in {d['groups']} groups ({d['train_rows']} train / {d['val_rows']} val rows); verifier "
              f"{d['verifier']}: {d['positives']} good, {d['negatives']} bad (balance {d['label_balance']:.3f})")
        print("groups by rule: " + ", ".join(f"{k} {v}" for k, v in d["group_rules"].items()))
        print("group sizes:\n" + r.histogram())
        for why, n in sorted(d["excluded"].items(), key=lambda kv: -kv[1]):
            print(f"  excluded {n} × {why}", file=sys.stderr)
        print(f"written: {d['path']}  (run {d['run_id']})")

    emit(args, {"run_id": result.run_id, **r.to_dict()}, human)
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from .pipeline import Stage, run_stages, select_stages

    if args.mode == "logprob":  # the actor LM itself is trained (training/logprob_trainer.py)
        sets = [f"logprob.{k}={v}" for k, v in (("workers", args.workers), ("steps", args.steps), ("dataset", args.dataset),
                                                ("run_name", args.run_name), ("actor", args.actor), ("task", args.task),
                                                ("group_size", args.group_size)) if v is not None]
        args.set = list(getattr(args, "set", []) or []) + sets
        cfg = config_from_args(args)
        stage = Stage("train", "stephanie_ray.training.logprob_trainer:logprob_stage",
                      "PACS logprob mode: the actor samples groups and is trained on Ray Train", "logprob")
        result = run_stages(cfg, open_db(cfg), [stage], [], command="train")
        if "train" not in result.outputs:
            raise UserError(result.error or "no actor trained")

        def human_lp(d: dict[str, Any]) -> None:
            print(f"actor model version {d['model_version']}{' (already trained: reused)' if d['reused'] else ''}: "
                  f"task {d['task']}, actor {d['actor']}, {d['steps']} steps of G={d['group_size']} on {d['workers']} "
                  f"worker(s), run {d['run_name']}" + (f", resumed at {d['resumed_from']}" if d["resumed_from"] else ""))
            ev = d["eval"] or {}
            for when in ("before_training", "after_training"):
                if ev.get(when):
                    print(f"{when.replace('_', ' ')}: pass@1 {ev[when]['pass1']:.3f}, pass@k {ev[when]['passk']:.3f}")
            print(f"sampled pass rate {d['pass_rate_first']} -> {d['pass_rate_last']}; {d['samples_per_s']} samples/s, "
                  f"{d['gen_tokens_per_s']} generated tokens/s; excluded {d['excluded'] or 'none'}")
            print(f"model: {d['path']}\ncheckpoint: {d['checkpoint']}\nreport: {d['report']}")

        emit(args, {"run_id": result.run_id, "report": f"{result.run_dir}/report.md",
                    **result.outputs["train"].to_dict()}, human_lp)
        return EXIT_OK
    sets = [f"critic.{k}={v}" for k, v in (("workers", args.workers), ("steps", args.steps), ("dataset", args.dataset),
                                           ("run_name", args.run_name)) if v is not None]
    args.set = list(getattr(args, "set", []) or []) + sets
    cfg = config_from_args(args)
    result = run_stages(cfg, open_db(cfg), select_stages(["train"]), [], command="train")
    r = result.outputs.get("train")
    if r is None:
        raise UserError(result.outputs.get("train_skipped", "no critic trained"))

    def human(d: dict[str, Any]) -> None:
        f = d["final"]
        print(f"critic model version {d['model_version']}{' (already trained: reused)' if d['reused'] else ''}: "
              f"{d['steps']} steps on {d['workers']} worker(s), dataset version {d['dataset_version']}, run "
              f"{d['run_name']}" + (f", resumed at {d['resumed_from']}" if d["resumed_from"] else ""))
        print(f"last step: loss {f.get('loss')}, psi mean {f.get('psi_mean')}, coupling ratio {f.get('coupling_ratio')}; "
              f"{d['samples_per_s']} samples/s, {d['seconds_per_step'] * 1000:.1f} ms/step")
        from .training.trainer import eval_table

        print("\n".join(eval_table(d["eval"])))
        print(f"model: {d['path']}\ncheckpoint: {d['checkpoint']}\nreport: {d['report']}")

    emit(args, {"run_id": result.run_id, "report": f"{result.run_dir}/report.md", **r.to_dict()}, human)
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from .training.verifiers import VerifyItem, make_verifier, verify
    from .training.dataset import verifier_config

    if args.model is not None:
        args.set = list(getattr(args, "set", []) or []) + [f"verifier.critic_model={args.model}"]
    cfg = config_from_args(args)
    try:
        with open(args.file, encoding="utf-8") as fh:
            lines = list(enumerate(fh, 1))
    except FileNotFoundError:
        raise UserError(f"file not found: {args.file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {args.file}: {exc}") from None
    import dataclasses

    verifier = make_verifier(dataclasses.replace(verifier_config(cfg), name="critic"))
    rows: list[dict[str, Any]] = []
    items, where = [], []
    for lineno, line in lines:
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str) \
                    or not isinstance(obj.get("response"), str):
                raise ValueError('expected an object with string "prompt" and "response"')
            ctx = obj.get("context") or ""
            if not isinstance(ctx, str):
                raise ValueError('"context" must be a string')
        except ValueError as exc:
            rows.append({"line": lineno, "error": f"line {lineno}: {exc}"})
            continue
        rows.append({"line": lineno})
        items.append(VerifyItem(obj["prompt"], obj["response"], {"context": ctx}))
        where.append(len(rows) - 1)
    for k, res in zip(where, verify(verifier, items) if items else []):
        rows[k].update(res.to_dict())
        if not res.to_dict()["ok"]:
            rows[k]["error"] = f"line {rows[k]['line']}: {rows[k].pop('reason')}"
    failed = sum("error" in r for r in rows)
    for r in rows:
        if "error" in r:
            sys.stderr.write(f"stephanie: error: {args.file}: {r['error']}\n")
    if getattr(args, "json", False):
        emit(args, {"file": args.file, "model_version": verifier.version, "results": rows,
                    "counts": {"ok": len(rows) - failed, "failed": failed}}, lambda d: None)
    else:
        for r in rows:
            sys.stdout.write(json.dumps(r, ensure_ascii=False) + "\n")
    return EXIT_PARTIAL if failed else EXIT_OK


def cmd_runs_list(args: argparse.Namespace) -> int:
    from .audit import list_runs

    cfg = config_from_args(args)
    runs = list_runs(open_db(cfg), limit=args.limit)

    def human(d: dict[str, Any]) -> None:
        rows = [(r["id"], r["command"], r["status"], r["started_at"][:19].replace("T", " "), r["duration_s"],
                 ",".join(f"{s['stage']}:{s['status']}" for s in r["stages"]) or "-") for r in d["runs"]]
        print(table(rows, ["id", "command", "status", "started (UTC)", "seconds", "stages"]) if rows else "no runs yet")

    emit(args, {"runs": runs}, human)
    return EXIT_OK


def cmd_runs_show(args: argparse.Namespace) -> int:
    from .audit import get_run

    cfg = config_from_args(args)
    run = get_run(open_db(cfg), args.run_id)
    if run is None:
        raise UserError(f"no run with id {args.run_id}")

    def human(d: dict[str, Any]) -> None:
        print(f"run {d['id']} ({d['command']}): {d['status']}  {d['started_at']} -> {d['finished_at']}")
        print(f"inputs: {', '.join(d['inputs']) or '-'}")
        if d["error"]:
            print(f"error: {d['error']}")
        for st in d["stages"]:
            print(f"  [{st['status']}] {st['stage']} ({st['duration_s']} s)")
            for k, v in st["counts"].items():
                print(f"      {k}: {json.dumps(v, default=str) if isinstance(v, (list, dict)) else v}")
            if st["error"]:
                print(f"      error: {st['error']}")

    emit(args, run, human)
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from .db import Database
    from .db.migrate import upgrade

    cfg = config_from_args(args)
    db = Database.from_config(cfg, upgrade=False)
    before, after = upgrade(db.engine, args.revision)
    emit(args, {"database": db.safe_url, "before": before, "after": after},
         lambda d: print(f"{d['database']}: {d['before'] or '<empty>'} -> {d['after']}"
                         if d["before"] != d["after"] else f"{d['database']}: already at {d['after']}"))
    return EXIT_OK


def cmd_db_current(args: argparse.Namespace) -> int:
    from .db import Database
    from .db.migrate import current_revision, head_revision

    cfg = config_from_args(args)
    db = Database.from_config(cfg, upgrade=False)
    cur, head = current_revision(db.engine), head_revision()
    emit(args, {"database": db.safe_url, "current": cur, "head": head, "up_to_date": cur == head},
         lambda d: print(f"{d['database']}: {d['current'] or '<empty>'} (head {d['head']})"
                         + ("" if d["up_to_date"] else "  -> run 'stephanie db upgrade'")))
    return EXIT_OK


def cmd_db_history(args: argparse.Namespace) -> int:
    from .db.migrate import history

    revs = [{"revision": r, "down_revision": d, "message": m.splitlines()[0] if m else ""} for r, d, m in history()]
    emit(args, {"revisions": revs}, lambda d: print("\n".join(f"{r['revision']}  {r['message']}" for r in d["revisions"])))
    return EXIT_OK


def cmd_config_show(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if args.fields:
        rows = [(k, t, json.dumps(v), h) for k, t, v, h in describe_fields()]
        print(table(rows, ["key", "type", "default", "meaning"]))
        return EXIT_OK

    def human(d: dict[str, Any]) -> None:
        import yaml

        print(yaml.safe_dump(d, sort_keys=False).rstrip())

    emit(args, cfg.to_dict(), human)
    return EXIT_OK


def cmd_stages(args: argparse.Namespace) -> int:
    from .pipeline import available_stages

    stages = [{"name": s.name, "help": s.help} for s in available_stages()]
    emit(args, {"stages": stages}, lambda d: print("\n".join(f"{s['name']:<12} {s['help']}" for s in d["stages"])))
    return EXIT_OK


def cmd_ner_index(args: argparse.Namespace) -> int:
    from .pipeline import run_stages, select_stages

    if args.serial:
        args.set = list(getattr(args, "set", []) or []) + ["ner.parallel=false"]
    cfg = config_from_args(args)
    db = open_db(cfg)
    if args.reembed:
        from .ner.stage import run_ner_index

        s = run_ner_index(cfg, db, reembed=True)
        full = {"run_id": None, **s.to_dict()}
    else:
        result = run_stages(cfg, db, select_stages(["ner"]), [], command="ner index")
        s = result.outputs["ner"]
        full = {"run_id": result.run_id, **s.to_dict()}

    def human(d: dict[str, Any]) -> None:
        print(f"read {d['scorables_indexed']} scorables ({d['scorables_skipped_done']} already indexed, "
              f"{d['failed']} failed): {d['mentions_new']} mentions in {d['seconds']} s "
              f"({d['scorables_per_s']} scorables/s)")
        print(f"index: {d['index_items']} mentions, projection v{d['projection_version']}"
              f"{' (trained now)' if d['projection_trained'] else ''}, {d['index_bytes']} bytes, "
              f"built in {d['index_seconds']} s; graph: {d['entities']} entities, {d['edges']} edges")
        if d["chunks_skipped_script"]:
            print(f"chunks in other scripts left to the rule detector: {d['chunks_skipped_script']}")
        for f in d["failures"][:20]:
            print(f"  failed: {f['scorable']}: {f['error']}", file=sys.stderr)

    emit(args, full, human)
    return EXIT_OK if not s.failed else EXIT_PARTIAL


def cmd_ner_search(args: argparse.Namespace) -> int:
    from .ner.retriever import NerRetriever

    cfg = config_from_args(args)
    results = NerRetriever(cfg).search(args.query, k=args.k, min_similarity=args.min_similarity, domain=args.domain)

    def human(d: dict[str, Any]) -> None:
        if not d["results"]:
            print("no entities found")
        for r in d["results"]:
            src = " ".join(r["source_text"].split())
            print(f"{r['similarity']:.3f} ({r['calibrated_similarity']:.3f})  {r['entity_text']!r} [{r['entity_type']}]"
                  f"  {r['scorable_type']}:{r['scorable_id']} @{r['start']}  id {r['id']}\n      {src[:160]}")

    emit(args, {"query": args.query, "k": args.k, "results": [r.to_dict() for r in results]}, human)
    return EXIT_OK


def cmd_ner_train(args: argparse.Namespace) -> int:
    from .ner.stage import build_from_store, train_and_save

    cfg = config_from_args(args)
    db = open_db(cfg)
    proj, trained, report = train_and_save(cfg, db, force=args.force)
    built = build_from_store(cfg, db, proj)
    data = {"version": proj.version, "trained": trained, "path": str(proj.path), "metrics": proj.meta.get("metrics"),
            "types": report["types"], "left_out": report["left_out"], "index_items": built.items}
    emit(args, data, lambda d: print(
        f"projection v{d['version']} ({'trained' if d['trained'] else 'unchanged data: kept'}) at {d['path']}; "
        f"{len(d['types'])} types; val R-precision {d['metrics'].get('val_r_precision_raw')} (raw) -> "
        f"{d['metrics'].get('val_r_precision')}; index rebuilt: {d['index_items']} mentions"))
    return EXIT_OK


def cmd_ner_calibrate(args: argparse.Namespace) -> int:
    from .ner.retriever import calibrate_domain

    cfg = config_from_args(args)
    data = calibrate_domain(cfg, args.judgments, args.domain)
    emit(args, data, lambda d: print(
        f"{d['domain']}: {d['method']} on {d['judgments']} judgments ({d['queries']} queries); held out "
        f"{d['held_out']}: ECE {d['ece_before']} -> {d['ece_after']}, Brier {d['brier_before']} -> "
        f"{d['brier_after']}  ({d['path']})"))
    return EXIT_OK


def cmd_graph_entity(args: argparse.Namespace) -> int:
    from .ner.graph import entity_report

    cfg = config_from_args(args)
    with open_db(cfg).session() as session:
        data = entity_report(session, args.name, limit=args.limit)

    def human(d: dict[str, Any]) -> None:
        e = d["entity"]
        print(f"{e['name']} [{e['label']}]: {e['mentions']} mentions in {e['scorables']} scorables; "
              f"forms: {', '.join(f['text'] for f in d['surface_forms'])}")
        for s in d["scorables"]:
            print(f"  {s['type']}:{s['id']} x{s['mentions']}  {(s['snippet'] or '')[:120]}")
        print(f"cases: {d['cases_total']}; CaseBooks:")
        for b in d["casebooks"]:
            p = b["progress"]
            prog = f"  early {p['early_mean']:.3f} -> late {p['late_mean']:.3f}" if p else "  (not scored yet)"
            print(f"  {b['id']} {b['name']} ({b['cases']} cases){prog}")
        if d["cooccurring"]:
            print("co-occurs with: " + ", ".join(f"{c['name']} ({c['weight']})" for c in d["cooccurring"]))

    emit(args, data, human)
    return EXIT_OK


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    parser = _Parser(prog="stephanie", parents=[common],
                     description="Turn conversations with AI assistants into training signal, on Ray.")
    parser.add_argument("--version", action="version", version=f"stephanie-ray {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, help: str, func: Callable[[argparse.Namespace], int], parent: Any = sub) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help, description=help, parents=[common])
        p.set_defaults(func=func)
        return p

    p = add("pipeline", "run every stage, in order, on PATHS (default: examples/)", cmd_pipeline)
    p.add_argument("paths", nargs="*", metavar="PATH", help="export files, directories or .zip files")
    p.add_argument("--stages", metavar="A,B", help="run only these stages (still in pipeline order)")

    add("stages", "list the pipeline's stages", cmd_stages)

    p = add("import", "import chat exports (files, directories, .zip): every provider, branches kept, deduplicated",
            cmd_import)
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--serial", action="store_true", help="parse in this process instead of on Ray Data")

    chats = sub.add_parser("chats", help="imported conversations", parents=[common])
    chats_sub = chats.add_subparsers(dest="chats_command", metavar="ACTION", required=True, parser_class=_Parser)
    p = add("list", "list imported conversations, newest first", cmd_chats_list, chats_sub)
    p.add_argument("--provider", help="only this provider (chatgpt, claude, deepseek, qwen, gemini, sharegpt, openai_chat)")
    p.add_argument("--limit", type=int, default=50)
    p = add("export", "write normalised JSONL, one conversation per line", cmd_chats_export, chats_sub)
    p.add_argument("--provider")
    p.add_argument("--active-only", action="store_true", help="only the messages on each active thread")
    p.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")

    cbp = sub.add_parser("casebooks", help="CaseBooks: conversations as curricula tied to goals", parents=[common])
    cb_sub = cbp.add_subparsers(dest="casebooks_command", metavar="ACTION", required=True, parser_class=_Parser)
    p = add("build", "turn imported conversations into CaseBooks, cases and scorables", cmd_casebooks_build, cb_sub)
    p.add_argument("--mode", choices=["conversation", "turn", "message"],
                   help="one case per conversation, per user turn (default, config casebooks.mode) or per message")
    p.add_argument("--group-by", dest="group_by", choices=["conversation", "goal"],
                   help="one CaseBook per conversation, or per goal across conversations and providers")
    p.add_argument("--threshold", type=float,
                   help="linking score in (0, 1] at which a conversation joins an earlier one's goal "
                        "(config casebooks.goal_threshold)")
    p = add("list", "list CaseBooks, largest first; says how many of how many it shows", cmd_casebooks_list, cb_sub)
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--limit", type=int, metavar="N", help="at most N CaseBooks (default 50)")
    shown.add_argument("--all", action="store_true", help="every CaseBook")
    p.add_argument("--tag")
    p.add_argument("--mode", choices=["conversation", "turn", "message"])
    p.add_argument("--group-by", dest="group_by", choices=["conversation", "goal"])
    p = add("show", "one CaseBook: cases in trajectory order, scorables, champion, goal state, progress",
            cmd_casebooks_show, cb_sub)
    p.add_argument("name", help="CaseBook name or id")
    p.add_argument("--limit", type=int, help="at most this many cases")

    p = add("score", "score every scorable on every dimension with the ensemble; MARS agreement", cmd_score)
    p.add_argument("--dimensions", metavar="A,B", help="only these dimensions (config scoring.dimensions)")
    p.add_argument("--scorers", metavar="X,Y", help="only these scorers (default: every available one)")
    p.add_argument("--rescore", action="store_true", help="score again what is already scored")
    p.add_argument("--serial", action="store_true", help="score in this process instead of a Ray actor pool")
    scp = sub.add_parser("scores", help="stored scores", parents=[common])
    sc_sub = scp.add_subparsers(dest="scores_command", metavar="ACTION", required=True, parser_class=_Parser)
    p = add("show", "every score of one scorable, with rationales", cmd_scores_show, sc_sub)
    p.add_argument("scorable", help="TYPE:ID (turn:123, message:45, conversation:67) or an id")
    srp = sub.add_parser("scorers", help="the scorers; train the learned ones", parents=[common])
    sr_sub = srp.add_subparsers(dest="scorers_command", metavar="ACTION", required=True, parser_class=_Parser)
    add("list", "the scorer registry, trained versions of the learned scorers, the LLM judge", cmd_scorers_list, sr_sub)
    p = add("train", "train the learned scorers (SICQL, MRQ, SVM, HRM, EBT) on the person's verdicts: accepted / "
                     "corrected answers, answers kept over regenerations", cmd_scorers_train, sr_sub)
    p.add_argument("--scorers", metavar="X,Y", help="which of sicql, mrq, svm, hrm, ebt (default: all)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: scoring.train_epochs)")
    p.add_argument("--min-labels", dest="min_labels", type=int, default=None,
                   help="fewest labels to train on (default: scoring.train_min_labels)")
    add("mars", "inter-scorer agreement per dimension (latest MARS reports)", cmd_mars)
    p = add("rank", "top-k scorables for a goal: similarity first; value, recency, diversity (MMR) break near-ties",
            cmd_rank)
    p.add_argument("--goal", required=True, help="goal text, goal id, or CaseBook id or name")
    p.add_argument("--k", type=int, default=5)

    rxp = sub.add_parser("reactions", help="the person's reaction to each answer (their next message)", parents=[common])
    rx_sub = rxp.add_subparsers(dest="reactions_command", metavar="ACTION", required=True, parser_class=_Parser)
    p = add("classify", "classify reactions in a JSONL file: corrected / accepted / continued / none, one JSON "
                        "line per input line (--json: one object with the list and counts)", cmd_reactions_classify,
            rx_sub)
    p.add_argument("file", metavar="FILE.jsonl", help='lines {"prompt", "answer", "next" (null when none), '
                                                     'optional "regenerated", "edited"}')
    p.add_argument("--backend", help="rules, llm or hf (default: config reactions.backend)")

    p = add("prepare", "scored CaseBooks -> the PACS dataset (Parquet: prompt + context, response, reward, verifier "
                       "label, group, split) and its version; prints the group-size histogram", cmd_prepare)
    p.add_argument("--verifier", help="verifier that labels the responses (config verifier.name; "
                                      "reaction, ensemble, math, critic)")
    p = add("train", "train the PACS critic on Ray Train: model version, metrics, checkpoint", cmd_train)
    p.add_argument("--mode", choices=["critic", "logprob"], default="critic",
                   help="critic: a critic over (prompt, response) trained with the PACS objective; logprob: the actor "
                        "LM samples G responses per prompt and is trained on s = sum of their log-probs")
    p.add_argument("--actor", help="logprob: Hugging Face causal LM name or directory (default: the offline GPT-2-style "
                                   "actor built from config logprob.*)")
    p.add_argument("--task", choices=["toy-arith", "casebooks"], help="logprob: toy-arith (addition, math verifier) or "
                                                                      "casebooks (the PACS dataset's prompts, critic verifier)")
    p.add_argument("--group-size", dest="group_size", type=int, help="logprob: responses sampled per prompt (G)")
    p.add_argument("--workers", type=int, help="Ray Train workers (config critic.workers / logprob.workers)")
    p.add_argument("--steps", type=int, help="optimiser steps (config critic.steps); more steps on the same run "
                                             "name continue from its last checkpoint")
    p.add_argument("--dataset", help="dataset version id (default: the newest)")
    p.add_argument("--run-name", dest="run_name", help="Ray Train run name (default: from the dataset and "
                                                         "settings); the same name resumes")
    p = add("verify", "P(good) from the trained critic for each line of a JSONL file", cmd_verify)
    p.add_argument("file", metavar="FILE.jsonl", help='lines {"prompt", "response", optional "context"}')
    p.add_argument("--model", help="critic model version or directory (default: the newest)")

    runs = sub.add_parser("runs", help="the audit trail of pipeline and stage runs", parents=[common])
    runs_sub = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True, parser_class=_Parser)
    p = add("list", "list recent runs, newest first", cmd_runs_list, runs_sub)
    p.add_argument("--limit", type=int, default=20, help="how many runs (default 20)")
    p = add("show", "one run with its stages, counts, config and errors", cmd_runs_show, runs_sub)
    p.add_argument("run_id", type=int)

    dbp = sub.add_parser("db", help="database schema", parents=[common])
    db_sub = dbp.add_subparsers(dest="db_command", metavar="ACTION", required=True, parser_class=_Parser)
    p = add("upgrade", "upgrade the schema in place to the newest version", cmd_db_upgrade, db_sub)
    p.add_argument("revision", nargs="?", default="head", help="target revision (default head)")
    add("current", "show the schema version of the database", cmd_db_current, db_sub)
    add("history", "list schema versions", cmd_db_history, db_sub)

    nerp = sub.add_parser("ner", help="NER retriever: entities by type description", parents=[common])
    ner_sub = nerp.add_subparsers(dest="ner_command", metavar="ACTION", required=True, parser_class=_Parser)
    p = add("index", "detect entities in new scorables, embed them, rebuild the Annoy index and the entity graph",
            cmd_ner_index, ner_sub)
    p.add_argument("--serial", action="store_true", help="in this process instead of a Ray actor pool")
    p.add_argument("--reembed", action="store_true", help="read every scorable again (not only new ones)")
    p = add("search", "entities whose type matches a description, e.g. \"Python web framework\"", cmd_ner_search,
            ner_sub)
    p.add_argument("query", metavar="TYPE_DESCRIPTION")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--min-similarity", dest="min_similarity", type=float, default=None)
    p.add_argument("--domain", default=None, help="calibration domain (default: detected from the query)")
    p = add("train-projection", "train the type-aware projection on the detectors' labels (+ ner.train_file) and "
                                "rebuild the index", cmd_ner_train, ner_sub)
    p.add_argument("--force", action="store_true", help="train a new version even if the data did not change")
    p = add("calibrate", "fit a domain's similarity calibration from relevance judgments (JSONL)", cmd_ner_calibrate,
            ner_sub)
    p.add_argument("judgments", metavar="JUDGMENTS.jsonl")
    p.add_argument("--domain", required=True)
    grp = sub.add_parser("graph", help="the entity knowledge graph", parents=[common])
    grp_sub = grp.add_subparsers(dest="graph_command", metavar="ACTION", required=True, parser_class=_Parser)
    p = add("entity", "an entity: the scorables, cases and CaseBooks that mention it, what co-occurs with it",
            cmd_graph_entity, grp_sub)
    p.add_argument("name")
    p.add_argument("--limit", type=int, default=20)

    from .serve.cli import add_serve_parser  # light: Ray and FastAPI are imported when the command runs

    add_serve_parser(sub, common)

    cfgp = sub.add_parser("config", help="configuration", parents=[common])
    cfg_sub = cfgp.add_subparsers(dest="config_command", metavar="ACTION", required=True, parser_class=_Parser)
    p = add("show", "print the effective configuration (defaults <- file <- env <- --set)", cmd_config_show, cfg_sub)
    p.add_argument("--fields", action="store_true", help="list every field with its type, default and meaning")
    return parser


def setup_logging(args: argparse.Namespace) -> None:
    level = logging.INFO
    if getattr(args, "quiet", False):
        level = logging.WARNING
    elif getattr(args, "verbose", 0):
        level = logging.DEBUG
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    logging.getLogger("stephanie_ray").setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    setup_logging(args)
    try:
        return args.func(args)
    except UserError as exc:
        sys.stderr.write(f"stephanie: error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("stephanie: interrupted\n")
        return 130
    except BrokenPipeError:  # `stephanie ... | head`: the reader left; not an error worth a traceback
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
