"""The decision API: batches, audience streams, the log behind every answer, reading back."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from consent.db.database import Database
from consent.decisions.audience import AUDIENCE_ID_HEADER, MAX_LINE_BYTES
from consent.decisions.schemas import DecisionOut, DecisionRequest
from consent.decisions.service import Caller
from consent.errors import ProblemError
from tests.conftest import Tenant
from tests.integration.decisions.conftest import Ledger, in_app

ROOT = Path(__file__).resolve().parents[3]

pytestmark = [pytest.mark.integration, pytest.mark.policy]


@pytest.fixture
def engine_kind() -> str:
    return "in-process"  # both engines: test_rules.py and test_batch_equals_single.py


def _ask(email: str, action: str = "email.marketing", **context: Any) -> dict[str, Any]:
    return {
        "subject": {"identifier": {"type": "email", "value": email}},
        "action": action,
        "context": {"requester": "esp", **context},
    }


async def test_batch_answers_in_order_and_logs_each_decision(ledger: Ledger, db: Database) -> None:
    await ledger.consent("a@example.com", {"email_marketing": "granted"})
    await ledger.consent("b@example.com", {"email_marketing": "withdrawn"})
    body = await ledger.post(
        "/v1/decisions/batch",
        {"decisions": [_ask("a@example.com"), _ask("b@example.com"), _ask("nobody@example.com")]},
        status=200,
    )
    got = [(d["allow"], d["reasons"]) for d in body["decisions"]]
    assert got == [
        (True, ["allowed.consent"]),
        (False, ["denied.withdrawn"]),
        (False, ["denied.no_consent", "denied.unknown_subject"]),
    ]
    async with db.system() as conn:
        rows = await conn.fetch(
            "select id, kind, batch_id, requester, subject_id, id_type, lookup_hmac"
            " from decision_log order by id"
        )
    assert [str(r["id"]) for r in rows] == sorted(d["decision_id"] for d in body["decisions"])
    assert {(r["kind"], str(r["batch_id"]), r["requester"]) for r in rows} == {
        ("batch", body["batch_id"], "esp")
    }
    unknown = [r for r in rows if r["subject_id"] is None]
    assert len(unknown) == 1
    assert unknown[0]["id_type"] == "email"
    # Pseudonymous: the keyed HMAC the ledger would look the address up by, never the address.
    digest = ledger.client.app.state.keyring.lookup_digest(
        ledger.tenant.id, "email", "nobody@example.com"
    )
    assert bytes(unknown[0]["lookup_hmac"]) == digest


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"decisions": []}, "decisions"),
        ({"decisions": [_ask("x@example.com", action="Email Marketing")]}, "decisions[0].action"),
        (
            {"decisions": [_ask("ok@example.com"), _ask("not-an-email")]},
            "decisions[1].subject.identifier.value",
        ),
        (
            {
                "decisions": [
                    {
                        "subject": {"identifier": {"type": "galaxy_id", "value": "M31"}},
                        "action": "email.marketing",
                        "context": {"requester": "esp"},
                    }
                ]
            },
            "decisions[0].subject.identifier.type",
        ),
        (
            {"decisions": [{**_ask("x@example.com"), "context": {}}]},
            "decisions[0].context",
        ),
        ({"decisions": [{**_ask("x@example.com"), "extra": 1}]}, "decisions[0]"),
    ],
)
async def test_a_bad_batch_is_refused_whole(
    ledger: Ledger, db: Database, body: dict[str, Any], field: str
) -> None:
    response = await ledger.client.post("/v1/decisions/batch", json=body, headers=ledger.h)
    assert response.status_code == 400, response.text
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert any(e["field"].startswith(field) for e in problem["errors"]), problem
    assert "not-an-email" not in response.text
    async with db.system() as conn:
        assert await conn.fetchval("select count(*) from decision_log") == 0


async def test_batch_of_ten_thousand(ledger: Ledger, db: Database) -> None:
    await ledger.consent("bulk@example.com", {"email_marketing": "granted"})
    asks = [_ask("bulk@example.com" if i % 2 else f"u{i}@example.com") for i in range(10_000)]
    body = await ledger.post("/v1/decisions/batch", {"decisions": asks}, status=200)
    assert sum(d["allow"] for d in body["decisions"]) == 5_000
    async with db.system() as conn:
        assert await conn.fetchval("select count(*) from decision_log") == 10_000
    too_many = await ledger.client.post(
        "/v1/decisions/batch", json={"decisions": [*asks, asks[0]]}, headers=ledger.h
    )
    assert too_many.status_code == 400


async def test_decide_by_subject_id_follows_a_link(ledger: Ledger) -> None:
    survivor = await ledger.consent("ann@example.com", {"email_marketing": "granted"})
    device = await ledger.post(
        "/v1/consents",
        {
            "identifier": {"type": "device", "value": "cookie-1"},
            "choices": [{"purpose": "analytics", "choice": "granted"}],
            "surface": "banner",
            "channel": "web",
            "notice_version_id": ledger.version_ids[1],
        },
    )
    await ledger.post(
        "/v1/subjects/link",
        {
            "subjects": [
                {"identifier": {"type": "email", "value": "ann@example.com"}},
                {"identifier": {"type": "device", "value": "cookie-1"}},
            ]
        },
        status=200,
    )
    for subject in (
        {"subject_id": device["subject_id"]},
        {"identifier": {"type": "device", "value": "cookie-1"}},
    ):
        got = await ledger.post(
            "/v1/decisions",
            {"subject": subject, "action": "email.marketing", "context": {"requester": "esp"}},
            status=200,
        )
        assert (got["allow"], got["subject_id"]) == (True, survivor)
    missing = await ledger.post(
        "/v1/decisions",
        {
            "subject": {"subject_id": str(uuid.uuid4())},
            "action": "email.marketing",
            "context": {"requester": "esp"},
        },
        status=200,
    )
    assert missing["reasons"] == ["denied.no_consent", "denied.unknown_subject"]
    assert missing["subject_id"] is None


async def test_a_decision_about_an_unknown_subject_id_names_no_subject(
    ledger: Ledger, db: Database
) -> None:
    """A subject id the ledger does not know (never was, or erased) is logged as no subject,
    like an unknown identifier and like an audience member: no `decision.made` leaf, and no
    audit token made up for an id anyone can send."""
    async with db.system() as conn:
        tokens = await conn.fetchval("select count(*) from audit_subject_token")
        leaves = await conn.fetchval("select count(*) from audit_event")
    for subject in ({"subject_id": str(uuid.uuid4())}, {"subject_id": str(uuid.uuid4())}):
        body = {"subject": subject, "action": "email.marketing", "context": {"requester": "esp"}}
        got = await ledger.post("/v1/decisions", body, status=200)
        assert got["subject_id"] is None
        batch = await ledger.post("/v1/decisions/batch", {"decisions": [body]}, status=200)
        assert batch["decisions"][0]["subject_id"] is None
    async with db.system() as conn:
        logged = await conn.fetch("select subject_id, id_type, lookup_hmac from decision_log")
        assert len(logged) == 4
        assert {tuple(row) for row in logged} == {(None, None, None)}
        assert await conn.fetchval("select count(*) from audit_subject_token") == tokens
        assert await conn.fetchval("select count(*) from audit_event") == leaves


def _request(email: str) -> DecisionRequest:
    return msgspec.convert(_ask(email), DecisionRequest)


async def test_concurrent_decisions_share_commits(ledger: Ledger, db: Database) -> None:
    await ledger.consent("many@example.com", {"email_marketing": "granted"})
    caller = Caller(uuid.UUID(ledger.tenant.id), "test", None)
    service = ledger.client.app.state.decisions

    async def forty() -> tuple[list[DecisionOut], int]:  # in the app's event loop
        before = service.log.batches
        outs = await asyncio.gather(
            *(service.decide(caller, _request("many@example.com")) for _ in range(40))
        )
        return outs, service.log.batches - before

    results, commits = in_app(ledger.client, forty)
    assert all(r.allow for r in results)
    async with db.system() as conn:
        assert await conn.fetchval("select count(*) from decision_log") == 40
    assert commits < 40  # group commit: fewer transactions than decisions


async def test_no_answer_before_the_log_commits(ledger: Ledger, db: Database) -> None:
    """While the log cannot be written (a lock held elsewhere), no decision is answered; when
    writing fails for good, the answer is a 503, never an allow."""
    await ledger.consent("wait@example.com", {"email_marketing": "granted"})
    caller = Caller(uuid.UUID(ledger.tenant.id), "test", None)
    app = ledger.client.app

    async def blocked() -> tuple[bool, DecisionOut]:  # in the app's event loop
        async with app.state.db.pool.acquire() as conn, conn.transaction():
            await conn.execute("lock table decision_log in access exclusive mode")
            task = asyncio.ensure_future(
                app.state.decisions.decide(caller, _request("wait@example.com"))
            )
            await asyncio.sleep(1.0)
            answered_early = task.done()
        return answered_early, await task

    answered_early, got = in_app(ledger.client, blocked)
    assert not answered_early
    assert got.allow is True
    async with db.system() as conn:
        logged = await conn.fetchval(
            "select count(*) from decision_log where id = $1", got.decision_id
        )
    assert logged == 1

    app.state.decisions.log.timeout = 0.5
    async with db.pool.acquire() as conn, conn.transaction():
        await conn.execute("lock table decision_log in access exclusive mode")
        response = await ledger.client.post(
            "/v1/decisions", json=_ask("wait@example.com"), headers=ledger.h
        )
        assert response.status_code == 503, response.text
        assert response.json()["type"] == "/problems/service-unavailable"
        assert "allow" not in response.json()


async def test_get_and_replay_are_tenant_scoped(
    ledger: Ledger, dclient: Any, other_tenant: Tenant
) -> None:
    await ledger.consent("own@example.com", {"email_marketing": "granted"})
    got = await ledger.decide("own@example.com", "email.marketing", jurisdiction="DE", age=33)
    mine = await dclient.get(f"/v1/decisions/{got['decision_id']}?replay=true", headers=ledger.h)
    assert mine.status_code == 200
    body = mine.json()
    assert body["input"]["subject"]["age"] == 33
    assert body["input"]["consents"]["email_marketing"]["status"] == "granted"
    assert body["replay"]["differs"] is False
    assert body["replay"]["policy_revision"] == got["policy_revision"]
    theirs = await dclient.get(f"/v1/decisions/{got['decision_id']}", headers=other_tenant.headers)
    assert theirs.status_code == 404
    bad = await dclient.get(f"/v1/decisions/{got['decision_id']}?replay=maybe", headers=ledger.h)
    assert bad.status_code == 400


async def test_decide_scope_is_needed(ledger: Ledger, dclient: Any) -> None:
    key = await ledger.post("/v1/api-keys", {"name": "reader", "scopes": ["read"]})
    reader = {"Authorization": f"Bearer {key['secret']}"}
    response = await dclient.post("/v1/decisions", json=_ask("x@example.com"), headers=reader)
    assert response.status_code == 403
    policy = await dclient.get("/v1/policy", headers=reader)
    assert policy.status_code == 200
    assert policy.json()["engine"] == "in-process"


async def test_every_reason_a_decision_gives_can_be_read_in_the_callers_language(
    ledger: Ledger, dclient: Any
) -> None:
    denied = await ledger.decide("nobody@example.com", "email.marketing")
    assert denied["reasons"] == ["denied.no_consent", "denied.unknown_subject"]
    key = await ledger.post("/v1/api-keys", {"name": "reader", "scopes": ["read"]})
    reader = {"Authorization": f"Bearer {key['secret']}"}

    async def catalogue(query: str = "", **headers: str) -> dict[str, Any]:
        response = await dclient.get("/v1/policy/reasons" + query, headers={**reader, **headers})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    english = await catalogue()
    assert english["language"] == "en"
    assert english["revision"] == denied["policy_revision"]
    words = {r["code"]: r for r in english["reasons"]}
    assert set(denied["reasons"]) <= set(words)
    assert words["denied.no_consent"] == {
        "code": "denied.no_consent",
        "allow": False,
        "text": "The customer has not consented to a purpose this needs.",
    }
    assert words["allowed.consent"]["allow"] is True
    german = await catalogue(**{"Accept-Language": "fr-CH, de;q=0.8"})
    assert german["language"] == "de"
    assert [r["code"] for r in german["reasons"]] == [r["code"] for r in english["reasons"]]
    assert {r["code"]: r["text"] for r in german["reasons"]}["denied.withdrawn"] == (
        "Die Person hat ihre Einwilligung widerrufen."
    )
    assert (await catalogue("?lang=en", **{"Accept-Language": "de"}))["language"] == "en"
    assert (await catalogue("?lang=tlh"))["language"] == "en"
    too_long = await dclient.get("/v1/policy/reasons?lang=" + "x" * 36, headers=reader)
    assert too_long.status_code == 400
    assert too_long.headers["content-type"].startswith("application/problem+json")
    unauthenticated = await dclient.get("/v1/policy/reasons")
    assert unauthenticated.status_code == 401


async def test_a_batch_names_every_bad_reference_in_one_answer(ledger: Ledger) -> None:
    """The checks made once the body is read are reported all at once (README): an identifier
    that does not normalise and one of a type the tenant never defined, in one 400, in order."""

    def ask(id_type: str, value: str) -> dict[str, Any]:
        return {
            "subject": {"identifier": {"type": id_type, "value": value}},
            "action": "email.marketing",
            "context": {"requester": "esp"},
        }

    batch = [
        ask("email", "ann@example.com"),
        ask("crm_id", "C-1"),
        ask("email", "not-an-address"),
        ask("email", "ann@example.com"),
    ]
    response = await ledger.client.post(
        "/v1/decisions/batch", json={"decisions": batch}, headers=ledger.h
    )
    assert response.status_code == 400, response.text
    assert [(e["field"], e["message"]) for e in response.json()["errors"]] == [
        ("decisions[1].subject.identifier.type", "unknown identifier type 'crm_id'"),
        ("decisions[2].subject.identifier.value", "not an e-mail address"),
    ]


async def test_the_reasons_name_their_language_and_vary_by_accept_language(
    ledger: Ledger, dclient: Any
) -> None:
    """The catalogue's texts depend on Accept-Language: the answer says so (`Vary`), or a
    shared cache would give a German reader's texts to the next English one, and names the
    language it chose (`Content-Language`), as a problem does."""
    for query, headers, language in [
        ("", {}, "en"),
        ("", {"Accept-Language": "de-AT"}, "de"),
        ("?lang=de", {}, "de"),
        ("?lang=en", {"Accept-Language": "de"}, "en"),
    ]:
        response = await dclient.get("/v1/policy/reasons" + query, headers={**ledger.h, **headers})
        assert response.status_code == 200, response.text
        assert response.json()["language"] == language
        assert response.headers["content-language"] == language
        assert "accept-language" in response.headers["vary"].lower()


async def test_a_new_tenant_sees_which_purposes_each_action_needs_and_lacks(
    dclient: Any, tenant: Tenant
) -> None:
    """GET /v1/policy/actions: the policy's actions with the purposes each needs, against the
    caller's catalogue: what a tenant must create before a decision can allow."""
    fresh = Ledger(dclient, tenant)
    await fresh.post(
        "/v1/purposes", {"key": "analytics", "name": "Analytics", "legal_basis": "consent"}
    )
    key = await fresh.post("/v1/api-keys", {"name": "reader", "scopes": ["read"]})
    reader = {"Authorization": f"Bearer {key['secret']}"}

    async def actions() -> dict[str, dict[str, Any]]:
        response = await dclient.get("/v1/policy/actions", headers=reader)
        assert response.status_code == 200, response.text
        return {a["action"]: a for a in response.json()["actions"]}

    shipped = json.loads((ROOT / "policies/data/actions.json").read_text())["value"]
    listed = await actions()
    assert list(listed) == sorted(shipped)
    assert listed["web.analytics"]["missing_purposes"] == []
    assert listed["email.marketing"] == {
        "action": "email.marketing",
        "purposes": ["email_marketing"],
        "missing_purposes": ["email_marketing"],
        "sale_or_share": False,
        "targeted_advertising": False,
        "sensitive": False,
        "personalization": False,
        "direct_marketing": True,
    }
    assert listed["ads.retarget"]["sale_or_share"] is True
    assert listed["ads.retarget"]["missing_purposes"] == ["advertising", "data_sharing"]
    missing = await fresh.decide("ann@example.com", "email.marketing")
    assert "denied.unknown_purpose" in missing["reasons"]

    await fresh.post(
        "/v1/purposes", {"key": "email_marketing", "name": "Offers", "legal_basis": "consent"}
    )
    assert (await actions())["email.marketing"]["missing_purposes"] == []
    assert (await dclient.get("/v1/policy/actions")).status_code == 401


# -- audience filter -----------------------------------------------------------------------------


async def test_audience_echoes_allowed_lines_and_counts_the_rest(
    ledger: Ledger, db: Database
) -> None:
    await ledger.consent("yes@example.com", {"email_marketing": "granted"})
    await ledger.consent("no@example.com", {"email_marketing": "withdrawn"})
    yes_id = await ledger.consent("yes2@example.com", {"email_marketing": "granted"})
    header = {"action": "email.marketing", "context": {"requester": "esp", "jurisdiction": "DE"}}
    lines = [
        json.dumps(header).encode(),
        b'{"type": "email", "value": "YES@example.com", "note_free": 1}',  # invalid: unknown field
        b'{"type":"email","value":"YES@example.com"}',
        b"",
        b'{"type": "email", "value": "no@example.com"}',
        b'{"subject_id": "' + yes_id.encode() + b'"}',
        b'{"type": "email", "value": "stranger@example.com"}',
        b"not json",
        b'{"type": "email", "value": "no-at-sign"}',
        b'{"subject_id": "' + yes_id.encode() + b'", "type": "email", "value": "a@b.example"}',
    ]
    response = await ledger.client.post(
        "/v1/audiences/filter",
        content=b"\r\n".join(lines),
        headers={**ledger.h, "content-type": "application/x-ndjson"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    out = response.content.split(b"\n")
    assert out[:2] == [lines[2], lines[5]]  # verbatim, in order
    summary = json.loads(out[2])["summary"]
    assert out[3:] == [b""]
    assert summary["total"] == 4
    assert summary["allowed"] == 2
    assert summary["denied"] == 2
    assert summary["denied_by_reason"] == {
        "denied.no_consent": 1,
        "denied.unknown_subject": 1,
        "denied.withdrawn": 1,
    }
    assert (summary["invalid"], summary["invalid_lines"]) == (4, [2, 8, 9, 10])
    async with db.system() as conn:
        members = await conn.fetchval(
            "select sum(members) from audience_member where run_id = $1",
            uuid.UUID(summary["audience_id"]),
        )
        shapes = await conn.fetch(
            "select allow, reasons from audience_shape where run_id = $1 order by shape",
            uuid.UUID(summary["audience_id"]),
        )
    assert members == 4
    assert len(shapes) == summary["distinct_inputs"] == 3


async def test_audience_member_overrides_and_chunks(ledger: Ledger, db: Database) -> None:
    await ledger.consent("kid@example.com", {"personalization": "granted"})
    audiences = ledger.client.app.state.audiences
    audiences.chunk_size = 7  # many chunks, several in flight
    header = {
        "action": "personalize.recommendations",
        "context": {"requester": "reco", "jurisdiction": "DE", "age": 30},
        "output": "all",
    }
    members = [
        {"type": "email", "value": "kid@example.com", **({"age": 12} if i % 3 == 0 else {})}
        for i in range(50)
    ]
    lines = await ledger.audience(header, members)
    *results, summary = lines
    assert [r["line"] for r in results] == list(range(2, 52))
    assert [r["allow"] for r in results] == [i % 3 != 0 for i in range(50)]
    assert {tuple(r["reasons"]) for r in results if not r["allow"]} == {("denied.child",)}
    assert summary["summary"]["distinct_inputs"] == 2
    async with db.system() as conn:
        chunks = await conn.fetchval(
            "select count(distinct chunk) from audience_member where run_id = $1",
            uuid.UUID(summary["summary"]["audience_id"]),
        )
        shape_rows = await conn.fetchval(
            "select count(*) from audience_shape where run_id = $1",
            uuid.UUID(summary["summary"]["audience_id"]),
        )
    assert chunks == 8
    assert shape_rows == 2


async def test_an_answer_larger_than_memory_comes_back_whole_and_in_order(
    ledger: Ledger,
) -> None:
    """Beyond its memory the answer goes to a temporary file, sealed piece by piece
    (`SealedSpool`, whose own tests show the disk holds no identifier in the clear)."""
    await ledger.consent("yes@example.com", {"email_marketing": "granted"})
    audiences = ledger.client.app.state.audiences
    audiences.chunk_size = 4
    audiences.spool_memory = 100  # a chunk's lines alone are more: the spool is on disk
    header = {"action": "email.marketing", "context": {"requester": "esp"}}
    members = [
        {"type": "email", "value": "yes@example.com" if i % 2 else "no@example.com"}
        for i in range(40)
    ]
    lines = await ledger.audience({**header, "output": "all"}, members)
    *results, summary = lines
    assert [r["line"] for r in results] == list(range(2, 42))
    assert [r["allow"] for r in results] == [i % 2 == 1 for i in range(40)]
    assert summary["summary"]["allowed"] == 20


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"", "header"),
        (b"{not json}\n", "header"),
        (b'{"action": "email.marketing"}\n', "header.context"),
        (
            b'{"action": "email.marketing", "context": {"requester": "x"}, "output": "some"}\n',
            "header.output",
        ),
    ],
)
async def test_audience_with_a_bad_header_is_a_problem(
    ledger: Ledger, body: bytes, field: str
) -> None:
    response = await ledger.client.post(
        "/v1/audiences/filter",
        content=body,
        headers={**ledger.h, "content-type": "application/x-ndjson"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["field"] == field


async def test_empty_audience_has_only_a_summary(ledger: Ledger) -> None:
    lines = await ledger.audience({"action": "email.marketing", "context": {"requester": "x"}}, [])
    assert len(lines) == 1
    assert lines[0]["summary"]["total"] == 0


async def test_a_failure_after_the_first_chunks_answers_nothing(ledger: Ledger) -> None:
    """All or nothing: a line too long near the end of a stream is a 400 problem, not a
    partial answer."""
    await ledger.consent("yes@example.com", {"email_marketing": "granted"})
    audiences = ledger.client.app.state.audiences
    audiences.chunk_size = 1
    audiences.in_flight = 1
    body = b"\n".join(
        [
            json.dumps({"action": "email.marketing", "context": {"requester": "x"}}).encode(),
            b'{"type": "email", "value": "yes@example.com"}',
            b'{"type": "email", "value": "yes@example.com"}',
            b'{"type": "email", "value": "' + b"x" * 20_000 + b'"}',
        ]
    )
    response = await ledger.client.post(
        "/v1/audiences/filter",
        content=body,
        headers={**ledger.h, "content-type": "application/x-ndjson"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["field"] == "line 4"
    assert "yes@example.com" not in response.text


async def test_the_line_limit_is_named_in_the_problem_and_the_document(ledger: Ledger) -> None:
    """A client whose line is refused learns the limit from the answer, in its language, and
    could have known it from the OpenAPI document beforehand."""
    header = json.dumps({"action": "email.marketing", "context": {"requester": "x"}}).encode()
    body = header + b'\n{"type": "email", "value": "' + b"x" * MAX_LINE_BYTES + b'"}\n'
    for language, words in [("en", "longer than 16384 bytes"), ("de", "länger als 16384 Bytes")]:
        response = await ledger.client.post(
            "/v1/audiences/filter",
            content=body,
            headers={
                **ledger.h,
                "content-type": "application/x-ndjson",
                "accept-language": language,
            },
        )
        assert response.status_code == 400, response.text
        problem = response.json()
        assert problem["errors"][0]["field"] == "line 2"
        assert words in problem["errors"][0]["message"], problem
    document = (await ledger.client.get("/schema/openapi.json")).json()
    body_doc = document["paths"]["/v1/audiences/filter"]["post"]["requestBody"]["description"]
    assert "16,384 bytes" in body_doc


async def test_a_failed_run_names_the_run_its_logged_members_are_under(
    ledger: Ledger, db: Database
) -> None:
    """A run that fails after some chunks were decided answers nothing, but those members'
    decisions stay logged (their data was used): the problem names the run (`Audience-Id`), so
    the caller can find that use; a run that failed before logging anything names none."""
    await ledger.consent("yes@example.com", {"email_marketing": "granted"})
    audiences = ledger.client.app.state.audiences
    audiences.chunk_size = 1
    audiences.in_flight = 1
    caller = Caller(uuid.UUID(ledger.tenant.id), "test", None)
    header = json.dumps({"action": "email.marketing", "context": {"requester": "x"}}).encode()
    member = b'{"type": "email", "value": "yes@example.com"}'
    too_long = b'{"type": "email", "value": "' + b"x" * 20_000 + b'"}'

    def failing(lines: list[bytes]) -> Callable[[], Awaitable[ProblemError]]:
        async def body() -> AsyncIterator[bytes]:  # as a long upload arrives: line by line
            for line in lines:
                yield line + b"\n"

        async def run() -> ProblemError:
            with pytest.raises(ProblemError) as failed:
                await audiences.run(caller, body())
            return failed.value

        return run

    late = in_app(ledger.client, failing([header, member, member, too_long]))
    assert late.status == 400
    run_id = uuid.UUID(late.headers[AUDIENCE_ID_HEADER])
    async with db.system() as conn:
        logged = await conn.fetchval(
            "select coalesce(sum(members), 0) from audience_member where run_id = $1", run_id
        )
    assert logged == 2
    early = in_app(ledger.client, failing([header, too_long]))
    assert AUDIENCE_ID_HEADER not in early.headers


async def test_an_erased_subject_is_unknown_to_every_decision_path(ledger: Ledger) -> None:
    subject_id = await ledger.consent("erased@example.com", {"email_marketing": "granted"})
    asks = [
        {"subject_id": subject_id},
        {"identifier": {"type": "email", "value": "erased@example.com"}},
    ]
    for subject in asks:  # allowed before, and any per-process cache has seen it
        got = await ledger.post(
            "/v1/decisions",
            {"subject": subject, "action": "email.marketing", "context": {"requester": "esp"}},
            status=200,
        )
        assert got["allow"] is True
    erased = await ledger.client.delete(f"/v1/subjects/{subject_id}", headers=ledger.h)
    assert erased.status_code == 200, erased.text

    unknown = (False, ["denied.no_consent", "denied.unknown_subject"], None)
    for subject in asks:
        got = await ledger.post(
            "/v1/decisions",
            {"subject": subject, "action": "email.marketing", "context": {"requester": "esp"}},
            status=200,
        )
        assert (got["allow"], got["reasons"], got["subject_id"]) == unknown
    batch = await ledger.post(
        "/v1/decisions/batch",
        {
            "decisions": [
                {"subject": s, "action": "email.marketing", "context": {"requester": "esp"}}
                for s in asks
            ]
        },
        status=200,
    )
    assert [(d["allow"], d["reasons"], d["subject_id"]) for d in batch["decisions"]] == [
        unknown,
        unknown,
    ]
    lines = await ledger.audience(
        {"action": "email.marketing", "context": {"requester": "esp"}},
        [{"subject_id": subject_id}, {"type": "email", "value": "erased@example.com"}],
    )
    assert lines[-1]["summary"]["allowed"] == 0
    assert lines[-1]["summary"]["denied_by_reason"] == {
        "denied.no_consent": 2,
        "denied.unknown_subject": 2,
    }
