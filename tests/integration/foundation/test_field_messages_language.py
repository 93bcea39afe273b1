"""The per-field messages of a 400 (`errors[].message`, and the `detail` of a one-error problem)
in the language Accept-Language asks for: msgspec's and Litestar's words about a bad body or
parameter are German for `de`, by message shape (types, bounds and field names unchanged), and
byte for byte as before in English."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Tenant

pytestmark = pytest.mark.integration

GERMAN = {"Accept-Language": "de-DE,de;q=0.9,en;q=0.8"}
_CONSENT = {
    "choices": [{"purpose": "analytics", "choice": "granted"}],
    "surface": "banner",
    "channel": "web",
}

# (path, body, field, English message, German message)
BODIES: list[tuple[str, Any, str, str, str]] = [
    (
        "/v1/consents",
        {**_CONSENT, "choices": "analytics"},
        "choices",
        "Expected `array`, got `str`",
        "Erwartet `array`, erhalten `str`",
    ),
    (
        "/v1/consents",
        {**_CONSENT, "choices": [{"choice": "granted"}]},
        "choices[0].purpose",
        "Object missing required field `purpose`",
        "Im Objekt fehlt das Pflichtfeld `purpose`",
    ),
    (
        "/v1/consents",
        {**_CONSENT, "colour": "blue"},
        "colour",
        "Object contains unknown field `colour`",
        "Objekt enthält unbekanntes Feld `colour`",
    ),
    (
        "/v1/consents",
        {**_CONSENT, "agent_id": "a" * 101},
        "agent_id",
        "Expected `str` of length <= 100",
        "Erwartet `str` der Länge <= 100",
    ),
    (
        "/v1/consents",
        {**_CONSENT, "choices": [{"purpose": "analytics", "choice": "granted"}] * 101},
        "choices",
        "Expected `array` of length <= 100",
        "Erwartet `array` der Länge <= 100",
    ),
    (
        "/v1/consents",
        {**_CONSENT, "choices": [{"purpose": "analytics", "choice": "maybe"}]},
        "choices[0].choice",
        "Invalid enum value",
        "Ungültiger Enum-Wert",
    ),
    (
        "/v1/consents",
        {**_CONSENT, "occurred_at": "yesterday"},
        "occurred_at",
        "Invalid RFC3339 encoded datetime",
        "Ungültiger Zeitpunkt (RFC3339 erwartet)",
    ),
    (
        "/v1/purposes",
        {"key": "a", "name": "A", "legal_basis": "consent", "max_age_days": 0},
        "max_age_days",
        "Expected `int` >= 1",
        "Erwartet `int` >= 1",
    ),
    (
        "/v1/purposes",
        {"key": "a", "name": "x" * 201, "legal_basis": "consent"},
        "name",
        "Expected `str` of length <= 200",
        "Erwartet `str` der Länge <= 200",
    ),
]


@pytest.mark.parametrize(
    ("path", "body", "field", "english", "german"),
    BODIES,
    ids=[case[3] for case in BODIES],
)
async def test_body_field_messages_follow_accept_language(
    client: Any, tenant: Tenant, path: str, body: Any, field: str, english: str, german: str
) -> None:
    in_english = await client.post(path, json=body, headers=tenant.headers)
    in_german = await client.post(path, json=body, headers={**tenant.headers, **GERMAN})
    assert in_english.status_code == in_german.status_code == 400, in_german.text
    assert in_english.json()["errors"] == [{"field": field, "message": english}]
    assert in_english.json()["detail"] == english
    assert in_english.headers["content-language"] == "en"
    assert in_german.json()["errors"] == [{"field": field, "message": german}]
    assert in_german.json()["detail"] == german
    assert in_german.json()["title"] == "Die Anfrage ist ungültig"
    assert in_german.headers["content-language"] == "de"


@pytest.mark.parametrize(
    ("query", "english", "german"),
    [
        ("limit=abc", "Expected `int`, got `str`", "Erwartet `int`, erhalten `str`"),
        ("limit=0", "Expected `int` >= 1", "Erwartet `int` >= 1"),
        ("limit=500", "Expected `int` <= 200", "Erwartet `int` <= 200"),
    ],
)
async def test_query_parameter_messages_follow_accept_language(
    client: Any, tenant: Tenant, query: str, english: str, german: str
) -> None:
    in_english = await client.get(f"/v1/purposes?{query}", headers=tenant.headers)
    in_german = await client.get(f"/v1/purposes?{query}", headers={**tenant.headers, **GERMAN})
    assert in_english.status_code == in_german.status_code == 400
    assert in_english.json()["errors"] == [{"field": "limit", "message": english}]
    assert in_english.json()["detail"] == english
    assert in_german.json()["errors"] == [{"field": "limit", "message": german}]
    assert in_german.json()["detail"] == german


async def test_several_errors_get_the_static_detail_and_each_message(
    client: Any, tenant: Tenant
) -> None:
    query = {"limit": "abc", "cursor": "x" * 3000}
    in_english = await client.get("/v1/purposes", params=query, headers=tenant.headers)
    in_german = await client.get("/v1/purposes", params=query, headers={**tenant.headers, **GERMAN})
    assert in_english.status_code == in_german.status_code == 400
    english = {e["field"]: e["message"] for e in in_english.json()["errors"]}
    german = {e["field"]: e["message"] for e in in_german.json()["errors"]}
    assert english == {
        "limit": "Expected `int`, got `str`",
        "cursor": "Expected `str` of length <= 2048",
    }
    assert german == {
        "limit": "Erwartet `int`, erhalten `str`",
        "cursor": "Erwartet `str` der Länge <= 2048",
    }
    assert in_english.json()["detail"] == "The request body or parameters are invalid."
    assert in_german.json()["detail"] == "Der Anfrageinhalt oder die Parameter sind ungültig."


async def test_malformed_json_detail_follows_accept_language(client: Any, tenant: Tenant) -> None:
    headers = {**tenant.headers, "content-type": "application/json"}
    in_english = await client.post("/v1/purposes", content=b'{"key": "a",}', headers=headers)
    in_german = await client.post(
        "/v1/purposes", content=b'{"key": "a",}', headers={**headers, **GERMAN}
    )
    assert in_english.status_code == in_german.status_code == 400
    assert in_english.json()["detail"] == "JSON is malformed: trailing comma in object (byte 12)"
    assert (
        in_german.json()["detail"] == "JSON ist fehlerhaft: überzähliges Komma im Objekt (Byte 12)"
    )
    assert in_german.json()["title"] == "Die Anfrage ist ungültig"


async def test_service_field_messages_come_from_the_catalogue(client: Any, tenant: Tenant) -> None:
    """The service's own field messages (ValidationFailed.field) are not msgspec's shapes: they
    come whole from the catalogue (consent/locales), never half-translated by shape."""
    answer = await client.get(
        "/v1/purposes", params={"cursor": "not-a-cursor"}, headers={**tenant.headers, **GERMAN}
    )
    assert answer.status_code == 400
    assert answer.json()["errors"] == [
        {"field": "cursor", "message": "kein Cursor, den diese API ausgegeben hat"}
    ]
