"""The service's own problem texts (not only msgspec's) in the language Accept-Language asks
for: a fixed `detail` and the messages in `errors`, including those that name a value (a
purpose, a scope); the values, field names, header names and codes stay as sent."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Catalog, Tenant

pytestmark = pytest.mark.integration

GERMAN = {"Accept-Language": "de"}
ENGLISH = {"Accept-Language": "en"}


def _problem(response: Any, status: int, language: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-language"] == language
    problem: dict[str, Any] = response.json()
    return problem


async def test_missing_api_key_is_german_too(client: Any) -> None:
    german = _problem(await client.get("/v1/tenant", headers=GERMAN), 401, "de")
    assert german["detail"] == (
        "Ein gültiger API-Schlüssel ist erforderlich (Authorization: Bearer <key>)."
    )
    english = _problem(await client.get("/v1/tenant", headers=ENGLISH), 401, "en")
    assert english["detail"] == "A valid API key is required (Authorization: Bearer <key>)."


async def test_missing_scope_is_german_too(client: Any, catalog: Catalog) -> None:
    writer = await catalog.post("/v1/api-keys", {"name": "crm", "scopes": ["write"]})
    auth = {"Authorization": f"Bearer {writer['secret']}"}
    german = _problem(await client.get("/v1/purposes", headers={**auth, **GERMAN}), 403, "de")
    assert german["detail"] == "Diesem API-Schlüssel fehlt der Scope 'read'."
    english = _problem(await client.get("/v1/purposes", headers={**auth, **ENGLISH}), 403, "en")
    assert english["detail"] == "This API key lacks the 'read' scope."


async def test_idempotency_key_reused_is_german_too(client: Any, catalog: Catalog) -> None:
    def purpose(key: str) -> dict[str, Any]:
        return {"key": key, "name": key.title(), "legal_basis": "consent"}

    for language, headers, expected in (
        ("de", GERMAN, "Dieser Idempotency-Key wurde für eine andere Anfrage verwendet."),
        ("en", ENGLISH, "This Idempotency-Key was used for a different request."),
    ):
        keyed = {**catalog.h, **headers, "Idempotency-Key": f"reuse-{language}"}
        first = await client.post("/v1/purposes", json=purpose(f"first_{language}"), headers=keyed)
        assert first.status_code == 201, first.text
        again = await client.post("/v1/purposes", json=purpose(f"other_{language}"), headers=keyed)
        assert _problem(again, 422, language)["detail"] == expected


async def test_existing_purpose_is_german_too(client: Any, catalog: Catalog) -> None:
    body = {"key": "analytics", "name": "Analytics", "legal_basis": "consent"}
    german = await client.post("/v1/purposes", json=body, headers={**catalog.h, **GERMAN})
    assert _problem(german, 409, "de")["detail"] == "Der Zweck 'analytics' existiert bereits."
    english = await client.post("/v1/purposes", json=body, headers={**catalog.h, **ENGLISH})
    assert _problem(english, 409, "en")["detail"] == "Purpose 'analytics' exists."


async def test_consent_with_unknown_purpose_is_german_too(client: Any, catalog: Catalog) -> None:
    body = {
        "identifier": {"type": "email", "value": "ann@example.com"},
        "choices": [{"purpose": "nope", "choice": "granted"}],
        "notice_version_id": catalog.versions[max(catalog.versions)],
        "surface": "banner",
        "channel": "web",
    }
    german = await client.post("/v1/consents", json=body, headers={**catalog.h, **GERMAN})
    problem = _problem(german, 400, "de")
    assert problem["errors"] == [
        {"field": "choices[0].purpose", "message": "unbekannter Zweck 'nope'"}
    ]
    assert problem["detail"] == "unbekannter Zweck 'nope'"
    english = await client.post("/v1/consents", json=body, headers={**catalog.h, **ENGLISH})
    problem = _problem(english, 400, "en")
    assert problem["errors"] == [
        {"field": "choices[0].purpose", "message": "unknown purpose 'nope'"}
    ]
    assert problem["detail"] == "unknown purpose 'nope'"

    # Several problems: the fixed detail, and each message, in the language asked for.
    body["identifier"] = {"type": "email", "value": "not an address"}
    german = await client.post("/v1/consents", json=body, headers={**catalog.h, **GERMAN})
    problem = _problem(german, 400, "de")
    assert problem["detail"] == "Ungültige Einwilligung."
    assert {"field": "identifier.value", "message": "keine E-Mail-Adresse"} in problem["errors"]
    english = await client.post("/v1/consents", json=body, headers={**catalog.h, **ENGLISH})
    problem = _problem(english, 400, "en")
    assert problem["detail"] == "Invalid consent."
    assert {"field": "identifier.value", "message": "not an e-mail address"} in problem["errors"]


async def test_bad_cursor_is_german_too(client: Any, tenant: Tenant) -> None:
    german = await client.get("/v1/purposes?cursor=AAAA", headers={**tenant.headers, **GERMAN})
    assert _problem(german, 400, "de")["errors"] == [
        {"field": "cursor", "message": "kein Cursor, den diese API ausgegeben hat"}
    ]
    limit = await client.get("/v1/purposes?limit=0", headers={**tenant.headers, **GERMAN})
    assert _problem(limit, 400, "de")["errors"][0]["field"] == "limit"
    english = await client.get("/v1/purposes?cursor=AAAA", headers={**tenant.headers, **ENGLISH})
    assert _problem(english, 400, "en")["errors"] == [
        {"field": "cursor", "message": "not a cursor returned by this API"}
    ]


async def test_unknown_query_parameter_and_subject_are_german_too(
    client: Any, tenant: Tenant
) -> None:
    german = _problem(
        await client.get("/v1/purposes?limt=5", headers={**tenant.headers, **GERMAN}), 400, "de"
    )
    assert german["errors"][0]["field"] == "limt"
    assert german["errors"][0]["message"].startswith(
        "unbekannter Query-Parameter; diese Operation nimmt "
    )
    english = _problem(
        await client.get("/v1/purposes?limt=5", headers={**tenant.headers, **ENGLISH}), 400, "en"
    )
    assert english["errors"][0]["message"].startswith(
        "unknown query parameter; this operation takes "
    )
    nobody = "/v1/subjects/00000000-0000-0000-0000-000000000000/consents/history"
    german = _problem(await client.get(nobody, headers={**tenant.headers, **GERMAN}), 404, "de")
    assert german["detail"] == "Diese betroffene Person gibt es nicht."
