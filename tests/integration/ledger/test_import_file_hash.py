"""`consent import` remembers the files it committed by a keyed hash, not a plain SHA-256.

An import file of one row (one person's e-mail address and a choice) is easy to rebuild: with
the plain SHA-256 of it in `import_run`, whoever held a database dump could confirm a guessed
address, also after that person's erasure. "The same file again does nothing" must keep
working, for files remembered before the change too.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest

from consent.consents.importer import ImportResult, import_file
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from tests.conftest import Tenant
from tests.integration.ledger.conftest import Catalog

pytestmark = pytest.mark.integration

DAY_AGO = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0).isoformat()


def _one_person(path: Path, email: str) -> Path:
    row = {
        "identifier_type": "email",
        "identifier_value": email,
        "purpose": "ads",
        "choice": "granted",
        "occurred_at": DAY_AGO,
        "channel": "email",
    }
    path.write_text(json.dumps(row) + "\n")
    return path


async def _import(
    db: Database, keyring: KeyRing, tenant: Tenant, path: Path, *, again: bool = False
) -> ImportResult:
    return await import_file(db, keyring, UUID(tenant.id), path, stderr=io.StringIO(), again=again)


async def _remembered(db: Database, tenant: Tenant) -> list[tuple[bytes, str]]:
    async with db.system() as conn:
        rows = await conn.fetch(
            "select file_sha256, file_hash_kind from import_run where tenant_id = $1 "
            "order by imported_at",
            UUID(tenant.id),
        )
    return [(bytes(r["file_sha256"]), str(r["file_hash_kind"])) for r in rows]


async def _events(db: Database) -> int:
    async with db.system() as conn:
        return int(await conn.fetchval("select count(*) from consent_event"))


async def test_a_file_is_remembered_by_a_keyed_hash_and_imported_once(
    catalog: Catalog, db: Database, keyring: KeyRing, tenant: Tenant, tmp_path: Path
) -> None:
    path = _one_person(tmp_path / "one.ndjson", "ann.guess@example.com")
    first = await _import(db, keyring, tenant, path)
    assert (first.committed, first.imported) == (True, 1)
    data = path.read_bytes()
    ((stored, kind),) = await _remembered(db, tenant)
    assert stored != hashlib.sha256(data).digest()
    assert kind == "hmac"
    key = keyring.import_file_key(tenant.id)
    assert stored == hmac.new(key, data, hashlib.sha256).digest()
    # Its own key: not the tenant's lookup or idempotency key.
    assert key not in {keyring.lookup_key(tenant.id), keyring.idempotency_key(tenant.id)}
    second = await _import(db, keyring, tenant, path)
    assert second.already_imported_at is not None
    assert (second.committed, second.imported) == (False, 0)
    assert await _events(db) == 1


async def test_a_file_remembered_by_its_plain_sha256_before_is_still_not_imported_again(
    catalog: Catalog, db: Database, keyring: KeyRing, tenant: Tenant, tmp_path: Path
) -> None:
    """A row written before migration 0024 (or by a worker not yet upgraded) names no kind:
    it holds the plain SHA-256, and the file it names still imports nothing again."""
    path = _one_person(tmp_path / "old.ndjson", "bob.old@example.com")
    async with db.system() as conn:
        when = await conn.fetchval(
            "insert into import_run (tenant_id, file_sha256, rows_imported) "
            "values ($1, $2, 1) returning imported_at",
            UUID(tenant.id),
            hashlib.sha256(path.read_bytes()).digest(),
        )
    again = await _import(db, keyring, tenant, path)
    assert again.already_imported_at == when
    assert (again.committed, again.imported) == (False, 0)
    assert await _events(db) == 0
    # The keyed hash of another file does not match a plain one, nor the other way round.
    other = _one_person(tmp_path / "other.ndjson", "carl.new@example.com")
    assert (await _import(db, keyring, tenant, other)).imported == 1
    forced = await _import(db, keyring, tenant, path, again=True)
    assert (forced.committed, forced.imported) == (True, 1)
    assert [kind for _, kind in await _remembered(db, tenant)] == ["sha256", "hmac", "hmac"]
    after = await _import(db, keyring, tenant, path)
    assert after.already_imported_at is not None
    assert after.already_imported_at > when
    assert await _events(db) == 2
