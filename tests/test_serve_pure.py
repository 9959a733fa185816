"""The Serve layer without Ray: VerifierService and EntityService (the classes the deployments hold), the
guard (token, body size) and the error handlers on a plain FastAPI app, the ServeConfig section,
serve/config.yaml against Ray Serve's schema, the builders' options, `stephanie serve` refusing early.

No `from __future__ import annotations`: FastAPI must resolve the local request model of the test app."""

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from stephanie_ray.errors import UserError
from stephanie_ray.serve.service import EntityService, NotFound, VerifierService

REPO = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------------ helpers
def _register(db_url: str, version: int, path: Path) -> None:
    from stephanie_ray.db import Database
    from stephanie_ray.db.migrate import upgrade
    from stephanie_ray.db.models import ModelVersion

    db = Database.open(db_url)
    upgrade(db.engine)
    with db.session() as s:
        s.add(ModelVersion(kind="pacs_critic", version=version, path=str(path), run_name=f"r{version}",
                           steps=version, backbone="frozen", encoder="", metrics={}, config={}))
    db.dispose()


class FakeCritic:
    """Stands in for a LoadedCritic: P(good) from the response length; counts its calls."""

    calibrator = None

    def __init__(self, path: Path, offset: float):
        self.meta = {"version": path.name}
        self.offset, self.calls = offset, []

    def p_good(self, prompts, responses):
        self.calls.append(len(responses))
        return np.clip(np.array([len(r) / 100 + self.offset for r in responses]), 0, 1)


@pytest.fixture
def fake_versions(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    for v in (1, 2, 3):
        (tmp_path / f"v{v}").mkdir()
        _register(url, v, tmp_path / f"v{v}")
    loaded: dict[str, FakeCritic] = {}

    def loader(path: Path) -> FakeCritic:
        loaded[path.name] = FakeCritic(path, offset=0.1 * int(path.name[1:]))
        return loaded[path.name]

    return url, loader, loaded


# ------------------------------------------------------------------------------------------ verifier
def test_verifier_service_versions_batches_and_errors(fake_versions):
    url, loader, loaded = fake_versions
    svc = VerifierService(url, threshold=0.5, max_loaded=2, loader=loader)
    assert svc.set_default("") == "3"  # the newest
    out = svc.verify([("p", "x" * 10), ("p", "x" * 70, "earlier turns")])
    assert out.model_version == "3" and out.threshold == 0.5
    assert out.scores == pytest.approx([0.4, 1.0]) and out.labels == [0, 1]

    # several requests, two versions: one model call per version, results back in request order
    res = svc.verify_many([([("p", "a" * 20)], None), ([("p", "b" * 30)], 1), ([("p", "c" * 40), ("p", "d")], None),
                           ([("p", "e")], 99), ([("p", "f")], 0)])
    assert [r.model_version if not isinstance(r, Exception) else type(r).__name__ for r in res] == \
        ["3", "1", "3", "NotFound", "UserError"]
    assert "no critic model version 99" in str(res[3]) and "model_version must be >= 1" in str(res[4])
    assert loaded["v3"].calls == [2, 3] and loaded["v1"].calls == [1]  # 1 + 2 items of v3 in one call
    assert res[2].scores == pytest.approx([0.7, 0.31])

    # at most max_loaded versions stay loaded, never dropping the served one
    svc.verify([("p", "z")], 2)
    assert sorted(svc.loaded_versions()) == ["2", "3"]
    # a new default is loaded first, then swapped in; the threshold applies to every loaded version
    assert svc.set_default(1) == "1" and svc.model_version == "1"
    svc.set_threshold(0.95)
    assert svc.verify([("p", "x" * 80)]).labels == [0]
    with pytest.raises(UserError, match="threshold"):
        svc.set_threshold(2)
    with pytest.raises(NotFound, match="no critic model version 7"):
        svc.set_default("7")
    assert svc.model_version == "1"  # a failed switch keeps the served version
    # blank responses are the client's error, named by index
    with pytest.raises(UserError, match=r"items\[1\]: empty response"):
        svc.verify([("p", "ok"), ("p", "  ")])


def test_no_critic_yet_is_a_clear_error(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    _register(url, 1, tmp_path / "v1")  # creates the schema
    from stephanie_ray.db import Database
    from stephanie_ray.db.models import ModelVersion

    db = Database.open(url)
    with db.session() as s:
        s.query(ModelVersion).delete()
    db.dispose()
    with pytest.raises(NotFound, match="no trained critic yet"):
        VerifierService(url).set_default("")


@pytest.mark.slow
def test_verifier_service_scores_equal_the_critic_verifier(tmp_path):
    """A real (untrained) model version: the service's scores are CriticVerifier's, to the last digit."""
    import torch

    from stephanie_ray.training.calibration import PlattScaler
    from stephanie_ray.training.critic import FrozenCritic, load_critic, save_version
    from stephanie_ray.training.critic_verifier import CriticVerifier
    from stephanie_ray.training.verifiers import VerifyItem

    torch.manual_seed(0)
    cal = PlattScaler().fit(np.array([-1.0, 0.0, 1.0, 2.0]), np.array([0, 0, 1, 1]))
    path = save_version(tmp_path / "critic_v0001", FrozenCritic(384, 8),
                        {"backbone": "frozen", "dim": 384, "hidden": 8, "max_length": 64, "encoder_source": "",
                         "version": 1}, cal)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    _register(url, 1, path)
    pairs = [("How do I sort a list?", "Use sorted()."), ("Wie koche ich Reis?", "Mit Wasser, 20 Minuten."),
             ("2+2?", "5")]
    svc = VerifierService(url, threshold=0.5)
    assert svc.set_default(None) == "1"
    out = svc.verify(pairs)
    direct = CriticVerifier(load_critic(path), 0.5, "1").verify_batch([VerifyItem(p, r) for p, r in pairs])
    assert out.scores == [v.p_good for v in direct] and out.labels == [v.label for v in direct]


# ------------------------------------------------------------------------------------------ entities
@pytest.fixture(scope="module")
def ner_indexed(tmp_path_factory):
    """The examples imported, built into CaseBooks and indexed in this process (no Ray)."""
    from stephanie_ray.casebooks.build import build_casebooks
    from stephanie_ray.config import load_config
    from stephanie_ray.db import Database
    from stephanie_ray.db.migrate import upgrade
    from stephanie_ray.ingest.importer import run_import
    from stephanie_ray.ner.stage import run_ner_index

    d = tmp_path_factory.mktemp("ner")
    cfg = load_config(None, {"run.runs_dir": str(d / "runs"), "db.url": f"sqlite:///{d / 'db.sqlite'}",
                             "run.progress": False, "ingest.parallel": False, "ner.parallel": False,
                             "ner.epochs": 2, "ner.n_trees": 5}, env={})
    db = Database.open(cfg.db_url)
    upgrade(db.engine)
    assert run_import(cfg, db, [str(REPO / "examples")]).ok
    build_casebooks(cfg, db, mode="turn", group_by="conversation")
    run_ner_index(cfg, db)
    db.dispose()
    return cfg


@pytest.mark.slow
def test_entity_service_search_graph_and_reload(ner_indexed):
    from stephanie_ray.db import Database
    from stephanie_ray.ner.graph import entity_report
    from stephanie_ray.ner.retriever import retrieve_entities

    cfg = ner_indexed
    svc = EntityService(cfg, reload_check_s=0.0)
    hits = svc.search("programming language", k=5)
    assert hits == retrieve_entities("programming language", 5, cfg=copy.deepcopy(cfg))
    assert 0 < len(hits) <= 5 and svc.info()["index_items"] > 0
    name = hits[0]["entity_text"]
    db = Database.open(cfg.db_url)
    with db.session() as s:
        assert svc.graph(name, 5) == entity_report(s, name, limit=5)
    db.dispose()
    with pytest.raises(NotFound, match="no entity named"):
        svc.graph("no-such-entity-zz")
    for bad in ("", "   "):
        with pytest.raises(UserError, match="must not be empty"):
            svc.search(bad)
    with pytest.raises(UserError, match="k must be"):
        svc.search("x", k=0)
    # a CURRENT pointing at a broken build: the service keeps serving the one it has
    current = Path(cfg.ner.resolved_dir(cfg.run)) / "index" / "CURRENT"
    good = current.read_text()
    current.write_text("b-missing\n")
    try:
        assert svc.search("programming language", k=5) == hits
    finally:
        current.write_text(good)
    svc.close()


# ------------------------------------------------------------------------------------------ HTTP guard
@pytest.fixture
def client():
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from pydantic import BaseModel

    from stephanie_ray.serve.api import Guard, install_handlers, set_guard, token_digest

    app = install_handlers(FastAPI(), "test")

    class Body(BaseModel):
        n: int

    @app.post("/echo")
    def echo(body: Body) -> dict:
        if body.n == 1:
            raise UserError("n must not be 1")
        if body.n == 2:
            raise NotFound("no such n")
        if body.n == 3:
            raise RuntimeError("a bug")
        return {"n": body.n}

    set_guard("test", Guard(token_digest("s3cret"), max_body_bytes=100))
    yield TestClient(app, raise_server_exceptions=False)
    set_guard("test", Guard())


def test_token_is_required_on_every_route(client):
    ok = {"Authorization": "Bearer s3cret"}
    r = client.post("/echo", json={"n": 5})
    assert r.status_code == 401 and "bearer token is required" in r.json()["detail"]
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert client.post("/echo", json={"n": 5}, headers={"Authorization": "Bearer nope"}).status_code == 403
    assert client.post("/echo", json={"n": 5}, headers={"Authorization": "Basic s3cret"}).status_code == 401
    assert client.get("/docs").status_code == 401 and client.get("/openapi.json").status_code == 401
    # the token is checked before the body is parsed: no token + bad body is still 401
    assert client.post("/echo", content=b"{nope").status_code == 401
    assert client.post("/echo", json={"n": 5}, headers=ok).json() == {"n": 5}
    assert client.get("/docs", headers=ok).status_code == 200


def test_errors_are_4xx_naming_the_field_and_bugs_are_500(client):
    h = {"Authorization": "Bearer s3cret"}
    r = client.post("/echo", content=b'{"n": ', headers={**h, "content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"].startswith("body: not valid JSON")
    r = client.post("/echo", json={"n": "many"}, headers=h)
    assert r.status_code == 422 and r.json()["detail"].startswith("n: ") and r.json()["errors"][0]["field"] == "n"
    r = client.post("/echo", json={}, headers=h)
    assert r.status_code == 422 and r.json()["detail"] == "n: Field required"
    r = client.post("/echo", json=[1], headers=h)
    assert r.status_code == 422 and r.json()["detail"].startswith("body:")
    assert client.post("/echo", json={"n": 1}, headers=h).json()["detail"] == "n must not be 1"
    assert client.post("/echo", json={"n": 1}, headers=h).status_code == 400
    assert client.post("/echo", json={"n": 2}, headers=h).status_code == 404
    r = client.post("/echo", json={"n": 3}, headers=h)
    assert r.status_code == 500 and "a bug" not in r.text  # no internals to the client


def test_oversized_bodies_are_413_before_parsing(client):
    h = {"Authorization": "Bearer s3cret", "content-type": "application/json"}
    big = b'{"n": 1' + b" " * 200 + b"}"
    r = client.post("/echo", content=big, headers=h)
    assert r.status_code == 413 and "at most 100" in r.json()["detail"]

    def chunks():  # no Content-Length: counted while read
        yield b'{"n": 4'
        yield b" " * 200
        yield b"}"

    r = client.post("/echo", content=chunks(), headers=h)
    assert r.status_code == 413

    def small():
        yield b'{"n": '
        yield b"4}"

    assert client.post("/echo", content=small(), headers=h).json() == {"n": 4}


def test_request_models_name_the_field():
    from pydantic import ValidationError

    from stephanie_ray.serve.api import SearchRequest, VerifyRequest

    assert VerifyRequest.model_validate({"items": [{"prompt": "", "response": "r"}]}).model_version is None
    for body, field in [({"items": []}, "items"), ({"items": [{"prompt": "p"}]}, "response"),
                        ({"items": [{"prompt": "p", "response": " "}]}, "response"),
                        ({"items": [{"prompt": "p", "response": "r"}], "model_version": 0}, "model_version"),
                        ({"items": [{"prompt": "p", "response": "r", "extra": 1}]}, "extra")]:
        with pytest.raises(ValidationError, match=field):
            VerifyRequest.model_validate(body)
    for body, field in [({"query": ""}, "query"), ({"query": "x", "k": 0}, "k"),
                        ({"query": "x", "min_similarity": 2}, "min_similarity")]:
        with pytest.raises(ValidationError, match=field):
            SearchRequest.model_validate(body)


# ------------------------------------------------------------------------------------------ config
def test_serve_config_defaults_and_checks():
    from stephanie_ray.config import ConfigError, load_config

    s = load_config(None, env={}).serve
    assert s.host == "127.0.0.1" and s.token_env == "STEPHANIE_SERVE_TOKEN" and s.max_body_bytes == 1 << 20
    for bad in ({"serve.port": 0}, {"serve.max_items": 0}, {"serve.min_replicas": 3},
                {"serve.entities_route_prefix": "/"}, {"serve.token_env": "A B"}):
        with pytest.raises(ConfigError, match="serve."):
            load_config(None, bad, env={})


def test_config_yaml_fits_serve_and_the_code(tmp_path):
    from ray.serve.schema import ServeDeploySchema

    from stephanie_ray.config import load_config
    from stephanie_ray.serve import deployments as d

    conf = ServeDeploySchema.model_validate(yaml.safe_load((REPO / "serve" / "config.yaml").read_text()))
    assert conf.http_options.host == "127.0.0.1"
    apps = {a.name: a for a in conf.applications}
    assert apps["verifier"].route_prefix == "/" and apps["entities"].route_prefix == "/entities"
    cfg = load_config(None, {"run.runs_dir": str(tmp_path)}, env={})
    for name, builder, dep in (("verifier", d.build_verifier, d.VerifierDeployment),
                               ("entities", d.build_entities, d.EntitiesDeployment)):
        module, func = apps[name].import_path.split(":")
        assert getattr(__import__(module, fromlist=[func]), func) is builder
        (dconf,) = apps[name].deployments
        assert dconf.name == dep.name
        opts = d.deployment_options(cfg, name)
        assert set(opts["autoscaling_config"]) <= set(dconf.autoscaling_config)
        if name == "verifier":  # every user_config key of the file is one reconfigure() takes, and vice versa
            assert set(dconf.user_config) == set(opts["user_config"])


def test_model_version_and_batching_changes_keep_the_constructor_arguments(tmp_path, monkeypatch):
    """What makes a new model version a lightweight update: only user_config differs between the two builds."""
    from stephanie_ray.config import load_config
    from stephanie_ray.serve import deployments as d

    monkeypatch.delenv("STEPHANIE_SERVE_TOKEN", raising=False)
    a = d.resolve_config({"set": {"run.runs_dir": str(tmp_path)}})
    b = d.resolve_config({"set": {"run.runs_dir": str(tmp_path), "serve.batching": False,
                                  "verifier.critic_threshold": 0.7}, "model_version": 4})
    assert b.serve.verifier_model == "4" and Path(a.run.runs_dir).is_absolute() and a.db.url.startswith("sqlite:///")
    assert d._settings(a, "verifier") == d._settings(b, "verifier")
    assert d.build_verifier(cfg=a)._bound_deployment._version == d.build_verifier(cfg=b)._bound_deployment._version
    assert d.build_entities(cfg=a)._bound_deployment._version != d.build_verifier(cfg=a)._bound_deployment._version
    ua, ub = d.deployment_options(a, "verifier")["user_config"], d.deployment_options(b, "verifier")["user_config"]
    assert ua["model_version"] == "" and ub == {**ua, "model_version": "4", "batching": False, "threshold": 0.7}
    monkeypatch.setenv("STEPHANIE_SERVE_TOKEN", "t0k")
    s = d._settings(a, "entities")
    assert s["token_sha256"] and "t0k" not in repr(s)  # only the digest travels
    with pytest.raises(UserError, match="unknown application argument"):
        d.resolve_config({"nope": 1})
    assert load_config(None, env={}).serve.verifier_model == ""


def test_stephanie_serve_refuses_early_without_a_critic(tmp_path, capsys):
    from stephanie_ray.cli import main

    rc = main(["serve", "--set", f"run.runs_dir={tmp_path}", "--detach"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err == ["stephanie: error: no trained critic yet (stephanie train --mode critic)"]
