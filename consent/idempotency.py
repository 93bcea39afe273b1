"""Idempotency keys for writes that clients retry (`Idempotency-Key` header).

The first request under a key runs and its response is stored in the same transaction as the
write; a retry with the same key and the same body gets the stored response; the same key with
another body is refused (422). Same-key requests are serialised by a transaction advisory lock.

A request holds the person's identifiers (the e-mail address of a consent write) and its body is
easy to rebuild, so the record keeps an HMAC-SHA256 of it under the tenant's idempotency key
(`KeyRing.idempotency_key`), never a plain hash that a dump could confirm a guess with. Records
written before migration 0021 hold a plain SHA-256 (`request_hash_kind = 'sha256'`): they are
compared as such, so a retry of such a write still gets its answer.

Records are kept `CONSENT_IDEMPOTENCY_RETENTION_DAYS` (default 30) and then deleted by the
service's hourly `keep_pruned`, run once per service where the audit integrator runs (the
integrator process of `consent serve`, `consent audit integrate --loop`, or a single app whose
`CONSENT_AUDIT_INTEGRATOR` is on): a client retries within minutes, not months, and neither the
table nor the hashes it holds grow for ever. A key used again after that runs as new (an erased
person's write retried after the retention period would write again).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import TypeVar
from uuid import UUID

import asyncpg
import msgspec
import structlog

from consent.crypto.keys import KeyRing
from consent.db.database import Conn, Database
from consent.db.sql import SqlFile
from consent.errors import IdempotencyKeyReused, ValidationFailed
from consent.locales import Localized

__all__ = ["forget_expired", "keep_pruned", "run_idempotent"]

_T = TypeVar("_T")
_MAX_KEY = 200
_enc = msgspec.json.Encoder()
_log = structlog.get_logger("consent.idempotency")
Q = SqlFile.beside(__file__, "idempotency.sql")
# What an erasure leaves of the request hash of a write that named the erased subject.
_FORGOTTEN = bytes(32)


def _same_request(kind: str, stored: bytes, fingerprint: bytes, keyed: bytes) -> bool:
    """Whether a stored hash is the one of this request, by the kind of hash the record holds
    (a legacy plain SHA-256 is accepted only in a record that says it holds one)."""
    expected = hashlib.sha256(fingerprint).digest() if kind == "sha256" else keyed
    return hmac.compare_digest(stored, expected)


async def run_idempotent(
    conn: Conn,
    keyring: KeyRing,
    tenant_id: UUID,
    key: str | None,
    fingerprint: bytes,
    result_type: type[_T],
    produce: Callable[[], Awaitable[_T]],
) -> tuple[_T, bool]:
    """Run `produce` once per key; returns (result, replayed). `fingerprint`: what the request
    asked (kept only as a keyed hash, to refuse the key's reuse for another request)."""
    if key is None:
        return await produce(), False
    if not 1 <= len(key) <= _MAX_KEY or not key.isprintable():
        raise ValidationFailed.field("Idempotency-Key", Localized("idempotency-key-format"))
    keyed = hmac.digest(keyring.idempotency_key(str(tenant_id)), fingerprint, "sha256")
    await conn.execute(
        "select pg_advisory_xact_lock(hashtextextended($1::text || '/' || $2, 0))",
        str(tenant_id),
        key,
    )
    row = await conn.fetchrow(
        "select request_sha256, request_hash_kind, response_body from idempotency_record "
        "where tenant_id = $1 and key = $2",
        tenant_id,
        key,
    )
    if row is not None:
        stored = bytes(row["request_sha256"])
        if stored == _FORGOTTEN:  # forget_idempotent_requests (migrations/0020)
            raise IdempotencyKeyReused(Localized("idempotency-key-erased"))
        if not _same_request(row["request_hash_kind"], stored, fingerprint, keyed):
            raise IdempotencyKeyReused(Localized("idempotency-key-other-request"))
        return msgspec.json.decode(row["response_body"], type=result_type), True
    result = await produce()
    await conn.execute(
        "insert into idempotency_record (tenant_id, key, request_sha256, request_hash_kind, "
        "status_code, response_body) values ($1, $2, $3, 'hmac', $4, $5)",
        tenant_id,
        key,
        keyed,
        201,
        _enc.encode(result),
    )
    return result, False


async def forget_expired(db: Database, days: int, *, batch: int = 5_000) -> int:
    """Delete the records older than `days` days, in short transactions of `batch` rows (a
    first run on a large table does not hold a long one); returns how many went."""
    gone = 0
    while True:
        async with db.system() as conn:
            count = int(await conn.fetchval(Q.forget_expired, days, batch))
        gone += count
        if count < batch:
            return gone


async def keep_pruned(
    db: Database, days: int, stop: asyncio.Event, *, interval: float = 3600.0
) -> None:
    """Run forget_expired now and then every `interval` seconds until `stop` is set (with
    nothing expired it is one index probe)."""
    while not stop.is_set():
        try:
            gone = await forget_expired(db, days)
            if gone:
                _log.info("idempotency.records_expired", records=gone, retention_days=days)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            _log.warning("idempotency.prune_unavailable", error=type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
