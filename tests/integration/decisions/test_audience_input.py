"""Audience bodies a client gets wrong: a clear 400 problem or a counted invalid line, never a
500, and the same answer however the body happens to be split in transit."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from consent.db.database import Database
from consent.decisions.audience import MAX_LINE_BYTES
from consent.decisions.service import Caller
from consent.errors import ValidationFailed
from tests.integration.decisions.conftest import Ledger, in_app

pytestmark = [pytest.mark.integration, pytest.mark.policy]

HEADER = json.dumps(
    {"action": "email.marketing", "context": {"requester": "esp"}, "output": "all"}
).encode()
MEMBER = b'{"type": "email", "value": "yes@example.com"}'


@pytest.fixture
def engine_kind() -> str:
    return "in-process"


async def _post(ledger: Ledger, body: bytes | AsyncIterator[bytes]) -> Any:
    return await ledger.client.post(
        "/v1/audiences/filter",
        content=body,
        headers={**ledger.h, "content-type": "application/x-ndjson"},
    )


async def test_a_member_line_that_is_not_utf8_is_counted_invalid(ledger: Ledger) -> None:
    await ledger.consent("yes@example.com", {"email_marketing": "granted"})
    body = b"\n".join([HEADER, MEMBER, b'{"type": "email", "value": "\xff@example.com"}', MEMBER])
    response = await _post(ledger, body)
    assert response.status_code == 200, response.text
    *results, summary = [json.loads(line) for line in response.text.splitlines()]
    assert [r["line"] for r in results] == [2, 4]
    assert summary["summary"]["invalid_lines"] == [3]
    assert summary["summary"]["allowed"] == 2


async def test_a_header_that_is_not_utf8_is_a_problem(ledger: Ledger, db: Database) -> None:
    body = b'{"action": "email.marketing\xff", "context": {"requester": "esp"}}\n' + MEMBER
    response = await _post(ledger, body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["field"] == "header"
    async with db.system() as conn:
        assert await conn.fetchval("select count(*) from audience_run") == 0


async def test_a_body_saved_with_a_byte_order_mark_is_read(ledger: Ledger) -> None:
    """Editors on some systems start a UTF-8 file with a byte order mark; the header is still
    the header (before: 400 "the header line is not JSON")."""
    await ledger.consent("yes@example.com", {"email_marketing": "granted"})
    response = await _post(ledger, b"\xef\xbb\xbf" + HEADER + b"\n" + MEMBER + b"\n")
    assert response.status_code == 200, response.text
    *results, summary = [json.loads(line) for line in response.text.splitlines()]
    assert [(r["line"], r["allow"]) for r in results] == [(2, True)]
    assert summary["summary"]["total"] == 1


@pytest.mark.parametrize("cut", [None, 100, 3 * MAX_LINE_BYTES])
async def test_a_line_too_long_in_the_middle_fails_however_the_body_is_split(
    ledger: Ledger, cut: int | None
) -> None:
    """A complete long line used to pass (counted invalid) when it arrived whole in one part of
    the body, but failed when a part boundary fell inside it: one body, two answers. (The test
    client sends a body in one part: the splits are fed to the filter directly.)"""
    await ledger.consent("yes@example.com", {"email_marketing": "granted"})
    long_line = b'{"type": "email", "value": "' + b"x" * MAX_LINE_BYTES + b'@example.com"}'
    body = b"\n".join([HEADER, MEMBER, long_line, MEMBER]) + b"\n"
    if cut is None:
        response = await _post(ledger, body)
        assert response.status_code == 400, response.text
        assert response.json()["errors"][0]["field"] == "line 3"
        assert "yes@example.com" not in response.text
        return
    at = body.index(long_line) + cut
    caller = Caller(uuid.UUID(ledger.tenant.id), "test", None)

    async def parts() -> AsyncIterator[bytes]:
        yield body[:at]
        yield body[at:]

    async def run() -> None:
        await ledger.client.app.state.audiences.run(caller, parts())

    with pytest.raises(ValidationFailed) as failed:
        in_app(ledger.client, run)
    assert [e.field for e in failed.value.errors or []] == ["line 3"]


async def test_a_line_is_one_member_never_part_of_one_or_two(ledger: Ledger) -> None:
    """Lines 3 and 4 together make one member, line 5 holds two: all three are invalid. They
    used to decode as three members (so line 3 was answered with the decision for 4 and 5 with
    the decision for another member), and two members on one line alone were a 500."""
    await ledger.consent("yes@example.com", {"email_marketing": "granted"})
    no = b'{"type": "email", "value": "no@example.com"}'
    body = b"\n".join(
        [
            HEADER.replace(b'"all"', b'"allowed"'),
            MEMBER,
            b'{"type": "email"',
            b'"value": "no@example.com"}',
            no + b"," + MEMBER,
            no,
        ]
    )
    response = await _post(ledger, body)
    assert response.status_code == 200, response.text
    *allowed, summary = response.text.splitlines()
    assert allowed == [MEMBER.decode()]
    assert json.loads(summary)["summary"]["invalid_lines"] == [3, 4, 5]
    assert json.loads(summary)["summary"]["denied"] == 1

    alone = await _post(ledger, b"\n".join([HEADER, MEMBER + b"," + MEMBER, MEMBER]))
    assert alone.status_code == 200, alone.text
    assert [json.loads(line).get("line") for line in alone.text.splitlines()] == [3, None]


async def test_an_identifier_type_the_tenant_never_defined_is_an_invalid_line(
    ledger: Ledger, db: Database
) -> None:
    """The single call answers such a member with a 400 (`unknown identifier type`), and the
    summary says it is an invalid line; it used to be decided, logged and counted as a denied
    member (`denied.unknown_subject`), so a typo in a type read as an audience that opted out.
    A type the tenant defined is decided as any other."""
    await ledger.consent("yes@example.com", {"email_marketing": "granted"})
    await ledger.post("/v1/identifier-types", {"key": "crm_id", "description": "CRM"})
    single = await ledger.client.post(
        "/v1/decisions",
        json={
            "subject": {"identifier": {"type": "emial", "value": "yes@example.com"}},
            "action": "email.marketing",
            "context": {"requester": "esp"},
        },
        headers=ledger.h,
    )
    assert single.status_code == 400, single.text
    body = b"\n".join(
        [
            HEADER,
            MEMBER,
            b'{"type": "emial", "value": "yes@example.com"}',
            b'{"type": "crm_id", "value": "42"}',
            MEMBER,
        ]
    )
    response = await _post(ledger, body)
    assert response.status_code == 200, response.text
    *results, summary = [json.loads(line) for line in response.text.splitlines()]
    assert [(r["line"], r["allow"], r["reasons"]) for r in results] == [
        (2, True, ["allowed.consent"]),
        (4, False, ["denied.no_consent", "denied.unknown_subject"]),
        (5, True, ["allowed.consent"]),
    ]
    counts = {k: summary["summary"][k] for k in ("total", "allowed", "denied", "invalid")}
    assert counts == {"total": 3, "allowed": 2, "denied": 1, "invalid": 1}
    assert summary["summary"]["invalid_lines"] == [3]
    async with db.system() as conn:
        logged = await conn.fetchval(
            "select sum(members) from audience_member where run_id = $1",
            uuid.UUID(summary["summary"]["audience_id"]),
        )
    assert logged == 3


async def test_a_line_that_is_not_json_in_the_middle_skips_only_that_line(
    ledger: Ledger, db: Database
) -> None:
    """Members before and after it are decided and logged under the run; the counts add up."""
    await ledger.consent("yes@example.com", {"email_marketing": "granted"})
    no = b'{"type": "email", "value": "no@example.com"}'
    body = b"\n".join([HEADER, MEMBER, MEMBER, b"not json", b"[1]", b"{}", MEMBER, no]) + b"\n"
    response = await _post(ledger, body)
    assert response.status_code == 200, response.text
    *results, summary = [json.loads(line) for line in response.text.splitlines()]
    assert [r["line"] for r in results] == [2, 3, 7, 8]
    got = summary["summary"]
    assert (got["total"], got["allowed"], got["denied"]) == (4, 3, 1)
    assert (got["invalid"], got["invalid_lines"]) == (3, [4, 5, 6])
    assert got["denied_by_reason"] == {"denied.no_consent": 1, "denied.unknown_subject": 1}
    async with db.system() as conn:
        run = await conn.fetchrow(
            "select action, (select sum(members) from audience_member m where m.run_id = r.id)"
            " as members from audience_run r where id = $1",
            uuid.UUID(got["audience_id"]),
        )
    assert run is not None
    assert (run["action"], run["members"]) == ("email.marketing", 4)
