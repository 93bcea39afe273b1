"""Decisions become leaves of the audit log, in the decision log's group-commit transaction.

Every decision about a known subject is a use of that subject's data: a `decision.made` leaf
with the subject's random token, the requester, action, answer, reasons, policy revision and
the SHA-256 of the exact policy input it was based on. One batch costs two statements
whatever its size (tokens found or created, one multi-row insert).

An audience filter run decides millions of subjects in chunks, and the members of a chunk that
share a normalised input (a shape) share one decision: each such group is one `audience.used`
leaf whose `members_digest` commits to the group's subject ids and per-subject input values, so
a run costs leaves per (chunk, shape), not per subject, and every subject's use is still proven.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol
from uuid import UUID

import msgspec

from consent.audit import merkle
from consent.audit.leaf import AudienceUsed, DecisionMade, encode_leaf
from consent.audit.outbox import AuditWriter, token_text
from consent.db.database import Conn
from consent.db.sql import SqlFile

__all__ = [
    "AudienceGroupLike",
    "DataUse",
    "DecisionLeaf",
    "DecisionLike",
    "MemberColumns",
    "append_audience_leaves",
    "decision_leaves",
    "members_digest",
    "state_digest",
]

Q = SqlFile.beside(__file__, "decision_leaves.sql")
_canonical = msgspec.json.Encoder(order="sorted")


class DataUse(Protocol):
    """What every recorded use of data offers: who asked what, the answer and why."""

    @property
    def tenant_id(self) -> UUID: ...
    @property
    def decided_at(self) -> datetime: ...
    @property
    def requester(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def allow(self) -> bool: ...
    @property
    def reasons(self) -> tuple[str, ...]: ...
    @property
    def policy_revision(self) -> str: ...


class DecisionLike(DataUse, Protocol):
    """What a decision record offers (consent.decisions.logwriter.DecisionRecord does)."""

    @property
    def id(self) -> UUID: ...
    @property
    def subject_id(self) -> UUID | None: ...
    @property
    def input(self) -> object: ...
    @property
    def subject_token(self) -> bytes | None: ...


class MemberColumns(Protocol):
    """The stored member values of an audience group (the columns of its audience_member row)."""

    @property
    def subject_ids(self) -> list[UUID]: ...
    @property
    def purpose_keys(self) -> list[str]: ...
    @property
    def purpose_material(self) -> list[int | None]: ...
    @property
    def recorded_at_ns(self) -> list[int | None]: ...
    @property
    def consent_material(self) -> list[int | None]: ...


class AudienceGroupLike(DataUse, MemberColumns, Protocol):
    """What an audience member group offers (consent.decisions.logwriter.AudienceMemberRecord)."""

    @property
    def run_id(self) -> UUID: ...
    @property
    def event_uuid(self) -> UUID: ...
    @property
    def shape_input(self) -> object: ...


def members_digest(group: MemberColumns) -> str:
    """SHA-256 of the canonical JSON of an audience group's stored member values (the columns
    of its `audience_member` row), so anyone holding the row can check it against the leaf."""
    return state_digest(
        {
            "subject_ids": group.subject_ids,
            "purpose_keys": group.purpose_keys,
            "purpose_material": group.purpose_material,
            "recorded_at_ns": group.recorded_at_ns,
            "consent_material": group.consent_material,
        }
    )


def state_digest(policy_input: object) -> str:
    """SHA-256 of the canonical JSON of the policy input (the consent state it was based on)."""
    return hashlib.sha256(_canonical.encode(policy_input)).hexdigest()


class DecisionLeaf(msgspec.Struct):
    """A `decision.made` leaf as a row of the insert that logs the decisions (insert_decisions
    reads the rows from JSON: bytes as base64)."""

    log_id: int
    tenant_id: UUID
    event_uuid: UUID
    leaf_bytes: bytes
    leaf_hash: bytes
    subject_id: UUID


async def decision_leaves(
    conn: Conn, audit: AuditWriter, records: Sequence[DecisionLike]
) -> list[DecisionLeaf]:
    """One leaf per decision about a known subject, encoded, with the subject's token as the
    state read found it, or else read (or created) here, one statement per tenant. The caller
    inserts the leaves in the statement that logs the decisions (`insert_decisions`), so that
    no decision is durable without its leaf."""
    by_tenant: dict[UUID, list[tuple[UUID, DecisionLike]]] = defaultdict(list)
    for record in records:
        if record.subject_id is not None:
            by_tenant[record.tenant_id].append((record.subject_id, record))
    out: list[DecisionLeaf] = []
    for tenant_id, group in by_tenant.items():
        log_id, origin = await audit.log(conn, tenant_id)
        # Tokens the state read found; the others read, or created on first use.
        tokens = {s: token_text(r.subject_token) for s, r in group if r.subject_token}
        lacking = {s for s, _ in group if s not in tokens}
        if lacking:
            tokens.update(await audit.subject_tokens(conn, tenant_id, lacking))
        for subject_id, r in group:
            data = encode_leaf(
                DecisionMade(
                    event_uuid=r.id,
                    occurred_at=r.decided_at.astimezone(UTC),
                    log=origin,
                    decision_id=r.id,
                    subject_token=tokens[subject_id],
                    requester=r.requester,
                    action=r.action,
                    allow=r.allow,
                    reasons=tuple(r.reasons),
                    policy_revision=r.policy_revision,
                    state_digest=state_digest(r.input),
                )
            )
            out.append(
                DecisionLeaf(log_id, tenant_id, r.id, data, merkle.leaf_hash(data), subject_id)
            )
    return out


async def append_audience_leaves(
    conn: Conn, audit: AuditWriter, groups: Sequence[AudienceGroupLike]
) -> int:
    """Append one `audience.used` leaf per group that lists subjects; returns the number."""
    by_tenant: dict[UUID, list[AudienceGroupLike]] = defaultdict(list)
    for group in groups:
        if group.subject_ids:
            by_tenant[group.tenant_id].append(group)
    appended = 0
    for tenant_id, listed in by_tenant.items():
        log_id, origin = await audit.log(conn, tenant_id)
        uuids, leaves, hashes = [], [], []
        for g in listed:
            data = encode_leaf(
                AudienceUsed(
                    event_uuid=g.event_uuid,
                    occurred_at=g.decided_at.astimezone(UTC),
                    log=origin,
                    run_id=g.run_id,
                    requester=g.requester,
                    action=g.action,
                    allow=g.allow,
                    reasons=tuple(g.reasons),
                    policy_revision=g.policy_revision,
                    state_digest=state_digest(g.shape_input),
                    members=len(g.subject_ids),
                    members_digest=members_digest(g),
                )
            )
            uuids.append(g.event_uuid)
            leaves.append(data)
            hashes.append(merkle.leaf_hash(data))
        await conn.execute(
            Q.insert_leaves,
            log_id,
            tenant_id,
            "audience.used",
            uuids,
            leaves,
            hashes,
            [None] * len(uuids),
        )
        appended += len(listed)
    return appended
