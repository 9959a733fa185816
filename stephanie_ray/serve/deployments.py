"""The Ray Serve deployments: thin wrappers around :mod:`.service`, with the routes of :mod:`.api`.

* ``Verifier`` (application ``verifier``, route prefix ``/``): ``POST /verify``, ``GET /healthz``. Requests
  with at most ``max_batch_size`` items go through ``@serve.batch`` (its size counted in items, not requests):
  the requests that arrive within ``batch_wait_timeout_s`` are scored with one model call per model version,
  on the replica's one inference thread (the event loop stays free to take requests meanwhile). Larger
  requests are a batch already and go straight to that thread. ``reconfigure(user_config)`` takes
  ``model_version`` ('' / 'latest' = the newest now), ``threshold``, ``batching``, ``max_batch_size``,
  ``batch_wait_timeout_s``: a new version is loaded *beside* the served one and swapped in when ready, so
  requests never wait for it. A changed ``user_config`` alone is a lightweight update — replicas are not
  restarted — through ``serve deploy`` and through ``serve.run`` alike (:func:`code_version`).
* ``Entities`` (application ``entities``, route prefix ``/entities``): ``POST /search``, ``GET /{name}/graph``
  (the name URL-encoded), ``GET /healthz``; search and graph queries run on one worker thread.

Builders (``import_path`` of serve/config.yaml, and what ``stephanie serve`` runs): :func:`build_verifier`
and :func:`build_entities` take ``args`` ``{"config": <stephanie YAML>, "set": {"section.field": value}}``;
the stephanie config's ``serve`` section gives the deployment options, which a Serve config file may
override per deployment. Paths are made absolute here (replicas may start in another working directory).
"""

# No `from __future__ import annotations`: FastAPI must see the route annotations as classes (with strings,
# Serve's class-based views leave the body model unresolved and it becomes a query parameter).
import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import Path as PathParam, Query
from ray import serve

from ..config import StephanieConfig, _build, load_config
from ..errors import UserError
from .api import (Guard, Health, SearchRequest, SearchResponse, VerifyRequest, VerifyResponse, entities_app,
                  field_error, set_guard, token_digest, verifier_app)
from .service import EntityService, NotFound, VerifierService

log = logging.getLogger(__name__)

VERIFIER_APP, ENTITIES_APP = "verifier", "entities"
USER_CONFIG_FIELDS = ("verifier_model", "batching", "max_batch_size", "batch_wait_timeout_s")  # serve.* via user_config


# ------------------------------------------------------------------------------------------ settings
def resolve_config(args: dict[str, Any] | None = None, cfg: StephanieConfig | None = None) -> StephanieConfig:
    """The stephanie config from builder ``args`` (or ``cfg``), with every path made absolute."""
    import copy

    args = dict(args or {})
    unknown = sorted(set(args) - {"config", "set", "model_version"})
    if unknown:
        raise UserError(f"unknown application argument {unknown[0]!r} (known: config, set, model_version)")
    if cfg is None:
        sets = args.get("set") or {}
        if isinstance(sets, list):
            from ..config import parse_override

            sets = dict(parse_override(s) for s in sets)
        if not isinstance(sets, dict):
            raise UserError("application argument 'set' must be a mapping of section.field: value")
        cfg = load_config(args.get("config") or None, sets)
    cfg = copy.deepcopy(cfg)
    cfg.db.url = cfg.db_url  # the embedded SQLite file, absolute
    cfg.ner.index_dir = str(cfg.ner.resolved_dir(cfg.run).resolve())
    cfg.run.runs_dir = str(cfg.run.runs_path.resolve())
    if args.get("model_version") not in (None, ""):
        cfg.serve.verifier_model = str(args["model_version"])
    return cfg


def token_sha256(cfg: StephanieConfig, env: Any = None) -> str:
    """The digest of the token in ``$serve.token_env`` ('' when unset or empty)."""
    env = os.environ if env is None else env
    token = env.get(cfg.serve.token_env, "") if cfg.serve.token_env else ""
    return token_digest(token.strip()) if token.strip() else ""


def _settings(cfg: StephanieConfig, app: str) -> dict[str, Any]:
    """What a replica gets: the config as plain data and the token's digest (never the token). The verifier's
    model version and threshold travel in ``user_config`` instead, so that changing them is a lightweight
    update (``reconfigure``), not a restart: they are blanked here, to keep the constructor's arguments equal."""
    from ..config import ServeConfig, VerifierSettings

    tree = cfg.to_dict()
    if app == VERIFIER_APP:
        for key in USER_CONFIG_FIELDS:
            tree["serve"][key] = getattr(ServeConfig(), key)
        tree["verifier"]["critic_threshold"] = VerifierSettings().critic_threshold
    return {"config": tree, "token_sha256": token_sha256(cfg), "model_in_user_config": app == VERIFIER_APP}


def _replica_config(settings: dict[str, Any]) -> StephanieConfig:
    return _build(StephanieConfig, settings["config"], "")


def _guard(cfg: StephanieConfig, settings: dict[str, Any]) -> Guard:
    # the builder's digest; else the replica's own environment (serve deploy on a cluster sets it there)
    return Guard(settings.get("token_sha256") or token_sha256(cfg), cfg.serve.max_body_bytes)


def _items_in(requests: list[tuple[list[Any], Any]]) -> int:
    return sum(len(r[0]) for r in requests)


# ------------------------------------------------------------------------------------------ verifier
@serve.deployment(name="Verifier")
@serve.ingress(verifier_app)
class VerifierDeployment:
    def __init__(self, settings: dict[str, Any]):
        cfg = _replica_config(settings)
        self.cfg = cfg
        self.max_items = cfg.serve.max_items
        set_guard(VERIFIER_APP, _guard(cfg, settings))
        # with user_config (the builders' way), reconfigure() loads the model right after this; else load now
        self.service = VerifierService.from_config(cfg, load=not settings.get("model_in_user_config"))
        self.inference = ThreadPoolExecutor(1, thread_name_prefix="verify")  # one model call at a time
        self._apply({"batching": cfg.serve.batching, "max_batch_size": cfg.serve.max_batch_size,
                     "batch_wait_timeout_s": cfg.serve.batch_wait_timeout_s})

    def _apply(self, uc: dict[str, Any]) -> None:
        if "batching" in uc:
            self.batching = bool(uc["batching"])
        if "max_batch_size" in uc:
            self.max_batch_size = int(uc["max_batch_size"])
            self._batched.set_max_batch_size(self.max_batch_size)
        if "batch_wait_timeout_s" in uc:
            self._batched.set_batch_wait_timeout_s(float(uc["batch_wait_timeout_s"]))

    async def reconfigure(self, user_config: dict[str, Any] | None) -> None:
        uc = dict(user_config or {})
        unknown = sorted(set(uc) - {"model_version", "threshold", "batching", "max_batch_size",
                                    "batch_wait_timeout_s"})
        if unknown:
            raise ValueError(f"unknown user_config key {unknown[0]!r}")
        if "max_batch_size" in uc and int(uc["max_batch_size"]) < 1:
            raise ValueError("user_config max_batch_size must be >= 1")
        if "model_version" in uc or self.service.model_version == "":  # loaded beside the served one, then
            await asyncio.to_thread(self.service.set_default, uc.get("model_version", ""))  # swapped in: no gap
        if "threshold" in uc:
            self.service.set_threshold(float(uc["threshold"]))
        self._apply(uc)

    @verifier_app.get("/healthz", response_model=Health)
    async def healthz(self) -> Health:
        return Health(status="ok", app=VERIFIER_APP, details={
            "model_version": self.service.model_version, "loaded_versions": self.service.loaded_versions(),
            "threshold": self.service.threshold, "batching": self.batching, "max_batch_size": self.max_batch_size})

    @verifier_app.post("/verify", response_model=VerifyResponse)
    async def verify(self, body: VerifyRequest) -> VerifyResponse:
        if len(body.items) > self.max_items:
            raise field_error(413, "items", f"{len(body.items)} items, at most {self.max_items} per request "
                                            "(serve.max_items)")
        req = ([(it.prompt, it.response, it.context) for it in body.items], body.model_version)
        if self.batching and len(req[0]) <= self.max_batch_size:
            out = await self._batched(req)
        else:
            loop = asyncio.get_running_loop()
            out = (await loop.run_in_executor(self.inference, self.service.verify_many, [req]))[0]
        if isinstance(out, NotFound):
            raise field_error(404, "model_version", str(out))
        if isinstance(out, Exception):
            raise out
        return VerifyResponse(**out.to_dict())

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005, batch_size_fn=_items_in)
    async def _batched(self, requests: list[tuple[list[Any], Any]]) -> list[Any]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.inference, self.service.verify_many, requests)


# ------------------------------------------------------------------------------------------ entities
@serve.deployment(name="Entities")
@serve.ingress(entities_app)
class EntitiesDeployment:
    def __init__(self, settings: dict[str, Any]):
        cfg = _replica_config(settings)
        self.cfg = cfg
        set_guard(ENTITIES_APP, _guard(cfg, settings))
        self.service = EntityService(cfg)
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="entities")

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    @entities_app.get("/healthz", response_model=Health)
    async def healthz(self) -> Health:
        return Health(status="ok", app=ENTITIES_APP, details=self.service.info())

    @entities_app.post("/search", response_model=SearchResponse)
    async def search(self, body: SearchRequest) -> SearchResponse:
        s = self.cfg.serve
        if body.k > s.max_k:
            raise field_error(422, "k", f"at most {s.max_k} (serve.max_k), got {body.k}")
        if len(body.query) > s.max_query_chars:
            raise field_error(422, "query", f"{len(body.query)} characters, at most {s.max_query_chars} "
                                            "(serve.max_query_chars)")
        hits = await self._run(self.service.search, body.query, body.k, body.min_similarity, body.domain)
        return SearchResponse(query=body.query, count=len(hits), results=hits)

    @entities_app.get("/{name:path}/graph")  # :path: names may contain '/' (sent as %2F)
    async def graph(self, name: str = PathParam(min_length=1, max_length=512),
                    limit: int = Query(20, ge=1, le=1000)) -> dict[str, Any]:
        if not name.strip():
            raise field_error(422, "name", "must not be blank")
        try:
            return await self._run(self.service.graph, name, limit)
        except NotFound as exc:
            raise field_error(404, "name", str(exc)) from None


# ------------------------------------------------------------------------------------------ builders
def deployment_options(cfg: StephanieConfig, app: str) -> dict[str, Any]:
    """Options of the application's deployment from the ``serve`` section (serve/config.yaml mirrors them)."""
    s = cfg.serve
    actor: dict[str, Any] = {"num_cpus": s.num_cpus}
    if app == VERIFIER_APP and s.verifier_num_gpus:
        actor["num_gpus"] = s.verifier_num_gpus
    opts: dict[str, Any] = {
        "ray_actor_options": actor,
        "max_ongoing_requests": s.max_ongoing_requests,
        "logging_config": {"enable_access_log": s.access_log},
        "autoscaling_config": {"min_replicas": s.min_replicas, "initial_replicas": max(1, s.min_replicas),
                               "max_replicas": s.max_replicas, "target_ongoing_requests": s.target_ongoing_requests},
    }
    if app == VERIFIER_APP:
        opts["user_config"] = {"model_version": s.verifier_model, "threshold": cfg.verifier.critic_threshold,
                               "batching": s.batching, "max_batch_size": s.max_batch_size,
                               "batch_wait_timeout_s": s.batch_wait_timeout_s}
    return opts


def code_version(settings: dict[str, Any]) -> str:
    """A version of the replicas' code and constructor arguments: what decides whether an update restarts them.

    ``serve.run`` gives every deployment a random version, so that each call restarts the replicas even when
    only ``user_config`` changed; with this one, a new model version (``user_config``) is a lightweight
    update through ``serve.run`` too, as it is through ``serve deploy`` (where Serve derives the version from
    the config file itself). Any change to the package's code or to the constructor's arguments still
    restarts them."""
    import hashlib
    import json

    from .. import __version__

    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    h.update(__version__.encode())
    for f in sorted(Path(__file__).resolve().parents[1].rglob("*.py")):
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _bind(deployment: Any, cfg: StephanieConfig, app: str) -> Any:
    settings = _settings(cfg, app)
    opts = deployment_options(cfg, app)
    try:  # a private option (Serve manages versions itself): without it, updates just restart the replicas
        d = deployment.options(**opts, version=code_version(settings), _internal=True)
    except (TypeError, ValueError):
        d = deployment.options(**opts)
    return d.bind(settings)


def build_verifier(args: dict[str, Any] | None = None, *, cfg: StephanieConfig | None = None) -> Any:
    """The ``verifier`` application (``import_path: stephanie_ray.serve.deployments:build_verifier``)."""
    return _bind(VerifierDeployment, resolve_config(args, cfg), VERIFIER_APP)


def build_entities(args: dict[str, Any] | None = None, *, cfg: StephanieConfig | None = None) -> Any:
    """The ``entities`` application (``import_path: stephanie_ray.serve.deployments:build_entities``)."""
    return _bind(EntitiesDeployment, resolve_config(args, cfg), ENTITIES_APP)


def check_ready(cfg: StephanieConfig, apps: list[str]) -> dict[str, str]:
    """A clear error now, before Serve starts, when an application has nothing to serve; what each will serve."""
    from ..db import Database

    out: dict[str, str] = {}
    if VERIFIER_APP in apps:
        Database.from_config(cfg).dispose()  # the schema (a fresh runs folder), or one clear error
        version, path = VerifierService(cfg.db_url).resolve(cfg.serve.verifier_model)
        if not Path(path, "meta.json").is_file():
            raise UserError(f"critic model version {version or path}: {path} has no meta.json (deleted?)")
        out[VERIFIER_APP] = f"critic v{version}" if version else str(path)
    if ENTITIES_APP in apps:
        from ..ner.index import EntityIndex
        from ..ner.stage import ner_dir

        idx = EntityIndex.load(ner_dir(cfg))
        out[ENTITIES_APP] = f"entity index {idx.path.name} ({idx.items} mentions)"
    return out
