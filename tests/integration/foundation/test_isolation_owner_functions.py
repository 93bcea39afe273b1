"""The functions that run as the schema owner (beyond row-level security) for erasure act on
the calling tenant's rows only: a tenant session that names another tenant's subjects
changes nothing of theirs."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import pytest

from consent.db.database import Database
from tests.conftest import Catalog, Tenant

pytestmark = pytest.mark.integration

BOB = {"identifier": {"type": "email", "value": "bob@example.com"}}


async def test_erasure_functions_never_reach_another_tenants_subjects(
    client: Any, db: Database, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = Catalog(client, other_tenant)
    await theirs.post("/v1/purposes", {"key": "ads", "name": "Ads", "legal_basis": "consent"})
    await theirs.post("/v1/notices", {"key": "main", "purposes": ["ads"]})
    await theirs.publish_version()
    unknown = {
        "subject": BOB,
        "action": "ads.personalise",
        "context": {"requester": "dsp", "jurisdiction": "DE"},
    }
    asked = await client.post("/v1/decisions", json=unknown, headers=other_tenant.headers)
    assert asked.status_code == 200, asked.text
    retried = {**other_tenant.headers, "Idempotency-Key": "bob-1"}
    response = await client.post(
        "/v1/consents",
        json={
            **BOB,
            "choices": [{"purpose": "ads", "choice": "granted"}],
            "notice_version_id": theirs.versions[1],
            "surface": "banner",
            "channel": "web",
        },
        headers=retried,
    )
    assert response.status_code == 201, response.text
    bob = [UUID(response.json()["subject_id"])]

    async def state() -> tuple[Any, ...]:
        async with db.system() as conn:
            return (
                await conn.fetchval("select erased_at from subject where id = $1", bob[0]),
                await conn.fetchval(
                    "select count(*) from decision_log where lookup_hmac is not null "
                    "and tenant_id = $1",
                    UUID(other_tenant.id),
                ),
                await conn.fetchval(
                    "select request_sha256 from idempotency_record where key = 'bob-1'"
                ),
            )

    before = await state()
    assert before[0] is None
    assert before[1] == 1
    async with db.tenant(tenant.id) as conn:
        assert await conn.fetchval("select forget_decision_lookups($1::uuid[])", bob) == 0
        assert await conn.fetchval("select mark_subjects_erased($1::uuid[])", bob) == 0
        assert await conn.fetchval("select forget_idempotent_requests($1::uuid[])", bob) == 0
    assert await state() == before
    found = await theirs.post("/v1/subjects/lookup", BOB, status=200)
    assert found["subject_id"] == str(bob[0])


async def test_a_tenant_cannot_fence_another_tenants_decisions(
    db: Database, tenant: Tenant, other_tenant: Tenant
) -> None:
    """The erasure fence (fence_decision_lookups) drops the identifier HMACs of the named
    tenant's decisions in flight; only erasure (for the caller's own tenant) and the owner's
    renormalise may take it, never a tenant session naming another tenant."""

    async def epoch() -> Any:
        async with db.system() as conn:
            return await conn.fetchval(
                "select epoch from tenant_erasure_epoch where tenant_id = $1",
                UUID(other_tenant.id),
            )

    before = await epoch()
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with db.tenant(tenant.id) as conn:
            await conn.execute("select fence_decision_lookups($1)", UUID(other_tenant.id))
    assert await epoch() == before
