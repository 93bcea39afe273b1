"""Per-subject data keys in PostgreSQL, wrapped by the KEK; KEK rotation re-wraps them.

A data key is created when a subject is first seen and destroyed when the subject is erased
(crypto-shredding). The wrap is bound to (tenant, subject) by its associated data, so a wrapped
key copied onto another subject's row does not unwrap.
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from consent.crypto.aead import open_sealed, seal
from consent.crypto.keys import KeyRing
from consent.db.database import Conn, Database
from consent.db.sql import SqlFile

__all__ = ["DataKeys", "EncryptedForErasedSubject", "dek_aad", "rewrap_all"]

Q = SqlFile.beside(__file__)


class EncryptedForErasedSubject(Exception):
    """The subject's data key was destroyed: its encrypted data is gone for good."""


def dek_aad(tenant_id: UUID, subject_id: UUID) -> bytes:
    """Associated data binding a wrapped data key to its tenant and subject."""
    return b"consent/dek/v1/" + tenant_id.bytes + subject_id.bytes


def _data_aad(tenant_id: UUID, subject_id: UUID, context: bytes) -> bytes:
    return b"consent/data/v1/" + tenant_id.bytes + subject_id.bytes + b"/" + context


class DataKeys:
    """Encrypt and decrypt a subject's data under its own key (inside the caller's transaction)."""

    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring

    async def ensure(self, conn: Conn, tenant_id: UUID, subject_id: UUID) -> bytes:
        row = await conn.fetchrow(Q.get_subject_key, tenant_id, subject_id)
        if row is not None:
            return self.keyring.unwrap(
                row["kek_id"], row["dek_wrapped"], dek_aad(tenant_id, subject_id)
            )
        dek = self.keyring.new_data_key()
        kek_id, wrapped = self.keyring.wrap(dek, dek_aad(tenant_id, subject_id))
        await conn.execute(Q.insert_subject_key, tenant_id, subject_id, kek_id, wrapped)
        # A concurrent creator may have won the insert: read back the key that is stored.
        row = await conn.fetchrow(Q.get_subject_key, tenant_id, subject_id)
        if row is None:
            raise EncryptedForErasedSubject
        return self.keyring.unwrap(
            row["kek_id"], row["dek_wrapped"], dek_aad(tenant_id, subject_id)
        )

    async def get(self, conn: Conn, tenant_id: UUID, subject_id: UUID) -> bytes:
        row = await conn.fetchrow(Q.get_subject_key, tenant_id, subject_id)
        if row is None:
            raise EncryptedForErasedSubject
        return self.keyring.unwrap(
            row["kek_id"], row["dek_wrapped"], dek_aad(tenant_id, subject_id)
        )

    @staticmethod
    def encrypt(
        dek: bytes, tenant_id: UUID, subject_id: UUID, plaintext: bytes, context: bytes
    ) -> bytes:
        return seal(dek, plaintext, _data_aad(tenant_id, subject_id, context))

    @staticmethod
    def decrypt(
        dek: bytes, tenant_id: UUID, subject_id: UUID, blob: bytes, context: bytes
    ) -> bytes:
        return open_sealed(dek, blob, _data_aad(tenant_id, subject_id, context))

    async def destroy(self, conn: Conn, tenant_id: UUID, subject_id: UUID) -> None:
        await conn.execute(Q.delete_subject_key, tenant_id, subject_id)


async def rewrap_all(
    db: Database,
    keyring: KeyRing,
    *,
    batch_size: int = 1000,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Re-wrap every data key not under the current KEK, in short transactions.

    Runs while the service serves: each batch locks its rows with SKIP LOCKED, and the service
    can unwrap keys under either KEK throughout. Returns the number of keys re-wrapped.
    """
    target = keyring.current_kek_id
    async with db.system() as conn:
        total = int(await conn.fetchval(Q.count_wrapped_by_other_keks, target))
    done = 0
    while True:
        async with db.system() as conn:
            rows = await conn.fetch(Q.lock_batch_to_rewrap, target, batch_size)
            if not rows:
                break
            tenants, subjects, wrapped = [], [], []
            for r in rows:
                aad = dek_aad(r["tenant_id"], r["subject_id"])
                dek = keyring.unwrap(r["kek_id"], r["dek_wrapped"], aad)
                _, new_wrapped = keyring.wrap(dek, aad)
                tenants.append(r["tenant_id"])
                subjects.append(r["subject_id"])
                wrapped.append(new_wrapped)
            await conn.execute(Q.update_rewrapped, target, tenants, subjects, wrapped)
        done += len(rows)
        if progress is not None:
            progress(done, max(total, done))
    return done
