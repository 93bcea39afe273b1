"""A spool whose disk pages never hold what was written to it in the clear.

Answers that may be larger than memory should hold (an audience's allowed identifiers) are
written in pieces and read back once, in order. `SealedSpool` keeps them in memory up to
`max_memory` bytes and beyond that in an anonymous temporary file, as it always did, but each
piece is sealed first (AES-256-GCM) under a key that exists only in this object's memory: a
disk, a swap-out of the page cache or a leftover file block shows ciphertext only, and closing
the spool (or a crash) forgets the key. Pure apart from the temporary file.

A piece is `length (4 bytes, big-endian) || ciphertext || tag`; its nonce is its number, and
its number is also its associated data, so a piece cannot be reordered or replayed, and the
reader checks that it read as many pieces as were written.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Iterator
from types import TracebackType
from typing import Final, Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from consent.crypto.aead import DecryptionError, new_key

__all__ = ["DEFAULT_MEMORY", "SealedSpool"]

DEFAULT_MEMORY: Final = 4 * 1024 * 1024
_LENGTH: Final = struct.Struct(">I")
_MAX_PIECE: Final = 2**31


class SealedSpool:
    """Write pieces of bytes, then read them back once, in order (`pieces`)."""

    def __init__(self, max_memory: int = DEFAULT_MEMORY) -> None:
        if max_memory < 1:
            raise ValueError("max_memory must be at least 1 byte")
        self._aead = AESGCM(new_key())
        self._file = tempfile.SpooledTemporaryFile(max_size=max_memory)  # noqa: SIM115
        self._max_memory = max_memory
        self._size = 0
        self._rolled = False
        self._written = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @staticmethod
    def _nonce(number: int) -> bytes:
        return number.to_bytes(12, "big")

    @property
    def on_disk(self) -> bool:
        """Whether the pieces have outgrown memory into the temporary file."""
        return self._rolled or self._size > self._max_memory

    def fileno(self) -> int:
        """The temporary file's descriptor (it rolls over to disk and is flushed first)."""
        self._file.rollover()
        self._file.flush()
        self._rolled = True
        return self._file.fileno()

    def write(self, data: bytes) -> None:
        if len(data) >= _MAX_PIECE:
            raise ValueError("a piece must be smaller than 2 GiB")
        number = self._written
        sealed = self._aead.encrypt(self._nonce(number), data, self._nonce(number))
        self._file.write(_LENGTH.pack(len(sealed)) + sealed)
        self._size += _LENGTH.size + len(sealed)
        self._written += 1

    def pieces(self) -> Iterator[bytes]:
        """The pieces as written. Raises DecryptionError if the file was changed."""
        self._file.seek(0)
        for number in range(self._written):
            head = self._file.read(_LENGTH.size)
            if len(head) != _LENGTH.size:
                raise DecryptionError("the spool is shorter than what was written to it")
            (size,) = _LENGTH.unpack(head)
            sealed = self._file.read(size)
            try:
                yield self._aead.decrypt(self._nonce(number), sealed, self._nonce(number))
            except InvalidTag:
                raise DecryptionError("a piece of the spool was changed") from None

    def close(self) -> None:
        self._file.close()
