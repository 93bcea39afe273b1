"""Keyset pagination: opaque cursors over (created_at, id) newest first, over a sequence number,
or over a unique text key in ascending order. A list fetches `limit + 1` rows and cuts them with
`page_of`, so `next_cursor` is set only when another item follows."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar
from uuid import UUID

import msgspec

from consent.errors import ValidationFailed

__all__ = [
    "Cursor",
    "check_limit",
    "decode_cursor",
    "decode_key_cursor",
    "decode_seq_cursor",
    "encode_cursor",
    "encode_key_cursor",
    "encode_seq_cursor",
    "page_of",
]

MAX_LIMIT = 200

_T = TypeVar("_T")


class Cursor(msgspec.Struct, frozen=True, array_like=True):
    at: datetime
    id: UUID


_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(Cursor)


def encode_cursor(at: datetime, id_: UUID) -> str:
    return base64.urlsafe_b64encode(_enc.encode(Cursor(at, id_))).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> Cursor | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return _dec.decode(raw)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise ValidationFailed.field("cursor", "not a cursor returned by this API") from None


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed.field("limit", f"must be between 1 and {MAX_LIMIT}")
    return limit


def page_of(
    rows: Sequence[_T], limit: int, cursor_of: Callable[[_T], str]
) -> tuple[list[_T], str | None]:
    """The first `limit` of `rows` (fetched with `limit + 1`), and the cursor after the last of
    them when a further row shows that another page follows, else None."""
    items = list(rows[:limit])
    return items, cursor_of(items[-1]) if len(rows) > limit else None


def encode_seq_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(seq.to_bytes(8, "big")).decode().rstrip("=")


def decode_seq_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 8:  # noqa: PLR2004
        raise ValidationFailed.field("cursor", "not a cursor returned by this API")
    return int.from_bytes(raw, "big")


def encode_key_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_key_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, ValueError):
        key = ""
    if not key or "\x00" in key:  # PostgreSQL text cannot hold NUL: never a key of ours
        raise ValidationFailed.field("cursor", "not a cursor returned by this API")
    return key
