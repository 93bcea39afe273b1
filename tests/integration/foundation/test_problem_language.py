"""Problems (RFC 9457) and their pages in the language Accept-Language asks for (English or
German; English otherwise): `title`, static `detail`s and the page's texts change, `type`,
`status` and field names never do; the answer says its language and that it varies by it."""

from __future__ import annotations

from typing import Any

import pytest

from consent.decisions.fastpath import DecisionFastPath
from tests.conftest import Tenant

pytestmark = pytest.mark.integration

GERMAN = {"Accept-Language": "de-DE,de;q=0.9,en;q=0.8"}


def _says_its_language(response: Any, language: str) -> None:
    assert response.headers["content-language"] == language
    vary = ", ".join(response.headers.get_list("vary")).lower()
    assert "accept-language" in vary


async def test_problem_title_follows_accept_language(client: Any) -> None:
    english = await client.get("/v1/tenant")
    german = await client.get("/v1/tenant", headers=GERMAN)
    assert english.status_code == german.status_code == 401
    assert german.headers["content-type"].startswith("application/problem+json")
    assert english.json()["title"] == "Authentication required"
    assert german.json()["title"] == "Authentifizierung erforderlich"
    same = ("type", "status", "instance")
    assert [german.json()[k] for k in same] == [english.json()[k] for k in same]
    _says_its_language(english, "en")
    _says_its_language(german, "de")

    french = await client.get("/v1/tenant", headers={"Accept-Language": "fr-FR, fr"})
    assert french.json()["title"] == "Authentication required"  # not offered: English
    _says_its_language(french, "en")


async def test_router_problems_are_german_too(client: Any) -> None:
    missing = await client.get("/v1/no-such-thing", headers=GERMAN)
    assert (missing.status_code, missing.json()["title"]) == (404, "Nicht gefunden")
    assert missing.json()["type"] == "/problems/not-found"
    wrong = await client.delete("/health/live", headers=GERMAN)
    assert (wrong.status_code, wrong.json()["title"]) == (405, "Methode nicht erlaubt")
    _says_its_language(wrong, "de")


async def test_validation_problem_keeps_field_names_and_translates_static_texts(
    client: Any, tenant: Tenant
) -> None:
    bad = {"name": "web", "kind": "spaceship"}
    english = await client.post("/v1/properties", json=bad, headers=tenant.headers)
    german = await client.post("/v1/properties", json=bad, headers={**tenant.headers, **GERMAN})
    assert english.status_code == german.status_code == 400
    assert german.json()["type"] == english.json()["type"] == "/problems/validation-error"
    assert german.json()["title"] == "Die Anfrage ist ungültig"
    assert [e["field"] for e in german.json()["errors"]] == ["kind"]
    # msgspec's words are translated by their shape (test_field_messages_language.py)
    assert english.json()["errors"] == [{"field": "kind", "message": "Invalid enum value"}]
    assert german.json()["errors"] == [{"field": "kind", "message": "Ungültiger Enum-Wert"}]

    empty = await client.post(
        "/v1/properties",
        content=b"",
        headers={**tenant.headers, **GERMAN, "content-type": "application/json"},
    )
    assert empty.status_code == 400
    assert empty.json()["detail"] == "Der Anfrageinhalt ist leer."
    assert empty.json()["errors"] == [{"field": "body", "message": "Der Anfrageinhalt ist leer."}]


async def test_problem_page_in_german_is_accessible(client: Any) -> None:
    page = await client.get("/problems/forbidden", headers=GERMAN)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<html lang="de">' in page.text
    assert "<main>" in page.text
    assert "<h1>Nicht erlaubt</h1>" in page.text
    assert "<title>Nicht erlaubt</title>" in page.text
    assert "Herkunft (Origin)" in page.text
    _says_its_language(page, "de")

    # Escaped: the texts quote `<key>`.
    unauthorized = await client.get("/problems/unauthorized", params={"lang": "de"})
    assert '<html lang="de">' in unauthorized.text
    assert "Bearer &lt;key&gt;" in unauthorized.text
    assert "<key>" not in unauthorized.text

    english = await client.get("/problems/forbidden", params={"lang": "en"}, headers=GERMAN)
    assert '<html lang="en">' in english.text
    assert "<h1>Not allowed</h1>" in english.text
    _says_its_language(english, "en")
    unknown_lang = await client.get("/problems/forbidden", params={"lang": "xx"})
    assert '<html lang="en">' in unknown_lang.text

    nonsense = await client.get("/problems/nonsense", headers=GERMAN)
    assert nonsense.status_code == 404
    assert nonsense.json()["detail"] == "Diesen Problemtyp gibt es nicht."


async def test_fast_path_problems_are_german_too(client: Any, tenant: Tenant) -> None:
    ask = {
        "subject": {"identifier": {"type": "no_such_type", "value": "x"}},
        "action": "email.marketing",
        "context": {"requester": "esp"},
    }
    await client.get("/v1/tenant", headers=tenant.headers)  # the key is now verified and cached
    fast: DecisionFastPath = client.app.state.decision_fast_path
    answered = fast.answered
    response = await client.post("/v1/decisions", json=ask, headers={**tenant.headers, **GERMAN})
    assert fast.answered == answered + 1  # answered by the fast path, not by Litestar
    assert response.status_code == 400
    problem = response.json()
    assert problem["type"] == "/problems/validation-error"
    assert problem["title"] == "Die Anfrage ist ungültig"
    assert problem["errors"][0]["field"].startswith("subject.identifier")
    _says_its_language(response, "de")


async def test_unsupported_media_type_is_german_too(client: Any, tenant: Tenant) -> None:
    """The 415 is answered by a middleware in front of the handlers: same catalogue, same
    headers as every other problem."""
    for path, media in (("/v1/properties", "application/json"), ("/v1/audiences/filter", None)):
        answer = await client.post(
            path,
            content=b"{}",
            headers={**tenant.headers, **GERMAN, "content-type": "text/plain"},
        )
        assert answer.status_code == 415, answer.text
        assert answer.json()["title"] == "Nicht unterstützter Medientyp"
        assert answer.json()["detail"].startswith("Senden Sie den Anfrageinhalt als ")
        assert (media or "application/x-ndjson") in answer.json()["detail"]
        _says_its_language(answer, "de")
    english = await client.post(
        "/v1/properties", content=b"{}", headers={**tenant.headers, "content-type": "text/plain"}
    )
    assert english.json()["detail"] == "Send the body as JSON (Content-Type: application/json)."
    _says_its_language(english, "en")
