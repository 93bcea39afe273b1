"""API shapes of subjects and identifiers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

__all__ = [
    "ErasureRequest",
    "ErasureResult",
    "IdentifierIn",
    "LinkRequest",
    "LinkResult",
    "SubjectRef",
]

IdType = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


class IdentifierIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An identifier as a client knows it; normalised, then stored only HMAC'd and encrypted."""

    type: IdType
    value: Annotated[str, msgspec.Meta(min_length=1, max_length=320)]


class SubjectRef(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Who a write or lookup is about: a subject id, or an identifier."""

    subject_id: UUID | None = None
    identifier: IdentifierIn | None = None


class LinkRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Two or more references to the same person (e.g. a device id and the e-mail at login)."""

    subjects: Annotated[list[SubjectRef], msgspec.Meta(min_length=2, max_length=10)]


class LinkResult(msgspec.Struct, frozen=True, kw_only=True):
    subject_id: UUID
    merged: list[UUID]
    linked_at: datetime


class ErasureRequest(SubjectRef, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Whom to erase: a subject id, or an identifier (in the body, so that an e-mail address
    in an erasure request never lands in a URL or an access log)."""


class ErasureResult(msgspec.Struct, frozen=True, kw_only=True):
    """What an erasure destroyed, and the audit leaves that record it."""

    subject_id: UUID
    # The subject and every subject that had been linked into it.
    erased_subjects: list[UUID]
    erased_at: datetime
    # One `subject.erased` leaf per erased subject (`GET /v1/audit/events/{id}/proof`).
    audit_events: list[UUID]
