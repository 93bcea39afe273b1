"""Phone numbers (consent/subjects/identifiers.py): the national trunk prefix written after the
country code ("+49 030 1234567") is dropped where the country's rules (libphonenumber) say it is
one, and nothing else changes: the values accepted and refused, and every other spelling, are
those of the rule before it (`_before`, a copy of it)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent.decisions.service import normalize_identifier
from consent.subjects.identifiers import InvalidIdentifier, normalize

pytestmark = pytest.mark.unit

_DECORATION = re.compile(r"[\s().\-/\u2010-\u2015\u2212]")
_TRUNK_ZERO = re.compile(r"\(\s*0\s*\)")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_CODES = sorted(str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
_FULL_WIDTH = str.maketrans({c: chr(ord(c) + 0xFEE0) for c in "+0123456789"})


def _before(value: str) -> str:
    """The phone rule before the trunk prefix was dropped (only a "(0)" was)."""
    compact = _TRUNK_ZERO.sub("", unicodedata.normalize("NFKC", value).strip())
    compact = _DECORATION.sub("", compact)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if not _E164.match(compact):
        raise InvalidIdentifier("not a phone number in international format (+<country><number>)")
    return compact


def _now(value: str) -> str:
    return normalize("phone", value)


def _outcome(rule: Callable[[str], str], value: str) -> str:
    try:
        return rule(value)
    except InvalidIdentifier as error:
        return f"refused: {error}"


def _code(number: str) -> str | None:
    return next((number[1:end] for end in (2, 3, 4) if number[1:end] in _CODES), None)


@pytest.mark.parametrize(
    ("typed", "e164"),
    [
        # The trunk prefix after the country code is dropped where the country has one ...
        ("+49 030 1234567", "+49301234567"),
        ("0049 030 1234567", "+49301234567"),
        ("+49 (0)30 1234567", "+49301234567"),
        ("+44 020 7946 0018", "+442079460018"),
        ("+33 01 23 45 67 89", "+33123456789"),
        ("+49 030 1234567".translate(_FULL_WIDTH), "+49301234567"),
        # ... and kept where the 0 is part of the number (Italy).
        ("+39 06 1234 5678", "+390612345678"),
        # Numbers libphonenumber calls invalid or impossible are taken as before.
        ("+1 555 0100", "+15550100"),
        ("+49 0 12345", "+4912345"),
        # Only digits right after the country code are ever dropped: where libphonenumber would
        # rewrite the number (Argentina's "15" to "9"), or the result would change again (a
        # second 0), the number stays as typed.
        ("+54 011 15 1234 5678", "+540111512345678"),
        ("+49 00 30 1234567", "+4900301234567"),
        # A prefix that is not a 0 is not looked at.
        ("+7 8 495 123 45 67", "+784951234567"),
    ],
)
def test_the_trunk_prefix_is_dropped_where_the_country_has_one(typed: str, e164: str) -> None:
    assert normalize("phone", typed) == e164
    assert normalize("phone", e164) == e164
    # Decisions and audiences normalise phone numbers the same way (no shortcut for them).
    assert normalize_identifier("phone", typed) == e164


_SEPARATORS = st.sampled_from(["", " ", "-", ".", "/", "\u2013", "\u2212", "\u00a0"])
_TRUNKS = st.sampled_from(["", "", "0", "0", "(0)", "00", "06", "8", "1", "0 0"])


@st.composite
def phone_spellings(draw: st.DrawFn) -> str:
    """A number as people type it: + or 00, a country code (mostly a real one), maybe a trunk
    prefix, groups of digits between separators, maybe in full-width digits."""
    start = draw(st.sampled_from(["+", "00", "+", "", "0"]))
    code = draw(st.one_of(st.sampled_from(_CODES), st.from_regex(r"\A[0-9]{1,3}\Z")))
    groups = draw(st.lists(st.from_regex(r"\A[0-9]{1,5}\Z"), min_size=1, max_size=5))
    parts = [start + code, draw(_TRUNKS), *groups]
    value = "".join(part + draw(_SEPARATORS) for part in parts if part)
    return value.translate(_FULL_WIDTH) if draw(st.booleans()) else value


_ANY = st.one_of(phone_spellings(), st.text(alphabet="+0123456789 ()-.x", max_size=24))


@settings(max_examples=3000, deadline=None)
@given(value=_ANY)
def test_a_value_is_accepted_or_refused_as_before(value: str) -> None:
    before, now = _outcome(_before, value), _outcome(_now, value)
    assert before.startswith("refused") == now.startswith("refused")
    if before.startswith("refused"):
        assert now == before
        return
    code = _code(before)
    if code is None or before[1 + len(code)] != "0":
        assert now == before  # no 0 after the country code: nothing to drop
    else:
        # The same country, the digits right after its code kept or some dropped (a trunk
        # prefix: it starts with the 0).
        assert _code(now) == code
        assert before.endswith(now[1 + len(code) :])
        assert len(now) <= len(before)


@settings(max_examples=3000, deadline=None)
@given(value=_ANY)
def test_a_normalised_number_normalises_to_itself(value: str) -> None:
    try:
        once = normalize("phone", value)
    except InvalidIdentifier:
        return
    assert normalize("phone", once) == once
    assert normalize_identifier("phone", once) == once
