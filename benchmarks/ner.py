"""NER retriever benchmark: index speed and recall, retrieval quality by type, indexing throughput.

    .venv/bin/python benchmarks/ner.py                 # 100k stored vectors (a few minutes on 2 cores)
    .venv/bin/python benchmarks/ner.py --million       # also the 1M row (by hand: ~2 GB of vectors, long build)
    .venv/bin/python benchmarks/ner.py --samples       # the corpus also holds ../shared/samples (real exports)

1. **Corpus and throughput.** examples/ (and with ``--samples`` the real exports) imported into a temp
   SQLite database and built into CaseBooks with the real stages; the stage's ``detect_and_embed`` (serial:
   detection + span embedding + writes) is timed in scorables/s against the raw MiniLM forward pass
   (:class:`stephanie_ray.embedding.Embedder`, the full 6 layers, 256 tokens) on the same texts.
2. **Projection.** Trained (the real ``train_and_save``) on the corpus' detector labels plus
   ``benchmarks/data/ner/train_types.jsonl`` (7 types with example mentions, none of which is in the
   labelled set).
3. **R-precision by type** on ``benchmarks/data/ner/labelled.txt`` (83 hand-labelled sentences, 84 mentions, 12 types;
   LABELLING.md): each type's name is the query, its mentions are relevant, every mention of the set is
   ranked. Compared: the raw mid-layer representation (the span vector before projection), the trained
   projection, a sentence-embedding baseline (MiniLM mean-pooled over the mention's text alone) and a
   lexical baseline (TF-IDF cosine of the query with the mention's sentence). Types seen in training
   (the train file's 7) and unseen (5: zero-shot) are reported apart.
4. **Index.** Real projected vectors (the corpus' and the labelled set's mentions and the train file's)
   are the seeds of N synthetic ones: a random mix of two seeds plus Gaussian noise, normalised (mentions
   cluster around entities and types like this; uniform random vectors would not). 200 held-out queries
   from the same generator. Recall@10 of Annoy (config n_trees, search_k) against exact cosine search
   (numpy, one query at a time), query latency of both, build time, index size.

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "benchmarks" / "data" / "ner"
sys.path.insert(0, str(REPO))

MARK = re.compile(r"\[\[(.+?)\|(.+?)\]\]")


def read_labelled(path: Path) -> tuple[list[str], list[list[tuple[int, int]]], list[str], list[str]]:
    """(sentences, spans per sentence, mention types in order, mention texts in order)."""
    texts, spans, types, ments = [], [], [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        out, sp, pos = [], [], 0
        for m in MARK.finditer(line):
            out.append(line[pos:m.start()])
            start = sum(len(x) for x in out)
            out.append(m.group(1))
            sp.append((start, start + len(m.group(1))))
            types.append(m.group(2))
            ments.append(m.group(1))
            pos = m.end()
        out.append(line[pos:])
        texts.append("".join(out))
        spans.append(sp)
    return texts, spans, types, ments


def r_precision_by_type(q: np.ndarray, qtypes: list[str], items: np.ndarray, itypes: list[str]) -> dict[str, float]:
    qn = q / np.linalg.norm(q, axis=1, keepdims=True).clip(1e-12)
    itn = items / np.linalg.norm(items, axis=1, keepdims=True).clip(1e-12)
    it = np.asarray(itypes)
    out = {}
    for i, t in enumerate(qtypes):
        r = int((it == t).sum())
        top = np.argsort(-(itn @ qn[i]), kind="stable")[:r]
        out[t] = float((it[top] == t).mean())
    return out


def tfidf(query_texts: list[str], docs: list[str]) -> tuple[np.ndarray, np.ndarray]:
    tok = lambda s: re.findall(r"\w+", s.casefold())  # noqa: E731
    dtoks = [tok(d) for d in docs]
    df = Counter(w for d in dtoks for w in set(d))
    vocab = {w: i for i, w in enumerate(sorted(set(df) | {w for q in query_texts for w in tok(q)}))}
    n = len(docs)

    def vec(tokens: list[str]) -> np.ndarray:
        v = np.zeros(len(vocab), dtype=np.float32)
        for w, c in Counter(tokens).items():
            v[vocab[w]] = (1 + math.log(c)) * math.log((n + 1) / (df.get(w, 0) + 1))
        return v

    return np.stack([vec(tok(q)) for q in query_texts]), np.stack([vec(d) for d in dtoks])


def synth(seeds: np.ndarray, n: int, rng: np.random.Generator, noise: float = 0.03) -> np.ndarray:
    i = rng.integers(len(seeds), size=n)
    j = rng.integers(len(seeds), size=n)
    lam = rng.uniform(0.5, 1.0, size=(n, 1)).astype(np.float32)
    v = lam * seeds[i] + (1 - lam) * seeds[j] + rng.normal(0, noise, size=(n, seeds.shape[1])).astype(np.float32)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def index_bench(seeds: np.ndarray, n: int, n_trees: int, search_k_cfg: int, k: int = 10, queries: int = 200,
                seed: int = 0) -> dict[str, float]:
    from annoy import AnnoyIndex

    from stephanie_ray.ner.index import resolve_search_k

    rng = np.random.default_rng(seed)
    data = np.empty((n, seeds.shape[1]), dtype=np.float32)
    for s in range(0, n, 100_000):
        data[s: s + 100_000] = synth(seeds, min(100_000, n - s), rng)
    qs = synth(seeds, queries, rng)
    t0 = time.perf_counter()
    ann = AnnoyIndex(seeds.shape[1], "angular")
    for i in range(n):
        ann.add_item(i, data[i])
    ann.build(n_trees, n_jobs=-1)
    build_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.ann"
        ann.save(str(path))
        size = path.stat().st_size
        ann.unload()
        ann = AnnoyIndex(seeds.shape[1], "angular")
        ann.load(str(path))
        sk = resolve_search_k(search_k_cfg, k, n_trees)
        runs = {}  # search_k -> (results, ms per query): the configured one, then 2x and 4x (a sweep)
        for f in (1, 2, 4):
            t0 = time.perf_counter()
            got = [ann.get_nns_by_vector(q, k, search_k=sk * f) for q in qs]
            runs[sk * f] = (got, (time.perf_counter() - t0) / queries * 1000)
        ann.unload()
    t0 = time.perf_counter()
    exact = [np.argpartition(-(data @ q), k)[:k] for q in qs]
    exact_ms = (time.perf_counter() - t0) / queries * 1000
    sweep = [{"search_k": key, "recall_at_10": round(float(np.mean([len(set(g) & set(e.tolist())) / k
                                                                  for g, e in zip(got, exact)])), 4),
              "annoy_ms": round(ms, 3), "speedup": round(exact_ms / ms, 1)} for key, (got, ms) in runs.items()]
    return {"vectors": n, "dim": int(seeds.shape[1]), "n_trees": n_trees, "search_k": sk,
            "recall_at_10": sweep[0]["recall_at_10"], "annoy_ms": sweep[0]["annoy_ms"], "exact_ms": round(exact_ms, 3),
            "speedup": sweep[0]["speedup"], "build_s": round(build_s, 1), "index_mb": round(size / 2**20, 1),
            "sweep": sweep}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", type=int, default=100_000)
    ap.add_argument("--million", action="store_true", help="also 1,000,000 vectors (by hand: slow, ~4 GB RAM)")
    ap.add_argument("--samples", action="store_true", help="add ../shared/samples to the corpus")
    ap.add_argument("--epochs", type=int, default=0, help="projection epochs (default: ner.epochs)")
    args = ap.parse_args()

    from stephanie_ray.config import load_config
    from stephanie_ray.db import Database
    from stephanie_ray.embedding import Embedder
    from stephanie_ray.ner.spans import SpanEmbedder, SpanSettings
    from stephanie_ray.ner.stage import train_and_save
    from stephanie_ray.ner.trainset import read_train_file
    from stephanie_ray.pipeline import run_pipeline

    out: dict[str, object] = {}
    tmp = Path(tempfile.mkdtemp(prefix="ner-bench-"))
    inputs = [str(REPO / "examples")]
    samples = REPO.parent / "shared" / "samples"
    if args.samples and samples.is_dir():
        inputs.append(str(samples))
    cfg = load_config(None, {"run.runs_dir": str(tmp), "run.progress": False, "ner.parallel": False,
                             **({"ner.epochs": args.epochs} if args.epochs else {})}, env={})
    run_pipeline(cfg, inputs, ["ingest", "casebooks"])
    db = Database.from_config(cfg)

    # 1. throughput: detection + embedding + writes (the stage without training and index) vs raw MiniLM forward
    from sqlalchemy import select

    from stephanie_ray.casebooks.scorables import resolve_texts
    from stephanie_ray.db.models import CaseScorable
    from stephanie_ray.ner.stage import NerSummary, detect_and_embed

    with db.session() as s:
        refs = sorted({(t, int(i)) for t, i in s.execute(select(CaseScorable.scorable_type,
                                                                CaseScorable.scorable_id).distinct())})
        texts = list(resolve_texts(s, refs).values())
    span_settings = SpanSettings.from_config(cfg.ner)
    SpanEmbedder.get(span_settings)  # model loading is not throughput
    from stephanie_ray.ner.detect import DetectorChain, DetectorSettings

    DetectorChain(DetectorSettings.from_config(cfg.ner))
    raw_emb = Embedder("", max_length=256, batch_size=64)
    raw_emb.encode(texts[:4])
    t0 = time.perf_counter()
    raw_emb.encode(texts)
    raw_s = time.perf_counter() - t0
    summ = NerSummary()
    t0 = time.perf_counter()
    detect_and_embed(cfg, db, refs, summ, None, span_settings.signature)
    ner_s = time.perf_counter() - t0
    out["throughput"] = {"scorables": len(refs), "chars": sum(map(len, texts)), "mentions": summ.mentions_new,
                         "ner_per_s": round(len(refs) / ner_s, 2), "raw_minilm_per_s": round(len(refs) / raw_s, 2),
                         "ratio": round(raw_s / ner_s, 3)}
    print(f"(1) throughput on {len(refs)} scorables: NER index {len(refs) / ner_s:.1f}/s vs raw MiniLM forward "
          f"{len(refs) / raw_s:.1f}/s = {raw_s / ner_s:.0%} (target >= 60%)", file=sys.stderr)

    # 2. projection on the corpus' labels + the train file
    user = read_train_file(DATA / "train_types.jsonl")
    t0 = time.perf_counter()
    proj, _trained, report = train_and_save(cfg, db, user_types=user, force=True)
    out["projection"] = {"version": proj.version, "types": report["types"], "seconds": round(time.perf_counter() - t0, 1),
                         "metrics": proj.meta["metrics"]}
    print(f"(2) projection v{proj.version}: {len(report['types'])} types, {sum(report['types'].values())} mentions, "
          f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)

    # 3. R-precision by type
    emb = SpanEmbedder.get(span_settings)
    ltexts, lspans, ltypes, lments = read_labelled(DATA / "labelled.txt")
    raw_m = np.concatenate([v for v in emb.embed(ltexts, lspans) if len(v)])
    qtypes = sorted(set(ltypes))
    raw_q = emb.embed_queries(qtypes)
    seen = {u["type"] for u in user}
    methods = {
        "raw_mid_layer": r_precision_by_type(raw_q, qtypes, raw_m, ltypes),
        "projection": r_precision_by_type(proj.project(raw_q), qtypes, proj.project(raw_m), ltypes),
        "sentence_minilm": r_precision_by_type(raw_emb.encode(qtypes), qtypes, raw_emb.encode(lments), ltypes),
    }
    sent_of = [t for t, sp in zip(ltexts, lspans) for _ in sp]
    lq, ld = tfidf(qtypes, sent_of)
    methods["lexical_tfidf"] = r_precision_by_type(lq, qtypes, ld, ltypes)
    quality = {}
    print(f"(3) R-precision by type on {len(lments)} labelled mentions, {len(qtypes)} types "
          f"(* = type seen in training):", file=sys.stderr)
    print(f"    {'type':<26}" + "".join(f"{m:>17}" for m in methods), file=sys.stderr)
    for t in qtypes:
        print(f"    {('*' if t in seen else ' ') + t:<26}" + "".join(f"{methods[m][t]:>17.3f}" for m in methods),
              file=sys.stderr)
    for m, per in methods.items():
        quality[m] = {"all": round(float(np.mean(list(per.values()))), 4),
                      "seen": round(float(np.mean([v for t, v in per.items() if t in seen])), 4),
                      "unseen": round(float(np.mean([v for t, v in per.items() if t not in seen])), 4),
                      "by_type": {t: round(v, 4) for t, v in per.items()}}
    print("    " + f"{'mean (all / seen / unseen)':<26}" + "".join(
        f"{quality[m]['all']:>6.3f}/{quality[m]['seen']:.2f}/{quality[m]['unseen']:.2f}" for m in methods),
        file=sys.stderr)
    out["r_precision"] = quality

    # 4. index: recall@10 and latency vs exact, build time, size
    from stephanie_ray.ner.stage import iter_index_rows

    seeds = [proj.project(raw_m)]
    for rows in iter_index_rows(db, span_settings.signature):
        seeds.append(proj.project(rows.raw))
    seed_vecs = np.concatenate(seeds)
    seed_vecs = seed_vecs[np.isfinite(seed_vecs).all(axis=1)]
    out["index"] = []
    for n in [args.vectors] + ([1_000_000] if args.million else []):
        t0 = time.perf_counter()
        r = index_bench(seed_vecs, n, cfg.ner.n_trees, cfg.ner.search_k)
        r["wall_s"] = round(time.perf_counter() - t0, 1)
        out["index"].append(r)  # type: ignore[union-attr]
        print(f"(4) {n:,} vectors x {r['dim']}: recall@10 {r['recall_at_10']:.3f}; Annoy {r['annoy_ms']:.2f} ms vs "
              f"exact {r['exact_ms']:.2f} ms ({r['speedup']}x); build {r['build_s']} s ({r['n_trees']} trees); "
              f"{r['index_mb']} MB; search_k {r['search_k']}; whole row {r['wall_s']} s", file=sys.stderr)
        print("    search_k sweep: " + "; ".join(f"{w['search_k']:,}: recall {w['recall_at_10']:.3f}, "
                                                 f"{w['annoy_ms']:.2f} ms ({w['speedup']}x)" for w in r["sweep"]),
              file=sys.stderr)
    db.dispose()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
