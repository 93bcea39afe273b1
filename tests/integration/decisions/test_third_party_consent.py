"""`context.parental_consent_third_parties`: COPPA's separate parental consent to disclosure to
third parties (16 CFR 312.5(a)(2)), end to end. A US child under 13 may be sold or shared only
with both parental consents; the single call, the fast path, the batch and the audience filter
give the same answer; the decision cache never answers one value with the other's decision; the
logged input shows and replays it, and a decision logged before the field existed replays as
without it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from consent.db.database import Database
from consent.decisions.fastpath import DecisionFastPath
from tests.integration.decisions.conftest import Ledger

pytestmark = [pytest.mark.integration, pytest.mark.policy]

CHILD = "us-child@example.com"
US_CHILD = {"jurisdiction": "US-NY", "age": 12}
# (general parental consent, separate consent to third parties) -> expected reasons of a sale.
COMBINATIONS: list[tuple[bool, bool, tuple[str, ...]]] = [
    (True, True, ("allowed.consent",)),
    (True, False, ("denied.child",)),
    (False, True, ("denied.child",)),
    (False, False, ("denied.child",)),
]


def _context(*, parental: bool, third: bool) -> dict[str, Any]:
    return {**US_CHILD, "parental_consent": parental, "parental_consent_third_parties": third}


BOTH = _context(parental=True, third=True)
GENERAL_ONLY = _context(parental=True, third=False)


async def _child(ledger: Ledger) -> str:
    return await ledger.consent(CHILD, {"data_sale": "granted", "data_sharing": "granted"})


async def test_a_us_child_is_sold_only_with_both_parental_consents(ledger: Ledger) -> None:
    await _child(ledger)
    fast: DecisionFastPath = ledger.client.app.state.decision_fast_path
    for action in ("data.sell.partner", "data.share.partner"):
        # Twice over, alternating: the second round is answered from the decision cache (and
        # by the fast path), which must keep the two values of the field apart.
        for _ in range(2):
            for parental, third, reasons in COMBINATIONS:
                before = fast.answered
                got = await ledger.decide(CHILD, action, **_context(parental=parental, third=third))
                assert (got["allow"], tuple(got["reasons"])) == (
                    reasons == ("allowed.consent",),
                    reasons,
                ), (action, parental, third, got)
                assert fast.answered == before + 1  # the fast path parsed the field too


async def test_the_separate_consent_alone_changes_nothing_else(ledger: Ledger) -> None:
    await _child(ledger)
    # An adult, an EU child, a US teen: the field does not matter.
    contexts: list[dict[str, Any]] = [
        {"jurisdiction": "US-NY", "age": 40},
        {"jurisdiction": "US-NY", "age": 13},
        {"jurisdiction": "DE", "age": 12, "parental_consent": True},
    ]
    for context in contexts:
        for third in (False, True):
            got = await ledger.decide(
                CHILD, "data.sell.partner", **context, parental_consent_third_parties=third
            )
            assert got["reasons"] == ["allowed.consent"], (context, third, got)
    # California under 13: both parental consents and the child's opt-in are enough.
    got = await ledger.decide(CHILD, "data.share.partner", **{**BOTH, "jurisdiction": "US-CA"})
    assert got["reasons"] == ["allowed.consent"]
    # The separate consent is not a consent to a purpose: a withdrawn one still denies.
    await ledger.consent(CHILD, {"data_sale": "withdrawn"})
    got = await ledger.decide(CHILD, "data.sell.partner", **BOTH)
    assert got["reasons"] == ["denied.withdrawn"]


async def test_batch_and_audience_equal_single(ledger: Ledger) -> None:
    subject_id = await _child(ledger)
    singles = [
        await ledger.decide(CHILD, "data.sell.partner", **_context(parental=parental, third=third))
        for parental, third, _ in COMBINATIONS
    ]
    batch = await ledger.post(
        "/v1/decisions/batch",
        {
            "decisions": [
                {
                    "subject": {"subject_id": subject_id},
                    "action": "data.sell.partner",
                    "context": {"requester": "esp", **_context(parental=parental, third=third)},
                }
                for parental, third, _ in COMBINATIONS
            ]
        },
        status=200,
    )
    answers = [(d["allow"], d["reasons"]) for d in batch["decisions"]]
    assert answers == [(s["allow"], s["reasons"]) for s in singles]

    # The header gives one value, members override it (or not) line by line.
    for header_third in (False, True):
        lines = await ledger.audience(
            {
                "action": "data.sell.partner",
                "context": {
                    "requester": "esp",
                    **US_CHILD,
                    "parental_consent_third_parties": header_third,
                },
                "output": "all",
            },
            [
                {"type": "email", "value": CHILD, **_context(parental=parental, third=third)}
                for parental, third, _ in COMBINATIONS
            ]
            + [{"subject_id": subject_id, "parental_consent": True}],
        )
        *members, summary = lines
        assert [(m["allow"], m["reasons"]) for m in members] == [
            *answers,
            (header_third, ["allowed.consent"] if header_third else ["denied.child"]),
        ]
        assert summary["summary"]["allowed"] == 1 + header_third


async def test_the_logged_input_shows_and_replays_the_field(ledger: Ledger, db: Database) -> None:
    await _child(ledger)
    allowed = await ledger.decide(CHILD, "data.sell.partner", **BOTH)
    denied = await ledger.decide(CHILD, "data.sell.partner", **GENERAL_ONLY)
    for decision, value in ((allowed, True), (denied, False)):
        response = await ledger.client.get(
            f"/v1/decisions/{decision['decision_id']}?replay=true", headers=ledger.h
        )
        assert response.status_code == 200, response.text
        stored = response.json()
        assert stored["input"]["subject"]["parental_consent_third_parties"] is value
        assert stored["replay"]["allow"] is value
        assert stored["replay"]["differs"] is False

    # A decision logged before the field existed: its stored input has no such key. It reads
    # and replays as without the separate consent, never as an error.
    old_id = uuid.uuid4()
    async with db.system() as conn:
        await conn.execute(
            "insert into decision_log (id, tenant_id, decided_at, subject_id, id_type,"
            " lookup_hmac, requester, api_key_id, request_id, kind, batch_id, action, allow,"
            " reasons, purposes, policy_revision, input)"
            " select $2, tenant_id, decided_at, subject_id, id_type, lookup_hmac, requester,"
            " api_key_id, request_id, kind, batch_id, action, allow, reasons, purposes,"
            " policy_revision, jsonb_set(input, '{subject}',"
            " (input -> 'subject') - 'parental_consent_third_parties')"
            " from decision_log where id = $1",
            uuid.UUID(denied["decision_id"]),
            old_id,
        )
        legacy = await conn.fetchval("select input from decision_log where id = $1", old_id)
    assert "parental_consent_third_parties" not in str(legacy)
    response = await ledger.client.get(f"/v1/decisions/{old_id}?replay=true", headers=ledger.h)
    assert response.status_code == 200, response.text
    stored = response.json()
    assert stored["input"]["subject"]["parental_consent_third_parties"] is False
    assert stored["input"]["subject"]["parental_consent"] is True
    assert (stored["replay"]["allow"], stored["replay"]["reasons"]) == (False, ["denied.child"])
    assert stored["replay"]["differs"] is False


async def test_the_field_must_be_a_boolean(ledger: Ledger) -> None:
    got = await ledger.decide(
        CHILD, "data.sell.partner", status=400, parental_consent_third_parties="yes"
    )
    assert got["status"] == 400
