"""Idempotency records are kept for a retention period, then deleted by the service.

A client retries within minutes; a record kept for ever makes the table (and the request hashes
it holds) grow with every write ever made. After `CONSENT_IDEMPOTENCY_RETENTION_DAYS` (default
30) a record goes, and its key runs as new.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
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

ROOT = Path(__file__).resolve().parents[3]


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


async def _an_ancient_record(db: Database, tenant: Tenant) -> None:
    async with db.system() as conn:
        await conn.execute(
            "insert into idempotency_record (tenant_id, key, request_sha256, request_hash_kind,"
            " status_code, response_body, created_at) "
            "values ($1, 'ancient', '\\x00'::bytea, 'hmac', 201, '{}'::bytea,"
            " now() - interval '8 days')",
            msgspec.convert(tenant.id, type=str),
        )


async def _records(db: Database) -> int:
    async with db.system() as conn:
        return int(await conn.fetchval("select count(*) from idempotency_record"))


async def _served_a_while(settings: Settings, keyring: KeyRing, db: Database) -> int:
    """Start an app, let its loop run (answering health checks) until no record is left or
    100 requests went by; the records left."""
    async with AsyncTestClient(app=create_app(settings, keyring=keyring)) as service:
        assert (await service.get("/health/ready")).status_code == 200
        for _ in range(100):
            if await _records(db) == 0:
                break
            await service.get("/health/live")  # let the app's loop run its background task
    return await _records(db)


async def test_the_service_prunes_when_it_starts(
    settings: Settings, db: Database, keyring: KeyRing, tenant: Tenant
) -> None:
    await _an_ancient_record(db, tenant)
    alone = msgspec.structs.replace(settings, idempotency_retention_days=7, audit_integrator=True)
    assert await _served_a_while(alone, keyring, db) == 0


async def test_workers_leave_pruning_to_the_one_background_process(
    settings: Settings, db: Database, keyring: KeyRing, tenant: Tenant
) -> None:
    # A worker of `consent serve` runs with its integrator elsewhere: N workers would make N
    # identical deletes every hour; the integrator process makes the one (next test).
    await _an_ancient_record(db, tenant)
    worker = msgspec.structs.replace(settings, idempotency_retention_days=7, audit_integrator=False)
    assert await _served_a_while(worker, keyring, db) == 1


async def test_the_integrator_process_prunes(
    database_dsn: str, keys_dir: Path, tmp_path: Path, db: Database, tenant: Tenant
) -> None:
    await _an_ancient_record(db, tenant)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CONSENT_")},
        "CONSENT_DATABASE_URL": database_dsn,
        "CONSENT_KEYS_DIR": str(keys_dir),
        "CONSENT_DATA_DIR": str(tmp_path),
        "CONSENT_IDEMPOTENCY_RETENTION_DAYS": "7",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "consent", "audit", "integrate", "--loop"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(300):
            if await _records(db) == 0 or proc.poll() is not None:
                break
            await asyncio.sleep(0.05)
        assert await _records(db) == 0
        assert proc.poll() is None  # still integrating
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()


@pytest.mark.parametrize("raw", ["0", "-3", "a week", "36501"])
def test_a_retention_that_is_no_number_of_days_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match="CONSENT_IDEMPOTENCY_RETENTION_DAYS"):
        load_settings({"CONSENT_IDEMPOTENCY_RETENTION_DAYS": raw})
    assert (
        load_settings({"CONSENT_IDEMPOTENCY_RETENTION_DAYS": "2"}).idempotency_retention_days == 2
    )
