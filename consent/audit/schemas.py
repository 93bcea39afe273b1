"""API shapes of the audit log (leaves are served as their exact canonical bytes, base64)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

__all__ = [
    "ActivityItem",
    "ActivityPage",
    "AuditEntry",
    "AuditEventInfo",
    "EntriesPage",
    "ExportEntry",
    "ExportFile",
]


class AuditEventInfo(msgspec.Struct, frozen=True, kw_only=True):
    event_uuid: UUID
    kind: str
    # Null while the integrator has not yet placed the leaf in the tree (usually < 1 s).
    leaf_index: int | None
    log: str
    leaf: str  # base64 of the canonical leaf bytes: hash these, never a re-serialisation


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    leaf_index: int
    leaf: str


class EntriesPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[AuditEntry]
    next_start: int | None


class ActivityItem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One use of, or change to, the subject's data, with its place in the audit log."""

    event_uuid: UUID
    kind: str
    leaf_index: int | None
    occurred_at: datetime
    recorded_at: datetime
    leaf: str
    # consent.recorded / preference.recorded
    choices: list[dict[str, Any]] | None = None
    surface: str | None = None
    channel: str | None = None
    method: str | None = None
    # decision.made / audience.used (the subject was a member of an audience filter run):
    # which system asked to do what, and the answer with its reasons
    requester: str | None = None
    action: str | None = None
    allow: bool | None = None
    reasons: list[str] | None = None
    policy_revision: str | None = None


class ActivityPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[ActivityItem]
    next_cursor: str | None


class ExportEntry(msgspec.Struct, frozen=True, kw_only=True):
    leaf_index: int
    leaf: str
    inclusion_proof: list[str]


class ExportFile(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a regulator needs to check these leaves offline with the public key."""

    format: str = "consent-audit-export/v1"
    vkey: str
    checkpoint: str
    tree_size: int
    entries: list[ExportEntry]
    truncated: bool
