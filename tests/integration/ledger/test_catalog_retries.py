"""A client that retries a catalogue write with the same Idempotency-Key gets the first answer
(not a 409 for what its own first attempt created); the key reused with another body is a 422
and writes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Tenant

pytestmark = pytest.mark.integration

WRITES: list[tuple[str, dict[str, Any], str]] = [
    ("/v1/purposes", {"key": "ads", "name": "Ads", "legal_basis": "consent"}, "/v1/purposes"),
    (
        "/v1/identifier-types",
        {"key": "member_no", "description": "Club member number"},
        "/v1/identifier-types",
    ),
]
NEEDS_A_PURPOSE: list[tuple[str, dict[str, Any], str]] = [
    ("/v1/notices", {"key": "main", "purposes": ["ads"]}, "/v1/notices"),
    ("/v1/vendors", {"name": "Ad Partner", "purposes": ["ads"]}, "/v1/vendors"),
]


@pytest.mark.parametrize(("path", "body", "listing"), WRITES + NEEDS_A_PURPOSE)
async def test_a_retried_catalogue_write_gets_the_first_answer(
    client: Any, tenant: Tenant, path: str, body: dict[str, Any], listing: str
) -> None:
    if (path, body, listing) in NEEDS_A_PURPOSE:
        made = await client.post(
            "/v1/purposes",
            json={"key": "ads", "name": "Ads", "legal_basis": "consent"},
            headers=tenant.headers,
        )
        assert made.status_code == 201, made.text
    headers = {**tenant.headers, "Idempotency-Key": "create-once"}
    first = await client.post(path, json=body, headers=headers)
    assert first.status_code == 201, first.text
    retry = await client.post(path, json=body, headers=headers)
    assert retry.status_code == 201, retry.text
    assert retry.json() == first.json()

    other = {**body, "key": "other"} if "key" in body else {**body, "name": "Other"}
    reused = await client.post(path, json=other, headers=headers)
    assert reused.status_code == 422, reused.text
    assert reused.headers["content-type"].startswith("application/problem+json")
    items = (await client.get(listing, headers=tenant.headers)).json()["items"]
    assert not [i for i in items if i.get("key", i.get("name")) in {"other", "Other"}]

    # Without a key a second create is still the precise 409 it always was.
    again = await client.post(path, json=body, headers=tenant.headers)
    assert again.status_code == 409, again.text
