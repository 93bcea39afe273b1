"""A link and a preference write retried with the same Idempotency-Key get the first answer;
the key reused with another body is a 422 problem that writes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.ledger.conftest import Catalog

pytestmark = pytest.mark.integration


async def test_a_retried_link_gets_the_first_answer(client: Any, catalog: Catalog) -> None:
    device = await catalog.consent(
        identifier={"type": "device", "value": "cookie-retry"},
        choices=[{"purpose": "ads", "choice": "granted"}],
    )
    email = await catalog.consent(
        identifier={"type": "email", "value": "retry@example.com"},
        choices=[{"purpose": "analytics", "choice": "granted"}],
    )
    body = {
        "subjects": [
            {"identifier": {"type": "device", "value": "cookie-retry"}},
            {"identifier": {"type": "email", "value": "retry@example.com"}},
        ]
    }
    headers = {**catalog.h, "Idempotency-Key": "login-42"}
    first = await client.post("/v1/subjects/link", json=body, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["merged"] == [email["subject_id"]]
    retry = await client.post("/v1/subjects/link", json=body, headers=headers)
    assert retry.status_code == 200, retry.text
    assert retry.json() == first.json()  # the merge it made, not "nothing merged"

    other = {"subjects": [body["subjects"][0], {"subject_id": device["subject_id"]}]}
    reused = await client.post("/v1/subjects/link", json=other, headers=headers)
    assert reused.status_code == 422, reused.text
    assert reused.json()["type"].endswith("idempotency-key-reused")


async def test_a_retried_preference_write_gets_the_first_answer(
    client: Any, catalog: Catalog
) -> None:
    body = {
        "identifier": {"type": "device", "value": "cookie-prefs-retry"},
        "items": [{"kind": "channel", "key": "email", "value": "opt_in"}],
        "surface": "portal",
        "channel": "web",
    }
    headers = {**catalog.h, "Idempotency-Key": "prefs-7"}
    first = await client.post("/v1/preferences", json=body, headers=headers)
    assert first.status_code == 201, first.text
    retry = await client.post("/v1/preferences", json=body, headers=headers)
    assert retry.status_code == 201, retry.text
    assert retry.json() == first.json()

    changed = {**body, "items": [{"kind": "channel", "key": "email", "value": "opt_out"}]}
    reused = await client.post("/v1/preferences", json=changed, headers=headers)
    assert reused.status_code == 422, reused.text
    subject = first.json()["subject_id"]
    history = await client.get(f"/v1/subjects/{subject}/preferences/history", headers=catalog.h)
    assert [e["event_id"] for e in history.json()["items"]] == [first.json()["event_id"]]
    state = await client.get(f"/v1/subjects/{subject}/preferences", headers=catalog.h)
    assert [p["value"] for p in state.json()["preferences"]] == ["opt_in"]
