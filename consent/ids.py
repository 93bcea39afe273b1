"""Identifiers the service generates.

Events and audit leaves get time-ordered UUIDs (version 7): their btree indexes then grow at
the right-hand edge instead of at random pages, which keeps inserts and the integrator's
leaf-index updates in cache. Subjects keep random (version 4) ids.
"""

from __future__ import annotations

import os
import time
from uuid import UUID

__all__ = ["uuid7"]


def uuid7(now_ns: int | None = None) -> UUID:
    """A time-ordered UUID (RFC 9562 version 7): 48-bit Unix milliseconds, then random bits."""
    ms = (now_ns if now_ns is not None else time.time_ns()) // 1_000_000
    value = (ms & ((1 << 48) - 1)) << 80 | int.from_bytes(os.urandom(10)) & ((1 << 80) - 1)
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 9562 variant
    return UUID(int=value)
