"""Bad input gets a precise problem and writes nothing."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from consent.db.database import Database
from tests.integration.ledger.conftest import Catalog

pytestmark = pytest.mark.integration

GOOD: dict[str, Any] = {
    "identifier": {"type": "email", "value": "dee@example.com"},
    "choices": [{"purpose": "ads", "choice": "granted"}],
    "surface": "banner",
    "channel": "web",
}


async def _counts(db: Database) -> tuple[int, int, int]:
    async with db.system() as conn:
        return (
            await conn.fetchval("select count(*) from consent_event"),
            await conn.fetchval("select count(*) from subject"),
            await conn.fetchval("select count(*) from subject_identifier"),
        )


async def _problem(client: Any, catalog: Catalog, body: Any, field: str, status: int = 400) -> None:
    response = await client.post("/v1/consents", json=body, headers=catalog.h)
    assert response.status_code == status, response.text
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in [e["field"] for e in problem.get("errors", [])], problem
    assert "dee@example.com" not in response.text
    assert "select" not in response.text.lower()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"choices": [{"purpose": "telepathy", "choice": "granted"}]}, "choices[0].purpose"),
        (
            {
                "choices": [
                    {"purpose": "ads", "choice": "granted"},
                    {"purpose": "ads", "choice": "denied"},
                ]
            },
            "choices",
        ),
        ({"identifier": {"type": "email", "value": "not-an-email"}}, "identifier.value"),
        ({"identifier": {"type": "phone", "value": "0151 123"}}, "identifier.value"),
        # control characters are no part of an address (a NUL used to be kept, hashed)
        ({"identifier": {"type": "email", "value": "dee\u0000@example.com"}}, "identifier.value"),
        ({"identifier": {"type": "email", "value": "dee@exa\u0007mple.com"}}, "identifier.value"),
        ({"identifier": {"type": "email", "value": "d\u009bee@example.com"}}, "identifier.value"),
        ({"identifier": {"type": "shoe_size", "value": "42"}}, "identifier.type"),
        ({"choices": [{"purpose": "ads", "choice": "maybe"}]}, "choices[0].choice"),
        ({"method": "agent"}, "agent_id"),
        ({"occurred_at": "2999-01-01T00:00:00Z"}, "occurred_at"),
        ({"notice_hash": "0" * 64}, "notice_hash"),
        # a hash of no version shown: it cannot be checked and used to be dropped silently
        ({"method": "gpc", "notice_version_id": None, "notice_hash": "0" * 64}, "notice_hash"),
        ({"language": "fr"}, "language"),
        ({"choices": [{"purpose": "essential", "choice": "granted"}]}, "choices[0].purpose"),
        ({"notice_version_id": None}, "notice_version_id"),
        ({"property_id": "00000000-0000-4000-8000-000000000000"}, "property_id"),
    ],
)
async def test_bad_consent_is_refused_precisely(
    client: Any, catalog: Catalog, db: Database, change: dict[str, Any], field: str
) -> None:
    before = await _counts(db)
    body = {**GOOD, "notice_version_id": catalog.versions[1], **change}
    await _problem(client, catalog, body, field)
    assert await _counts(db) == before


async def test_unpublished_notice_version_is_refused(
    client: Any, catalog: Catalog, db: Database
) -> None:
    draft = await catalog.post(
        "/v1/notices/main/versions",
        {"texts": {"en": {"title": "Draft", "body": "Not yet"}}, "change_kind": "material"},
    )
    before = await _counts(db)
    await _problem(client, catalog, {**GOOD, "notice_version_id": draft["id"]}, "notice_version_id")
    assert await _counts(db) == before


async def test_oversized_and_unknown_fields(client: Any, catalog: Catalog, db: Database) -> None:
    before = await _counts(db)
    huge = {**GOOD, "notice_version_id": catalog.versions[1], "choices": GOOD["choices"] * 30000}
    response = await client.post("/v1/consents", json=huge, headers=catalog.h)
    assert response.status_code == 413
    too_many = {
        **GOOD,
        "notice_version_id": catalog.versions[1],
        "choices": [{"purpose": f"p{i}", "choice": "granted"} for i in range(101)],
    }
    response = await client.post("/v1/consents", json=too_many, headers=catalog.h)
    assert response.status_code == 400
    await _problem(
        client, catalog, {**GOOD, "notice_version_id": catalog.versions[1], "mood": "happy"}, "mood"
    )
    assert await _counts(db) == before


async def test_subject_must_be_given_once(client: Any, catalog: Catalog) -> None:
    body = {**GOOD, "notice_version_id": catalog.versions[1]}
    del body["identifier"]
    await _problem(client, catalog, body, "subject_id")


async def test_published_notice_version_is_immutable(
    client: Any, catalog: Catalog, db: Database
) -> None:
    async with db.pool.acquire() as conn:
        with pytest.raises(asyncpg.CheckViolationError, match="immutable"):
            await conn.execute("update notice_version set texts = '{}'::jsonb where version = 1")
        await catalog.consent(
            identifier={"type": "device", "value": "x1"},
            choices=[{"purpose": "ads", "choice": "granted"}],
        )
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute("delete from consent_event")
    again = await client.post("/v1/notices/main/versions/1/publish", headers=catalog.h)
    assert again.status_code == 409


async def test_every_problem_of_a_consent_is_reported_at_once(
    client: Any, catalog: Catalog, db: Database
) -> None:
    """A form shows every mistake in one round: the shape's, the identifier's and the
    catalogue's problems come back together, each at the path of its field in the body."""
    before = await _counts(db)
    body = {
        **GOOD,
        "notice_version_id": catalog.versions[1],
        "identifier": {"type": "phone", "value": "0151 123"},
        "choices": [
            {"purpose": "ads", "choice": "granted"},
            {"purpose": "telepathy", "choice": "granted"},
        ],
        "occurred_at": "2999-01-01T00:00:00Z",
    }
    response = await client.post("/v1/consents", json=body, headers=catalog.h)
    assert response.status_code == 400, response.text
    fields = [e["field"] for e in response.json()["errors"]]
    assert sorted(fields) == ["choices[1].purpose", "identifier.value", "occurred_at"]
    # Only the catalogue is wrong, with a tenant's own identifier type it never defined.
    body = {
        **GOOD,
        "notice_version_id": catalog.versions[1],
        "identifier": {"type": "shoe_size", "value": "42"},
        "choices": [{"purpose": "telepathy", "choice": "granted"}],
    }
    response = await client.post("/v1/consents", json=body, headers=catalog.h)
    assert response.status_code == 400, response.text
    fields = [e["field"] for e in response.json()["errors"]]
    assert sorted(fields) == ["choices[0].purpose", "identifier.type"]
    assert await _counts(db) == before


async def test_a_preference_names_a_bad_identifier_at_its_path(
    client: Any, catalog: Catalog
) -> None:
    response = await client.post(
        "/v1/preferences",
        json={
            "identifier": {"type": "email", "value": "not-an-email"},
            "items": [{"kind": "channel", "key": "email", "value": "opt_in"}],
            "surface": "portal",
            "channel": "web",
        },
        headers=catalog.h,
    )
    assert response.status_code == 400, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["identifier.value"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/vendors", {"name": "Ad Network", "purposes": ["ads", "analytics", "ads"]}),
        ("/v1/notices", {"key": "twice", "purposes": ["ads", "analytics", "ads"]}),
    ],
)
async def test_a_purpose_listed_twice_is_refused(
    client: Any, catalog: Catalog, path: str, body: dict[str, Any]
) -> None:
    response = await client.post(path, json=body, headers=catalog.h)
    assert response.status_code == 400, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["purposes[2]"]
    listed = await client.get(path, headers=catalog.h)
    assert body.get("name", body.get("key")) not in listed.text
