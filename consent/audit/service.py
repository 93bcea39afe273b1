"""Read side of the audit log: checkpoints, proofs, entries, a subject's activity, exports."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final
from uuid import UUID

import asyncpg
import msgspec

from consent.audit import merkle
from consent.audit.leaf import (
    AudienceUsed,
    ConsentRecorded,
    DecisionMade,
    PreferenceRecorded,
    SubjectExported,
    decode_leaf,
)
from consent.audit.nodes import with_nodes
from consent.audit.proof_format import TlogProof, format_consistency_proof, format_tlog_proof
from consent.audit.schemas import (
    ActivityItem,
    ActivityPage,
    AuditEntry,
    AuditEventInfo,
    EntriesPage,
    ExportEntry,
    ExportFile,
)
from consent.db.database import Conn, Database
from consent.db.sql import SqlFile
from consent.errors import NotFound, ProblemError, ValidationFailed
from consent.ids import uuid7_floor
from consent.locales import Localized
from consent.pagination import (
    check_limit,
    decode_subject_cursor,
    encode_subject_cursor,
    page_of,
)
from consent.subjects.resolver import SubjectResolver
from consent.subjects.schemas import SubjectRef

__all__ = ["MAX_EXPORT", "AuditPending", "AuditReader"]

Q = SqlFile.beside(__file__, "queries.sql")
MAX_EXPORT: Final = 10_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)


class AuditPending(ProblemError):
    status, slug = 409, "audit-pending"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class AuditReader:
    def __init__(self, db: Database, tenant_id: UUID, vkey: str) -> None:
        self.db = db
        self.tenant_id = tenant_id
        self.vkey = vkey

    async def _log(self, conn: Conn) -> tuple[int, str, int]:
        row = await conn.fetchrow(Q.tenant_log, self.tenant_id)
        if row is None:
            raise NotFound(Localized("no-audit-log"))
        return int(row["log_id"]), str(row["origin"]), int(row["tree_size"])

    async def _note(self, conn: Conn, log_id: int, size: int | None) -> tuple[int, str]:
        if size is None:
            row = await conn.fetchrow(Q.last_checkpoint, log_id)
        else:
            row = await conn.fetchrow(Q.checkpoint_at, log_id, size)
        if row is None:
            raise NotFound(
                Localized("no-checkpoint-yet" if size is None else "no-checkpoint-of-size")
            )
        return int(row["tree_size"]), str(row["note"])

    async def checkpoint(self, size: int | None = None) -> str:
        async with self.db.tenant(self.tenant_id) as conn:
            log_id, _, _ = await self._log(conn)
            return (await self._note(conn, log_id, size))[1]

    async def event(self, event_uuid: UUID) -> AuditEventInfo:
        async with self.db.tenant(self.tenant_id) as conn:
            row = await conn.fetchrow(Q.event_by_uuid, event_uuid)
        if row is None:
            raise NotFound(Localized("no-audit-event"))
        return AuditEventInfo(
            event_uuid=event_uuid,
            kind=row["kind"],
            leaf_index=row["leaf_index"],
            log=row["origin"],
            leaf=_b64(bytes(row["leaf_bytes"])),
        )

    async def inclusion_proof(self, event_uuid: UUID, size: int | None = None) -> str:
        """c2sp.org/tlog-proof@v1 text against the latest (or the given) signed checkpoint."""
        async with self.db.tenant(self.tenant_id) as conn:
            row = await conn.fetchrow(Q.event_by_uuid, event_uuid)
            if row is None:
                raise NotFound(Localized("no-audit-event"))
            if row["leaf_index"] is None:
                raise AuditPending(Localized("event-not-integrated"))
            index, log_id = int(row["leaf_index"]), int(row["log_id"])
            tree_size, note = await self._note(conn, log_id, size)
            if index >= tree_size and size is not None:
                # Retrying cannot help: that older tree will never hold the event.
                raise ValidationFailed.field("size", Localized("event-after-checkpoint"))
            if index >= tree_size:
                raise AuditPending(Localized("event-newer-than-checkpoint"))
            proof = await with_nodes(
                conn, log_id, lambda get: merkle.inclusion_proof(get, index, tree_size)
            )
        return format_tlog_proof(TlogProof(index=index, proof=tuple(proof), checkpoint=note))

    async def consistency_proof(self, first: int, second: int) -> str:
        async with self.db.tenant(self.tenant_id) as conn:
            log_id, _, size = await self._log(conn)
            if second > size:  # name the parameter that is wrong
                raise ValidationFailed.field("to", Localized("at-most-tree-size", size=size))
            if not 0 < first <= second:
                raise ValidationFailed.field("from", Localized("from-range"))
            proof = await with_nodes(
                conn, log_id, lambda get: merkle.consistency_proof(get, first, second)
            )
        return format_consistency_proof(proof)

    async def entries(self, start: int, limit: int) -> EntriesPage:
        check_limit(limit)
        async with self.db.tenant(self.tenant_id) as conn:
            log_id, _, size = await self._log(conn)
            rows = await conn.fetch(Q.entries, log_id, start, min(start + limit, size))
        items = [
            AuditEntry(leaf_index=r["leaf_index"], leaf=_b64(bytes(r["leaf_bytes"]))) for r in rows
        ]
        end = start + len(items)
        return EntriesPage(items=items, next_start=end if end < size and items else None)

    async def activity(
        self, resolver: SubjectResolver, subject_id: UUID, cursor: str | None, limit: int
    ) -> ActivityPage:
        check_limit(limit)
        before = decode_subject_cursor("activity", subject_id, cursor)
        async with self.db.tenant(self.tenant_id) as conn:
            survivor = await resolver.resolve(
                conn, self.tenant_id, SubjectRef(subject_id=subject_id), create=False
            )
            assert survivor is not None  # noqa: S101 - resolve raises NotFound otherwise
            members = await resolver.group(conn, survivor)
            rows = await conn.fetch(Q.subject_activity, self.tenant_id, members, before, limit + 1)
        page, next_cursor = page_of(
            rows, limit, lambda r: encode_subject_cursor("activity", subject_id, r["event_id"])
        )
        return ActivityPage(items=[_activity_item(r) for r in page], next_cursor=next_cursor)

    async def export(
        self,
        resolver: SubjectResolver,
        *,
        subject_id: UUID | None,
        since: datetime | None,
        until: datetime | None,
        start: int = 0,
        limit: int = MAX_EXPORT,
    ) -> ExportFile:
        """The matching leaves from index `start` on, at most `limit` (a file too large for one
        answer comes in several, each verifiable alone: follow `next_start`). A period holds
        the leaves whose event id's time is in it (`period_bound`), not those whose
        `recorded_at` is: no hash covers that column."""
        if not 1 <= limit <= MAX_EXPORT:
            raise ValidationFailed.field("limit", Localized("limit-range", max=MAX_EXPORT))
        # A subject's leaves are not filtered by period: asking for both must not quietly
        # answer only one of them.
        if subject_id is not None and (since is not None or until is not None):
            raise ValidationFailed.field("since", Localized("subject-or-period-not-both"))
        if since is not None and until is not None and since >= until:
            raise ValidationFailed.field("until", Localized("until-after-since"))
        async with self.db.tenant(self.tenant_id) as conn:
            log_id, _, _ = await self._log(conn)
            tree_size, note = await self._note(conn, log_id, None)
            if subject_id is not None:
                survivor = await resolver.resolve(
                    conn, self.tenant_id, SubjectRef(subject_id=subject_id), create=False
                )
                assert survivor is not None  # noqa: S101
                members = await resolver.group(conn, survivor)
                rows = await conn.fetch(
                    Q.export_subject, log_id, members, tree_size, limit + 1, start
                )
            elif since is not None and until is not None:
                rows = await conn.fetch(
                    Q.export_period,
                    log_id,
                    tree_size,
                    period_bound(since),
                    period_bound(until),
                    limit + 1,
                    start,
                )
            else:
                raise ValidationFailed.field("subject_id", Localized("subject-or-period"))
            entries: list[ExportEntry] = []
            for r in rows[:limit]:
                index = int(r["leaf_index"])
                proof = await with_nodes(conn, log_id, _inclusion(index, tree_size))
                entries.append(
                    ExportEntry(
                        leaf_index=index,
                        leaf=_b64(bytes(r["leaf_bytes"])),
                        inclusion_proof=[_b64(h) for h in proof],
                    )
                )
        return ExportFile(
            vkey=self.vkey,
            checkpoint=note,
            tree_size=tree_size,
            entries=entries,
            truncated=len(rows) > limit,
            next_start=entries[-1].leaf_index + 1 if len(rows) > limit else None,
        )


def period_bound(at: datetime) -> UUID:
    """The lowest UUID v7 of the first whole millisecond at or after `at` (without a time zone:
    local time, as the database took such a bound before): a period export holds the leaves whose
    event id's millisecond is at or after `since` and before `until`, so that whoever holds the
    leaves can tell from their bytes alone which of them a period holds."""
    ms = -((_EPOCH - at.astimezone(UTC)) // _MS)  # rounded up to a whole millisecond
    return uuid7_floor(ms)  # no id is older than 1970; 9999-12-31 fits 48 bits


def _inclusion(index: int, size: int) -> Callable[[merkle.NodeGetter], list[bytes]]:
    return lambda get: merkle.inclusion_proof(get, index, size)


def _activity_item(row: asyncpg.Record) -> ActivityItem:
    leaf_bytes = bytes(row["leaf_bytes"])
    leaf = decode_leaf(leaf_bytes)
    common = {
        "event_uuid": row["event_uuid"],
        "kind": row["kind"],
        "leaf_index": row["leaf_index"],
        "occurred_at": leaf.occurred_at,
        "recorded_at": row["recorded_at"],
        "leaf": _b64(leaf_bytes),
    }
    if isinstance(leaf, ConsentRecorded):
        return ActivityItem(
            **common,
            choices=[msgspec.to_builtins(c) for c in leaf.choices],
            surface=row["consent_surface"],
            channel=row["consent_channel"],
            method=row["consent_method"],
        )
    if isinstance(leaf, PreferenceRecorded):
        return ActivityItem(
            **common,
            choices=[msgspec.to_builtins(c) for c in leaf.preferences],
            surface=row["preference_surface"],
            channel=row["preference_channel"],
            method=row["preference_method"],
        )
    if isinstance(leaf, DecisionMade | AudienceUsed):
        return ActivityItem(
            **common,
            requester=leaf.requester,
            action=leaf.action,
            allow=leaf.allow,
            reasons=list(leaf.reasons),
            policy_revision=leaf.policy_revision,
        )
    if isinstance(leaf, SubjectExported):  # a disclosure of the data: who asked for it
        return ActivityItem(**common, requester=leaf.actor_ref)
    return ActivityItem(**common)
