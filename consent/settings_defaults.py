"""Defaults shared by services built outside the app (CLI, tests, benchmarks)."""

from typing import Final

__all__ = ["DEFAULT_AUDIT_ORIGIN"]

DEFAULT_AUDIT_ORIGIN: Final = "consent.local/audit"
