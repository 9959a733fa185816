"""Scoring benchmark: raw batched MiniLM embedding throughput vs the full `stephanie score` ensemble,
and the stage's peak memory at 10k and 100k items.

    .venv/bin/python benchmarks/scoring.py                       # default: ~6,000 answers, then memory
    .venv/bin/python benchmarks/scoring.py --conversations 60    # quick look
    .venv/bin/python benchmarks/scoring.py --memory-only --memory-items 10000,40000

On a synthetic ChatGPT-format export (stephanie_ray.ingest.synthetic) imported into SQLite and
built into turn-mode CaseBooks (neither timed):
  (a) the floor: the answers' texts embedded in batches by one in-process MiniLM with every core
      (sorted by length, as the scorer does) — the ensemble cannot be faster than embedding them;
  (b) the full ensemble on the same texts through `run_scoring`: Ray Data actor pool, every offline
      scorer of the registry (structure, readability, lexical, embedding, ngram, codecheck, feedback,
      choice) on all five dimensions, and everything the stage does around them (loading items and
      reactions, writes, novelty along trajectories, ensemble, case qualities, champions, MARS), Ray
      already started;
  (b') for information, the same in-process (scoring.parallel = false);
  (c) memory: the stage's peak resident memory at 10k and at 100k items, each in a fresh process
      (data imported and built first, not measured; the kernel's high-water mark reset just before
      `run_scoring`). To keep 100k items within minutes on 2 cores these runs use *synthetic
      embeddings* (a hashing stand-in for MiniLM, 384-d unit vectors) and score in-process; every
      other scorer, write and post-pass is the real one. Target: peak(100k) <= 1.5 x peak(10k).
Targets: (b) >= 70% of (a); (c) as above. The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
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
    ap.add_argument("--memory-items", default="10000,100000", help="item counts of the memory runs")
    ap.add_argument("--memory-only", action="store_true", help="only the memory runs (c)")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory runs (c)")
    ap.add_argument("--memory-run", type=int, default=0, help=argparse.SUPPRESS)  # one memory run (subprocess)
    args = ap.parse_args()
    if args.memory_run:
        print(json.dumps(memory_run(args.memory_run, args.workdir)))
        return
    figures: dict = {}
    if not args.memory_only:
        figures.update(throughput(args))
    if not args.no_memory:
        figures["memory"] = memory(args)
    print(json.dumps(figures))


def throughput(args: argparse.Namespace) -> dict:

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
    return {"answers": len(texts), "raw_texts_per_s": round(raw, 1), "full_items_per_s": round(full, 1),
            "ratio": round(full / raw, 3), "scorers": out.scorers,
            "mars_agreement": {d: m["agreement"] for d, m in out.mars.items()}}


class HashEmbedder:
    """A stand-in for MiniLM in the memory runs: a 384-d unit vector seeded by each text's hash."""

    dim = 384

    def encode_with_flags(self, texts, batch_size=None):
        import numpy as np

        out = np.stack([np.random.default_rng(abs(hash(t)) % 2 ** 32).standard_normal(self.dim).astype(np.float32)
                        for t in texts]) if len(texts) else np.zeros((0, self.dim), dtype=np.float32)
        out /= np.linalg.norm(out, axis=1, keepdims=True).clip(1e-9)
        return out, np.zeros(len(texts), dtype=bool)

    def encode(self, texts, batch_size=None):
        return self.encode_with_flags(texts)[0]


def _vm(field: str) -> int:
    """A /proc/self/status figure in bytes (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def memory_run(items: int, workdir: str) -> dict:
    """One memory run in this (fresh) process: data built, then the stage's peak resident memory."""
    import stephanie_ray.embedding as embedding

    work = Path(workdir or tempfile.mkdtemp(prefix=f"stephanie-bench-mem-{items}-"))
    (work / "in").mkdir(parents=True, exist_ok=True)
    write_chatgpt_export(work / "in" / "conversations.json", max(1, items // 24), pairs=20, words=60, seed=3)
    cfg = load_config(None, {"run.runs_dir": str(work / "runs"), "run.progress": False, "ingest.parallel": False,
                             "db.url": f"sqlite:///{work / 'bench.sqlite'}", "scoring.parallel": False}, env={})
    db = Database.from_config(cfg)
    t = time.perf_counter()
    run_import(cfg, db, [str(work / "in")])
    build_casebooks(cfg, db, mode="turn", group_by="conversation")
    prep = time.perf_counter() - t
    embedding.Embedder.from_config = classmethod(lambda cls, c: HashEmbedder())  # synthetic embeddings
    import gc

    gc.collect()
    before = _vm("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark (VmHWM) to the current RSS
    t = time.perf_counter()
    out = run_scoring(cfg, db)
    secs = time.perf_counter() - t
    peak = _vm("VmHWM")
    db.dispose()
    return {"items": out.items_scored, "prep_s": round(prep, 1), "stage_s": round(secs, 1),
            "rss_before_mib": round(before / 2 ** 20, 1), "peak_rss_mib": round(peak / 2 ** 20, 1),
            "stage_peak_above_start_mib": round((peak - before) / 2 ** 20, 1), "scorers": len(out.scorers)}


def memory(args: argparse.Namespace) -> dict:
    runs = {}
    for n in [int(x) for x in args.memory_items.split(",") if x.strip()]:
        proc = subprocess.run([sys.executable, __file__, "--memory-run", str(n)], capture_output=True, text=True,
                              env={**os.environ, "PYTHONHASHSEED": "0"})
        if proc.returncode != 0:
            raise SystemExit(f"memory run {n} failed:\n{proc.stderr[-3000:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        runs[str(n)] = r
        print(f"(c) {r['items']:>7,} items: stage peak RSS {r['peak_rss_mib']:,.0f} MiB ({r['stage_peak_above_start_mib']:,.0f} "
              f"MiB above its start), {r['stage_s']:.0f} s for the stage ({r['prep_s']:.0f} s to build the data)")
    sizes = sorted(runs, key=int)
    if len(sizes) >= 2:
        lo, hi = runs[sizes[0]], runs[sizes[-1]]
        ratio = hi["peak_rss_mib"] / lo["peak_rss_mib"]
        print(f"(c) peak RSS {sizes[-1]} / {sizes[0]} items: {ratio:.2f}x  (target <= 1.5x)")
        runs["ratio"] = round(ratio, 3)
    return runs


if __name__ == "__main__":
    main()
