"""`consent identifiers renormalise` racing a decision's group commit leaves no keyed identifier
HMAC behind that no erasure would find.

A decision about an identifier the ledger does not know is logged with the identifier's keyed
HMAC; erasure finds those by the subject's identifier rows. A re-spelling removes the row of an
old spelling, so it forgets the HMACs of that spelling first. A decision read while the old
spelling was unknown but committed after that forget must not bring the HMAC back: the old
spelling's row is gone, and nothing would forget it any more. The run fences decisions in flight
as an erasure does (migrations/0028_erasure_fences_decision_lookups.sql). The interleavings are
driven, not slept for: the decision's records wait before the log writer until the test
releases them (as in tests/integration/audit/test_erasure_decision_race.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest

from consent.audit.outbox import AuditWriter
from consent.config import Settings
from consent.crypto.datakeys import DataKeys
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from consent.decisions.logwriter import write_decisions
from consent.decisions.schemas import DecisionOut
from consent.decisions.service import DecisionService
from consent.subjects.renormalise import Outcome, renormalise
from tests.conftest import Catalog
from tests.support.held_decisions import HeldWriter, ask, held_decisions
from tests.support.locks import waiting_for_a_lock

pytestmark = pytest.mark.integration

# Stored under the old rules (IDNA 2003 spelt `Straße.de` as `strasse.de`), kept as typed: the
# run re-spells it to `x@xn--strae-oqa.de` and removes the row of the old spelling.
OLD = "x@strasse.de"
TYPED = "x@Straße.de"


class Race:
    """A decision service of this test's own (real policy engine, real log writer, the test
    database), whose decisions can be held before they are logged; and the run."""

    def __init__(
        self,
        db: Database,
        service: DecisionService,
        writer: HeldWriter,
        keyring: KeyRing,
        audit: AuditWriter,
        catalog: Catalog,
    ) -> None:
        self.db = db
        self.service = service
        self.writer = writer
        self.keyring = keyring
        self.audit = audit
        self.catalog = catalog
        self.tenant_id = UUID(catalog.tenant.id)
        self.digest = keyring.lookup_digest(catalog.tenant.id, "email", OLD)

    def ask(self) -> asyncio.Task[DecisionOut]:
        """A decision about the old spelling (the ledger does not know it yet)."""
        return ask(self.service, self.tenant_id, {"type": "email", "value": OLD})

    async def plant(self) -> UUID:
        """A subject holding the old spelling, as a system that kept values as typed stored it
        (tests/integration/ledger/test_renormalise.py)."""
        written = await self.catalog.consent(
            identifier={"type": "customer_id", "value": "c-1"},
            choices=[{"purpose": "newsletter", "choice": "granted"}],
        )
        tid, sid = self.tenant_id, UUID(written["subject_id"])
        async with self.db.tenant(tid) as conn:
            dek = await DataKeys(self.keyring).get(conn, tid, sid)
            enc = DataKeys.encrypt(dek, tid, sid, TYPED.encode(), b"identifier/email")
            await conn.execute(
                "insert into subject_identifier (tenant_id, id_type, lookup_hmac, subject_id, "
                "value_enc) values ($1, 'email', $2, $3, $4)",
                tid,
                self.digest,
                sid,
                enc,
            )
        return sid

    async def renormalise(self) -> Outcome:
        return await renormalise(self.db, self.keyring, self.audit, tenant_id=self.tenant_id)

    async def logged_hmac(self, decision_id: UUID) -> bytes | None:
        async with self.db.system() as conn:
            row = await conn.fetchrow(
                "select lookup_hmac, subject_id from decision_log where id = $1", decision_id
            )
            left = await conn.fetchval(
                "select count(*) from decision_log where lookup_hmac = $1", self.digest
            )
        assert row is not None, "a decision that was returned is in the log"
        assert row["subject_id"] is None  # decided as unknown
        assert (row["lookup_hmac"] is None) == (left == 0)
        hmac: bytes | None = row["lookup_hmac"]
        return hmac


@pytest.fixture
async def race(
    db: Database, settings: Settings, keyring: KeyRing, catalog: Catalog
) -> AsyncIterator[Race]:
    audit = AuditWriter(settings.audit_origin)
    async with held_decisions(db, settings, keyring, audit) as (service, writer):
        yield Race(db, service, writer, keyring, audit, catalog)


async def test_a_decision_committed_after_the_run_forgot_its_spelling_keeps_no_hmac(
    client: Any, catalog: Catalog, race: Race
) -> None:
    """Read (old spelling unknown) -> a subject holds the old spelling -> the run re-spells it
    (the old spelling's HMACs forgotten, its row removed; committed) -> the decision's group
    commit. The decision stays logged, without the HMAC, and her erasure leaves nothing."""
    asked = race.ask()
    await asyncio.wait_for(race.writer.arrived.wait(), 10)
    subject = await race.plant()
    outcome = await race.renormalise()
    assert outcome.summary() == "checked 1 identifier: 1 re-spelt, 0 linked, 0 refused"

    race.writer.release.set()
    out = await asyncio.wait_for(asked, 10)
    assert out.subject_id is None
    assert await race.logged_hmac(out.decision_id) is None
    erased = await client.delete(f"/v1/subjects/{subject}", headers=catalog.h)
    assert erased.status_code == 200, erased.text
    assert await race.logged_hmac(out.decision_id) is None

    # A decision read after the run committed races nothing: it keeps its HMAC.
    later = await asyncio.wait_for(race.ask(), 10)
    assert await race.logged_hmac(later.decision_id) is not None


async def test_a_run_waits_for_a_decision_committing_and_then_forgets_its_hmac(
    race: Race, db: Database
) -> None:
    """Read (old spelling unknown) -> a subject holds the old spelling -> the decision's insert,
    its transaction still open -> the run, whose forgetting waits for it to commit and then
    forgets the HMAC it logged."""
    asked = race.ask()
    await asyncio.wait_for(race.writer.arrived.wait(), 10)
    (batch,) = race.writer.stopped
    await race.plant()

    async with db.pool.acquire() as conn:
        async with conn.transaction():  # the group commit's transaction (write_batch)
            await write_decisions(conn, batch.decisions, race.audit)
            running = asyncio.create_task(race.renormalise())
            waited = await waiting_for_a_lock(db, running)
        outcome = await asyncio.wait_for(running, 10)
    asked.cancel()  # its records were written above
    assert outcome.summary() == "checked 1 identifier: 1 re-spelt, 0 linked, 0 refused"
    (decision,) = batch.decisions
    assert await race.logged_hmac(decision.id) is None
    assert waited, "the run did not wait for the decision's insert to commit"
