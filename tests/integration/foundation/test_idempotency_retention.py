"""Idempotency records are kept for a retention period, then deleted by the service.

A client retries within minutes; a record kept for ever makes the table (and the request hashes
it holds) grow with every write ever made. After `CONSENT_IDEMPOTENCY_RETENTION_DAYS` (default
30) a record goes, and its key runs as new.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from consent.app import create_app
from consent.config import ConfigError, Settings, load_settings
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from consent.idempotency import forget_expired
from tests.conftest import Tenant

pytestmark = pytest.mark.integration


def _purpose(key: str) -> dict[str, Any]:
    return {"key": key, "name": key.title(), "legal_basis": "consent"}


async def _age(db: Database, key: str, days: float) -> None:
    async with db.system() as conn:
        await conn.execute(
            "update idempotency_record set created_at = now() - make_interval(secs => $2) "
            "where key = $1",
            key,
            days * 86_400,
        )


async def test_an_expired_record_is_deleted_and_its_key_runs_as_new(
    client: Any, tenant: Tenant, db: Database
) -> None:
    h = tenant.headers
    for key, purpose in (("old-key", "newsletter"), ("new-key", "offers")):
        made = await client.post(
            "/v1/purposes", json=_purpose(purpose), headers={**h, "Idempotency-Key": key}
        )
        assert made.status_code == 201, made.text
    await _age(db, "old-key", 31)
    await _age(db, "new-key", 29)
    assert await forget_expired(db, 30) == 1
    async with db.system() as conn:
        kept = [r["key"] for r in await conn.fetch("select key from idempotency_record")]
    assert kept == ["new-key"]
    # The recent key still replays its answer; the expired one is a new request.
    again = await client.post(
        "/v1/purposes", json=_purpose("offers"), headers={**h, "Idempotency-Key": "new-key"}
    )
    assert again.status_code == 201
    reused = await client.post(
        "/v1/purposes", json=_purpose("alerts"), headers={**h, "Idempotency-Key": "old-key"}
    )
    assert reused.status_code == 201, reused.text
    assert reused.json()["key"] == "alerts"


async def test_a_large_backlog_goes_in_short_transactions(db: Database, tenant: Tenant) -> None:
    async with db.system() as conn:
        await conn.execute(
            "insert into idempotency_record (tenant_id, key, request_sha256, request_hash_kind,"
            " status_code, response_body, created_at) "
            "select $1, 'k' || n, '\\x00'::bytea, 'hmac', 201, '{}'::bytea,"
            " now() - interval '40 days' from generate_series(1, 12) as n",
            msgspec.convert(tenant.id, type=str),
        )
    assert await forget_expired(db, 30, batch=5) == 12
    assert await forget_expired(db, 30, batch=5) == 0


async def test_the_service_prunes_when_it_starts(
    settings: Settings, db: Database, keyring: KeyRing, tenant: Tenant
) -> None:
    async with db.system() as conn:
        await conn.execute(
            "insert into idempotency_record (tenant_id, key, request_sha256, request_hash_kind,"
            " status_code, response_body, created_at) "
            "values ($1, 'ancient', '\\x00'::bytea, 'hmac', 201, '{}'::bytea,"
            " now() - interval '8 days')",
            msgspec.convert(tenant.id, type=str),
        )
    week = msgspec.structs.replace(settings, idempotency_retention_days=7)
    async with AsyncTestClient(app=create_app(week, keyring=keyring)) as service:
        assert (await service.get("/health/ready")).status_code == 200
        for _ in range(100):
            async with db.system() as conn:
                left = await conn.fetchval("select count(*) from idempotency_record")
            if left == 0:
                break
            await service.get("/health/live")  # let the app's loop run its background task
    assert left == 0


@pytest.mark.parametrize("raw", ["0", "-3", "a week", "36501"])
def test_a_retention_that_is_no_number_of_days_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match="CONSENT_IDEMPOTENCY_RETENTION_DAYS"):
        load_settings({"CONSENT_IDEMPOTENCY_RETENTION_DAYS": raw})
    assert (
        load_settings({"CONSENT_IDEMPOTENCY_RETENTION_DAYS": "2"}).idempotency_retention_days == 2
    )
