"""Record preference events and read state and history (same rules as consents)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final
from uuid import UUID

import msgspec

from consent.audit.leaf import PreferenceChoice
from consent.audit.leaf import PreferenceRecorded as PreferenceLeaf
from consent.audit.outbox import AuditWriter
from consent.consents.evidence import NetworkEvidence
from consent.consents.history import subject_history
from consent.consents.service import proof_errors
from consent.consents.write import EventWriter
from consent.crypto.datakeys import DataKeys
from consent.crypto.keys import KeyRing
from consent.db.database import Database
from consent.db.sql import SqlFile
from consent.errors import FieldError, NotFound, ValidationFailed
from consent.idempotency import run_idempotent
from consent.locales import Localized
from consent.pagination import (
    MAX_LIMIT,
    check_limit,
    decode_key_cursor,
    encode_key_cursor,
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

__all__ = ["PreferenceService", "preference_errors", "validate_preferences"]

Q = SqlFile.beside(__file__)
_EVIDENCE_CONTEXT = b"preference-evidence"
_enc = msgspec.json.Encoder()
_INVALID_PREFERENCES: Final = Localized("invalid-preferences")
# A cursor of the current preferences holds the last (kind, key) of its page: "kind/key" (a key
# holds no "/", see PreferenceItem).
_SEP: Final = "/"
_KEY: Final = re.compile(r"[a-z][a-z0-9_.-]{0,63}")


def _decode_state_cursor(cursor: str | None) -> tuple[str, str] | None:
    """The (kind, key) after which a page of current preferences begins; 400 for a cursor
    that is not a `next_cursor` of that list."""
    text = decode_key_cursor(cursor)
    if text is None:
        return None
    kind, _, key = text.partition(_SEP)
    if kind not in ALLOWED_VALUES or not _KEY.fullmatch(key):
        raise ValidationFailed.field("cursor", Localized("cursor-not-ours"))
    return kind, key


def validate_preferences(data: PreferenceCreate, now: datetime) -> str | None:
    """Raises ValidationFailed with every problem found without the database; returns a
    built-in identifier's normalised value (None for a subject id or a tenant's own type), so
    that it is normalised once."""
    errors, normalized = preference_errors(data, now)
    _refuse(errors)
    return normalized


def _refuse(errors: list[FieldError]) -> None:
    if errors:
        raise ValidationFailed.of(errors, _INVALID_PREFERENCES)


def preference_errors(data: PreferenceCreate, now: datetime) -> tuple[list[FieldError], str | None]:
    """The problems of a preference event found without the database (its items, its reference
    to a subject, who recorded it and when), and a valid built-in identifier's normalised value
    (else None)."""
    errors: list[FieldError] = []
    seen: set[tuple[str, str]] = set()
    for i, item in enumerate(data.items):
        if (item.kind, item.key) in seen:
            errors.append(FieldError(f"items[{i}]", Localized("preference-twice")))
        seen.add((item.kind, item.key))
        if item.value not in ALLOWED_VALUES[item.kind]:
            allowed = ", ".join(sorted(ALLOWED_VALUES[item.kind]))
            errors.append(
                FieldError(f"items[{i}].value", Localized("value-one-of", allowed=allowed))
            )
        if item.kind == "channel" and item.key not in CHANNELS:
            errors.append(
                FieldError(
                    f"items[{i}].key", Localized("channel-one-of", channels=", ".join(CHANNELS))
                )
            )
        if item.kind == "frequency" and item.key not in (*CHANNELS, "default"):
            errors.append(FieldError(f"items[{i}].key", Localized("frequency-per-channel")))
    found, normalized = checked_reference(data.subject_id, data.identifier)
    errors += found
    errors += proof_errors(data.method, data.agent_id, data.occurred_at, now)
    return errors, normalized


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
        self.writer = EventWriter(
            tenant_id, self.subjects, self.datakeys, self.audit, _EVIDENCE_CONTEXT
        )

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
        problems, normalized = preference_errors(data, datetime.now(UTC))
        async with self.db.tenant_hot(self.tenant_id) as conn:
            if problems:  # refused: with what the tenant's catalogue finds, all at once
                _refuse(problems + await self.writer.refusal_errors(conn, data))

            async def produce() -> PreferenceRecorded:
                _refuse(await self.writer.property_errors(conn, data, origin))
                keep = evidence is not None and await conn.fetchval(Q.keep_evidence)
                event = await self.writer.prepare(
                    conn, data, evidence if keep else None, normalized=normalized
                )
                leaf = PreferenceLeaf(
                    event_uuid=event.event_id,
                    occurred_at=event.occurred_at.astimezone(UTC),
                    log=event.audit.origin,
                    subject_token=event.audit.subject_token,
                    preferences=tuple(
                        PreferenceChoice(kind=i.kind, key=i.key, value=i.value) for i in data.items
                    ),
                    evidence_digest=event.audit.evidence.digest,
                )
                leaf_row = self.writer.leaf_row(event, leaf)
                row = await conn.fetchrow(
                    Q.insert_preference_event,
                    self.tenant_id,
                    event.subject_id,
                    event.occurred_at,
                    msgspec.to_builtins(data.items),
                    data.surface,
                    data.channel,
                    data.method,
                    data.agent_id,
                    data.property_id,
                    [i.kind for i in data.items],
                    [i.key for i in data.items],
                    [i.value for i in data.items],
                    event.event_id,
                    leaf_row.event_uuid,
                    leaf_row.log_id,
                    leaf_row.tenant_id,
                    leaf_row.leaf_bytes,
                    leaf_row.leaf_hash,
                    leaf_row.kind,
                    leaf_row.subject_id,
                    leaf_row.evidence,
                    event.evidence_enc,
                )
                if row is None:
                    raise RuntimeError("the event insert returned no row")
                return PreferenceRecorded(
                    event_id=row["id"],
                    subject_id=event.subject_id,
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

    async def state(
        self, subject_id: UUID, cursor: str | None = None, limit: int = MAX_LIMIT
    ) -> SubjectPreferences:
        """One page of the current preferences, by kind, then key, from `cursor` (a
        `next_cursor` of this list) on."""
        check_limit(limit)
        after = _decode_state_cursor(cursor)
        async with self.db.tenant_hot(self.tenant_id) as conn:
            survivor = await self.subjects.resolve(
                conn, self.tenant_id, SubjectRef(subject_id=subject_id), create=False
            )
            if survivor is None:
                raise NotFound(Localized("no-such-subject"))
            rows = await conn.fetch(
                Q.subject_preferences,
                survivor,
                after[0] if after else None,
                after[1] if after else None,
                limit + 1,
            )
        page, next_cursor = page_of(
            rows, limit, lambda r: encode_key_cursor(f"{r['kind']}{_SEP}{r['key']}")
        )
        return SubjectPreferences(
            subject_id=survivor,
            preferences=[msgspec.convert(dict(r), PreferenceState) for r in page],
            next_cursor=next_cursor,
        )

    async def history(
        self, subject_id: UUID, cursor: str | None, limit: int
    ) -> PreferenceHistoryPage:
        fields, next_cursor = await subject_history(
            self.db,
            self.tenant_id,
            self.subjects,
            self.datakeys,
            name="preference",
            query=Q.preference_history,
            kind=_EVIDENCE_CONTEXT,
            subject_id=subject_id,
            cursor=cursor,
            limit=limit,
        )
        items = [msgspec.convert(f, PreferenceEvent) for f in fields]
        return PreferenceHistoryPage(items=items, next_cursor=next_cursor)
