"""Times that clients send about the past (when a choice was made, when a notice was first
shown): the bounds every such time is checked against, in one place (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

from consent.errors import FieldError
from consent.locales import Localized

__all__ = ["CLOCK_SKEW", "EARLIEST", "past_time_errors"]

CLOCK_SKEW: Final = timedelta(minutes=5)
"""How far a client's clock may be ahead of the server's (or a time before a notice version's
first showing, behind it)."""

EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
"""The earliest time accepted: nothing recorded here happened before the Unix epoch (decisions
count time in nanoseconds since it), and a time near year 1 does not even convert to UTC
(`0001-01-01T00:00:00+14:00` is in year 0)."""


def past_time_errors(field: str, at: datetime | None, now: datetime) -> list[FieldError]:
    """What is wrong with `at`, a time in the past sent as `field` (None: not sent, fine)."""
    if at is None:
        return []
    if at.tzinfo is None:
        return [FieldError(field, Localized("time-zone-required"))]
    if at > now + CLOCK_SKEW:
        return [FieldError(field, Localized("in-the-future"))]
    if at < EARLIEST:
        return [FieldError(field, Localized("before-1970"))]
    return []
