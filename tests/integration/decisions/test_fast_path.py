"""`POST /v1/decisions` in front of Litestar (consent.decisions.fastpath): the same answers,
errors, headers and log records as the Litestar route it shortcuts, and Litestar still answers
whatever the fast path does not take."""

from __future__ import annotations

import json
from typing import Any

import pytest

from consent.db.database import Database
from consent.decisions.fastpath import DecisionFastPath
from consent.tenancy.auth import key_cache
from consent.tenancy.keys import parse_api_key
from tests.conftest import Tenant
from tests.integration.decisions.conftest import Ledger

pytestmark = [pytest.mark.integration, pytest.mark.policy]

_VARYING = {"decision_id", "decided_at"}


@pytest.fixture
def engine_kind() -> str:
    return "in-process"  # the fast path calls the same service for both engines


def _fast(ledger: Ledger) -> DecisionFastPath:
    fast: DecisionFastPath = ledger.client.app.state.decision_fast_path
    return fast


def _forget_key(tenant: Tenant) -> None:
    parsed = parse_api_key(tenant.key)
    assert parsed is not None
    key_cache.forget(parsed[0])


def _ask(email: str, action: str = "email.marketing", **context: Any) -> dict[str, Any]:
    return {
        "subject": {"identifier": {"type": "email", "value": email}},
        "action": action,
        "context": {"requester": "esp", **context},
    }


async def _post(ledger: Ledger, body: Any, **headers: str) -> Any:
    return await ledger.client.post("/v1/decisions", json=body, headers={**ledger.h, **headers})


async def test_fast_and_litestar_answers_are_the_same(ledger: Ledger, db: Database) -> None:
    await ledger.consent("a@example.com", {"email_marketing": "granted"})
    fast = _fast(ledger)
    cases = [
        _ask("a@example.com"),
        _ask("nobody@example.com"),
        _ask("a@example.com", "ads.retarget", gpc=True, jurisdiction="US-CA"),
    ]
    for body in cases:
        _forget_key(ledger.tenant)  # an unverified key: Litestar answers (and caches the key)
        before = (fast.answered, fast.delegated)
        slow = await _post(ledger, body, **{"X-Request-ID": "slow-request-1"})
        assert (fast.answered, fast.delegated) == (before[0], before[1] + 1)
        quick = await _post(ledger, body, **{"X-Request-ID": "fast-request-1"})
        assert (fast.answered, fast.delegated) == (before[0] + 1, before[1] + 1)

        assert slow.status_code == quick.status_code == 200
        assert slow.headers["content-type"] == quick.headers["content-type"]
        assert set(slow.headers) == set(quick.headers)
        assert (slow.headers["x-request-id"], quick.headers["x-request-id"]) == (
            "slow-request-1",
            "fast-request-1",
        )
        a, b = slow.json(), quick.json()
        assert list(a) == list(b)  # same fields, same order
        assert {k: v for k, v in a.items() if k not in _VARYING} == {
            k: v for k, v in b.items() if k not in _VARYING
        }
        assert a["decision_id"] != b["decision_id"]

    async with db.system() as conn:
        logged = await conn.fetch("select request_id, action, allow from decision_log")
    by_request: dict[str, list[tuple[str, bool]]] = {}
    for row in logged:
        by_request.setdefault(row["request_id"], []).append((row["action"], row["allow"]))
    assert by_request["slow-request-1"] == by_request["fast-request-1"]
    assert len(by_request["fast-request-1"]) == len(cases)


async def test_invalid_bodies_get_litestars_problems(ledger: Ledger) -> None:
    await _post(ledger, _ask("a@example.com"))  # the key is now verified and cached
    fast = _fast(ledger)
    delegated = fast.delegated
    unknown_field = await _post(ledger, {**_ask("a@example.com"), "extra": 1})
    assert unknown_field.status_code == 400
    problem = unknown_field.json()
    assert problem["type"] == "/problems/validation-error"
    assert problem["errors"] == [
        {"field": "extra", "message": "Object contains unknown field `extra`"}
    ]

    not_json = await ledger.client.post(
        "/v1/decisions",
        content=b"{not json",
        headers={**ledger.h, "content-type": "application/json"},
    )
    assert not_json.status_code == 400
    assert not_json.json()["type"] == "/problems/validation-error"

    too_big = await ledger.client.post(
        "/v1/decisions",
        content=b'{"x": "' + b"a" * (1_048_576 + 10) + b'"}',
        headers={**ledger.h, "content-type": "application/json"},
    )
    assert too_big.status_code == 413
    assert too_big.json()["type"] == "/problems/payload-too-large"
    assert fast.delegated == delegated + 3


async def test_keys_without_the_scope_are_refused_by_litestar(
    ledger: Ledger, tenant: Tenant
) -> None:
    created = await ledger.post("/v1/api-keys", {"name": "reader", "scopes": ["read"]})
    reader = {"Authorization": f"Bearer {created['secret']}"}
    await ledger.client.get("/v1/policy", headers=reader)  # verified and cached
    fast = _fast(ledger)
    answered = fast.answered
    response = await ledger.client.post("/v1/decisions", json=_ask("a@example.com"), headers=reader)
    assert response.status_code == 403
    assert response.json()["type"] == "/problems/forbidden"
    anonymous = await ledger.client.post("/v1/decisions", json=_ask("a@example.com"))
    assert anonymous.status_code == 401
    assert fast.answered == answered


async def test_errors_while_deciding_are_rendered_as_problems(ledger: Ledger) -> None:
    await _post(ledger, _ask("a@example.com"))
    fast = _fast(ledger)
    answered = fast.answered
    body = {
        "subject": {"identifier": {"type": "no_such_type", "value": "x"}},
        "action": "email.marketing",
        "context": {"requester": "esp"},
    }
    response = await _post(ledger, body, **{"X-Request-ID": "bad-type-request"})
    assert fast.answered == answered + 1  # the body is valid: the service refused it
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["x-request-id"] == "bad-type-request"
    problem = response.json()
    assert problem["type"] == "/problems/validation-error"
    assert problem["instance"] == "/v1/decisions"
    assert problem["request_id"] == "bad-type-request"
    assert problem["errors"][0]["field"].startswith("subject.identifier")


async def test_a_body_that_is_not_json_gets_the_routes_415_on_the_fast_path_too(
    ledger: Ledger,
) -> None:
    """Once the key is cached, a decision sent as text/plain was decided (200) by the fast path
    while the route answers 415: the content type must not change with the cache."""
    await ledger.consent("a@example.com", {"email_marketing": "granted"})
    assert (await _post(ledger, _ask("a@example.com"))).status_code == 200  # key now cached
    fast = _fast(ledger)
    answered = fast.answered
    response = await ledger.client.post(
        "/v1/decisions",
        content=json.dumps(_ask("a@example.com")),
        headers={**ledger.h, "content-type": "text/plain"},
    )
    assert response.status_code == 415, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert fast.answered == answered
    charset = {**ledger.h, "content-type": "application/json; charset=utf-8"}
    ok = await ledger.client.post(
        "/v1/decisions", content=json.dumps(_ask("a@example.com")), headers=charset
    )
    assert ok.status_code == 200, ok.text
    assert fast.answered == answered + 1
