"""Cursors of a subject's consent and preference histories, bound to the history they page.

A cursor holds the sequence number of the last event of its page and a tag naming the history
(its kind and the subject asked about). A cursor of another subject's history, of the other
kind of history, or with a sequence number no event can have is refused (400) instead of
answering a page of some other list, or a 500 from the database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Final, Literal
from uuid import UUID

from consent.errors import ValidationFailed

__all__ = ["HistoryKind", "decode_history_cursor", "encode_history_cursor"]

HistoryKind = Literal["consent", "preference"]
_SEQ: Final = 8
_TAG: Final = 8
_MAX_SEQ: Final = 2**63 - 1  # the events' `seq` is a bigint


def _tag(kind: HistoryKind, subject_id: UUID) -> bytes:
    return hashlib.sha256(b"consent/history-cursor/" + kind.encode() + subject_id.bytes).digest()[
        :_TAG
    ]


def encode_history_cursor(kind: HistoryKind, subject_id: UUID, seq: int) -> str:
    raw = seq.to_bytes(_SEQ, "big") + _tag(kind, subject_id)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_history_cursor(kind: HistoryKind, subject_id: UUID, cursor: str | None) -> int | None:
    """The sequence number to continue below; None for the first page. 400 for a cursor that
    `encode_history_cursor` did not make for this (kind, subject)."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    seq = int.from_bytes(raw[:_SEQ], "big")
    if len(raw) != _SEQ + _TAG or raw[_SEQ:] != _tag(kind, subject_id) or not 0 < seq <= _MAX_SEQ:
        raise ValidationFailed.field(
            "cursor", f"not a cursor of this subject's {kind} history (from its next_cursor)"
        )
    return seq
