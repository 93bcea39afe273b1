"""API key strings: `csk_<key id>_<secret>`; only SHA-256 of the secret is stored."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import Final

__all__ = ["generate_api_key", "parse_api_key", "secret_digest", "secret_matches"]

_PREFIX: Final = "csk"
_FORMAT: Final = re.compile(r"^csk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


def generate_api_key() -> tuple[str, str, bytes]:
    """Returns (full key string shown once, public key id, secret digest to store)."""
    key_id = secrets.token_hex(8)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return f"{_PREFIX}_{key_id}_{secret}", key_id, secret_digest(secret)


def parse_api_key(value: str) -> tuple[str, str] | None:
    match = _FORMAT.match(value)
    return (match.group(1), match.group(2)) if match else None


def secret_digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def secret_matches(secret: str, stored: bytes) -> bool:
    return hmac.compare_digest(secret_digest(secret), stored)
