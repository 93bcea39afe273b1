"""The database belongs to one key ring; a process with another is refused at start.

A process that opened a database with the wrong key directory would not fail on its own: it
would hash every identifier under another lookup key (so known customers become new, empty
subjects) and wrap new data keys under a KEK the other processes do not hold. The first
process binds the database to its ring (`key_binding`: a fingerprint of the lookup key and the
ids of the KEKs in use); every later one must hold that lookup key and every KEK recorded, and
adds its current KEK (a rotation) to the record.

In development missing keys are generated, but only for a database bound to no key ring: a
command finds out first (`existing_keys`, then `check_binding` or `open_with_keys`), so a wrong
`CONSENT_KEYS_DIR` gets nothing written in it.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from consent.config import Settings
from consent.crypto.keys import KeyError_, KeyRing, load_keyring
from consent.db.database import Conn, Database, EmbeddedPostgres
from consent.db.sql import SqlFile

__all__ = [
    "KeyRingMismatch",
    "bind_or_check",
    "bound_keys",
    "check_binding",
    "existing_keys",
    "lookup_fingerprint",
    "open_bound",
    "open_with_keys",
]

Q = SqlFile.beside(__file__, "queries.sql")
_LABEL: Final = b"consent/lookup-key-fingerprint"


class KeyRingMismatch(Exception):
    """The key ring is not the one this database's data belongs to."""


def lookup_fingerprint(ring: KeyRing) -> str:
    """A public fingerprint of the lookup key (an HMAC of a fixed label: reveals nothing)."""
    return hmac.new(ring.lookup_root, _LABEL, hashlib.sha256).hexdigest()[:32]


async def bind_or_check(conn: Conn, ring: KeyRing) -> None:
    """Bind an unbound database to `ring`, or check `ring` against the binding (raises
    KeyRingMismatch) and record its current KEK. Runs as the schema owner, in a transaction
    of its own (concurrent workers take turns on the row lock)."""
    fingerprint = lookup_fingerprint(ring)
    async with conn.transaction():
        await conn.execute(Q.bind_keys, fingerprint, [ring.current_kek_id])
        row = await conn.fetchrow(Q.key_binding_for_update)
        assert row is not None  # noqa: S101 - inserted above or there before
        if row["lookup_fingerprint"] != fingerprint:
            raise KeyRingMismatch(
                "the lookup key in the key directory is not the one this database's "
                "identifiers were hashed with: wrong CONSENT_KEYS_DIR (or data directory)?"
            )
        missing = [k for k in row["kek_ids"] if k not in ring.keks]
        if missing:
            raise KeyRingMismatch(
                "key-encryption keys that wrapped this database's data keys are not in the "
                f"key ring: {', '.join(missing)}; wrong CONSENT_KEYS_DIR or CONSENT_KEK?"
            )
        if ring.current_kek_id not in row["kek_ids"]:
            await conn.execute(Q.record_kek, ring.current_kek_id)


async def open_bound(settings: Settings, ring: KeyRing) -> Database:
    """The configured database for an operator command: migrated, and bound to `ring` (raises
    KeyRingMismatch, with the database closed, when it belongs to another key ring)."""
    db, _ = await _open_bound(settings, ring)
    return db


async def open_with_keys(settings: Settings) -> tuple[Database, KeyRing]:
    """open_bound with the key ring of the key directory; keys missing there (development) are
    generated only for a database bound to none (KeyRingMismatch, nothing written, else)."""
    return await _open_bound(settings, existing_keys(settings))


async def _open_bound(settings: Settings, ring: KeyRing | None) -> tuple[Database, KeyRing]:
    from consent.db.migrate import apply_migrations, default_migrations_dir

    db = await Database.from_settings(settings)
    try:
        async with db.pool.acquire() as conn:
            await apply_migrations(conn, default_migrations_dir())
            bound = await bound_keys(conn, settings, ring)  # records a rotation's new KEK too
    except BaseException:
        await db.close()
        raise
    return db, bound


def existing_keys(settings: Settings) -> KeyRing | None:
    """The key ring in the keys directory, or None when keys are missing there and may be
    generated (development); raises KeyError_ when they may not."""
    try:
        return load_keyring(settings.resolved_keys_dir, kek=settings.kek, create=False)
    except KeyError_:
        if settings.environment != "development":
            raise
        return None


async def bound_keys(conn: Conn, settings: Settings, ring: KeyRing | None) -> KeyRing:
    """`ring` (existing_keys) bound to the migrated database at `conn` or checked against its
    binding; when `ring` is None, keys generated now for a database bound to none (raises
    KeyRingMismatch, with nothing written in the key directory, for one bound to a key ring)."""
    if ring is None:
        await _refuse_when_bound(conn, settings)
        ring = load_keyring(settings.resolved_keys_dir, kek=settings.kek, create=True)
    await bind_or_check(conn, ring)
    return ring


async def check_binding(settings: Settings, ring: KeyRing | None) -> None:
    """Raises DatabaseUnavailable unless the configured database answers (the embedded one is
    started for the check, and stopped again unless others use it), and KeyRingMismatch if it
    belongs to another key ring than `ring`, or to any when `ring` is None (no keys in the key
    directory yet: none must be generated there for a database that has its own). An
    unmigrated database passes (its first process binds it)."""
    if settings.database_url is not None:
        await _check_database(settings.database_url, ring, settings)
        return
    embedded = EmbeddedPostgres(settings.data_dir)
    dsn = await embedded.start()
    try:
        await _check_database(dsn, ring, settings)
    finally:
        await embedded.stop()


async def _check_database(dsn: str, ring: KeyRing | None, settings: Settings) -> None:
    """check_binding for the database at `dsn`."""
    db = await Database.connect(dsn, min_size=1, max_size=1)
    try:
        async with db.pool.acquire() as conn:
            if not await conn.fetchval("select to_regclass('key_binding') is not null"):
                return
            if ring is not None:
                await bind_or_check(conn, ring)
            else:
                await _refuse_when_bound(conn, settings)
    finally:
        await db.close()


async def _refuse_when_bound(conn: Conn, settings: Settings) -> None:
    """KeyRingMismatch if the database belongs to a key ring (the key directory has none)."""
    if await conn.fetchval("select exists (select from key_binding)"):
        try:  # what is missing, in the words of a load that may not generate
            load_keyring(settings.resolved_keys_dir, kek=settings.kek, create=False)
            missing = f"no key ring in {settings.resolved_keys_dir}"
        except KeyError_ as exc:
            missing = str(exc)
        raise KeyRingMismatch(
            f"{missing}, and this database's data belongs to a key ring: wrong "
            "CONSENT_KEYS_DIR (or data directory)? No key was generated"
        )
