"""ASGI middleware: a request id on every request, response and log line; JSON bodies only."""

from __future__ import annotations

import os
import re
import time
from typing import Any, Final

import msgspec
import structlog
from litestar.types import ASGIApp, HTTPResponseStartEvent, Message, Receive, Scope, Send

from consent.errors import PROBLEM_MEDIA_TYPE, PROBLEM_TYPES, Problem

__all__ = ["JsonBodyMiddleware", "RequestIdMiddleware", "is_json"]

_HEADER: Final = b"x-request-id"
_VALID: Final = re.compile(rb"^[A-Za-z0-9._-]{8,64}$")
_log = structlog.get_logger("consent.access")


class RequestIdMiddleware:
    """Accepts a sane incoming `X-Request-ID` or makes one; echoes it and binds it to logs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # type: ignore[comparison-overlap]
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(_HEADER)
        rid = incoming.decode() if incoming and _VALID.match(incoming) else os.urandom(16).hex()
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
            _log.info(
                "request",
                method=scope.get("method"),
                path=scope["path"],
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 2),
            )


_WITH_BODY: Final = frozenset({"POST", "PUT", "PATCH"})
_JSON_TYPES: Final = frozenset({b"application/json", b"application/x-ndjson"})


class JsonBodyMiddleware:
    """A body sent as anything but JSON (`application/json`, `application/*+json`, or NDJSON
    where an operation streams it) gets a 415 problem instead of being parsed as JSON anyway.
    A body without a `Content-Type` is read as JSON."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") in _WITH_BODY:  # type: ignore[comparison-overlap]
            headers = dict(scope["headers"])
            declared = headers.get(b"content-type")
            has_body = (
                headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers
            )
            if declared is not None and has_body and not is_json(declared):
                await _unsupported(scope, send)
                return
        await self.app(scope, receive, send)


def is_json(content_type: bytes) -> bool:
    """Whether a `Content-Type` value names JSON (or NDJSON)."""
    media = content_type.split(b";", 1)[0].strip().lower()
    return media in _JSON_TYPES or (media.startswith(b"application/") and media.endswith(b"+json"))


async def _unsupported(scope: Scope, send: Send) -> None:
    problem = Problem(
        type="/problems/unsupported-media-type",
        title=PROBLEM_TYPES["unsupported-media-type"][0],
        status=415,
        detail="Send the body as JSON (Content-Type: application/json).",
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
            (b"accept", b"application/json"),
        ],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})
