"""Append audit leaves inside the transaction of the change they record (the outbox).

A leaf is inserted with no index; the integrator assigns it one later. Because the insert is in
the same transaction as the change, no change can exist without its leaf, and no leaf without
its change. Personal details go into `audit_evidence`, encrypted under the subject's data key;
the leaf carries only the SHA-256 of that ciphertext and a random per-subject token.
"""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Final, Literal

import msgspec

from consent.audit import merkle
from consent.audit.leaf import AdminChanged, Leaf, encode_leaf
from consent.crypto.datakeys import DataKeys
from consent.db.database import Conn
from consent.db.sql import SqlFile
from consent.ids import uuid7

__all__ = ["AuditWriter", "EncryptedEvidence", "LeafRow", "SubjectLeafContext", "token_text"]

Q = SqlFile.beside(__file__, "queries.sql")
_TOKEN_BYTES: Final = 32
_enc = msgspec.json.Encoder(order="sorted")


def token_text(token: bytes) -> str:
    """A subject token as it appears in leaves: unpadded base64url."""
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


class EncryptedEvidence(msgspec.Struct, frozen=True):
    ciphertext: bytes

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.ciphertext).hexdigest()


class SubjectLeafContext(msgspec.Struct, frozen=True):
    """What a leaf about a subject needs: the log, the subject's token, sealed evidence."""

    log_id: int
    origin: str
    subject_token: str
    evidence: EncryptedEvidence


class LeafRow(msgspec.Struct, frozen=True, kw_only=True):
    """An encoded leaf as the parameters of its `audit_event` row and `audit_evidence` row.

    `append` inserts it; a write that inserts its change and its leaf in one statement (e.g.
    `insert_consent_event`) passes these fields to the same two inserts instead.
    """

    event_uuid: uuid.UUID
    log_id: int
    tenant_id: uuid.UUID
    leaf_bytes: bytes
    leaf_hash: bytes
    kind: str
    subject_id: uuid.UUID | None
    evidence: bytes | None


class AuditWriter:
    """Per-process helper; caches each tenant's log id (immutable once created)."""

    def __init__(self, origin_prefix: str) -> None:
        self.origin_prefix = origin_prefix.rstrip("/")
        self._logs: dict[uuid.UUID, tuple[int, str]] = {}

    async def log(self, conn: Conn, tenant_id: uuid.UUID) -> tuple[int, str]:
        """(log id, origin) of the tenant's tree, created on first use."""
        cached = self._logs.get(tenant_id)
        if cached is not None:
            return cached
        row = await conn.fetchrow(Q.log_of_tenant, tenant_id)
        if row is None:
            await conn.execute(Q.ensure_log, tenant_id, f"{self.origin_prefix}/{tenant_id}")
            row = await conn.fetchrow(Q.log_of_tenant, tenant_id)
        if row is None:
            raise RuntimeError("the tenant's audit log could not be created")
        self._logs[tenant_id] = (int(row["log_id"]), str(row["origin"]))
        return self._logs[tenant_id]

    @staticmethod
    async def subject_token(conn: Conn, tenant_id: uuid.UUID, subject_id: uuid.UUID) -> str:
        """The subject's random token (base64url, 43 characters), created on first use."""
        return (await AuditWriter.subject_tokens(conn, tenant_id, [subject_id]))[subject_id]

    @staticmethod
    async def subject_tokens(
        conn: Conn, tenant_id: uuid.UUID, subject_ids: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, str]:
        """The tokens of many subjects (base64url), each created on first use; one statement,
        plus a second only when a concurrent transaction created some of them meanwhile.

        A subject already erased (a decision read before its erasure and logged after it)
        gets a fresh random token that is stored nowhere: its leaf stays in the log, and
        nothing ties it to the subject. Each subject is locked FOR KEY SHARE until the caller's
        transaction ends, so an erasure running meanwhile either comes first (and the subject
        is erased here) or waits, then finds the token and deletes it."""
        ids = sorted(set(subject_ids))
        fresh = [os.urandom(_TOKEN_BYTES) for _ in ids]
        # An erased subject's row carries the fresh token given for it (`erased`), never stored.
        tokens = {
            row["subject_id"]: token_text(bytes(row["token"]))
            for row in await conn.fetch(Q.subject_tokens, tenant_id, ids, fresh)
        }
        if len(tokens) < len(ids):
            missing = [i for i in ids if i not in tokens]
            for row in await conn.fetch(Q.subject_tokens_existing, tenant_id, missing):
                tokens[row["subject_id"]] = token_text(bytes(row["token"]))
        if len(tokens) < len(ids):
            raise RuntimeError("a subject's audit token could neither be created nor read")
        return tokens

    @staticmethod
    def seal_evidence(
        dek: bytes,
        tenant_id: uuid.UUID,
        subject_id: uuid.UUID,
        event_uuid: uuid.UUID,
        details: object,
    ) -> EncryptedEvidence:
        plaintext = _enc.encode(details)
        context = b"audit-evidence/" + event_uuid.bytes
        return EncryptedEvidence(DataKeys.encrypt(dek, tenant_id, subject_id, plaintext, context))

    async def prepare(
        self,
        conn: Conn,
        dek: bytes,
        tenant_id: uuid.UUID,
        subject_id: uuid.UUID,
        event_uuid: uuid.UUID,
        details: object,
        token: bytes | None = None,
    ) -> SubjectLeafContext:
        """Log, token (the known one, else looked up or created) and sealed evidence."""
        log_id, origin = await self.log(conn, tenant_id)
        return SubjectLeafContext(
            log_id=log_id,
            origin=origin,
            subject_token=token_text(token)
            if token is not None
            else await self.subject_token(conn, tenant_id, subject_id),
            evidence=self.seal_evidence(dek, tenant_id, subject_id, event_uuid, details),
        )

    @staticmethod
    def row(
        tenant_id: uuid.UUID,
        log_id: int,
        leaf: Leaf,
        *,
        subject_id: uuid.UUID | None = None,
        evidence: EncryptedEvidence | None = None,
    ) -> LeafRow:
        """Encode the leaf (canonical bytes, validated) and hash it: the row to insert."""
        data = encode_leaf(leaf)
        return LeafRow(
            event_uuid=leaf.event_uuid,
            log_id=log_id,
            tenant_id=tenant_id,
            leaf_bytes=data,
            leaf_hash=merkle.leaf_hash(data),
            kind=str(type(leaf).__struct_config__.tag),
            subject_id=subject_id,
            evidence=evidence.ciphertext if evidence is not None else None,
        )

    async def append(
        self,
        conn: Conn,
        tenant_id: uuid.UUID,
        log_id: int,
        leaf: Leaf,
        *,
        subject_id: uuid.UUID | None = None,
        evidence: EncryptedEvidence | None = None,
    ) -> bytes:
        """Insert the leaf (pending) and its evidence; returns the leaf bytes."""
        row = self.row(tenant_id, log_id, leaf, subject_id=subject_id, evidence=evidence)
        args = (
            row.event_uuid,
            row.log_id,
            row.tenant_id,
            row.leaf_bytes,
            row.leaf_hash,
            row.kind,
            row.subject_id,
        )
        if row.evidence is None:
            await conn.execute(Q.insert_event, *args)
        else:
            await conn.execute(Q.insert_event_with_evidence, *args, row.evidence)
        return row.leaf_bytes

    async def admin_changed(
        self,
        conn: Conn,
        tenant_id: uuid.UUID,
        *,
        actor: str,
        entity: str,
        entity_id: str,
        operation: Literal["create", "update", "delete"],
        change: object,
    ) -> None:
        """An admin change (catalogue, settings) as a leaf, in the transaction that makes it:
        who, what, and the SHA-256 of the new value in sorted-key JSON."""
        log_id, origin = await self.log(conn, tenant_id)
        leaf = AdminChanged(
            event_uuid=uuid7(),
            occurred_at=datetime.now(UTC),
            log=origin,
            actor_ref=actor,
            entity=entity,
            entity_id=entity_id,
            operation=operation,
            change_digest=hashlib.sha256(_enc.encode(change)).hexdigest(),
        )
        await self.append(conn, tenant_id, log_id, leaf)
