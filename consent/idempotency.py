"""Idempotency keys for writes that clients retry (`Idempotency-Key` header).

The first request under a key runs and its response is stored in the same transaction as the
write; a retry with the same key and the same body gets the stored response; the same key with
another body is refused (422). Same-key requests are serialised by a transaction advisory lock.

A request holds the person's identifiers (the e-mail address of a consent write) and its body is
easy to rebuild, so the record keeps an HMAC-SHA256 of it under the tenant's idempotency key
(`KeyRing.idempotency_key`), never a plain hash that a dump could confirm a guess with. Records
written before migration 0021 hold a plain SHA-256 (`request_hash_kind = 'sha256'`): they are
compared as such, so a retry of such a write still gets its answer.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import TypeVar
from uuid import UUID

import msgspec

from consent.crypto.keys import KeyRing
from consent.db.database import Conn
from consent.errors import IdempotencyKeyReused, ValidationFailed

__all__ = ["run_idempotent"]

_T = TypeVar("_T")
_MAX_KEY = 200
_enc = msgspec.json.Encoder()


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
        raise ValidationFailed.field("Idempotency-Key", "must be 1-200 printable characters")
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
        if not _same_request(row["request_hash_kind"], row["request_sha256"], fingerprint, keyed):
            raise IdempotencyKeyReused("This Idempotency-Key was used for a different request.")
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
