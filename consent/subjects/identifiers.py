"""Identifier normalisation (pure): the same person's identifier always hashes the same way.

Built-in types: device (cookie/device id), email, customer_id, loyalty_card, phone (E.164).
Tenants may define custom types (`identifier_type`), normalised as opaque trimmed strings.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

__all__ = ["BUILTIN_TYPES", "InvalidIdentifier", "normalize"]

BUILTIN_TYPES: Final = frozenset({"device", "email", "customer_id", "loyalty_card", "phone"})
_EMAIL: Final = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
_DOMAIN_LABEL: Final = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_E164: Final = re.compile(r"^\+[1-9][0-9]{6,14}$")
_PHONE_DECORATION: Final = re.compile(r"[\s().\-/]")
_OPAQUE: Final = re.compile(r"^[\x21-\x7e]{1,200}$")
_MAX_LENGTH: Final = 320


class InvalidIdentifier(ValueError):
    """The value is not a valid identifier of its type (the message never echoes the value)."""


def _email(value: str) -> str:
    value = unicodedata.normalize("NFC", value.strip()).lower()
    # No control character (NUL, C1 and the like) belongs in an address, nor in its lookup hash.
    if not _EMAIL.match(value) or any(unicodedata.category(c) == "Cc" for c in value):
        raise InvalidIdentifier("not an e-mail address")
    _, domain = value.rsplit("@", 1)
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidIdentifier("not an e-mail address") from None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels):  # noqa: PLR2004
        raise InvalidIdentifier("not an e-mail address")
    return value.rsplit("@", 1)[0] + "@" + ascii_domain


def _phone(value: str) -> str:
    compact = _PHONE_DECORATION.sub("", value.strip())
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if not _E164.match(compact):
        raise InvalidIdentifier("not a phone number in international format (+<country><number>)")
    return compact


def _opaque(value: str) -> str:
    value = value.strip()
    if not _OPAQUE.match(value):
        raise InvalidIdentifier("must be 1-200 visible ASCII characters")
    return value


def _loyalty_card(value: str) -> str:
    return _opaque(re.sub(r"[\s-]", "", value)).upper()


_NORMALIZERS: Final = {
    "email": _email,
    "phone": _phone,
    "device": _opaque,
    "customer_id": _opaque,
    "loyalty_card": _loyalty_card,
}


def normalize(id_type: str, value: str) -> str:
    """The canonical form of `value` as an identifier of `id_type` (custom types: opaque)."""
    if len(value) > _MAX_LENGTH:
        raise InvalidIdentifier("too long")
    return _NORMALIZERS.get(id_type, _opaque)(value)
