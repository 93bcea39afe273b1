"""An erasure racing a decision's group commit leaves no keyed identifier HMAC behind.

A decision about an identifier the ledger does not know is logged with the identifier's keyed
HMAC, and erasure forgets the HMACs of the erased subjects' identifiers. A decision read while
the identifier was unknown but committed after an erasure of the subject it became (linked,
then erased, in between) must not bring that HMAC back: the decision stays logged, without it.
The interleavings are driven, not slept for: the decision's records wait before the log writer
until the test releases them.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import pytest

from consent.audit.outbox import AuditWriter
from consent.config import Settings
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from consent.decisions.logwriter import write_decisions
from consent.subjects.erasure import erase_subject
from consent.subjects.resolver import SubjectResolver
from tests.conftest import Catalog
from tests.integration.audit.conftest import Deciding
from tests.support.locks import waiting_for_a_lock

pytestmark = pytest.mark.integration

ANN = {"type": "email", "value": "ann.raced@example.com"}


async def _rows_with(db: Database, digest: bytes) -> int:
    async with db.system() as conn:
        found: int = await conn.fetchval(
            "select count(*) from decision_log where lookup_hmac = $1", digest
        )
        return found


async def _logged(db: Database, decision_id: UUID) -> dict[str, Any]:
    async with db.system() as conn:
        row = await conn.fetchrow(
            "select id_type, lookup_hmac, subject_id from decision_log where id = $1", decision_id
        )
    assert row is not None, "a decision that was returned is in the log"
    return dict(row)


async def _comes_back(client: Any, catalog: Catalog, db: Database, decision_id: UUID) -> None:
    """Ann comes back (a new subject, the same e-mail): nothing of the decision made before
    her erasure is hers."""
    again = await catalog.consent(
        identifier=ANN, choices=[{"purpose": "analytics", "choice": "granted"}]
    )
    async with db.system() as conn:
        attributed = await conn.fetchval(
            "select count(*) from decision_log as d join subject_identifier as i"
            " on i.tenant_id = d.tenant_id and i.id_type = d.id_type"
            " and i.lookup_hmac = d.lookup_hmac where i.subject_id = $1",
            UUID(again["subject_id"]),
        )
    assert attributed == 0
    page = await client.get(f"/v1/subjects/{again['subject_id']}/activity", headers=catalog.h)
    assert page.status_code == 200, page.text
    assert str(decision_id) not in page.text


async def test_a_decision_committed_after_the_erasure_keeps_no_hmac(
    client: Any, catalog: Catalog, db: Database, deciding: Deciding
) -> None:
    """Read (identifier unknown) -> linked to a subject -> the subject erased (committed) ->
    the decision's group commit."""
    digest = deciding.hmac(ANN)
    asked = deciding.ask(ANN)
    await asyncio.wait_for(deciding.writer.arrived.wait(), 10)
    written = await catalog.consent(
        identifier=ANN, choices=[{"purpose": "analytics", "choice": "granted"}]
    )
    erased = await client.delete(f"/v1/subjects/{written['subject_id']}", headers=catalog.h)
    assert erased.status_code == 200, erased.text

    deciding.writer.release.set()
    out = await asyncio.wait_for(asked, 10)
    assert out.subject_id is None  # decided as unknown
    logged = await _logged(db, out.decision_id)
    assert logged == {"id_type": "email", "lookup_hmac": None, "subject_id": None}
    assert await _rows_with(db, digest) == 0
    await _comes_back(client, catalog, db, out.decision_id)

    # A decision read after the erasure committed races nothing: it keeps its HMAC.
    later = await asyncio.wait_for(deciding.ask({"type": "email", "value": "cy@example.com"}), 10)
    assert (await _logged(db, later.decision_id))["lookup_hmac"] is not None


async def test_a_decision_committing_while_the_erasure_commits_keeps_no_hmac(
    client: Any,
    catalog: Catalog,
    db: Database,
    deciding: Deciding,
    keyring: KeyRing,
    settings: Settings,
) -> None:
    """Read (identifier unknown) -> linked -> the erasure runs (HMACs forgotten, mappings
    deleted) -> the decision's group commit, before the erasure commits -> the erasure
    commits. The insert cannot finish first: it waits for the erasure, then keeps no HMAC."""
    digest = deciding.hmac(ANN)
    asked = deciding.ask(ANN)
    await asyncio.wait_for(deciding.writer.arrived.wait(), 10)
    written = await catalog.consent(
        identifier=ANN, choices=[{"purpose": "analytics", "choice": "granted"}]
    )
    tenant_id = UUID(catalog.tenant.id)
    resolver = SubjectResolver(keyring)
    async with db.tenant(tenant_id) as conn:
        await erase_subject(
            conn,
            tenant_id,
            UUID(written["subject_id"]),
            resolver,
            AuditWriter(settings.audit_origin),
        )
        deciding.writer.release.set()
        waited = await waiting_for_a_lock(db, asked)
    out = await asyncio.wait_for(asked, 10)
    logged = await _logged(db, out.decision_id)
    assert logged == {"id_type": "email", "lookup_hmac": None, "subject_id": None}
    assert await _rows_with(db, digest) == 0
    await _comes_back(client, catalog, db, out.decision_id)
    assert waited, "the decision's insert did not wait for the erasure to commit"


async def test_an_erasure_waits_for_a_decision_committing_and_then_forgets_its_hmac(
    catalog: Catalog,
    db: Database,
    deciding: Deciding,
    keyring: KeyRing,
    settings: Settings,
) -> None:
    """Read (identifier unknown) -> linked -> the decision's insert, its transaction still open
    -> the erasure, which waits for it to commit, then forgets the HMAC it logged."""
    digest = deciding.hmac(ANN)
    asked = deciding.ask(ANN)
    await asyncio.wait_for(deciding.writer.arrived.wait(), 10)
    (batch,) = deciding.writer.stopped
    written = await catalog.consent(
        identifier=ANN, choices=[{"purpose": "analytics", "choice": "granted"}]
    )
    tenant_id = UUID(catalog.tenant.id)
    audit = AuditWriter(settings.audit_origin)

    async def erase() -> None:
        async with db.tenant(tenant_id) as conn:
            await erase_subject(
                conn, tenant_id, UUID(written["subject_id"]), SubjectResolver(keyring), audit
            )

    async with db.pool.acquire() as conn:
        async with conn.transaction():  # the group commit's transaction (write_batch)
            await write_decisions(conn, batch.decisions, audit)
            erasing = asyncio.create_task(erase())
            waited = await waiting_for_a_lock(db, erasing)
        await asyncio.wait_for(erasing, 10)
    asked.cancel()  # its records were written above
    (decision,) = batch.decisions
    logged = await _logged(db, decision.id)
    assert logged == {"id_type": "email", "lookup_hmac": None, "subject_id": None}
    assert await _rows_with(db, digest) == 0
    assert waited, "the erasure did not wait for the decision's insert to commit"
