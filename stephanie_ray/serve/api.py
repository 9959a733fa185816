"""The HTTP surface: pydantic request/response models, the two FastAPI apps, the guard, the error handlers.

No Ray here: the Serve deployments (:mod:`.deployments`) define their routes on these apps with
``@serve.ingress``; the guard and the handlers are tested on plain FastAPI apps.

**The guard** (:class:`GuardMiddleware`, a pure ASGI middleware, so it runs before any body is read or
parsed): when a bearer token is configured, every route requires ``Authorization: Bearer <token>`` —
401 without one, 403 with a wrong one (compared as SHA-256 digests in constant time; the replica holds only
the digest). A body larger than ``max_body_bytes`` is refused with 413 from its Content-Length, or, without
one (chunked), as soon as the bytes read pass the limit.

**Errors** are JSON ``{"detail": "<field>: <what is wrong>", "errors": [{"field", "message"}]}``: a body that
is not JSON or does not fit the model -> 422 naming the field (``items[0].response``); a
:class:`~stephanie_ray.errors.UserError` -> 400, :class:`~.service.NotFound` -> 404; anything else -> 500
"internal error" (logged with its traceback; never the client's fault, so never a 4xx either).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import UserError
from ..ner.retriever import EntityResult
from .service import NotFound

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 1_048_576


# ------------------------------------------------------------------------------------------ models
class VerifyItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(description="The request the response answers (may be empty).")
    response: str = Field(min_length=1, description="The response to judge (not blank).")
    context: str = Field("", description="Optional earlier turns of the conversation, as text.")

    @field_validator("response")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v


class VerifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[VerifyItemIn] = Field(min_length=1, description="(prompt, response) pairs to judge.")
    model_version: int | None = Field(None, ge=1, description="A critic model version number; omitted: the "
                                                              "version being served.")


class VerifyResponse(BaseModel):
    scores: list[float] = Field(description="P(good) of each item, calibrated when the version has a calibrator.")
    labels: list[int] = Field(description="1 when the score is at least the threshold, else 0.")
    threshold: float
    model_version: str = Field(description="The critic model version that scored the items.")


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(description="A type description, e.g. 'sorting algorithm' or 'Python web framework'.")
    k: int = Field(10, ge=1, description="How many mentions at most.")
    min_similarity: float | None = Field(None, ge=-1.0, le=1.0, description="Drop results below this cosine.")
    domain: str | None = Field(None, min_length=1, max_length=64,
                               description="Calibration domain (omitted: detected from the query).")

    @field_validator("query")
    @classmethod
    def _query_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v


class SearchResponse(BaseModel):
    query: str
    count: int
    results: list[EntityResult]  # the retriever's own result type (a dataclass: pydantic validates it)


class Health(BaseModel):
    status: str
    app: str
    details: dict[str, Any] = {}


# ------------------------------------------------------------------------------------------ guard
def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Guard:
    """What every request must pass before a route runs (module docstring)."""

    token_sha256: str = ""  # '' = no token required
    max_body_bytes: int = DEFAULT_MAX_BODY

    def check_token(self, authorization: str | None) -> tuple[int, str] | None:
        """None when allowed, else (status, message)."""
        if not self.token_sha256:
            return None
        if not authorization:
            return 401, "a bearer token is required (Authorization: Bearer <token>)"
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return 401, "a bearer token is required (Authorization: Bearer <token>)"
        if not hmac.compare_digest(token_digest(token.strip()), self.token_sha256):
            return 403, "the bearer token is not valid"
        return None


_GUARDS: dict[str, Guard] = {}


def set_guard(kind: str, guard: Guard) -> None:
    """The guard of app ``kind`` in this process (a Serve replica sets its own in its constructor)."""
    _GUARDS[kind] = guard


def guard_for(kind: str) -> Guard:
    return _GUARDS.get(kind) or Guard()


async def _send_json(send: Any, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] = ()) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": data})


def _error(message: str, field: str | None = None) -> dict[str, Any]:
    return {"detail": f"{field}: {message}" if field else message,
            "errors": [{"field": field, "message": message}] if field else []}


class GuardMiddleware:
    """Token and body-size checks before the app sees the request (module docstring)."""

    def __init__(self, app: Any, kind: str):
        self.app, self.kind = app, kind

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        guard = guard_for(self.kind)
        headers = {k.lower(): v for k, v in scope.get("headers") or []}
        auth = headers.get(b"authorization")
        refused = guard.check_token(auth.decode("latin-1") if auth is not None else None)
        if refused:
            status, msg = refused
            extra = [(b"www-authenticate", b'Bearer realm="stephanie"')] if status == 401 else []
            return await _send_json(send, status, _error(msg), extra)
        length = headers.get(b"content-length")
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                return await _send_json(send, 400, _error("Content-Length is not a number"))
            if n > guard.max_body_bytes:
                return await _send_json(send, 413, _error(f"the body has {n} bytes, at most {guard.max_body_bytes} "
                                                          "are accepted (serve.max_body_bytes)"))
            return await self.app(scope, receive, send)
        if scope.get("method", "GET") in ("GET", "HEAD", "OPTIONS", "DELETE"):
            return await self.app(scope, receive, send)
        # no Content-Length (chunked): read it here, up to the limit, then hand it on
        chunks, size = [], 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > guard.max_body_bytes:
                return await _send_json(send, 413, _error(f"the body has more than {guard.max_body_bytes} bytes "
                                                          "(serve.max_body_bytes)"))
            chunks.append(chunk)
            if not msg.get("more_body", False):
                break
        body, sent = b"".join(chunks), False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


# ------------------------------------------------------------------------------------------ errors
def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = list(loc[1:] if loc and loc[0] in ("body", "query", "path", "header", "cookie") else loc)
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def validation_errors(exc: RequestValidationError) -> dict[str, Any]:
    errors = []
    for e in exc.errors():
        loc = tuple(e.get("loc") or ())
        kind = e.get("type", "")
        if kind == "json_invalid":
            field, msg = "body", f"not valid JSON ({(e.get('ctx') or {}).get('error', 'decode error')})"
        elif kind == "extra_forbidden":
            field, msg = _field(loc), "unknown field"
        else:
            field, msg = _field(loc), str(e.get("msg", "invalid")).removeprefix("Value error, ")
            if loc == ("body",) and kind in ("missing", "model_attributes_type", "dict_type"):
                msg = "the body must be a JSON object" if kind != "missing" else "a JSON body is required"
        errors.append({"field": field, "message": msg})
    first = errors[0] if errors else {"field": "body", "message": "invalid"}
    return {"detail": f"{first['field']}: {first['message']}", "errors": errors}


def install_handlers(app: FastAPI, kind: str) -> FastAPI:
    """The guard middleware and the error handlers (module docstring) on ``app``."""
    app.add_middleware(GuardMiddleware, kind=kind)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(validation_errors(exc), status_code=422)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse(_error(str(exc)), status_code=404)

    @app.exception_handler(UserError)
    async def _user_error(request: Request, exc: UserError) -> JSONResponse:
        return JSONResponse(_error(str(exc)), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, dict) else _error(str(exc.detail))
        return JSONResponse(detail, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        logging.getLogger("ray.serve").exception("%s %s failed", request.method, request.url.path)
        return JSONResponse(_error("internal error (see the server log)"), status_code=500)

    return app


def field_error(status: int, field: str, message: str) -> StarletteHTTPException:
    """An HTTPException whose body names ``field`` like the validation errors do."""
    return StarletteHTTPException(status, detail=_error(message, field))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ apps
verifier_app = install_handlers(FastAPI(
    title="stephanie verifier", version=__version__,
    description="The trained PACS critic as a reward model: P(good) of (prompt, response) pairs."), "verifier")

entities_app = install_handlers(FastAPI(
    title="stephanie entities", version=__version__,
    description="The NER retriever: entity mentions by type description, and the entity graph."), "entities")
