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
# Spaces, parentheses, dots, slashes and dashes, the typographic ones too (hyphen, non-breaking
# hyphen, figure dash, en and em dash, minus sign: what word processors and phone apps put in).
_PHONE_DECORATION: Final = re.compile(r"[\s().\-/\u2010-\u2015\u2212]")
_TRUNK_ZERO: Final = re.compile(r"\(\s*0\s*\)")
# The full stops UTS 46 reads as a label separator (after NFKC only the ideographic one is left).
_DOTS: Final = str.maketrans({"\u3002": "."})
_OPAQUE: Final = re.compile(r"^[\x21-\x7e]{1,200}$")
_MAX_LENGTH: Final = 320


class InvalidIdentifier(ValueError):
    """The value is not a valid identifier of its type (the message never echoes the value)."""


def _domain_label(label: str) -> str:
    """One label of a lower-cased domain in ASCII, as IDNA 2008 (UTS 46, non-transitional)
    spells it: an ASCII label as it is (an `xn--` label is already the ASCII form), any other
    one as `xn--` and the Punycode of its NFC form. Never IDNA 2003's mapping (Python's `idna`
    codec), which turns `straße.de` into `strasse.de`: another domain, another person, and
    not the `xn--strae-oqa.de` that the same address arrives as from most systems."""
    if label.isascii():
        return label
    label = unicodedata.normalize("NFC", label)
    if (
        label.startswith("-")
        or label.endswith("-")
        or unicodedata.category(label[0]).startswith("M")
        or not all(c == "-" or unicodedata.category(c)[0] in "LMN" for c in label)
    ):
        raise InvalidIdentifier("not an e-mail address")
    return "xn--" + label.encode("punycode").decode("ascii")


def _email(value: str) -> str:
    value = unicodedata.normalize("NFC", value.strip())
    # NFC again after lower case: lower-casing can leave marks out of canonical order (a dotted
    # capital I before a mark below), and the stored spelling must normalise to itself.
    lowered = unicodedata.normalize("NFC", value.lower())
    # No control character (NUL, C1 and the like) belongs in an address, nor in its lookup hash;
    # nor an invisible format character (a zero-width space pasted along with it), which would
    # make the same address another person.
    if not _EMAIL.match(lowered) or any(unicodedata.category(c) in {"Cc", "Cf"} for c in value):
        raise InvalidIdentifier("not an e-mail address")
    local = lowered.rpartition("@")[0]
    domain = value.rpartition("@")[2]
    # The domain as UTS 46 maps it: compatibility forms (full-width letters, the ideographic
    # full stop) to their plain ones, then lower case letter by letter (str.lower() would
    # spell a word-final capital sigma as the final sigma, which UTS 46 does not).
    domain = "".join(c.lower() for c in unicodedata.normalize("NFKC", domain))
    labels = [_domain_label(label) for label in domain.translate(_DOTS).split(".")]
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels):  # noqa: PLR2004
        raise InvalidIdentifier("not an e-mail address")
    return local + "@" + ".".join(labels)


def _phone(value: str) -> str:
    # NFKC: full-width digits and plus sign (as Japanese and Chinese input methods type them)
    # are the ASCII ones. A "(0)" is the trunk prefix written beside the country code
    # ("+49 (0)30 123456"): not dialled from abroad, so not part of the E.164 number.
    compact = _TRUNK_ZERO.sub("", unicodedata.normalize("NFKC", value).strip())
    compact = _PHONE_DECORATION.sub("", compact)
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
