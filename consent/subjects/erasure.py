"""Erasure of a subject (GDPR Art 17; CCPA deletion) by crypto-shredding, in one transaction.

The subject and every subject linked into it lose their data keys (every identifier value and
every evidence ciphertext under them becomes unreadable for good), their identifier mappings (a
lookup by the same e-mail finds nothing; seeing it again creates a new subject, with a new
token), their audit tokens, evidence rows and current state, the request hashes that
idempotency records keep of their writes, and the keyed HMACs of their identifiers that
decisions asked about them before the ledger knew them logged: also those of decisions still
being logged (read before the erasure, committed after it), which the erasure's epoch fences
off (migrations/0028_erasure_fences_decision_lookups.sql). Each gets a `subject.erased`
leaf, carrying only its random token, appended before the token is deleted. The consent and
preference events, decisions and audit leaves stay as pseudonymous proof (Art 7(1), 17(3)(e)):
nothing links them to a person any more, and every audit proof still verifies.

Afterwards the subject is invisible to every tenant-scoped read and write (row-level security,
migrations/0009_erasure.sql): it answers 404 like a subject that never existed, and decisions
about it are denied as unknown.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from consent.audit.leaf import SubjectErased
from consent.audit.outbox import AuditWriter, token_text
from consent.db.database import Conn
from consent.db.sql import SqlFile
from consent.ids import uuid7
from consent.subjects.resolver import SubjectResolver
from consent.subjects.schemas import ErasureResult, SubjectRef

__all__ = ["erase_subject"]

Q = SqlFile.beside(__file__)


async def erase_subject(
    conn: Conn,
    tenant_id: UUID,
    subject_id: UUID,
    resolver: SubjectResolver,
    audit: AuditWriter,
) -> ErasureResult:
    """Erase the subject `subject_id` resolves to and its linked subjects (NotFound if none).

    Runs in the caller's tenant transaction; takes the tenant's link lock first, so a link
    racing the erasure either completes before it (and is erased with it) or finds nothing.
    """
    await conn.execute(Q.lock_tenant_links, str(tenant_id))
    survivor = await resolver.resolve(
        conn, tenant_id, SubjectRef(subject_id=subject_id), create=False
    )
    assert survivor is not None  # noqa: S101 - resolve raises NotFound otherwise
    members = await resolver.group(conn, survivor)
    await conn.execute(Q.lock_for_erasure, members, survivor)
    tokens = {
        UUID(str(r["subject_id"])): bytes(r["token"])
        for r in await conn.fetch(Q.erasure_tokens, members)
    }
    erased_at = datetime.now(UTC)
    log_id, origin = await audit.log(conn, tenant_id)
    events: list[UUID] = []
    for member in members:
        token = tokens.get(member)
        if token is None:  # never written to: no leaf names it, none is needed
            continue
        leaf = SubjectErased(
            event_uuid=uuid7(), occurred_at=erased_at, log=origin, subject_token=token_text(token)
        )
        await audit.append(conn, tenant_id, log_id, leaf)
        events.append(leaf.event_uuid)
    # A decision asked about an identifier before it was the subject's logged its keyed HMAC;
    # the identifier mappings, deleted next, are how those are found. This also takes the
    # tenant's erasure lock and advances its erasure epoch: a decision in the log writer now,
    # read before this erasure, either committed first (and is forgotten here) or waits for
    # this commit and is then logged without its HMAC.
    await conn.fetchval(Q.forget_decision_lookups, members)
    await conn.fetchval(Q.erase_subjects, members)
    # A write retried under an Idempotency-Key keeps the SHA-256 of its request, which held the
    # person's identifiers: forget it (migrations/0020_erasure_forgets_request_hashes.sql).
    await conn.fetchval(Q.forget_idempotent_requests, members)
    return ErasureResult(
        subject_id=survivor, erased_subjects=members, erased_at=erased_at, audit_events=events
    )
