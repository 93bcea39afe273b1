"""API shapes of preferences."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from consent.consents.schemas import Channel, Method, Surface
from consent.subjects.schemas import IdentifierIn

__all__ = [
    "PreferenceCreate",
    "PreferenceEvent",
    "PreferenceHistoryPage",
    "PreferenceItem",
    "PreferenceRecorded",
    "PreferenceState",
    "SubjectPreferences",
]

CHANNELS = ("email", "sms", "push", "post", "phone")
ALLOWED_VALUES: dict[str, frozenset[str]] = {
    "channel": frozenset({"opt_in", "opt_out"}),
    "topic": frozenset({"subscribed", "unsubscribed"}),
    "frequency": frozenset({"immediate", "daily", "weekly", "monthly", "never"}),
}


class PreferenceItem(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """channel: email/sms/push/post/phone = opt_in|opt_out; topic: <key> = subscribed|
    unsubscribed; frequency: <channel or default> = immediate|daily|weekly|monthly|never."""

    kind: Literal["channel", "topic", "frequency"]
    key: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")]
    value: Annotated[str, msgspec.Meta(pattern=r"^[a-z_]{1,20}$")]


class PreferenceCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    subject_id: UUID | None = None
    identifier: IdentifierIn | None = None
    items: Annotated[list[PreferenceItem], msgspec.Meta(min_length=1, max_length=100)]
    surface: Surface
    channel: Channel
    method: Method = "explicit"
    agent_id: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    property_id: UUID | None = None
    occurred_at: datetime | None = None


class PreferenceRecorded(msgspec.Struct, frozen=True, kw_only=True):
    event_id: UUID
    subject_id: UUID
    occurred_at: datetime
    recorded_at: datetime


class PreferenceState(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    key: str
    value: str
    occurred_at: datetime
    event_id: UUID


class SubjectPreferences(msgspec.Struct, frozen=True, kw_only=True):
    subject_id: UUID
    preferences: list[PreferenceState]


class PreferenceEvent(msgspec.Struct, frozen=True, kw_only=True):
    event_id: UUID
    subject_id: UUID
    occurred_at: datetime
    recorded_at: datetime
    items: list[PreferenceItem]
    surface: str
    channel: str
    method: str
    agent_id: str | None
    property_id: UUID | None


class PreferenceHistoryPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[PreferenceEvent]
    next_cursor: str | None
