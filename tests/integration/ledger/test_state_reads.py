"""Reading a subject's state (`GET /v1/subjects/{id}/consents`, `POST /v1/subjects/lookup`)
is one call outside a transaction (`subject_consent_state`, migrations/0014) that reads under
row-level security as the caller's tenant: a tenant sees its own subjects, through its own
identifier types, and never another tenant's."""

from __future__ import annotations

from typing import Any

import pytest

from consent.db.database import Database
from tests.conftest import Catalog, Tenant

pytestmark = pytest.mark.integration


def _choices(body: dict[str, Any]) -> dict[str, str]:
    return {c["purpose"]: c["choice"] for c in body["consents"]}


async def test_a_tenants_own_identifier_type_finds_its_subject(
    client: Any, catalog: Catalog
) -> None:
    await catalog.post("/v1/identifier-types", {"key": "member_no", "description": "club"})
    who = {"type": "member_no", "value": "M-77"}
    written = await catalog.consent(
        identifier=who, choices=[{"purpose": "ads", "choice": "granted"}]
    )
    found = await catalog.post("/v1/subjects/lookup", {"identifier": who}, status=200)
    assert found["subject_id"] == written["subject_id"]
    assert _choices(found) == {"ads": "granted"}


async def test_another_tenant_sees_neither_the_subject_nor_the_identifier_type(
    client: Any, catalog: Catalog, other_tenant: Tenant
) -> None:
    await catalog.post("/v1/identifier-types", {"key": "member_no", "description": "club"})
    who = {"type": "member_no", "value": "M-78"}
    written = await catalog.consent(
        identifier=who, choices=[{"purpose": "ads", "choice": "granted"}]
    )
    device = {"type": "device", "value": "shared-device"}
    await catalog.consent(identifier=device, choices=[{"purpose": "ads", "choice": "granted"}])
    theirs = Catalog(client, other_tenant)

    by_id = await client.get(f"/v1/subjects/{written['subject_id']}/consents", headers=theirs.h)
    assert by_id.status_code == 404, by_id.text
    assert by_id.headers["content-type"].startswith("application/problem+json")
    unknown_type = await theirs.post("/v1/subjects/lookup", {"identifier": who}, status=400)
    assert unknown_type["errors"] == [
        {"field": "identifier.type", "message": "unknown identifier type 'member_no'"}
    ]
    # The same device identifier, unknown to them: their HMAC key differs and their rows are
    # theirs only.
    await theirs.post("/v1/subjects/lookup", {"identifier": device}, status=404)


async def test_a_subject_without_choices_has_an_empty_state_and_reads_write_nothing(
    client: Any, catalog: Catalog, db: Database
) -> None:
    linked = await catalog.post(
        "/v1/subjects/link",
        {
            "subjects": [
                {"identifier": {"type": "email", "value": "new@example.com"}},
                {"identifier": {"type": "device", "value": "new-device"}},
            ]
        },
        status=200,
    )
    before = await _row_versions(db)
    for _ in range(3):
        read = await client.get(f"/v1/subjects/{linked['subject_id']}/consents", headers=catalog.h)
        assert read.status_code == 200, read.text
        assert read.json() == {"subject_id": linked["subject_id"], "consents": []}
    # Reads lock nothing and write nothing: a locking read would stamp the rows' xmax (and
    # wait for a durable commit), a write would add rows or change their xmin. (This used to
    # count the server's WAL, which every other session on the server writes to as well.)
    assert await _row_versions(db) == before


async def _row_versions(db: Database) -> list[str]:
    """Every row version of the tables a subject read could lock or write, as count and
    (xmin, xmax) of each row."""
    async with db.system() as conn:
        return [
            await conn.fetchval(
                f"select count(*) || ':' || coalesce(string_agg(xmin::text || '/' || "
                f"xmax::text, ',' order by ctid), '') from {table}"
            )
            for table in ("subject", "subject_identifier", "subject_key", "consent_state")
        ]
