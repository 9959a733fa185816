"""Load on the Serve endpoints (loopback only, bounded in requests and time).

    .venv/bin/python benchmarks/serve_load.py [--runs runs/serve_bench] [--seconds 6] [--max-requests 3000]
                                              [--malformed-total 10000] [--quick]

On a fresh clone it first trains a small critic on the bundled examples and builds their entity index in
``--runs`` (``stephanie_ray.serve.models.ensure_models``); later runs reuse the newest ones there. Then, on a
local Ray (``--cpus``, default 2) with one replica per application:

1. ``POST /verify`` (one item per request, closed-loop clients) at 1, 8 and 32 concurrent clients with
   server-side batching on (``@serve.batch``), then the same with batching off — switched through the
   deployment's ``user_config`` (a lightweight update: the replica is not restarted, which is measured too);
2. ``POST /entities/search`` at 8 clients;
3. ``--malformed-total`` requests (default 10,000) at 32 clients, 5% of them malformed (bad JSON, missing or
   blank fields, wrong types, unknown fields, too many items, an unknown model version, oversized bodies,
   empty queries): the count of 5xx (must be 0), of malformed requests not answered 4xx (must be 0) and of
   valid ones not answered 200.

Each level runs until ``--max-requests`` or ``--seconds``, whichever comes first (the mixed run until
``--mixed-seconds``). Serve's per-request access log is off (``serve.access_log=false``; ``--set
serve.access_log=true`` measures with it). The client (aiohttp, one
event loop) shares the machine's cores with the proxy and the replicas: its own CPU use is reported. The
last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PROMPTS = [
    "How do I sort a list of dictionaries by a key in Python?",
    "What is the difference between a process and a thread?",
    "Explain how a B-tree index speeds up a database query.",
    "Why does my React component render twice in development?",
    "How can I make a SQLite database safe for concurrent writers?",
    "What does the GIL mean for CPU-bound Python code?",
    "Write a haiku about merge sort.",
    "How should I structure retries for a flaky HTTP API?",
]
RESPONSES = [
    "Use sorted(items, key=lambda d: d['name']); pass reverse=True for descending order.",
    "A process has its own memory space; threads share the memory of the process they belong to.",
    "The B-tree keeps keys sorted in shallow pages, so a lookup reads a handful of pages instead of the table.",
    "StrictMode mounts components twice in development to surface side effects; production renders once.",
    "Open it in WAL mode, set a busy timeout and keep write transactions short.",
    "Only one thread runs Python bytecode at a time, so use processes for CPU-bound work.",
    "Halves split and fall / sorted pairs climb back together / order from the small.",
    "Retry idempotent calls with exponential backoff and jitter, and cap the total time spent.",
    "I don't know.",
    "no",
]
QUERIES = ["programming language", "database", "sorting algorithm", "Python library", "company", "file path",
           "web framework", "operating system"]


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))] * 1000, 1)


def _valid_verify(rng: random.Random) -> dict[str, Any]:
    return {"items": [{"prompt": rng.choice(PROMPTS), "response": rng.choice(RESPONSES)}]}


def _malformed(rng: random.Random, max_body: int, max_items: int) -> tuple[str, str, bytes | str, dict[str, str]]:
    """(kind, path, body, headers) of one malformed request."""
    j = {"content-type": "application/json"}
    kinds = [
        ("bad_json", "/verify", '{"items": [', j),
        ("not_object", "/verify", "[1, 2, 3]", j),
        ("missing_response", "/verify", json.dumps({"items": [{"prompt": "p"}]}), j),
        ("blank_response", "/verify", json.dumps({"items": [{"prompt": "p", "response": "   "}]}), j),
        ("wrong_type", "/verify", json.dumps({"items": [{"prompt": 1, "response": ["x"]}]}), j),
        ("unknown_field", "/verify", json.dumps({"items": [{"prompt": "p", "response": "r"}], "temperature": 1}), j),
        ("empty_items", "/verify", json.dumps({"items": []}), j),
        ("too_many_items", "/verify", json.dumps({"items": [{"prompt": "p", "response": "r"}] * (max_items + 1)}), j),
        ("unknown_version", "/verify", json.dumps({"items": [{"prompt": "p", "response": "r"}], "model_version": 9999}), j),
        ("bad_version", "/verify", json.dumps({"items": [{"prompt": "p", "response": "r"}], "model_version": "x"}), j),
        ("oversized_body", "/verify", b"{" + b" " * (max_body + 10) + b"}", j),
        ("not_json_type", "/verify", "prompt=p&response=r", {"content-type": "application/x-www-form-urlencoded"}),
        ("empty_query", "/entities/search", json.dumps({"query": "  "}), j),
        ("bad_k", "/entities/search", json.dumps({"query": "database", "k": 0}), j),
        ("bad_min_similarity", "/entities/search", json.dumps({"query": "database", "min_similarity": 7}), j),
    ]
    return rng.choice(kinds)


async def _closed_loop(base: str, clients: int, make: Any, seconds: float, max_requests: int,
                       method: str = "POST") -> dict[str, Any]:
    """``clients`` workers each sending one request after another until the budget is spent."""
    import aiohttp

    lat: list[float] = []
    statuses: dict[int, int] = {}
    sent = 0
    deadline = time.perf_counter() + seconds
    conn = aiohttp.TCPConnector(limit=clients, force_close=False)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=60)) as s:
        async def worker(k: int) -> None:
            nonlocal sent
            rng = random.Random(k)
            while sent < max_requests and time.perf_counter() < deadline:
                sent += 1
                path, payload = make(rng)
                t = time.perf_counter()
                async with s.request(method, base + path, json=payload) as r:
                    await r.read()
                    statuses[r.status] = statuses.get(r.status, 0) + 1
                lat.append(time.perf_counter() - t)

        cpu0, t0 = _cpu(), time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    return {"clients": clients, "requests": len(lat), "seconds": round(wall, 2),
            "rps": round(len(lat) / wall, 1), "p50_ms": _pct(lat, 0.50), "p99_ms": _pct(lat, 0.99),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "client_cpu_share": round(cpu / wall, 2)}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _mixed(base: str, total: int, clients: int, share: float, max_body: int, max_items: int,
                 seconds: float) -> dict[str, Any]:
    """``total`` requests, ``share`` of them malformed, within ``seconds``; every answer checked."""
    import aiohttp

    rng = random.Random(7)
    plan = []
    for i in range(total):
        if rng.random() < share:
            plan.append(_malformed(rng, max_body, max_items))
        elif rng.random() < 0.1:
            plan.append(("valid", "/entities/search", json.dumps({"query": rng.choice(QUERIES), "k": 5}),
                         {"content-type": "application/json"}))
        else:
            plan.append(("valid", "/verify", json.dumps(_valid_verify(rng)), {"content-type": "application/json"}))
    counts = {"valid": 0, "malformed": 0, "5xx": 0, "malformed_not_4xx": 0, "valid_not_200": 0, "errors": 0}
    by_kind: dict[str, dict[str, int]] = {}
    examples: list[str] = []
    it = iter(plan)
    t0 = time.perf_counter()
    deadline = t0 + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients),
                                     timeout=aiohttp.ClientTimeout(total=60)) as s:
        async def worker() -> None:
            for kind, path, body, headers in it:
                if time.perf_counter() > deadline:
                    counts["stopped_at_time_limit"] = 1
                    break
                try:
                    async with s.post(base + path, data=body, headers=headers) as r:
                        text = await r.text()
                        st = r.status
                except aiohttp.ClientError as exc:  # e.g. the server closing an oversized upload early
                    counts["errors"] += 1
                    examples.append(f"{kind}: {type(exc).__name__}: {exc}")
                    continue
                k = by_kind.setdefault(kind, {})
                k[str(st)] = k.get(str(st), 0) + 1
                if st >= 500:
                    counts["5xx"] += 1
                    examples.append(f"{kind} {path}: {st} {text[:200]}")
                if kind == "valid":
                    counts["valid"] += 1
                    if st != 200:
                        counts["valid_not_200"] += 1
                        examples.append(f"valid {path}: {st} {text[:200]}")
                else:
                    counts["malformed"] += 1
                    if not 400 <= st < 500:
                        counts["malformed_not_4xx"] += 1
                        examples.append(f"{kind}: {st} {text[:200]}")

        await asyncio.gather(*(worker() for _ in range(clients)))
    return {"requests": counts["valid"] + counts["malformed"] + counts["errors"], "planned": total, "clients": clients, "seconds": round(time.perf_counter() - t0, 1), **counts,
            "by_kind": by_kind, "examples": examples[:10]}


async def _wait_for(base: str, path: str, pred: Any, timeout: float = 120) -> float:
    import aiohttp

    t0 = time.perf_counter()
    async with aiohttp.ClientSession() as s:
        while True:
            try:
                async with s.get(base + path) as r:
                    if r.status == 200 and pred(await r.json()):
                        return time.perf_counter() - t0
            except aiohttp.ClientError:
                pass
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError(f"{path} did not become ready in {timeout} s")
            await asyncio.sleep(0.2)


async def _during(base: str, coro_fn: Any, seconds_max: float) -> dict[str, Any]:
    """Requests sent one after another while ``coro_fn`` runs: how many failed (the downtime)."""
    import aiohttp

    done = asyncio.Event()
    stats = {"requests": 0, "failed": 0}

    async def probe() -> None:
        rng = random.Random(3)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
            while not done.is_set():
                try:
                    async with s.post(base + "/verify", json=_valid_verify(rng)) as r:
                        await r.read()
                        stats["failed"] += r.status != 200
                except aiohttp.ClientError:
                    stats["failed"] += 1
                stats["requests"] += 1

    task = asyncio.create_task(probe())
    try:
        await asyncio.wait_for(coro_fn(), seconds_max)
    finally:
        done.set()
        await task
    return stats


def _replica_names() -> list[str]:
    import ray

    return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                  if a["namespace"] == "serve" and a["name"].startswith("SERVE_REPLICA::verifier#"))


def _model_times(cfg: Any) -> dict[str, float]:
    """ms per call of the critic itself (no Serve, no HTTP) for 1 and 32 items: what the replica spends."""
    import torch

    from stephanie_ray.serve.service import VerifierService

    torch.set_num_threads(1)  # as in a replica reserving under one CPU (Ray sets OMP_NUM_THREADS=1)
    svc = VerifierService.from_config(cfg)
    rng = random.Random(0)
    out = {}
    for n, reps in ((1, 30), (32, 5)):
        items = [(rng.choice(PROMPTS), rng.choice(RESPONSES)) for _ in range(n)]
        svc.verify(items)
        t = time.perf_counter()
        for _ in range(reps):
            svc.verify(items)
        out[f"items_{n}"] = round((time.perf_counter() - t) / reps * 1000, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", default=str(REPO / "runs" / "serve_bench"), help="runs folder (models made or reused)")
    ap.add_argument("--seconds", type=float, default=6.0, help="time budget per load level")
    ap.add_argument("--max-requests", type=int, default=3000, help="request budget per load level")
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--malformed-total", type=int, default=10_000)
    ap.add_argument("--malformed-share", type=float, default=0.05)
    ap.add_argument("--mixed-seconds", type=float, default=600, help="time limit of the mixed run")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    ap.add_argument("--replica-cpus", type=float, default=0.5, help="serve.num_cpus (both apps fit on 2 CPUs)")
    ap.add_argument("--quick", action="store_true", help="2 s per level, 1,000 mixed requests")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="K=V", help="config override")
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.malformed_total = 2.0, 1000
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    logging.basicConfig(level=logging.WARNING)

    from stephanie_ray.config import load_config, parse_override
    from stephanie_ray.ray_utils import ensure_ray, shutdown_ray
    from stephanie_ray.serve.cli import start_serve
    from stephanie_ray.serve.models import ensure_models

    over = {"run.runs_dir": str(Path(args.runs).resolve()), "run.progress": False, "ray.num_cpus": args.cpus,
            "ingest.parallel": False, "scoring.parallel": False, "ner.parallel": False, "critic.steps": 50,
            "critic.checkpoint_every": 50, "critic.cpus_per_worker": 0.5, "serve.port": args.port,
            "serve.host": "127.0.0.1", "serve.num_cpus": args.replica_cpus, "serve.min_replicas": 1,
            "serve.max_replicas": 1, "serve.token_env": "", "serve.access_log": False}
    over.update(dict(parse_override(kv) for kv in args.sets))
    cfg = load_config(None, over, env={})
    t_start = time.perf_counter()
    out: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "ray_cpus": args.cpus,
                                       "load_avg_start": [round(x, 2) for x in os.getloadavg()]}}
    ensure_ray(cfg.ray)
    t0 = time.perf_counter()
    out["models"] = ensure_models(cfg)
    out["models"]["seconds"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    info = start_serve(cfg)
    out["serve_start_s"] = round(time.perf_counter() - t0, 1)
    base = f"http://127.0.0.1:{cfg.serve.port}"
    levels = [int(c) for c in args.clients.split(",") if c.strip()]
    mk_verify = lambda rng: ("/verify", _valid_verify(rng))  # noqa: E731
    try:
        asyncio.run(_closed_loop(base, 4, mk_verify, 2.0, 100))  # warm-up: tokenizer, first batches
        out["verify"] = {"batched": [], "unbatched": []}
        for mode in ("batched", "unbatched"):
            if mode == "unbatched":  # user_config change: a lightweight update, the replica stays
                from ray import serve

                from stephanie_ray.serve.deployments import build_verifier

                cfg.serve.batching = False

                async def switch() -> None:
                    await asyncio.to_thread(serve.run, build_verifier(cfg=cfg), name="verifier", route_prefix="/")
                    await _wait_for(base, "/healthz", lambda d: d["details"]["batching"] is False)

                before = _replica_names()
                out["reconfigure_to_unbatched"] = asyncio.run(_during(base, switch, 120))
                out["reconfigure_to_unbatched"]["replica_restarted"] = _replica_names() != before
                asyncio.run(_closed_loop(base, 4, mk_verify, 1.0, 50))
            for c in levels:
                r = asyncio.run(_closed_loop(base, c, mk_verify, args.seconds, args.max_requests))
                out["verify"][mode].append(r)
                print(f"/verify {mode:<9} clients {c:>2}: {r['rps']:>7} req/s  p50 {r['p50_ms']:>6} ms  "
                      f"p99 {r['p99_ms']:>6} ms  ({r['requests']} requests, statuses {r['statuses']}, "
                      f"client CPU {r['client_cpu_share']})", flush=True)
        b = {r["clients"]: r for r in out["verify"]["batched"]}
        u = {r["clients"]: r for r in out["verify"]["unbatched"]}
        top = max(levels)
        out["batching_speedup_at_%d" % top] = round(b[top]["rps"] / u[top]["rps"], 2) if u[top]["rps"] else None
        out["p99_ms_batched_at_%d" % top] = b[top]["p99_ms"]

        cfg.serve.batching = True  # back on for the rest
        from ray import serve

        from stephanie_ray.serve.deployments import build_verifier

        serve.run(build_verifier(cfg=cfg), name="verifier", route_prefix="/")
        asyncio.run(_wait_for(base, "/healthz", lambda d: d["details"]["batching"] is True))

        mk_search = lambda rng: ("/entities/search", {"query": rng.choice(QUERIES), "k": 10})  # noqa: E731
        asyncio.run(_closed_loop(base, 2, mk_search, 1.0, 20))
        r = asyncio.run(_closed_loop(base, 8, mk_search, args.seconds, args.max_requests))
        out["entities_search_8"] = r
        print(f"/entities/search clients  8: {r['rps']:>7} req/s  p50 {r['p50_ms']:>6} ms  p99 {r['p99_ms']:>6} ms  "
              f"({r['requests']} requests, statuses {r['statuses']})", flush=True)

        # the floor: a route that does no work (GET /healthz), i.e. the proxy -> replica path alone
        r = asyncio.run(_closed_loop(base, top, lambda rng: ("/healthz", None), args.seconds, args.max_requests,
                                     method="GET"))
        out["healthz_%d" % top] = r
        print(f"/healthz (no work) clients {top}: {r['rps']:>7} req/s  p50 {r['p50_ms']:>6} ms  "
              f"p99 {r['p99_ms']:>6} ms", flush=True)

        m = asyncio.run(_mixed(base, args.malformed_total, 32, args.malformed_share, cfg.serve.max_body_bytes,
                               cfg.serve.max_items, args.mixed_seconds))
        out["malformed"] = m
        print(f"mixed: {m['requests']} requests ({m['malformed']} malformed) in {m['seconds']} s: 5xx {m['5xx']}, "
              f"malformed not 4xx {m['malformed_not_4xx']}, valid not 200 {m['valid_not_200']}, client errors "
              f"{m['errors']}", flush=True)
    finally:
        from ray import serve

        serve.shutdown()
        shutdown_ray()
    out["model_ms"] = _model_times(cfg)
    print(f"model alone (this process, 1 torch thread): {out['model_ms']}", flush=True)
    out["serve"] = {"urls": info["urls"], "batch": {"max_batch_size": cfg.serve.max_batch_size,
                                                    "batch_wait_timeout_s": cfg.serve.batch_wait_timeout_s},
                    "replica_cpus": args.replica_cpus}
    out["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    out["seconds"] = round(time.perf_counter() - t_start, 1)
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
