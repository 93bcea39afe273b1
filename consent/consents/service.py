"""Record consent events and read state and history.

A write is one transaction: resolve (or create) the subject, check the purposes and the notice
version shown, append the event, update the state projection and append the audit leaf in the
same statement.

The write context (the purposes named, the notice version shown, the tenant's evidence setting)
of `ConsentService.record` is cached per process for `WRITE_CONTEXT_TTL` seconds, positive
results only: every purpose known and the notice version (if any) published. Those facts never
change once true (purposes are not deleted, published versions are immutable), so a cached
answer cannot accept what the database would refuse; an unknown purpose or an unpublished or
missing version is looked up again on every write and refused precisely. The one mutable input,
the tenant's `store_network_evidence` setting, takes effect within the TTL.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

import msgspec

from consent.audit.leaf import ConsentRecorded as ConsentLeaf
from consent.audit.leaf import PurposeChoice
from consent.audit.outbox import AuditWriter
from consent.consents.evidence import NetworkEvidence
from consent.consents.history import subject_history
from consent.consents.schemas import (
    ConsentCreate,
    ConsentEvent,
    ConsentHistoryPage,
    ConsentRecorded,
    ConsentState,
    SubjectConsents,
)
from consent.consents.write import EventWriter
from consent.crypto.datakeys import DataKeys
from consent.crypto.keys import KeyRing
from consent.db.database import Conn, Database
from consent.db.sql import SqlFile
from consent.errors import FieldError, NotFound, ProblemError, ValidationFailed
from consent.idempotency import run_idempotent
from consent.locales import Localized, plain
from consent.settings_defaults import DEFAULT_AUDIT_ORIGIN
from consent.subjects.resolver import SubjectResolver, checked_reference
from consent.subjects.schemas import IdentifierIn, SubjectRef
from consent.timestamps import CLOCK_SKEW, EARLIEST, past_time_errors

__all__ = [
    "WRITE_CONTEXT_TTL",
    "ConsentService",
    "context_errors",
    "proof_errors",
    "shape_errors",
    "validate_shape",
    "write_contexts",
]

Q = SqlFile.beside(__file__)
_enc = msgspec.json.Encoder()
_EVIDENCE_CONTEXT = b"consent-evidence"
_INVALID_CONSENT: Final = Localized("invalid-consent")
WRITE_CONTEXT_TTL: Final = 2.0
"""Seconds a positive write context is reused (see the module docstring)."""

_ContextKey = tuple[UUID, tuple[str, ...], UUID | None]


class _WriteContexts:
    """Positive write contexts per (tenant, purposes, notice version), for `ttl` seconds."""

    def __init__(self, ttl: float = WRITE_CONTEXT_TTL, max_size: int = 10_000) -> None:
        self.ttl = ttl
        self.max_size = max_size
        self._entries: dict[_ContextKey, tuple[float, dict[str, Any]]] = {}

    def get(self, key: _ContextKey) -> dict[str, Any] | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key: _ContextKey, ctx: dict[str, Any]) -> None:
        if len(self._entries) >= self.max_size:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self.ttl, ctx)

    def clear(self) -> None:
        self._entries.clear()


write_contexts = _WriteContexts()


def _is_positive(ctx: dict[str, Any], purposes: list[str], version_id: UUID | None) -> bool:
    """Every purpose known and the notice version, when one is named, found and published."""
    if not ctx or set(ctx["known_purposes"]) != set(purposes):
        return False
    return version_id is None or (ctx["version_id"] is not None and bool(ctx["published"]))


def proof_errors(
    method: str, agent_id: str | None, occurred_at: datetime | None, now: datetime
) -> list[FieldError]:
    """What is wrong with who recorded a consent or preference event, and when (pure)."""
    errors: list[FieldError] = []
    if method == "agent" and agent_id is None:
        errors.append(FieldError("agent_id", Localized("agent-required")))
    return errors + past_time_errors("occurred_at", occurred_at, now)


def shape_errors(data: ConsentCreate, now: datetime) -> list[FieldError]:
    """Problems that need no database: the event's shape, and a built-in identifier type's
    value (a tenant's own types are checked against its catalogue)."""
    return _checked_shape(data, now)[0]


def _checked_shape(data: ConsentCreate, now: datetime) -> tuple[list[FieldError], str | None]:
    """`shape_errors`, and a valid built-in identifier's normalised value (`checked_reference`)."""
    errors: list[FieldError] = []
    purposes = [c.purpose for c in data.choices]
    if len(set(purposes)) != len(purposes):
        errors.append(FieldError("choices", Localized("purpose-repeated")))
    found, normalized = checked_reference(data.subject_id, data.identifier)
    errors += found
    errors += proof_errors(data.method, data.agent_id, data.occurred_at, now)
    if data.notice_version_id is None and data.method not in {"gpc", "import"}:
        errors.append(FieldError("notice_version_id", Localized("notice-version-required")))
    if data.method == "gpc":  # an opt-out signal, recorded without a notice: never a grant
        errors += [
            FieldError(f"choices[{i}].choice", Localized("gpc-cannot-grant"))
            for i, choice in enumerate(data.choices)
            if choice.choice == "granted"
        ]
    if data.notice_version_id is None and data.notice_hash is not None:
        errors.append(FieldError("notice_hash", Localized("notice-hash-needs-version")))
    return errors, normalized


def validate_shape(data: ConsentCreate, now: datetime) -> None:
    """`shape_errors`, raised as one ValidationFailed listing every problem, in English (for
    the bulk import, whose report is English)."""
    try:
        _refuse(shape_errors(data, now))
    except ProblemError as exc:
        _in_english(exc)
        raise


def _refuse(errors: list[FieldError]) -> None:
    if errors:
        raise ValidationFailed.of(errors, _INVALID_CONSENT)


def _in_english(exc: ProblemError) -> None:
    """Makes `exc`'s texts plain English `str`s: a `Localized` is for a problem response,
    and msgspec, which encodes the bulk import's report, takes no subclass of `str`."""
    exc.detail = None if exc.detail is None else plain(exc.detail)
    if exc.errors is not None:
        exc.errors = [FieldError(e.field, plain(e.message)) for e in exc.errors]


def context_errors(data: ConsentCreate, ctx: dict[str, Any]) -> list[FieldError]:
    """Problems the tenant's catalogue finds: purposes, the notice version and its texts."""
    errors: list[FieldError] = []
    known = set(ctx["known_purposes"])
    for i, choice in enumerate(data.choices):
        if choice.purpose not in known:
            errors.append(
                FieldError(
                    f"choices[{i}].purpose", Localized("unknown-purpose", purpose=choice.purpose)
                )
            )
    if data.notice_version_id is not None:
        if ctx["version_id"] is None:
            errors.append(FieldError("notice_version_id", Localized("no-such-notice-version")))
        elif not ctx["published"]:
            errors.append(FieldError("notice_version_id", Localized("notice-version-unpublished")))
        else:
            covered = set(ctx["notice_purposes"])
            for i, choice in enumerate(data.choices):
                if choice.purpose in known and choice.purpose not in covered:
                    errors.append(
                        FieldError(f"choices[{i}].purpose", Localized("purpose-not-asked"))
                    )
            if data.notice_hash is not None and data.notice_hash != ctx["content_hash"]:
                errors.append(FieldError("notice_hash", Localized("notice-hash-mismatch")))
            if data.language is not None and data.language not in ctx["texts"]:
                errors.append(FieldError("language", Localized("notice-language-missing")))
            errors += _before_shown(data.occurred_at, ctx["shown_since"])
    return errors


def _before_shown(occurred_at: datetime | None, shown_since: datetime) -> list[FieldError]:
    """A choice made before its notice version was first shown (its `shown_since`, else its
    publication) proves nothing about what the person saw; a visitor's clock may be behind."""
    if occurred_at is None or occurred_at.tzinfo is None or occurred_at < EARLIEST:
        return []  # not sent, or refused as a time already (shape_errors)
    if occurred_at >= shown_since - CLOCK_SKEW:
        return []
    since = shown_since.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return [FieldError("occurred_at", Localized("before-notice-shown", since=since))]


class ConsentService:
    def __init__(
        self,
        db: Database,
        keyring: KeyRing,
        tenant_id: UUID,
        audit: AuditWriter | None = None,
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
        data: ConsentCreate,
        *,
        idempotency_key: str | None = None,
        evidence: NetworkEvidence | None = None,
        origin: str | None = None,
    ) -> ConsentRecorded:
        """`origin`: the request's `Origin` header, checked against the property's origins."""
        problems, normalized = _checked_shape(data, datetime.now(UTC))
        async with self.db.tenant_hot(self.tenant_id) as conn:
            if problems:  # refused: with whatever else the catalogue finds, all at once
                purposes = [c.purpose for c in data.choices]
                ctx = await self._write_context(conn, purposes, data.notice_version_id, cached=True)
                await self._refuse_problems(conn, data, ctx, problems)

            async def produce() -> ConsentRecorded:
                return await self._record_in(
                    conn,
                    data,
                    evidence,
                    origin=origin,
                    cached_context=True,
                    normalized_identifier=normalized,
                )

            result, _ = await run_idempotent(
                conn,
                self.keyring,
                self.tenant_id,
                idempotency_key,
                _enc.encode(data),
                ConsentRecorded,
                produce,
            )
            return result

    async def _refuse_problems(
        self, conn: Conn, data: ConsentCreate, ctx: dict[str, Any], found: list[FieldError]
    ) -> None:
        """Refuse `found` and what the catalogue finds, with the problems of an identifier of
        the tenant's own type (its type, its value) and of a `property_id` naming no property,
        all at once; nothing when there are none (`_record_in` then checks the property)."""
        errors = found + context_errors(data, ctx)
        if errors:
            _refuse(errors + await self.writer.refusal_errors(conn, data))

    async def _write_context(
        self, conn: Conn, purposes: list[str], version_id: UUID | None, cached: bool
    ) -> dict[str, Any]:
        key = (self.tenant_id, tuple(sorted(purposes)), version_id)
        if cached and (ctx := write_contexts.get(key)) is not None:
            return ctx
        row = await conn.fetchrow(Q.write_context, purposes, version_id)
        ctx = dict(row) if row is not None else {}
        if cached and _is_positive(ctx, purposes, version_id):
            write_contexts.put(key, ctx)
        return ctx

    async def record_in(
        self, conn: Conn, data: ConsentCreate, evidence: NetworkEvidence | None
    ) -> ConsentRecorded:
        """Record inside the caller's transaction, for bulk import: its problems' texts are in
        English, as its report is (`_in_english`)."""
        try:
            return await self._record_in(conn, data, evidence)
        except ProblemError as exc:
            _in_english(exc)
            raise

    async def _record_in(
        self,
        conn: Conn,
        data: ConsentCreate,
        evidence: NetworkEvidence | None,
        *,
        origin: str | None = None,
        cached_context: bool = False,
        normalized_identifier: str | None = None,
    ) -> ConsentRecorded:
        """Record inside the caller's transaction (`record`, and `record_in` for bulk import).

        `cached_context`: use and fill the write-context cache (module docstring). Only for a
        transaction that has not changed the catalog, so that what it caches is committed.
        `normalized_identifier`: the built-in identifier's value as the shape check normalised
        it, so that it is not normalised again.
        """
        purposes = [c.purpose for c in data.choices]
        ctx = await self._write_context(conn, purposes, data.notice_version_id, cached_context)
        await self._refuse_problems(conn, data, ctx, [])
        _refuse(await self.writer.property_errors(conn, data, origin))
        keep = evidence is not None and bool(ctx.get("keep_evidence"))
        event = await self.writer.prepare(
            conn, data, evidence if keep else None, normalized=normalized_identifier
        )
        notice_hash = bytes.fromhex(ctx["content_hash"]) if ctx.get("content_hash") else None
        leaf = ConsentLeaf(
            event_uuid=event.event_id,
            occurred_at=event.occurred_at.astimezone(UTC),
            log=event.audit.origin,
            subject_token=event.audit.subject_token,
            choices=tuple(PurposeChoice(purpose=c.purpose, choice=c.choice) for c in data.choices),
            notice_version_id=str(data.notice_version_id) if data.notice_version_id else None,
            notice_hash=ctx.get("content_hash"),
            evidence_digest=event.audit.evidence.digest,
        )
        leaf_row = self.writer.leaf_row(event, leaf)
        inserted = await conn.fetchrow(
            Q.insert_consent_event,
            self.tenant_id,
            event.subject_id,
            event.occurred_at,
            msgspec.to_builtins(data.choices),
            data.notice_version_id,
            notice_hash,
            data.language,
            data.surface,
            data.channel,
            data.method,
            data.agent_id,
            data.property_id,
            event.evidence_enc,
            ctx.get("material_version"),
            purposes,
            [c.choice for c in data.choices],
            event.event_id,
            leaf_row.event_uuid,
            leaf_row.log_id,
            leaf_row.tenant_id,
            leaf_row.leaf_bytes,
            leaf_row.leaf_hash,
            leaf_row.kind,
            leaf_row.subject_id,
            leaf_row.evidence,
        )
        if inserted is None:
            raise RuntimeError("the event insert returned no row")
        return ConsentRecorded(
            event_id=inserted["id"],
            subject_id=event.subject_id,
            occurred_at=inserted["occurred_at"],
            recorded_at=inserted["recorded_at"],
            notice_hash=ctx.get("content_hash"),
        )

    async def state(self, ref: SubjectRef) -> SubjectConsents:
        """The current state of the subject `ref` names: one round trip (`subject_state`, a
        function that reads under row-level security outside a transaction)."""
        key = await self.subjects.lookup_key_alone(self.db, self.tenant_id, ref)
        async with self.db.pool.acquire() as conn:
            rows = await conn.fetch(
                Q.subject_state, self.tenant_id, key.subject_id, key.id_type, key.digest
            )
        if not rows:
            raise NotFound(
                Localized("no-such-subject" if ref.subject_id else "no-subject-with-identifier")
            )
        return SubjectConsents(
            subject_id=rows[0]["subject_id"],
            consents=[
                ConsentState(
                    purpose=r["purpose"],
                    choice=r["choice"],
                    effective=r["choice"] == "granted" and not r["expired"] and not r["stale"],
                    expired=r["expired"],
                    stale=r["stale"],
                    occurred_at=r["occurred_at"],
                    event_id=r["event_id"],
                    notice_version_id=r["notice_version_id"],
                )
                for r in rows
                if r["purpose"] is not None
            ],
        )

    async def lookup(self, identifier: IdentifierIn) -> SubjectConsents:
        return await self.state(SubjectRef(identifier=identifier))

    async def history(self, subject_id: UUID, cursor: str | None, limit: int) -> ConsentHistoryPage:
        fields, next_cursor = await subject_history(
            self.db,
            self.tenant_id,
            self.subjects,
            self.datakeys,
            name="consent",
            query=Q.subject_history,
            kind=_EVIDENCE_CONTEXT,
            subject_id=subject_id,
            cursor=cursor,
            limit=limit,
        )
        items = [msgspec.convert(f, ConsentEvent) for f in fields]
        return ConsentHistoryPage(items=items, next_cursor=next_cursor)
