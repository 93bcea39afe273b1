"""ASGI middleware: a request id on every request, response and log line; JSON bodies only;
only the query parameters an API operation takes; CORS for browsers calling the API from other
origins."""

from __future__ import annotations

import os
import re
import time
from typing import Any, Final
from urllib.parse import unquote_plus

import msgspec
import structlog
from litestar.types import ASGIApp, HTTPResponseStartEvent, Message, Receive, Scope, Send

from consent import locales
from consent.errors import PROBLEM_MEDIA_TYPE, Problem, ValidationFailed
from consent.locales import Localized

__all__ = [
    "BODY_MEDIA_OPT",
    "CorsMiddleware",
    "JsonBodyMiddleware",
    "KnownQueryMiddleware",
    "RequestIdMiddleware",
    "index_query_parameters",
    "is_json",
    "request_id",
]

_HEADER: Final = b"x-request-id"
_VALID: Final = re.compile(rb"^[A-Za-z0-9._-]{8,64}$")
_log = structlog.get_logger("consent.access")


class RequestIdMiddleware:
    """Accepts a sane incoming `X-Request-ID` or makes one; echoes it and binds it to logs.
    Writes the access log line: method, route template (none for an unrouted request), status
    and time; the path itself is never logged (subject ids, or an e-mail address typed into
    it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # type: ignore[comparison-overlap]
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = rid
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((_HEADER, rid.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _log.info(  # the route taken, never the path: it holds ids and what was typed
                "request",
                method=scope.get("method"),
                route=scope.get("path_template"),
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 2),
            )


def request_id(scope: Scope) -> str:
    """The request's sane `X-Request-ID` (8 to 64 of `A-Za-z0-9._-`), else a new random one."""
    incoming = next((v for k, v in scope["headers"] if k == _HEADER), None)
    return incoming.decode() if incoming and _VALID.match(incoming) else os.urandom(16).hex()


_WITH_BODY: Final = frozenset({"POST", "PUT", "PATCH"})
# Route option: the media type an operation's body is sent as (default `application/json`),
# which its 415 answer names.
BODY_MEDIA_OPT: Final = "body_media_type"
_JSON: Final = b"application/json"
_NDJSON: Final = "application/x-ndjson"


class JsonBodyMiddleware:
    """A body sent as anything but what its operation reads gets a 415 problem instead of being
    parsed anyway: JSON (`application/json`, `application/*+json`), or NDJSON
    (`application/x-ndjson`, and nothing else) where an operation streams it. A body without a
    `Content-Type` is read as the operation reads it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") in _WITH_BODY:  # type: ignore[comparison-overlap]
            headers = dict(scope["headers"])
            declared = headers.get(b"content-type")
            has_body = (
                headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers
            )
            if declared is not None and has_body and not _takes(_body_media(scope), declared):
                await _unsupported(scope, send)
                return
        await self.app(scope, receive, send)


def _body_media(scope: Scope) -> str:
    handler = scope.get("route_handler")
    media: str = (
        handler.opt.get(BODY_MEDIA_OPT, "application/json") if handler else "application/json"
    )
    return media


def _media_type(content_type: bytes) -> bytes:
    return content_type.split(b";", 1)[0].strip().lower()


def is_json(content_type: bytes) -> bool:
    """Whether a `Content-Type` value names JSON (`application/json`, `application/*+json`)."""
    media = _media_type(content_type)
    return media == _JSON or (media.startswith(b"application/") and media.endswith(b"+json"))


def _takes(body_media: str, content_type: bytes) -> bool:
    """Whether an operation whose body is `body_media` reads a body sent as `content_type`."""
    if body_media == _NDJSON:
        return _media_type(content_type) == _NDJSON.encode()
    return is_json(content_type)


async def _unsupported(scope: Scope, send: Send) -> None:
    media = _body_media(scope)
    asked = next((v for k, v in scope["headers"] if k == b"accept-language"), None)
    language = locales.negotiate(asked.decode("latin-1") if asked is not None else None)
    detail = "send-ndjson" if media == _NDJSON else "send-json"
    problem = Problem(
        type="/problems/unsupported-media-type",
        title=locales.problem_texts("unsupported-media-type", language)[0],
        status=415,
        detail=locales.Localized(detail).in_language(language),
        instance=scope["path"],
        request_id=scope.get("state", {}).get("request_id"),
    )
    body = msgspec.json.encode(problem)
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": 415,
        "headers": [
            (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"accept", media.encode()),
            (b"content-language", language.encode()),
            (b"vary", b"Accept-Language"),
        ],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})


_API_PREFIX: Final = "/v1/"
_TEMPLATE_TYPE: Final = re.compile(r":[^}]+}")
_NAME_SHOWN: Final = 40


class KnownQueryMiddleware:
    """An API request (`/v1/...`) naming a query parameter its operation does not take gets a
    400 problem naming it and the parameters the operation takes, instead of being answered
    as if it had not been sent: `?limt=10` silently gave the default page size, `?since=` on
    an operation without it an unfiltered answer. The parameters each operation takes are read
    from the app's OpenAPI document, so the check and the documentation cannot disagree.
    Pages for people (`/audit/verify`) keep tolerating links with extra parameters."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"  # type: ignore[comparison-overlap]
            and scope.get("query_string")
            and scope["path"].startswith(_API_PREFIX)
        ):
            _check_query(scope)
        await self.app(scope, receive, send)


def _check_query(scope: Scope) -> None:
    template = _TEMPLATE_TYPE.sub("}", str(scope.get("path_template", "")))
    taken = _query_parameters(scope["app"]).get((template, str(scope.get("method", ""))))
    if taken is None:  # not a documented operation: nothing to check against
        return
    sent = (part.split(b"=", 1)[0] for part in scope["query_string"].split(b"&") if part)
    for raw in sent:
        name = unquote_plus(raw.decode("latin-1"))
        if name not in taken:
            shown = name if len(name) <= _NAME_SHOWN else name[:_NAME_SHOWN] + "…"
            raise ValidationFailed.field(
                shown,
                Localized("unknown-query-parameter", takes=", ".join(sorted(taken)))
                if taken
                else Localized("unknown-query-parameter-none"),
            )


def _query_parameters(app: Any) -> dict[tuple[str, str], frozenset[str]]:
    """(path as documented, METHOD) -> the names of the query parameters it takes."""
    cached: dict[tuple[str, str], frozenset[str]] | None = getattr(app.state, "query_names", None)
    return cached if cached is not None else index_query_parameters(app)


def index_query_parameters(app: Any) -> dict[tuple[str, str], frozenset[str]]:
    """Build (and keep on `app.state`) the table `KnownQueryMiddleware` checks against. Built
    on first use otherwise: that builds the OpenAPI document (~0.3 s) inside a request, so a
    served worker builds it while it starts (`consent.asgi`); tests, which start many apps,
    build it only when they send a query string."""
    table: dict[tuple[str, str], frozenset[str]] = {}
    for path, item in (app.openapi_schema.paths or {}).items():
        for method in ("get", "put", "post", "delete", "patch", "head"):
            operation = getattr(item, method, None)
            if operation is None:
                continue
            names = frozenset(
                p.name
                for p in operation.parameters or ()
                if getattr(p, "param_in", None) == "query"
            )
            table[(path, method.upper())] = names
    app.state.query_names = table
    return table


_ORIGIN: Final = b"origin"
_PREFLIGHT: Final = b"access-control-request-method"
# Every header the API answers with that is not CORS-safelisted (so a page reads it only if
# exposed): the request id, an audience run's id, an export's file name, when to retry, why a key
# was refused, what a 415 accepts; and the language of a problem (safelisted, named anyway).
_EXPOSED: Final = (
    b"x-request-id, audience-id, content-disposition, retry-after, www-authenticate, accept, "
    b"content-language"
)
_CORS_HEADERS: Final = (
    (b"access-control-expose-headers", _EXPOSED),
    (b"vary", b"Origin"),
)
_PREFLIGHT_HEADERS: Final = (
    (b"access-control-allow-methods", b"GET, POST, PUT, DELETE"),
    (
        b"access-control-allow-headers",
        b"authorization, content-type, idempotency-key, x-request-id, accept-language",
    ),
    (b"access-control-max-age", b"600"),
    (b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
    (b"content-length", b"0"),
)


class CorsMiddleware:
    """Lets a web page on any origin call the API, without credentials.

    Keys travel in `Authorization`, never in cookies: a page can only act with a key it holds,
    as its own server could, so allowing every origin gives no page a right it did not have.
    Which origins a key may be used from is the service's own check, made on every request
    (a banner key's `allowed_origins`, a property's `allowed_origins`: 403), and the browser
    lets the page read that 403 too. A preflight (`OPTIONS` with `Origin` and
    `Access-Control-Request-Method`) is answered here, 204, and kept by the browser for 10
    minutes, with its `X-Request-ID` like every answer. `Origin: null` (sandboxed frames,
    files) gets no CORS headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = None
        if scope["type"] == "http":  # type: ignore[comparison-overlap]
            origin = next((v for k, v in scope["headers"] if k == _ORIGIN), None)
        if origin is None or origin == b"null":
            await self.app(scope, receive, send)
            return
        if scope.get("method") == "OPTIONS" and any(k == _PREFLIGHT for k, _ in scope["headers"]):
            start: HTTPResponseStartEvent = {
                "type": "http.response.start",
                "status": 204,
                "headers": [
                    (b"access-control-allow-origin", origin),
                    *_PREFLIGHT_HEADERS,
                    (_HEADER, request_id(scope).encode()),
                ],
            }
            await send(start)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        allow = (b"access-control-allow-origin", origin)

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), allow, *_CORS_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_cors)
