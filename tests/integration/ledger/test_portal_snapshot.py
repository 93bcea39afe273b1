"""A privacy portal's download of a customer's data: one export is one moment. Written while a
customer changes her settings, the document never holds a change in one list and not in
another (a preference in the history, but not in the current state beside it)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
import pytest

from consent.audit.outbox import AuditWriter
from consent.config import Settings
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from consent.subjects.export import SubjectExport, SubjectExporter
from consent.subjects.schemas import SubjectRef
from tests.integration.ledger.conftest import Catalog

pytestmark = pytest.mark.integration

EMAIL = {"type": "email", "value": "paula.portal@example.com"}


def _preferences(body: dict[str, Any]) -> dict[str, Any]:
    return {"surface": "portal", "channel": "web", **body}


async def test_an_export_is_one_moment_whatever_is_written_while_it_downloads(
    client: Any, catalog: Catalog, db: Database, keyring: KeyRing, settings: Settings
) -> None:
    """The head (current consents and preferences) is written first; a consent and a
    preference committed after it are in no list of the document: every list and the state
    are of the moment the head was read."""
    first = await catalog.consent(
        identifier=EMAIL, choices=[{"purpose": "newsletter", "choice": "granted"}]
    )
    subject = first["subject_id"]
    await catalog.post(
        "/v1/preferences",
        _preferences(
            {
                "subject_id": subject,
                "items": [{"kind": "channel", "key": "email", "value": "opt_in"}],
            }
        ),
    )
    exporter = SubjectExporter(
        db,
        keyring,
        UUID(catalog.tenant.id),
        "vkey",
        writer=AuditWriter(settings.audit_origin),
        actor="api-key:portal",
    )
    opened = await exporter.open(SubjectRef(subject_id=UUID(subject)))
    pieces = opened.pieces()
    written = [await anext(pieces)]  # the head: identifiers and current state

    # The customer changes her mind in the portal while her download runs.
    late_preference = await catalog.post(
        "/v1/preferences",
        _preferences(
            {
                "subject_id": subject,
                "items": [{"kind": "channel", "key": "email", "value": "opt_out"}],
            }
        ),
    )
    late_consent = await catalog.consent(
        subject_id=subject, choices=[{"purpose": "newsletter", "choice": "withdrawn"}]
    )
    written += [piece async for piece in pieces]
    document = msgspec.json.decode(b"".join(written))
    msgspec.convert(document, SubjectExport)

    late = {late_preference["event_id"], late_consent["event_id"]}
    assert not late & {e["event_id"] for e in document["preference_history"]}
    assert not late & {e["event_id"] for e in document["consent_history"]}
    assert not late & {a["event_uuid"] for a in document["activity"]}
    # The state beside the histories is the one they lead to.
    assert [(p["key"], p["value"]) for p in document["preferences"]["preferences"]] == [
        ("email", "opt_in")
    ]
    assert (
        document["preferences"]["preferences"][0]["event_id"]
        == (document["preference_history"][0]["event_id"])
    )
    assert [(c["purpose"], c["choice"]) for c in document["consents"]["consents"]] == [
        ("newsletter", "granted")
    ]
    assert document["consents"]["consents"][0]["event_id"] == first["event_id"]
    # The export's own event is in it; the changes made meanwhile are in the next one.
    assert document["activity"][0]["event_uuid"] == str(opened.event_uuid)
    again = await client.get(f"/v1/subjects/{subject}/export", headers=catalog.h)
    assert late <= {e["event_id"] for e in again.json()["preference_history"]} | {
        e["event_id"] for e in again.json()["consent_history"]
    }


async def test_a_customer_s_preferences_are_listed_a_page_at_a_time(
    client: Any, catalog: Catalog
) -> None:
    """Topics have no limit: the current preferences are paginated by kind, then key, like
    every other list, and the export holds all of them."""
    topics = [f"topic-{i:03d}" for i in range(150)]
    recorded = await catalog.post(
        "/v1/preferences",
        _preferences(
            {
                "identifier": EMAIL,
                "items": [{"kind": "topic", "key": t, "value": "subscribed"} for t in topics[:100]],
            }
        ),
    )
    subject = recorded["subject_id"]
    await catalog.post(
        "/v1/preferences",
        _preferences(
            {
                "subject_id": subject,
                "items": [
                    {"kind": "channel", "key": "sms", "value": "opt_out"},
                    {"kind": "frequency", "key": "default", "value": "weekly"},
                    *({"kind": "topic", "key": t, "value": "unsubscribed"} for t in topics[100:]),
                ],
            }
        ),
    )
    path = f"/v1/subjects/{subject}/preferences"
    expected = [("channel", "sms"), ("frequency", "default"), *(("topic", t) for t in topics)]

    default = (await client.get(path, headers=catalog.h)).json()
    assert len(default["preferences"]) == 50
    assert default["subject_id"] == subject
    assert default["next_cursor"] is not None

    walked: list[tuple[str, str]] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 40} | ({"cursor": cursor} if cursor else {})
        answer = await client.get(path, params=params, headers=catalog.h)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        walked += [(p["kind"], p["key"]) for p in page["preferences"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == expected
    assert pages == 4  # 152 in pages of 40: no empty last page

    # Not a cursor of this list: a 400 naming the field, in the reader's language.
    purposes = (await client.get("/v1/purposes", params={"limit": 1}, headers=catalog.h)).json()
    for bad in ("x", purposes["next_cursor"] or "bmV3c2xldHRlcg", "dG9waWMvQUJD"):
        refused = await client.get(
            path, params={"cursor": bad}, headers=catalog.h | {"Accept-Language": "de"}
        )
        assert refused.status_code == 400, (bad, refused.text)
        problem = refused.json()
        assert [e["field"] for e in problem["errors"]] == ["cursor"]
        assert refused.headers["content-language"] == "de"
    too_many = await client.get(path, params={"limit": 201}, headers=catalog.h)
    assert too_many.status_code == 400

    # The export holds every one of them, not a page.
    document = (await client.get(f"/v1/subjects/{subject}/export", headers=catalog.h)).json()
    held = document["preferences"]
    assert [(p["kind"], p["key"]) for p in held["preferences"]] == expected
    assert held["next_cursor"] is None


async def test_the_openapi_document_describes_the_preferences_pages(client: Any) -> None:
    spec = (await client.get("/schema/openapi.json")).json()
    operation = spec["paths"]["/v1/subjects/{subject_id}/preferences"]["get"]
    params = {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}
    assert set(params) == {"cursor", "limit"}
    assert params["limit"]["schema"]["maximum"] == 200
    shape = spec["components"]["schemas"]["SubjectPreferences"]
    assert "next_cursor" in shape["properties"]
    assert shape["properties"]["next_cursor"]["description"]
