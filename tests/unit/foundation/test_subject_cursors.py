"""A subject's list cursors (consent and preference history, activity) continue only the list
they came from, and only within `seq`'s range."""

from __future__ import annotations

import base64
from typing import get_args
from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent.errors import ValidationFailed
from consent.pagination import (
    SubjectList,
    decode_seq_cursor,
    decode_subject_cursor,
    encode_seq_cursor,
    encode_subject_cursor,
)

pytestmark = pytest.mark.unit

seqs = st.integers(1, 2**63 - 1)


@given(seq=seqs, subject=st.uuids())
def test_a_cursor_continues_its_own_history(seq: int, subject: UUID) -> None:
    for kind in get_args(SubjectList):
        cursor = encode_subject_cursor(kind, subject, seq)
        assert decode_subject_cursor(kind, subject, cursor) == seq
        assert decode_subject_cursor(kind, subject, None) is None


@given(seq=seqs, subject=st.uuids(), other=st.uuids())
def test_a_cursor_of_another_history_is_refused(seq: int, subject: UUID, other: UUID) -> None:
    cursor = encode_subject_cursor("consent", subject, seq)
    with pytest.raises(ValidationFailed):
        decode_subject_cursor("preference", subject, cursor)
    if other != subject:
        with pytest.raises(ValidationFailed):
            decode_subject_cursor("consent", other, cursor)


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "AAAAAAAAAAE",  # an 8-byte sequence number alone: no history named
        base64.urlsafe_b64encode(b"\xff" * 16).decode(),
    ],
)
def test_garbage_is_refused(cursor: str) -> None:
    with pytest.raises(ValidationFailed):
        decode_subject_cursor("consent", uuid4(), cursor)


def test_a_sequence_number_beyond_bigint_is_refused() -> None:
    subject = uuid4()
    for seq in (0, 2**63, 2**64 - 1):
        with pytest.raises(ValidationFailed):
            decode_subject_cursor(
                "consent", subject, encode_subject_cursor("consent", subject, seq)
            )


def test_a_plain_sequence_cursor_beyond_bigint_is_refused() -> None:
    assert decode_seq_cursor(encode_seq_cursor(2**63 - 1)) == 2**63 - 1
    with pytest.raises(ValidationFailed):
        decode_seq_cursor(encode_seq_cursor(2**63))
