# Copyright 2026 The consent authors
# SPDX-License-Identifier: Apache-2.0
"""C2SP ``signed-note`` and ``tlog-checkpoint`` with Ed25519 signatures.

A checkpoint body is ``origin\\nsize\\nbase64(root)\\n``. A signed note is the body, a blank line,
then one line per signature: ``— <key name> base64(key ID (4 bytes) || signature)`` (em dash
U+2014). The Ed25519 key ID is ``SHA-256(name || 0x0A || 0x01 || public key)[:4]`` and a verifier
key (vkey) is ``<name>+<hex key ID>+base64(0x01 || public key)``.

Parsing is strict: UTF-8, no control characters other than newline (so no CR), the signatures
separated from the text by the last blank line, canonical base64. Verification ignores
signatures from unknown keys (name and key ID must both match a trusted key), rejects the note
when a trusted key's signature is invalid, and rejects it when no trusted signature verifies.
Needs only the standard library and ``cryptography``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "MAX_SIGNATURES",
    "SIG_TYPE_ED25519",
    "Checkpoint",
    "InvalidSignatureError",
    "NoteError",
    "NoteSignature",
    "NoteSigner",
    "SignedNote",
    "UnverifiedNoteError",
    "VerifiedNote",
    "VerifierKey",
    "decode_base64",
    "format_checkpoint",
    "key_id",
    "open_checkpoint",
    "parse_checkpoint",
    "parse_note",
    "sign_checkpoint",
    "sign_note",
    "verify_note",
]

SIG_TYPE_ED25519: Final = 0x01
MAX_SIGNATURES: Final = 100
"""Notes with more signature lines are rejected (the spec requires accepting at least 16)."""
_DASH: Final = "\u2014 "
_ED25519_KEY_SIZE: Final = 32
_ED25519_SIG_SIZE: Final = 64
_HASH_SIZE: Final = 32
_KEY_ID_SIZE: Final = 4
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_HEX_KEY_ID = re.compile(r"[0-9a-f]{8}")
_MAX_SIZE: Final = 2**64 - 1


class NoteError(ValueError):
    """A note, checkpoint or verifier key is malformed."""


class InvalidSignatureError(NoteError):
    """A signature by a trusted key (matching name and key ID) does not verify."""


class UnverifiedNoteError(NoteError):
    """No signature by a trusted key was found on the note."""


def decode_base64(text: str, what: str = "base64") -> bytes:
    """Strict standard base64: alphabet, padding and canonical trailing bits."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise NoteError(f"{what} is not valid base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError(f"{what} is not canonical base64")
    return raw


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _check_name(name: str) -> str:
    if not name or any(char.isspace() or char == "+" or char < " " for char in name):
        raise NoteError("key names must be non-empty without spaces or '+'")
    return name


def key_id(name: str, public_key: bytes) -> bytes:
    """Ed25519 key ID: ``SHA-256(name || 0x0A || 0x01 || public_key)[:4]``."""
    data = name.encode("utf-8") + bytes((0x0A, SIG_TYPE_ED25519)) + public_key
    return hashlib.sha256(data).digest()[:_KEY_ID_SIZE]


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """A trusted Ed25519 note verifier key."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def from_public_key(cls, name: str, public_key: bytes) -> VerifierKey:
        if len(public_key) != _ED25519_KEY_SIZE:
            raise NoteError("Ed25519 public keys are 32 bytes")
        return cls(_check_name(name), key_id(name, public_key), public_key)

    @classmethod
    def parse(cls, vkey: str) -> VerifierKey:
        """Parse ``<name>+<hex key ID>+base64(0x01 || public key)``; the key ID must match."""
        parts = vkey.split("+", 2)  # base64 may contain "+"
        if len(parts) != 3 or not _HEX_KEY_ID.fullmatch(parts[1]):  # noqa: PLR2004
            raise NoteError("malformed verifier key")
        name, hex_id, encoded = parts
        raw = decode_base64(encoded, "verifier key")
        if len(raw) != 1 + _ED25519_KEY_SIZE or raw[0] != SIG_TYPE_ED25519:
            raise NoteError("unsupported verifier key type (only Ed25519, 0x01)")
        key = cls.from_public_key(name, raw[1:])
        if key.key_id.hex() != hex_id:
            raise NoteError("verifier key ID does not match the key")
        return key

    def __str__(self) -> str:
        encoded = _b64(bytes((SIG_TYPE_ED25519,)) + self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def verify(self, text: bytes, signature: bytes) -> bool:
        if len(signature) != _ED25519_SIG_SIZE:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, text)
        except InvalidSignature:
            return False
        return True


class NoteSigner:
    """Signs notes with an Ed25519 private key under a key name."""

    __slots__ = ("_private_key", "verifier")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        public = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._private_key = private_key
        self.verifier = VerifierKey.from_public_key(name, public)

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> NoteSigner:
        """Signer from a 32-byte Ed25519 seed (RFC 8032 private key)."""
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def name(self) -> str:
        return self.verifier.name

    @property
    def vkey(self) -> str:
        return str(self.verifier)

    def signature_line(self, text: str) -> str:
        signature = self._private_key.sign(text.encode("utf-8"))
        return f"{_DASH}{self.name} {_b64(self.verifier.key_id + signature)}\n"


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One parsed signature line."""

    name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class SignedNote:
    """A syntactically valid signed note (signatures not verified)."""

    text: str
    signatures: tuple[NoteSignature, ...]


@dataclass(frozen=True, slots=True)
class VerifiedNote:
    """A note with at least one verified trusted signature."""

    text: str
    verified_by: tuple[VerifierKey, ...]


def _check_text(text: str) -> str:
    if _CONTROL.search(text):
        raise NoteError("notes must not contain control characters other than newline")
    return text


def sign_note(text: str, signers: Sequence[NoteSigner]) -> str:
    """Sign ``text`` (which must end in a newline) with every signer."""
    if not text.endswith("\n") or not signers:
        raise NoteError("a note text ends with a newline and needs at least one signer")
    _check_text(text)
    return text + "\n" + "".join(signer.signature_line(text) for signer in signers)


def _parse_signature_line(line: str) -> NoteSignature:
    if not line.startswith(_DASH):
        raise NoteError("signature lines start with an em dash and a space")
    name, _, encoded = line[len(_DASH) :].partition(" ")
    raw = decode_base64(encoded, "signature")
    if len(raw) <= _KEY_ID_SIZE:
        raise NoteError("signature too short")
    return NoteSignature(_check_name(name), raw[:_KEY_ID_SIZE], raw[_KEY_ID_SIZE:])


def parse_note(note: str | bytes) -> SignedNote:
    """Split a signed note into text and signatures, strictly (signatures not verified)."""
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError("notes must be valid UTF-8") from exc
    _check_text(note)
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise NoteError("a note is text, a blank line and newline-terminated signature lines")
    text, block = note[: split + 1], note[split + 2 :]
    lines = block[:-1].split("\n") if block else []
    if not lines:
        raise NoteError("a note needs at least one signature line")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"more than {MAX_SIGNATURES} signatures")
    return SignedNote(text, tuple(_parse_signature_line(line) for line in lines))


def verify_note(note: str | bytes, verifiers: Sequence[VerifierKey]) -> VerifiedNote:
    """Parse and verify a note against trusted keys (see the module docstring for the rules)."""
    parsed = parse_note(note)
    text = parsed.text.encode("utf-8")
    trusted = {(key.name, key.key_id): key for key in verifiers}
    verified: dict[tuple[str, bytes], VerifierKey] = {}
    for signature in parsed.signatures:
        ident = (signature.name, signature.key_id)
        key = trusted.get(ident)
        if key is None or ident in verified:
            continue
        if not key.verify(text, signature.signature):
            raise InvalidSignatureError(f"invalid signature by trusted key {key.name}")
        verified[ident] = key
    if not verified:
        raise UnverifiedNoteError("no signature by a trusted key")
    return VerifiedNote(parsed.text, tuple(verified.values()))


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tlog-checkpoint body: origin, tree size, root hash (and rarely extension lines)."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()


def format_checkpoint(checkpoint: Checkpoint) -> str:
    """The note text ``origin\\nsize\\nbase64(root)\\n`` (plus any extension lines)."""
    lines = [checkpoint.origin, str(checkpoint.size), _b64(checkpoint.root_hash)]
    text = "\n".join([*lines, *checkpoint.extensions]) + "\n"
    if parse_checkpoint(text) != checkpoint:
        raise NoteError("checkpoint cannot be represented")
    return text


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint note text strictly."""
    _check_text(text)
    lines = text.split("\n")
    if lines.pop() != "" or len(lines) < 3 or not all(lines):  # noqa: PLR2004
        raise NoteError("a checkpoint is at least three non-empty newline-terminated lines")
    origin, size_text, root_text, *extensions = lines
    if not _DECIMAL.fullmatch(size_text) or int(size_text) > _MAX_SIZE:
        raise NoteError("malformed tree size")
    root = decode_base64(root_text, "root hash")
    if len(root) != _HASH_SIZE:
        raise NoteError("root hash must be 32 bytes")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signers: Sequence[NoteSigner]) -> str:
    """A signed note for ``checkpoint`` (store and serve it verbatim)."""
    return sign_note(format_checkpoint(checkpoint), signers)


def open_checkpoint(
    note: str | bytes, verifiers: Sequence[VerifierKey], *, origin: str
) -> tuple[Checkpoint, VerifiedNote]:
    """Verify a signed checkpoint and check that it belongs to the expected log ``origin``."""
    verified = verify_note(note, verifiers)
    checkpoint = parse_checkpoint(verified.text)
    if checkpoint.origin != origin:
        raise NoteError(f"checkpoint origin {checkpoint.origin!r} is not {origin!r}")
    return checkpoint, verified
