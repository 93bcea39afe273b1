"""What a privacy operator's engineer hit on the ledger's API: a lookup naming both a subject
id and an identifier answered for the identifier's subject (whoever the id named), and a refused
write reported its problems in instalments (an unknown property, or an unknown identifier type
of a preference write, only once the other problems were fixed). Every reference names exactly
one subject, and the problems a write can be told about are reported all at once; nothing is
written."""

from __future__ import annotations

from typing import Any

import pytest

from consent.db.database import Database
from tests.integration.ledger.conftest import Catalog

pytestmark = pytest.mark.integration

NO_PROPERTY = "00000000-0000-4000-8000-000000000001"


async def _counts(db: Database) -> tuple[int, ...]:
    async with db.system() as conn:
        return tuple(
            [
                await conn.fetchval(f"select count(*) from {table}")
                for table in ("consent_event", "preference_event", "subject", "subject_identifier")
            ]
        )


def _fields(problem: dict[str, Any]) -> list[str]:
    return [e["field"] for e in problem["errors"]]


async def test_a_lookup_naming_a_subject_and_an_identifier_is_refused(
    client: Any, catalog: Catalog
) -> None:
    """Both `subject_id` and `identifier`: 400 as in every other reference (erase, export,
    writes), never the state of the identifier's subject under another subject's id."""
    ann = await catalog.consent(
        identifier={"type": "email", "value": "ann@example.com"},
        choices=[{"purpose": "ads", "choice": "granted"}],
    )
    bob = await catalog.consent(
        identifier={"type": "email", "value": "bob@example.com"},
        choices=[{"purpose": "ads", "choice": "denied"}],
    )
    both = {
        "subject_id": ann["subject_id"],
        "identifier": {"type": "email", "value": "bob@example.com"},
    }
    refused = await catalog.post("/v1/subjects/lookup", both, status=400)
    assert _fields(refused) == ["subject_id"]
    assert bob["subject_id"] not in str(refused)
    # Each alone still finds its subject.
    by_id = await catalog.post("/v1/subjects/lookup", {"subject_id": ann["subject_id"]}, 200)
    assert by_id["subject_id"] == ann["subject_id"]
    by_identifier = await catalog.post(
        "/v1/subjects/lookup", {"identifier": both["identifier"]}, 200
    )
    assert by_identifier["subject_id"] == bob["subject_id"]
    neither = await catalog.post("/v1/subjects/lookup", {}, status=400)
    assert _fields(neither) == ["subject_id"]


async def test_a_consent_with_an_unknown_purpose_and_property_gets_both(
    client: Any, catalog: Catalog, db: Database
) -> None:
    before = await _counts(db)
    refused = await catalog.consent(
        status=400,
        identifier={"type": "email", "value": "cy@example.com"},
        choices=[{"purpose": "telepathy", "choice": "granted"}],
        property_id=NO_PROPERTY,
    )
    assert sorted(_fields(refused)) == ["choices[0].purpose", "property_id"]
    # A problem found before the database (a time without zone) with the property's too.
    refused = await catalog.consent(
        status=400,
        identifier={"type": "email", "value": "cy@example.com"},
        choices=[{"purpose": "ads", "choice": "granted"}],
        occurred_at="2026-01-01T10:00:00",
        property_id=NO_PROPERTY,
    )
    assert sorted(_fields(refused)) == ["occurred_at", "property_id"]
    assert await _counts(db) == before


async def test_a_preference_write_gets_every_problem_at_once(
    client: Any, catalog: Catalog, db: Database
) -> None:
    """Its items, the tenant's own identifier type it names and its property, in one answer
    (the type and the property used to come only after the items were fixed), in German too."""
    before = await _counts(db)
    body = {
        "identifier": {"type": "fax", "value": "0301234"},
        "items": [{"kind": "channel", "key": "fax", "value": "yes"}],
        "surface": "portal",
        "channel": "web",
        "property_id": NO_PROPERTY,
    }
    response = await client.post(
        "/v1/preferences", json=body, headers={**catalog.h, "Accept-Language": "de"}
    )
    assert response.status_code == 400, response.text
    problem = response.json()
    assert sorted(_fields(problem)) == [
        "identifier.type",
        "items[0].key",
        "items[0].value",
        "property_id",
    ]
    messages = {e["field"]: e["message"] for e in problem["errors"]}
    assert messages["identifier.type"] == "unbekannter Identifikatortyp 'fax'"
    assert messages["property_id"] == "diese Property gibt es nicht"
    # Fixed items alone: the type and the property are what is left, still both.
    fixed = {**body, "items": [{"kind": "channel", "key": "email", "value": "opt_in"}]}
    refused = await catalog.post("/v1/preferences", fixed, status=400)
    assert sorted(_fields(refused)) == ["identifier.type", "property_id"]
    assert await _counts(db) == before


async def test_a_banner_key_may_not_link_two_people(
    client: Any, catalog: Catalog, db: Database
) -> None:
    """A banner key's secret is in every visitor's browser (and `Origin` is forged by any
    client): with it, anyone could merge two customers for good, so that one's access export
    lists the other's e-mail address and phone number and one's erasure erases both. It still
    records consents, as a banner does; linking is for the tenant's servers."""
    banner = await catalog.post(
        "/v1/api-keys",
        {"name": "banner", "scopes": ["write"], "allowed_origins": ["https://shop.example"]},
    )
    page = {"Authorization": f"Bearer {banner['secret']}", "Origin": "https://shop.example"}
    ann = {"type": "email", "value": "ann@example.com"}
    bob = {"type": "phone", "value": "+49 30 1234567"}
    for who in (ann, bob):
        await catalog.consent(identifier=who, choices=[{"purpose": "ads", "choice": "granted"}])
    before = await _counts(db)
    link = {"subjects": [{"identifier": ann}, {"identifier": bob}]}
    for headers in (page, {**page, "Accept-Language": "de"}):
        response = await client.post("/v1/subjects/link", json=link, headers=headers)
        assert response.status_code == 403, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "link" in response.json()["detail"] or "verknüpfen" in response.json()["detail"]
    async with db.system() as conn:
        assert (
            await conn.fetchval("select count(*) from subject where merged_into is not null") == 0
        )
    # Two people still: each found by their own identifier, each its own subject.
    found = [await catalog.post("/v1/subjects/lookup", {"identifier": w}, 200) for w in (ann, bob)]
    assert found[0]["subject_id"] != found[1]["subject_id"]
    # What a banner does is unchanged.
    written = await client.post(
        "/v1/consents",
        json={
            "identifier": {"type": "device", "value": "cookie-1"},
            "choices": [{"purpose": "ads", "choice": "granted"}],
            "notice_version_id": catalog.versions[max(catalog.versions)],
            "surface": "banner",
            "channel": "web",
        },
        headers=page,
    )
    assert written.status_code == 201, written.text
    assert await _counts(db) != before
    # A key of the tenant's server links them.
    await catalog.post("/v1/subjects/link", link, status=200)


async def test_a_gpc_signal_never_records_a_grant(
    client: Any, catalog: Catalog, db: Database
) -> None:
    """A Global Privacy Control signal is an opt-out, recorded without a notice shown. A
    `granted` choice with method `gpc` used to be recorded as effective consent that no notice
    proves (and decisions allowed on it): it is refused; a GPC objection is recorded."""
    device = {"type": "device", "value": "gpc-browser"}
    before = await _counts(db)
    body = {
        "identifier": device,
        "choices": [
            {"purpose": "ads", "choice": "denied"},
            {"purpose": "analytics", "choice": "granted"},
        ],
        "surface": "banner",
        "channel": "web",
        "method": "gpc",
    }
    response = await client.post(
        "/v1/consents", json=body, headers={**catalog.h, "Accept-Language": "de"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["errors"] == [
        {
            "field": "choices[1].choice",
            "message": "ein GPC-Signal ist ein Widerspruch und erteilt keine Einwilligung: "
            "zeichnen Sie eine Einwilligung mit der Methode auf, die die Person verwendet hat, "
            "und mit der gezeigten Version des Hinweises",
        }
    ]
    assert await _counts(db) == before
    await catalog.post("/v1/subjects/lookup", {"identifier": device}, status=404)

    await catalog.consent(
        identifier=device, choices=[{"purpose": "ads", "choice": "withdrawn"}], method="gpc"
    )
    state = await catalog.post("/v1/subjects/lookup", {"identifier": device}, status=200)
    assert [(c["purpose"], c["choice"]) for c in state["consents"]] == [("ads", "withdrawn")]


@pytest.mark.parametrize(
    ("path", "change"),
    [
        ("/v1/consents", {"method": "import", "notice_version_id": None}),
        ("/v1/consents", {"method": "agent", "agent_id": "agent-7"}),
        ("/v1/consents", {"identifier": {"type": "email", "value": "victim@example.com"}}),
        ("/v1/consents", {"identifier": {"type": "phone", "value": "+49 30 7654321"}}),
        ("/v1/preferences", {"identifier": {"type": "email", "value": "victim@example.com"}}),
        ("/v1/preferences", {"method": "import"}),
    ],
    ids=["import", "agent", "email", "phone", "preference-email", "preference-import"],
)
async def test_a_banner_key_records_only_a_visitors_own_choice_on_the_device(
    client: Any, catalog: Catalog, db: Database, path: str, change: dict[str, Any]
) -> None:
    """A banner key's secret is public: with it anyone could record a grant of e-mail marketing
    for anyone's address (`import` needs no notice; any e-mail is accepted), and decisions
    would then allow mailing them. A banner key records what a banner proves: the visitor's
    own click or GPC signal, about the device. The same body with a server key is recorded."""
    banner = await catalog.post(
        "/v1/api-keys",
        {"name": "banner", "scopes": ["write"], "allowed_origins": ["https://shop.example"]},
    )
    page = {"Authorization": f"Bearer {banner['secret']}", "Origin": "https://shop.example"}
    device = {"type": "device", "value": "cookie-2"}
    if path == "/v1/consents":
        body: dict[str, Any] = {
            "identifier": device,
            "choices": [{"purpose": "ads", "choice": "granted"}],
            "notice_version_id": catalog.versions[max(catalog.versions)],
            "surface": "banner",
            "channel": "web",
        }
    else:
        body = {
            "identifier": device,
            "items": [{"kind": "channel", "key": "email", "value": "opt_in"}],
            "surface": "banner",
            "channel": "web",
        }
    written = await client.post(path, json=body, headers=page)
    assert written.status_code == 201, written.text  # what a banner does
    refused_body = {k: v for k, v in {**body, **change}.items() if v is not None}
    before = await _counts(db)
    for headers in (page, {**page, "Accept-Language": "de"}):
        response = await client.post(path, json=refused_body, headers=headers)
        assert response.status_code == 403, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        detail = response.json()["detail"]
        assert "device" in detail or "Gerät" in detail
    assert await _counts(db) == before
    await catalog.post(path, refused_body, status=201)  # from the tenant's server
