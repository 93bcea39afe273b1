"""GET /health/live and /health/ready."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Final

import msgspec
from litestar import Request, Response, get, head
from litestar.openapi.datastructures import ResponseSpec

from consent.db.migrate import migrations_current

if TYPE_CHECKING:
    from litestar.response.base import ASGIResponse

__all__ = ["live", "live_head", "ready", "ready_head"]


class Health(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The service's health: whether it is up, and for readiness, what it depends on."""

    status: Annotated[
        str,
        msgspec.Meta(
            description="`ok` from /health/live; `ready` (HTTP 200) or `unavailable` "
            "(HTTP 503) from /health/ready."
        ),
    ]
    database: Annotated[
        bool | None,
        msgspec.Meta(
            description="Readiness only: whether PostgreSQL answered. Omitted by /health/live."
        ),
    ] = None
    migrations_current: Annotated[
        bool | None,
        msgspec.Meta(
            description="Readiness only: whether every migration shipped with the service is "
            "applied (false when the database did not answer). Omitted by /health/live."
        ),
    ] = None


_LIVE: Final = Health(status="ok")


@get("/health/live", tags=["health"], summary="Liveness")
async def live() -> Health:
    """The process is up and serving requests."""
    return _LIVE


@get(
    "/health/ready",
    tags=["health"],
    summary="Readiness",
    responses={
        503: ResponseSpec(
            Health,
            description="Not ready: `database` or `migrations_current` says why "
            "(`status` is `unavailable`).",
            generate_examples=False,
        )
    },
)
async def ready(request: Request[Any, Any, Any]) -> Response[Health]:
    """Ready when PostgreSQL answers and every migration on disk is applied; 503 otherwise."""
    body = await _readiness(request)
    return Response(body, status_code=200 if body.status == "ready" else 503)


async def _readiness(request: Request[Any, Any, Any]) -> Health:
    db = request.app.state.db
    database = await db.ping()
    current = database and await migrations_current(db, request.app.state.migrations)
    ok = database and current
    return Health(
        status="ready" if ok else "unavailable", database=database, migrations_current=current
    )


class _HeadResponse(Response[None]):
    """The answer to HEAD: the status and headers GET would send for `health`, no body
    (RFC 9110 9.3.2). Litestar would describe a body of `null` (4 bytes of JSON)."""

    def __init__(self, health: Health, status_code: int) -> None:
        body = msgspec.json.encode(health)
        super().__init__(
            None,
            status_code=status_code,
            headers={"content-type": "application/json", "content-length": str(len(body))},
        )

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> ASGIResponse:
        return super().to_asgi_response(*args, **{**kwargs, "is_head_response": True})


# Uptime monitors often probe with HEAD: the same status and headers, no body.
@head(
    "/health/live",
    tags=["health"],
    summary="Liveness (HEAD)",
    response_description="The process serves requests. No body.",
)
async def live_head() -> Response[None]:
    """As `GET /health/live`, without a body: 200 while the process serves requests."""
    return _HeadResponse(_LIVE, 200)


@head(
    "/health/ready",
    tags=["health"],
    summary="Readiness (HEAD)",
    response_description="Ready. No body.",
    responses={
        503: ResponseSpec(
            None, description="Not ready (GET says why). No body.", generate_examples=False
        )
    },
)
async def ready_head(request: Request[Any, Any, Any]) -> Response[None]:
    """As `GET /health/ready`, without a body: 200 when ready, 503 when not."""
    body = await _readiness(request)
    return _HeadResponse(body, 200 if body.status == "ready" else 503)
