"""API shapes of preferences."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from consent.consents.schemas import (
    AGENT_ID_DOC,
    AGENT_ID_OUT_DOC,
    CHANNEL_DOC,
    EVENT_ID_DOC,
    EVENT_SUBJECT_ID_DOC,
    IDENTIFIER_IN_DOC,
    METHOD_DOC,
    NETWORK_DOC,
    NEXT_CURSOR_DOC,
    OCCURRED_AT_OUT_DOC,
    PROPERTY_ID_DOC,
    RECORDED_AT_DOC,
    SUBJECT_ID_IN_DOC,
    SUBJECT_ID_RECORDED_DOC,
    SURFACE_DOC,
    Channel,
    Method,
    NetworkProof,
    Surface,
)
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


_KIND = (
    "What the preference is about: `channel` (whether the person may be contacted through a "
    "medium at all), `topic` (a subscription to a subject matter, e.g. a newsletter), "
    "`frequency` (how often to contact them, per medium or by default)."
)
_KEY = (
    "Which channel, topic or frequency: for `channel` one of `email`, `sms`, `push`, `post`, "
    "`phone`; for `topic` a key of the client's choosing (a lowercase letter, then up to 63 of "
    "a-z, 0-9, `_`, `.`, `-`; e.g. `newsletter`); for `frequency` a channel or `default`."
)
_VALUE = (
    "The setting: for `channel` `opt_in` or `opt_out`; for `topic` `subscribed` or "
    "`unsubscribed`; for `frequency` `immediate`, `daily`, `weekly`, `monthly` or `never`."
)
_OCCURRED_AT_IN = (
    "When the preference was expressed, for one recorded later (imports, offline channels): "
    "an ISO 8601 timestamp with a time zone, not before 1970 and at most 5 minutes in the "
    "future (else 400). Omitted: the time of recording. Per preference the one expressed "
    "latest wins, whatever the order of recording."
)


class PreferenceItem(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """channel: email/sms/push/post/phone = opt_in|opt_out; topic: <key> = subscribed|
    unsubscribed; frequency: <channel or default> = immediate|daily|weekly|monthly|never."""

    kind: Annotated[Literal["channel", "topic", "frequency"], msgspec.Meta(description=_KIND)]
    key: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_.-]{0,63}$", description=_KEY)]
    value: Annotated[str, msgspec.Meta(pattern=r"^[a-z_]{1,20}$", description=_VALUE)]


class PreferenceCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One preference event (`POST /v1/preferences`): channel, topic and
    frequency settings for a subject. Preferences are not legal consent."""

    subject_id: Annotated[UUID | None, msgspec.Meta(description=SUBJECT_ID_IN_DOC)] = None
    identifier: Annotated[IdentifierIn | None, msgspec.Meta(description=IDENTIFIER_IN_DOC)] = None
    items: Annotated[
        list[PreferenceItem],
        msgspec.Meta(
            min_length=1,
            max_length=100,
            description="The preferences set in this event: 1-100, each (`kind`, `key`) at "
            "most once. Preferences not named keep their current value.",
        ),
    ]
    surface: Annotated[Surface, msgspec.Meta(description=SURFACE_DOC)]
    channel: Annotated[
        Channel,
        msgspec.Meta(
            description=CHANNEL_DOC + " Not a contact preference: those are `items` of "
            "kind `channel`."
        ),
    ]
    method: Annotated[Method, msgspec.Meta(description=METHOD_DOC)] = "explicit"
    agent_id: (
        Annotated[str, msgspec.Meta(min_length=1, max_length=100, description=AGENT_ID_DOC)] | None
    ) = None
    property_id: Annotated[UUID | None, msgspec.Meta(description=PROPERTY_ID_DOC)] = None
    occurred_at: Annotated[datetime | None, msgspec.Meta(description=_OCCURRED_AT_IN)] = None


class PreferenceRecorded(msgspec.Struct, frozen=True, kw_only=True):
    """A recorded preference event: its id and the subject it was recorded for."""

    event_id: Annotated[UUID, msgspec.Meta(description=EVENT_ID_DOC)]
    subject_id: Annotated[UUID, msgspec.Meta(description=SUBJECT_ID_RECORDED_DOC)]
    occurred_at: Annotated[datetime, msgspec.Meta(description=OCCURRED_AT_OUT_DOC)]
    recorded_at: Annotated[datetime, msgspec.Meta(description=RECORDED_AT_DOC)]


class PreferenceState(msgspec.Struct, frozen=True, kw_only=True):
    """The current value of one of a subject's preferences: the latest one
    expressed."""

    kind: Annotated[
        str, msgspec.Meta(description="`channel`, `topic` or `frequency` (see the request).")
    ]
    key: Annotated[
        str, msgspec.Meta(description="Which channel, topic or frequency (see the request).")
    ]
    value: Annotated[
        str,
        msgspec.Meta(
            description="The current setting: the one expressed latest (by `occurred_at`, "
            "then by arrival) across the subject and every subject linked into it."
        ),
    ]
    occurred_at: Annotated[
        datetime,
        msgspec.Meta(description="When the current setting was expressed (ISO 8601, UTC)."),
    ]
    event_id: Annotated[
        UUID,
        msgspec.Meta(description="The preference event that set the current value (UUID)."),
    ]


class SubjectPreferences(msgspec.Struct, frozen=True, kw_only=True):
    """A page of a subject's current preferences, one entry per preference ever set."""

    subject_id: Annotated[
        UUID,
        msgspec.Meta(
            description="The subject (UUID): the one asked about, or its surviving subject "
            "when it has been merged into another by a link."
        ),
    ]
    preferences: Annotated[
        list[PreferenceState],
        msgspec.Meta(
            description="The current value of every preference ever set for the subject on "
            "this page, ordered by `kind`, then `key` (`limit` of them at most; the rest on "
            "the next pages: `next_cursor`); empty when there is none."
        ),
    ]
    next_cursor: Annotated[
        str | None,
        msgspec.Meta(
            description="Opaque cursor of the next page (the preferences after this page's "
            "last by `kind`, then `key`): pass it as `cursor` to continue. Null on the last "
            "page: when it is set, at least one more preference follows."
        ),
    ] = None


class PreferenceEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One preference event of a subject's history, as recorded."""

    event_id: Annotated[UUID, msgspec.Meta(description=EVENT_ID_DOC)]
    subject_id: Annotated[UUID, msgspec.Meta(description=EVENT_SUBJECT_ID_DOC)]
    occurred_at: Annotated[datetime, msgspec.Meta(description=OCCURRED_AT_OUT_DOC)]
    recorded_at: Annotated[datetime, msgspec.Meta(description=RECORDED_AT_DOC)]
    items: Annotated[
        list[PreferenceItem],
        msgspec.Meta(description="The preferences set by the event, as recorded."),
    ]
    surface: Annotated[str, msgspec.Meta(description=SURFACE_DOC)]
    channel: Annotated[str, msgspec.Meta(description=CHANNEL_DOC)]
    method: Annotated[str, msgspec.Meta(description=METHOD_DOC)]
    agent_id: Annotated[str | None, msgspec.Meta(description=AGENT_ID_OUT_DOC)]
    property_id: Annotated[
        UUID | None,
        msgspec.Meta(
            description="The property where the preference was expressed (UUID); null when "
            "not given."
        ),
    ]
    network: Annotated[NetworkProof | None, msgspec.Meta(description=NETWORK_DOC)] = None


class PreferenceHistoryPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a subject's preference events, most recently recorded first."""

    items: Annotated[
        list[PreferenceEvent],
        msgspec.Meta(
            description="Preference events, most recently recorded first (the order of "
            "arrival, not of `occurred_at`), including those of subjects linked into this one."
        ),
    ]
    next_cursor: Annotated[str | None, msgspec.Meta(description=NEXT_CURSOR_DOC)]
