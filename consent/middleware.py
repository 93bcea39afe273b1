"""ASGI middleware: a request id on every request, response and log line."""

from __future__ import annotations

import os
import re
import time
from typing import Any, Final

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RequestIdMiddleware"]

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
