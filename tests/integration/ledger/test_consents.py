from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consent.db.database import Database
from tests.conftest import Tenant
from tests.integration.ledger.conftest import Catalog

pytestmark = pytest.mark.integration


def _state(body: Any) -> dict[str, dict[str, Any]]:
    return {c["purpose"]: c for c in body["consents"]}


async def test_grant_in_store_holds_on_the_web_under_a_linked_identifier(
    client: Any, catalog: Catalog
) -> None:
    email = {"type": "email", "value": "Ann.Example@Shop.EXAMPLE"}
    store = await catalog.consent(
        identifier={"type": "loyalty_card", "value": "1234 5678 9012"},
        choices=[{"purpose": "newsletter", "choice": "granted"}],
        surface="store",
        channel="store",
        method="agent",
        agent_id="till-7",
        language="de",
    )
    web = await catalog.consent(
        identifier={"type": "device", "value": "cookie-abc"},
        choices=[{"purpose": "analytics", "choice": "granted"}],
    )
    assert store["subject_id"] != web["subject_id"]
    link = await catalog.post(
        "/v1/subjects/link",
        {
            "subjects": [
                {"identifier": {"type": "device", "value": "cookie-abc"}},
                {"identifier": {"type": "loyalty_card", "value": "1234-5678-9012"}},
                {"identifier": email},
            ]
        },
        status=200,
    )
    survivor = link["subject_id"]
    assert survivor == store["subject_id"]  # the oldest subject survives
    for ident in (
        {"type": "device", "value": "cookie-abc"},
        {"type": "loyalty_card", "value": "123456789012"},
        {"type": "email", "value": "ann.example@shop.example"},
    ):
        found = await catalog.post("/v1/subjects/lookup", {"identifier": ident}, status=200)
        assert found["subject_id"] == survivor
        state = _state(found)
        assert state["newsletter"]["effective"] is True
        assert state["analytics"]["effective"] is True
    by_old_id = await client.get(f"/v1/subjects/{web['subject_id']}/consents", headers=catalog.h)
    assert by_old_id.json()["subject_id"] == survivor


async def test_proof_is_recorded_and_history_pages_newest_first(
    client: Any, catalog: Catalog
) -> None:
    first = await catalog.consent(
        identifier={"type": "email", "value": "bo@example.com"},
        choices=[
            {"purpose": "ads", "choice": "granted"},
            {"purpose": "analytics", "choice": "denied"},
        ],
        language="en",
    )
    for choice in ("withdrawn", "granted", "withdrawn"):
        await catalog.consent(
            subject_id=first["subject_id"],
            choices=[{"purpose": "ads", "choice": choice}],
            surface="portal",
        )
    versions = (await client.get("/v1/notices/main/versions", headers=catalog.h)).json()
    assert first["notice_hash"] == versions["items"][0]["content_hash"]
    url = f"/v1/subjects/{first['subject_id']}/consents/history"
    page1 = (await client.get(url, params={"limit": 3}, headers=catalog.h)).json()
    page2 = (
        await client.get(
            url, params={"limit": 3, "cursor": page1["next_cursor"]}, headers=catalog.h
        )
    ).json()
    events = page1["items"] + page2["items"]
    assert len(events) == 4
    assert page2["next_cursor"] is None
    assert [e["choices"][0]["choice"] for e in events] == [
        "withdrawn",
        "granted",
        "withdrawn",
        "granted",
    ]
    oldest = events[-1]
    assert oldest["notice_hash"] == first["notice_hash"]
    assert oldest["language"] == "en"
    assert (oldest["surface"], oldest["channel"], oldest["method"]) == ("banner", "web", "explicit")
    state = _state(
        (await client.get(f"/v1/subjects/{first['subject_id']}/consents", headers=catalog.h)).json()
    )
    assert state["ads"]["choice"] == "withdrawn"
    assert state["analytics"]["choice"] == "denied"


async def test_older_grant_never_undoes_a_newer_withdrawal(client: Any, catalog: Catalog) -> None:
    now = datetime.now(UTC)
    who = {"type": "customer_id", "value": "C-1"}
    await catalog.consent(
        identifier=who,
        choices=[{"purpose": "ads", "choice": "withdrawn"}],
        occurred_at=now.isoformat(),
    )
    imported = await catalog.consent(
        identifier=who,
        choices=[{"purpose": "ads", "choice": "granted"}],
        occurred_at=(now - timedelta(days=30)).isoformat(),
        surface="import",
        method="import",
        notice_version_id=None,
    )
    state = _state(await catalog.post("/v1/subjects/lookup", {"identifier": who}, status=200))
    assert state["ads"]["choice"] == "withdrawn"
    history = (
        await client.get(
            f"/v1/subjects/{imported['subject_id']}/consents/history", headers=catalog.h
        )
    ).json()
    assert len(history["items"]) == 2  # the old grant is kept in history


async def test_expiry_and_material_change(client: Any, catalog: Catalog) -> None:
    who = {"type": "device", "value": "d-1"}
    # The newsletter purpose allows 30 days: a choice made 31 days ago (given in-store, entered
    # later) has expired.
    await catalog.consent(
        identifier=who,
        choices=[{"purpose": "newsletter", "choice": "granted"}],
        occurred_at=(datetime.now(UTC) - timedelta(days=31)).isoformat(),
    )
    await catalog.consent(
        identifier=who,
        choices=[
            {"purpose": "analytics", "choice": "granted"},
            {"purpose": "ads", "choice": "granted"},
        ],
    )
    state = _state(await catalog.post("/v1/subjects/lookup", {"identifier": who}, status=200))
    assert state["newsletter"]["expired"] is True
    assert state["newsletter"]["effective"] is False
    assert state["analytics"]["effective"] is True

    await catalog.publish_version("editorial", title="Cookies (typo fixed)")
    state = _state(await catalog.post("/v1/subjects/lookup", {"identifier": who}, status=200))
    assert state["analytics"]["stale"] is False

    await catalog.publish_version("material", title="Cookies, now with partners")
    state = _state(await catalog.post("/v1/subjects/lookup", {"identifier": who}, status=200))
    assert state["analytics"]["stale"] is True
    assert state["ads"]["effective"] is False
    # Asking again under the new version makes it effective again.
    await catalog.consent(identifier=who, choices=[{"purpose": "ads", "choice": "granted"}])
    state = _state(await catalog.post("/v1/subjects/lookup", {"identifier": who}, status=200))
    assert state["ads"]["effective"] is True
    assert state["analytics"]["stale"] is True


@pytest.mark.policy
async def test_an_objection_to_a_legitimate_interest_never_expires(
    client: Any, tenant: Tenant
) -> None:
    # Both purposes allow 30 days, but the maximum age (and staleness) applies only to consent:
    # on legitimate interest a denied choice is an objection, which never lapses (GDPR Art
    # 21(3)). The state must say what decisions apply (policies/consent/decision.rego).
    own = Catalog(client, tenant)
    for key, basis in (("email_marketing", "consent"), ("analytics", "legitimate_interest")):
        await own.post(
            "/v1/purposes",
            {"key": key, "name": key.title(), "legal_basis": basis, "max_age_days": 30},
        )
    await own.post("/v1/notices", {"key": "main", "purposes": ["email_marketing", "analytics"]})
    await own.publish_version()
    who = {"type": "email", "value": "objector@example.com"}
    await own.consent(
        identifier=who,
        choices=[
            {"purpose": "email_marketing", "choice": "granted"},
            {"purpose": "analytics", "choice": "denied"},
        ],
        occurred_at=(datetime.now(UTC) - timedelta(days=31)).isoformat(),
    )

    async def decide(action: str) -> list[str]:
        response = await client.post(
            "/v1/decisions",
            json={"subject": {"identifier": who}, "action": action, "context": {"requester": "t"}},
            headers=own.h,
        )
        assert response.status_code == 200, response.text
        assert response.json()["allow"] is False
        reasons: list[str] = response.json()["reasons"]
        return reasons

    state = _state(await own.post("/v1/subjects/lookup", {"identifier": who}, status=200))
    assert state["email_marketing"]["expired"] is True
    assert state["email_marketing"]["effective"] is False
    assert await decide("email.marketing") == ["denied.expired"]
    assert state["analytics"]["choice"] == "denied"
    assert state["analytics"]["expired"] is False
    assert state["analytics"]["effective"] is False
    assert await decide("web.analytics") == ["denied.objected"]

    # A material change of the notice makes the consent stale, never the objection.
    await own.publish_version("material", title="Cookies, now with partners")
    state = _state(await own.post("/v1/subjects/lookup", {"identifier": who}, status=200))
    assert state["email_marketing"]["stale"] is True
    assert (state["analytics"]["expired"], state["analytics"]["stale"]) == (False, False)
    assert await decide("web.analytics") == ["denied.objected"]


async def test_idempotent_consent_write(client: Any, catalog: Catalog, db: Database) -> None:
    body = {
        "identifier": {"type": "email", "value": "cy@example.com"},
        "choices": [{"purpose": "ads", "choice": "granted"}],
        "surface": "banner",
        "channel": "web",
        "notice_version_id": catalog.versions[1],
    }
    headers = {**catalog.h, "Idempotency-Key": "retry-me"}
    a = await client.post("/v1/consents", json=body, headers=headers)
    b = await client.post("/v1/consents", json=body, headers=headers)
    assert a.status_code == b.status_code == 201
    assert a.json() == b.json()
    async with db.system() as conn:
        assert await conn.fetchval("select count(*) from consent_event") == 1


async def test_identifiers_are_never_stored_in_clear(catalog: Catalog, db: Database) -> None:
    await catalog.consent(
        identifier={"type": "email", "value": "secret.person@example.org"},
        choices=[{"purpose": "ads", "choice": "granted"}],
    )
    async with db.system() as conn:
        dump = await conn.fetchval(
            "select string_agg(t::text, ' ') from (select * from subject_identifier) t"
        )
        events = await conn.fetchval("select string_agg(t::text, ' ') from consent_event t")
    assert "secret.person" not in dump
    assert "secret.person" not in events
    assert "736563726574" not in dump  # hex of "secret"
