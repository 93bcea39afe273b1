"""`consent audit verify` checks audience runs against their leaves.

An audience run stores which subjects it decided and with which input values in
`audience_member` rows, and the decision each shape got in `audience_shape`; its
`audience.used` leaves commit to them (members_digest, state_digest, the answer). The rows are
what the portal and exports read to show a person which runs used her data: an operator who
changes them (moves a subject into an allowed group, flips a shape's answer, drops a row) must
be caught by verify, as a change to any other stored audit row is.

The tampering runs as a superuser with triggers disabled, as in test_tamper.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from consent.audit.checkpoint import NoteSigner
from consent.audit.integrator import Integrator
from consent.audit.verify_db import LogReport, verify_all
from consent.db.database import Conn, Database
from tests.integration.conftest import Catalog

pytestmark = pytest.mark.integration

GRANTED = [f"aud-verify-yes-{i}" for i in range(4)]
DENIED = [f"aud-verify-no-{i}" for i in range(2)]


async def _run_audience(client: Any, catalog: Catalog, devices: list[str]) -> uuid.UUID:
    header = {"action": "web.analytics", "context": {"requester": "dmp-nightly"}}
    lines = [json.dumps(header)] + [json.dumps({"type": "device", "value": d}) for d in devices]
    response = await client.post(
        "/v1/audiences/filter",
        content="\n".join(lines).encode() + b"\n",
        headers={**catalog.h, "content-type": "application/x-ndjson"},
    )
    assert response.status_code == 200, response.text
    summary = json.loads(response.content.splitlines()[-1])["summary"]
    return uuid.UUID(summary["audience_id"])


async def _populate(client: Any, catalog: Catalog, integrator: Integrator) -> dict[str, str]:
    """Four subjects who granted analytics and two who denied it, one audience run over them
    (and an identifier nobody has); returns each device's subject id."""
    subjects = {}
    for device in GRANTED + DENIED:
        written = await catalog.consent(
            identifier={"type": "device", "value": device},
            choices=[
                {"purpose": "analytics", "choice": "granted" if device in GRANTED else "denied"}
            ],
        )
        subjects[device] = written["subject_id"]
    await _run_audience(client, catalog, [*GRANTED, *DENIED, "aud-verify-unknown"])
    await integrator.integrate_all()
    return subjects


async def _verify(db: Database, signer: NoteSigner, tenant: str) -> LogReport:
    reports = await verify_all(db, signer.verifier, tenant)
    assert len(reports) == 1
    return reports[0]


async def _as_superuser(db: Database, action: Callable[[Conn], Awaitable[Any]]) -> None:
    async with db.system() as conn:
        await conn.execute("set local session_replication_role = replica")
        await action(conn)


async def test_untouched_audience_runs_verify_also_after_a_member_is_erased(
    client: Any, catalog: Catalog, db: Database, integrator: Integrator, signer: NoteSigner
) -> None:
    """Erasure leaves audience rows as they are (random subject ids, nothing that names a
    person), so the digests still match: the check needs no exception for erased members."""
    subjects = await _populate(client, catalog, integrator)
    await _run_audience(client, catalog, GRANTED[:2])  # a second run, still in the outbox
    report = await _verify(db, signer, catalog.tenant.id)
    assert report.ok, report.problems

    erased = await client.delete(f"/v1/subjects/{subjects[GRANTED[1]]}", headers=catalog.h)
    assert erased.status_code == 200, erased.text
    await integrator.integrate_all()
    async with db.system() as conn:
        listed = await conn.fetchval(
            "select count(*) from audience_member where $1 = any(subject_ids)",
            uuid.UUID(subjects[GRANTED[1]]),
        )
    assert listed == 2  # both runs still list the erased subject: what their leaves commit to
    report = await _verify(db, signer, catalog.tenant.id)
    assert report.ok, report.problems


async def _allowed_row(conn: Conn) -> Any:
    row = await conn.fetchrow(
        "select m.* from audience_member as m "
        "join audience_shape as s on s.run_id = m.run_id and s.shape = m.shape where s.allow"
    )
    assert row is not None
    return row


async def move_denied_subject_into_allowed_group(conn: Conn) -> None:
    """A subject who denied analytics listed as one the run allowed, in another's place."""
    allowed = await _allowed_row(conn)
    denied = await conn.fetchval(
        "select m.subject_ids[1] from audience_member as m "
        "join audience_shape as s on s.run_id = m.run_id and s.shape = m.shape "
        "where not s.allow and cardinality(m.subject_ids) > 0"
    )
    changed = await conn.execute(
        "update audience_member set subject_ids[2] = $2 where event_uuid = $1",
        allowed["event_uuid"],
        denied,
    )
    assert changed == "UPDATE 1"


async def change_member_value(conn: Conn) -> None:
    """One member's consent time (part of her exact input) changed."""
    changed = await conn.execute(
        "update audience_member set recorded_at_ns[2] = recorded_at_ns[2] + 1 "
        "where event_uuid = $1",
        (await _allowed_row(conn))["event_uuid"],
    )
    assert changed == "UPDATE 1"


async def flip_shape_answer(conn: Conn) -> None:
    """The denied subjects' shape answered allow: they become allowed."""
    changed = await conn.execute(
        "update audience_shape as s set allow = true where not allow and exists ("
        "select 1 from audience_member as m where m.run_id = s.run_id and m.shape = s.shape "
        "and cardinality(m.subject_ids) > 0)"
    )
    assert changed == "UPDATE 1"


async def change_run_requester(conn: Conn) -> None:
    changed = await conn.execute("update audience_run set requester = 'someone-else'")
    assert changed == "UPDATE 1"


async def delete_member_row(conn: Conn) -> None:
    """The allowed group's row gone: its members' activity no longer shows the run."""
    deleted = await conn.execute(
        "delete from audience_member where event_uuid = $1",
        (await _allowed_row(conn))["event_uuid"],
    )
    assert deleted == "DELETE 1"


async def unlink_member_row(conn: Conn) -> None:
    """The row kept, but no longer pointing to its leaf."""
    changed = await conn.execute(
        "update audience_member set event_uuid = null where event_uuid = $1",
        (await _allowed_row(conn))["event_uuid"],
    )
    assert changed == "UPDATE 1"


async def point_row_to_another_leaf(conn: Conn) -> None:
    """The allowed row claims the leaf of a consent event (the rows' leaf link is unique)."""
    changed = await conn.execute(
        "update audience_member set event_uuid = (select event_uuid from audit_event "
        "where kind = 'consent.recorded' limit 1) where event_uuid = $1",
        (await _allowed_row(conn))["event_uuid"],
    )
    assert changed == "UPDATE 1"


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (move_denied_subject_into_allowed_group, "its members differ from the leaf's digest"),
        (change_member_value, "its members differ from the leaf's digest"),
        (flip_shape_answer, "its shape's decision differs from the leaf's"),
        (change_run_requester, "its run differs from the leaf's (requester, action, time)"),
        (delete_member_row, "its audience_member row is missing"),
        (unlink_member_row, "its audience_member row is missing"),
        (point_row_to_another_leaf, "its leaf is not an audience.used leaf"),
    ],
)
async def test_tampered_audience_rows_are_detected(
    client: Any,
    catalog: Catalog,
    db: Database,
    integrator: Integrator,
    signer: NoteSigner,
    tamper: Callable[[Conn], Awaitable[None]],
    expected: str,
) -> None:
    await _populate(client, catalog, integrator)
    async with db.system() as conn:
        leaves = {
            r["event_uuid"]: r["leaf_index"]
            for r in await conn.fetch(
                "select e.event_uuid, f.leaf_index from audit_event as e "
                "join audit_leaf as f on f.event_id = e.event_id "
                "where e.kind = 'audience.used'"
            )
        }
        allowed = await _allowed_row(conn)
    assert len(leaves) == 2
    await _as_superuser(db, tamper)
    report = await _verify(db, signer, catalog.tenant.id)
    assert not report.ok
    problems = [p for p in report.problems if expected in p]
    assert problems, report.problems
    # The problem names the run (the operator's search key) and the leaf that proves it.
    assert f"audience run {allowed['run_id']}" in problems[0], problems
    assert "leaf " in problems[0], problems
    if tamper in (change_member_value, move_denied_subject_into_allowed_group, delete_member_row):
        assert f"leaf {leaves[allowed['event_uuid']]}" in problems[0], problems
