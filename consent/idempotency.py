"""Idempotency keys for writes that clients retry (`Idempotency-Key` header).

The first request under a key runs and its response is stored in the same transaction as the
write; a retry with the same key and the same body gets the stored response; the same key with
another body is refused (422). Same-key requests are serialised by a transaction advisory lock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import TypeVar
from uuid import UUID

import msgspec

from consent.db.database import Conn
from consent.errors import IdempotencyKeyReused, ValidationFailed

__all__ = ["run_idempotent"]

_T = TypeVar("_T")
_MAX_KEY = 200
_enc = msgspec.json.Encoder()


async def run_idempotent(
    conn: Conn,
    tenant_id: UUID,
    key: str | None,
    fingerprint: bytes,
    result_type: type[_T],
    produce: Callable[[], Awaitable[_T]],
) -> tuple[_T, bool]:
    """Run `produce` once per key; returns (result, replayed)."""
    if key is None:
        return await produce(), False
    if not 1 <= len(key) <= _MAX_KEY or not key.isprintable():
        raise ValidationFailed.field("Idempotency-Key", "must be 1-200 printable characters")
    request_sha = hashlib.sha256(fingerprint).digest()
    await conn.execute(
        "select pg_advisory_xact_lock(hashtextextended($1::text || '/' || $2, 0))",
        str(tenant_id),
        key,
    )
    row = await conn.fetchrow(
        "select request_sha256, response_body from idempotency_record "
        "where tenant_id = $1 and key = $2",
        tenant_id,
        key,
    )
    if row is not None:
        if row["request_sha256"] != request_sha:
            raise IdempotencyKeyReused("This Idempotency-Key was used for a different request.")
        return msgspec.json.decode(row["response_body"], type=result_type), True
    result = await produce()
    await conn.execute(
        "insert into idempotency_record (tenant_id, key, request_sha256, status_code, "
        "response_body) values ($1, $2, $3, $4, $5)",
        tenant_id,
        key,
        request_sha,
        201,
        _enc.encode(result),
    )
    return result, False
