"""An erasure racing a decision's group commit leaves no audit token behind.

A decision about a known subject is an audit leaf naming the subject's random token, created
when the decision is logged if the subject has none yet (a subject made by a link of unknown
identifiers has none). Erasure deletes the tokens it finds. A decision read before the erasure
and logged after it must not create a token row for the erased subject (nothing would ever
delete it, and it ties the leaf to the subject): its leaf gets a random token stored nowhere,
and every proof still verifies. The interleavings are driven, not slept for: the decision's
records wait before the log writer until the test releases them (tests/support/held_decisions).
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any
from uuid import UUID

import pytest

from consent.audit.checkpoint import NoteSigner
from consent.audit.integrator import Integrator
from consent.audit.leaf import DecisionMade, SubjectErased, decode_leaf
from consent.audit.outbox import AuditWriter
from consent.audit.verify_db import verify_all
from consent.audit.verify_offline import verify_inclusion_proof
from consent.config import Settings
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from consent.decisions.logwriter import write_decisions
from consent.subjects.erasure import erase_subject
from consent.subjects.resolver import SubjectResolver
from tests.conftest import Catalog
from tests.integration.audit.conftest import Deciding
from tests.support.held_decisions import ask
from tests.support.locks import waiting_for_a_lock

pytestmark = pytest.mark.integration

EMAIL = {"type": "email", "value": "tara.token@example.org"}
DEVICE = {"type": "device", "value": "cookie-tara"}


async def _tokenless_subject(catalog: Catalog, db: Database) -> UUID:
    """A subject no leaf names yet: made by a link of identifiers the ledger did not know."""
    linked = await catalog.post(
        "/v1/subjects/link", {"subjects": [{"identifier": EMAIL}, {"identifier": DEVICE}]}, 200
    )
    subject = UUID(linked["subject_id"])
    assert await _token_rows(db, subject) == 0
    return subject


async def _token_rows(db: Database, subject: UUID) -> int:
    async with db.system() as conn:
        found: int = await conn.fetchval(
            "select count(*) from audit_subject_token where subject_id = $1", subject
        )
        return found


async def _decision_leaf(db: Database, decision_id: UUID) -> DecisionMade:
    async with db.system() as conn:
        row = await conn.fetchrow(
            "select leaf_bytes, subject_id from audit_event where event_uuid = $1", decision_id
        )
    assert row is not None, "the decision's leaf is in the log"
    leaf = decode_leaf(bytes(row["leaf_bytes"]))
    assert isinstance(leaf, DecisionMade)
    return leaf


async def _stored_anywhere(db: Database, token: str) -> bool:
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    async with db.system() as conn:
        return bool(
            await conn.fetchval(
                "select exists (select from audit_subject_token where token = $1)", raw
            )
        )


async def _erase_via_api(client: Any, catalog: Catalog, subject: UUID) -> dict[str, Any]:
    erased = await client.delete(f"/v1/subjects/{subject}", headers=catalog.h)
    assert erased.status_code == 200, erased.text
    answer: dict[str, Any] = erased.json()
    return answer


async def _everything_verifies(
    client: Any,
    catalog: Catalog,
    db: Database,
    integrator: Integrator,
    signer: NoteSigner,
    decision_id: UUID,
) -> None:
    """The log verifies, and the decision's leaf has an inclusion proof an auditor can check
    offline with nothing but the published key."""
    await integrator.integrate_all()
    reports = await verify_all(db, signer.verifier, catalog.tenant.id)
    assert [r.problems for r in reports] == [[]]
    info = await client.get(f"/v1/audit/events/{decision_id}", headers=catalog.h)
    assert info.status_code == 200, info.text
    proof = await client.get(f"/v1/audit/events/{decision_id}/proof", headers=catalog.h)
    assert proof.status_code == 200, proof.text
    vkey = (await client.get("/.well-known/consent-audit-keys")).text.strip()
    leaf = base64.b64decode(info.json()["leaf"])
    result = verify_inclusion_proof(proof.text, leaf, vkey, origin=info.json()["log"])
    assert result.ok, result.reason


async def test_a_decision_logged_after_the_erasure_creates_no_token(
    client: Any,
    catalog: Catalog,
    db: Database,
    deciding: Deciding,
    integrator: Integrator,
    signer: NoteSigner,
) -> None:
    """Read (a known subject without a token) -> the subject erased (committed) -> the
    decision's group commit: the leaf names a random token stored nowhere."""
    subject = await _tokenless_subject(catalog, db)
    asked = ask(deciding.service, deciding.tenant_id, EMAIL)
    await asyncio.wait_for(deciding.writer.arrived.wait(), 10)
    erasure = await _erase_via_api(client, catalog, subject)
    assert erasure["audit_events"] == []  # no token then: no leaf named it

    deciding.writer.release.set()
    out = await asyncio.wait_for(asked, 10)
    assert out.subject_id == subject  # decided as the known subject it was when read
    assert await _token_rows(db, subject) == 0
    leaf = await _decision_leaf(db, out.decision_id)
    assert not await _stored_anywhere(db, leaf.subject_token)
    await _everything_verifies(client, catalog, db, integrator, signer, out.decision_id)


async def test_a_decision_logged_while_the_erasure_runs_waits_and_creates_no_token(
    client: Any,
    catalog: Catalog,
    db: Database,
    deciding: Deciding,
    keyring: KeyRing,
    settings: Settings,
    integrator: Integrator,
    signer: NoteSigner,
) -> None:
    """Read -> the erasure runs (tokens deleted, subject marked erased, not yet committed) ->
    the decision's group commit -> the erasure commits. The token's creation waits for the
    erasure, then finds the subject erased."""
    subject = await _tokenless_subject(catalog, db)
    asked = ask(deciding.service, deciding.tenant_id, EMAIL)
    await asyncio.wait_for(deciding.writer.arrived.wait(), 10)
    tenant_id = deciding.tenant_id
    async with db.tenant(tenant_id) as conn:
        await erase_subject(
            conn, tenant_id, subject, SubjectResolver(keyring), AuditWriter(settings.audit_origin)
        )
        deciding.writer.release.set()
        waited = await waiting_for_a_lock(db, asked, locktype=None)
    out = await asyncio.wait_for(asked, 10)
    assert out.subject_id == subject
    assert await _token_rows(db, subject) == 0
    leaf = await _decision_leaf(db, out.decision_id)
    assert not await _stored_anywhere(db, leaf.subject_token)
    assert waited, "the token's creation did not wait for the erasure to commit"
    await _everything_verifies(client, catalog, db, integrator, signer, out.decision_id)


async def test_an_erasure_waits_for_a_token_being_created_and_then_deletes_it(
    client: Any,
    catalog: Catalog,
    db: Database,
    deciding: Deciding,
    keyring: KeyRing,
    settings: Settings,
    integrator: Integrator,
    signer: NoteSigner,
) -> None:
    """Read -> the decision's group commit creates the token, its transaction still open ->
    the erasure, which waits for it to commit, then proves the token (a `subject.erased` leaf)
    and deletes it."""
    subject = await _tokenless_subject(catalog, db)
    asked = ask(deciding.service, deciding.tenant_id, EMAIL)
    await asyncio.wait_for(deciding.writer.arrived.wait(), 10)
    (batch,) = deciding.writer.stopped
    tenant_id = deciding.tenant_id
    audit = AuditWriter(settings.audit_origin)
    erased: list[UUID] = []

    async def erase() -> None:
        async with db.tenant(tenant_id) as conn:
            result = await erase_subject(conn, tenant_id, subject, SubjectResolver(keyring), audit)
            erased.extend(result.audit_events)

    async with db.pool.acquire() as conn:
        async with conn.transaction():  # the group commit's transaction (write_batch)
            await write_decisions(conn, batch.decisions, audit)
            erasing = asyncio.create_task(erase())
            waited = await waiting_for_a_lock(db, erasing, locktype=None)
        await asyncio.wait_for(erasing, 10)
    asked.cancel()  # its records were written above
    (decision,) = batch.decisions
    assert decision.subject_id == subject
    assert await _token_rows(db, subject) == 0
    leaf = await _decision_leaf(db, decision.id)
    assert not await _stored_anywhere(db, leaf.subject_token)
    assert waited, "the erasure did not wait for the token's creation to commit"
    # The erasure found the token the decision's leaf names, and proved its end.
    (erasure_event,) = erased
    async with db.system() as reader:
        erasure_bytes = await reader.fetchval(
            "select leaf_bytes from audit_event where event_uuid = $1", erasure_event
        )
    erasure_leaf = decode_leaf(bytes(erasure_bytes))
    assert isinstance(erasure_leaf, SubjectErased)
    assert erasure_leaf.subject_token == leaf.subject_token
    await _everything_verifies(client, catalog, db, integrator, signer, decision.id)
