"""Which jurisdiction codes exist: ISO 3166-1 alpha-2 countries and ISO 3166-2 subdivisions.

The policy looks a request's jurisdiction up in its data (digital consent ages, the US states
where a Global Privacy Control signal has legal effect) and falls back to a default for a code
it does not list. A typo there fails open: `US-CX` for California would ignore a GPC signal, `UK`
for the United Kingdom (`GB`) would apply the default consent age 16 instead of 13. So a request
must name a code that exists; the lists (`iso3166.json`) come from Debian's `iso-codes`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

__all__ = ["check_jurisdiction", "is_known"]

_DATA: Final = json.loads((Path(__file__).parent / "iso3166.json").read_text(encoding="utf-8"))
_COUNTRIES: Final = frozenset[str](_DATA["countries"])
_SUBDIVISIONS: Final = frozenset[str](_DATA["subdivisions"])
# Codes people write for a country whose ISO code differs.
_HINTS: Final = {"UK": "GB", "EL": "GR"}


def is_known(code: str) -> bool:
    """Whether `code` is an assigned country code or one of a country's subdivision codes."""
    return code in _SUBDIVISIONS if "-" in code else code in _COUNTRIES


def check_jurisdiction(code: str | None) -> None:
    """Raise ValueError (a validation error where msgspec decodes) for a code that does not
    exist; None and known codes pass."""
    if code is None or is_known(code):
        return
    country = code.split("-", 1)[0]
    if country in _HINTS:
        hint = f"; for this country use {_HINTS[country]}"
    elif country not in _COUNTRIES:
        hint = ""
    else:
        hint = f"; {country} is known, its subdivision is not (or send the country alone)"
    # Each message has a shape in the languages' FIELD_MESSAGES (`de`): it names the country
    # once, so that its translation can name it too.
    msg = f"jurisdiction is not an ISO 3166-1 country or ISO 3166-2 subdivision code{hint}"
    raise ValueError(msg)
