"""Single decisions made at the same moment read the ledger together (`GroupReader`): one
statement per tenant for all of them. Each must still get exactly the answer, and log exactly
the input, that it gets when asked alone, and a tenant must never see another's subjects."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import msgspec
import pytest

from consent.db.database import Database
from consent.decisions.engine import DecisionInput
from consent.decisions.schemas import DecisionOut, DecisionRequest
from consent.decisions.service import Caller, DecisionService
from tests.conftest import Tenant
from tests.integration.decisions.conftest import Ledger, in_app

pytestmark = [pytest.mark.integration, pytest.mark.policy]

ACTIONS = [
    "email.marketing",
    "ads.targeted",
    "web.analytics",
    "personalize.recommendations",
    "teleport.customer",  # unknown: needs no purpose, read with others that do
]
CONTEXTS: list[dict[str, Any]] = [
    {"jurisdiction": "DE"},
    {"jurisdiction": "US-CA", "gpc": True, "age": 30},
    {"jurisdiction": "FR", "age": 15},
]
# Both tenants know the same e-mail addresses, with opposite choices.
CHOICES = {
    "ann@example.com": {"email_marketing": "granted", "advertising": "denied"},
    "bob@example.com": {"email_marketing": "withdrawn", "advertising": "granted"},
    "cy@example.com": {"personalization": "granted", "analytics": "denied"},
}
FLIPPED = {"granted": "denied", "denied": "granted", "withdrawn": "granted"}


@pytest.fixture
async def both(ledger: Ledger, other_tenant: Tenant) -> tuple[Ledger, Ledger]:
    other = Ledger(ledger.client, other_tenant)
    await other.setup()
    for email, choices in CHOICES.items():
        await ledger.consent(email, choices)
        await other.consent(email, {p: FLIPPED[c] for p, c in choices.items()})
    return ledger, other


def _asks(tenants: tuple[Ledger, Ledger]) -> list[tuple[Ledger, DecisionRequest]]:
    asks = []
    for n in range(48):
        email = [*CHOICES, "nobody@example.com"][n % 4]
        body = {
            "subject": {"identifier": {"type": "email", "value": email}},
            "action": ACTIONS[n % len(ACTIONS)],
            "context": {"requester": "crm", **CONTEXTS[n % len(CONTEXTS)]},
        }
        asks.append((tenants[n // 4 % 2], msgspec.convert(body, DecisionRequest)))
    return asks


async def _logged_input(db: Database, decision_id: uuid.UUID) -> dict[str, Any]:
    async with db.system() as conn:
        logged = await conn.fetchval("select input from decision_log where id = $1", decision_id)
    value = msgspec.to_builtins(msgspec.convert(logged, DecisionInput))
    value.pop("now_ns")
    return dict(value)


async def test_decisions_asked_together_read_together_and_equal_decisions_asked_alone(
    both: tuple[Ledger, Ledger], db: Database
) -> None:
    client = both[0].client
    service: DecisionService = client.app.state.decisions
    asks = _asks(both)

    def caller(ledger: Ledger) -> Caller:
        return Caller(uuid.UUID(ledger.tenant.id), "test", None)

    async def alone() -> list[DecisionOut]:
        return [await service.decide(caller(ledger), request) for ledger, request in asks]

    async def together() -> tuple[list[DecisionOut], int, int]:
        reads, requests = service.reader.reads, service.reader.requests
        outs = await asyncio.gather(
            *(service.decide(caller(ledger), request) for ledger, request in asks)
        )
        return outs, service.reader.reads - reads, service.reader.requests - requests

    singles = in_app(client, alone)
    grouped, reads, requests = in_app(client, together)

    assert requests == len(asks)
    assert reads <= 4, "48 decisions asked at once should share a few reads, one per tenant"
    for (ledger, request), one, many in zip(asks, singles, grouped, strict=True):
        assert (many.allow, many.reasons, many.purposes, many.subject_id) == (
            one.allow,
            one.reasons,
            one.purposes,
            one.subject_id,
        ), (ledger.tenant.id, request)
        assert await _logged_input(db, many.decision_id) == await _logged_input(db, one.decision_id)
    # The tenants' answers differ for the same address: neither read the other's subjects.
    ann = [
        (ledger.tenant.id, out.allow)
        for (ledger, request), out in zip(asks, grouped, strict=True)
        if request.action == "email.marketing"
        and request.subject.identifier is not None
        and request.subject.identifier.value == "ann@example.com"
    ]
    assert {allow for _, allow in ann} == {True, False}
    assert len({tenant for tenant, _ in ann}) == 2


async def test_a_failed_group_read_answers_every_waiting_decision_with_503(
    ledger: Ledger,
) -> None:
    """The shared read fails (its backend is terminated while the read waits on a lock): every
    decision waiting for it is a 503 problem, none an answer, and the next decision reads
    again on a new connection."""
    await ledger.consent("ann@example.com", {"email_marketing": "granted"})
    client = ledger.client
    service: DecisionService = client.app.state.decisions
    caller = Caller(uuid.UUID(ledger.tenant.id), "test", None)
    request = msgspec.convert(
        {
            "subject": {"identifier": {"type": "email", "value": "ann@example.com"}},
            "action": "email.marketing",
            "context": {"requester": "crm"},
        },
        DecisionRequest,
    )
    assert (await ledger.decide("ann@example.com", "email.marketing"))["allow"] is True

    async def fail_the_read_under_way() -> list[object]:
        app_db: Database = client.app.state.db  # the app's loop, not the test's
        async with app_db.pool.acquire() as locker, locker.transaction():
            await locker.execute("lock table consent_state in access exclusive mode")
            asked = [asyncio.ensure_future(service.decide(caller, request)) for _ in range(8)]
            for _ in range(500):
                killed = await locker.fetchval(
                    "select count(pg_terminate_backend(pid)) from pg_stat_activity"
                    " where datname = current_database() and wait_event_type = 'Lock'"
                    " and query like '%decision_subject_states%'"
                )
                if killed:
                    break
                await asyncio.sleep(0.01)
            assert killed == 1
        return list(await asyncio.gather(*asked, return_exceptions=True))

    results = in_app(client, fail_the_read_under_way)
    assert [type(r).__name__ for r in results] == ["LedgerUnavailable"] * len(results)
    assert (await ledger.decide("ann@example.com", "email.marketing"))["allow"] is True
