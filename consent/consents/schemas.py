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
    "NetworkProof",
    "SubjectConsents",
]

Key = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")]
Surface = Literal["banner", "portal", "form", "call_centre", "store", "import", "api"]
Channel = Literal["web", "app", "email", "sms", "phone", "store", "post", "other"]
Method = Literal["explicit", "gpc", "agent", "import"]

# Shared by the consent and preference shapes (consent.preferences.schemas imports them).
SURFACE_DOC = (
    "Where the choice was made: `banner` (consent banner), `portal` (self-service privacy or "
    "preference portal), `form`, `call_centre`, `store` (in person), `import` (brought in "
    "from another system), `api` (sent by another system). Kept as proof; not interpreted."
)
CHANNEL_DOC = (
    "The medium through which the choice reached the client: `web`, `app`, `email`, `sms`, "
    "`phone`, `store`, `post` or `other`. Kept as proof; not interpreted."
)
METHOD_DOC = (
    "How the choice was expressed: `explicit` (by the person themself; the default), `gpc` "
    "(derived from a Global Privacy Control browser signal), `agent` (a staff member acting "
    "for the customer, named in `agent_id`), `import` (taken over from another system)."
)
AGENT_ID_DOC = (
    "Who acted on the customer's behalf, as the client's own staff id (1-100 characters, "
    "e.g. `agent-0042`). Required when `method` is `agent`; optional otherwise."
)
AGENT_ID_OUT_DOC = (
    "The staff id of who acted for the customer (`method` `agent`); null when not given."
)
PROPERTY_ID_DOC = (
    "The property (website, app or channel registered with `POST /v1/properties`) where "
    "the choice was made: its UUID, which must exist in the tenant (else 400). Optional; "
    "written with an API key bound to a property, it is that property (another one: 403). "
    "A browser request must come from one of the property's `allowed_origins` (else 403)."
)
SUBJECT_ID_IN_DOC = (
    "The subject's id (UUID), as returned in an earlier `subject_id`. Give exactly one of "
    "`subject_id` and `identifier`; an unknown id answers 404. A subject merged by a link is "
    "written to as its surviving subject."
)
IDENTIFIER_IN_DOC = (
    "The subject named by an identifier (e.g. the e-mail address or a device id), instead of "
    "`subject_id`; give exactly one of the two. An identifier not seen before creates a new "
    "subject with it."
)
OCCURRED_AT_IN_DOC = (
    "When the choice was made, for a choice recorded later (imports, offline channels): an "
    "ISO 8601 timestamp with a time zone, not before 1970 and at most 5 minutes in the future "
    "(else 400). Omitted: the time of recording. Per purpose the choice made latest wins, "
    "whatever the recording order."
)
EVENT_ID_DOC = (
    "The event's id (UUID), assigned by the server; also the id of its audit leaf "
    "(`GET /v1/audit/events/{id}`)."
)
SUBJECT_ID_RECORDED_DOC = (
    "The subject the event was recorded for (UUID): the given subject, its surviving subject "
    "if it had been merged by a link, or the subject found or created for the identifier."
)
EVENT_SUBJECT_ID_DOC = (
    "The subject the event was recorded for (UUID). In a history this may be a subject that "
    "has since been linked into the one asked about."
)
OCCURRED_AT_OUT_DOC = (
    "When the choice was made (ISO 8601, UTC): the `occurred_at` sent, or the time of "
    "recording when it was omitted."
)
RECORDED_AT_DOC = "When the server stored the event: an ISO 8601 timestamp in UTC."
NETWORK_DOC = (
    "The truncated IP address and user agent of the request that recorded the event, kept "
    "(encrypted) only while the tenant enables `store_network_evidence`; null when none was "
    "kept."
)
NEXT_CURSOR_DOC = (
    "Opaque cursor of the next (older) page: pass it as `cursor` to continue. Null on the last "
    "page: when it is set, at least one more item follows."
)

_PURPOSE = (
    "Key of the purpose the choice is about (an existing purpose of the tenant, e.g. "
    "`analytics`): a lowercase letter, then up to 63 of a-z, 0-9, `_`, `.`, `-`."
)
_CHOICE = (
    "`granted`: the person agreed; `denied`: the person refused when asked; `withdrawn`: the "
    "person took back an earlier grant. Only `granted` counts as consent; `denied` and "
    "`withdrawn` also count as an objection to legitimate interest."
)
_NOTICE_HASH_IN = (
    "Optional check: the SHA-256 the client computed of the shown version's texts (64 "
    "lowercase hex characters, as the version's `content_hash`); refused (400) unless it "
    "matches. Refused (400) without `notice_version_id`, as it could not be checked."
)
_LANGUAGE_IN = (
    "The language of the text shown, as a BCP 47 tag of a language and optional region "
    "(`en`, `de-AT`); with `notice_version_id`, the version must have a text in it. Optional."
)
_NOTICE_HASH_OUT = (
    "The server's SHA-256 of the texts of the notice version shown (64 lowercase hex "
    "characters), recorded as proof with the event; null when no notice version was given."
)


class ChoiceIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One choice about one purpose: `granted`, `denied` or `withdrawn`."""

    purpose: Annotated[Key, msgspec.Meta(description=_PURPOSE)]
    choice: Annotated[Literal["granted", "denied", "withdrawn"], msgspec.Meta(description=_CHOICE)]


class ConsentCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One consent event: choices for one or more purposes, with the proof of what was shown."""

    subject_id: Annotated[UUID | None, msgspec.Meta(description=SUBJECT_ID_IN_DOC)] = None
    identifier: Annotated[IdentifierIn | None, msgspec.Meta(description=IDENTIFIER_IN_DOC)] = None
    choices: Annotated[
        list[ChoiceIn],
        msgspec.Meta(
            min_length=1,
            max_length=100,
            description="The choices made in this event: 1-100, each purpose at most once. "
            "With `notice_version_id`, each purpose must be one the notice asks about.",
        ),
    ]
    # The exact published notice version shown; its content hash is recorded with the event.
    notice_version_id: Annotated[
        UUID | None,
        msgspec.Meta(
            description="The published notice version shown to the person (UUID); its "
            "content hash is recorded with the event as proof. Required unless `method` is "
            "`gpc` or `import`. A version superseded by a material change is accepted (it is "
            "what was shown), but a grant under it is `stale` at once."
        ),
    ] = None
    # Optional: the hex SHA-256 the client computed of the texts it showed; must match.
    notice_hash: (
        Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$", description=_NOTICE_HASH_IN)] | None
    ) = None
    language: (
        Annotated[str, msgspec.Meta(pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$", description=_LANGUAGE_IN)]
        | None
    ) = None
    surface: Annotated[Surface, msgspec.Meta(description=SURFACE_DOC)]
    channel: Annotated[Channel, msgspec.Meta(description=CHANNEL_DOC)]
    method: Annotated[
        Method,
        msgspec.Meta(
            description=METHOD_DOC + " A GPC signal is an objection: a `gpc` event only denies "
            "or withdraws (a `granted` choice in it: 400)."
        ),
    ] = "explicit"
    # Required when method is "agent": who acted on the customer's behalf (staff id).
    agent_id: (
        Annotated[str, msgspec.Meta(min_length=1, max_length=100, description=AGENT_ID_DOC)] | None
    ) = None
    property_id: Annotated[UUID | None, msgspec.Meta(description=PROPERTY_ID_DOC)] = None
    # When the choice was made, if not now (imports, offline channels). Never in the future.
    occurred_at: Annotated[datetime | None, msgspec.Meta(description=OCCURRED_AT_IN_DOC)] = None


class ConsentRecorded(msgspec.Struct, frozen=True, kw_only=True):
    """A recorded consent event: its id, the subject it was recorded for, and the
    proof kept with it."""

    event_id: Annotated[UUID, msgspec.Meta(description=EVENT_ID_DOC)]
    subject_id: Annotated[UUID, msgspec.Meta(description=SUBJECT_ID_RECORDED_DOC)]
    occurred_at: Annotated[datetime, msgspec.Meta(description=OCCURRED_AT_OUT_DOC)]
    recorded_at: Annotated[datetime, msgspec.Meta(description=RECORDED_AT_DOC)]
    notice_hash: Annotated[str | None, msgspec.Meta(description=_NOTICE_HASH_OUT)]


class ConsentState(msgspec.Struct, frozen=True, kw_only=True):
    """A subject's current consent for one purpose: the latest choice, and whether it
    still counts as consent (not expired, not stale)."""

    purpose: Annotated[str, msgspec.Meta(description="Key of the purpose.")]
    choice: Annotated[
        str,
        msgspec.Meta(
            description="The current choice for the purpose: the one made latest (by "
            "`occurred_at`, then by arrival) across the subject and every subject linked into "
            "it. `granted`, `denied` or `withdrawn` (see the consent request)."
        ),
    ]
    # granted, and neither expired nor stale: the choice currently counts as consent. Expiry and
    # staleness apply to consent-based purposes only (migrations/0018), as in decisions.
    effective: Annotated[
        bool,
        msgspec.Meta(
            description="True when `choice` is `granted` and the choice is neither `expired` "
            "nor `stale`: the choice currently counts as consent, which a decision on a "
            "purpose with legal basis `consent` may rely on. The maximum age and staleness "
            "apply only to purposes with legal basis `consent`, so on any other legal basis "
            "every `granted` choice is effective. A `denied` or `withdrawn` choice never is; "
            "on a `legitimate_interest` purpose it is an objection, which never expires."
        ),
    ]
    expired: Annotated[
        bool,
        msgspec.Meta(
            description="True when the purpose's legal basis is `consent`, it has a maximum "
            "age (`max_age_days`) and the choice was made longer ago than that: a grant then "
            "no longer counts as consent. The maximum age applies only to purposes with legal "
            "basis `consent`: always false on any other legal basis, and an objection to a "
            "`legitimate_interest` purpose (a `denied` or `withdrawn` choice) never expires."
        ),
    ]
    stale: Annotated[
        bool,
        msgspec.Meta(
            description="True when the purpose's legal basis is `consent` and a materially "
            "changed version of the notice has been published after the version shown, before "
            "or after the choice (a choice made on an outdated text, say a call centre's old "
            "script, is stale from the start): a grant then no longer counts as consent. "
            "Staleness applies only to purposes with "
            "legal basis `consent`: always false on any other legal basis (an objection to a "
            "`legitimate_interest` purpose stays in force) and for a choice recorded without "
            "a notice version."
        ),
    ]
    occurred_at: Annotated[
        datetime,
        msgspec.Meta(description="When the current choice was made (ISO 8601, UTC)."),
    ]
    event_id: Annotated[
        UUID,
        msgspec.Meta(
            description="The event that made the current choice (UUID; see its history "
            "entry and `GET /v1/audit/events/{id}`)."
        ),
    ]
    notice_version_id: Annotated[
        UUID | None,
        msgspec.Meta(
            description="The notice version shown when the current choice was made (UUID); "
            "null when it was recorded without one (`gpc`, `import`)."
        ),
    ]


class SubjectConsents(msgspec.Struct, frozen=True, kw_only=True):
    """A subject's current consent state, one entry per purpose it has made a
    choice about."""

    subject_id: Annotated[
        UUID,
        msgspec.Meta(
            description="The subject (UUID): the one asked about, or its surviving subject "
            "when it has been merged into another by a link."
        ),
    ]
    consents: Annotated[
        list[ConsentState],
        msgspec.Meta(
            description="The current state per purpose the subject has made a choice about, "
            "ordered by purpose key; empty when there is none."
        ),
    ]


class ConsentEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One consent event of a subject's history, as recorded: its choices and the
    proof of what was shown, where and how."""

    event_id: Annotated[UUID, msgspec.Meta(description=EVENT_ID_DOC)]
    subject_id: Annotated[UUID, msgspec.Meta(description=EVENT_SUBJECT_ID_DOC)]
    occurred_at: Annotated[datetime, msgspec.Meta(description=OCCURRED_AT_OUT_DOC)]
    recorded_at: Annotated[datetime, msgspec.Meta(description=RECORDED_AT_DOC)]
    choices: Annotated[
        list[ChoiceIn], msgspec.Meta(description="The choices of the event, as recorded.")
    ]
    notice_version_id: Annotated[
        UUID | None,
        msgspec.Meta(
            description="The notice version shown (UUID); null when none was given (`gpc`, "
            "`import`)."
        ),
    ]
    notice_hash: Annotated[str | None, msgspec.Meta(description=_NOTICE_HASH_OUT)]
    language: Annotated[
        str | None,
        msgspec.Meta(
            description="The language of the text shown (BCP 47, e.g. `en`, `de-AT`); null "
            "when not given."
        ),
    ]
    surface: Annotated[str, msgspec.Meta(description=SURFACE_DOC)]
    channel: Annotated[str, msgspec.Meta(description=CHANNEL_DOC)]
    method: Annotated[str, msgspec.Meta(description=METHOD_DOC)]
    agent_id: Annotated[str | None, msgspec.Meta(description=AGENT_ID_OUT_DOC)]
    property_id: Annotated[
        UUID | None,
        msgspec.Meta(
            description="The property where the choice was made (UUID); null when not given."
        ),
    ]
    network: Annotated[NetworkProof | None, msgspec.Meta(description=NETWORK_DOC)] = None


class NetworkProof(msgspec.Struct, frozen=True, kw_only=True):
    """The network evidence kept with an event (tenant setting `store_network_evidence`)."""

    ip_prefix: Annotated[
        str | None,
        msgspec.Meta(
            description="The client's IP address truncated to its network (IPv4 /24, e.g. "
            "`203.0.113.0`; IPv6 /48); null when none was known."
        ),
    ] = None
    user_agent: Annotated[
        str | None,
        msgspec.Meta(
            description="The client's User-Agent header (at most 200 characters); null when "
            "none was sent."
        ),
    ] = None


class ConsentHistoryPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a subject's consent events, most recently recorded first."""

    items: Annotated[
        list[ConsentEvent],
        msgspec.Meta(
            description="Events with their proof, most recently recorded first (the order of "
            "arrival, not of `occurred_at`), including those of subjects linked into this one."
        ),
    ]
    next_cursor: Annotated[str | None, msgspec.Meta(description=NEXT_CURSOR_DOC)]
