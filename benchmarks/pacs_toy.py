"""Does the policy learn? PACS logprob mode vs a plain RLOO policy gradient on multi-digit addition.

    .venv/bin/python benchmarks/pacs_toy.py [--seeds 0,1,2] [--steps N] [--set logprob.FIELD=VALUE ...]
    .venv/bin/python benchmarks/pacs_toy.py --throughput [--steps 6]

The task (training/toy_arith.py): ``"A+B="`` -> ``\\boxed{A+B}``, checked by the ``math`` verifier. The actor is
the offline default (GPT-2-style, built from the ``logprob`` config, byte-level BPE tokenizer trained on the task,
warmed up by a short supervised pass to a modest pass@1); it is built once and cached in
``runs/actors/toy-arith-<hash>`` (a fresh clone builds it).

For each seed, the same warmed-up actor is trained twice with the same step budget, prompts and per-group
sampling seeds: with PACS (``logprob.method=pacs``) and with RLOO (REINFORCE with the leave-one-out baseline,
``logprob.method=rloo``). Both run the loop of the Ray Train workers in this process
(``logprob_loop.train_local``: the same :func:`~stephanie_ray.training.logprob.logprob_step`), two runs at a time
(one per CPU core). Printed: greedy pass@1 and pass@k on held-out problems before and after, per seed, and the
mean and spread (standard deviation over seeds); the last line is one JSON object::

    {"pacs": {"pass1_before", "pass1_after", "passk_before", "passk_after", "seeds": [...]}, "rloo": {...},
     "steps", "group_size", ...}

``--throughput``: samples/s and generated tokens/s of the Ray Train path (``train_logprob``) with 1 and 2 workers
on the same prompts (a temporary database), one JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from stephanie_ray.config import load_config  # noqa: E402

DEFAULTS: dict = {}  # the benchmark's own settings, on top of the logprob config defaults (none: the defaults)


def _cfg(over: dict):
    base = {"run.runs_dir": str(REPO / "runs"), "run.progress": False, "ray.num_cpus": 2}
    base.update(DEFAULTS)
    base.update(over)
    return load_config(None, base, env={})


def _run(job: tuple[dict, str, int, dict | None]) -> dict:
    """One training run (a separate process): returns before/after and timing."""
    import torch

    from stephanie_ray.training.logprob_loop import train_local
    from stephanie_ray.training.logprob_trainer import toy_task, worker_config

    over, method, seed, before = job
    torch.set_num_threads(1)
    cfg = _cfg({**over, "logprob.method": method, "logprob.seed": seed})
    config = worker_config(cfg, toy_task(cfg), Path(tempfile.gettempdir()))
    config["before"] = before
    t0 = time.perf_counter()
    st = train_local(config)
    rates = [r["pass_rate"] for r in st["history"] if r["pass_rate"] is not None]
    return {"method": method, "seed": seed, "before": st["before"], "after": st["after"],
            "seconds": round(time.perf_counter() - t0, 1), "train_seconds": round(st["train_seconds"], 1),
            "rejected": st["rejected"], "pass_rate_first": rates[0] if rates else None,
            "pass_rate_last": rates[-1] if rates else None,
            "gen_tokens_per_s": round(sum(r["response_tokens"] for r in st["history"])
                                      / max(1e-9, sum(r["gen_seconds"] for r in st["history"])), 1)}


def _before(job: tuple[dict, int]) -> dict:
    """pass@1 / pass@k of the warmed-up actor with one seed's pass@k samples."""
    import torch

    from stephanie_ray.training.logprob_loop import evaluate_actor, setup
    from stephanie_ray.training.logprob_trainer import toy_task, worker_config

    over, seed = job
    torch.set_num_threads(1)
    cfg = _cfg({**over, "logprob.seed": seed})
    config = worker_config(cfg, toy_task(cfg), Path(tempfile.gettempdir()))
    return evaluate_actor(setup(config, "cpu"), config, "cpu")


def _summary(runs: list[dict]) -> dict:
    def agg(key: str, when: str) -> list[float]:
        return [r[when][key] for r in runs]

    def ms(xs: list[float]) -> str:
        return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:.3f}"

    out = {"pass1_before": round(statistics.mean(agg("pass1", "before")), 4),
           "pass1_after": round(statistics.mean(agg("pass1", "after")), 4),
           "passk_before": round(statistics.mean(agg("passk", "before")), 4),
           "passk_after": round(statistics.mean(agg("passk", "after")), 4),
           "pass1_after_sd": round(statistics.stdev(agg("pass1", "after")), 4) if len(runs) > 1 else 0.0,
           "passk_after_sd": round(statistics.stdev(agg("passk", "after")), 4) if len(runs) > 1 else 0.0,
           "seeds": [{"seed": r["seed"], "pass1_before": r["before"]["pass1"], "pass1_after": r["after"]["pass1"],
                      "passk_before": r["before"]["passk"], "passk_after": r["after"]["passk"],
                      "sampled_pass_rate_first_step": r["pass_rate_first"],
                      "sampled_pass_rate_last_step": r["pass_rate_last"], "train_seconds": r["train_seconds"],
                      "rejected_steps": r["rejected"]} for r in runs]}
    out["text"] = (f"pass@1 {ms(agg('pass1', 'before'))} -> {ms(agg('pass1', 'after'))}; "
                   f"pass@k {ms(agg('passk', 'before'))} -> {ms(agg('passk', 'after'))}")
    return out


def learn(over: dict, seeds: list[int]) -> dict:
    from stephanie_ray.training.toy_arith import toy_actor

    t0 = time.perf_counter()
    cfg = _cfg(over)
    lc = cfg.logprob
    actor = toy_actor(lc, cfg.run.runs_path)  # built once (cached), before the pool forks
    build_s = time.perf_counter() - t0
    meta = json.loads((actor / "meta.json").read_text(encoding="utf-8"))
    print(f"actor {actor.name}: {meta.get('parameters')} parameters, warm-up {meta.get('warmup_steps')} steps "
          f"(loss {meta.get('warmup_loss')}); ready in {build_s:.1f} s", file=sys.stderr, flush=True)
    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        befores = dict(zip(seeds, pool.map(_before, [(over, s) for s in seeds])))
        jobs = [(over, m, s, befores[s]) for s in seeds for m in ("pacs", "rloo")]
        runs = []
        for r in pool.imap_unordered(_run, jobs):
            print(f"  {r['method']:<4} seed {r['seed']}: pass@1 {r['before']['pass1']:.3f} -> {r['after']['pass1']:.3f}, "
                  f"pass@{lc.eval_k} {r['before']['passk']:.3f} -> {r['after']['passk']:.3f}; sampled pass rate "
                  f"{r['pass_rate_first']:.3f} -> {r['pass_rate_last']:.3f}; {r['train_seconds']} s training, "
                  f"{r['gen_tokens_per_s']} generated tokens/s", file=sys.stderr, flush=True)
            runs.append(r)
        pool.close()  # let the workers exit on their own (terminate() leaves a semaphore to the resource tracker,
        pool.join()   # which then warns after the JSON line)
    runs.sort(key=lambda r: (r["method"], r["seed"]))
    res = {m: _summary([r for r in runs if r["method"] == m]) for m in ("pacs", "rloo")}
    for m in ("pacs", "rloo"):
        print(f"{m:<4} (mean ± sd over {len(seeds)} seeds): {res[m].pop('text')}", file=sys.stderr)
    d1 = res["pacs"]["pass1_after"] - res["pacs"]["pass1_before"]
    d2 = res["rloo"]["pass1_after"] - res["rloo"]["pass1_before"]
    print(f"pass@1 gain: PACS {d1 * 100:+.1f} points, RLOO {d2 * 100:+.1f} points (target: PACS >= +10)",
          file=sys.stderr)
    return {**res, "steps": lc.steps, "group_size": lc.group_size, "groups_per_step": lc.groups_per_step,
            "k": lc.eval_k, "eval_problems": lc.eval_problems, "digits": lc.toy_digits, "lr": lc.lr,
            "beta": cfg.pacs.beta, "temperature": lc.temperature, "warmup_steps": lc.warmup_steps,
            "actor": actor.name, "actor_parameters": meta.get("parameters"),
            "pacs_gain_pass1": round(d1, 4), "rloo_gain_pass1": round(d2, 4), "target_met": d1 >= 0.10,
            "wall_seconds": round(time.perf_counter() - t0, 1)}


def throughput(over: dict, steps: int) -> dict:
    from stephanie_ray.db import Database
    from stephanie_ray.training.logprob_trainer import train_logprob

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            cfg = _cfg({**over, "logprob.steps": steps, "logprob.workers": workers,
                        "logprob.cpus_per_worker": 1.0 if workers == 1 else 1.0, "logprob.checkpoint_every": steps,
                        "logprob.run_name": f"throughput-w{workers}", "logprob.storage_path": f"{tmp}/train",
                        "db.url": f"sqlite:///{tmp}/db.sqlite", "logprob.eval_problems": 20, "logprob.eval_k": 1})
            db = Database.from_config(cfg)
            r = train_logprob(cfg, db, Path(tmp) / f"run{workers}")
            db.dispose()
            out[f"workers_{workers}"] = {"samples_per_s": r.samples_per_s, "gen_tokens_per_s": r.gen_tokens_per_s,
                                         "seconds_per_step": r.seconds_per_step, "steps": r.steps}
            print(f"{workers} worker(s): {r.samples_per_s} samples/s, {r.gen_tokens_per_s} generated tokens/s, "
                  f"{r.seconds_per_step:.3f} s/step", file=sys.stderr, flush=True)
    return {"throughput": out, "group_size": cfg.logprob.group_size, "groups_per_step": cfg.logprob.groups_per_step}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, help="training steps (default: logprob.steps)")
    ap.add_argument("--throughput", action="store_true", help="1 and 2 Ray Train workers: samples/s, tokens/s")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from stephanie_ray.config import parse_override

    over = dict(parse_override(s) for s in args.set)
    if args.steps:
        over["logprob.steps"] = args.steps
    if args.throughput:
        res = throughput(over, args.steps or 6)
    else:
        res = learn(over, [int(s) for s in args.seeds.split(",")])
    print(json.dumps(res))


if __name__ == "__main__":
    main()
