"""A data subject access export (GDPR Art 15 and 20; CCPA right to know): one JSON document
with everything the service holds about one person, streamed page by page."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import msgspec
import pytest

from consent.audit.outbox import AuditWriter
from consent.config import Settings
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from consent.errors import NotFound
from consent.subjects.export import SubjectExport, SubjectExporter
from consent.subjects.schemas import SubjectRef
from tests.conftest import Catalog as _Catalog
from tests.conftest import Tenant
from tests.integration.ledger.conftest import Catalog

pytestmark = pytest.mark.integration

EMAIL = {"type": "email", "value": "Esther.Export@Example.COM"}
DEVICE = {"type": "device", "value": "cookie-esther"}
CONTEXT = {"requester": "analytics-tool", "jurisdiction": "DE"}
# What her export holds at the same instant, whichever way it was asked for.
_VOLATILE = "exported_at"


async def _person(catalog: Catalog) -> tuple[str, str, str]:
    """A customer known by e-mail, linked with an anonymous device, with consents,
    preferences and a decision about her; returns (survivor, linked subject, decision id)."""
    first, device = await catalog.linked_person(EMAIL, DEVICE)
    await catalog.consent(identifier=EMAIL, choices=[{"purpose": "ads", "choice": "denied"}])
    survivor = first["subject_id"]
    decision = await catalog.post(
        "/v1/decisions",
        {"subject": {"subject_id": survivor}, "action": "web.analytics", "context": CONTEXT},
        status=200,
    )
    return survivor, device["subject_id"], decision["decision_id"]


async def _walk(client: Any, headers: dict[str, str], path: str) -> list[Any]:
    """Every item of a paginated list, page by page to its end."""
    items: list[Any] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 200}
        if cursor is not None:
            params["cursor"] = cursor
        answer = await client.get(path, params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def _export(client: Any, headers: dict[str, str], subject_id: str) -> dict[str, Any]:
    answer = await client.get(f"/v1/subjects/{subject_id}/export", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.headers["cache-control"] == "no-store"
    document: dict[str, Any] = answer.json()
    assert answer.headers["content-disposition"] == (
        f'attachment; filename="subject-{document["subject_id"]}.json"'
    )
    # The document is the one the OpenAPI document describes, field for field.
    msgspec.json.decode(answer.content, type=SubjectExport)
    assert set(document) == {f.encode_name for f in msgspec.structs.fields(SubjectExport)}
    return document


def _exporter(
    db: Database, keyring: KeyRing, catalog: Catalog, settings: Settings
) -> SubjectExporter:
    """An exporter as the service makes one, asked by an admin key of the tenant."""
    return SubjectExporter(
        db,
        keyring,
        UUID(catalog.tenant.id),
        "vkey",
        writer=AuditWriter(settings.audit_origin),
        actor="api-key:test",
    )


async def _drain(pieces: AsyncIterator[bytes], into: list[bytes]) -> None:
    async for piece in pieces:
        into.append(piece)  # noqa: PERF401 - keeps the pieces written before a failure


def _exports(document: dict[str, Any]) -> list[str]:
    """The `subject.exported` events in a document's activity."""
    return [a["event_uuid"] for a in document["activity"] if a["kind"] == "subject.exported"]


def _same(earlier: dict[str, Any], later: dict[str, Any]) -> None:
    """The same document but for its time and the exports made since: each export is itself a
    use of the data (a `subject.exported` event in the activity, recorded before its lists are
    read), so a later document lists the earlier exports, and its own, first."""

    def settled(document: dict[str, Any]) -> dict[str, Any]:
        activity = [a for a in document["activity"] if a["kind"] != "subject.exported"]
        return {k: v for k, v in document.items() if k != _VOLATILE} | {"activity": activity}

    assert settled(earlier) == settled(later)
    assert set(_exports(earlier)) < set(_exports(later))
    added = len(_exports(later)) - len(_exports(earlier))
    assert [a["kind"] for a in later["activity"][:added]] == ["subject.exported"] * added


async def test_the_export_holds_everything_the_service_keeps_about_the_person(
    client: Any, catalog: Catalog, service_log: io.BytesIO
) -> None:
    survivor, linked, decision_id = await _person(catalog)
    h = catalog.h
    document = await _export(client, h, survivor)

    assert document["format"] == "consent.subject-export/v1"
    assert document["subject_id"] == survivor
    assert document["linked_subjects"] == [linked]
    # Both identifiers, decrypted (as normalised), with when each was first seen.
    assert sorted((i["type"], i["value"]) for i in document["identifiers"]) == [
        ("device", "cookie-esther"),
        ("email", "esther.export@example.com"),
    ]
    assert all(i["first_seen_at"] for i in document["identifiers"])
    # The state and the lists are exactly what the read endpoints answer, walked to their end.
    state = await client.get(f"/v1/subjects/{survivor}/consents", headers=h)
    assert document["consents"] == state.json()
    assert {c["purpose"] for c in document["consents"]["consents"]} == {
        "newsletter",
        "analytics",
        "ads",
    }
    preferences = await client.get(f"/v1/subjects/{survivor}/preferences", headers=h)
    assert document["preferences"] == preferences.json()
    base = f"/v1/subjects/{survivor}"
    history = await _walk(client, h, f"{base}/consents/history")
    assert len(history) == 3
    assert document["consent_history"] == history
    assert document["preference_history"] == await _walk(client, h, f"{base}/preferences/history")
    assert len(document["preference_history"]) == 1
    activity = await _walk(client, h, f"{base}/activity")
    assert document["activity"] == activity
    # This export is a use of her data too, recorded before the lists were read: the document
    # lists it first, with the key that asked (tests/integration/audit/test_export_audited.py).
    key_ref = "api-key:" + h["Authorization"].removeprefix("Bearer ").split("_")[1]
    [exported] = [a for a in document["activity"] if a["kind"] == "subject.exported"]
    assert exported == document["activity"][0]
    assert exported["requester"] == key_ref
    # The decision about her is a logged use of her data; each event is a receipt that names
    # its audit event, whose proof /v1/audit/events/{id}/proof gives.
    [decision] = [a for a in document["activity"] if a["event_uuid"] == decision_id]
    assert (decision["kind"], decision["action"], decision["requester"]) == (
        "decision.made",
        "web.analytics",
        "analytics-tool",
    )
    receipts = {a["event_uuid"] for a in document["activity"]}
    assert {e["event_id"] for e in document["consent_history"]} <= receipts
    assert {e["event_id"] for e in document["preference_history"]} <= receipts
    assert document["audit"]["proof_path"] == "/v1/audit/events/{event_uuid}/proof"
    vkey = await client.get("/.well-known/consent-audit-keys")
    assert document["audit"]["vkey"] + "\n" == vkey.text
    assert document["audit"]["checkpoint"] is None  # nothing integrated and signed yet

    # The linked subject's id, and either identifier in the body, give the same document (and
    # each lists the exports before it).
    previous = await _export(client, h, linked)
    _same(document, previous)
    for ident in (EMAIL, DEVICE, {"type": "email", "value": " esther.export@example.com "}):
        by_identifier = await client.post(
            "/v1/subjects/export", json={"identifier": ident}, headers=h
        )
        assert by_identifier.status_code == 200, by_identifier.text
        assert by_identifier.headers["cache-control"] == "no-store"
        later = by_identifier.json()
        _same(previous, later)
        previous = later
    by_id = await client.post("/v1/subjects/export", json={"subject_id": linked}, headers=h)
    assert by_id.status_code == 200, by_id.text
    _same(previous, by_id.json())
    assert len(_exports(by_id.json())) == 6

    # One log line per export, naming tenant, subject and key; never an identifier's value.
    logged = [msgspec.json.decode(line) for line in service_log.getvalue().splitlines()]
    exports = [line for line in logged if line.get("event") == "subject.exported"]
    assert len(exports) == 6
    key_id = h["Authorization"].removeprefix("Bearer ").split("_")[1]
    assert all(
        (e["tenant_id"], e["subject_id"], e["api_key_id"]) == (catalog.tenant.id, survivor, key_id)
        for e in exports
    )
    text = service_log.getvalue().lower()
    assert b"esther" not in text
    assert b"cookie-esther" not in text


async def test_a_document_the_export_cannot_give_is_a_problem(
    client: Any, catalog: Catalog, other_tenant: Tenant
) -> None:
    survivor, linked, _ = await _person(catalog)
    h = catalog.h

    # Bad references: 400, before anything is looked up.
    for body in (
        {},
        {"subject_id": survivor, "identifier": EMAIL},
        {"identifier": {"type": "email", "value": "x"}},
    ):
        bad = await client.post("/v1/subjects/export", json=body, headers=h)
        assert bad.status_code == 400, (body, bad.text)
    unknown = await client.post(
        "/v1/subjects/export",
        json={"identifier": {"type": "email", "value": "no@example.com"}},
        headers=h,
    )
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")
    assert (await client.get(f"/v1/subjects/{UUID(int=7)}/export", headers=h)).status_code == 404

    # Only an admin key: the document holds decrypted identifiers, which no other answer does.
    reader = await catalog.post("/v1/api-keys", {"name": "crm", "scopes": ["read", "write"]})
    read = {"Authorization": f"Bearer {reader['secret']}"}
    assert (await client.get(f"/v1/subjects/{survivor}/export", headers=read)).status_code == 403
    by_reader = await client.post("/v1/subjects/export", json={"identifier": EMAIL}, headers=read)
    assert by_reader.status_code == 403
    banner = await catalog.post(
        "/v1/api-keys",
        {"name": "banner", "scopes": ["write"], "allowed_origins": ["https://shop.example"]},
    )
    from_page = {"Authorization": f"Bearer {banner['secret']}", "Origin": "https://shop.example"}
    answer = await client.get(f"/v1/subjects/{survivor}/export", headers=from_page)
    assert answer.status_code == 403

    # Another tenant's subject is no subject of this one, by id or by the same identifier.
    theirs = _Catalog(client, other_tenant)
    assert (
        await client.get(f"/v1/subjects/{survivor}/export", headers=other_tenant.headers)
    ).status_code == 404
    foreign = await client.post("/v1/subjects/export", json={"identifier": EMAIL}, headers=theirs.h)
    assert foreign.status_code == 404

    # After erasure the person is gone: 404 by either id and by identifier.
    erased = await client.delete(f"/v1/subjects/{survivor}", headers=h)
    assert erased.status_code == 200, erased.text
    for subject in (survivor, linked):
        gone = await client.get(f"/v1/subjects/{subject}/export", headers=h)
        assert gone.status_code == 404
        assert gone.json()["type"] == "/problems/not-found"
    for ask in ({"identifier": EMAIL}, {"subject_id": survivor}):
        gone = await client.post("/v1/subjects/export", json=ask, headers=h)
        assert gone.status_code == 404


async def test_a_heavily_targeted_person_s_export_is_complete_and_streamed_in_pages(
    client: Any, catalog: Catalog, db: Database, keyring: KeyRing, settings: Settings
) -> None:
    """Thousands of logged decisions: the document holds every one of them, and the service
    writes it a page at a time (no piece of it holds more than a page), never all at once."""
    survivor, _, _ = await _person(catalog)
    many = 2_500
    batch = await catalog.post(
        "/v1/decisions/batch",
        {
            "decisions": [
                {"subject": {"subject_id": survivor}, "action": "web.analytics", "context": CONTEXT}
            ]
            * many
        },
        status=200,
    )
    decided = {d["decision_id"] for d in batch["decisions"]}
    assert len(decided) == many

    document = await _export(client, catalog.h, survivor)
    uses = [a for a in document["activity"] if a["kind"] == "decision.made"]
    assert len(uses) == many + 1
    assert decided <= {a["event_uuid"] for a in uses}
    ids = [a["event_uuid"] for a in document["activity"]]
    assert len(ids) == len(set(ids))  # no page twice
    assert len(document["consent_history"]) == 3

    # The pieces the document is written in: each at most a page of one list.
    exporter = _exporter(db, keyring, catalog, settings)
    opened = await exporter.open(SubjectRef(subject_id=UUID(survivor)))
    pieces = [piece async for piece in opened.pieces()]
    whole = b"".join(pieces)
    again = msgspec.json.decode(whole)
    # The same activity, after this export's own `subject.exported` event.
    assert again["activity"][0]["event_uuid"] == str(opened.event_uuid)
    assert again["activity"][1:] == document["activity"]
    largest_page = max(
        len(msgspec.json.encode(document["activity"][i : i + 200])) for i in range(0, many, 200)
    )
    assert len(pieces) > many // 200
    assert max(len(p) for p in pieces) <= largest_page + 2


async def test_a_person_erased_while_the_document_is_written_never_gets_a_complete_one(
    client: Any,
    catalog: Catalog,
    db: Database,
    keyring: KeyRing,
    settings: Settings,
    service_log: io.BytesIO,
) -> None:
    """Each page is read on its own: a subject erased after the answer began ends it short
    (a document that does not parse, and a warning in the log), never with a document that
    looks complete."""
    survivor, _, _ = await _person(catalog)
    exporter = _exporter(db, keyring, catalog, settings)
    opened = await exporter.open(SubjectRef(subject_id=UUID(survivor)))
    pieces = opened.pieces()
    written = [await anext(pieces)]
    assert (await client.delete(f"/v1/subjects/{survivor}", headers=catalog.h)).status_code == 200
    with pytest.raises(NotFound):
        await _drain(pieces, written)
    with pytest.raises(msgspec.DecodeError):
        msgspec.json.decode(b"".join(written))
    logged = [msgspec.json.decode(line) for line in service_log.getvalue().splitlines()]
    assert [
        (e["subject_id"], e["error"]) for e in logged if e["event"] == "subject.export_incomplete"
    ] == [(survivor, "NotFound")]
