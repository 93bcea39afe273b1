"""Identifiers the service generates.

Events and audit leaves get time-ordered UUIDs (version 7): their btree indexes then grow at
the right-hand edge instead of at random pages, which keeps inserts and the integrator's
leaf-index updates in cache. Subjects keep random (version 4) ids.
"""

from __future__ import annotations

import os
import time
from uuid import UUID

__all__ = ["uuid7", "uuid7_floor", "uuid7_ms"]

_TIME_SHIFT = 80  # the 48-bit Unix millisecond is the top of the 128 bits
_MS_MASK = (1 << 48) - 1
_VERSION_7 = 7


def uuid7(now_ns: int | None = None) -> UUID:
    """A time-ordered UUID (RFC 9562 version 7): 48-bit Unix milliseconds, then random bits."""
    ms = (now_ns if now_ns is not None else time.time_ns()) // 1_000_000
    value = uuid7_floor(ms).int | int.from_bytes(os.urandom(10)) & ((1 << _TIME_SHIFT) - 1)
    value = (value & ~(0xF << 76)) | (_VERSION_7 << 76)
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 9562 variant
    return UUID(int=value)


def uuid7_ms(value: UUID) -> int | None:
    """The Unix millisecond a UUID v7 was made in (None for ids of other versions)."""
    return value.int >> _TIME_SHIFT if value.version == _VERSION_7 else None


def uuid7_floor(ms: int) -> UUID:
    """The lowest 128-bit value whose millisecond field is `ms` (clamped to 48 bits, from 0):
    every UUID v7 made in that millisecond or later sorts at or above it."""
    return UUID(int=(max(ms, 0) & _MS_MASK) << _TIME_SHIFT)
