"""The Litestar application: wiring only (routes, lifespan, errors, OpenAPI)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import structlog
from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from consent.audit.api import AuditController, audit_keys
from consent.audit.checkpoint import NoteSigner
from consent.audit.integrator import Integrator
from consent.audit.outbox import AuditWriter
from consent.audit.page import static_files, verify_page
from consent.catalog.api import CatalogController
from consent.config import Settings
from consent.consents.api import ConsentController
from consent.consents.evidence import parse_networks
from consent.crypto.binding import KeyRingMismatch, bind_or_check
from consent.crypto.keys import KeyRing, load_keyring
from consent.db.database import Database
from consent.db.listening import Listener
from consent.db.migrate import apply_migrations, default_migrations_dir, discover
from consent.decisions.api import DecisionController
from consent.decisions.fastpath import DecisionFastPath
from consent.decisions.runtime import Decisions
from consent.docs_ui import DocsRouter, SelfHostedSwaggerRenderPlugin
from consent.errors import exception_handlers
from consent.health.api import live, live_head, ready, ready_head
from consent.idempotency import keep_pruned
from consent.middleware import (
    CorsMiddleware,
    JsonBodyMiddleware,
    KnownQueryMiddleware,
    RequestIdMiddleware,
)
from consent.openapi import document_problems
from consent.preferences.api import PreferenceController
from consent.problems import problem_page
from consent.subjects.api import SubjectController
from consent.tenancy.api import TenancyController
from consent.tenancy.revocations import follow_revocations

__all__ = ["create_app"]

MAX_BODY_BYTES: Final = 1_048_576
_log = structlog.get_logger(__name__)


def _openapi() -> OpenAPIConfig:
    docs_path = "/schema"
    return OpenAPIConfig(
        title="consent",
        version="0.1.0",
        description=(
            "Privacy-first consent and preference service. Authenticate with "
            "`Authorization: Bearer <API key>`; errors are RFC 9457 problem details."
        ),
        path=docs_path,
        # Its unknown paths are 404 problems, not Litestar's HTML page (consent.docs_ui).
        openapi_router=DocsRouter(docs_path, route_handlers=[], include_in_schema=False),
        use_handler_docstrings=True,
        # Swagger UI from the service itself, never from a CDN (consent.docs_ui).
        render_plugins=[SelfHostedSwaggerRenderPlugin(docs_path)],
        components=Components(
            security_schemes={
                "apiKey": SecurityScheme(
                    type="http", scheme="bearer", description="An API key: csk_<id>_<secret>"
                )
            }
        ),
    )


def _upkeep(app: Litestar, settings: Settings, stop: asyncio.Event) -> list[asyncio.Task[None]]:
    """Background upkeep, until `stop`. It runs once per service, where the audit integrator
    runs: here, or (under `consent serve`) in its integrator process rather than in every
    worker."""
    if not settings.audit_integrator:
        return []
    integrator = Integrator(app.state.db, app.state.audit_signer, sign_interval=1.0)
    return [
        asyncio.create_task(integrator.run(stop)),
        asyncio.create_task(keep_pruned(app.state.db, settings.idempotency_retention_days, stop)),
    ]


def create_app(
    settings: Settings, *, db: Database | None = None, keyring: KeyRing | None = None
) -> Litestar:
    """Build the app. A given `db`/`keyring` is used as is and not closed on shutdown."""
    migrations_dir = default_migrations_dir()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.trusted_proxies = parse_networks(settings.trusted_proxies)
        app.state.migrations = discover(migrations_dir)
        app.state.keyring = keyring or load_keyring(
            settings.resolved_keys_dir,
            kek=settings.kek,
            create=settings.environment == "development",
        )
        own_db = db is None
        app.state.db = db or await Database.from_settings(settings)
        try:
            if own_db and settings.migrate_on_start:
                async with app.state.db.pool.acquire() as conn:
                    applied = await apply_migrations(conn, migrations_dir)
                if applied:
                    _log.info("migrations.applied", versions=[m.version for m in applied])
            async with app.state.db.pool.acquire() as conn:
                try:
                    await bind_or_check(conn, app.state.keyring)
                except KeyRingMismatch as exc:
                    _log.error("keys.not_this_database", detail=str(exc))
                    raise
            app.state.audit = AuditWriter(settings.audit_origin)
            app.state.audit_signer = NoteSigner(
                settings.audit_origin, app.state.keyring.signing_key
            )
            # One connection per process follows the notifications: reloads, revocations.
            listener = Listener(app.state.db)
            decisions = await Decisions.open(settings, app.state.db, app.state.keyring, listener)
            decisions.install(app.state)
            follow_revocations(listener)
            listener.start()
            stop = asyncio.Event()
            background = _upkeep(app, settings, stop)
            _log.info("service.started")
            try:
                yield
            finally:
                stop.set()
                await asyncio.gather(*background, return_exceptions=True)
                await listener.aclose()
                await decisions.aclose()
        finally:
            if own_db:
                await app.state.db.close()
            _log.info("service.stopped")

    app = Litestar(
        route_handlers=[
            live,
            live_head,
            ready,
            ready_head,
            problem_page,
            TenancyController,
            CatalogController,
            ConsentController,
            DecisionController,
            PreferenceController,
            SubjectController,
            AuditController,
            audit_keys,
            verify_page,
            static_files,
        ],
        lifespan=[lifespan],
        middleware=[JsonBodyMiddleware, KnownQueryMiddleware],
        exception_handlers=exception_handlers(),
        openapi_config=_openapi(),
        request_max_body_size=MAX_BODY_BYTES,
        debug=False,
        logging_config=None,  # the standard library logs as configure_logging set it up: JSON lines
    )
    document_problems(app)
    # In front of the router: answers the common single decision without Litestar's
    # per-request machinery (see consent.decisions.fastpath); everything else passes through.
    # The request id wraps the whole handler, not each route: an unknown route (404) or
    # method (405) is answered before any route's middleware and must carry it too.
    app.state.decision_fast_path = DecisionFastPath(
        app, RequestIdMiddleware(app.asgi_handler), max_body=MAX_BODY_BYTES
    )
    # Outermost: every answer to a browser on another origin, the fast path's too (see
    # consent.middleware.CorsMiddleware for why any origin may call, without credentials).
    app.asgi_handler = CorsMiddleware(app.state.decision_fast_path)
    return app
