"""API shapes of consent events, state and history."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from consent.subjects.schemas import IdentifierIn

__all__ = [
    "ChoiceIn",
    "ConsentCreate",
    "ConsentEvent",
    "ConsentHistoryPage",
    "ConsentRecorded",
    "ConsentState",
    "SubjectConsents",
]

Key = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")]
Surface = Literal["banner", "portal", "form", "call_centre", "store", "import", "api"]
Channel = Literal["web", "app", "email", "sms", "phone", "store", "post", "other"]
Method = Literal["explicit", "gpc", "agent", "import"]


class ChoiceIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    purpose: Key
    choice: Literal["granted", "denied", "withdrawn"]


class ConsentCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One consent event: choices for one or more purposes, with the proof of what was shown."""

    subject_id: UUID | None = None
    identifier: IdentifierIn | None = None
    choices: Annotated[list[ChoiceIn], msgspec.Meta(min_length=1, max_length=100)]
    # The exact published notice version shown; its content hash is recorded with the event.
    notice_version_id: UUID | None = None
    # Optional: the hex SHA-256 the client computed of the texts it showed; must match.
    notice_hash: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")] | None = None
    language: Annotated[str, msgspec.Meta(pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$")] | None = None
    surface: Surface
    channel: Channel
    method: Method = "explicit"
    # Required when method is "agent": who acted on the customer's behalf (staff id).
    agent_id: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    property_id: UUID | None = None
    # When the choice was made, if not now (imports, offline channels). Never in the future.
    occurred_at: datetime | None = None


class ConsentRecorded(msgspec.Struct, frozen=True, kw_only=True):
    event_id: UUID
    subject_id: UUID
    occurred_at: datetime
    recorded_at: datetime
    notice_hash: str | None


class ConsentState(msgspec.Struct, frozen=True, kw_only=True):
    purpose: str
    choice: str
    # granted, and neither expired nor stale: what a decision may rely on.
    effective: bool
    expired: bool
    stale: bool
    occurred_at: datetime
    event_id: UUID
    notice_version_id: UUID | None


class SubjectConsents(msgspec.Struct, frozen=True, kw_only=True):
    subject_id: UUID
    consents: list[ConsentState]


class ConsentEvent(msgspec.Struct, frozen=True, kw_only=True):
    event_id: UUID
    subject_id: UUID
    occurred_at: datetime
    recorded_at: datetime
    choices: list[ChoiceIn]
    notice_version_id: UUID | None
    notice_hash: str | None
    language: str | None
    surface: str
    channel: str
    method: str
    agent_id: str | None
    property_id: UUID | None


class ConsentHistoryPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[ConsentEvent]
    next_cursor: str | None
