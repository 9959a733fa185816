"""Both applications on a real local Ray Serve, with a critic trained on the bundled examples and their entity
index (made once for the module by ``ensure_models``: import, CaseBooks, scoring, prepare, Ray Train, NER).

The module deploys with a bearer token set (every request below carries it, one test checks that requests
without it are refused), one replica per application (0.25 CPU each: Ray has 2 here), and shuts Serve down at
the end so that later Ray tests in the session find the cluster as they expect it.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import shutil
import socket
import threading
import time

import pytest
import requests

pytestmark = [pytest.mark.ray, pytest.mark.slow]

TOKEN = "test-token-0f3a"
ITEMS = [("How do I sort a list of dictionaries by a key in Python?", "Use sorted(items, key=lambda d: d['k'])."),
         ("What is a B-tree?", "A balanced search tree whose nodes hold many keys."),
         ("Can you help me debug this?", "no"),
         ("Explain the GIL.", "Only one thread runs Python bytecode at a time.")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(ray_local, tmp_path_factory):
    from ray import serve

    from stephanie_ray.config import load_config
    from stephanie_ray.serve.cli import start_serve
    from stephanie_ray.serve.models import ensure_models

    d = tmp_path_factory.mktemp("serve")
    cfg = load_config(None, {"run.runs_dir": str(d / "runs"), "run.progress": False, "ray.num_cpus": 2,
                             "ingest.parallel": False, "scoring.parallel": False, "ner.parallel": False,
                             "ner.epochs": 2, "ner.n_trees": 5, "critic.steps": 10, "critic.checkpoint_every": 10,
                             "critic.hidden": 16, "critic.cpus_per_worker": 0.5, "serve.port": _free_port(),
                             "serve.num_cpus": 0.25, "serve.min_replicas": 1, "serve.max_replicas": 1,
                             "serve.max_items": 8, "serve.max_body_bytes": 20_000,
                             "serve.token_env": "STEPHANIE_TEST_SERVE_TOKEN"}, env={})
    made = ensure_models(cfg)
    assert made["critic_version"] == "1"
    os.environ["STEPHANIE_TEST_SERVE_TOKEN"] = TOKEN  # read where the applications are built (here)
    try:
        info = start_serve(cfg)
    finally:
        del os.environ["STEPHANIE_TEST_SERVE_TOKEN"]
    assert info["token_required"]
    yield cfg, f"http://127.0.0.1:{cfg.serve.port}"
    serve.shutdown()


def _post(base: str, path: str, body=None, token: str | None = TOKEN, **kw) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(base + path, json=body, headers={**headers, **kw.pop("headers", {})}, timeout=60, **kw)


def _get(base: str, path: str, token: str | None = TOKEN) -> requests.Response:
    return requests.get(base + path, headers={"Authorization": f"Bearer {token}"} if token else {}, timeout=60)


def _direct(cfg, pairs, version: str = "1"):
    from stephanie_ray.serve.service import VerifierService
    from stephanie_ray.training.critic import load_critic
    from stephanie_ray.training.critic_verifier import CriticVerifier
    from stephanie_ray.training.verifiers import VerifyItem

    _, path = VerifierService(cfg.db_url).resolve(version)
    return CriticVerifier(load_critic(path), cfg.verifier.critic_threshold, version).verify_batch(
        [VerifyItem(p, r) for p, r in pairs])


def test_both_endpoints_answer_like_the_library(served):
    from stephanie_ray.db import Database
    from stephanie_ray.ner.graph import entity_report
    from stephanie_ray.ner.retriever import retrieve_entities

    cfg, base = served
    assert _get(base, "/healthz").json()["details"]["model_version"] == "1"
    assert _get(base, "/entities/healthz").json()["details"]["index_items"] > 0
    direct = _direct(cfg, ITEMS)
    r = _post(base, "/verify", {"items": [{"prompt": p, "response": a} for p, a in ITEMS]})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model_version"] == "1" and out["threshold"] == 0.5
    assert out["scores"] == pytest.approx([v.p_good for v in direct], abs=1e-6)
    assert out["labels"] == [v.label for v in direct]
    # single requests at once: batched on the server (@serve.batch), each still gets its own answer
    with cf.ThreadPoolExecutor(8) as ex:
        singles = list(ex.map(lambda i: _post(base, "/verify", {"items": [{"prompt": ITEMS[i % 4][0],
                                                                          "response": ITEMS[i % 4][1]}]}), range(16)))
    for i, resp in enumerate(singles):
        assert resp.status_code == 200 and resp.json()["scores"] == pytest.approx([direct[i % 4].p_good], abs=1e-6)

    r = _post(base, "/entities/search", {"query": "programming language", "k": 5})
    assert r.status_code == 200, r.text
    hits = r.json()["results"]
    assert hits == retrieve_entities("programming language", 5, cfg=cfg) and r.json()["count"] == len(hits) > 0
    name = hits[0]["entity_text"]
    g = _get(base, f"/entities/{requests.utils.quote(name, safe='')}/graph?limit=5")
    assert g.status_code == 200, g.text
    db = Database.open(cfg.db_url)
    with db.session() as s:
        assert g.json() == entity_report(s, name, limit=5)
    db.dispose()


def test_bad_requests_are_4xx_with_a_clear_message(served):
    _, base = served
    item = {"prompt": "p", "response": "r"}
    cases = [
        ("/verify", b'{"items": [', 422, "body: not valid JSON"),
        ("/verify", {"items": [{"prompt": "p"}]}, 422, "items[0].response: Field required"),
        ("/verify", {"items": [{"prompt": "p", "response": "  "}]}, 422, "items[0].response: must not be blank"),
        ("/verify", {"items": []}, 422, "items: "),
        ("/verify", {"items": [item], "temperature": 1}, 422, "temperature: unknown field"),
        ("/verify", {"items": [item], "model_version": 99}, 404, "model_version: no critic model version 99"),
        ("/verify", {"items": [item] * 9}, 413, "items: 9 items, at most 8"),
        ("/verify", {"items": [{"prompt": "p" * 30_000, "response": "r"}]}, 413, "the body has"),
        ("/entities/search", {"query": "   "}, 422, "query: must not be empty"),
        ("/entities/search", {"query": "x", "k": 0}, 422, "k: "),
        ("/entities/search", {"query": "x", "k": 101}, 422, "k: at most 100"),
    ]
    for path, body, status, msg in cases:
        if isinstance(body, bytes):
            r = _post(base, path, data=body, headers={"content-type": "application/json"})
        else:
            r = _post(base, path, body)
        assert r.status_code == status and r.json()["detail"].startswith(msg), (path, body if len(str(body)) < 200
                                                                                else "...", r.status_code, r.text)
    r = _get(base, "/entities/no-such-entity-zz/graph")
    assert r.status_code == 404 and r.json()["detail"].startswith("name: no entity named")


def test_every_route_wants_the_token(served):
    _, base = served
    for path in ("/healthz", "/docs", "/entities/healthz", "/entities/docs"):
        assert _get(base, path, token=None).status_code == 401
        assert _get(base, path, token="wrong").status_code == 403
    r = _post(base, "/verify", {"items": [{"prompt": "p", "response": "r"}]}, token=None)
    assert r.status_code == 401 and "bearer token" in r.json()["detail"]
    assert _post(base, "/entities/search", {"query": "x"}, token="wrong").status_code == 403
    assert _get(base, "/docs").status_code == 200  # OpenAPI docs, with the token


def _hammer(base: str, stop: threading.Event, out: list) -> None:
    while not stop.is_set():
        try:
            r = _post(base, "/verify", {"items": [{"prompt": ITEMS[0][0], "response": ITEMS[0][1]}]})
            out.append((time.monotonic(), r.status_code, r.json().get("model_version") if r.ok else r.text[:200]))
        except requests.RequestException as exc:
            out.append((time.monotonic(), 0, str(exc)[:200]))
        time.sleep(0.02)


def _replicas(app: str = "verifier", deployment: str = "Verifier") -> list[str]:
    """Names of the deployment's live replica actors (named actors in Serve's namespace; the state API would
    need the dashboard, which the session's Ray does not start)."""
    import ray

    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == "serve"]
    return sorted(n for n in names if n.startswith("SERVE_REPLICA::") and f"{app}#{deployment}#" in n)


def test_a_new_model_version_is_picked_up_without_downtime(served):
    """user_config names version 2 (a copy of 1): reconfigure loads it beside 1 and swaps; no request fails."""
    from ray import serve

    from stephanie_ray.db import Database
    from stephanie_ray.db.models import ModelVersion
    from stephanie_ray.serve.deployments import build_verifier
    from stephanie_ray.serve.service import VerifierService

    cfg, base = served
    _, path1 = VerifierService(cfg.db_url).resolve("1")
    path2 = path1.parent / "critic_v0002"
    shutil.copytree(path1, path2)
    db = Database.open(cfg.db_url)
    with db.session() as s:
        s.add(ModelVersion(kind="pacs_critic", version=2, path=str(path2), run_name="copy", steps=1, backbone="frozen",
                           encoder="", metrics={}, config={}))
    db.dispose()
    before = _replicas()
    stop, seen = threading.Event(), []
    t = threading.Thread(target=_hammer, args=(base, stop, seen))
    t.start()
    try:
        time.sleep(1.0)
        cfg.serve.verifier_model = "2"
        os.environ["STEPHANIE_TEST_SERVE_TOKEN"] = TOKEN  # the same token as at the start: same constructor args
        try:
            serve.run(build_verifier(cfg=cfg), name="verifier", route_prefix="/")  # only user_config differs
        finally:
            del os.environ["STEPHANIE_TEST_SERVE_TOKEN"]
        deadline = time.monotonic() + 120
        while not any(v == "2" for _, _, v in seen[-3:]) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        stop.set()
        t.join()
        cfg.serve.verifier_model = ""
    assert [s for s in seen if s[1] != 200] == []  # no downtime
    versions = [v for _, _, v in seen]
    assert versions[0] == "1" and versions[-1] == "2" and versions.index("2") > 0
    assert versions[versions.index("2"):] == ["2"] * (len(versions) - versions.index("2"))  # no flapping back
    assert _get(base, "/healthz").json()["details"]["loaded_versions"] == ["1", "2"]
    assert _replicas() == before  # reconfigured in place, not restarted
    # a request may still name the other version
    assert _post(base, "/verify", {"items": [{"prompt": "p", "response": "r"}], "model_version": 1}).json()[
        "model_version"] == "1"


def test_a_killed_replica_is_replaced_and_requests_succeed_again(served):
    import ray

    _, base = served
    alive = _replicas()
    assert len(alive) == 1
    stop, seen = threading.Event(), []
    t = threading.Thread(target=_hammer, args=(base, stop, seen))
    t.start()
    try:
        time.sleep(1.0)
        killed_at = time.monotonic()
        ray.kill(ray.get_actor(alive[0], namespace="serve"), no_restart=True)
        deadline = killed_at + 150
        while time.monotonic() < deadline:
            recent = [s for s in seen if s[0] > killed_at]
            if len(recent) >= 5 and all(s[1] == 200 for s in recent[-5:]):
                break
            time.sleep(0.5)
    finally:
        stop.set()
        t.join()
    after = [s for s in seen if s[0] > killed_at]
    assert len(after) >= 5 and all(s[1] == 200 for s in after[-5:]), after[-10:]
    failed = [s for s in after if s[1] != 200]
    # during the gap: server-side errors, or the proxy's 408 for a request that waited serve.request_timeout_s
    # for a replica; never a 4xx blaming the request
    assert all(s[1] >= 500 or s[1] in (0, 408) for s in failed), sorted({(s[1], s[2][:120]) for s in failed})
    new = _replicas()
    assert len(new) == 1 and new != alive
    r = _post(base, "/verify", {"items": [{"prompt": p, "response": a} for p, a in ITEMS]})
    assert r.status_code == 200 and len(r.json()["scores"]) == 4
