"""The plain library classes the Serve deployments hold (no Ray, no HTTP): tested on their own.

* :class:`VerifierService` — the trained critic as a verifier: loads the served model version (the newest,
  or a named one) once, keeps up to ``max_loaded`` versions loaded (least recently used dropped first, never
  the served one), and scores lists of (prompt, response) with :class:`~stephanie_ray.training.critic_verifier.CriticVerifier`
  — the same code as ``stephanie verify``, so the scores are identical. :meth:`VerifierService.verify_many`
  answers several requests with one model call per model version (what ``@serve.batch`` hands it).
* :class:`EntityService` — the NER retriever and the entity graph: ``search`` is
  :meth:`~stephanie_ray.ner.retriever.NerRetriever.search` (the index memory-mapped, so replicas on one machine
  share one copy in the page cache), ``graph`` is :func:`~stephanie_ray.ner.graph.entity_report`. A rebuilt
  index (``stephanie ner index`` switches ``index/CURRENT``) is picked up on the next request after
  ``reload_check_s``, without a restart; a new build that fails to load keeps the old one serving.

Errors a client can fix are :class:`~stephanie_ray.errors.UserError`; :class:`NotFound` (an unknown model
version, an unknown entity) is the one the HTTP layer answers with 404.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..config import StephanieConfig
from ..errors import UserError

log = logging.getLogger(__name__)


class NotFound(UserError):
    """The named thing (a model version, an entity) does not exist: HTTP 404."""


# ------------------------------------------------------------------------------------------ verifier
@dataclass
class VerifyOutput:
    scores: list[float]
    labels: list[int]
    threshold: float
    model_version: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _version_ref(ref: Any) -> str:
    """'' (the newest / the served one), a version number as text, or a directory (operators only)."""
    if ref is None or (isinstance(ref, str) and ref.strip().lower() in ("", "latest")):
        return ""
    if isinstance(ref, bool):
        raise UserError(f"model_version must be a version number, got {ref!r}")
    if isinstance(ref, int):
        if ref < 1:
            raise UserError(f"model_version must be >= 1, got {ref}")
        return str(ref)
    return str(ref).strip()


@dataclass
class _Loaded:
    verifier: Any  # CriticVerifier
    version: str  # what responses report
    path: str


@dataclass
class VerifierService:
    """The critic verifier for a server (module docstring). ``loader(path) -> LoadedCritic`` is injectable."""

    db_url: str
    embedding: dict[str, Any] | None = None
    threshold: float = 0.5
    max_loaded: int = 2
    loader: Any = None
    _cache: "OrderedDict[str, _Loaded]" = field(default_factory=OrderedDict, repr=False)
    _default: _Loaded | None = field(default=None, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @classmethod
    def from_config(cls, cfg: StephanieConfig, model_version: Any = None, *, load: bool = True,
                    **kw: Any) -> "VerifierService":
        """The service for ``cfg`` serving ``model_version`` (default ``serve.verifier_model``, '' = the newest);
        ``load=False``: nothing loaded yet (:meth:`set_default` will be called)."""
        svc = cls(db_url=cfg.db_url, embedding=asdict(cfg.embedding), threshold=cfg.verifier.critic_threshold,
                  max_loaded=cfg.serve.max_loaded_versions, **kw)
        if load:
            svc.set_default(cfg.serve.verifier_model if model_version is None else model_version)
        return svc

    # -------------------------------------------------------------------------------- versions
    def resolve(self, ref: Any) -> tuple[str, Path]:
        """(the version as responses report it, its directory); '' = the newest. Unknown: :class:`NotFound`."""
        from ..db import Database
        from ..training.critic import resolve_version

        r = _version_ref(ref)
        if r and not r.isdigit():  # a directory: only from the operator's config, never from a request
            return "", Path(r)
        db = Database.open(self.db_url)
        try:
            with db.session() as s:
                try:
                    version, path = resolve_version(s, r or None)
                except UserError as exc:
                    raise NotFound(str(exc)) from None
        finally:
            db.dispose()
        return str(version), path

    def _load(self, version: str, path: Path) -> _Loaded:
        from ..config import EmbeddingConfig
        from ..training.critic import load_critic
        from ..training.critic_verifier import CriticVerifier

        if self.loader is not None:
            critic = self.loader(path)
        else:
            critic = load_critic(path, EmbeddingConfig(**self.embedding) if self.embedding else None)
        version = version or str(critic.meta.get("version", "") or path.name)
        return _Loaded(CriticVerifier(critic, self.threshold, version), version, str(path))

    def get(self, ref: Any = None) -> _Loaded:
        """The loaded model for ``ref`` (None: the served one), loading it if needed."""
        r = _version_ref(ref)
        with self._lock:
            if not r and self._default is not None:
                return self._default
            hit = self._cache.get(r) if r else None
            if hit is not None:
                self._cache.move_to_end(r)
                return hit
        if not r:  # nothing served yet (no user_config reached the replica): the newest
            self.set_default("")
            return self._default  # type: ignore[return-value]
        version, path = self.resolve(r)
        loaded = self._load(version, path)
        with self._lock:
            self._cache[r] = loaded
            self._cache.move_to_end(r)
            self._evict()
        return loaded

    def _evict(self) -> None:
        while len(self._cache) > self.max_loaded:
            for key, val in self._cache.items():
                if val is not self._default:
                    del self._cache[key]
                    break
            else:
                break

    def set_default(self, ref: Any) -> str:
        """Serve ``ref`` ('' = the newest now) from here on: loaded first, then swapped in (no gap). Returns it."""
        version, path = self.resolve(ref)
        r = _version_ref(version) if version else str(path)
        with self._lock:
            loaded = self._cache.get(r)
        if loaded is None:
            loaded = self._load(version, path)
        with self._lock:
            self._cache[r] = loaded
            self._cache.move_to_end(r)
            self._default = loaded
            self._evict()
        log.info("verifier: serving critic v%s (%s)", loaded.version, loaded.path)
        return loaded.version

    def set_threshold(self, threshold: float) -> None:
        if not 0.0 <= float(threshold) <= 1.0:
            raise UserError(f"threshold must be in [0, 1], got {threshold!r}")
        with self._lock:
            self.threshold = float(threshold)
            for lv in self._cache.values():
                lv.verifier.threshold = self.threshold

    @property
    def model_version(self) -> str:
        return self._default.version if self._default else ""

    def loaded_versions(self) -> list[str]:
        with self._lock:
            return [v.version for v in self._cache.values()]

    # -------------------------------------------------------------------------------- scoring
    def verify(self, items: Sequence[Any], model_version: Any = None) -> VerifyOutput:
        """Scores and labels of ``items`` (:class:`VerifyItem` or (prompt, response[, context]) tuples)."""
        out = self.verify_many([(items, model_version)])[0]
        if isinstance(out, Exception):
            raise out
        return out

    def verify_many(self, requests: Sequence[tuple[Sequence[Any], Any]]) -> list[VerifyOutput | Exception]:
        """Several requests, one model call per model version among them; one result (or the request's
        error, e.g. :class:`NotFound` for an unknown version) per request, in order."""
        from ..training.verifiers import Verdict

        results: list[VerifyOutput | Exception | None] = [None] * len(requests)
        by_version: dict[str, list[int]] = {}
        for k, (items, ref) in enumerate(requests):
            try:
                by_version.setdefault(_version_ref(ref), []).append(k)
            except UserError as exc:
                results[k] = exc
        for ref, ks in by_version.items():
            try:
                loaded = self.get(ref or None)
            except UserError as exc:
                for k in ks:
                    results[k] = exc
                continue
            flat = [_as_item(it) for k in ks for it in requests[k][0]]
            verdicts = loaded.verifier.verify_batch(flat) if flat else []
            i = 0
            for k in ks:
                n = len(requests[k][0])
                part = verdicts[i:i + n]
                i += n
                bad = [j for j, v in enumerate(part) if not isinstance(v, Verdict)]
                if bad:
                    results[k] = UserError(f"items[{bad[0]}]: {part[bad[0]].reason}")
                    continue
                results[k] = VerifyOutput([float(v.p_good) for v in part], [int(v.label) for v in part],
                                          loaded.verifier.threshold, loaded.version)
        return results  # type: ignore[return-value]


def _as_item(it: Any) -> Any:
    from ..training.verifiers import VerifyItem

    if isinstance(it, VerifyItem):
        return it
    prompt, response, *rest = it
    return VerifyItem(prompt, response, {"context": rest[0]} if rest and rest[0] else {})


# ------------------------------------------------------------------------------------------ entities
class EntityService:
    """NER search and the entity graph for a server (module docstring)."""

    def __init__(self, cfg: StephanieConfig, reload_check_s: float = 5.0):
        from ..db import Database

        self.cfg = cfg
        self.reload_check_s = reload_check_s
        self._lock = threading.Lock()
        self._retriever, self._build = self._open()
        self._checked = time.monotonic()
        self._db = Database.open(cfg.db_url)

    def _current(self) -> str:
        from ..ner.stage import ner_dir

        try:
            return (ner_dir(self.cfg) / "index" / "CURRENT").read_text(encoding="utf-8").strip()
        except OSError:
            return ""

    def _open(self) -> tuple[Any, str]:
        from ..ner.retriever import NerRetriever

        build = self._current()
        return NerRetriever(self.cfg), build

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.reload_check_s:
            return
        self._checked = now
        build = self._current()
        if build and build != self._build:
            try:
                retriever, build = self._open()
            except UserError as exc:  # half-written or mismatched: keep serving the old one
                log.warning("entities: new index %s not loaded (%s); still serving %s", build, exc, self._build)
                return
            with self._lock:
                self._retriever, self._build = retriever, build
            log.info("entities: now serving index %s", build)

    def info(self) -> dict[str, Any]:
        r = self._retriever
        return {"index": self._build, "index_items": r.index.items, "projection_version": r.projection.version,
                "domains": sorted(getattr(r.calibration, "domains", {}) or [])}

    def search(self, query: str, k: int = 10, min_similarity: float | None = None,
               domain: str | None = None) -> list[dict[str, Any]]:
        if not isinstance(query, str) or not query.strip():
            raise UserError("query must not be empty")
        self._maybe_reload()
        return [r.to_dict() for r in self._retriever.search(query, k, min_similarity, domain)]

    def graph(self, name: str, limit: int = 20) -> dict[str, Any]:
        from ..ner.graph import entity_report

        if not isinstance(name, str) or not name.strip():
            raise UserError("name must not be empty")
        if not 1 <= int(limit) <= 1000:
            raise UserError(f"limit must be in 1..1000, got {limit}")
        with self._db.session() as s:
            try:
                return entity_report(s, name, limit=int(limit))
            except UserError as exc:
                raise NotFound(str(exc)) from None

    def close(self) -> None:
        self._db.dispose()
