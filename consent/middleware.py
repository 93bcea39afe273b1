"""ASGI middleware: a request id on every request, response and log line; security and cache
headers on every answer; JSON bodies only; only the query parameters an API operation takes;
CORS for browsers calling the API from other origins."""

from __future__ import annotations

import base64
import hashlib
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
    "content_security_policy",
    "index_query_parameters",
    "is_json",
    "request_id",
    "secured",
]

_HEADER: Final = b"x-request-id"
_VALID: Final = re.compile(rb"^[A-Za-z0-9._-]{8,64}$")
_log = structlog.get_logger("consent.access")


class RequestIdMiddleware:
    """Accepts a sane incoming `X-Request-ID` or makes one; echoes it and binds it to logs.
    Writes the access log line: method, route template (none for an unrouted request), status
    and time; the path itself is never logged (subject ids, or an e-mail address typed into
    it). Every answer it sends carries the security headers of `secured`."""

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
            await self.app(scope, receive, secured(scope, send_with_id))
        finally:
            _log.info(  # the route taken, never the path: it holds ids and what was typed
                "request",
                method=scope.get("method"),
                route=scope.get("path_template"),
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 2),
            )


_CACHE_CONTROL: Final = b"cache-control"
_CONTENT_TYPE: Final = b"content-type"
_EVERY_ANSWER: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)
# An API answer holds a tenant's data (a person's consents, an API key's secret): no browser or
# proxy cache keeps it (RFC 9111 5.2.2.5), unless its operation says otherwise.
_NO_STORE: Final = (_CACHE_CONTROL, b"no-store")
_HTML_SCRIPT: Final = re.compile(
    rb"<script\b(?![^>]*\bsrc\s*=)[^>]*>(.*?)</script\s*>", re.IGNORECASE | re.DOTALL
)
# The service's HTML pages (the proof checker, the API docs, the problem pages) load scripts,
# styles and images from the service alone and may be framed by no page (clickjacking);
# their inline scripts are allowed by hash, so an injected one would not run.
_CSP: Final = (
    "default-src 'none'; script-src 'self'{hashes}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


def _is_api(scope: Scope) -> bool:
    return scope["path"].startswith(_API_PREFIX) or any(
        k == b"authorization" for k, _ in scope["headers"]
    )


def content_security_policy(page: bytes) -> bytes:
    """The `Content-Security-Policy` of an HTML page: `_CSP`, its inline scripts by hash."""
    hashes = "".join(
        f" 'sha256-{base64.b64encode(hashlib.sha256(body).digest()).decode()}'"
        for body in _HTML_SCRIPT.findall(page)
    )
    return _CSP.format(hashes=hashes).encode()


def secured(scope: Scope, send: Send) -> Send:
    """`send` adding the security headers: `nosniff` and `no-referrer` on every answer;
    `Cache-Control: no-store` on an API answer (a `/v1` path, or any request with an
    `Authorization` header) that sets no `Cache-Control` of its own; on an HTML page a
    `Content-Security-Policy` and `X-Frame-Options: DENY` (its body is held until complete,
    to hash its inline scripts: the service's pages are small and made in one piece)."""
    api = _is_api(scope)
    page_start: list[HTTPResponseStartEvent] = []  # an HTML page's, held for its body
    page: list[bytes] = []

    async def send_secured(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            names = {k.lower() for k, _ in headers}
            headers.extend(_EVERY_ANSWER)
            if api and _CACHE_CONTROL not in names:
                headers.append(_NO_STORE)
            message["headers"] = headers
            content_type = next((v for k, v in headers if k.lower() == _CONTENT_TYPE), b"")
            if _media_type(content_type) == b"text/html":
                page_start.append(message)
                return
        elif page_start and message["type"] == "http.response.body":
            page.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            start, body = page_start.pop(), b"".join(page)
            start["headers"] = [
                *start.get("headers", []),
                (b"content-security-policy", content_security_policy(body)),
                (b"x-frame-options", b"DENY"),
            ]
            await send(start)
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        await send(message)

    return send_secured


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
