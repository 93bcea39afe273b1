"""Every decision about a known subject is a use of their data: a leaf of the audit log."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from typing import Any

import asyncpg
import msgspec
import pytest

from consent.audit.decision_leaves import members_digest, state_digest
from consent.audit.integrator import Integrator
from consent.audit.leaf import AudienceUsed, ConsentRecorded, DecisionMade, decode_leaf
from consent.audit.outbox import AuditWriter, token_text
from consent.db.database import Database
from consent.decisions.engine import DecisionInput
from consent.decisions.logwriter import DecisionRecord, write_decisions
from consent.decisions.service import Ref
from tests.conftest import Catalog

pytestmark = pytest.mark.integration


async def test_decisions_are_leaves_in_the_subjects_activity(
    client: Any, catalog: Catalog, db: Database, integrator: Integrator
) -> None:
    written = await catalog.consent(
        identifier={"type": "device", "value": "decided-1"},
        choices=[{"purpose": "analytics", "choice": "granted"}],
    )
    answers = []
    for action in ("web.analytics", "ads.retarget"):
        response = await client.post(
            "/v1/decisions",
            json={
                "subject": {"subject_id": written["subject_id"]},
                "action": action,
                "context": {"requester": "cdp-main"},
            },
            headers=catalog.h,
        )
        assert response.status_code in {200, 201}, response.text
        answers.append(response.json())
    await integrator.integrate_all()
    page = (
        await client.get(f"/v1/subjects/{written['subject_id']}/activity", headers=catalog.h)
    ).json()
    uses = [i for i in page["items"] if i["kind"] == "decision.made"]
    assert [u["action"] for u in uses] == ["ads.retarget", "web.analytics"]
    for use, answer in zip(uses, reversed(answers), strict=True):
        assert use["event_uuid"] == answer["decision_id"]
        assert use["allow"] == answer["allow"]
        assert use["reasons"] == answer["reasons"]
        assert use["requester"] == "cdp-main"
        assert use["policy_revision"] == answer["policy_revision"]
        assert isinstance(use["leaf_index"], int)
    async with db.system() as conn:
        stored = await conn.fetchrow(
            "select input from decision_log where id = $1::uuid", answers[0]["decision_id"]
        )
    assert stored is not None
    leaf = decode_leaf(base64.b64decode(uses[-1]["leaf"]))
    assert isinstance(leaf, DecisionMade)
    assert leaf.state_digest == state_digest(stored["input"])


async def test_a_decision_names_its_subject_by_the_token_its_state_read_found(
    client: Any, catalog: Catalog, db: Database, integrator: Integrator
) -> None:
    """The state read returns the subject's audit token with its consents; the decision's leaf
    names the subject by it, as the subject's other leaves do (the portal's activity page and
    erasure find a subject's leaves by that token)."""
    written = await catalog.consent(
        identifier={"type": "device", "value": "token-1"},
        choices=[{"purpose": "analytics", "choice": "granted"}],
    )
    subject_id = uuid.UUID(written["subject_id"])
    async with db.system() as conn:
        token = await conn.fetchval(
            "select token from audit_subject_token where subject_id = $1", subject_id
        )
    assert token is not None  # the consent event's leaf created it
    service = client.app.state.decisions
    async with db.pool.acquire() as conn:
        _, rows = await service.load(
            conn, uuid.UUID(catalog.tenant.id), ["analytics"], [Ref(subject_id, None, None)]
        )
    assert rows[0].audit_token == token
    answer = await catalog.post(
        "/v1/decisions",
        {
            "subject": {"identifier": {"type": "device", "value": "token-1"}},
            "action": "web.analytics",
            "context": {"requester": "cdp-main"},
        },
        status=200,
    )
    await integrator.integrate_all()
    page = (await client.get(f"/v1/subjects/{subject_id}/activity", headers=catalog.h)).json()
    leaves = {i["event_uuid"]: decode_leaf(base64.b64decode(i["leaf"])) for i in page["items"]}
    made = leaves[answer["decision_id"]]
    recorded = leaves[written["event_id"]]
    assert isinstance(made, DecisionMade)
    assert isinstance(recorded, ConsentRecorded)
    assert made.subject_token == recorded.subject_token == token_text(token)


async def test_the_state_read_probes_tokens_by_key_whatever_the_statistics_say(
    catalog: Catalog, database_dsn: str
) -> None:
    """The state read's generic plan is made once per connection: one made while the token
    table was analysed small must not scan the table for every token once it has grown (a new
    service's first decisions create the tokens; autovacuum analyses a minute later at best)."""
    written = await catalog.consent(
        identifier={"type": "device", "value": "plan-1"},
        choices=[{"purpose": "analytics", "choice": "granted"}],
    )
    conn = await asyncpg.connect(database_dsn)
    try:
        await conn.execute("analyze audit_subject_token")  # one row: a scan looks cheapest
        async with conn.transaction():
            rows = await conn.fetch(
                "select * from decision_subject_states($1, $2, $3, $4, $5, $6)",
                uuid.UUID(catalog.tenant.id),
                [0],
                [uuid.UUID(written["subject_id"])],
                [None],
                [None],
                ["analytics"],
            )
            scans = await conn.fetchval(
                "select pg_stat_get_xact_numscans('audit_subject_token'::regclass)"
            )
    finally:
        await conn.close()
    assert rows[0]["audit_token"] is not None
    assert scans == 0


async def test_audience_runs_are_leaves_in_each_members_activity(
    client: Any, catalog: Catalog, db: Database, integrator: Integrator
) -> None:
    granted = await catalog.consent(
        identifier={"type": "device", "value": "aud-yes"},
        choices=[{"purpose": "analytics", "choice": "granted"}],
    )
    denied = await catalog.consent(
        identifier={"type": "device", "value": "aud-no"},
        choices=[{"purpose": "analytics", "choice": "denied"}],
    )
    header = {"action": "web.analytics", "context": {"requester": "dmp-nightly"}}
    body = b"\n".join(
        [
            json.dumps(header).encode(),
            b'{"type": "device", "value": "aud-yes"}',
            b'{"type": "device", "value": "aud-no"}',
            b'{"type": "device", "value": "aud-unknown"}',
        ]
    )
    response = await client.post(
        "/v1/audiences/filter",
        content=body,
        headers={**catalog.h, "content-type": "application/x-ndjson"},
    )
    assert response.status_code == 200, response.text
    run_id = uuid.UUID(json.loads(response.content.splitlines()[-1])["summary"]["audience_id"])
    await integrator.integrate_all()

    for written, allow in ((granted, True), (denied, False)):
        page = (
            await client.get(f"/v1/subjects/{written['subject_id']}/activity", headers=catalog.h)
        ).json()
        uses = [i for i in page["items"] if i["kind"] == "audience.used"]
        assert len(uses) == 1, page
        use = uses[0]
        assert (use["requester"], use["action"], use["allow"]) == (
            "dmp-nightly",
            "web.analytics",
            allow,
        )
        assert isinstance(use["leaf_index"], int)
        leaf = decode_leaf(base64.b64decode(use["leaf"]))
        assert isinstance(leaf, AudienceUsed)
        assert leaf.run_id == run_id
        assert leaf.members == 1
        # The leaf commits to the stored member row: anyone holding it can check.
        async with db.system() as conn:
            row = await conn.fetchrow(
                "select * from audience_member where event_uuid = $1", leaf.event_uuid
            )
        assert row is not None
        assert list(row["subject_ids"]) == [uuid.UUID(written["subject_id"])]
        assert leaf.members_digest == members_digest(_Group(row))
        # ...and it is in the subject's export for a regulator, with its proof.
        export = await client.get(
            f"/v1/audit/export?subject_id={written['subject_id']}", headers=catalog.h
        )
        assert export.status_code == 200, export.text
        assert use["leaf_index"] in {e["leaf_index"] for e in export.json()["entries"]}

    # The unknown member used nobody's data: no leaf lists it (2 groups listed subjects).
    async with db.system() as conn:
        kinds = await conn.fetch("select count(*) from audit_event where kind = 'audience.used'")
    assert kinds[0][0] == 2


class _Group:
    """An audience_member row read back, in the shape `members_digest` takes."""

    def __init__(self, row: Any) -> None:
        self.subject_ids = list(row["subject_ids"])
        self.purpose_keys = list(row["purpose_keys"])
        self.purpose_material = list(row["purpose_material"])
        self.recorded_at_ns = list(row["recorded_at_ns"])
        self.consent_material = list(row["consent_material"])


async def test_a_token_another_transaction_creates_meanwhile_is_read_not_lost(
    catalog: Catalog, db: Database
) -> None:
    """Two transactions give the same new subject its first use at once (two decision batches,
    or a decision and a link). The second waits on the first's insert; it must come back with
    the first one's token, not without a token (a KeyError that lost a whole decision batch)."""
    # A subject no leaf named yet (a link of identifiers the ledger did not know): no token.
    linked = await catalog.post(
        "/v1/subjects/link",
        {
            "subjects": [
                {"identifier": {"type": "email", "value": "first.use@example.com"}},
                {"identifier": {"type": "device", "value": "first-use"}},
            ]
        },
        200,
    )
    tenant_id, subject_id = uuid.UUID(catalog.tenant.id), uuid.UUID(linked["subject_id"])
    async with db.tenant(tenant_id) as first:
        mine = await AuditWriter.subject_token(first, tenant_id, subject_id)

        async def second() -> str:
            async with db.tenant(tenant_id) as conn:
                return await AuditWriter.subject_token(conn, tenant_id, subject_id)

        waiting = asyncio.create_task(second())
        async with db.system() as probe:
            for _ in range(500):  # until the second insert waits on the first's row lock
                if await probe.fetchval(
                    "select count(*) from pg_locks where not granted and locktype = 'transactionid'"
                ):
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the second transaction never waited on the first")
    assert await waiting == mine


async def test_decisions_and_their_leaves_are_one_statement_none_without_the_other(
    client: Any, catalog: Catalog, db: Database
) -> None:
    """The decision log writes a group of single decisions as one statement outside a
    transaction: if any leaf cannot be written, no decision of the group is logged either."""
    written = await catalog.consent(
        identifier={"type": "device", "value": "atomic-1"},
        choices=[{"purpose": "analytics", "choice": "granted"}],
    )
    answer = (
        await client.post(
            "/v1/decisions",
            json={
                "subject": {"subject_id": written["subject_id"]},
                "action": "web.analytics",
                "context": {"requester": "cdp-main"},
            },
            headers=catalog.h,
        )
    ).json()
    async with db.system() as conn:
        stored = await conn.fetchrow(
            "select * from decision_log where id = $1::uuid", answer["decision_id"]
        )
    assert stored is not None

    def record(record_id: uuid.UUID) -> DecisionRecord:
        return DecisionRecord(
            id=record_id,
            tenant_id=stored["tenant_id"],
            decided_at=stored["decided_at"],
            subject_id=stored["subject_id"],
            id_type=None,
            lookup_hmac=None,
            requester="cdp-main",
            api_key_id=stored["api_key_id"],
            request_id=None,
            kind="single",
            batch_id=None,
            action="web.analytics",
            allow=stored["allow"],
            reasons=tuple(stored["reasons"]),
            purposes=dict(stored["purposes"]),
            policy_revision=stored["policy_revision"],
            input=msgspec.convert(stored["input"], DecisionInput),
        )

    fine = record(uuid.uuid4())
    # A new decision id that is already a leaf's event id (the consent event's): its decision
    # row alone could be written, its leaf cannot.
    clashing = record(uuid.UUID(written["event_id"]))
    audit = AuditWriter(client.app.state.settings.audit_origin)
    async with db.pool.acquire() as conn:
        with pytest.raises(asyncpg.UniqueViolationError):
            await write_decisions(conn, [fine, clashing], audit)
        await write_decisions(conn, [fine], audit)
    async with db.system() as conn:
        logged = await conn.fetch(
            "select id from decision_log where id = any($1::uuid[])", [fine.id, clashing.id]
        )
        leaves = await conn.fetch(
            "select event_uuid from audit_event where kind = 'decision.made' "
            "and event_uuid = any($1::uuid[])",
            [fine.id, clashing.id],
        )
    assert [r["id"] for r in logged] == [fine.id]
    assert [r["event_uuid"] for r in leaves] == [fine.id]
