"""msgspec's and Litestar's field messages in German, by shape (consent.locales.fields): every
template, the messages real msgspec produces, and two properties: a message of no known shape
comes back unchanged (the very object), and a translation keeps every number and every
backticked token (types, field names, paths) of the original."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import re
import uuid
from collections import Counter
from typing import Annotated, Any, Literal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent.locales import de, fields

pytestmark = pytest.mark.unit

# One example per shape: English message -> its German.
EXAMPLES: dict[str, tuple[str, str]] = {
    "Expected `{type}`, got `{got}`": (
        "Expected `int | null`, got `float`",
        "Erwartet `int | null`, erhalten `float`",
    ),
    "Expected `{type}`": ("Expected `int`", "Erwartet `int`"),
    "Expected `{type}` with a timezone component": (
        "Expected `datetime` with a timezone component",
        "Erwartet `datetime` mit Zeitzone",
    ),
    "Expected `{type}` with no timezone component": (
        "Expected `time` with no timezone component",
        "Erwartet `time` ohne Zeitzone",
    ),
    "Expected `{type}` of length {op} {n}": (
        "Expected `str` of length <= 200",
        "Erwartet `str` der Länge <= 200",
    ),
    "Expected `{type}` {op} {bound}": (
        "Expected `float` > -1.5e-07",
        "Erwartet `float` > -1.5e-07",
    ),
    "Expected `{type}` that's a multiple of {bound}": (
        "Expected `int` that's a multiple of 3",
        "Erwartet `int` als Vielfaches von 3",
    ),
    "Expected `{type}` matching regex {regex}": (
        "Expected `str` matching regex '^[a-z][a-z0-9_.-]{0,63}$'",
        "Erwartet `str` passend zum regulären Ausdruck '^[a-z][a-z0-9_.-]{0,63}$'",
    ),
    "Expected `array` of length {n}": (
        "Expected `array` of length 2",
        "Erwartet `array` der Länge 2",
    ),
    "Expected `array` of length {n}, got {m}": (
        "Expected `array` of length 2, got 3",
        "Erwartet `array` der Länge 2, erhalten Länge 3",
    ),
    "Expected `array` of length {n} to {m}": (
        "Expected `array` of length 1 to 2",
        "Erwartet `array` der Länge 1 bis 2",
    ),
    "Expected `array` of length {n} to {m}, got {k}": (
        "Expected `array` of length 1 to 2, got 5",
        "Erwartet `array` der Länge 1 bis 2, erhalten Länge 5",
    ),
    "Expected `array` of at least length {n}, got {m}": (
        "Expected `array` of at least length 1, got 0",
        "Erwartet `array` der Mindestlänge 1, erhalten Länge 0",
    ),
    "Expected `array` of at most length {n}": (
        "Expected `array` of at most length 4",
        "Erwartet `array` der Höchstlänge 4",
    ),
    "Expected `array` of at most length {n}, got {m}": (
        "Expected `array` of at most length 4, got 6",
        "Erwartet `array` der Höchstlänge 4, erhalten Länge 6",
    ),
    "Object contains unknown field `{field}`": (
        "Object contains unknown field `colour`",
        "Objekt enthält unbekanntes Feld `colour`",
    ),
    "Object missing required field `{field}`": (
        "Object missing required field `purpose`",
        "Im Objekt fehlt das Pflichtfeld `purpose`",
    ),
    "Invalid enum value": ("Invalid enum value", "Ungültiger Enum-Wert"),
    "Invalid enum value {value}": ("Invalid enum value 'maybe'", "Ungültiger Enum-Wert 'maybe'"),
    "Invalid value {value}": ("Invalid value 7", "Ungültiger Wert 7"),
    "Invalid RFC3339 encoded datetime": (
        "Invalid RFC3339 encoded datetime",
        "Ungültiger Zeitpunkt (RFC3339 erwartet)",
    ),
    "Invalid RFC3339 encoded date": (
        "Invalid RFC3339 encoded date",
        "Ungültiges Datum (RFC3339 erwartet)",
    ),
    "Invalid RFC3339 encoded time": (
        "Invalid RFC3339 encoded time",
        "Ungültige Uhrzeit (RFC3339 erwartet)",
    ),
    "Invalid ISO8601 duration": ("Invalid ISO8601 duration", "Ungültige Dauer (ISO8601 erwartet)"),
    "Only units 'D', 'H', 'M', and 'S' are supported when parsing ISO8601 durations": (
        "Only units 'D', 'H', 'M', and 'S' are supported when parsing ISO8601 durations",
        "In ISO8601-Dauern sind nur die Einheiten 'D', 'H', 'M' und 'S' erlaubt",
    ),
    "Invalid UUID": ("Invalid UUID", "Ungültige UUID"),
    "Invalid UUID bytes": ("Invalid UUID bytes", "Ungültige UUID-Bytes"),
    "Invalid base64 encoded string": (
        "Invalid base64 encoded string",
        "Ungültige Base64-Zeichenkette",
    ),
    "Invalid decimal string": ("Invalid decimal string", "Ungültige Dezimalzahl"),
    "Invalid epoch timestamp": ("Invalid epoch timestamp", "Ungültiger Unix-Zeitstempel"),
    "Timestamp is out of range": (
        "Timestamp is out of range",
        "Zeitstempel außerhalb des gültigen Bereichs",
    ),
    "Duration is out of range": (
        "Duration is out of range",
        "Dauer außerhalb des gültigen Bereichs",
    ),
    "Number out of range": ("Number out of range", "Zahl außerhalb des gültigen Bereichs"),
    "Integer value out of range": (
        "Integer value out of range",
        "Ganzzahl außerhalb des gültigen Bereichs",
    ),
    "Input data was truncated": (
        "Input data was truncated",
        "Die Eingabe endet vorzeitig (abgeschnitten)",
    ),
    "JSON is malformed: {reason} (byte {n})": (
        "JSON is malformed: trailing comma in object (byte 12)",
        "JSON ist fehlerhaft: überzähliges Komma im Objekt (Byte 12)",
    ),
    "jurisdiction is not an ISO 3166-1 country or ISO 3166-2 subdivision code": (
        "jurisdiction is not an ISO 3166-1 country or ISO 3166-2 subdivision code",
        (
            "jurisdiction ist kein Ländercode nach ISO 3166-1 und kein Code einer Untergliederung "
            "nach ISO 3166-2"
        ),
    ),
    "jurisdiction is not an ISO 3166-1 country or ISO 3166-2 subdivision code; for this country "
    "use {country}": (
        (
            "jurisdiction is not an ISO 3166-1 country or ISO 3166-2 subdivision code; for this "
            "country use GB"
        ),
        (
            "jurisdiction ist kein Ländercode nach ISO 3166-1 und kein Code einer Untergliederung "
            "nach ISO 3166-2; für dieses Land verwenden Sie GB"
        ),
    ),
    "jurisdiction is not an ISO 3166-1 country or ISO 3166-2 subdivision code; {country} is "
    "known, its subdivision is not (or send the country alone)": (
        (
            "jurisdiction is not an ISO 3166-1 country or ISO 3166-2 subdivision code; US is "
            "known, its subdivision is not (or send the country alone)"
        ),
        (
            "jurisdiction ist kein Ländercode nach ISO 3166-1 und kein Code einer Untergliederung "
            "nach ISO 3166-2; US ist bekannt, diese Untergliederung nicht (oder senden Sie nur das "
            "Land)"
        ),
    ),
}

# Near misses: messages of no known shape, which must stay exactly as they are.
NEAR_MISSES = [
    "",
    "expected `int`, got `str`",  # another case
    "Expected `int`, got `str`.",
    "Expected `int`, got str",
    "Expected `int` >= one",
    "Expected `int` => 1",
    "Expected `str` of length <= -1",
    "Expected `str` matching regex ^a$",  # not a repr
    "Invalid enum values",
    "Invalid UUID!",
    "JSON is malformed: a reason msgspec may add one day (byte 3)",
    "JSON is malformed: trailing comma in object",
    "Object contains unknown field colour",
    "MessagePack data is malformed: trailing characters (byte 3)",
    "Missing required query parameter 'limit' for path /v1/purposes",
    "not a cursor returned by this API",  # the service's own words
    "The request body is empty.",
]

_NUMBER = re.compile(r"\d+")
_BACKTICKED = re.compile(r"`[^`]*`")


def _kept(original: str, translated: str) -> None:
    """Every number and backticked token of `original` is in `translated` (as often)."""
    for token in (_NUMBER, _BACKTICKED):
        before, after = Counter(token.findall(original)), Counter(token.findall(translated))
        assert not before - after, (original, translated)


def test_every_shape_has_an_example() -> None:
    assert set(EXAMPLES) == set(de.FIELD_MESSAGES)


@pytest.mark.parametrize("shape", list(EXAMPLES))
def test_every_template(shape: str) -> None:
    english, german = EXAMPLES[shape]
    assert fields.shape_of(english, "de") == shape
    assert fields.in_language(english, "de") == german
    _kept(english, german)
    assert fields.in_language(english, "en") is english  # English: untouched


@pytest.mark.parametrize("english", list(de.FIELD_MESSAGES))
def test_every_template_keeps_its_slots_and_is_german(english: str) -> None:
    german = de.FIELD_MESSAGES[english]
    slots = re.compile(r"\{(\w+)\}")
    assert Counter(slots.findall(german)) == Counter(slots.findall(english))
    assert set(slots.findall(english)) <= set(fields.SLOTS)
    assert german != english


@pytest.mark.parametrize("reason", list(de.FIELD_REASONS))
def test_every_reason_of_malformed_json(reason: str) -> None:
    english = f"JSON is malformed: {reason} (byte 41)"
    german = fields.in_language(english, "de")
    assert german == f"JSON ist fehlerhaft: {de.FIELD_REASONS[reason]} (Byte 41)"
    _kept(english, german)


def test_msgspec_path_suffix() -> None:
    english = "Expected `int`, got `str` - at `$.choices[0].purpose`"
    assert fields.in_language(english, "de") == (
        "Erwartet `int`, erhalten `str` - bei `$.choices[0].purpose`"
    )
    # The head of no known shape: the whole stays English.
    odd = "Something new - at `$.choices[0]`"
    assert fields.in_language(odd, "de") is odd
    # A field name that looks like a path is still a field name.
    tricky = "Object contains unknown field `a` - at `$.b`"
    assert fields.in_language(tricky, "de") == "Objekt enthält unbekanntes Feld `a` - bei `$.b`"


@pytest.mark.parametrize("message", NEAR_MISSES)
def test_near_misses_stay_english(message: str) -> None:
    assert fields.shape_of(message, "de") is None
    assert fields.in_language(message, "de") is message


def test_only_german_has_a_table() -> None:
    for shape, (english, _) in EXAMPLES.items():
        assert fields.shape_of(english, "en") is None, shape
        assert fields.in_language(english, "en") is english
        assert fields.in_language(english, "fr") is english


class _Colour(enum.Enum):
    RED = "red"


class _Strict(msgspec.Struct, forbid_unknown_fields=True):
    a: int


class _Pair(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    a: int
    b: int = 0


_M = msgspec.Meta
# (type, JSON) msgspec refuses: what it says must be of a known shape.
REFUSED: list[tuple[Any, bytes]] = [
    (int, b'"x"'),
    (int | None, b"1.5"),
    (list[int], b'[1, "x"]'),
    (bool, b"1"),
    (Annotated[int, _M(ge=1)], b"0"),
    (Annotated[int, _M(le=5)], b"9"),
    (Annotated[int, _M(gt=1)], b"0"),
    (Annotated[int, _M(multiple_of=3)], b"4"),
    (Annotated[float, _M(ge=0.5)], b"0"),
    (Annotated[float, _M(lt=1e-5)], b"1"),
    (Annotated[float, _M(multiple_of=0.5)], b"0.3"),
    (Annotated[str, _M(max_length=3)], b'"abcd"'),
    (Annotated[str, _M(min_length=3)], b'"a"'),
    (Annotated[str, _M(pattern="^a$")], b'"b"'),
    (Annotated[str, _M(pattern="it's")], b'"b"'),
    (Annotated[list[int], _M(max_length=1)], b"[1, 2]"),
    (Annotated[list[int], _M(min_length=1)], b"[]"),
    (Annotated[dict[str, int], _M(max_length=1)], b'{"a": 1, "b": 2}'),
    (Annotated[bytes, _M(max_length=1)], b'"AAAA"'),
    (tuple[int, int], b"[1]"),
    (_Pair, b"[]"),
    (_Pair, b"[1, 2, 3]"),
    (_Colour, b'"blue"'),
    (Literal["a", "b"], b'"c"'),
    (Literal[1, 2], b"3"),
    (dt.datetime, b'"yesterday"'),
    (dt.date, b'"x"'),
    (dt.time, b'"x"'),
    (dt.timedelta, b'"x"'),
    (Annotated[dt.datetime, _M(tz=True)], b'"2020-01-01T00:00:00"'),
    (Annotated[dt.datetime, _M(tz=False)], b'"2020-01-01T00:00:00Z"'),
    (uuid.UUID, b'"x"'),
    (bytes, b'"!!"'),
    (decimal.Decimal, b'"x"'),
    (dt.datetime, b"1e30"),
    (int, b"1e400"),
    (dt.timedelta, b'"P99999999999999D"'),
    (_Strict, b"{}"),
    (_Strict, b'{"a": 1, "b": 2}'),
    (list[_Strict], b'[{"a": "x"}]'),
    (list[int], b"[1,"),
    (list[int], b"[1 2]"),
    (list[int], b"[1,]"),
    (dict[str, int], b"{1: 2}"),
    (dict[str, int], b'{"a" 1}'),
    (dict[str, int], b'{"a": 1,}'),
    (dict[str, int], b'{"a": 1 "b": 2}'),
    (int, b"1 2"),
    (str, b'"\\x"'),
    (str, b'"\\ud800\\u0041"'),
    (int, b"-"),
    (int, b"x"),
]


@pytest.mark.parametrize(("type_", "data"), REFUSED, ids=[repr(d) for _, d in REFUSED])
def test_what_msgspec_says_has_a_german_shape(type_: Any, data: bytes) -> None:
    with pytest.raises(msgspec.DecodeError) as refused:
        msgspec.json.decode(data, type=type_)
    english = str(refused.value)
    german = fields.in_language(english, "de")
    assert fields.shape_of(english, "de") is not None, english
    assert german != english
    assert not re.search(r"\b(Expected|Invalid|got|Object|malformed|at)\b", german), german
    _kept(english, german)


# -- properties ---------------------------------------------------------------------------------
def _slot(name: str) -> st.SearchStrategy[str]:
    if name == "reason":
        return st.sampled_from(sorted(de.FIELD_REASONS))
    # Without backticks: in a value, they make `_kept`'s token count ambiguous (the value's
    # own backticks pair with the message's); test_a_field_name_with_backticks covers them.
    values = st.from_regex(re.compile(fields.SLOTS[name], re.DOTALL), fullmatch=True)
    return values.filter(lambda value: "`" not in value)


def test_a_field_name_with_backticks_is_kept_as_sent() -> None:
    # A client may send any key: its backticks are the name's, copied as they are.
    assert (
        fields.in_language("Object contains unknown field ``` - at `$`", "de")
        == "Objekt enthält unbekanntes Feld ``` - bei `$`"
    )
    assert (
        fields.in_language("Object contains unknown field `a`b`", "de")
        == "Objekt enthält unbekanntes Feld `a`b`"
    )


@st.composite
def _shaped(draw: st.DrawFn) -> str:
    """A message of a known shape, its slots filled with anything the slot may hold."""
    shape = draw(st.sampled_from(sorted(de.FIELD_MESSAGES)))
    return re.sub(r"\{(\w+)\}", lambda slot: draw(_slot(slot.group(1))), shape)


_TEXT = st.text(st.characters(codec="utf-8"), max_size=80)
_PIECES = st.sampled_from(
    ["Expected ", "`int`", ", got ", "`str`", " of length ", "<= ", "5", " - at `$.a`", "Invalid ",
     "enum value", "Object ", "JSON is malformed: ", " (byte 3)", "'x'", " ", "`"]
)  # fmt: skip
_NEARLY = st.lists(_PIECES | _TEXT, max_size=8).map("".join)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_TEXT, _NEARLY, _shaped(), st.tuples(_shaped(), _TEXT).map("".join)))
def test_a_message_of_no_known_shape_comes_back_unchanged(message: str) -> None:
    german = fields.in_language(message, "de")
    if fields.shape_of(message, "de") is None:
        assert german is message
    else:
        assert german != message
        _kept(message, german)


@settings(max_examples=400, deadline=None)
@given(_shaped(), st.one_of(st.none(), st.from_regex(r"\$[^`]{0,20}", fullmatch=True)))
def test_a_translation_keeps_every_number_and_backticked_token(
    message: str, path: str | None
) -> None:
    if path is not None:
        message = f"{message} - at `{path}`"
    german = fields.in_language(message, "de")
    assert fields.shape_of(message, "de") is not None
    assert german != message
    _kept(message, german)
    assert fields.in_language(message, "en") is message
