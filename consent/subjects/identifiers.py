"""Identifier normalisation (pure): the same person's identifier always hashes the same way.

Built-in types: device (cookie/device id), email, customer_id, loyalty_card, phone (E.164).
Tenants may define custom types (`identifier_type`), normalised as opaque trimmed strings.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Final

import phonenumbers

__all__ = ["BUILTIN_TYPES", "InvalidIdentifier", "normalize"]

BUILTIN_TYPES: Final = frozenset({"device", "email", "customer_id", "loyalty_card", "phone"})
_EMAIL: Final = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
_DOMAIN_LABEL: Final = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_E164: Final = re.compile(r"^\+[1-9][0-9]{6,14}$")
# Spaces, parentheses, dots, slashes and dashes, the typographic ones too (hyphen, non-breaking
# hyphen, figure dash, en and em dash, minus sign: what word processors and phone apps put in).
_PHONE_DECORATION: Final = re.compile(r"[\s().\-/\u2010-\u2015\u2212]")
_TRUNK_ZERO: Final = re.compile(r"\(\s*0\s*\)")
# The country calling codes libphonenumber knows (a prefix code: no one is the start of another).
_COUNTRY_CODES: Final = frozenset(str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
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
    return _without_trunk_prefix(compact)


def _country_code(number: str) -> str | None:
    """The country calling code an E.164-shaped `number` (`+` and digits) starts with."""
    for end in (2, 3, 4):
        if number[1:end] in _COUNTRY_CODES:
            return number[1:end]
    return None


@functools.cache
def _has_trunk_prefix(code: str) -> bool:
    """Whether libphonenumber knows a national (trunk) prefix for the country code `code`:
    without one (Italy, Côte d'Ivoire) it never drops a digit, so the parser is skipped."""
    country = int(code)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
        country, phonenumbers.region_code_for_country_code(country)
    )
    return metadata is not None and metadata.national_prefix_for_parsing is not None


def _libphonenumber_e164(number: str) -> str | None:
    """`number` as libphonenumber spells it in E.164, None where it cannot parse it."""
    try:
        return phonenumbers.format_number(
            phonenumbers.parse(number, None), phonenumbers.PhoneNumberFormat.E164
        )
    except phonenumbers.NumberParseException:
        return None


def _without_trunk_prefix(number: str) -> str:
    """An E.164-shaped `number` without the national trunk prefix written after its country
    code ("+49 030 1234567", as many people and call centres write a German number, is
    +49301234567), where the country's rules (Google's libphonenumber) say it is one: Italy's
    leading 0 is part of the number (+39 06 ... stays +3906...). Only a 0 right after the code
    of a country that has a trunk prefix sends the number to the parser (which costs ten times
    the rest of the normalisation); only digits right after the country code are ever dropped;
    libphonenumber's view of what is a valid or possible number decides nothing (`+1 555 0100`
    is taken as it is). Anything else (no parse, another country code, other digits, a result
    that is not E.164-shaped or would change again) keeps `number`: so the result always
    normalises to itself."""
    code = _country_code(number)
    if code is None or number[1 + len(code)] != "0" or not _has_trunk_prefix(code):
        return number
    spelt = _libphonenumber_e164(number)
    if (
        spelt is None
        or spelt == number
        or not _E164.match(spelt)
        or _country_code(spelt) != code
        or not number.endswith(spelt[1 + len(code) :])
        # A 0 still after the country code: the spelling must be libphonenumber's own.
        or (spelt[1 + len(code)] == "0" and _libphonenumber_e164(spelt) != spelt)
    ):
        return number
    return spelt


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
