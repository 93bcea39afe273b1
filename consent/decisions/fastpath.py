"""`POST /v1/decisions` answered in front of Litestar's per-request machinery.

A single decision is the marketing systems' hot path. Measured with py-spy at saturation,
about a third of a worker's CPU per decision went to Litestar around the handler (a guard that
copies the route handler on every call, the signature model, body extraction, response
building), more than the deciding itself. This ASGI layer sits in front of Litestar's router
and answers the common request itself, with the same service call and the same answer:

- an API key already verified in the key cache, with the `decide` scope, not restricted to
  browser origins;
- a body within the app's limit that decodes strictly into a `DecisionRequest`.

Everything else (a key still to be looked up, a missing scope, an invalid or oversized body,
any other route) goes to Litestar unchanged, with the body replayed, so errors and the OpenAPI
schema stay Litestar's. An error raised while deciding is rendered by the app's own exception
handlers. Request ids and the access log line come from the same `RequestIdMiddleware`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import msgspec
import structlog
from litestar import Litestar, Request
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

from consent.decisions.schemas import DecisionRequest
from consent.decisions.service import Caller, DecisionService
from consent.errors import exception_handlers
from consent.middleware import RequestIdMiddleware, is_json
from consent.tenancy.auth import Principal, bearer_key, key_cache

__all__ = ["DecisionFastPath"]

PATH: Final = "/v1/decisions"
_PREPARED: Final = "consent.fast_decision"
_CONTENT_TYPE: Final = (b"content-type", b"application/json")
_decoder: Final = msgspec.json.Decoder(DecisionRequest)
_encoder: Final = msgspec.json.Encoder()


def _replaying(messages: list[ReceiveMessage], receive: Receive) -> Receive:
    """`receive` that first gives back the body messages already read."""
    pending = list(messages)

    async def replay() -> Any:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


class DecisionFastPath:
    """Wraps Litestar's ASGI handler (`app.asgi_handler`); see the module docstring."""

    def __init__(self, app: Litestar, inner: ASGIApp, *, max_body: int) -> None:
        self.app = app
        self.inner = inner
        self.max_body = max_body
        self.answered = 0
        self.delegated = 0
        self._handlers = exception_handlers()
        self._answer_with_id: ASGIApp = RequestIdMiddleware(self._answer)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"  # type: ignore[comparison-overlap]
            or scope["path"] != PATH
            or scope.get("method") != "POST"
        ):
            await self.inner(scope, receive, send)
            return
        who = self._principal(scope)
        if who is None or scope.get("query_string") or not _json_body(scope):
            await self._delegate(scope, [], receive, send)
            return
        messages, body = await self._read(receive)
        request = None if body is None else self._decode(body)
        if request is None:
            await self._delegate(scope, messages, receive, send)
            return
        scope["state"][_PREPARED] = (who, request)
        scope["path_template"] = PATH  # the route, for the access log
        self.answered += 1
        await self._answer_with_id(scope, receive, send)

    async def _delegate(
        self, scope: Scope, messages: list[ReceiveMessage], receive: Receive, send: Send
    ) -> None:
        self.delegated += 1
        await self.inner(scope, _replaying(messages, receive), send)

    @staticmethod
    def _principal(scope: Scope) -> Principal | None:
        """A cached key with the `decide` scope and no origin restriction, else None."""
        authorization = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        parsed = bearer_key(authorization.decode("latin-1")) if authorization else None
        who = key_cache.get(*parsed) if parsed else None
        if who is None or not who.has("decide") or who.allowed_origins:
            return None
        return who

    async def _read(self, receive: Receive) -> tuple[list[ReceiveMessage], bytes | None]:
        """The messages read, and the body (None when it exceeds the limit or the client left:
        the rest is left unread for Litestar)."""
        messages: list[ReceiveMessage] = []
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages, None
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_body:
                return messages, None
            if not message.get("more_body", False):
                return messages, b"".join(chunks)

    @staticmethod
    def _decode(body: bytes) -> DecisionRequest | None:
        try:
            return _decoder.decode(body)
        except msgspec.DecodeError:  # ValidationError included: Litestar words the problem
            return None

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        who, request = scope["state"].pop(_PREPARED)
        structlog.contextvars.bind_contextvars(tenant_id=str(who.tenant_id))
        service: DecisionService = self.app.state.decisions
        caller = Caller(
            tenant_id=who.tenant_id,
            api_key_id=who.key_id,
            request_id=scope["state"].get("request_id"),
        )
        try:
            out = await service.decide(caller, request)
        except Exception as exc:  # noqa: BLE001 - rendered as Litestar's handlers would
            await self._problem(scope, receive, send, exc)
            return
        body = _encoder.encode(out)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [_CONTENT_TYPE, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _problem(self, scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
        # The app's handler for the nearest class of `exc` (`Exception` is always mapped).
        handler: Callable[[Request[Any, Any, Any], Exception], Any] = next(
            self._handlers[cls] for cls in type(exc).__mro__ if cls in self._handlers
        )
        request: Request[Any, Any, Any] = Request(scope, receive, send)
        response = handler(request, exc)
        asgi: Callable[[Scope, Receive, Send], Awaitable[None]] = response.to_asgi_response(
            app=None, request=request
        )
        await asgi(scope, receive, send)


def _json_body(scope: Scope) -> bool:
    """Whether the body is declared JSON or not declared at all (as the routes read it); any
    other `Content-Type` is left to the router's 415."""
    content_type = next((v for k, v in scope["headers"] if k == b"content-type"), None)
    return content_type is None or is_json(content_type)
