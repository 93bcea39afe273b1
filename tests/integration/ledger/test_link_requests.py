"""`POST /v1/subjects/link` as a client meets it: bad references, self links, other tenants,
erased subjects and chains of links."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from tests.conftest import Catalog, Tenant

pytestmark = pytest.mark.integration


def _email(value: str) -> dict[str, Any]:
    return {"identifier": {"type": "email", "value": value}}


def _device(value: str) -> dict[str, Any]:
    return {"identifier": {"type": "device", "value": value}}


async def _link(catalog: Catalog, *refs: dict[str, Any]) -> Any:
    return await catalog.client.post(
        "/v1/subjects/link", json={"subjects": list(refs)}, headers=catalog.h
    )


async def _subject_rows(catalog: Catalog) -> int:
    """How many subjects the tenant has (by lookups of every identifier used below)."""
    found = set()
    for ref in (_device("cookie-1"), _email("ann@example.com")):
        response = await catalog.client.post("/v1/subjects/lookup", json=ref, headers=catalog.h)
        if response.status_code == 200:
            found.add(response.json()["subject_id"])
    return len(found)


async def test_every_bad_reference_of_a_link_is_named_at_once_before_any_lookup(
    catalog: Catalog,
) -> None:
    """A link naming a malformed e-mail address and a national phone number gets both in
    one 400 (as every other write does), and a malformed reference beside an unknown
    subject id is a 400 for the reference, not a 404 that hides it. Nothing is linked."""
    await catalog.consent(
        **_device("cookie-1"), choices=[{"purpose": "analytics", "choice": "granted"}]
    )
    both = await _link(
        catalog,
        _device("cookie-1"),
        {"identifier": {"type": "email", "value": "not-an-address"}},
        {"identifier": {"type": "phone", "value": "030 123456"}},
        {"identifier": {"type": "member_no", "value": "7"}},
        {},
    )
    assert both.status_code == 400, both.text
    assert [e["field"] for e in both.json()["errors"]] == [
        "subjects[1].identifier.value",
        "subjects[2].identifier.value",
        "subjects[3].identifier.type",
        "subjects[4]",
    ]
    hidden = await _link(
        catalog,
        {"subject_id": str(uuid4())},
        {"identifier": {"type": "phone", "value": "030 123456"}},
    )
    assert hidden.status_code == 400, hidden.text
    assert [e["field"] for e in hidden.json()["errors"]] == ["subjects[1].identifier.value"]
    assert await _subject_rows(catalog) == 1


async def test_a_chain_of_links_is_one_person_found_by_every_identifier(catalog: Catalog) -> None:
    """A→B, then B→C (named by the subject ids the writes returned): a lookup by A's device
    finds C's grant and B's withdrawal, the oldest subject survives, and every event of the
    three is in the history. Linking again, in any order, changes nothing."""
    a = await catalog.consent(
        **_device("cookie-1"), choices=[{"purpose": "analytics", "choice": "granted"}]
    )
    b = await catalog.consent(
        **_email("ann@example.com"), choices=[{"purpose": "analytics", "choice": "withdrawn"}]
    )
    c = await catalog.consent(
        identifier={"type": "phone", "value": "+49 30 123456"},
        choices=[{"purpose": "ads", "choice": "granted"}],
    )
    first = await _link(catalog, _device("cookie-1"), _email("ann@example.com"))
    assert first.json()["merged"] == [b["subject_id"]]
    second = await _link(catalog, {"subject_id": b["subject_id"]}, {"subject_id": c["subject_id"]})
    assert second.status_code == 200, second.text
    assert second.json()["subject_id"] == a["subject_id"]
    assert second.json()["merged"] == [c["subject_id"]]

    found = await catalog.client.post(
        "/v1/subjects/lookup", json=_device("cookie-1"), headers=catalog.h
    )
    assert found.json()["subject_id"] == a["subject_id"]
    state = {s["purpose"]: s["choice"] for s in found.json()["consents"]}
    assert state == {"analytics": "withdrawn", "ads": "granted"}
    history = await catalog.client.get(
        f"/v1/subjects/{c['subject_id']}/consents/history", headers=catalog.h
    )
    assert {e["event_id"] for e in history.json()["items"]} == {
        a["event_id"],
        b["event_id"],
        c["event_id"],
    }
    for again in (
        [{"subject_id": c["subject_id"]}, _device("cookie-1")],
        [_email("ANN@example.com"), {"subject_id": a["subject_id"]}],
    ):
        repeated = await _link(catalog, *again)
        assert repeated.json()["subject_id"] == a["subject_id"]
        assert repeated.json()["merged"] == []


async def test_a_subject_linked_to_itself_stays_as_it_was(catalog: Catalog) -> None:
    """The same subject twice, by id or by one identifier in two spellings: nothing merged,
    no `subject.linked` leaf, the state unchanged."""
    ann = await catalog.consent(
        **_email("ann@example.com"), choices=[{"purpose": "ads", "choice": "granted"}]
    )
    for refs in (
        [{"subject_id": ann["subject_id"]}, {"subject_id": ann["subject_id"]}],
        [_email("ann@example.com"), _email(" Ann@EXAMPLE.com ")],
        [_email("ann@example.com"), {"subject_id": ann["subject_id"]}],
    ):
        linked = await _link(catalog, *refs)
        assert linked.status_code == 200, linked.text
        assert (linked.json()["subject_id"], linked.json()["merged"]) == (ann["subject_id"], [])
    activity = await catalog.client.get(
        f"/v1/subjects/{ann['subject_id']}/activity", headers=catalog.h
    )
    assert [e["kind"] for e in activity.json()["items"]] == ["consent.recorded"]


async def test_an_erased_or_another_tenants_subject_is_not_found_like_none_at_all(
    catalog: Catalog, other_tenant: Tenant
) -> None:
    """A link naming an erased subject, or a subject of another tenant, gets the very answer
    of a link naming a subject that never existed (404, same type, title and detail) and
    changes nothing. The other tenant's customer's e-mail address, named by identifier, is
    new to this tenant: it stays the other tenant's customer there, untouched."""
    theirs = Catalog(catalog.client, other_tenant)
    await theirs.post("/v1/purposes", {"key": "ads", "name": "Ads", "legal_basis": "consent"})
    await theirs.post("/v1/notices", {"key": "main", "purposes": ["ads"]})
    await theirs.publish_version()
    bob = await theirs.consent(
        **_email("bob@example.com"), choices=[{"purpose": "ads", "choice": "granted"}]
    )
    gone = await catalog.consent(
        **_email("gone@example.com"), choices=[{"purpose": "ads", "choice": "granted"}]
    )
    erased = await catalog.client.delete(f"/v1/subjects/{gone['subject_id']}", headers=catalog.h)
    assert erased.status_code == 200, erased.text
    ann = await catalog.consent(
        **_device("cookie-1"), choices=[{"purpose": "ads", "choice": "denied"}]
    )

    def shape(response: Any) -> tuple[int, Any]:
        body = response.json()
        return response.status_code, {k: body[k] for k in ("type", "title", "status", "detail")}

    never = shape(await _link(catalog, _device("cookie-1"), {"subject_id": str(uuid4())}))
    assert never[0] == 404
    for named in (gone["subject_id"], bob["subject_id"]):
        assert shape(await _link(catalog, _device("cookie-1"), {"subject_id": named})) == never
    linked = await _link(catalog, _device("cookie-1"), _email("bob@example.com"))
    assert linked.json() | {"linked_at": None} == {
        "subject_id": ann["subject_id"],
        "merged": [],
        "linked_at": None,
    }
    at_home = await theirs.post("/v1/subjects/lookup", _email("bob@example.com"), status=200)
    assert at_home["subject_id"] == bob["subject_id"]
    assert [(s["purpose"], s["choice"]) for s in at_home["consents"]] == [("ads", "granted")]
    here = await catalog.post("/v1/subjects/lookup", _email("bob@example.com"), status=200)
    assert here["subject_id"] == ann["subject_id"]
    assert [(s["purpose"], s["choice"]) for s in here["consents"]] == [("ads", "denied")]
