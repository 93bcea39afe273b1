"""What an idempotency record keeps of its request: a keyed hash, not a plain SHA-256.

A write sent with an Idempotency-Key keeps a hash of its request next to its answer, to refuse
the key's reuse with another body. A consent write holds the person's e-mail address and its
body is easy to rebuild (the API is public), so a plain SHA-256 of it lets anyone holding a dump
confirm a guessed address. The hash is an HMAC under a per-tenant key of the server's; records
written before that change (plain SHA-256) still answer their retries.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from uuid import UUID

import msgspec
import pytest

from consent.consents.schemas import ConsentCreate
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from consent.preferences.schemas import PreferenceCreate
from tests.conftest import Catalog

pytestmark = pytest.mark.integration

EMAIL = {"type": "email", "value": "Ann.Keyed@Mail.Example"}


def _consent(catalog: Catalog, choice: str = "granted") -> dict[str, Any]:
    return {
        "identifier": EMAIL,
        "choices": [{"purpose": "analytics", "choice": choice}],
        "notice_version_id": catalog.versions[max(catalog.versions)],
        "surface": "banner",
        "channel": "web",
    }


def _rebuilt(body: dict[str, Any]) -> set[bytes]:
    """Every encoding of the body a dump reader who guesses the address can rebuild: as sent,
    canonical (as the service encodes it), with the address as given or normalised."""
    canonical = msgspec.json.encode(msgspec.convert(body, ConsentCreate))
    sent = msgspec.json.encode(body)
    forms = set()
    for encoded in (canonical, sent):
        forms |= {encoded, encoded.replace(b"Ann.Keyed@Mail.Example", b"ann.keyed@mail.example")}
    return forms


async def _stored(db: Database, key: str) -> tuple[bytes, str]:
    async with db.pool.acquire() as conn:
        row = await conn.fetchrow(
            "select request_sha256, request_hash_kind from idempotency_record where key = $1",
            key,
        )
    assert row is not None
    return bytes(row["request_sha256"]), row["request_hash_kind"]


async def test_a_dump_cannot_confirm_a_guessed_address_by_the_request_hash(
    client: Any, catalog: Catalog, db: Database
) -> None:
    body = _consent(catalog)
    headers = {**catalog.h, "Idempotency-Key": "keyed-1"}
    first = await client.post("/v1/consents", json=body, headers=headers)
    assert first.status_code == 201, first.text

    stored, kind = await _stored(db, "keyed-1")
    assert kind == "hmac"
    guesses = {hashlib.sha256(form).digest() for form in _rebuilt(body)}
    assert stored not in guesses
    # The record still does its job: the retry gets the first answer, another body a 422.
    again = await client.post("/v1/consents", json=body, headers=headers)
    assert (again.status_code, again.json()) == (201, first.json())
    other = await client.post("/v1/consents", json=_consent(catalog, "denied"), headers=headers)
    assert other.status_code == 422, other.text
    assert other.json()["type"].endswith("idempotency-key-reused")


async def test_the_request_hash_is_keyed_per_tenant(
    client: Any, catalog: Catalog, db: Database, keyring: KeyRing
) -> None:
    """The same request in two tenants is not recognisable as the same across them."""
    body = _consent(catalog)
    first = await client.post(
        "/v1/consents", json=body, headers={**catalog.h, "Idempotency-Key": "keyed-2"}
    )
    assert first.status_code == 201, first.text
    stored, _ = await _stored(db, "keyed-2")
    canonical = msgspec.json.encode(msgspec.convert(body, ConsentCreate))
    own = keyring.idempotency_key(catalog.tenant.id)
    assert stored == hmac.new(own, canonical, "sha256").digest()
    other = keyring.idempotency_key(str(UUID(int=1)))
    assert other != own
    assert other != keyring.lookup_key(catalog.tenant.id)
    assert own != keyring.lookup_key(catalog.tenant.id)


async def _insert_legacy(db: Database, tenant_id: str, key: str, request: bytes) -> None:
    """A record as the service wrote it before the hash was keyed: a plain SHA-256, and the
    answer the first attempt gave (here: made up, so a replay is told from a new write)."""
    answer = msgspec.json.encode(
        {
            "event_id": str(UUID(int=7)),
            "subject_id": str(UUID(int=8)),
            "occurred_at": "2026-01-02T03:04:05Z",
            "recorded_at": "2026-01-02T03:04:05Z",
        }
    )
    async with db.pool.acquire() as conn:
        await conn.execute(
            "insert into idempotency_record (tenant_id, key, request_sha256, status_code, "
            "response_body, request_hash_kind) values ($1, $2, $3, 201, $4, 'sha256')",
            UUID(tenant_id),
            key,
            hashlib.sha256(request).digest(),
            answer,
        )


async def test_a_retry_of_a_write_recorded_before_keyed_hashes_gets_its_answer(
    client: Any, catalog: Catalog, db: Database
) -> None:
    body = {
        "identifier": EMAIL,
        "items": [{"kind": "channel", "key": "email", "value": "opt_in"}],
        "surface": "portal",
        "channel": "web",
    }
    canonical = b"preferences/" + msgspec.json.encode(msgspec.convert(body, PreferenceCreate))
    await _insert_legacy(db, catalog.tenant.id, "legacy-1", canonical)
    headers = {**catalog.h, "Idempotency-Key": "legacy-1"}

    retry = await client.post("/v1/preferences", json=body, headers=headers)
    assert retry.status_code == 201, retry.text
    assert retry.json()["event_id"] == str(UUID(int=7))
    changed = {**body, "items": [{"kind": "channel", "key": "email", "value": "opt_out"}]}
    reused = await client.post("/v1/preferences", json=changed, headers=headers)
    assert reused.status_code == 422, reused.text


async def test_a_legacy_record_is_not_matched_by_its_keyed_hash_nor_a_new_one_by_sha256(
    client: Any, catalog: Catalog, db: Database, keyring: KeyRing
) -> None:
    """Each record is compared by the kind of hash it holds: a plain SHA-256 is accepted only
    where the record says it holds one."""
    body = _consent(catalog)
    canonical = msgspec.json.encode(msgspec.convert(body, ConsentCreate))
    keyed = hmac.new(keyring.idempotency_key(catalog.tenant.id), canonical, "sha256").digest()
    async with db.pool.acquire() as conn:
        await conn.execute(
            "insert into idempotency_record (tenant_id, key, request_sha256, status_code, "
            "response_body, request_hash_kind) values ($1, 'mislabelled', $2, 201, '{}', "
            "'sha256')",
            UUID(catalog.tenant.id),
            keyed,
        )
        await conn.execute(
            "insert into idempotency_record (tenant_id, key, request_sha256, status_code, "
            "response_body, request_hash_kind) values ($1, 'plain-as-hmac', $2, 201, '{}', "
            "'hmac')",
            UUID(catalog.tenant.id),
            hashlib.sha256(canonical).digest(),
        )
    for key in ("mislabelled", "plain-as-hmac"):
        refused = await client.post(
            "/v1/consents", json=body, headers={**catalog.h, "Idempotency-Key": key}
        )
        assert refused.status_code == 422, refused.text


async def test_records_of_other_writes_are_keyed_too(
    client: Any, catalog: Catalog, db: Database
) -> None:
    """Catalogue, tenancy and subject writes go through the same records."""
    created = await client.post(
        "/v1/purposes",
        json={"key": "keyed_purpose", "name": "Keyed", "legal_basis": "consent"},
        headers={**catalog.h, "Idempotency-Key": "purpose-1"},
    )
    assert created.status_code == 201, created.text
    prop = await client.post(
        "/v1/properties",
        json={"name": "Keyed site", "kind": "website"},
        headers={**catalog.h, "Idempotency-Key": "property-1"},
    )
    assert prop.status_code == 201, prop.text
    async with db.pool.acquire() as conn:
        kinds = {
            r["key"]: r["request_hash_kind"]
            for r in await conn.fetch("select key, request_hash_kind from idempotency_record")
        }
    assert kinds == {"purpose-1": "hmac", "property-1": "hmac"}
