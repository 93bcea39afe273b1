# Copyright 2026 The consent authors
# SPDX-License-Identifier: Apache-2.0
"""Proof wire formats: ``c2sp.org/tlog-proof@v1`` text and consistency-proof JSON.

A tlog-proof (extension ``.tlog-proof``) is::

    c2sp.org/tlog-proof@v1
    extra <base64>            (optional, unauthenticated)
    index <n>                 (zero-based, no leading zeros)
    <base64 hash>             (zero or more: leaf sibling first, root child last)

    <signed checkpoint note, verbatim>

A consistency proof is a JSON list of base64 hashes in RFC 6962 §2.1.2 order. Parsing is strict
(canonical base64, 32-byte hashes, no leading zeros); it does not verify anything. Standard
library only.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from consent.audit.checkpoint import NoteError, decode_base64

__all__ = [
    "TLOG_PROOF_HEADER",
    "ProofFormatError",
    "TlogProof",
    "format_consistency_proof",
    "format_tlog_proof",
    "parse_consistency_proof",
    "parse_tlog_proof",
]

TLOG_PROOF_HEADER: Final = "c2sp.org/tlog-proof@v1"
_HASH_SIZE: Final = 32
_MAX_INDEX: Final = 2**64 - 2
_INDEX = re.compile(r"index (0|[1-9][0-9]*)")


class ProofFormatError(ValueError):
    """A tlog-proof or consistency proof document is malformed."""


@dataclass(frozen=True, slots=True)
class TlogProof:
    """A parsed tlog-proof: leaf index, inclusion proof, signed checkpoint note, extra data."""

    index: int
    proof: tuple[bytes, ...]
    checkpoint: str
    extra: bytes | None = None


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _hash(text: str, what: str) -> bytes:
    try:
        raw = decode_base64(text, what)
    except NoteError as exc:
        raise ProofFormatError(str(exc)) from exc
    if len(raw) != _HASH_SIZE:
        raise ProofFormatError(f"{what} must be {_HASH_SIZE} bytes")
    return raw


def format_tlog_proof(proof: TlogProof) -> str:
    """Serialize a tlog-proof; the checkpoint note is appended verbatim."""
    if not 0 <= proof.index <= _MAX_INDEX or not proof.checkpoint.endswith("\n"):
        raise ProofFormatError("index out of range or checkpoint not newline-terminated")
    if any(len(value) != _HASH_SIZE for value in proof.proof):
        raise ProofFormatError("proof hashes must be 32 bytes")
    lines = [TLOG_PROOF_HEADER]
    if proof.extra is not None:
        lines.append(f"extra {_b64(proof.extra)}")
    lines.append(f"index {proof.index}")
    lines.extend(_b64(value) for value in proof.proof)
    return "\n".join(lines) + "\n\n" + proof.checkpoint


def parse_tlog_proof(text: str | bytes) -> TlogProof:
    """Parse a tlog-proof strictly. The embedded checkpoint note is returned, not verified."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProofFormatError("tlog-proof must be UTF-8") from exc
    head, separator, checkpoint = text.partition("\n\n")
    if not separator or not checkpoint:
        raise ProofFormatError("missing blank line and checkpoint")
    lines = head.split("\n")
    if lines[0] != TLOG_PROOF_HEADER or len(lines) < 2:  # noqa: PLR2004
        raise ProofFormatError(f"first line must be {TLOG_PROOF_HEADER}")
    position, extra = 1, None
    if lines[1].startswith("extra "):
        extra = _extra(lines[1][len("extra ") :])
        position = 2
    match = _INDEX.fullmatch(lines[position]) if position < len(lines) else None
    if match is None or int(match.group(1)) > _MAX_INDEX:
        raise ProofFormatError("malformed index line")
    hashes = tuple(
        _hash(line, f"proof[{number}]") for number, line in enumerate(lines[position + 1 :])
    )
    return TlogProof(int(match.group(1)), hashes, checkpoint, extra)


def _extra(encoded: str) -> bytes:
    try:
        return decode_base64(encoded, "extra")
    except NoteError as exc:
        raise ProofFormatError(str(exc)) from exc


def format_consistency_proof(proof: Sequence[bytes]) -> str:
    """A consistency proof as a JSON list of base64 hashes."""
    if any(len(value) != _HASH_SIZE for value in proof):
        raise ProofFormatError("proof hashes must be 32 bytes")
    return json.dumps([_b64(value) for value in proof])


def parse_consistency_proof(data: str | bytes) -> tuple[bytes, ...]:
    """Parse a JSON list of base64 32-byte hashes."""
    try:
        items = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProofFormatError("consistency proof is not JSON") from exc
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ProofFormatError("consistency proof must be a JSON list of strings")
    return tuple(_hash(item, f"proof[{number}]") for number, item in enumerate(items))
