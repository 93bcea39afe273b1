"""The database itself keeps tenants apart, behind the API's own checks."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from consent.db.database import Database
from tests.conftest import Tenant

pytestmark = pytest.mark.integration

TENANT_TABLES = ["tenant", "property", "api_key", "subject_key", "idempotency_record"]


async def _seed(db: Database, tenant: Tenant, other: Tenant) -> None:
    async with db.system() as conn:
        for t in (tenant, other):
            await conn.execute(
                "insert into property (tenant_id, name, kind) values ($1, 'web', 'website')",
                uuid.UUID(t.id),
            )
            await conn.execute(
                "insert into subject_key (tenant_id, subject_id, kek_id, dek_wrapped) "
                "values ($1, $2, 'k', '\\x00')",
                uuid.UUID(t.id),
                uuid.uuid4(),
            )
            await conn.execute(
                "insert into idempotency_record (tenant_id, key, request_sha256, status_code, "
                "response_body) values ($1, 'k1', '\\x00', 201, '\\x00')",
                uuid.UUID(t.id),
            )


async def test_raw_sql_under_tenant_session_sees_only_own_rows(
    db: Database, tenant: Tenant, other_tenant: Tenant
) -> None:
    await _seed(db, tenant, other_tenant)
    async with db.pool.acquire() as conn:
        for table in TENANT_TABLES:
            column = "id" if table == "tenant" else "tenant_id"
            async with conn.transaction():
                await conn.execute("set local role consent_app")
                await conn.execute("select set_config('app.tenant_id', $1, true)", tenant.id)
                seen = await conn.fetch(f"select distinct {column} as t from {table}")
                total = await conn.fetchval(f"select count(*) from {table}")
            assert {str(r["t"]) for r in seen} == {tenant.id}, table
            assert total >= 1, table


async def test_no_tenant_setting_sees_nothing(
    db: Database, tenant: Tenant, other_tenant: Tenant
) -> None:
    await _seed(db, tenant, other_tenant)
    async with db.pool.acquire() as conn:
        for table in TENANT_TABLES:
            async with conn.transaction():
                await conn.execute("set local role consent_app")
                count = await conn.fetchval(f"select count(*) from {table}")
            assert count == 0, table


async def test_cannot_write_into_another_tenant(
    db: Database, tenant: Tenant, other_tenant: Tenant
) -> None:
    async with db.tenant(tenant.id) as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with conn.transaction():
                await conn.execute(
                    "insert into property (tenant_id, name, kind) values ($1, 'x', 'website')",
                    uuid.UUID(other_tenant.id),
                )
        await _seed_one(conn, tenant)
    async with db.tenant(tenant.id) as conn:
        updated = await conn.execute(
            "update api_key set name = 'hijacked' where tenant_id = $1", uuid.UUID(other_tenant.id)
        )
        assert updated == "UPDATE 0"


async def _seed_one(conn: object, tenant: Tenant) -> None:
    await conn.execute(  # type: ignore[attr-defined]
        "insert into property (tenant_id, name, kind) values ($1, 'ok', 'website')",
        uuid.UUID(tenant.id),
    )


async def test_app_role_cannot_escape(db: Database, tenant: Tenant) -> None:
    async with db.tenant(tenant.id) as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with conn.transaction():
                await conn.execute("alter table property disable row level security")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with conn.transaction():
                await conn.execute("delete from tenant")
