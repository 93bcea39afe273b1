"""Pure cryptographic primitives (no I/O): AES-256-GCM sealing, keyed lookups, key derivation."""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "KEY_BYTES",
    "DecryptionError",
    "derive_key",
    "keyed_digest",
    "new_key",
    "open_sealed",
    "seal",
]

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12


class DecryptionError(Exception):
    """The ciphertext, its associated data or the key is wrong (or the key was destroyed)."""


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM: returns nonce || ciphertext || tag, bound to `aad`."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, blob: bytes, aad: bytes) -> bytes:
    if len(blob) < NONCE_BYTES + 16:
        raise DecryptionError("ciphertext too short")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except InvalidTag as exc:
        raise DecryptionError("ciphertext does not authenticate") from exc


def derive_key(root: bytes, info: bytes) -> bytes:
    """HKDF-SHA256 sub-key of `root` for one purpose (`info`), e.g. one tenant's lookup key."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(root)


def keyed_digest(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256: pseudonymous, non-reversible lookup value for an identifier."""
    return hmac.new(key, message, hashlib.sha256).digest()
