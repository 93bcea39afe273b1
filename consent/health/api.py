"""GET /health/live and /health/ready."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get

from consent.db.migrate import migrations_current

__all__ = ["live", "ready"]


class Health(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    status: str
    database: bool | None = None
    migrations_current: bool | None = None


@get("/health/live", tags=["health"], summary="Liveness")
async def live() -> Health:
    """The process is up and serving requests."""
    return Health(status="ok")


@get(
    "/health/ready",
    tags=["health"],
    summary="Readiness",
    responses={},
)
async def ready(request: Request[Any, Any, Any]) -> Response[Health]:
    """Ready when PostgreSQL answers and every migration on disk is applied; 503 otherwise."""
    db = request.app.state.db
    database = await db.ping()
    current = database and await migrations_current(db, request.app.state.migrations)
    ok = database and current
    body = Health(
        status="ready" if ok else "unavailable", database=database, migrations_current=current
    )
    return Response(body, status_code=200 if ok else 503)
