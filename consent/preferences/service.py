"""Record preference events and read state and history (same rules as consents)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import msgspec

from consent.audit.leaf import PreferenceChoice
from consent.audit.leaf import PreferenceRecorded as PreferenceLeaf
from consent.audit.outbox import AuditWriter
from consent.consents.evidence import NetworkEvidence
from consent.consents.history import HistoryReader, evidence_context
from consent.consents.service import proof_errors
from consent.crypto.datakeys import DataKeys
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from consent.db.sql import SqlFile
from consent.errors import FieldError, NotFound, ValidationFailed
from consent.idempotency import run_idempotent
from consent.ids import uuid7
from consent.pagination import (
    check_limit,
    decode_subject_cursor,
    encode_subject_cursor,
    page_of,
)
from consent.preferences.schemas import (
    ALLOWED_VALUES,
    CHANNELS,
    PreferenceCreate,
    PreferenceEvent,
    PreferenceHistoryPage,
    PreferenceRecorded,
    PreferenceState,
    SubjectPreferences,
)
from consent.settings_defaults import DEFAULT_AUDIT_ORIGIN
from consent.subjects.resolver import SubjectResolver, checked_reference
from consent.subjects.schemas import SubjectRef
from consent.tenancy.properties import check_write_property

__all__ = ["PreferenceService", "validate_preferences"]

Q = SqlFile.beside(__file__)
_EVIDENCE_CONTEXT = b"preference-evidence"
_enc = msgspec.json.Encoder()


def validate_preferences(data: PreferenceCreate, now: datetime) -> str | None:
    """Raises ValidationFailed with every problem; returns a built-in identifier's normalised
    value (None for a subject id or a tenant's own type), so that it is normalised once."""
    errors: list[FieldError] = []
    seen: set[tuple[str, str]] = set()
    for i, item in enumerate(data.items):
        if (item.kind, item.key) in seen:
            errors.append(FieldError(f"items[{i}]", "this preference appears twice"))
        seen.add((item.kind, item.key))
        if item.value not in ALLOWED_VALUES[item.kind]:
            allowed = ", ".join(sorted(ALLOWED_VALUES[item.kind]))
            errors.append(FieldError(f"items[{i}].value", f"must be one of: {allowed}"))
        if item.kind == "channel" and item.key not in CHANNELS:
            errors.append(
                FieldError(f"items[{i}].key", f"channel must be one of: {', '.join(CHANNELS)}")
            )
        if item.kind == "frequency" and item.key not in (*CHANNELS, "default"):
            errors.append(FieldError(f"items[{i}].key", "frequency is per channel or 'default'"))
    found, normalized = checked_reference(data.subject_id, data.identifier)
    errors += found
    errors += proof_errors(data.method, data.agent_id, data.occurred_at, now)
    if errors:
        detail = errors[0].message if len(errors) == 1 else "Invalid preferences."
        raise ValidationFailed(detail, errors=errors)
    return normalized


class PreferenceService:
    def __init__(
        self, db: Database, keyring: KeyRing, tenant_id: UUID, audit: AuditWriter | None = None
    ) -> None:
        self.db = db
        self.keyring = keyring
        self.tenant_id = tenant_id
        self.subjects = SubjectResolver(keyring)
        self.datakeys = DataKeys(keyring)
        self.audit = audit or AuditWriter(DEFAULT_AUDIT_ORIGIN)

    async def record(
        self,
        data: PreferenceCreate,
        *,
        idempotency_key: str | None = None,
        evidence: NetworkEvidence | None = None,
        origin: str | None = None,
    ) -> PreferenceRecorded:
        """`origin`: the request's `Origin` header, checked against the property's origins.
        `evidence` is kept, encrypted, only when the tenant enables `store_network_evidence`."""
        normalized = validate_preferences(data, datetime.now(UTC))
        async with self.db.tenant_hot(self.tenant_id) as conn:

            async def produce() -> PreferenceRecorded:
                await check_write_property(conn, data.property_id, origin)
                ref = SubjectRef(subject_id=data.subject_id, identifier=data.identifier)
                subject = await self.subjects.resolve_for_write(
                    conn, self.tenant_id, ref, normalized=normalized
                )
                subject_id = subject.id
                event_id = uuid7()
                occurred_at = data.occurred_at or datetime.now(UTC)
                dek = subject.dek or await self.datakeys.ensure(conn, self.tenant_id, subject_id)
                keep = evidence is not None and await conn.fetchval(Q.keep_evidence)
                kept = evidence if keep else None
                evidence_enc = None
                if kept is not None:
                    evidence_enc = DataKeys.encrypt(
                        dek,
                        self.tenant_id,
                        subject_id,
                        _enc.encode(kept),
                        evidence_context(_EVIDENCE_CONTEXT, event_id),
                    )
                audit = await self.audit.prepare(
                    conn,
                    dek,
                    self.tenant_id,
                    subject_id,
                    event_id,
                    {"event": data, "network": kept},
                    subject.token,
                )
                leaf = PreferenceLeaf(
                    event_uuid=event_id,
                    occurred_at=occurred_at.astimezone(UTC),
                    log=audit.origin,
                    subject_token=audit.subject_token,
                    preferences=tuple(
                        PreferenceChoice(kind=i.kind, key=i.key, value=i.value) for i in data.items
                    ),
                    evidence_digest=audit.evidence.digest,
                )
                leaf_row = self.audit.row(
                    self.tenant_id,
                    audit.log_id,
                    leaf,
                    subject_id=subject_id,
                    evidence=audit.evidence,
                )
                row = await conn.fetchrow(
                    Q.insert_preference_event,
                    self.tenant_id,
                    subject_id,
                    occurred_at,
                    msgspec.to_builtins(data.items),
                    data.surface,
                    data.channel,
                    data.method,
                    data.agent_id,
                    data.property_id,
                    [i.kind for i in data.items],
                    [i.key for i in data.items],
                    [i.value for i in data.items],
                    event_id,
                    leaf_row.event_uuid,
                    leaf_row.log_id,
                    leaf_row.tenant_id,
                    leaf_row.leaf_bytes,
                    leaf_row.leaf_hash,
                    leaf_row.kind,
                    leaf_row.subject_id,
                    leaf_row.evidence,
                    evidence_enc,
                )
                if row is None:
                    raise RuntimeError("the event insert returned no row")
                return PreferenceRecorded(
                    event_id=row["id"],
                    subject_id=subject_id,
                    occurred_at=row["occurred_at"],
                    recorded_at=row["recorded_at"],
                )

            result, _ = await run_idempotent(
                conn,
                self.keyring,
                self.tenant_id,
                idempotency_key,
                b"preferences/" + _enc.encode(data),
                PreferenceRecorded,
                produce,
            )
            return result

    async def state(self, subject_id: UUID) -> SubjectPreferences:
        async with self.db.tenant_hot(self.tenant_id) as conn:
            survivor = await self.subjects.resolve(
                conn, self.tenant_id, SubjectRef(subject_id=subject_id), create=False
            )
            if survivor is None:
                raise NotFound("No such subject.")
            rows = await conn.fetch(Q.subject_preferences, survivor)
        return SubjectPreferences(
            subject_id=survivor,
            preferences=[msgspec.convert(dict(r), PreferenceState) for r in rows],
        )

    async def history(
        self, subject_id: UUID, cursor: str | None, limit: int
    ) -> PreferenceHistoryPage:
        check_limit(limit)
        before = decode_subject_cursor("preference", subject_id, cursor)
        async with self.db.tenant_hot(self.tenant_id) as conn:
            survivor = await self.subjects.resolve(
                conn, self.tenant_id, SubjectRef(subject_id=subject_id), create=False
            )
            if survivor is None:
                raise NotFound("No such subject.")
            members = await self.subjects.group(conn, survivor)
            rows = await conn.fetch(Q.preference_history, members, before, limit + 1)
            page, next_cursor = page_of(
                rows, limit, lambda r: encode_subject_cursor("preference", subject_id, r["seq"])
            )
            history = HistoryReader(conn, self.datakeys, self.tenant_id, _EVIDENCE_CONTEXT)
            items = [msgspec.convert(await history.fields(r), PreferenceEvent) for r in page]
        return PreferenceHistoryPage(items=items, next_cursor=next_cursor)
