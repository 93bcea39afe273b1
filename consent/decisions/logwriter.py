"""The decision log, written by group commit: durable before any answer is sent.

Requests hand their records to a `GroupCommitWriter` and wait. One writer task collects what is
pending for up to `linger` seconds (or until `max_rows` rows are waiting), writes it all in one
transaction (`write_batch`: one multi-row insert per table), or, when the group holds decisions
only, in one statement with their audit leaves (`write_decisions`), and then wakes every request
of the batch; a request whose batch failed gets `DecisionLogUnavailable` (a 503), never an
answer. While a batch commits the next one gathers, so under load batches grow instead of
queueing commits.

A decision about an identifier the ledger does not know keeps the identifier's keyed HMAC, so
that it can be attributed once the identifier is a subject's; erasure forgets those HMACs. One
read before an erasure and inserted after it (the identifier linked and erased in between) is
logged without its HMAC: the insert is fenced by the tenant's erasure epoch (`write_decisions`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from consent.audit.decision_leaves import (
    append_audience_leaves,
    decision_leaves,
)
from consent.audit.outbox import AuditWriter
from consent.db.database import Conn, Database
from consent.db.grouped import Grouped
from consent.db.sql import SqlFile
from consent.decisions.engine import DecisionInput
from consent.errors import ServiceUnavailable

__all__ = [
    "AudienceMemberRecord",
    "AudienceRunRecord",
    "AudienceShapeRecord",
    "DecisionLogUnavailable",
    "DecisionRecord",
    "GroupCommitWriter",
    "LogBatch",
    "decision_rows",
    "write_batch",
]

Q = SqlFile.beside(__file__)
_rows = msgspec.json.Encoder()


class DecisionLogUnavailable(ServiceUnavailable):
    """The decision could not be logged, so it is not given (fail closed; not a denial)."""

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": "1"})


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One row of decision_log."""

    id: UUID
    tenant_id: UUID
    decided_at: datetime
    subject_id: UUID | None
    id_type: str | None
    lookup_hmac: bytes | None
    requester: str
    api_key_id: str
    request_id: str | None
    kind: str
    batch_id: UUID | None
    action: str
    allow: bool
    reasons: tuple[str, ...]
    purposes: dict[str, str]
    policy_revision: str
    input: DecisionInput
    # The subject's audit token as the state read found it (None: not read, or none yet), for
    # its audit leaf: not a column, not sent with the rows (decision_rows).
    subject_token: bytes | None = None
    # The tenant's erasure epoch as the state read found it (not a column): `lookup_hmac` is
    # stored only if no erasure of the tenant committed since (insert_decisions; None: never).
    erasure_epoch: int | None = None


@dataclass(frozen=True, slots=True)
class AudienceRunRecord:
    id: UUID
    tenant_id: UUID
    started_at: datetime
    now_ns: int
    requester: str
    api_key_id: str
    request_id: str | None
    action: str
    context: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AudienceShapeRecord:
    run_id: UUID
    shape: int
    tenant_id: UUID
    policy_revision: str
    allow: bool
    reasons: tuple[str, ...]
    purposes: dict[str, str]
    input: DecisionInput


@dataclass(slots=True)
class AudienceMemberRecord:
    run_id: UUID
    chunk: int
    shape: int
    tenant_id: UUID
    members: int
    subject_ids: list[UUID]
    purpose_keys: list[str]
    purpose_material: list[int | None]
    recorded_at_ns: list[int | None]
    consent_material: list[int | None]
    # The audit leaf of the row (`audience.used`, written with it when it lists subjects).
    event_uuid: UUID
    decided_at: datetime
    requester: str
    action: str
    allow: bool
    reasons: tuple[str, ...]
    policy_revision: str
    shape_input: DecisionInput


@dataclass(slots=True)
class LogBatch:
    """Everything one group commit writes (also what one request submits)."""

    decisions: list[DecisionRecord] = field(default_factory=list)
    audience_runs: list[AudienceRunRecord] = field(default_factory=list)
    audience_shapes: list[AudienceShapeRecord] = field(default_factory=list)
    audience_members: list[AudienceMemberRecord] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return (
            len(self.decisions)
            + len(self.audience_runs)
            + len(self.audience_shapes)
            + sum(len(m.subject_ids) or 1 for m in self.audience_members)
        )

    def extend(self, other: LogBatch) -> None:
        self.decisions.extend(other.decisions)
        self.audience_runs.extend(other.audience_runs)
        self.audience_shapes.extend(other.audience_shapes)
        self.audience_members.extend(other.audience_members)


async def write_batch(conn: Conn, batch: LogBatch, audit: AuditWriter | None = None) -> None:
    """The body of one group-commit transaction (the caller opened it): every record of the
    batch, one statement per table, and (with `audit`) one audit leaf per decision about a known
    subject, so that no decision is durable without its leaf."""
    if batch.audience_runs:
        await conn.executemany(
            Q.insert_audience_run,
            [
                (
                    r.id,
                    r.tenant_id,
                    r.started_at,
                    r.now_ns,
                    r.requester,
                    r.api_key_id,
                    r.request_id,
                    r.action,
                    r.context,
                )
                for r in batch.audience_runs
            ],
        )
    if batch.decisions:
        await write_decisions(conn, batch.decisions, audit)
    if batch.audience_shapes:
        await conn.executemany(
            Q.insert_audience_shape,
            [
                (
                    s.run_id,
                    s.shape,
                    s.tenant_id,
                    s.policy_revision,
                    s.allow,
                    list(s.reasons),
                    s.purposes,
                    s.input,
                )
                for s in batch.audience_shapes
            ],
        )
    if batch.audience_members:
        await conn.executemany(
            Q.insert_audience_member,
            [
                (
                    m.run_id,
                    m.chunk,
                    m.shape,
                    m.tenant_id,
                    m.members,
                    m.subject_ids,
                    m.purpose_keys,
                    m.purpose_material,
                    m.recorded_at_ns,
                    m.consent_material,
                    m.event_uuid if m.subject_ids and audit is not None else None,
                )
                for m in batch.audience_members
            ],
        )
        if audit is not None:
            await append_audience_leaves(conn, audit, batch.audience_members)


class _DecisionRow(msgspec.Struct):
    """The columns of a DecisionRecord that insert_decisions stores, and the erasure epoch it
    checks (not `subject_token`, which only its audit leaf uses). `Any`: the record's values
    pass through as they are."""

    id: Any
    tenant_id: Any
    decided_at: Any
    subject_id: Any
    id_type: Any
    lookup_hmac: Any
    requester: Any
    api_key_id: Any
    request_id: Any
    kind: Any
    batch_id: Any
    action: Any
    allow: Any
    reasons: Any
    purposes: Any
    policy_revision: Any
    input: Any
    erasure_epoch: Any


def decision_rows(d: Sequence[DecisionRecord]) -> str:
    """The JSON array of the rows insert_decisions reads ($1)."""
    rows = msgspec.convert(d, list[_DecisionRow], from_attributes=True)
    return _rows.encode(rows).decode()


async def write_decisions(
    conn: Conn, d: Sequence[DecisionRecord], audit: AuditWriter | None = None
) -> None:
    """The decisions and (with `audit`) their leaves: the subjects' tokens, then one statement
    (atomic on its own: outside a transaction it commits, durably, by itself). The rows go as
    two JSON documents, one msgspec call each: per-element array parameters (23 arrays) cost
    the worker ~12 % of its time at saturation, more than PostgreSQL's parsing of the JSON.

    A decision that carries an identifier HMAC keeps it only if no erasure of its tenant
    committed since its state read (the statement takes those tenants' erasure locks, shared,
    and compares their epochs: migrations/0028_erasure_fences_decision_lookups.sql)."""
    leaves = await decision_leaves(conn, audit, d) if audit is not None else []
    fenced = list({r.tenant_id for r in d if r.lookup_hmac is not None})
    await conn.execute(Q.insert_decisions, decision_rows(d), _rows.encode(leaves).decode(), fenced)


class GroupCommitWriter(Grouped[LogBatch, None]):
    """One writer task; `write()` returns once the records are committed. Up to
    `concurrent_commits` batches commit at once: while one waits for its WAL flush the next is
    written (PostgreSQL flushes concurrent commits together)."""

    def __init__(
        self,
        db: Database,
        *,
        name: str = "decisions",
        linger: float = 0.001,
        max_rows: int = 20_000,
        timeout: float = 10.0,
        concurrent_commits: int = 2,
        audit: AuditWriter | None = None,
    ) -> None:
        super().__init__(
            db,
            name=f"decision_log_{name}",
            concurrent=concurrent_commits,
            timeout=timeout,
            linger=linger,
            max_weight=max_rows,
        )
        self.audit = audit
        self.rows = 0

    @property
    def batches(self) -> int:
        """Batches committed."""
        return self.groups

    async def write(self, records: LogBatch) -> None:
        """Wait until `records` are durable; raises DecisionLogUnavailable otherwise."""
        try:
            await self.submit(records)
        except TimeoutError:
            raise DecisionLogUnavailable("The decision log did not commit in time.") from None

    async def process(
        self, conn: Conn, group: Sequence[tuple[LogBatch, asyncio.Future[None]]]
    ) -> None:
        batch = LogBatch()
        for records, _ in group:
            batch.extend(records)
        if batch.decisions and batch.rows == len(batch.decisions):
            # Decisions only (single or batch calls): no transaction needed, the statement that
            # logs them with their leaves is atomic (two round trips instead of five: begin,
            # tokens, insert, leaves, commit).
            await write_decisions(conn, batch.decisions, self.audit)
        else:
            async with conn.transaction():
                await write_batch(conn, batch, self.audit)
        self.rows += batch.rows
        for _, future in group:
            if not future.done():
                future.set_result(None)

    def weight(self, item: LogBatch) -> int:
        return item.rows

    def failure(self, exc: Exception) -> Exception:  # noqa: ARG002 - the cause is chained
        return DecisionLogUnavailable("The decision could not be logged; retry.")

    def closed(self) -> Exception:
        return DecisionLogUnavailable("The decision log is not accepting writes.")
