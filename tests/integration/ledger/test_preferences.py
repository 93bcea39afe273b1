from __future__ import annotations

from typing import Any

import pytest

from tests.integration.ledger.conftest import Catalog

pytestmark = pytest.mark.integration


async def test_preferences_state_history_and_linking(client: Any, catalog: Catalog) -> None:
    who = {"type": "email", "value": "pat@example.com"}
    first = await catalog.post(
        "/v1/preferences",
        {
            "identifier": who,
            "items": [
                {"kind": "channel", "key": "email", "value": "opt_in"},
                {"kind": "topic", "key": "offers", "value": "subscribed"},
                {"kind": "frequency", "key": "email", "value": "weekly"},
            ],
            "surface": "portal",
            "channel": "web",
        },
    )
    await catalog.post(
        "/v1/preferences",
        {
            "subject_id": first["subject_id"],
            "items": [{"kind": "channel", "key": "email", "value": "opt_out"}],
            "surface": "call_centre",
            "channel": "phone",
            "method": "agent",
            "agent_id": "agent-42",
        },
    )
    state = (
        await client.get(f"/v1/subjects/{first['subject_id']}/preferences", headers=catalog.h)
    ).json()
    values = {(p["kind"], p["key"]): p["value"] for p in state["preferences"]}
    assert values == {
        ("channel", "email"): "opt_out",
        ("topic", "offers"): "subscribed",
        ("frequency", "email"): "weekly",
    }
    history = (
        await client.get(
            f"/v1/subjects/{first['subject_id']}/preferences/history", headers=catalog.h
        )
    ).json()
    assert [e["method"] for e in history["items"]] == ["agent", "explicit"]
    assert history["items"][0]["agent_id"] == "agent-42"

    device = await catalog.post(
        "/v1/preferences",
        {
            "identifier": {"type": "device", "value": "app-install-1"},
            "items": [{"kind": "channel", "key": "push", "value": "opt_in"}],
            "surface": "form",
            "channel": "app",
        },
    )
    await catalog.post(
        "/v1/subjects/link",
        {"subjects": [{"subject_id": device["subject_id"]}, {"identifier": who}]},
        status=200,
    )
    merged = (
        await client.get(f"/v1/subjects/{device['subject_id']}/preferences", headers=catalog.h)
    ).json()
    keys = {(p["kind"], p["key"]) for p in merged["preferences"]}
    assert ("channel", "push") in keys
    assert ("channel", "email") in keys


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"kind": "channel", "key": "pigeon", "value": "opt_in"}, "items[0].key"),
        ({"kind": "channel", "key": "email", "value": "subscribed"}, "items[0].value"),
        ({"kind": "frequency", "key": "offers", "value": "weekly"}, "items[0].key"),
    ],
)
async def test_bad_preferences_are_refused(
    client: Any, catalog: Catalog, item: dict[str, str], field: str
) -> None:
    response = await client.post(
        "/v1/preferences",
        json={
            "identifier": {"type": "email", "value": "pat@example.com"},
            "items": [item],
            "surface": "portal",
            "channel": "web",
        },
        headers=catalog.h,
    )
    assert response.status_code == 400
    assert field in [e["field"] for e in response.json()["errors"]]


@pytest.mark.parametrize(
    ("occurred_at", "message"),
    [("2024-01-01T00:00:00", "must include a time zone"), ("2999-01-01T00:00:00Z", "future")],
)
async def test_when_a_preference_was_made_is_checked_like_a_consent(
    client: Any, catalog: Catalog, occurred_at: str, message: str
) -> None:
    """A time without a time zone is a 400 naming `occurred_at` (it was a 500), and nothing is
    written."""
    body = {
        "identifier": {"type": "email", "value": "pat@example.com"},
        "items": [{"kind": "channel", "key": "email", "value": "opt_in"}],
        "surface": "portal",
        "channel": "web",
        "occurred_at": occurred_at,
    }
    response = await client.post("/v1/preferences", json=body, headers=catalog.h)
    assert response.status_code == 400, response.text
    (error,) = response.json()["errors"]
    assert error["field"] == "occurred_at"
    assert message in error["message"]
    lookup = await client.post(
        "/v1/subjects/lookup", json={"identifier": body["identifier"]}, headers=catalog.h
    )
    assert lookup.status_code == 404
