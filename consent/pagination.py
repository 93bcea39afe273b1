"""Keyset pagination: opaque cursors over (created_at, id) newest first, over a sequence number,
or over a unique text key in ascending order. A list fetches `limit + 1` rows and cuts them with
`page_of`, so `next_cursor` is set only when another item follows.

The lists of one subject (its consent history, preference history, data activity) take a
sequence number bound to the list it pages (`encode_subject_cursor`): a cursor of another
subject's list, or of another kind of list, is refused (400) instead of answering a page of
this one from a position that means nothing here."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final, Literal, TypeVar
from uuid import UUID

import msgspec

from consent.errors import ValidationFailed
from consent.locales import Localized

__all__ = [
    "Cursor",
    "SubjectList",
    "check_limit",
    "decode_cursor",
    "decode_key_cursor",
    "decode_seq_cursor",
    "decode_subject_cursor",
    "encode_cursor",
    "encode_key_cursor",
    "encode_seq_cursor",
    "encode_subject_cursor",
    "page_of",
]

MAX_LIMIT = 200
SubjectList = Literal["consent", "preference", "activity"]
_SEQ: Final = 8
_TAG: Final = 8
_MAX_SEQ: Final = 2**63 - 1  # sequence numbers are bigints
_NOT_OURS: Final = Localized("cursor-not-ours")

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
        raise ValidationFailed.field("cursor", _NOT_OURS) from None


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed.field("limit", Localized("limit-range", max=MAX_LIMIT))
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
    raw = _unpadded_b64(cursor)
    seq = int.from_bytes(raw, "big")
    if len(raw) != _SEQ or seq > _MAX_SEQ:  # beyond bigint: a 400, not the database's error
        raise ValidationFailed.field("cursor", _NOT_OURS)
    return seq


def _unpadded_b64(cursor: str) -> bytes:
    """The bytes of a cursor (URL-safe base64 without its padding); b"" when it is none."""
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        return b""


def _subject_tag(kind: SubjectList, subject_id: UUID) -> bytes:
    digest = hashlib.sha256(b"consent/history-cursor/" + kind.encode() + subject_id.bytes)
    return digest.digest()[:_TAG]


def encode_subject_cursor(kind: SubjectList, subject_id: UUID, seq: int) -> str:
    """A cursor after `seq` in the `kind` list of the subject asked about as `subject_id`."""
    raw = seq.to_bytes(_SEQ, "big") + _subject_tag(kind, subject_id)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_subject_cursor(kind: SubjectList, subject_id: UUID, cursor: str | None) -> int | None:
    """The sequence number to continue below; None for the first page. 400 for a cursor that
    `encode_subject_cursor` did not make for this (kind, subject)."""
    if cursor is None:
        return None
    raw = _unpadded_b64(cursor)
    seq = int.from_bytes(raw[:_SEQ], "big")
    if (
        len(raw) != _SEQ + _TAG
        or raw[_SEQ:] != _subject_tag(kind, subject_id)
        or not 0 < seq <= _MAX_SEQ
    ):
        raise ValidationFailed.field("cursor", Localized("cursor-not-this-list", kind=kind))
    return seq


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
        raise ValidationFailed.field("cursor", _NOT_OURS)
    return key
