"""The database belongs to one key ring; a process with another is refused at start.

A process that opened a database with the wrong key directory would not fail on its own: it
would hash every identifier under another lookup key (so known customers become new, empty
subjects) and wrap new data keys under a KEK the other processes do not hold. The first
process binds the database to its ring (`key_binding`: a fingerprint of the lookup key and the
ids of the KEKs in use); every later one must hold that lookup key and every KEK recorded, and
adds its current KEK (a rotation) to the record.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from consent.config import Settings
from consent.crypto.keys import KeyRing
from consent.db.database import Conn, Database
from consent.db.sql import SqlFile

__all__ = ["KeyRingMismatch", "bind_or_check", "lookup_fingerprint", "open_bound"]

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
    from consent.db.migrate import apply_migrations, default_migrations_dir

    db = await Database.from_settings(settings)
    try:
        async with db.pool.acquire() as conn:
            await apply_migrations(conn, default_migrations_dir())
            await bind_or_check(conn, ring)  # records a rotation's new KEK too
    except BaseException:
        await db.close()
        raise
    return db
