"""A jurisdiction that does not exist is refused, never decided under the policy's default.

The policy falls back to a default for a code its data does not list, so a typo would fail
open: `US-CX` (for California) would ignore a Global Privacy Control signal, `UK` (for GB) would
apply the default digital consent age 16 instead of 13.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from consent.db.database import Database
from consent.decisions.jurisdictions import is_known
from tests.integration.decisions.conftest import Ledger

ROOT = Path(__file__).resolve().parents[3]

pytestmark = [pytest.mark.integration, pytest.mark.policy]


@pytest.fixture
def engine_kind() -> str:
    return "in-process"


def _ask(jurisdiction: str) -> dict[str, Any]:
    return {
        "subject": {"identifier": {"type": "email", "value": "gpc@example.com"}},
        "action": "data.share.partner",
        "context": {"requester": "esp", "jurisdiction": jurisdiction, "gpc": True},
    }


@pytest.mark.parametrize(
    ("code", "hint"),
    [("US-CX", "US is known"), ("UK", "use GB"), ("ZZ", None), ("DE-XYZ", "DE is known")],
)
async def test_a_code_that_does_not_exist_is_a_400_on_every_path(
    ledger: Ledger, db: Database, code: str, hint: str | None
) -> None:
    await ledger.consent("gpc@example.com", {"data_sharing": "granted"})
    single = await ledger.client.post("/v1/decisions", json=_ask(code), headers=ledger.h)
    assert single.status_code == 400, single.text
    problem = single.json()
    # The field itself, not the struct it is in (the check runs once the context is read).
    assert problem["errors"][0]["field"] == "context.jurisdiction"
    assert "ISO 3166" in problem["errors"][0]["message"]
    if hint is not None:
        assert hint in problem["errors"][0]["message"]
    batch = await ledger.client.post(
        "/v1/decisions/batch", json={"decisions": [_ask("US-CA"), _ask(code)]}, headers=ledger.h
    )
    assert batch.status_code == 400, batch.text
    assert batch.json()["errors"][0]["field"] == "decisions[1].context.jurisdiction"
    header = {"action": "data.share.partner", "context": {"requester": "esp"}}
    bad_header = {**header, "context": {"requester": "esp", "jurisdiction": code}}
    response = await ledger.client.post(
        "/v1/audiences/filter",
        content=(json.dumps(bad_header) + "\n").encode(),
        headers={**ledger.h, "content-type": "application/x-ndjson"},
    )
    assert response.status_code == 400, response.text
    # The header's field, by its path in the header line.
    assert response.json()["errors"][0]["field"] == "header.context.jurisdiction"
    # A member line naming such a code is an invalid line, not a member decided by default.
    lines = await ledger.audience(
        {**header, "output": "all"},
        [
            {"type": "email", "value": "gpc@example.com", "jurisdiction": code, "gpc": True},
            {"type": "email", "value": "gpc@example.com", "jurisdiction": "US-CA", "gpc": True},
        ],
    )
    *results, summary = lines
    assert summary["summary"]["invalid"] == 1
    assert [r["allow"] for r in results if "allow" in r] == [False]
    async with db.system() as conn:
        logged = await conn.fetchval("select count(*) from decision_log where kind = 'single'")
    assert logged == 0


async def test_a_real_subdivision_is_decided_by_the_policy(ledger: Ledger) -> None:
    await ledger.consent("gpc@example.com", {"data_sharing": "granted"})
    california = await ledger.decide(
        "gpc@example.com", "data.share.partner", jurisdiction="US-CA", gpc=True
    )
    assert california["allow"] is False
    assert "denied.gpc" in california["reasons"]
    germany = await ledger.decide(
        "gpc@example.com", "data.share.partner", jurisdiction="DE-BY", gpc=True
    )
    assert germany["allow"] is True


def test_every_code_in_the_policy_data_exists() -> None:
    """The policy's own jurisdiction data names only codes a request can send."""
    data = json.loads((ROOT / "policies/data/jurisdictions.json").read_text())["value"]
    tables = [v for k, v in data.items() if isinstance(v, dict) and not k.endswith("_sources")]
    codes = {code for table in tables for code in table if code != "default"}
    assert codes, "the policy data lists jurisdictions"
    assert sorted(c for c in codes if not is_known(c)) == []


# What a client reading German gets for each kind of unknown code: the field's path and a
# German message that keeps the code it names (`GB`, `US`), as the other field messages do.
_GERMAN = [
    ("ZZ", "ISO 3166-1", None),
    ("UK", "für dieses Land verwenden Sie GB", "for this country use GB"),
    ("US-CX", "US ist bekannt, diese Untergliederung nicht", "US is known"),
]


@pytest.mark.parametrize(("code", "german", "english"), _GERMAN)
async def test_the_message_about_an_unknown_code_comes_in_german(
    ledger: Ledger, code: str, german: str, english: str | None
) -> None:
    de = {**ledger.h, "Accept-Language": "de"}
    single = await ledger.client.post("/v1/decisions", json=_ask(code), headers=de)
    batch = await ledger.client.post(
        "/v1/decisions/batch", json={"decisions": [_ask("DE"), _ask(code)]}, headers=de
    )
    header = {"action": "data.share.partner", "context": {"requester": "esp", "jurisdiction": code}}
    audience = await ledger.client.post(
        "/v1/audiences/filter",
        content=(json.dumps(header) + "\n").encode(),
        headers={**de, "content-type": "application/x-ndjson"},
    )
    fields = [
        "context.jurisdiction",
        "decisions[1].context.jurisdiction",
        "header.context.jurisdiction",
    ]
    for response, field in zip([single, batch, audience], fields, strict=True):
        assert response.status_code == 400, response.text
        assert response.headers["content-language"] == "de"
        problem = response.json()
        assert [e["field"] for e in problem["errors"]] == [field]
        message = problem["errors"][0]["message"]
        assert message.startswith(("jurisdiction ist kein Ländercode", "ungültige Kopfzeile: "))
        assert "jurisdiction ist kein Ländercode nach ISO 3166-1" in message, message
        assert german in message
        assert "is not" not in message
        assert " - at " not in message
        assert problem["detail"] == message
    # English stays English.
    english_answer = await ledger.client.post("/v1/decisions", json=_ask(code), headers=ledger.h)
    message = english_answer.json()["errors"][0]["message"]
    assert message.startswith("jurisdiction is not an ISO 3166-1 country")
    if english is not None:
        assert english in message


async def test_a_bad_header_field_is_named_by_its_path_and_worded_in_german(
    ledger: Ledger,
) -> None:
    """msgspec's words about the header line come in German like the rest of the answer."""
    de = {**ledger.h, "Accept-Language": "de", "content-type": "application/x-ndjson"}
    cases = [
        ({"action": "email.marketing"}, "header.context", "Im Objekt fehlt das Pflichtfeld"),
        (
            {"action": "email.marketing", "context": {"requester": 5}},
            "header.context.requester",
            "Erwartet `str`, erhalten `int`",
        ),
        (
            {"action": "email.marketing", "context": {"requester": "esp"}, "colour": 1},
            "header.colour",
            "Objekt enthält unbekanntes Feld `colour`",
        ),
    ]
    for header, field, german in cases:
        response = await ledger.client.post(
            "/v1/audiences/filter", content=(json.dumps(header) + "\n").encode(), headers=de
        )
        assert response.status_code == 400, response.text
        problem = response.json()
        assert [e["field"] for e in problem["errors"]] == [field], problem
        message = problem["errors"][0]["message"]
        assert message.startswith(f"ungültige Kopfzeile: {german}"), problem
        assert problem["detail"] == message
        assert " - at " not in problem["detail"]
