"""Decisions become leaves of the audit log, in the decision log's group-commit transaction.

Every decision about a known subject is a use of that subject's data: a `decision.made` leaf
with the subject's random token, the requester, action, answer, reasons, policy revision and
the SHA-256 of the exact policy input it was based on. One batch costs three statements
whatever its size (tokens, token lookup, one multi-row insert).
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol
from uuid import UUID

import msgspec

from consent.audit import merkle
from consent.audit.leaf import DecisionMade, encode_leaf
from consent.audit.outbox import AuditWriter
from consent.db.database import Conn
from consent.db.sql import SqlFile

__all__ = ["DecisionLike", "append_decision_leaves", "state_digest"]

Q = SqlFile.beside(__file__, "decision_leaves.sql")
_canonical = msgspec.json.Encoder(order="sorted")


class DecisionLike(Protocol):
    """What a decision record offers (consent.decisions.logwriter.DecisionRecord does)."""

    @property
    def id(self) -> UUID: ...
    @property
    def tenant_id(self) -> UUID: ...
    @property
    def decided_at(self) -> datetime: ...
    @property
    def subject_id(self) -> UUID | None: ...
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
    @property
    def input(self) -> object: ...


def state_digest(policy_input: object) -> str:
    """SHA-256 of the canonical JSON of the policy input (the consent state it was based on)."""
    return hashlib.sha256(_canonical.encode(policy_input)).hexdigest()


def _token_text(token: bytes) -> str:
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


async def append_decision_leaves(
    conn: Conn, audit: AuditWriter, records: Sequence[DecisionLike]
) -> int:
    """Append one leaf per decision about a known subject; returns the number appended."""
    by_tenant: dict[UUID, list[DecisionLike]] = defaultdict(list)
    for record in records:
        if record.subject_id is not None:
            by_tenant[record.tenant_id].append(record)
    appended = 0
    for tenant_id, group in by_tenant.items():
        log_id, origin = await audit.log(conn, tenant_id)
        subjects = sorted({r.subject_id for r in group if r.subject_id is not None})
        await conn.execute(Q.ensure_tokens, tenant_id, subjects, [os.urandom(32) for _ in subjects])
        tokens = {
            row["subject_id"]: _token_text(bytes(row["token"]))
            for row in await conn.fetch(Q.tokens_of, tenant_id, subjects)
        }
        uuids, leaves, hashes, owners = [], [], [], []
        for r in group:
            assert r.subject_id is not None  # noqa: S101 - filtered above
            data = encode_leaf(
                DecisionMade(
                    event_uuid=r.id,
                    occurred_at=r.decided_at.astimezone(UTC),
                    log=origin,
                    decision_id=r.id,
                    subject_token=tokens[r.subject_id],
                    requester=r.requester,
                    action=r.action,
                    allow=r.allow,
                    reasons=tuple(r.reasons),
                    policy_revision=r.policy_revision,
                    state_digest=state_digest(r.input),
                )
            )
            uuids.append(r.id)
            leaves.append(data)
            hashes.append(merkle.leaf_hash(data))
            owners.append(r.subject_id)
        await conn.execute(
            Q.insert_leaves, log_id, tenant_id, "decision.made", uuids, leaves, hashes, owners
        )
        appended += len(group)
    return appended
