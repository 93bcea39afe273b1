"""The hot write path: the write-context cache refuses exactly what the database refuses, and
`Database.tenant_hot` commits, rolls back and isolates like `Database.tenant`."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from consent.consents.service import _WriteContexts, write_contexts
from consent.db.database import Database
from tests.conftest import Tenant
from tests.integration.ledger.conftest import Catalog

pytestmark = pytest.mark.integration


def _device(n: int) -> dict[str, str]:
    return {"type": "device", "value": f"write-path-{n}"}


def _errors(body: Any) -> dict[str, str]:
    return {e["field"]: e["message"] for e in body.get("errors", [])} or {"": body["detail"]}


async def test_a_cached_context_never_hides_an_unknown_purpose(catalog: Catalog) -> None:
    grant = [{"purpose": "analytics", "choice": "granted"}]
    await catalog.consent(identifier=_device(1), choices=grant)
    await catalog.consent(identifier=_device(2), choices=grant)  # served from the cache
    refused = await catalog.consent(
        status=400,
        identifier=_device(1),
        choices=[*grant, {"purpose": "nonexistent", "choice": "granted"}],
    )
    assert "unknown purpose 'nonexistent'" in str(_errors(refused))


async def test_a_purpose_or_version_is_usable_as_soon_as_it_exists(catalog: Catalog) -> None:
    """Refusals are never cached: what was unknown a moment ago is accepted at once."""
    newsletter = [{"purpose": "newsletter", "choice": "granted"}]
    refused = await catalog.consent(
        status=400, identifier=_device(1), choices=[{"purpose": "sms", "choice": "granted"}]
    )
    assert "unknown purpose 'sms'" in str(_errors(refused))
    await catalog.post("/v1/purposes", {"key": "sms", "name": "SMS", "legal_basis": "consent"})
    await catalog.consent(
        identifier=_device(1),
        choices=[{"purpose": "sms", "choice": "denied"}],  # a GPC signal only objects
        method="gpc",
    )

    draft = await catalog.post(
        "/v1/notices/main/versions",
        {"texts": {"en": {"title": "New", "body": "Changed."}}, "change_kind": "material"},
    )
    unpublished = await catalog.consent(
        status=400, identifier=_device(1), choices=newsletter, notice_version_id=draft["id"]
    )
    assert _errors(unpublished) == {"notice_version_id": "this notice version is not published"}
    await catalog.post(f"/v1/notices/main/versions/{draft['version']}/publish", None, status=200)
    await catalog.consent(identifier=_device(1), choices=newsletter, notice_version_id=draft["id"])

    missing = await catalog.consent(
        status=400, identifier=_device(1), choices=newsletter, notice_version_id=str(uuid.uuid4())
    )
    assert _errors(missing) == {"notice_version_id": "no such notice version"}


async def test_checks_against_a_cached_version_stay_exact(catalog: Catalog) -> None:
    grant = [{"purpose": "analytics", "choice": "granted"}]
    await catalog.consent(identifier=_device(1), choices=grant, language="en")
    wrong_language = await catalog.consent(
        status=400, identifier=_device(1), choices=grant, language="fr"
    )
    assert _errors(wrong_language) == {"language": "the notice version has no text in it"}
    wrong_hash = await catalog.consent(
        status=400, identifier=_device(1), choices=grant, notice_hash="0" * 64
    )
    assert _errors(wrong_hash) == {"notice_hash": "does not match the notice version"}
    not_asked = await catalog.consent(
        status=400, identifier=_device(1), choices=[{"purpose": "essential", "choice": "granted"}]
    )
    assert _errors(not_asked) == {"choices[0].purpose": "not asked by the notice shown"}


def test_write_contexts_expire_and_stay_bounded() -> None:
    key = (uuid.uuid4(), ("ads",), None)
    expired = _WriteContexts(ttl=-1.0)
    expired.put(key, {"known_purposes": ["ads"]})
    assert expired.get(key) is None
    small = _WriteContexts(ttl=60.0, max_size=2)
    keys = [(uuid.uuid4(), ("ads",), None) for _ in range(3)]
    for k in keys:
        small.put(k, {"known_purposes": ["ads"]})
    assert small.get(keys[2]) is not None
    assert len(small._entries) <= 2
    assert write_contexts.ttl == 2.0


# -- Database.tenant_hot ----------------------------------------------------------------------
async def _count_properties(db: Database, tenant_id: uuid.UUID) -> int:
    async with db.tenant(tenant_id) as conn:
        return int(await conn.fetchval("select count(*) from property"))


async def _add_property(conn: Any, tenant_id: uuid.UUID) -> None:
    await conn.execute(
        "insert into property (tenant_id, name, kind) values ($1, $2, 'website')",
        tenant_id,
        f"web-{uuid.uuid4().hex[:8]}",
    )


async def test_tenant_hot_runs_as_the_tenant_and_commits(db: Database, tenant: Tenant) -> None:
    tenant_id = uuid.UUID(tenant.id)
    async with db.tenant_hot(tenant_id) as conn:
        assert await conn.fetchval("select current_user") == "consent_app"
        assert await conn.fetchval("select app_tenant_id()") == tenant_id
        assert conn.is_in_transaction()
        await _add_property(conn, tenant_id)
    assert await _count_properties(db, tenant_id) == 1
    async with db.pool.acquire() as conn:
        # Role and tenant were transaction-local: the pooled session is the owner's again.
        assert await conn.fetchval("select current_user") != "consent_app"
        assert await conn.fetchval("select app_tenant_id()") is None
        assert not conn.is_in_transaction()


async def test_tenant_hot_is_isolated_by_row_level_security(
    db: Database, tenant: Tenant, other_tenant: Tenant
) -> None:
    async with db.tenant_hot(uuid.UUID(tenant.id)) as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await _add_property(conn, uuid.UUID(other_tenant.id))
    assert await _count_properties(db, uuid.UUID(other_tenant.id)) == 0


async def _add_then_fail(db: Database, tenant_id: uuid.UUID, sql: str | None) -> None:
    async with db.tenant_hot(tenant_id) as conn:
        await _add_property(conn, tenant_id)
        if sql is None:
            raise RuntimeError("boom")
        await conn.execute(sql)


async def test_tenant_hot_rolls_back_on_error(db: Database, tenant: Tenant) -> None:
    tenant_id = uuid.UUID(tenant.id)
    with pytest.raises(RuntimeError, match="boom"):
        await _add_then_fail(db, tenant_id, None)
    with pytest.raises(asyncpg.UndefinedTableError):
        await _add_then_fail(db, tenant_id, "select * from no_such_table")
    assert await _count_properties(db, tenant_id) == 0


async def test_tenant_hot_rolls_back_when_cancelled(db: Database, tenant: Tenant) -> None:
    tenant_id = uuid.UUID(tenant.id)
    inserted = asyncio.Event()

    async def write_then_wait() -> None:
        async with db.tenant_hot(tenant_id) as conn:
            await _add_property(conn, tenant_id)
            inserted.set()
            await conn.execute("select pg_sleep(30)")

    task = asyncio.create_task(write_then_wait())
    await inserted.wait()
    await asyncio.sleep(0.05)  # the pg_sleep is running on the server
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _count_properties(db, tenant_id) == 0
    async with db.pool.acquire() as conn:
        assert not conn.is_in_transaction()


async def test_tenant_hot_refuses_savepoints_and_non_uuid_tenants(
    db: Database, tenant: Tenant
) -> None:
    tenant_id = uuid.UUID(tenant.id)
    with pytest.raises(asyncpg.InterfaceError, match="manually started transaction"):
        async with db.tenant_hot(tenant_id) as conn, conn.transaction():
            pass
    for bad in (tenant.id, f"{tenant.id}', true), set_config('role', 'postgres"):
        with pytest.raises(TypeError):
            async with db.tenant_hot(bad) as conn:  # type: ignore[arg-type]
                pass


async def test_a_write_waiting_on_a_long_transaction_is_told_to_retry_soon(
    catalog: Catalog, db: Database
) -> None:
    """A bulk import holds the state rows it wrote until it commits (minutes, for a big file):
    a consent for one of those subjects and purposes waited for the whole import and then, at
    the 30 s statement timeout, was a 503 saying the database was unavailable. It now gives up
    after a few seconds: a 503 that says what happened, with Retry-After, and writes nothing."""
    grant = [{"purpose": "analytics", "choice": "granted"}]
    written = await catalog.consent(identifier=_device(40), choices=grant)
    subject = uuid.UUID(written["subject_id"])
    async with db.pool.acquire() as holder, holder.transaction():  # as an import holds it
        await holder.execute(
            "select 1 from consent_state where subject_id = $1 for update", subject
        )
        started = asyncio.get_running_loop().time()
        waited = await catalog.client.post(
            "/v1/consents",
            json={
                "identifier": _device(40),
                "choices": [{"purpose": "analytics", "choice": "withdrawn"}],
                "notice_version_id": catalog.versions[max(catalog.versions)],
                "surface": "banner",
                "channel": "web",
            },
            headers=catalog.h,
        )
        took = asyncio.get_running_loop().time() - started
    assert waited.status_code == 503, waited.text
    assert waited.headers["retry-after"] == "5"
    assert "Another operation" in waited.json()["detail"]
    assert took < 15
    async with db.system() as conn:
        assert (
            await conn.fetchval("select count(*) from consent_event where subject_id = $1", subject)
            == 1
        )
