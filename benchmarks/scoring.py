"""Scoring benchmark: raw batched MiniLM embedding throughput vs the full `stephanie score` ensemble.

    .venv/bin/python benchmarks/scoring.py                       # default: ~6,000 answers
    .venv/bin/python benchmarks/scoring.py --conversations 60    # quick look

On a synthetic ChatGPT-format export (stephanie_ray.ingest.synthetic) imported into SQLite and
built into turn-mode CaseBooks (neither timed):
  (a) the floor: the answers' texts embedded in batches by one in-process MiniLM with every core
      (sorted by length, as the scorer does) — the ensemble cannot be faster than embedding them;
  (b) the full ensemble on the same texts through `run_scoring`: Ray Data actor pool, all offline
      scorers (structure, lexical, feedback, embedding) on all five dimensions, and everything the
      stage does around them (loading items and reactions, writes, novelty, ensemble, case qualities,
      champions, MARS), Ray already started;
  (b') for information, the same in-process (scoring.parallel = false).
Target (issue 5): (b) >= 70% of (a).
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import select  # noqa: E402

from stephanie_ray.casebooks.build import build_casebooks  # noqa: E402
from stephanie_ray.casebooks.scorables import resolve_texts  # noqa: E402
from stephanie_ray.config import load_config  # noqa: E402
from stephanie_ray.db import Database  # noqa: E402
from stephanie_ray.db.models import CaseScorable  # noqa: E402
from stephanie_ray.embedding import Embedder  # noqa: E402
from stephanie_ray.ingest.importer import run_import  # noqa: E402
from stephanie_ray.ingest.synthetic import write_chatgpt_export  # noqa: E402
from stephanie_ray.scoring.stage import run_scoring  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conversations", type=int, default=240)
    ap.add_argument("--pairs", type=int, default=20, help="user/assistant pairs per conversation (plus branches)")
    ap.add_argument("--words", type=int, default=150, help="words per answer (prompts: a third)")
    ap.add_argument("--no-serial", action="store_true", help="skip (b'), the in-process run")
    ap.add_argument("--actors", type=int, default=0, help="scoring.num_actors (0: one per CPU)")
    ap.add_argument("--workdir", default="")
    args = ap.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="stephanie-bench-scoring-"))
    (work / "in").mkdir(parents=True, exist_ok=True)
    info = write_chatgpt_export(work / "in" / "conversations.json", args.conversations, pairs=args.pairs,
                                words=args.words, seed=2)
    cfg = load_config(None, {"run.runs_dir": str(work / "runs"), "run.progress": False,
                             "db.url": f"sqlite:///{work / 'bench.sqlite'}", "scoring.num_actors": args.actors},
                      env={})
    db = Database.from_config(cfg)
    serial = copy.deepcopy(cfg)
    serial.ingest.parallel = False
    run_import(serial, db, [str(work / "in")])
    built = build_casebooks(cfg, db, mode="turn", group_by="conversation")
    with db.session() as s:
        refs = sorted(set(s.execute(select(CaseScorable.scorable_type, CaseScorable.scorable_id)
                                    .where(CaseScorable.role == "response")).all()))
        texts = [resolve_texts(s, refs)[r] for r in refs]
    chars = sum(len(t) for t in texts) / len(texts)
    print(f"data: {info['conversations']} conversations, {info['messages']:,} messages -> {built.cases_new:,} cases, "
          f"{len(texts):,} answers to score (mean {chars:.0f} characters)")

    emb = Embedder.from_config(cfg.embedding)
    emb.encode(texts[:64])  # warm-up (first-call allocations), not counted
    t = time.perf_counter()
    emb.encode(texts)
    raw_s = time.perf_counter() - t
    raw = len(texts) / raw_s
    print(f"(a) raw batched MiniLM embedding:           {raw:>8.1f} texts/s  ({len(texts):,} in {raw_s:.1f} s, "
          f"batch {cfg.embedding.batch_size}, max {cfg.embedding.max_length} tokens)")

    from stephanie_ray.ray_utils import ensure_ray

    t = time.perf_counter()
    ensure_ray(cfg.ray)
    print(f"    Ray start-up: {time.perf_counter() - t:.1f} s, not counted below")
    out = run_scoring(cfg, db, rescore=True)
    full = out.items_scored / out.seconds
    print(f"(b) full ensemble, Ray actor pool:          {full:>8.1f} items/s  ({out.items_scored:,} in {out.seconds:.1f} s, "
          f"{len(out.scorers)} scorers x {len(out.dimensions)} dimensions, {out.scores_written:,} scores written)")
    if not args.no_serial:
        ser = copy.deepcopy(cfg)
        ser.scoring.parallel = False
        out2 = run_scoring(ser, db, rescore=True)
        print(f"(b') for information, in-process worker:   {out2.items_scored / out2.seconds:>8.1f} items/s  "
              f"({out2.seconds:.1f} s)")
    print(f"ratio (b)/(a): {full / raw:.0%}  (target >= 70%)")
    print(f"MARS agreement: " + ", ".join(f"{d} {m['agreement']:.2f}" if m["agreement"] is not None else f"{d} n/a"
                                          for d, m in out.mars.items()))
    db.dispose()


if __name__ == "__main__":
    main()
