"""Per-subject data keys in PostgreSQL, wrapped by the KEK; KEK rotation re-wraps them, and an
old KEK is retired once no data key is wrapped under it.

A data key is created when a subject is first seen and destroyed when the subject is erased
(crypto-shredding). The wrap is bound to (tenant, subject) by its associated data, so a wrapped
key copied onto another subject's row does not unwrap.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from uuid import UUID

import asyncpg

from consent.crypto.aead import open_sealed, seal
from consent.crypto.keys import KeyError_, KeyRing, is_kek_id, kek_ids_on_disk, retire_kek
from consent.db.database import Conn, Database
from consent.db.sql import SqlFile

__all__ = [
    "DataKeys",
    "EncryptedForErasedSubject",
    "KekInUse",
    "Retirement",
    "RewrapIncomplete",
    "dek_aad",
    "retire_keks",
    "rewrap_all",
]

Q = SqlFile.beside(__file__)
_FIRST_PAUSE: Final = 0.05  # seconds between looks at keys other transactions hold locked
_LONGEST_PAUSE: Final = 1.0


class EncryptedForErasedSubject(Exception):
    """The subject's data key was destroyed: its encrypted data is gone for good."""


class RewrapIncomplete(Exception):
    """Data keys stayed locked by other transactions: they are still under an older KEK."""

    def __init__(self, done: int, remaining: int, waited: float) -> None:
        super().__init__(
            f"{_keys(remaining)} stayed locked by other transactions for {waited:g} s and "
            f"{'was' if remaining == 1 else 'were'} not re-wrapped ({done} re-wrapped)"
        )
        self.done = done
        self.remaining = remaining


class KekInUse(Exception):
    """A KEK cannot be retired: it is current or data keys are still wrapped under it."""


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
    locked_wait: float = 30.0,
) -> int:
    """Re-wrap every data key not under the current KEK, in short transactions.

    Runs while the service serves: each batch locks its rows with SKIP LOCKED, and the service
    can unwrap keys under either KEK throughout. Keys that other transactions hold locked (an
    erasure, another re-wrap) are waited for, up to `locked_wait` seconds without progress; then
    RewrapIncomplete says how many are left, so a rotation never reports success (and its old
    KEK never looks safe to retire) while data keys are still wrapped under it. A rotation
    meanwhile is followed. Returns the number of keys re-wrapped.
    """
    keyring.refresh()
    async with db.system() as conn:
        total = int(await conn.fetchval(Q.count_wrapped_by_other_keks, keyring.current_kek_id))
    done, stuck_since, pause = 0, None, _FIRST_PAUSE
    clock = asyncio.get_running_loop().time
    while True:
        keyring.refresh()  # another rotation meanwhile: its KEK is the target from now on
        target = keyring.current_kek_id
        count = await _rewrap_batch(db, keyring, target, batch_size)
        if count:
            done, stuck_since, pause = done + count, None, _FIRST_PAUSE
            if progress is not None:
                progress(done, max(total, done))
            continue
        async with db.system() as conn:
            remaining = int(await conn.fetchval(Q.count_wrapped_by_other_keks, target))
        if remaining == 0:
            return done
        now = clock()
        stuck_since = now if stuck_since is None else stuck_since
        if now - stuck_since >= locked_wait:
            raise RewrapIncomplete(done, remaining, locked_wait)
        await asyncio.sleep(min(pause, stuck_since + locked_wait - now))
        pause = min(pause * 2, _LONGEST_PAUSE)


async def _rewrap_batch(db: Database, keyring: KeyRing, target: str, batch_size: int) -> int:
    """Re-wrap up to `batch_size` unlocked keys not under `target`; how many there were."""
    async with db.system() as conn:
        rows = await conn.fetch(Q.lock_batch_to_rewrap, target, batch_size)
        if not rows:
            return 0
        tenants, subjects, kek_ids, wrapped = [], [], [], []
        for r in rows:
            aad = dek_aad(r["tenant_id"], r["subject_id"])
            dek = keyring.unwrap(r["kek_id"], r["dek_wrapped"], aad)
            # The ring follows the directory: the KEK that wraps may be newer than `target`.
            kek_id, new_wrapped = keyring.wrap(dek, aad)
            tenants.append(r["tenant_id"])
            subjects.append(r["subject_id"])
            kek_ids.append(kek_id)
            wrapped.append(new_wrapped)
        await conn.execute(Q.update_rewrapped, tenants, subjects, kek_ids, wrapped)
    return len(rows)


# -- retiring KEKs -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Retirement:
    """What retire_keks did, by KEK id (never key material)."""

    retired: tuple[str, ...]  # their files destroyed now
    absent: tuple[str, ...]  # no file: retired before
    kept: dict[str, int] = field(default_factory=dict)  # unasked: still wrap this many keys


async def retire_keks(
    db: Database,
    keys_dir: Path,
    kek_ids: Sequence[str] | None = None,
    *,
    lock_timeout: float = 5.0,
) -> Retirement:
    """Destroy the files of old KEKs that no data key of any tenant is wrapped under.

    `kek_ids` names them (all refused, KekInUse, when one is current or still wraps a data
    key); None means every KEK in the directory but the current one, keeping (and reporting)
    those still in use. The database is checked while data key writes are held off (a write in
    progress is waited for, up to `lock_timeout` seconds), and forgets the retired ids
    (key_binding) before their files go: a failure in between leaves a file that a second run
    removes, never a database that expects a KEK no process has. The caller has checked with
    bind_or_check that `keys_dir` is this database's key directory.
    """
    if kek_ids is not None and (bad := [k for k in kek_ids if not is_kek_id(k)]):
        raise KeyError_(f"not a key-encryption key id: {bad[0]!r}")
    on_disk, current = kek_ids_on_disk(keys_dir)
    asked = kek_ids is not None
    candidates = list(dict.fromkeys(kek_ids)) if kek_ids is not None else on_disk
    if current in candidates:
        if asked:
            raise KekInUse(
                f"{current} is the current key-encryption key; run `consent keys rotate` first"
            )
        candidates.remove(current)
    async with db.system() as conn:
        await conn.execute(Q.set_lock_timeout, f"{int(lock_timeout * 1000)}ms")
        try:
            await conn.execute(Q.hold_off_key_writes)
        except asyncpg.LockNotAvailableError:
            raise KekInUse(
                "data keys are being written by a long transaction (an import?); try again "
                "when it has ended"
            ) from None
        rows = await conn.fetch(Q.count_wrapped_by_keks, candidates)
        in_use = {r["kek_id"]: int(r["wrapped"]) for r in sorted(rows, key=lambda r: r["kek_id"])}
        if in_use and asked:
            raise KekInUse(
                ", ".join(f"{k} still wraps {_keys(n)}" for k, n in in_use.items())
                + "; run `consent keys rotate --rewrap-only` first"
            )
        candidates = [k for k in candidates if k not in in_use]
        await conn.execute(Q.forget_keks, candidates)
    retired = [k for k in candidates if retire_kek(keys_dir, k)]
    absent = [k for k in candidates if k not in retired]
    return Retirement(tuple(retired), tuple(absent), in_use)


def _keys(n: int) -> str:
    return f"{n} data key" if n == 1 else f"{n} data keys"
