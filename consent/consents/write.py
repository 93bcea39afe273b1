"""What every ledger event (a consent or a preference event) does before its insert.

Both kinds resolve (or create) the subject under a lock against a concurrent link, give the
event a UUID v7, take its data key, seal the network evidence under it when the tenant keeps
evidence (bound to the event, see `consent.consents.history`), and prepare the audit leaf's
context. Only the leaf and the insert differ per kind.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple, Protocol
from uuid import UUID

import msgspec

from consent.audit.leaf import Leaf
from consent.audit.outbox import AuditWriter, LeafRow, SubjectLeafContext
from consent.consents.evidence import NetworkEvidence
from consent.consents.history import evidence_context
from consent.crypto.datakeys import DataKeys
from consent.db.database import Conn
from consent.errors import FieldError, ValidationFailed
from consent.ids import uuid7
from consent.subjects.identifiers import BUILTIN_TYPES
from consent.subjects.resolver import SubjectResolver
from consent.subjects.schemas import IdentifierIn, SubjectRef
from consent.tenancy.properties import check_write_property

__all__ = ["EventWriter", "PreparedEvent"]

_enc = msgspec.json.Encoder()


class _EventData(Protocol):
    """The fields both event bodies share (`ConsentCreate`, `PreferenceCreate`)."""

    @property
    def subject_id(self) -> UUID | None: ...

    @property
    def identifier(self) -> IdentifierIn | None: ...

    @property
    def occurred_at(self) -> datetime | None: ...

    @property
    def property_id(self) -> UUID | None: ...


class PreparedEvent(NamedTuple):
    subject_id: UUID
    event_id: UUID
    occurred_at: datetime
    evidence_enc: bytes | None
    """The network evidence sealed under the subject's key; None when not kept."""
    audit: SubjectLeafContext


class EventWriter:
    """Prepares the events of one kind (`kind`: the evidence context, e.g. b"consent-evidence")
    for one tenant."""

    def __init__(
        self,
        tenant_id: UUID,
        subjects: SubjectResolver,
        datakeys: DataKeys,
        audit: AuditWriter,
        kind: bytes,
    ) -> None:
        self.tenant_id = tenant_id
        self.subjects = subjects
        self.datakeys = datakeys
        self.audit = audit
        self.kind = kind

    async def prepare(
        self,
        conn: Conn,
        data: _EventData,
        evidence: NetworkEvidence | None,
        *,
        normalized: str | None,
    ) -> PreparedEvent:
        """`evidence`: what to keep (None when the tenant does not keep it); `normalized`: the
        built-in identifier's value as the shape check normalised it."""
        ref = SubjectRef(subject_id=data.subject_id, identifier=data.identifier)
        subject = await self.subjects.resolve_for_write(
            conn, self.tenant_id, ref, normalized=normalized
        )
        subject_id = subject.id
        event_id = uuid7()
        occurred_at = data.occurred_at or datetime.now(UTC)
        dek = subject.dek or await self.datakeys.ensure(conn, self.tenant_id, subject_id)
        evidence_enc = None
        if evidence is not None:
            evidence_enc = DataKeys.encrypt(
                dek,
                self.tenant_id,
                subject_id,
                _enc.encode(evidence),
                evidence_context(self.kind, event_id),
            )
        audit = await self.audit.prepare(
            conn,
            dek,
            self.tenant_id,
            subject_id,
            event_id,
            {"event": data, "network": evidence},
            subject.token,
        )
        return PreparedEvent(subject_id, event_id, occurred_at, evidence_enc, audit)

    async def identifier_errors(self, conn: Conn, data: _EventData) -> list[FieldError]:
        """The problems of the event's identifier of a tenant's own type (the type unknown, the
        value malformed), which only the tenant's catalogue tells; none for a subject id or a
        built-in type (checked without the database, `checked_reference`)."""
        ident = data.identifier
        if ident is None or ident.type in BUILTIN_TYPES or data.subject_id is not None:
            return []
        return await self.subjects.identifier_errors(conn, self.tenant_id, ident)

    async def refusal_errors(self, conn: Conn, data: _EventData) -> list[FieldError]:
        """For an event refused for other problems: those of its identifier and a `property_id`
        naming no property of the tenant, to report with them, all at once."""
        errors = await self.identifier_errors(conn, data)
        try:
            await check_write_property(conn, data.property_id, None)
        except ValidationFailed as exc:
            errors += exc.errors or []
        return errors

    async def property_errors(
        self, conn: Conn, data: _EventData, origin: str | None
    ) -> list[FieldError]:
        """`check_write_property` (a browser `origin` the property does not list: 403); a
        `property_id` naming no property is returned as a field error, with the problems of the
        event's identifier (reported all at once); none: the property is fine."""
        try:
            await check_write_property(conn, data.property_id, origin)
        except ValidationFailed as exc:
            return [*(exc.errors or []), *await self.identifier_errors(conn, data)]
        return []

    def leaf_row(self, event: PreparedEvent, leaf: Leaf) -> LeafRow:
        """The audit row of `event`'s leaf, with the evidence its context sealed."""
        return self.audit.row(
            self.tenant_id,
            event.audit.log_id,
            leaf,
            subject_id=event.subject_id,
            evidence=event.audit.evidence,
        )
