"""msgspec's and Litestar's words about a bad body or parameter, in another language.

A 400's field messages (`Expected `int`, got `str``, `Object missing required field `purpose``)
are msgspec's English. Each language module may give `FIELD_MESSAGES` (English shape -> template,
with `{slot}`s), `FIELD_REASONS` (the reasons of malformed JSON) and `FIELD_PATH` (msgspec's
` - at `$.path`` suffix); `in_language` rewrites a message of a known shape and returns any other
message unchanged (English is never replaced by a guess). Types, bounds, lengths, field names and
values are copied as they are. English costs nothing: it has no table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, NamedTuple

from consent.locales import de

__all__ = ["SLOTS", "in_language", "shape_of"]

# What each `{slot}` of a shape may hold (the whole shape must match, start to end).
SLOTS: Final[dict[str, str]] = {
    "type": r"[^`]+",  # msgspec's name of a type: `int`, `int | null`, `array`, `datetime`
    "got": r"[^`]+",
    "field": r".+",  # a field name as the client sent it
    "n": r"\d+",
    "m": r"\d+",
    "k": r"\d+",
    "op": r"<=|>=|<|>",
    "bound": r"-?(?:inf|nan|\d+(?:\.\d+)?(?:e[-+]\d+)?)",  # an int, or a float's repr
    "regex": r"'.*'|\".*\"",  # the repr of the pattern
    "value": r".+",  # the repr of the value
    "reason": "",  # one of the language's FIELD_REASONS
    "country": r"[A-Z]{2}",  # an ISO 3166-1 alpha-2 code (consent.decisions.jurisdictions)
}
_SLOT: Final = re.compile(r"\{(\w+)\}")
_AT_PATH: Final = re.compile(r" - at `(\$[^`]*)`\Z")


class _Shape(NamedTuple):
    english: str
    prefix: str  # the shape's text before its first slot: a cheap test before the regex
    pattern: re.Pattern[str]
    template: str


class _Table(NamedTuple):
    shapes: tuple[_Shape, ...]
    reasons: Mapping[str, str]
    path: str


def _compile(messages: Mapping[str, str], reasons: Mapping[str, str], path: str) -> _Table:
    alternatives = "|".join(re.escape(r) for r in sorted(reasons, key=len, reverse=True))
    slots = {**SLOTS, "reason": alternatives}
    shapes: list[_Shape] = []
    for english, template in messages.items():
        parts = _SLOT.split(english)  # literal, slot, literal, slot, ..., literal
        regex = "".join(
            re.escape(part) if i % 2 == 0 else f"(?P<{part}>{slots[part]})"
            for i, part in enumerate(parts)
        )
        shapes.append(_Shape(english, parts[0], re.compile(regex, re.DOTALL), template))
    return _Table(tuple(shapes), reasons, path)


_TABLES: Final[dict[str, _Table]] = {
    "de": _compile(de.FIELD_MESSAGES, de.FIELD_REASONS, de.FIELD_PATH),
}


def in_language(message: str, language: str) -> str:
    """`message` in `language` if it has a known shape there; else `message` itself."""
    table = _TABLES.get(language)
    found = None if table is None else _find(message, table)
    if table is None or found is None:
        return message
    shape, values, path = found
    if "reason" in values:
        values["reason"] = table.reasons[values["reason"]]
    text = _fill(shape.template, values)
    return text if path is None else text + _fill(table.path, {"path": path})


def shape_of(message: str, language: str) -> str | None:
    """The English shape `message` has in `language`'s table (None: none, it stays English)."""
    table = _TABLES.get(language)
    found = None if table is None else _find(message, table)
    return None if found is None else found[0].english


def _find(message: str, table: _Table) -> tuple[_Shape, dict[str, str], str | None] | None:
    """The shape `message` has (its slots' values, and the path msgspec appended, if any)."""
    at = _AT_PATH.search(message)
    if at is not None:  # before the whole: a field name may hold what looks like a path
        head = message[: at.start()]
        for shape in table.shapes:
            if head.startswith(shape.prefix) and (found := shape.pattern.fullmatch(head)):
                return shape, found.groupdict(), at.group(1)
    for shape in table.shapes:
        if message.startswith(shape.prefix) and (found := shape.pattern.fullmatch(message)):
            return shape, found.groupdict(), None
    return None


def _fill(template: str, values: Mapping[str, str]) -> str:
    # Not str.format: a value is copied as it is, never read as a template.
    return _SLOT.sub(lambda slot: values[slot.group(1)], template)
