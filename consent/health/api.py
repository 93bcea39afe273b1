"""GET /health/live and /health/ready."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, head
from litestar.openapi.datastructures import ResponseSpec

from consent.db.migrate import migrations_current

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


@get("/health/live", tags=["health"], summary="Liveness")
async def live() -> Health:
    """The process is up and serving requests."""
    return Health(status="ok")


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


# Uptime monitors often probe with HEAD: the same status, no body.
@head(
    "/health/live",
    tags=["health"],
    summary="Liveness (HEAD)",
    response_description="The process serves requests. No body.",
)
async def live_head() -> None:
    """As `GET /health/live`, without a body: 200 while the process serves requests."""


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
    return Response(None, status_code=200 if body.status == "ready" else 503)
