"""The sealed spool: what is written comes back, in order; what reaches the disk is ciphertext
(an audience answer holds identifiers in the clear); a changed or shortened file is refused."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent.crypto.aead import DecryptionError
from consent.crypto.spool import SealedSpool

pytestmark = pytest.mark.unit

LINE = b'{"type": "email", "value": "ann@example.com"}\n'


def _disk_bytes(spool: SealedSpool) -> bytes:
    fd = spool.fileno()
    return os.pread(fd, os.fstat(fd).st_size, 0)


@given(st.lists(st.binary(max_size=300), max_size=20), st.integers(1, 2_000))
def test_pieces_come_back_as_written(pieces: list[bytes], max_memory: int) -> None:
    with SealedSpool(max_memory) as spool:
        for piece in pieces:
            spool.write(piece)
        assert list(spool.pieces()) == pieces
        assert spool.on_disk == (sum(4 + len(p) + 16 for p in pieces) > max_memory)


def test_beyond_memory_the_disk_holds_no_identifier_in_the_clear() -> None:
    with SealedSpool(max_memory=4096) as spool:
        for _ in range(100):
            spool.write(LINE * 50)
        assert spool.on_disk
        on_disk = _disk_bytes(spool)
        assert len(on_disk) == 100 * (4 + len(LINE) * 50 + 16)
        assert b"ann@example.com" not in on_disk
        assert b"".join(spool.pieces()) == LINE * 5000


def test_a_changed_piece_is_refused() -> None:
    with SealedSpool(max_memory=16) as spool:
        spool.write(LINE)
        spool.write(LINE)
        fd = spool.fileno()
        first = os.pread(fd, 1, 10)
        os.pwrite(fd, bytes([first[0] ^ 1]), 10)
        with pytest.raises(DecryptionError):
            list(spool.pieces())


def test_swapped_pieces_are_refused() -> None:
    with SealedSpool(max_memory=16) as spool:
        spool.write(b"a" * 40)
        spool.write(b"b" * 40)
        raw = _disk_bytes(spool)
        half = len(raw) // 2
        os.pwrite(spool.fileno(), raw[half:] + raw[:half], 0)
        with pytest.raises(DecryptionError):
            list(spool.pieces())


def test_a_shortened_spool_is_refused() -> None:
    with SealedSpool(max_memory=16) as spool:
        spool.write(LINE)
        spool.write(LINE)
        fd = spool.fileno()
        os.ftruncate(fd, os.fstat(fd).st_size // 2)
        with pytest.raises(DecryptionError):
            list(spool.pieces())


def test_no_memory_at_all_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1 byte"):
        SealedSpool(0)
