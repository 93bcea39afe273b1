"""API shapes of decisions, batches, audience filtering, replay and the policy status."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal
from uuid import UUID

import msgspec

from consent.decisions.engine import DecisionInput
from consent.subjects.schemas import SubjectRef

__all__ = [
    "MAX_BATCH",
    "AudienceHeader",
    "AudienceMember",
    "AudienceSummary",
    "BatchRequest",
    "BatchResponse",
    "DecisionContext",
    "DecisionOut",
    "DecisionRequest",
    "PolicyStatus",
    "ReasonCatalogue",
    "ReasonText",
    "Replay",
    "StoredDecision",
]

MAX_BATCH: Final = 10_000

Action = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$",
        max_length=100,
        description="An action of the policy's closed list, e.g. `email.marketing`; "
        "an action the policy does not know is denied (`denied.unknown_action`).",
    ),
]
Jurisdiction = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$",
        description="ISO 3166-1 alpha-2 country (DE) or ISO 3166-2 subdivision (US-CA).",
    ),
]
Age = Annotated[int, msgspec.Meta(ge=0, le=150, description="Age in years, if known.")]
Requester = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,99}$",
        description="Id of the system asking (e.g. `esp`, `ads/retargeting`); logged.",
    ),
]


class DecisionContext(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Who asks and the circumstances; the consent state comes from the ledger."""

    requester: Requester
    jurisdiction: Jurisdiction | None = None
    gpc: bool = False
    age: Age | None = None
    parental_consent: bool = False
    limit_sensitive: bool = False


class DecisionRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """May `context.requester` do `action` for `subject`, now?"""

    subject: SubjectRef
    action: Action
    context: DecisionContext


class DecisionOut(msgspec.Struct, frozen=True, kw_only=True):
    """A decision. `allow` is true only when no rule denies; `reasons` are the codes that denied
    it, or the codes that allowed it; `purposes` has the code of every purpose the action needs."""

    decision_id: UUID
    allow: bool
    reasons: list[str]
    purposes: dict[str, str]
    policy_revision: str
    decided_at: datetime
    subject_id: UUID | None


class BatchRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    decisions: Annotated[list[DecisionRequest], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class BatchResponse(msgspec.Struct, frozen=True, kw_only=True):
    """One decision per request, in the order of the request."""

    batch_id: UUID
    decisions: list[DecisionOut]


class Replay(msgspec.Struct, frozen=True, kw_only=True):
    """The stored input evaluated under the policy in force now."""

    policy_revision: str
    allow: bool
    reasons: list[str]
    purposes: dict[str, str]
    differs: bool
    # Purposes the current policy needs for the action that the stored input does not cover
    # (the input holds only what the policy of the time needed).
    missing_purposes: list[str]


class StoredDecision(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    decision_id: UUID
    decided_at: datetime
    subject_id: UUID | None
    requester: str
    kind: str
    batch_id: UUID | None = None
    action: str
    allow: bool
    reasons: list[str]
    purposes: dict[str, str]
    policy_revision: str
    input: DecisionInput
    replay: Replay | None = None


# -- audience filter ----------------------------------------------------------------------------


class AudienceHeader(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """First NDJSON line of an audience filter request."""

    action: Action
    context: DecisionContext
    # "allowed": echo the lines of allowed members; "all": one result line per member.
    output: Literal["allowed", "all"] = "allowed"


class AudienceMember(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One NDJSON member line: `{"subject_id": ...}` or `{"type": ..., "value": ...}`, with
    optional overrides of the header's context for this member."""

    subject_id: UUID | None = None
    type: str | None = None
    value: str | None = None
    jurisdiction: Jurisdiction | msgspec.UnsetType | None = msgspec.UNSET
    gpc: bool | msgspec.UnsetType = msgspec.UNSET
    age: Age | msgspec.UnsetType | None = msgspec.UNSET
    parental_consent: bool | msgspec.UnsetType = msgspec.UNSET
    limit_sensitive: bool | msgspec.UnsetType = msgspec.UNSET


class AudienceSummary(msgspec.Struct, frozen=True, kw_only=True):
    """Last NDJSON line of the answer (`{"summary": ...}`); a stream without it is incomplete."""

    audience_id: UUID
    action: str
    now_ns: int
    policy_revisions: list[str]
    total: int
    allowed: int
    denied: int
    denied_by_reason: dict[str, int]
    invalid: int
    invalid_lines: list[int]
    distinct_inputs: int


class ReasonText(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    allow: bool
    text: str


class ReasonCatalogue(msgspec.Struct, frozen=True, kw_only=True):
    """What every reason code of the policy being served means, in one language."""

    revision: str
    language: str
    reasons: list[ReasonText]


class PolicyStatus(msgspec.Struct, frozen=True, kw_only=True):
    revision: str
    engine: Literal["in-process", "opa-server"]
    loaded_at: datetime
    cache_entries: int
    cache_hits: int
    cache_misses: int
